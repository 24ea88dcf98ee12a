//! Work the tills must not wait for, on a thread the kernel runs after theirs; and the ledger
//! writer, which the kernel runs first.
//!
//! A till's sale is answered after the ledger writer's fsync, and the writer then needs a core
//! at once. Draining a long backlog to HQ (reading the log, encoding pushes, HTTP) can keep
//! both cores of a store box busy; at the same priority, the writer woke from its fsync and
//! waited milliseconds for a core (measured: 2 to 4 ms of run-queue wait in the slow sales of a
//! drain, against 0.2 ms of its own CPU). Sync therefore runs on its own thread, with its own
//! runtime, at a higher nice value: when the tills need a core they get it, and when they do
//! not, sync has the whole machine. Threads inherit the nice value of the thread that creates
//! them, so the runtime's blocking pool runs at it too.
//!
//! A nice value alone does not say *when*: Linux's EEVDF scheduler lets the running task finish
//! its slice (1.4 ms here) before a woken one takes the core, whatever their nice values, so a
//! writer woken by its fsync still waited behind sync's slice (a drain's sale p99 2.0 to 2.5 ms
//! against 0.8 to 1.0 ms idle, in three runs). The ledger writer therefore asks for the shortest
//! slice ([`wake_first`]): since Linux 6.12 a woken task with a shorter slice than the running
//! one takes the core at once. Sync keeps its share of the CPU; it only stops being able to
//! delay a sale's answer. Older kernels ignore the request. The API runtime's threads keep the
//! default: with the short slice on them too, the tills' own threads preempted one another and
//! the idle sale's p50 rose from 0.45 to 0.5 to 0.7 ms, with no better drain.

use std::future::Future;
use tokio::sync::oneshot;
use tracing::{error, warn};

/// How much higher sync's nice value is than the tills' (nice 10 against 0: weight 110 against
/// 1024, so a runnable till thread gets about nine tenths of a contended core). Relative, so an
/// agent an operator runs at a higher nice value keeps its tills ahead of its sync; lowering
/// priority needs no privilege.
pub const SYNC_NICE: i32 = 10;

/// The slice the ledger writer asks for: the least the kernel grants (0.1 ms). A sale's work
/// on the writer is shorter than that; a long batch is cut into such slices, at the same share
/// of the CPU.
const TILLS_SLICE_NS: u64 = 100_000;

/// Asks the kernel to run this thread as soon as it wakes, ahead of a running thread with a
/// longer slice (`sched_setattr(2)`'s `sched_runtime` for a normal thread, Linux 6.12 and
/// later). Its policy and nice value are kept, and the threads it creates inherit the slice.
/// A kernel that refuses only costs the tills their head start: it is logged, not fatal.
pub fn wake_first() {
    set_slice(TILLS_SLICE_NS);
}

/// Sets this thread's slice; 0 is the kernel's default.
fn set_slice(ns: u64) {
    // SAFETY: `sched_attr` is plain integers, for which all zeroes is a valid value.
    let mut attr: libc::sched_attr = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::sched_attr>();
    // SAFETY: the kernel writes at most `size` bytes into `attr`, which holds that many; 0 is
    // this thread.
    let got = unsafe { libc::syscall(libc::SYS_sched_getattr, 0, &mut attr, size, 0) };
    let set = if got == 0 {
        attr.size = size as u32;
        attr.sched_runtime = ns;
        // SAFETY: `attr` is a complete `sched_attr` of the size it declares; 0 is this thread.
        unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr, 0) }
    } else {
        got
    };
    if set != 0 {
        let thread = std::thread::current();
        warn!(thread = thread.name().unwrap_or("unnamed"), slice_ns = ns, error = %std::io::Error::last_os_error(), "Cannot set this thread's scheduling slice; a till may wait up to a slice behind background work.");
    }
}

/// Runs `work` on a thread named `name`, `nice` above the caller's nice value, with a current-thread runtime of its own.
/// The receiver resolves when `work` has returned (or the thread died).
pub fn spawn<Fut>(name: &str, nice: i32, work: Fut) -> std::io::Result<oneshot::Receiver<()>>
where
    Fut: Future<Output = ()> + Send + 'static,
{
    let (done, finished) = oneshot::channel();
    let thread_name = name.to_owned();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            // Created from a till's thread, it would inherit that thread's short slice.
            set_slice(0);
            lower_this_threads_priority(&thread_name, nice);
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .thread_name(format!("{thread_name}-blocking"))
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    error!(thread = %thread_name, error = %e, "Cannot start a background runtime; this work does not run.");
                    return;
                }
            };
            runtime.block_on(work);
            let _ = done.send(());
        })?;
    Ok(finished)
}

/// Linux's nice value is per thread: nice(2) changes this thread only (by `by`, at most to 19),
/// and the threads it creates from now on.
fn lower_this_threads_priority(thread: &str, by: i32) {
    // nice(2) may answer -1 as the new value: only errno tells a failure.
    nix::errno::Errno::clear();
    // SAFETY: nice reads its one integer argument and touches no memory of ours.
    let rc = unsafe { libc::nice(by) };
    if rc == -1 && nix::errno::Errno::last_raw() != 0 {
        warn!(thread = %thread, by, error = %std::io::Error::last_os_error(), "Cannot lower this thread's priority; it competes with the tills on equal terms.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn this_threads_nice() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // Field 19 is the nice value; the command name (field 2) may hold spaces, so count
        // from after its closing parenthesis.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        after.split(' ').nth(16).unwrap().parse().unwrap()
    }

    /// The slice in ns a `/proc/.../sched` file shows, if the kernel shows it (Linux 6.6 and
    /// later).
    fn slice_in(sched: &std::path::Path) -> Option<u64> {
        std::fs::read_to_string(sched)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("se.slice"))
            .map(|rest| rest.trim_start_matches([' ', ':']).trim().parse().unwrap())
    }

    fn this_threads_slice() -> Option<u64> {
        slice_in(std::path::Path::new("/proc/thread-self/sched"))
    }

    #[test]
    fn a_tills_thread_gets_the_short_slice_and_background_work_started_from_it_does_not() {
        let Some(default) = this_threads_slice() else {
            eprintln!("this kernel shows no slices (before Linux 6.6): nothing to check");
            return;
        };
        std::thread::spawn(move || {
            wake_first();
            assert_eq!(this_threads_slice(), Some(TILLS_SLICE_NS));
            let (own, blocking) = on_background(this_threads_slice);
            assert_eq!(own, Some(default), "background work has the kernel's slice");
            assert_eq!(blocking, Some(default), "and so does its blocking pool");
        })
        .join()
        .unwrap();
    }

    #[tokio::test]
    async fn the_ledger_writer_runs_with_the_short_slice() {
        if this_threads_slice().is_none() {
            eprintln!("this kernel shows no slices (before Linux 6.6): nothing to check");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (ledger, writer) = crate::ledger::Ledger::open(
            &dir.path().join("ledger.db"),
            std::sync::Arc::new(crate::engine::Rules::default()),
        )
        .unwrap();
        // The writer has started once it answers.
        ledger.ping().await.unwrap();
        let slices: Vec<Option<u64>> = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .map(|t| t.unwrap().path())
            .filter(|t| {
                std::fs::read_to_string(t.join("comm")).is_ok_and(|c| c.trim() == "ledger-writer")
            })
            .map(|t| slice_in(&t.join("sched")))
            .collect();
        drop(ledger);
        tokio::task::spawn_blocking(move || writer.join())
            .await
            .unwrap()
            .unwrap();
        // Other tests' writers may be in this process, one perhaps not yet past its first line.
        assert!(
            slices.contains(&Some(TILLS_SLICE_NS)),
            "writers' slices: {slices:?}"
        );
    }

    /// What `read` answers on a thread [`spawn`] starts, and on that thread's blocking pool.
    fn on_background<T: Send + 'static>(read: fn() -> T) -> (T, T) {
        let (tx, rx) = std::sync::mpsc::channel();
        let finished = spawn("bg-test", SYNC_NICE, async move {
            let own = read();
            let blocking = tokio::task::spawn_blocking(read).await.unwrap();
            let _ = tx.send((own, blocking));
        })
        .unwrap();
        let answers = rx.recv().unwrap();
        finished.blocking_recv().unwrap();
        answers
    }

    #[test]
    fn the_work_runs_at_the_lower_priority_and_so_does_what_it_blocks_on() {
        let (own, blocking) = on_background(this_threads_nice);
        // The kernel caps nice at 19 (a test run under `nice` starts higher).
        let expected = (this_threads_nice() + SYNC_NICE).min(19);
        assert_eq!(own, expected, "the background thread is niced");
        assert_eq!(blocking, expected, "its blocking pool inherits the value");
    }
}
