//! hq.toml and command-line settings: parsed raw, then validated into [`Settings`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::allowance::AllowancePolicy;
use crate::store::plausibility::Plausibility;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7500";
pub const DEFAULT_MAX_BATCH_EVENTS: usize = 5_000;
/// Room for a full batch of large events (5,000 events of ~1 KiB each, and then some).
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Longest a store's pull waits for a change (`wait=` is capped to it): under the 60 s idle
/// timeouts common to proxies and load balancers, so a waiting pull is never cut by one.
pub const DEFAULT_MAX_PULL_WAIT_SECS: u64 = 30;

/// The environment variable `loyalty-hq serve` reads the admin token from.
pub const ADMIN_TOKEN_ENV: &str = "LOYALTY_HQ_ADMIN_TOKEN";

/// Where the admin token may come from besides hq.toml, strongest first.
#[derive(Debug, Default, Clone)]
pub struct AdminTokenSource {
    /// `--admin-token-file`.
    pub file_flag: Option<PathBuf>,
    /// `--admin-token` (visible in `ps`: kept for old scripts, warned about).
    pub flag: Option<String>,
    /// [`ADMIN_TOKEN_ENV`].
    pub env: Option<String>,
}

/// Where HQ keeps its data: `db` in hq.toml or `--db`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A file path (optionally written `sqlite:PATH`): the embedded default, one HQ process.
    Sqlite(PathBuf),
    /// A `postgres://` (or `postgresql://`) URL: a database several HQ processes may share.
    Postgres(String),
}

impl Database {
    pub fn parse(db: &Path) -> Database {
        let text = db.to_string_lossy();
        if crate::store::postgres::is_url(&text) {
            return Database::Postgres(text.into_owned());
        }
        match text
            .strip_prefix("sqlite://")
            .or_else(|| text.strip_prefix("sqlite:"))
        {
            Some(path) => Database::Sqlite(PathBuf::from(path)),
            None => Database::Sqlite(db.to_owned()),
        }
    }
}

impl std::fmt::Display for Database {
    /// For logs: a URL's password is left out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            Database::Postgres(url) => match (url.find("://"), url.rfind('@')) {
                (Some(scheme), Some(at)) if at > scheme => {
                    let user = &url[scheme + 3..at];
                    let user = user.split(':').next().unwrap_or("");
                    write!(f, "{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
                }
                _ => write!(f, "{url}"),
            },
        }
    }
}

/// hq.toml as written. Unknown keys are an error: a misspelt key must not become a default.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<String>,
    pub db: Option<PathBuf>,
    pub admin_token: Option<String>,
    pub admin_token_file: Option<PathBuf>,
    pub max_batch_events: Option<usize>,
    pub max_body_bytes: Option<usize>,
    pub allowance: Option<AllowancePolicy>,
    pub plausibility: Option<Plausibility>,
    /// Connections held at once (live member feeds count); default 4,096.
    pub max_connections: Option<usize>,
    /// Longest `wait=` of a pull, in seconds; default 30, 0 answers every pull at once.
    pub max_pull_wait_secs: Option<u64>,
    pub webhooks: Option<RawWebhooks>,
    pub app: Option<RawApp>,
    pub tls: Option<RawTls>,
}

/// `[tls]`: HQ serves HTTPS itself.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM certificate chain, leaf first.
    pub cert: Option<PathBuf>,
    /// PEM private key of the leaf.
    pub key: Option<PathBuf>,
}

/// `[webhooks]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhooks {
    pub dead_after_secs: Option<u64>,
    pub retry_base_ms: Option<u64>,
    pub retry_cap_secs: Option<u64>,
    pub timeout_secs: Option<u64>,
    pub concurrency: Option<usize>,
}

/// `[app]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApp {
    pub signature_max_age_secs: Option<i64>,
    pub enrolment_ttl_secs: Option<i64>,
}

/// How webhooks are delivered.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// A message retried this long is a dead letter.
    pub dead_after: Duration,
    pub retry_base: Duration,
    pub retry_cap: Duration,
    /// Per attempt, connection to answer.
    pub timeout: Duration,
    /// Messages in flight at once (never two of one member and endpoint).
    pub concurrency: usize,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            dead_after: Duration::from_secs(24 * 3600),
            retry_base: Duration::from_secs(1),
            retry_cap: Duration::from_secs(3600),
            timeout: Duration::from_secs(10),
            concurrency: 32,
        }
    }
}

/// The member app's credentials.
#[derive(Debug, Clone)]
pub struct AppSettings {
    /// An app signature is accepted this far from HQ's clock, either way.
    pub signature_max_age_secs: i64,
    /// An enrolment link works this long, once.
    pub enrolment_ttl_secs: i64,
}

impl Default for AppSettings {
    fn default() -> Self {
        AppSettings {
            signature_max_age_secs: 60,
            enrolment_ttl_secs: 900,
        }
    }
}

/// Settings HQ runs with; every field already checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub db: Database,
    pub admin_token: String,
    pub max_batch_events: usize,
    pub max_body_bytes: usize,
    pub allowance: AllowancePolicy,
    pub plausibility: Plausibility,
    pub max_connections: usize,
    /// How long a pull may wait for a change.
    pub max_pull_wait: Duration,
    pub webhooks: WebhookSettings,
    pub app: AppSettings,
    /// `Some`: HQ serves HTTPS with it, not HTTP.
    pub tls: Option<Arc<loyalty_http_edge::rustls::ServerConfig>>,
}

/// Every problem found, one per line.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct ConfigError(pub Vec<String>);

impl RawConfig {
    /// Reads hq.toml; relative paths in it are made relative to its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(vec![format!("{}: {e}", path.display())]))?;
        let mut raw: RawConfig = toml::from_str(&text)
            .map_err(|e| ConfigError(vec![format!("{}: {e}", path.display())]))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let tls = raw.tls.as_mut();
        let (cert, key) = match tls {
            Some(t) => (t.cert.as_mut(), t.key.as_mut()),
            None => (None, None),
        };
        for p in [raw.admin_token_file.as_mut(), cert, key]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
        // A database URL is not a path; `sqlite:PATH` is.
        if let Some(db) = raw.db.as_mut() {
            if let Database::Sqlite(path) = Database::parse(db) {
                if path.is_relative() {
                    *db = dir.join(path);
                }
            }
        }
        Ok(raw)
    }

    /// The flags, then the environment, override hq.toml's `admin_token` and
    /// `admin_token_file`; the first one given wins.
    pub fn admin_token_source(&mut self, source: AdminTokenSource) {
        let env = source.env.filter(|t| !t.trim().is_empty());
        if let Some(file) = source.file_flag {
            self.admin_token = None;
            self.admin_token_file = Some(file);
        } else if let Some(token) = source.flag.or(env) {
            self.admin_token = Some(token.trim().to_owned());
            self.admin_token_file = None;
        }
    }

    /// Checks every key and reports all problems at once.
    pub fn validate(self) -> Result<Settings, ConfigError> {
        let mut problems = Vec::new();
        let listen_text = self.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = listen_text.parse::<SocketAddr>().map_err(|_| {
            problems.push(format!(
                "listen: {listen_text:?} is not an address and port like \"127.0.0.1:7500\""
            ))
        });
        let db = self.db.unwrap_or_default();
        if db.as_os_str().is_empty() {
            problems.push("db: required (path of the SQLite database, created if missing, or a postgres:// URL)".into());
        }
        let db = Database::parse(&db);
        let admin_token = match (self.admin_token, self.admin_token_file) {
            (Some(t), None) => Some(t),
            (None, Some(f)) => match std::fs::read_to_string(&f) {
                Ok(t) => Some(t.trim().to_owned()),
                Err(e) => {
                    problems.push(format!("admin_token_file: {}: {e}", f.display()));
                    None
                }
            },
            (Some(_), Some(_)) => {
                problems.push("admin_token and admin_token_file: give one, not both".into());
                None
            }
            (None, None) => {
                problems.push(format!(
                    "admin_token or admin_token_file: required (or --admin-token-file PATH, or {ADMIN_TOKEN_ENV} in the environment)"
                ));
                None
            }
        };
        if admin_token.as_deref().is_some_and(|t| t.len() < 16) {
            problems.push("admin_token: at least 16 characters".into());
        }
        let max_batch_events = self.max_batch_events.unwrap_or(DEFAULT_MAX_BATCH_EVENTS);
        if !(1..=100_000).contains(&max_batch_events) {
            problems.push(format!(
                "max_batch_events: {max_batch_events} is outside 1..=100000"
            ));
        }
        let max_body_bytes = self.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if max_body_bytes < 1024 {
            problems.push(format!("max_body_bytes: {max_body_bytes} is under 1024"));
        }
        let allowance = self.allowance.unwrap_or_default();
        if allowance.cap < 0 {
            problems.push(format!("allowance.cap: {} is negative", allowance.cap));
        }
        let plausibility = self.plausibility.unwrap_or_default();
        problems.extend(plausibility.problems());
        let max_connections = self.max_connections.unwrap_or(4096);
        if !(16..=1_000_000).contains(&max_connections) {
            problems.push(format!(
                "max_connections: {max_connections} is outside 16..=1000000"
            ));
        }
        let max_pull_wait_secs = self
            .max_pull_wait_secs
            .unwrap_or(DEFAULT_MAX_PULL_WAIT_SECS);
        if max_pull_wait_secs > 300 {
            problems.push(format!(
                "max_pull_wait_secs: {max_pull_wait_secs} is outside 0..=300"
            ));
        }
        let mut webhooks = WebhookSettings::default();
        let w = self.webhooks.unwrap_or_default();
        let mut secs = |key: &str, v: Option<u64>, min: u64, into: &mut Duration, ms: bool| {
            if let Some(v) = v {
                if v < min {
                    problems.push(format!("webhooks.{key}: {v} is under {min}"));
                }
                *into = if ms {
                    Duration::from_millis(v)
                } else {
                    Duration::from_secs(v)
                };
            }
        };
        secs(
            "dead_after_secs",
            w.dead_after_secs,
            1,
            &mut webhooks.dead_after,
            false,
        );
        secs(
            "retry_base_ms",
            w.retry_base_ms,
            1,
            &mut webhooks.retry_base,
            true,
        );
        secs(
            "retry_cap_secs",
            w.retry_cap_secs,
            1,
            &mut webhooks.retry_cap,
            false,
        );
        secs(
            "timeout_secs",
            w.timeout_secs,
            1,
            &mut webhooks.timeout,
            false,
        );
        if let Some(c) = w.concurrency {
            if !(1..=1024).contains(&c) {
                problems.push(format!("webhooks.concurrency: {c} is outside 1..=1024"));
            }
            webhooks.concurrency = c;
        }
        let mut app = AppSettings::default();
        let a = self.app.unwrap_or_default();
        if let Some(v) = a.signature_max_age_secs {
            if !(5..=3600).contains(&v) {
                problems.push(format!(
                    "app.signature_max_age_secs: {v} is outside 5..=3600"
                ));
            }
            app.signature_max_age_secs = v;
        }
        if let Some(v) = a.enrolment_ttl_secs {
            if !(60..=30 * 86400).contains(&v) {
                problems.push(format!(
                    "app.enrolment_ttl_secs: {v} is outside 60..=2592000"
                ));
            }
            app.enrolment_ttl_secs = v;
        }
        let tls = match self.tls {
            None => None,
            Some(RawTls {
                cert: Some(cert),
                key: Some(key),
            }) => match crate::tls::load(&cert, &key) {
                Ok(config) => Some(config),
                Err(problem) => {
                    problems.push(problem);
                    None
                }
            },
            Some(_) => {
                problems
                    .push("tls: give both `cert` and `key` (PEM files), or leave out [tls]".into());
                None
            }
        };
        match (listen, admin_token) {
            (Ok(listen), Some(admin_token)) if problems.is_empty() => Ok(Settings {
                listen,
                db,
                admin_token,
                max_batch_events,
                max_body_bytes,
                allowance,
                plausibility,
                max_connections,
                max_pull_wait: Duration::from_secs(max_pull_wait_secs),
                webhooks,
                app,
                tls,
            }),
            _ => Err(ConfigError(problems)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_an_error() {
        let err = toml::from_str::<RawConfig>("listn = \"127.0.0.1:1\"").unwrap_err();
        assert!(err.to_string().contains("unknown field `listn`"), "{err}");
        let err = toml::from_str::<RawConfig>("[allowance]\ncapp = 5").unwrap_err();
        assert!(err.to_string().contains("unknown field `capp`"), "{err}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let raw = RawConfig {
            listen: Some("nowhere".into()),
            max_batch_events: Some(0),
            ..RawConfig::default()
        };
        let err = raw.validate().unwrap_err();
        let text = err.to_string();
        for key in ["listen:", "db:", "admin_token", "max_batch_events:"] {
            assert!(text.contains(key), "{key} missing from {text}");
        }
    }

    #[test]
    fn the_admin_token_comes_from_the_flags_then_the_environment_then_hq_toml() {
        let toml = || RawConfig {
            admin_token: Some("from-hq-toml-0123456789".into()),
            ..RawConfig::default()
        };
        let mut raw = toml();
        raw.admin_token_source(AdminTokenSource::default());
        assert_eq!(raw.admin_token.as_deref(), Some("from-hq-toml-0123456789"));

        let mut raw = toml();
        raw.admin_token_source(AdminTokenSource {
            env: Some("from-the-environment-01\n".into()),
            ..AdminTokenSource::default()
        });
        assert_eq!(raw.admin_token.as_deref(), Some("from-the-environment-01"));

        let mut raw = toml();
        raw.admin_token_source(AdminTokenSource {
            flag: Some("from-the-flag-0123456789".into()),
            env: Some("from-the-environment-01".into()),
            ..AdminTokenSource::default()
        });
        assert_eq!(raw.admin_token.as_deref(), Some("from-the-flag-0123456789"));

        let mut raw = toml();
        raw.admin_token_source(AdminTokenSource {
            file_flag: Some("/run/secrets/hq-admin".into()),
            env: Some("from-the-environment-01".into()),
            ..AdminTokenSource::default()
        });
        assert_eq!(raw.admin_token, None);
        assert_eq!(
            raw.admin_token_file,
            Some(PathBuf::from("/run/secrets/hq-admin"))
        );

        // An empty variable is as good as none.
        let mut raw = toml();
        raw.admin_token_source(AdminTokenSource {
            env: Some("  ".into()),
            ..AdminTokenSource::default()
        });
        assert_eq!(raw.admin_token.as_deref(), Some("from-hq-toml-0123456789"));
    }

    #[test]
    fn tls_needs_a_readable_certificate_and_key() {
        let raw = |cert: Option<&str>, key: Option<&str>| RawConfig {
            db: Some("hq.db".into()),
            admin_token: Some("admin-token-0123456789".into()),
            tls: Some(RawTls {
                cert: cert.map(PathBuf::from),
                key: key.map(PathBuf::from),
            }),
            ..RawConfig::default()
        };
        let text = raw(Some("/nonexistent/cert.pem"), None)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(text.contains("tls: give both `cert` and `key`"), "{text}");
        let text = raw(Some("/nonexistent/cert.pem"), Some("/nonexistent/key.pem"))
            .validate()
            .unwrap_err()
            .to_string();
        assert!(text.contains("tls.cert: /nonexistent/cert.pem:"), "{text}");
        let err = toml::from_str::<RawConfig>("[tls]\ncertificate = \"x\"").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `certificate`"),
            "{err}"
        );
    }

    #[test]
    fn the_database_is_a_path_or_a_postgres_url() {
        assert_eq!(
            Database::parse(Path::new("hq.db")),
            Database::Sqlite("hq.db".into())
        );
        assert_eq!(
            Database::parse(Path::new("sqlite:/var/lib/hq.db")),
            Database::Sqlite("/var/lib/hq.db".into())
        );
        let pg = Database::parse(Path::new("postgres://hq:s3cret@db.example:5432/loyalty"));
        assert_eq!(
            pg,
            Database::Postgres("postgres://hq:s3cret@db.example:5432/loyalty".into())
        );
        assert_eq!(pg.to_string(), "postgres://hq@db.example:5432/loyalty");
        let dir = tempfile::tempdir().unwrap();
        let toml = dir.path().join("hq.toml");
        std::fs::write(
            &toml,
            "db = \"postgresql://hq@db/loyalty\"\nadmin_token = \"admin-token-0123456789\"\n",
        )
        .unwrap();
        let settings = RawConfig::load(&toml).unwrap().validate().unwrap();
        assert_eq!(
            settings.db,
            Database::Postgres("postgresql://hq@db/loyalty".into())
        );
    }

    #[test]
    fn the_example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/hq.toml");
        let settings = RawConfig::load(&path).unwrap().validate().unwrap();
        assert_eq!(settings.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(settings.max_batch_events, DEFAULT_MAX_BATCH_EVENTS);
    }
}
