//! Command-line parsing of `loyalty-agent` (CONTRACT.md). The completions and the man page
//! are generated from these definitions (`loyalty-agent completions`, `loyalty-agent man`).

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Where the package installs the configuration; every command reads it unless told otherwise.
pub const DEFAULT_CONFIG: &str = "/etc/loyalty-agent/agent.toml";
/// The environment variable naming another configuration file.
pub const CONFIG_ENV: &str = "LOYALTY_AGENT_CONFIG";

/// `-c/--config`, the same for every command that reads the configuration.
#[derive(Debug, Clone, Args)]
pub struct ConfigArg {
    /// The agent's configuration file (agent.toml).
    #[arg(short = 'c', long = "config", value_name = "FILE", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
    pub path: PathBuf,
}

/// `-c/--config` where the configuration is optional.
#[derive(Debug, Clone, Args)]
pub struct OptionalConfigArg {
    /// The agent's configuration file (agent.toml); by default /etc/loyalty-agent/agent.toml when it exists.
    #[arg(short = 'c', long = "config", value_name = "FILE", env = CONFIG_ENV)]
    pub path: Option<PathBuf>,
}

impl OptionalConfigArg {
    /// The file given, or the default one when it exists.
    pub fn resolve(&self) -> Option<PathBuf> {
        self.path.clone().or_else(|| {
            let default = PathBuf::from(DEFAULT_CONFIG);
            default.exists().then_some(default)
        })
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "loyalty-agent",
    version,
    about = "Loyalty Edge store agent",
    long_about = "Loyalty Edge store agent: reads loyalty cards and app QR codes from serial scanners, \
credits points in a local ledger with or without a network, detects members' phones, and syncs with HQ.",
    after_long_help = "Exit status: 0 success; 1 failure (doctor: a check failed); 64 a wrong command line; \
78 a configuration that is missing or invalid (the systemd unit does not restart on it).\n\n\
Environment: LOYALTY_AGENT_CONFIG names the configuration file when -c/--config is not given; \
RUST_LOG sets log levels; NO_COLOR turns colour off.\n\n\
Files: /etc/loyalty-agent/agent.toml, the configuration (a commented example of every key); \
/var/lib/loyalty-agent, the data dir of the package's unit (ledger.db and its backups).\n\n\
See /usr/share/doc/loyalty-agent/README.md."
)]
pub struct Cli {
    /// Log format: `text` for people, `json` for log collectors.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent until SIGTERM or SIGINT, then drain and stop.
    Run {
        #[command(flatten)]
        config: ConfigArg,
        /// Start an empty ledger although this data dir held one (its ledger.db is missing or
        /// empty). Receipts recorded before are forgotten; HQ refuses the new ledger's events
        /// until `loyalty-agent rebase`.
        #[arg(long)]
        new_ledger: bool,
    },
    /// Re-base a restored or replaced ledger: learn what HQ holds of this store, give the ledger
    /// a new identity continuing after it, and record that here and at HQ. Run it with the agent
    /// stopped, after restoring a backup (README, "Restoring a backup").
    Rebase {
        #[command(flatten)]
        config: ConfigArg,
        /// Why, in a few words (kept at HQ and in the ledger).
        #[arg(long)]
        reason: String,
        /// The ledger file is missing or empty and an empty one is meant.
        #[arg(long)]
        new_ledger: bool,
    },
    /// Write a consistent copy of the ledger, safe while the agent runs (SQLite's backup API).
    Backup {
        /// Find the ledger through this config's data_dir (default /etc/loyalty-agent/agent.toml).
        #[arg(short, long, value_name = "FILE", env = CONFIG_ENV, conflicts_with = "ledger")]
        config: Option<PathBuf>,
        /// Or name the ledger file itself.
        #[arg(long)]
        ledger: Option<PathBuf>,
        /// Where to write it (must not exist); default `<data_dir>/backups/ledger-<UTC time>.db`.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The whole store on one machine with simulated devices: plays a short day.
    #[cfg(feature = "demo")]
    Demo,
    /// Validate a configuration file; every problem as PATH:LINE:COL: message, exit 78 when
    /// there is one. Warnings (placeholders left from the example) do not fail it unless --strict.
    CheckConfig {
        #[command(flatten)]
        config: ConfigArg,
        /// Warnings fail too (exit 78): the package enables the service only for a config that
        /// passes this.
        #[arg(long)]
        strict: bool,
    },
    /// Check ports, Bluetooth, the ledger, HQ and its token, clock skew and the outbox; one line
    /// per check; exit 0 when all pass, 1 otherwise.
    Doctor {
        #[command(flatten)]
        config: ConfigArg,
        /// Print the checks as one JSON object instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// List serial ports (with the symlinks that name them), their USB ids, which lane or
    /// sensor each serves, and the configured ports that are missing.
    Ports {
        #[command(flatten)]
        config: OptionalConfigArg,
        /// Print one JSON object instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script for loyalty-agent (bash: save it as
    /// /usr/share/bash-completion/completions/loyalty-agent).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), generated from these definitions.
    Man,
    /// Print the local API's OpenAPI document (as served at /openapi.json).
    Openapi,
    /// Members and cards, for stores that run without HQ.
    Members {
        #[command(subcommand)]
        action: MembersCommand,
    },
    /// Phone tokens and sighting traces.
    Proximity {
        #[command(subcommand)]
        action: ProximityCommand,
    },
    /// The reference member client: plays a member's phone against HQ's member API.
    Member {
        #[command(subcommand)]
        action: MemberCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Make a new app key; prints its public half, to register as the member's qr_public_key.
    Init {
        #[arg(long)]
        key_file: PathBuf,
    },
    /// Print the checkout QR token to show at a lane now.
    Qr {
        #[arg(long)]
        key_file: PathBuf,
        #[arg(long)]
        member: String,
    },
    /// Print what the phone must advertise now (as `proximity phone`).
    Advertise {
        /// The member's proximity key, 32 hex digits.
        #[arg(long)]
        proximity_key: String,
        #[arg(long)]
        member: Option<String>,
        #[arg(long, default_value_t = 600)]
        interval_secs: u64,
    },
    /// Print the member's profile and gifts from HQ.
    Show {
        /// HQ's base URL, e.g. http://127.0.0.1:7500.
        #[arg(long)]
        hq: String,
        #[arg(long)]
        member: String,
        #[arg(long)]
        key_file: PathBuf,
    },
    /// Follow the member's live feed, one line per event, until SIGINT; reconnects by itself.
    Watch {
        #[arg(long)]
        hq: String,
        #[arg(long)]
        member: String,
        #[arg(long)]
        key_file: PathBuf,
        /// Print each item as JSON instead of a sentence.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProximityCommand {
    /// Print what a member's app must advertise now (rotating id, manufacturer data, payload).
    Phone {
        /// The member's proximity key, 32 hex digits.
        #[arg(long)]
        key: String,
        #[arg(long)]
        member: Option<String>,
        /// Unix seconds to compute for (default: now).
        #[arg(long)]
        at: Option<u64>,
        #[arg(long, default_value_t = 600)]
        interval_secs: u64,
        /// The phone's tx power at 1 m, dBm.
        #[arg(long, default_value_t = -59, allow_hyphen_values = true)]
        tx_power: i8,
    },
    /// Record the sightings of the configured sensors as a JSON-lines trace.
    Record {
        #[command(flatten)]
        config: ConfigArg,
        /// Output file (JSON lines, the `proximity.replay` format).
        #[arg(long)]
        out: PathBuf,
        /// Stop after this many seconds (default: until SIGINT/SIGTERM).
        #[arg(long)]
        seconds: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum MembersCommand {
    /// Import members (JSON array or CSV with a header) into the ledger.
    Import {
        #[command(flatten)]
        config: ConfigArg,
        /// The member file: a JSON array, or CSV with a header.
        file: PathBuf,
    },
}
