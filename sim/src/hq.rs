//! A real HQ served in-process on a loopback port, with its admin API a call away: for the
//! agent's demo and for tests (HQ's own, the agent's), so none of them wires `serve` and an HTTP
//! client by hand. The `loyalty-hq` server itself never needs it.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;

use serde_json::Value;
use tokio::sync::oneshot;

use loyalty_hq::config::{ConfigError, RawConfig, Settings};
use loyalty_hq::HqError;

/// Why a local HQ could not start.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("binding HQ to {listen}: {source}")]
    Bind {
        listen: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("HQ's settings: {0}")]
    Settings(#[from] ConfigError),
    #[error("HQ stopped: {0}")]
    Stopped(String),
}

/// A running in-process HQ.
pub struct LocalHq {
    /// `http://127.0.0.1:<port>`, or `https://` with hq.toml's `[tls]`.
    pub url: String,
    pub admin_token: String,
    client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), HqError>>,
}

impl LocalHq {
    /// Serves HQ on `listen` (port 0: any free one) with the database `db` and `admin_token`;
    /// `tweak` adjusts the other settings (batch limits, allowance, plausibility).
    pub async fn start(
        listen: SocketAddr,
        db: &Path,
        admin_token: &str,
        tweak: impl FnOnce(&mut RawConfig),
    ) -> Result<LocalHq, FixtureError> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| FixtureError::Bind { listen, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| FixtureError::Bind { listen, source })?;
        let mut raw = RawConfig {
            listen: Some(bound.to_string()),
            db: Some(db.to_owned()),
            admin_token: Some(admin_token.to_owned()),
            ..RawConfig::default()
        };
        tweak(&mut raw);
        let settings: Settings = raw.validate()?;
        let scheme = if settings.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(loyalty_hq::serve(settings, listener, async move {
            let _ = stopped.await;
        }));
        Ok(LocalHq {
            url: format!("{scheme}://{bound}"),
            admin_token: admin_token.to_owned(),
            client: reqwest::Client::new(),
            stop: Some(stop),
            task,
        })
    }

    /// Trusts the CA certificate (PEM) `ca` for the admin calls, as for an HQ serving HTTPS
    /// with a certificate of the chain's own CA.
    pub fn trusting(mut self, ca: &[u8]) -> Result<LocalHq, reqwest::Error> {
        self.client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(ca)?)
            .build()?;
        Ok(self)
    }

    /// `method path` on the admin API with `body`: the status and the JSON answer (null when
    /// the answer is not JSON).
    pub fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> impl Future<Output = Result<(u16, Value), reqwest::Error>> + Send + 'static {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.admin_token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await?;
            let status = response.status().as_u16();
            Ok((status, response.json().await.unwrap_or(Value::Null)))
        }
    }

    pub async fn admin_put(&self, path: &str, body: Value) -> Result<(u16, Value), reqwest::Error> {
        self.admin(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn admin_get(&self, path: &str) -> Result<(u16, Value), reqwest::Error> {
        self.admin(reqwest::Method::GET, path, None).await
    }

    /// Stops HQ after the requests in flight, and waits for it.
    pub async fn stop(mut self) -> Result<(), FixtureError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(result) => result.map_err(|e| FixtureError::Stopped(e.to_string())),
            Err(e) => Err(FixtureError::Stopped(e.to_string())),
        }
    }
}
