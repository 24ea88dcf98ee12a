//! A recorded sighting trace played back as if its sensors were reporting now: the demo's and
//! the tests' source. Lines that do not parse are reported with their number and skipped.

use super::{trace, Decoder, Sighting};
use std::path::Path;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

#[derive(Debug, thiserror::Error)]
#[error("cannot read the trace {path}: {source}")]
pub struct ReplayError {
    path: String,
    source: std::io::Error,
}

/// Sends every record of the trace at `path` at its time offset from now, then returns the
/// number sent.
pub async fn run_replay(
    path: &Path,
    tx: mpsc::Sender<Sighting>,
    stop: CancellationToken,
) -> Result<usize, ReplayError> {
    let file = std::fs::File::open(path).map_err(|source| ReplayError {
        path: path.display().to_string(),
        source,
    })?;
    let (records, problems) = trace::read_trace(std::io::BufReader::new(file));
    for p in &problems {
        warn!(trace = %path.display(), line = p.line, error = %p.error, "Trace line skipped.");
    }
    info!(trace = %path.display(), records = records.len(), skipped = problems.len(), "Replaying a sighting trace.");
    let decoder = Decoder::default();
    let start = std::time::Instant::now();
    let mut sent = 0;
    for record in records {
        let sighting = trace::to_sighting(&record, start, &decoder);
        tokio::select! {
            _ = stop.cancelled() => return Ok(sent),
            _ = tokio::time::sleep_until(sighting.at.into()) => {}
        }
        if tx.send(sighting).await.is_err() {
            break;
        }
        sent += 1;
    }
    info!(trace = %path.display(), sent, "Trace replay finished.");
    Ok(sent)
}
