//! `loyalty-agent doctor`: every check an IT person needs before calling anyone, one line each,
//! `ok` or `FAIL` first, exit 0 only when all pass. Read-only towards the ledger and devices it
//! does not own, so it can run beside a live agent.

use crate::config::Config;
use crate::ledger::{schema, Readers};
use crate::proximity::{run_bluetooth, BluetoothHealth, BluetoothSettings, BluetoothState};
use crate::scan::port;
use crate::sync::{HqClient, HqError};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A store clock further than this from HQ's makes gift expiries and daily limits wrong.
const MAX_SKEW_MS: i64 = 5_000;
/// Unsynced events older than this mean sync is not keeping up (or HQ is away).
const MAX_BACKLOG_AGE_S: i64 = 3_600;

/// One check's outcome: `{"name","ok","detail"}` in `doctor --json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

impl Check {
    fn new(ok: bool, name: impl Into<String>, detail: impl Into<String>) -> Self {
        Check {
            ok,
            name: name.into(),
            detail: detail.into(),
        }
    }

    pub fn passed(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Check::new(true, name, detail)
    }

    pub fn failed(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Check::new(false, name, detail)
    }
}

/// One line per check, `ok` or `FAIL` first; true when all pass.
pub fn write_lines(checks: &[Check], out: &mut dyn Write) -> std::io::Result<bool> {
    for c in checks {
        writeln!(
            out,
            "{:<4} {}: {}",
            if c.ok { "ok" } else { "FAIL" },
            c.name,
            c.detail.replace('\n', "\n     ")
        )?;
    }
    Ok(checks.iter().all(|c| c.ok))
}

/// `{"ok": all passed, "checks": [...]}` on one line; true when all pass.
pub fn write_json(checks: &[Check], out: &mut dyn Write) -> std::io::Result<bool> {
    let ok = checks.iter().all(|c| c.ok);
    serde_json::to_writer(&mut *out, &serde_json::json!({"ok": ok, "checks": checks}))?;
    writeln!(out)?;
    Ok(ok)
}

/// Every check, in the order an IT person would go through them.
pub async fn checks(config: &Config) -> Vec<Check> {
    let mut checks = Vec::new();
    checks.push(data_dir(config));
    checks.extend(ledger(config));
    for lane in &config.lanes {
        if let Some(scanner) = &lane.scanner {
            checks.push(serial_port(
                &format!("scanner lane {}", lane.id),
                &scanner.source,
            ));
        }
    }
    for sensor in &config.sensors {
        checks.push(serial_port(
            &format!("sensor {}", sensor.name),
            &sensor.source,
        ));
    }
    for bt in config.proximity.iter().flat_map(|p| &p.bluetooth) {
        checks.push(bluetooth(&bt.name, bt.adapter.clone()).await);
    }
    checks.extend(hq(config).await);
    checks
}

fn data_dir(config: &Config) -> Check {
    let dir = &config.data_dir;
    let written =
        std::fs::create_dir_all(dir).and_then(|()| tempfile::NamedTempFile::new_in(dir).map(drop));
    match written {
        Ok(()) => Check::new(true, "data dir", format!("{} is writable", dir.display())),
        Err(e) => Check::new(
            false,
            "data dir",
            format!(
                "{} (the agent could not record anything)",
                crate::data_dir::explain(dir, &e)
            ),
        ),
    }
}

fn ledger(config: &Config) -> Vec<Check> {
    let path = config.ledger_path();
    if let Err(refusal) =
        crate::ledger::identity::check_before_open(&path, crate::ledger::OpenOptions::default())
    {
        return vec![Check::new(false, "ledger", refusal.to_string())];
    }
    if !path.exists() {
        return vec![Check::new(
            true,
            "ledger",
            format!(
                "{} does not exist yet; the agent creates it at its first start",
                path.display()
            ),
        )];
    }
    let readers = Readers::new(path.clone());
    let mut checks = Vec::new();
    let version =
        readers.with(|c| c.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0)));
    let known = schema::MIGRATIONS.len() as i64;
    match (readers.integrity_ok(), version) {
        (Ok(true), Ok(v)) if v <= known => checks.push(Check::new(
            true,
            "ledger",
            format!(
                "{}: integrity ok, schema v{v} (this agent: v{known})",
                path.display()
            ),
        )),
        (Ok(true), Ok(v)) => checks.push(Check::new(
            false,
            "ledger",
            format!("schema v{v} is newer than this agent knows (v{known}): upgrade the agent"),
        )),
        (Ok(false), _) => checks.push(Check::new(
            false,
            "ledger",
            format!(
                "{} fails SQLite's integrity check: restore the latest backup",
                path.display()
            ),
        )),
        (Err(e), _) | (_, Err(e)) => checks.push(Check::new(
            false,
            "ledger",
            format!("cannot read {}: {e}", path.display()),
        )),
    }
    match readers.sync_status() {
        Ok(s) => {
            let stale = config.hq.is_some() && s.oldest_age_seconds > MAX_BACKLOG_AGE_S;
            checks.push(Check::new(
                !stale && s.dead_letters == 0,
                "outbox",
                format!(
                    "{} events not yet at HQ, oldest {} s; {} dead letters{}",
                    s.depth,
                    s.oldest_age_seconds,
                    s.dead_letters,
                    if s.dead_letters > 0 {
                        " (events HQ rejected for good: see the dead_letters table)"
                    } else {
                        ""
                    }
                ),
            ));
        }
        // A ledger older than the sync schema: the agent migrates it at its next start.
        Err(e) => checks.push(Check::new(
            false,
            "outbox",
            format!("cannot read the sync state: {e}"),
        )),
    }
    checks
}

/// Whether HQ takes this store's events from this box's ledger and holds no more of it than
/// the ledger has (see `loyalty_protocol::ledger`).
async fn ledger_at_hq(config: &Config, client: &HqClient) -> Check {
    let state = match client.ledger().await {
        Ok(s) => s,
        Err(e) => return Check::new(false, "ledger at hq", format!("cannot ask HQ: {e}")),
    };
    let readers = Readers::new(config.ledger_path());
    let local = readers
        .identity()
        .and_then(|(id, _)| Ok((id, readers.sync_status()?)));
    let (id, status) = match local {
        Ok(l) => l,
        Err(_) if !config.ledger_path().exists() => {
            return Check::new(true, "ledger at hq", "no ledger here yet")
        }
        Err(e) => return Check::new(false, "ledger at hq", format!("reading the ledger: {e}")),
    };
    match state.ledger_id {
        Some(held) if held != id => Check::new(
            false,
            "ledger at hq",
            format!("{}: HQ takes this store's events from ledger {held}, this box's ledger is {id}: if this box's ledger was restored or replaced, run `loyalty-agent rebase`; if another box runs as this store, stop it", loyalty_protocol::LEDGER_CONFLICT),
        ),
        _ if state.watermark > status.last_seq => Check::new(
            false,
            "ledger at hq",
            format!("{}: HQ holds this ledger's events up to seq {}, but the ledger ends at seq {}: it was restored from an older copy; run `loyalty-agent rebase`", loyalty_protocol::SEQ_CONFLICT, state.watermark, status.last_seq),
        ),
        _ => Check::new(
            true,
            "ledger at hq",
            format!("HQ takes this store's events from this ledger ({id}), up to seq {}", state.watermark),
        ),
    }
}

fn serial_port(name: &str, source: &crate::serial::PortSource) -> Check {
    match port::resolve(source) {
        Ok(path) if path.exists() => match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
        {
            Ok(_) => Check::new(
                true,
                name,
                format!("{} present and openable", path.display()),
            ),
            Err(e) => Check::new(
                false,
                name,
                format!(
                    "{} present but not openable: {e} (is the agent's user in the device's group?)",
                    path.display()
                ),
            ),
        },
        Ok(path) => Check::new(
            false,
            name,
            format!("{} is missing: is the device plugged in? (`loyalty-agent ports` lists the ports present)", path.display()),
        ),
        Err(e) => Check::new(false, name, format!("{e}")),
    }
}

async fn bluetooth(name: &str, adapter: Option<String>) -> Check {
    let health = Arc::new(BluetoothHealth::new());
    let stop = CancellationToken::new();
    let (tx, _rx) = tokio::sync::mpsc::channel(64);
    let mut settings = BluetoothSettings::new(name.to_owned());
    settings.adapter = adapter;
    let task = tokio::spawn(run_bluetooth(settings, tx, health.clone(), stop.clone()));
    let deadline = Instant::now() + Duration::from_secs(5);
    let state = loop {
        let state = health.state();
        if !matches!(state, BluetoothState::Starting) || Instant::now() >= deadline {
            break state;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(3), task).await;
    let label = format!("bluetooth {name}");
    match state {
        BluetoothState::Scanning => Check::new(
            true,
            label,
            format!(
                "adapter {} scanning",
                health.adapter().unwrap_or_else(|| "?".into())
            ),
        ),
        BluetoothState::Starting => Check::new(false, label, "no answer from BlueZ in 5 s"),
        other => Check::new(
            false,
            label,
            serde_json::to_value(&other)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
                .unwrap_or_else(|| format!("{other:?}")),
        ),
    }
}

async fn hq(config: &Config) -> Vec<Check> {
    let Some(hq) = &config.hq else {
        return vec![Check::new(
            true,
            "hq",
            "not configured: members come from `members import`",
        )];
    };
    let client = match HqClient::new(&hq.url, &config.store_id, &hq.token, hq.ca_file.as_deref()) {
        Ok(c) => c,
        Err(e) => return vec![Check::new(false, "hq", e.to_string())],
    };
    match client.changes("", 1).await {
        Ok(answer) => {
            let skew = answer.skew_ms.unwrap_or(0);
            vec![
                Check::new(
                    true,
                    "hq",
                    format!("{} reachable, store token accepted", hq.url),
                ),
                ledger_at_hq(config, &client).await,
                Check::new(
                    skew.abs() <= MAX_SKEW_MS,
                    "clock skew",
                    format!(
                        "this clock is {skew} ms {} HQ's{}",
                        if skew >= 0 { "behind" } else { "ahead of" },
                        if skew.abs() > MAX_SKEW_MS {
                            ": fix NTP, gift expiries and daily limits depend on it"
                        } else {
                            ""
                        }
                    ),
                ),
            ]
        }
        Err(HqError::Unauthorized) => vec![Check::new(
            false,
            "hq token",
            format!(
                "{} refused the store token for {} (401): check hq.token",
                hq.url, config.store_id
            ),
        )],
        Err(e @ HqError::Forbidden { .. }) => vec![Check::new(false, "hq token", e.to_string())],
        Err(e @ HqError::NotFound { .. }) => vec![Check::new(false, "hq", e.to_string())],
        Err(e) => vec![Check::new(false, "hq", format!("{}: {e}", hq.url))],
    }
}
