//! The HTTP client for HQ's sync endpoints: one push, one page pulled, each answer checked
//! before anything is believed (status, protocol version, shape).

use chrono::{DateTime, Utc};
use loyalty_protocol::{
    check_version, ChangesPage, ErrorBody, EventBatch, LedgerBinding, LedgerState, PushResponse,
    LEDGER_CONFLICT, PROTOCOL_HEADER, PROTOCOL_VERSION, SEQ_CONFLICT, SEQ_GAP,
};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use std::path::Path;
use std::time::Duration;
use thiserror::Error;

/// Slow HQs are waited for this long per request before the attempt counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A pull that waits at HQ is given its wait and this much more: HQ answers at the end of the
/// wait at the latest, so past this the network or HQ has failed.
const WAIT_MARGIN: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum HqError {
    /// `hq.ca_file` cannot be read or holds no certificate.
    #[error("the CA file {path}: {why}")]
    CaFile { path: String, why: String },
    #[error("HQ is unreachable: {0}")]
    Unreachable(String),
    #[error("HQ refused the store token (401): check hq.token")]
    Unauthorized,
    /// The token is valid at HQ but for another store: `store.id` or `hq.token` is wrong.
    #[error("HQ refused this token for store `{store}` (403: {reason}): set store.id to the store HQ registered this token for, or ask HQ's admin for store `{store}`'s token")]
    Forbidden { store: String, reason: String },
    /// HQ (or whatever answers at `hq.url`) has no such path: the URL is wrong.
    #[error("{url} answered 404 Not Found: hq.url must be HQ's base URL, like https://hq.example.com, without the /v1/... path")]
    NotFound { url: String },
    #[error("HQ speaks another sync protocol: {0}")]
    Version(String),
    #[error("HQ rejected the request (HTTP {status}{}){}", code_suffix(.code), reason_suffix(.message))]
    Rejected {
        status: u16,
        code: String,
        message: String,
    },
    #[error("HQ failed (HTTP {status}){}", reason_suffix(.message))]
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

/// `: <reason>`, or nothing for an answer without one (a proxy's empty 404).
fn reason_suffix(reason: &str) -> String {
    match reason.trim() {
        "" => String::new(),
        r => format!(": {r}"),
    }
}

fn code_suffix(code: &str) -> String {
    if code.is_empty() {
        String::new()
    } else {
        format!(" {code}")
    }
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

/// The certificates of a PEM file of CA certificates (`hq.ca_file`); an error for a file that
/// cannot be read or holds none, so a typo is found by `check-config`, not at the first sync.
pub fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, HqError> {
    let fail = |why: String| HqError::CaFile {
        path: path.display().to_string(),
        why,
    };
    let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| fail(format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(fail("no PEM certificate in it".into()));
    }
    Ok(certs)
}

impl HqClient {
    /// A client of HQ at `base_url` for `store`; `ca_file` (PEM) adds a chain's own CA to the
    /// system's roots for an HQ serving HTTPS with a certificate it signed.
    pub fn new(
        base_url: &str,
        store: &str,
        token: &str,
        ca_file: Option<&Path>,
    ) -> Result<Self, HqError> {
        let mut builder = reqwest::Client::builder()
            // HQ's store list shows which version each store runs.
            .user_agent(concat!("loyalty-agent/", env!("CARGO_PKG_VERSION")))
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .gzip(true);
        if let Some(path) = ca_file {
            for cert in read_ca_file(path)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
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
        let answer: Timed<PushResponse> =
            tokio::task::spawn_blocking(move || raw.decode(Clock::Midpoint))
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
        let answer: Timed<ChangesPage> = self.send(request, Clock::Midpoint).await?;
        check_version(answer.body.protocol).map_err(|e| HqError::Version(e.to_string()))?;
        Ok(answer)
    }

    /// A pull that HQ holds until something changes after `cursor` or `wait` passes (whole
    /// seconds; HQ may cut it shorter), then answers the page, empty or not.
    pub async fn changes_waiting(
        &self,
        cursor: &str,
        limit: u32,
        wait: Duration,
    ) -> Result<Timed<ChangesPage>, HqError> {
        let url = format!("{}/v1/stores/{}/changes", self.base, self.store);
        let limit = limit.to_string();
        let wait_secs = wait.as_secs().to_string();
        let request = self
            .http
            .get(url)
            .query(&[
                ("cursor", cursor),
                ("limit", limit.as_str()),
                ("wait", wait_secs.as_str()),
            ])
            .timeout(wait + WAIT_MARGIN);
        let answer: Timed<ChangesPage> = self.send(request, Clock::Answered).await?;
        check_version(answer.body.protocol).map_err(|e| HqError::Version(e.to_string()))?;
        Ok(answer)
    }

    /// The ledger HQ takes this store's events from.
    pub async fn ledger(&self) -> Result<LedgerState, HqError> {
        let url = format!("{}/v1/stores/{}/ledger", self.base, self.store);
        let answer: Timed<LedgerState> = self.send(self.http.get(url), Clock::Midpoint).await?;
        check_version(answer.body.protocol).map_err(|e| HqError::Version(e.to_string()))?;
        Ok(answer.body)
    }

    /// Re-bases this store on `binding.ledger_id` (`loyalty-agent rebase`).
    pub async fn rebind_ledger(&self, binding: &LedgerBinding) -> Result<LedgerState, HqError> {
        let url = format!("{}/v1/stores/{}/ledger", self.base, self.store);
        let answer: Timed<LedgerState> = self
            .send(self.http.put(url).json(binding), Clock::Midpoint)
            .await?;
        check_version(answer.body.protocol).map_err(|e| HqError::Version(e.to_string()))?;
        Ok(answer.body)
    }

    async fn send<T: DeserializeOwned + HasHqTime>(
        &self,
        request: reqwest::RequestBuilder,
        clock: Clock,
    ) -> Result<Timed<T>, HqError> {
        self.send_raw(request).await?.decode(clock)
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
        let url = response.url().clone();
        // A body cut mid-way surfaces here, as an unreachable HQ: retried, never believed.
        let bytes = response
            .bytes()
            .await
            .map_err(|e| HqError::Unreachable(format!("reading the answer: {}", describe(&e))))?;
        let answered = Utc::now();
        if !status.is_success() {
            return Err(error_for(status, &bytes, url.as_str(), &self.store));
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
    fn decode<T: DeserializeOwned + HasHqTime>(self, clock: Clock) -> Result<Timed<T>, HqError> {
        let bytes = self.bytes;
        let body: T = serde_json::from_slice(&bytes).map_err(|e| {
            HqError::Garbage(format!(
                "{e} (first bytes: {:?})",
                String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
            ))
        })?;
        let skew_ms = DateTime::parse_from_rfc3339(body.hq_time()).ok().map(|hq| {
            let read_at = match clock {
                Clock::Midpoint => self.asked + (self.answered - self.asked) / 2,
                Clock::Answered => self.answered,
            };
            (hq.with_timezone(&Utc) - read_at).num_milliseconds()
        });
        Ok(Timed { body, skew_ms })
    }
}

/// When, on our clock, HQ read its clock for the answer's `hq_time`.
#[derive(Clone, Copy)]
enum Clock {
    /// Halfway through the round trip: right within half of it, whichever way it is lopsided.
    Midpoint,
    /// Just before the answer arrived: a waiting pull reads HQ's clock when it answers, not
    /// when it was asked, so only the way back (a network's latency) separates the two.
    Answered,
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

fn error_for(status: StatusCode, bytes: &[u8], url: &str, store: &str) -> HqError {
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
        StatusCode::FORBIDDEN => HqError::Forbidden {
            store: store.to_owned(),
            reason: message,
        },
        // HQ's own 404 for a path it does not serve, or a proxy's: either way hq.url is wrong.
        StatusCode::NOT_FOUND if code.is_empty() || code == "not_found" => HqError::NotFound {
            url: url.split('?').next().unwrap_or(url).to_owned(),
        },
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
