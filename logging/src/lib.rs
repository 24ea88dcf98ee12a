//! How `loyalty-agent` and `loyalty-hq` log: one line per event on stderr, as text for people
//! or JSON for collectors.
//!
//! - Never blocking: lines go through a bounded queue to a writer thread, and are dropped when
//!   it is full. A stderr whose reader stopped reading (a full pipe) or went away (`| head -1`)
//!   then costs lost lines, never a stuck API, ledger writer or shutdown. Writing directly, a
//!   full pipe blocked whichever thread logged, and a closed one made tracing's error report
//!   panic the task that logged (the signal handler among them).
//! - Colour only when stderr is a terminal and `NO_COLOR` is unset or empty (no-color.org).

// Input and I/O never panic the process: an unwrap outside tests is an error (tests may).
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::io::IsTerminal;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Lines held for the writer thread before new ones are dropped.
const QUEUE_LINES: usize = 16_384;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

impl Format {
    /// `json` is JSON; anything else (clap only lets `text` through) is text.
    pub fn parse(name: &str) -> Format {
        if name == "json" {
            Format::Json
        } else {
            Format::Text
        }
    }
}

/// Keeps the writer thread; dropping it writes out what is queued, waiting about a second at
/// most.
#[must_use = "logs stop when the guard is dropped"]
pub struct Guard {
    _worker: WorkerGuard,
}

/// Installs the process's logger: `RUST_LOG` when set, else `default_filter`.
pub fn init(format: Format, default_filter: &str) -> Guard {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUE_LINES)
        .thread_name("log-writer")
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(colour(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR"),
        ))
        // A line that cannot be written is dropped in silence: reporting it would be another
        // write to the same stderr.
        .log_internal_errors(false);
    match format {
        Format::Json => builder.json().init(),
        Format::Text => builder.init(),
    }
    Guard { _worker: guard }
}

fn colour(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::colour;

    #[test]
    fn colour_needs_a_terminal_and_no_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("".into())));
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None));
    }
}
