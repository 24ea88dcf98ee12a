//! The demo's HQ: the real reference HQ (`loyalty-hq`'s library) served in-process on a
//! loopback port the agent was configured with from the start, so the store opens offline and
//! HQ "comes back" mid-day.

use anyhow::Context;
use serde_json::{json, Value};
use std::path::Path;

pub const ADMIN_TOKEN: &str = "demo-admin-token-0123456789";
pub const STORE_TOKEN: &str = "store-demo-token";

/// A loopback port free now, for HQ to take later.
pub fn reserve_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a port for HQ")?;
    Ok(listener.local_addr()?.port())
}

pub struct DemoHq {
    hq: loyalty_sim::hq::LocalHq,
}

impl DemoHq {
    pub async fn start(port: u16, db: &Path) -> anyhow::Result<DemoHq> {
        let listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let hq = loyalty_sim::hq::LocalHq::start(listen, db, ADMIN_TOKEN, |_| {})
            .await
            .context("starting HQ")?;
        Ok(DemoHq { hq })
    }

    /// HQ's base URL, for the members' phones.
    pub fn url(&self) -> &str {
        &self.hq.url
    }

    pub async fn admin_put(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let (status, body) = self
            .hq
            .admin_put(path, body)
            .await
            .with_context(|| format!("PUT {path} at HQ"))?;
        if !(200..300).contains(&status) {
            anyhow::bail!("HQ answered {status} to PUT {path}: {body}");
        }
        Ok(body)
    }

    pub async fn admin_get(&self, path: &str) -> anyhow::Result<Value> {
        let (_, body) = self
            .hq
            .admin_get(path)
            .await
            .with_context(|| format!("GET {path} at HQ"))?;
        Ok(body)
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
        self.hq.stop().await.context("stopping HQ")
    }
}
