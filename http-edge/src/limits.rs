//! How long a client may take and how many connections a server holds.

use std::time::Duration;

/// File descriptors kept out of the connection cap for everything else a server opens: its
/// database and WAL files, serial ports, outgoing HQ connections, the runtime's own.
const RESERVED_FDS: u64 = 128;

/// The limits of one server. The defaults are what both servers run with (README, "HTTP limits").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From a connection's opening, or from the first byte of a keep-alive request, to the end
    /// of its headers.
    pub header_timeout: Duration,
    /// From the end of a request's headers to the end of its body.
    pub body_timeout: Duration,
    /// A keep-alive connection that sends nothing for this long after an answer is closed.
    pub idle_timeout: Duration,
    /// Connections held at once; see [`Limits::effective_max_connections`].
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
        }
    }
}

impl Limits {
    /// `max_connections`, lowered so that the connections alone can never use up the process's
    /// open-file limit: past that limit `accept` fails, and the server could not even answer
    /// the till whose request would shed an idle connection.
    pub fn effective_max_connections(&self) -> usize {
        let cap = match open_file_limit() {
            Some(limit) => limit.saturating_sub(RESERVED_FDS).max(1),
            None => u64::MAX,
        };
        self.max_connections
            .min(usize::try_from(cap).unwrap_or(usize::MAX))
    }
}

/// The soft RLIMIT_NOFILE after raising it to the hard limit, as far as the hard limit allows.
/// The soft limit is often 1024 while the hard one is far higher; raising it is what systemd's
/// `LimitNOFILE=` does for a service, and a process may always do it for itself.
fn open_file_limit() -> Option<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Some(hard);
    }
    Some(soft)
}
