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
    },
    /// The whole store on one machine with simulated devices: plays a short day.
    Demo,
    /// Validate a configuration file; every problem as PATH:LINE:COL: message.
    CheckConfig {
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
