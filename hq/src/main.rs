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
    /// Send a member file (NDJSON, or CSV for a `.csv` name) to a running HQ's bulk import and
    /// print its summary; exits 1 when a row was refused.
    ImportMembers {
        /// The file: one member a line (NDJSON) or a CSV with a header row.
        file: PathBuf,
        /// HQ's base URL.
        #[arg(long, default_value = "http://127.0.0.1:7500")]
        url: String,
        /// File holding the admin token (or set LOYALTY_HQ_ADMIN_TOKEN).
        #[arg(long)]
        admin_token_file: Option<PathBuf>,
        /// The file's format when its name does not say (`.csv` is CSV, anything else NDJSON).
        #[arg(long, value_parser = ["ndjson", "csv"])]
        format: Option<String>,
    },
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
        Command::ImportMembers {
            file,
            url,
            admin_token_file,
            format,
        } => return import_members(&file, &url, admin_token_file, format.as_deref()).await,
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

async fn import_members(
    file: &std::path::Path,
    url: &str,
    admin_token_file: Option<PathBuf>,
    format: Option<&str>,
) -> anyhow::Result<()> {
    let token = match admin_token_file {
        Some(path) => std::fs::read_to_string(&path)
            .with_context(|| format!("reading the admin token from {}", path.display()))?
            .trim()
            .to_owned(),
        None => std::env::var(ADMIN_TOKEN_ENV).map_err(|_| {
            anyhow::anyhow!(
                "the admin token: give --admin-token-file PATH or set {ADMIN_TOKEN_ENV}"
            )
        })?,
    };
    let content_type = match format {
        Some("csv") => "text/csv",
        Some(_) => "application/x-ndjson",
        None => loyalty_hq::import_client::content_type_for(file),
    };
    let started = std::time::Instant::now();
    let summary = loyalty_hq::import_client::send_file(url, &token, file, content_type).await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{} members saved, {} rows refused, in {secs:.1} s",
        summary.accepted, summary.refused
    );
    for (reason, n) in &summary.refused_by_reason {
        println!("  {reason}: {n}");
    }
    for r in &summary.refusals {
        println!(
            "  line {}: {}{}: {}",
            r.line,
            r.error,
            r.member_id
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default(),
            r.message
        );
    }
    if (summary.refusals.len() as u64) < summary.refused {
        println!(
            "  ... and {} more refusals",
            summary.refused - summary.refusals.len() as u64
        );
    }
    if summary.refused > 0 {
        anyhow::bail!(
            "{} rows were refused; fix them and import those rows again",
            summary.refused
        );
    }
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
