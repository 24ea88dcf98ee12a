//! `loyalty-agent`: parses the command line, sets up logging and signals, calls the library.

// Input and I/O never panic the process: an unwrap outside tests is an error (tests may).
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

use anyhow::Context;
use clap::Parser;
use loyalty_agent::cli::{Cli, Command, MemberCommand, MembersCommand, ProximityCommand};
use loyalty_agent::config::{Config, ConfigError};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// sysexits.h: the command line was wrong (clap's own errors).
const EXIT_USAGE: u8 = 64;
/// sysexits.h: the configuration is missing or invalid. The unit's RestartPreventExitStatus=78
/// keeps systemd from restarting an agent whose config will not get better by itself.
const EXIT_CONFIG: u8 = 78;

/// The configuration could not be read or is invalid: exit [`EXIT_CONFIG`].
#[derive(Debug)]
struct BadConfig(String);

impl std::fmt::Display for BadConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadConfig {}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                // --help and --version.
                ExitCode::SUCCESS
            };
        }
    };
    // The demo's story goes to stdout; only its warnings belong on the terminal beside it, and
    // HQ being down is part of the story (the demo prints it), not a warning to repeat.
    #[cfg(feature = "demo")]
    let is_demo = matches!(cli.command, Command::Demo);
    #[cfg(not(feature = "demo"))]
    let is_demo = false;
    let default_level = if is_demo {
        "warn,loyalty_agent::sync=error"
    } else {
        "info"
    };
    // Held to the end of main: dropping it writes out the queued log lines.
    let _log = loyalty_logging::init(
        loyalty_logging::Format::parse(&cli.log_format),
        default_level,
    );
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loyalty-agent: {e:#}");
            if e.downcast_ref::<BadConfig>().is_some() {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::CheckConfig { config, strict } => {
            let path = config.path;
            let warnings = std::fs::read_to_string(&path)
                .map(|text| loyalty_agent::config::placeholders::warnings(&text, &path))
                .unwrap_or_default();
            Ok(match Config::load(&path) {
                Ok(loaded) => {
                    for w in &warnings {
                        eprintln!("{w}");
                    }
                    if let loyalty_agent::engine::StoreTimeZone::Fixed(_) = loaded.rules.time_zone {
                        // Valid, so not an error; but check-config is where an operator looks.
                        eprintln!(
                            "{}: note: store.utc_offset is deprecated: a fixed offset is an hour off \
                             whenever the clocks change; set store.time_zone (e.g. \"Europe/Amsterdam\")",
                            path.display()
                        );
                    }
                    if strict && !warnings.is_empty() {
                        ExitCode::from(EXIT_CONFIG)
                    } else {
                        println!("{}: ok", path.display());
                        ExitCode::SUCCESS
                    }
                }
                Err(ConfigError::Invalid { mut problems }) => {
                    problems.extend(warnings);
                    problems.sort_by_key(|p| (p.line, p.column));
                    for p in &problems {
                        eprintln!("{p}");
                    }
                    ExitCode::from(EXIT_CONFIG)
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(EXIT_CONFIG)
                }
            })
        }
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "loyalty-agent", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Openapi => {
            println!(
                "{}",
                loyalty_agent::api::openapi::document()
                    .to_pretty_json()
                    .context("writing the OpenAPI document")?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            loyalty_agent::manpage::render(&mut std::io::stdout())
                .context("writing the man page")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { config, new_ledger } => {
            let config = load(&config.path)?;
            // Before the port: a second agent on this data dir says so instead of "address in use".
            let lock = loyalty_agent::lock::DataDirLock::acquire(&config.data_dir)?;
            let options = loyalty_agent::ledger::OpenOptions {
                allow_new_ledger: new_ledger,
            };
            runtime()?.block_on(async {
                let listener = tokio::net::TcpListener::bind(config.api_listen)
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!(loyalty_agent::ops::explain_listen(config.api_listen, &e))
                    })?;
                let shutdown = CancellationToken::new();
                tokio::spawn(stop_on_signal(shutdown.clone()));
                loyalty_agent::app::run_with(config, listener, shutdown, options).await
            })?;
            drop(lock);
            Ok(ExitCode::SUCCESS)
        }
        Command::Rebase {
            config,
            reason,
            new_ledger,
        } => {
            let config = load(&config.path)?;
            let options = loyalty_agent::ledger::OpenOptions {
                allow_new_ledger: new_ledger,
            };
            let report =
                runtime()?.block_on(loyalty_agent::rebase::rebase(&config, &reason, options))?;
            println!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup {
            config,
            ledger,
            out,
        } => {
            let written = loyalty_agent::ops::backup(config.as_deref(), ledger.as_deref(), out)?;
            println!("{}", written.display());
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "demo")]
        Command::Demo => {
            let mut out = std::io::stdout();
            runtime()?.block_on(loyalty_agent::demo::run(&mut out))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor { config, json } => {
            let path = config.path;
            let checks = match Config::load(&path) {
                Ok(config) => {
                    let mut checks = vec![loyalty_agent::doctor::Check::passed(
                        "config",
                        format!("{} is valid", path.display()),
                    )];
                    checks.extend(runtime()?.block_on(loyalty_agent::doctor::checks(&config)));
                    checks
                }
                Err(e) => vec![loyalty_agent::doctor::Check::failed(
                    "config",
                    e.to_string(),
                )],
            };
            let mut out = std::io::stdout();
            let all = if json {
                loyalty_agent::doctor::write_json(&checks, &mut out)?
            } else {
                loyalty_agent::doctor::write_lines(&checks, &mut out)?
            };
            Ok(if all {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Ports { config, json } => {
            let config = config.resolve().map(|c| load(&c)).transpose()?;
            loyalty_agent::ops::print_ports(config.as_ref(), json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Members {
            action: MembersCommand::Import { config, file },
        } => {
            let config = load(&config.path)?;
            let summary =
                runtime()?.block_on(loyalty_agent::ops::import_members(&config, &file))?;
            println!("{summary}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Member { action } => member(action),
        Command::Proximity {
            action:
                ProximityCommand::Phone {
                    key,
                    member,
                    at,
                    interval_secs,
                    tx_power,
                },
        } => {
            let key: loyalty_agent::proximity::ProximityKey =
                key.parse().map_err(|e| anyhow::anyhow!("--key: {e}"))?;
            let now =
                at.unwrap_or_else(|| u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0));
            if interval_secs == 0 {
                anyhow::bail!("--interval-secs must be more than 0");
            }
            let advert = loyalty_agent::proximity::phone::advert_at(
                &key,
                member,
                now,
                interval_secs,
                tx_power,
            );
            println!("{}", serde_json::to_string_pretty(&advert)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Proximity {
            action:
                ProximityCommand::Record {
                    config,
                    out,
                    seconds,
                },
        } => {
            let config = load(&config.path)?;
            let shutdown = CancellationToken::new();
            let written = runtime()?.block_on(async {
                tokio::spawn(stop_on_signal(shutdown.clone()));
                if let Some(s) = seconds {
                    let stop = shutdown.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(std::time::Duration::from_secs(s)).await;
                        stop.cancel();
                    });
                }
                loyalty_agent::proximity::record::record(&config.sensors, &out, shutdown).await
            })?;
            eprintln!("{written} sightings written to {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn member(action: MemberCommand) -> anyhow::Result<ExitCode> {
    use loyalty_agent::member::{feed, key, MemberClient, MemberError};
    match action {
        MemberCommand::Init { key_file } => {
            let k = key::create(&key_file)?;
            println!("{}", key::public_b64(&k));
        }
        MemberCommand::Qr { key_file, member } => {
            let client = MemberClient::new("http://unused", &member, key::load(&key_file)?)?;
            println!("{}", client.checkout_qr());
        }
        MemberCommand::Advertise {
            proximity_key,
            member,
            interval_secs,
        } => {
            let k: loyalty_agent::proximity::ProximityKey = proximity_key
                .parse()
                .map_err(|e| anyhow::anyhow!("--proximity-key: {e}"))?;
            if interval_secs == 0 {
                anyhow::bail!("--interval-secs must be more than 0");
            }
            let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
            let advert =
                loyalty_agent::proximity::phone::advert_at(&k, member, now, interval_secs, -59);
            println!("{}", serde_json::to_string_pretty(&advert)?);
        }
        MemberCommand::Show {
            hq,
            member,
            key_file,
        } => {
            let client = MemberClient::new(&hq, &member, key::load(&key_file)?)?;
            runtime()?.block_on(async {
                let profile = client.get("profile", "").await?;
                let gifts = client.get("gifts", "").await?;
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"profile": profile, "gifts": gifts["gifts"]})
                    )?
                );
                anyhow::Ok(())
            })?;
        }
        MemberCommand::Watch {
            hq,
            member,
            key_file,
            json,
        } => {
            let client = MemberClient::new(&hq, &member, key::load(&key_file)?)?;
            let backoff = loyalty_agent::backoff::Backoff {
                base: std::time::Duration::from_millis(500),
                cap: std::time::Duration::from_secs(30),
            };
            runtime()?.block_on(async {
                let mut last = None;
                let mut failures = 0u32;
                let mut rng = rand::thread_rng();
                loop {
                    let outcome = tokio::select! {
                        r = client.watch(last, |item| {
                            last = Some(item.id);
                            failures = 0;
                            if json {
                                println!("{}", serde_json::json!({"id": item.id, "type": item.kind, "data": item.data}));
                            } else {
                                println!("{}", feed::describe(&item));
                            }
                        }) => r,
                        _ = tokio::signal::ctrl_c() => return anyhow::Ok(()),
                    };
                    match outcome {
                        // A refusal will not change by retrying (a wrong key, another member).
                        Err(e @ MemberError::Refused { status: 400..=499, .. }) => {
                            return Err(anyhow::anyhow!(e))
                        }
                        Err(e) => {
                            failures = failures.saturating_add(1);
                            let wait = backoff.equal_jitter(failures, &mut rng);
                            eprintln!("feed interrupted ({e}); reconnecting in {:.1} s", wait.as_secs_f64());
                            tokio::time::sleep(wait).await;
                        }
                        Ok(()) => {}
                    }
                }
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|e| {
        anyhow::Error::new(BadConfig(match e {
            ConfigError::Invalid { .. } => format!(
                "invalid configuration (`loyalty-agent check-config -c {}` lists every problem):\n{e}",
                path.display()
            ),
            other => other.to_string(),
        }))
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!(signal = "SIGTERM", "Stopping."),
                _ = int.recv() => tracing::info!(signal = "SIGINT", "Stopping."),
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    shutdown.cancel();
}
