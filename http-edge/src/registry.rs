//! Every open connection and what it is doing, so the server can close the ones that have not
//! sent a complete request: on a timeout, or to make room for a new connection at the cap.
//!
//! Phases move forward with compare-and-swap, so a connection chosen for shedding can never
//! have a complete request in hand: once [`Phase::Shed`] is set, the request body reports an
//! error instead of its end and no handler acts on it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::limits::Limits;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Between answers on a keep-alive connection, no byte of the next request yet.
    Idle = 0,
    /// Reading a request's headers (a new connection starts here).
    Headers = 1,
    /// Headers read, the body not finished.
    Body = 2,
    /// A complete request is being answered: never shed, never timed out.
    Busy = 3,
    /// Chosen to be closed.
    Shed = 4,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::Idle,
            1 => Phase::Headers,
            2 => Phase::Body,
            3 => Phase::Busy,
            _ => Phase::Shed,
        }
    }

    /// Not yet a complete request: may be shed or timed out.
    fn waiting(self) -> bool {
        matches!(self, Phase::Idle | Phase::Headers | Phase::Body)
    }
}

/// One connection's phase, when it entered it, and how to close it.
#[derive(Debug)]
pub struct Conn {
    phase: AtomicU8,
    /// Milliseconds since the registry's epoch.
    since_ms: AtomicU64,
    epoch: Instant,
    close: CancellationToken,
}

impl Conn {
    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    /// Moves to `to` if the current phase is one of `from`; false otherwise (in particular
    /// when the connection was shed).
    pub fn advance(&self, from: &[Phase], to: Phase) -> bool {
        let moved = self
            .phase
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                from.contains(&Phase::from_u8(v)).then_some(to as u8)
            })
            .is_ok();
        if moved {
            self.since_ms.store(millis(self.epoch), Ordering::Release);
        }
        moved
    }

    /// Cancelled when the server closes this connection.
    pub fn closed(&self) -> &CancellationToken {
        &self.close
    }

    fn age(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.since_ms.load(Ordering::Acquire))
    }

    /// Marks the connection shed if it is still waiting; the caller then cancels it.
    fn try_shed(&self) -> bool {
        self.phase
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                Phase::from_u8(v).waiting().then_some(Phase::Shed as u8)
            })
            .is_ok()
    }
}

fn millis(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// What [`Registry::admit`] decided about a new connection.
#[derive(Debug)]
pub enum Admission {
    Admitted(u64, Arc<Conn>),
    /// At the cap, with a connection closing: its descriptor is free once
    /// [`Registry::wait_for_close`] returns. Admitting before that could exceed the file limit,
    /// as shed connections close a moment after they are chosen.
    Wait,
    /// At the cap and every connection is answering a complete request.
    Refused,
}

/// The open connections of one server, including shed ones until their task has closed them.
#[derive(Debug)]
pub struct Registry {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    closed: Notify,
    next_id: AtomicU64,
    epoch: Instant,
    limits: Limits,
    max: usize,
}

impl Registry {
    pub fn new(limits: Limits) -> Registry {
        Registry {
            conns: Mutex::new(HashMap::new()),
            closed: Notify::new(),
            next_id: AtomicU64::new(0),
            epoch: Instant::now(),
            max: limits.effective_max_connections(),
            limits,
        }
    }

    pub fn max_connections(&self) -> usize {
        self.max
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        // A panic while holding the lock leaves the map consistent (every operation is a
        // single insert, remove or scan), so a poisoned lock is still usable.
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Admits a new connection when under the cap; at the cap, sheds the longest-waiting one
    /// (unless one is already closing) and says to wait for it.
    pub fn admit(&self) -> Admission {
        let mut conns = self.lock();
        if conns.len() >= self.max {
            let closing = conns.values().any(|c| c.phase() == Phase::Shed);
            return if closing || shed_oldest(&conns, millis(self.epoch)) {
                Admission::Wait
            } else {
                Admission::Refused
            };
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            phase: AtomicU8::new(Phase::Headers as u8),
            since_ms: AtomicU64::new(millis(self.epoch)),
            epoch: self.epoch,
            close: CancellationToken::new(),
        });
        conns.insert(id, conn.clone());
        Admission::Admitted(id, conn)
    }

    /// Returns once a connection has been removed (possibly one removed before the call).
    pub async fn wait_for_close(&self) {
        self.closed.notified().await;
    }

    /// Sheds the longest-waiting connection, if any: room for a file descriptor when `accept`
    /// itself ran out of them.
    pub fn shed_one(&self) -> bool {
        shed_oldest(&self.lock(), millis(self.epoch))
    }

    /// Called by the connection's task once its socket is closed.
    pub fn remove(&self, id: u64) {
        self.lock().remove(&id);
        // A stored permit: the accept loop may start waiting only after this.
        self.closed.notify_one();
    }

    /// Closes every connection past its phase's deadline; returns how many.
    pub fn reap(&self) -> usize {
        let now = millis(self.epoch);
        let limit = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let conns = self.lock();
        let mut closed = 0;
        for c in conns.values() {
            let deadline = match c.phase() {
                Phase::Idle => self.limits.idle_timeout,
                Phase::Headers => self.limits.header_timeout,
                Phase::Body => self.limits.body_timeout,
                Phase::Busy | Phase::Shed => continue,
            };
            if c.age(now) >= limit(deadline) && c.try_shed() {
                c.close.cancel();
                closed += 1;
            }
        }
        closed
    }

    /// Closes every connection that has not sent a complete request (shutdown).
    pub fn shed_waiting(&self) {
        for c in self.lock().values() {
            if c.try_shed() {
                c.close.cancel();
            }
        }
    }
}

/// The waiting connection that entered its phase first: the likeliest to be abandoned or
/// hostile. A till's idle keep-alive connection may be the one; it reconnects.
fn shed_oldest(conns: &HashMap<u64, Arc<Conn>>, now_ms: u64) -> bool {
    let mut waiting: Vec<&Arc<Conn>> = conns.values().filter(|c| c.phase().waiting()).collect();
    waiting.sort_by_key(|c| std::cmp::Reverse(c.age(now_ms)));
    // One may have completed its request since the scan; then the next oldest goes.
    for conn in waiting {
        if conn.try_shed() {
            conn.close.cancel();
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize) -> Limits {
        Limits {
            max_connections: max,
            ..Limits::default()
        }
    }

    fn admitted(reg: &Registry) -> (u64, Arc<Conn>) {
        match reg.admit() {
            Admission::Admitted(id, conn) => (id, conn),
            other => panic!("expected room, got {other:?}"),
        }
    }

    #[test]
    fn at_the_cap_the_longest_waiting_connection_is_shed_and_its_close_awaited() {
        let reg = Registry::new(limits(2));
        let (first_id, first) = admitted(&reg);
        std::thread::sleep(Duration::from_millis(5));
        let (_, second) = admitted(&reg);
        assert!(matches!(reg.admit(), Admission::Wait));
        assert!(first.closed().is_cancelled());
        assert_eq!(first.phase(), Phase::Shed);
        assert!(!second.closed().is_cancelled());
        assert!(
            matches!(reg.admit(), Admission::Wait),
            "no second shed while the first is still closing"
        );
        assert!(!second.closed().is_cancelled());
        reg.remove(first_id);
        admitted(&reg);
    }

    #[test]
    fn a_connection_answering_a_complete_request_is_never_shed() {
        let reg = Registry::new(limits(1));
        let (_, busy) = admitted(&reg);
        assert!(busy.advance(&[Phase::Headers], Phase::Busy));
        assert!(matches!(reg.admit(), Admission::Refused));
        assert!(!busy.closed().is_cancelled());
    }

    #[test]
    fn a_shed_connection_cannot_complete_its_request() {
        let reg = Registry::new(limits(1));
        let (_, conn) = admitted(&reg);
        assert!(conn.advance(&[Phase::Headers], Phase::Body));
        assert!(reg.shed_one());
        assert!(!conn.advance(&[Phase::Body], Phase::Busy));
    }

    #[test]
    fn each_phase_times_out_on_its_own_clock_and_busy_never_does() {
        let reg = Registry::new(Limits {
            header_timeout: Duration::from_millis(20),
            body_timeout: Duration::from_millis(200),
            idle_timeout: Duration::from_millis(200),
            max_connections: 10,
        });
        let (_, headers) = admitted(&reg);
        let (_, body) = admitted(&reg);
        assert!(body.advance(&[Phase::Headers], Phase::Body));
        let (_, busy) = admitted(&reg);
        assert!(busy.advance(&[Phase::Headers], Phase::Busy));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(reg.reap(), 1);
        assert!(headers.closed().is_cancelled());
        assert!(!body.closed().is_cancelled());
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(reg.reap(), 1);
        assert!(body.closed().is_cancelled());
        assert!(!busy.closed().is_cancelled());
    }
}
