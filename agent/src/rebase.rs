//! `loyalty-agent rebase`: the operator's explicit, recorded step after restoring a ledger
//! from a backup or replacing it.
//!
//! HQ takes a store's events from one ledger identity, in seq order with nothing left out
//! (`loyalty_protocol::ledger`). A restored ledger lags behind what HQ holds and records new
//! sales under seq numbers HQ already holds other events at; a replaced one is another ledger
//! altogether. Either way HQ refuses its pushes (`seq_conflict`, `ledger_conflict`) and
//! nothing is lost while it does. This command learns HQ's state for the store, gives the ledger
//! a new identity continuing after the last event HQ holds from it, records that in the ledger
//! and at HQ, and so lets every unsynced event reach HQ exactly once (HQ keys events by id: the
//! ones it already had are answered as duplicates).
//!
//! It runs with the agent stopped (it takes the data dir's lock).

use crate::config::Config;
use crate::ledger::identity::{self, OpenOptions};
use crate::ledger::rebase::Rebased;
use crate::lock::DataDirLock;
use crate::sync::HqClient;
use anyhow::Context;
use loyalty_protocol::{LedgerBinding, PROTOCOL_VERSION};

/// What was done, for the operator.
#[derive(Debug)]
pub struct Report {
    pub hq_ledger_id: Option<String>,
    pub hq_watermark: i64,
    pub rebased: Rebased,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "HQ held this store's events from ledger {} up to seq {}.",
            self.hq_ledger_id.as_deref().unwrap_or("(none yet)"),
            self.hq_watermark
        )?;
        write!(
            f,
            "This ledger ({} before) is now {} and continues after seq {}: {} event(s) will be pushed; HQ counts each once.",
            self.rebased.previous_ledger_id,
            self.rebased.ledger_id,
            self.rebased.after_seq,
            self.rebased.queued
        )
    }
}

pub async fn rebase(config: &Config, reason: &str, options: OpenOptions) -> anyhow::Result<Report> {
    let hq = config
        .hq
        .as_ref()
        .context("rebase needs [hq] in the config: it records the new ledger at HQ")?;
    if reason.trim().is_empty() {
        anyhow::bail!("--reason must say why (it is kept at HQ and in the ledger)");
    }
    let _lock = DataDirLock::acquire(&config.data_dir)?;
    let path = config.ledger_path();
    identity::check_before_open(&path, options)?;
    let client = HqClient::new(&hq.url, &config.store_id, &hq.token, hq.ca_file.as_deref())?;
    let state = client
        .ledger()
        .await
        .context("asking HQ which ledger it holds this store's events from")?;

    // The writer's own opening path: migrations (and the backup before them) run on a restored
    // older ledger too. `allow_new_ledger` because adopting this file is the point.
    let adopt = OpenOptions {
        allow_new_ledger: true,
    };
    let (mut conn, local_id) =
        crate::ledger::writer_connection(&path, adopt).context("opening the ledger")?;
    let acked: i64 = conn.query_row("SELECT acked_seq FROM sync_state WHERE id = 1", [], |r| {
        r.get(0)
    })?;
    // The same lineage as HQ's: HQ holds its events up to HQ's watermark, no further. Another
    // lineage: the events up to this ledger's own watermark reached HQ under its old identity
    // (or this ledger is new and has none).
    let after_seq = if state.ledger_id.as_deref() == Some(local_id.as_str()) {
        acked.min(state.watermark)
    } else {
        acked
    };
    let new_id = uuid::Uuid::now_v7().simple().to_string();
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let rebased = crate::ledger::rebase::rebase(
        &mut conn,
        &new_id,
        after_seq,
        state.ledger_id.as_deref(),
        state.watermark,
        reason,
        &at,
    )
    .context("recording the re-base in the ledger")?;
    drop(conn);
    identity::write_marker(&path, &new_id).with_context(|| {
        format!(
            "writing {}: run rebase again",
            identity::marker_path(&path).display()
        )
    })?;
    client
        .rebind_ledger(&LedgerBinding {
            protocol: PROTOCOL_VERSION,
            ledger_id: new_id,
            after_seq: rebased.after_seq,
            reason: reason.to_owned(),
        })
        .await
        .context("HQ did not record the new ledger (the ledger is re-based here): run rebase again once HQ answers")?;
    tracing::warn!(
        previous_ledger = %rebased.previous_ledger_id, ledger = %rebased.ledger_id,
        after_seq = rebased.after_seq, queued = rebased.queued, %reason, "Ledger re-based."
    );
    Ok(Report {
        hq_ledger_id: state.ledger_id,
        hq_watermark: state.watermark,
        rebased,
    })
}
