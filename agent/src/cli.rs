//! Command-line parsing of `loyalty-agent` (CONTRACT.md).

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "loyalty-agent", version, about = "Loyalty Edge store agent")]
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
        #[arg(long)]
        config: PathBuf,
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
        #[arg(long)]
        config: PathBuf,
        /// Why, in a few words (kept at HQ and in the ledger).
        #[arg(long)]
        reason: String,
        /// The ledger file is missing or empty and an empty one is meant.
        #[arg(long)]
        new_ledger: bool,
    },
    /// Write a consistent copy of the ledger, safe while the agent runs (SQLite's backup API).
    Backup {
        /// Find the ledger through this config's data_dir.
        #[arg(long, required_unless_present = "ledger", conflicts_with = "ledger")]
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
    /// Validate a configuration file; every problem as PATH:LINE:COL: message.
    CheckConfig {
        #[arg(long)]
        config: PathBuf,
    },
    /// Check ports, Bluetooth, the ledger, HQ and its token, clock skew and the outbox; one line
    /// per check; exit 0 when all pass, 1 otherwise.
    Doctor {
        #[arg(long)]
        config: PathBuf,
    },
    /// List serial ports with USB ids and which lane each would serve.
    Ports {
        #[arg(long)]
        config: Option<PathBuf>,
    },
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
        #[arg(long)]
        config: PathBuf,
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
        #[arg(long)]
        config: PathBuf,
        file: PathBuf,
    },
}
