//! The HTTP client for HQ's sync endpoints: one push, one page pulled, each answer checked
//! before anything is believed (status, protocol version, shape).

use chrono::{DateTime, Utc};
use loyalty_protocol::{
    check_version, ChangesPage, ErrorBody, EventBatch, LedgerBinding, LedgerState, PushResponse,
    LEDGER_CONFLICT, PROTOCOL_HEADER, PROTOCOL_VERSION, SEQ_CONFLICT, SEQ_GAP,
};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use std::time::Duration;
use thiserror::Error;

/// Slow HQs are waited for this long per request before the attempt counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Error)]
pub enum HqError {
    #[error("HQ is unreachable: {0}")]
    Unreachable(String),
    #[error("HQ refused the store token (401): check hq.token")]
    Unauthorized,
    #[error("HQ says this token may not act for this store (403): {0}")]
    Forbidden(String),
    #[error("HQ speaks another sync protocol: {0}")]
    Version(String),
    #[error("HQ rejected the request ({status} {code}): {message}")]
    Rejected {
        status: u16,
        code: String,
        message: String,
    },
    #[error("HQ failed ({status}): {message}")]
    Server { status: u16, message: String },
    #[error("HQ answered something that is not a sync answer: {0}")]
    Garbage(String),
    /// HQ refused the push as a whole because of which ledger it comes from or where it
    /// follows on (`loyalty_protocol::ledger`); retrying does not help until an operator
    /// re-bases the ledger.
    #[error("HQ refused this ledger's events ({code}): {message}")]
    Ledger { code: String, message: String },
    /// Reading or writing this agent's own ledger failed, not HQ.
    #[error("the local ledger failed during sync: {0}")]
    Local(String),
}

impl HqError {
    /// The pull cursor is not one HQ knows: start the feed again from the beginning.
    pub fn is_bad_cursor(&self) -> bool {
        matches!(self, HqError::Rejected { code, .. } if code == "bad_cursor")
    }
}

/// An answer with the local clock's view of when it was asked and answered.
pub struct Timed<T> {
    pub body: T,
    /// HQ's clock minus ours, from HQ's time and the midpoint of the round trip.
    pub skew_ms: Option<i64>,
}

#[derive(Clone)]
pub struct HqClient {
    http: reqwest::Client,
    base: String,
    store: String,
    token: String,
}

impl HqClient {
    pub fn new(base_url: &str, store: &str, token: &str) -> Result<Self, HqError> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .gzip(true)
            .build()
            .map_err(|e| HqError::Unreachable(format!("building the HTTP client: {e}")))?;
        Ok(HqClient {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            store: store.to_owned(),
            token: token.to_owned(),
        })
    }

    pub fn store(&self) -> &str {
        &self.store
    }

    pub async fn push(&self, batch: &EventBatch) -> Result<Timed<PushResponse>, HqError> {
        let body = serde_json::to_vec(batch)
            .map_err(|e| HqError::Local(format!("encoding the push: {e}")))?;
        self.push_encoded(body).await
    }

    /// [`HqClient::push`] of a batch already encoded as JSON; HQ's answer (an outcome per
    /// event) is decoded off the async threads.
    pub async fn push_encoded(&self, body: Vec<u8>) -> Result<Timed<PushResponse>, HqError> {
        let url = format!("{}/v1/stores/{}/events", self.base, self.store);
        let request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        let raw = self.send_raw(request).await?;
        let answer: Timed<PushResponse> = tokio::task::spawn_blocking(move || raw.decode())
            .await
            .map_err(|e| HqError::Local(format!("decoding HQ's answer stopped: {e}")))??;
        check_version(answer.body.protocol).map_err(|e| HqError::Version(e.to_string()))?;
        Ok(answer)
    }

    pub async fn changes(&self, cursor: &str, limit: u32) -> Result<Timed<ChangesPage>, HqError> {
        let url = format!("{}/v1/stores/{}/changes", self.base, self.store);
        let limit = limit.to_string();
        let request = self
            .http
            .get(url)
            .query(&[("cursor", cursor), ("limit", limit.as_str())]);
        let answer: Timed<ChangesPage> = self.send(request).await?;
        check_version(answer.body.protocol).map_err(|e| HqError::Version(e.to_string()))?;
        Ok(answer)
    }

    /// The ledger HQ takes this store's events from.
    pub async fn ledger(&self) -> Result<LedgerState, HqError> {
        let url = format!("{}/v1/stores/{}/ledger", self.base, self.store);
        let answer: Timed<LedgerState> = self.send(self.http.get(url)).await?;
        check_version(answer.body.protocol).map_err(|e| HqError::Version(e.to_string()))?;
        Ok(answer.body)
    }

    /// Re-bases this store on `binding.ledger_id` (`loyalty-agent rebase`).
    pub async fn rebind_ledger(&self, binding: &LedgerBinding) -> Result<LedgerState, HqError> {
        let url = format!("{}/v1/stores/{}/ledger", self.base, self.store);
        let answer: Timed<LedgerState> = self.send(self.http.put(url).json(binding)).await?;
        check_version(answer.body.protocol).map_err(|e| HqError::Version(e.to_string()))?;
        Ok(answer.body)
    }

    async fn send<T: DeserializeOwned + HasHqTime>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<Timed<T>, HqError> {
        self.send_raw(request).await?.decode()
    }

    /// Sends `request`; a successful answer's bytes, not yet decoded.
    async fn send_raw(&self, request: reqwest::RequestBuilder) -> Result<RawAnswer, HqError> {
        let asked = Utc::now();
        let response = request
            .bearer_auth(&self.token)
            .header(PROTOCOL_HEADER, PROTOCOL_VERSION.to_string())
            .send()
            .await
            .map_err(|e| HqError::Unreachable(describe(&e)))?;
        let status = response.status();
        // A body cut mid-way surfaces here, as an unreachable HQ: retried, never believed.
        let bytes = response
            .bytes()
            .await
            .map_err(|e| HqError::Unreachable(format!("reading the answer: {}", describe(&e))))?;
        let answered = Utc::now();
        if !status.is_success() {
            return Err(error_for(status, &bytes));
        }
        Ok(RawAnswer {
            bytes: bytes.to_vec(),
            asked,
            answered,
        })
    }
}

/// A successful answer's body with when it was asked and answered.
struct RawAnswer {
    bytes: Vec<u8>,
    asked: DateTime<Utc>,
    answered: DateTime<Utc>,
}

impl RawAnswer {
    fn decode<T: DeserializeOwned + HasHqTime>(self) -> Result<Timed<T>, HqError> {
        let bytes = self.bytes;
        let body: T = serde_json::from_slice(&bytes).map_err(|e| {
            HqError::Garbage(format!(
                "{e} (first bytes: {:?})",
                String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
            ))
        })?;
        let skew_ms = DateTime::parse_from_rfc3339(body.hq_time()).ok().map(|hq| {
            let midpoint = self.asked + (self.answered - self.asked) / 2;
            (hq.with_timezone(&Utc) - midpoint).num_milliseconds()
        });
        Ok(Timed { body, skew_ms })
    }
}

trait HasHqTime {
    fn hq_time(&self) -> &str;
}

impl HasHqTime for PushResponse {
    fn hq_time(&self) -> &str {
        &self.hq_time
    }
}

/// Ledger answers carry no clock: no skew is taken from them.
impl HasHqTime for LedgerState {
    fn hq_time(&self) -> &str {
        ""
    }
}

impl HasHqTime for ChangesPage {
    fn hq_time(&self) -> &str {
        &self.hq_time
    }
}

fn error_for(status: StatusCode, bytes: &[u8]) -> HqError {
    let parsed: Option<ErrorBody> = serde_json::from_slice(bytes).ok();
    let (code, message) = match parsed {
        Some(b) => (b.error, b.message),
        None => (
            String::new(),
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
        ),
    };
    match status {
        StatusCode::UNAUTHORIZED => HqError::Unauthorized,
        StatusCode::FORBIDDEN => HqError::Forbidden(message),
        _ if code == "protocol_version" => HqError::Version(message),
        StatusCode::CONFLICT
            if [LEDGER_CONFLICT, SEQ_GAP, SEQ_CONFLICT].contains(&code.as_str()) =>
        {
            HqError::Ledger { code, message }
        }
        s if s.is_server_error() => HqError::Server {
            status: s.as_u16(),
            message,
        },
        s => HqError::Rejected {
            status: s.as_u16(),
            code,
            message,
        },
    }
}

/// reqwest's Display hides the cause (connection refused, reset, timeout) one level down.
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
