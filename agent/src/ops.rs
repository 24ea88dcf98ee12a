//! Operator commands that are not the daemon: `ports` (which lane or sensor each port would
//! serve) and `members import`.

use crate::config::Config;
use crate::import;
use crate::ledger::Ledger;
use crate::scan::port;
use anyhow::Context;
use std::path::Path;
use std::sync::Arc;

/// `loyalty-agent ports`: the ports present, what serves what under `config`, and what is
/// missing; lines, or one JSON object with `json`.
pub fn print_ports(config: Option<&Config>, json: bool) -> anyhow::Result<()> {
    let ports = port::list_ports().context("listing serial ports")?;
    let dirs: Vec<&Path> = crate::ports::LINK_DIRS.iter().map(Path::new).collect();
    let report = crate::ports::report(&ports, config, &dirs);
    let mut out = std::io::stdout();
    if json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        println!();
    } else {
        crate::ports::write_text(&report, &mut out)?;
    }
    Ok(())
}

/// Why `api.listen` could not be bound, naming the key and what to do.
pub fn explain_listen(address: std::net::SocketAddr, error: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::AddrInUse => format!(
            "api.listen = \"{address}\": the address is already in use by another program (a second agent? `ss -ltnp 'sport = :{}'` shows which): stop it, or set api.listen to a free port",
            address.port()
        ),
        ErrorKind::AddrNotAvailable => format!(
            "api.listen = \"{address}\": this machine has no such address: use one of its own (`ip -brief address`), 127.0.0.1, or 0.0.0.0 for all"
        ),
        ErrorKind::PermissionDenied => format!(
            "api.listen = \"{address}\": permission denied: ports below 1024 need privileges the agent does not have; use 7400"
        ),
        _ => format!("api.listen = \"{address}\": cannot listen there: {error}"),
    }
}

/// Imports a member file into the store's ledger; returns a one-line summary.
pub async fn import_members(config: &Config, file: &Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let format = import::detect_format(file, &text);
    let members = import::parse_members(&text, format)
        .map_err(|e| anyhow::anyhow!("{}:\n{e}", file.display()))?;
    let (ledger, writer) = Ledger::open(&config.ledger_path(), Arc::new(config.rules.clone()))?;
    let answer = ledger.import_members(members).await?;
    drop(ledger);
    tokio::task::spawn_blocking(move || writer.join())
        .await
        .ok()
        .and_then(Result::ok)
        .context("the ledger writer did not stop cleanly")?;
    Ok(format!(
        "imported {} members and {} cards into {}",
        answer.members,
        answer.cards,
        config.ledger_path().display()
    ))
}

/// `loyalty-agent backup`: a consistent copy of the ledger named directly or through a config;
/// returns where it was written.
pub fn backup(
    config: Option<&Path>,
    ledger: Option<&Path>,
    out: Option<std::path::PathBuf>,
) -> anyhow::Result<std::path::PathBuf> {
    let ledger = match (config, ledger) {
        (_, Some(l)) => l.to_owned(),
        (Some(c), None) => Config::load(c)
            .with_context(|| format!("reading {}", c.display()))?
            .ledger_path(),
        (None, None) => {
            let default = Path::new(crate::cli::DEFAULT_CONFIG);
            Config::load(default)
                .with_context(|| {
                    format!(
                        "reading {} (or give --config or --ledger)",
                        default.display()
                    )
                })?
                .ledger_path()
        }
    };
    if !ledger.is_file() {
        anyhow::bail!("{} does not exist: nothing to back up", ledger.display());
    }
    let out = out.unwrap_or_else(|| {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        ledger
            .parent()
            .unwrap_or(Path::new("."))
            .join("backups")
            .join(format!("ledger-{stamp}.db"))
    });
    crate::ledger::backup::backup(&ledger, &out)
        .with_context(|| format!("backing up {}", ledger.display()))?;
    Ok(out)
}
