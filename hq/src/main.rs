//! `loyalty-hq serve`: parse arguments, set up logs and signals, run [`loyalty_hq::serve`].

// Input and I/O never panic the process: an unwrap outside tests is an error (tests may).
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use loyalty_hq::config::{AdminTokenSource, RawConfig, ADMIN_TOKEN_ENV};

#[derive(Parser)]
#[command(name = "loyalty-hq", version, about = "Loyalty Edge reference HQ")]
struct Cli {
    /// Log format: `text` for people, `json` for log collectors.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the admin and sync API until SIGINT or SIGTERM.
    Serve {
        /// hq.toml; the flags below override its keys.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The database: a SQLite file (created if missing; `sqlite:PATH` too), or a
        /// `postgres://` URL, which several HQ processes may share.
        #[arg(long)]
        db: Option<PathBuf>,
        /// Address and port, default 127.0.0.1:7500.
        #[arg(long)]
        listen: Option<String>,
        /// File holding the admin API's bearer token (surrounding whitespace ignored). Or set
        /// LOYALTY_HQ_ADMIN_TOKEN, or hq.toml's admin_token / admin_token_file.
        #[arg(long, conflicts_with = "admin_token")]
        admin_token_file: Option<PathBuf>,
        /// The admin token itself: deprecated, anyone who can list processes (`ps`) reads it.
        #[arg(long)]
        admin_token: Option<String>,
    },
    /// Print HQ's OpenAPI document (as served at /openapi.json).
    Openapi,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Held to the end of main: dropping it writes out the queued log lines.
    let _log = loyalty_logging::init(loyalty_logging::Format::parse(&cli.log_format), "info");
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loyalty-hq: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let (config, db, listen, admin_token_file, admin_token) = match cli.command {
        Command::Serve {
            config,
            db,
            listen,
            admin_token_file,
            admin_token,
        } => (config, db, listen, admin_token_file, admin_token),
        Command::Openapi => {
            println!(
                "{}",
                loyalty_hq::http::openapi::document()
                    .to_pretty_json()
                    .context("writing the OpenAPI document")?
            );
            return Ok(());
        }
    };
    let mut raw = match &config {
        Some(path) => RawConfig::load(path)?,
        None => RawConfig::default(),
    };
    if db.is_some() {
        raw.db = db;
    }
    if listen.is_some() {
        raw.listen = listen;
    }
    if admin_token.is_some() {
        tracing::warn!("--admin-token shows the admin token to anyone who can list processes (ps); use --admin-token-file or LOYALTY_HQ_ADMIN_TOKEN.");
    }
    raw.admin_token_source(AdminTokenSource {
        file_flag: admin_token_file,
        flag: admin_token,
        env: std::env::var(ADMIN_TOKEN_ENV).ok(),
    });
    let settings = raw.validate()?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("listening on {}", settings.listen))?;
    loyalty_hq::serve(settings, listener, shutdown_signal()).await?;
    Ok(())
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "No SIGTERM handler; stop with SIGINT.");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("Shutting down.");
}
