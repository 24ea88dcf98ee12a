//! `agent.toml`: parsed raw with serde, then validated into a [`Config`] that cannot be wrong.
//!
//! Every problem is collected, never only the first: syntax errors, every unknown key (unknown
//! keys are errors, a typo must not silently fall back to a default), and every invalid value,
//! each reported as `PATH:LINE:COL: message` (see [`Problem`]), a misspelt key with the key meant.
//! Values of the wrong type are reported together with every other problem, each naming its
//! key (`type_errors`).

mod locate;
pub mod placeholders;
mod raw;
mod suggest;
mod type_errors;
mod validate;

use crate::engine::Rules;
use crate::scan::ScannerSettings;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub store_id: String,
    pub data_dir: PathBuf,
    pub api_listen: SocketAddr,
    pub hq: Option<HqConfig>,
    pub lanes: Vec<LaneConfig>,
    pub checkout: CheckoutSettings,
    pub rules: Rules,
    /// Zone-sensor nodes on serial lines.
    pub sensors: Vec<SensorConfig>,
    /// Zones, sensors and where sightings come from; None when the store tracks no presence.
    pub proximity: Option<ProximityConfig>,
}

pub use crate::proximity::settings::{BluetoothSensor, ProximityConfig, SensorConfig};

#[derive(Debug, Clone)]
pub struct HqConfig {
    pub url: String,
    pub token: String,
    /// Without a successful sync round for this long the store counts as offline.
    pub offline_after: Duration,
    /// Events per push.
    pub push_batch: usize,
    /// How long an idle pull waits at HQ for a change; zero pulls once a second.
    pub pull_wait: Duration,
    /// A chain's own CA (PEM), trusted for HQ's certificate beside the system's roots.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct LaneConfig {
    pub id: String,
    /// None: the POS reads cards itself and sends them with the sale.
    pub scanner: Option<ScannerSettings>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutSettings {
    /// How long a scan keeps a member on a lane without a sale.
    pub session_timeout: Duration,
    /// How far an app QR's issue time may be from now for it to allow spending.
    pub qr_max_age: Duration,
}

impl Default for CheckoutSettings {
    fn default() -> Self {
        CheckoutSettings {
            session_timeout: Duration::from_secs(120),
            qr_max_age: Duration::from_secs(120),
        }
    }
}

/// One problem in a configuration file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid { problems: Vec<Problem> },
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Validates `text`, naming `path` in problems and resolving relative paths against its
    /// directory.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        validate::parse(text, path).map_err(|problems| ConfigError::Invalid { problems })
    }

    pub fn ledger_path(&self) -> PathBuf {
        self.data_dir.join("ledger.db")
    }
}
