//! The demo's HQ: the real reference HQ (`loyalty-hq`'s library) served in-process on a
//! loopback port the agent was configured with from the start, so the store opens offline and
//! HQ "comes back" mid-day.

use anyhow::Context;
use serde_json::{json, Value};
use std::path::Path;
use tokio_util::sync::CancellationToken;

pub const ADMIN_TOKEN: &str = "demo-admin-token-0123456789";
pub const STORE_TOKEN: &str = "store-demo-token";

/// A loopback port free now, for HQ to take later.
pub fn reserve_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a port for HQ")?;
    Ok(listener.local_addr()?.port())
}

pub struct DemoHq {
    pub base: String,
    client: reqwest::Client,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), loyalty_hq::HqError>>,
}

impl DemoHq {
    pub async fn start(port: u16, db: &Path) -> anyhow::Result<DemoHq> {
        let listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding HQ to {listen}"))?;
        let settings = loyalty_hq::config::Settings {
            listen,
            db: db.to_owned(),
            admin_token: ADMIN_TOKEN.into(),
            max_batch_events: loyalty_hq::config::DEFAULT_MAX_BATCH_EVENTS,
            max_body_bytes: loyalty_hq::config::DEFAULT_MAX_BODY_BYTES,
            allowance: Default::default(),
            plausibility: Default::default(),
            max_connections: 4096,
            webhooks: Default::default(),
            app: Default::default(),
        };
        let stop = CancellationToken::new();
        let shutdown = stop.clone();
        let task = tokio::spawn(loyalty_hq::serve(settings, listener, async move {
            shutdown.cancelled().await
        }));
        Ok(DemoHq {
            base: format!("http://{listen}"),
            client: reqwest::Client::new(),
            stop,
            task,
        })
    }

    pub async fn admin_put(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let response = self
            .client
            .put(format!("{}{path}", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("PUT {path} at HQ"))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            anyhow::bail!("HQ answered {status} to PUT {path}: {body}");
        }
        Ok(body)
    }

    pub async fn admin_get(&self, path: &str) -> anyhow::Result<Value> {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .with_context(|| format!("GET {path} at HQ"))?
            .json()
            .await
            .with_context(|| format!("reading HQ's answer to GET {path}"))
    }

    pub async fn register_store(&self, store: &str) -> anyhow::Result<()> {
        self.admin_put(
            &format!("/v1/admin/stores/{store}"),
            json!({"token": STORE_TOKEN}),
        )
        .await
        .map(|_| ())
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.task.await.context("the HQ task")??;
        Ok(())
    }
}
