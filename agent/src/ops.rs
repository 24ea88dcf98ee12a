//! Operator commands that are not the daemon: `ports` (which lane or sensor each port would
//! serve) and `members import`.

use crate::config::Config;
use crate::import;
use crate::ledger::Ledger;
use crate::scan::port;
use crate::serial::PortSource;
use anyhow::Context;
use std::path::Path;
use std::sync::Arc;

/// Prints each serial port with its USB identity and the lane it would serve under `config`.
pub fn print_ports(config: Option<&Config>) -> anyhow::Result<()> {
    let ports = port::list_ports().context("listing serial ports")?;
    if ports.is_empty() {
        println!("no serial ports with a device behind them");
    }
    for p in &ports {
        let usb = match (p.vid, p.pid) {
            (Some(v), Some(d)) => format!("{v:04x}:{d:04x}"),
            _ => "-".into(),
        };
        let serves = |source: &PortSource| match source {
            PortSource::Path(path) => path.as_os_str() == p.path.as_str(),
            PortSource::Usb { vid, pid, serial } => {
                p.vid == Some(*vid)
                    && p.pid == Some(*pid)
                    && (serial.is_none() || serial == &p.serial_number)
            }
        };
        let lane = config
            .and_then(|c| {
                let lane = c
                    .lanes
                    .iter()
                    .find(|l| l.scanner.as_ref().is_some_and(|s| serves(&s.source)))
                    .map(|l| format!("lane {}", l.id));
                lane.or_else(|| {
                    c.sensors
                        .iter()
                        .find(|s| serves(&s.source))
                        .map(|s| format!("sensor {}", s.name))
                })
            })
            .unwrap_or_else(|| "-".to_string());
        println!(
            "{}\tusb {}\tserial {}\t{}\t{}",
            p.path,
            usb,
            p.serial_number.as_deref().unwrap_or("-"),
            p.product.as_deref().unwrap_or("-"),
            lane
        );
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
        (None, None) => anyhow::bail!("give --config or --ledger"),
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
