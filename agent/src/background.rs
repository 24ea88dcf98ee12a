//! Work the tills must not wait for, on a thread the kernel runs after theirs.
//!
//! A till's sale is answered after the ledger writer's fsync, and the writer then needs a core
//! at once. Draining a long backlog to HQ (reading the log, encoding pushes, HTTP) can keep
//! both cores of a store box busy; at the same priority, the writer woke from its fsync and
//! waited milliseconds for a core (measured: 2 to 4 ms of run-queue wait in the slow sales of a
//! drain, against 0.2 ms of its own CPU). Sync therefore runs on its own thread, with its own
//! runtime, at a higher nice value: when the tills need a core they get it, and when they do
//! not, sync has the whole machine. Threads inherit the nice value of the thread that creates
//! them, so the runtime's blocking pool runs at it too.

use std::future::Future;
use tokio::sync::oneshot;
use tracing::{error, warn};

/// How much higher sync's nice value is than the tills' (nice 10 against 0: weight 110 against
/// 1024, so a runnable till thread gets about nine tenths of a contended core). Relative, so an
/// agent an operator runs at a higher nice value keeps its tills ahead of its sync; lowering
/// priority needs no privilege.
pub const SYNC_NICE: i32 = 10;

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

    #[tokio::test]
    async fn the_work_runs_at_the_lower_priority_and_so_does_what_it_blocks_on() {
        let (tx, rx) = oneshot::channel();
        let finished = spawn("bg-test", SYNC_NICE, async move {
            let own = this_threads_nice();
            let blocking = tokio::task::spawn_blocking(this_threads_nice)
                .await
                .unwrap();
            let _ = tx.send((own, blocking));
        })
        .unwrap();
        let (own, blocking) = rx.await.unwrap();
        finished.await.unwrap();
        // The kernel caps nice at 19 (a test run under `nice` starts higher).
        let expected = (this_threads_nice() + SYNC_NICE).min(19);
        assert_eq!(own, expected, "the background thread is niced");
        assert_eq!(blocking, expected, "its blocking pool inherits the value");
    }
}
