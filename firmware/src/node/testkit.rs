//! Host test doubles for the node, driven by embassy-time's mock driver (feature `mock-time`):
//! a scripted radio, a capturing serial writer, a scripted serial reader, and [`drive`], which
//! polls a future while advancing mock time. Used by `tests/node.rs` and `wire-bench`.
//!
//! The mock driver is global: tests that use it must hold [`lock_time`] so that parallel test
//! threads do not advance each other's clocks.

use core::convert::Infallible;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll, Waker};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Wake;
use std::vec::Vec;

use embassy_time::{Duration, Instant, MockDriver, Timer};
use embedded_io_async::{ErrorType, Read, Write};

use super::radio::{Advertisement, Beacon, CheckInWrite, Radio, Scanner};
use crate::wire::{DecodeError, FrameDecoder, Uplink};

static TIME: Mutex<()> = Mutex::new(());

/// Serialises users of the global mock clock and resets it to zero.
pub fn lock_time() -> MutexGuard<'static, ()> {
    let guard = TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    MockDriver::get().reset();
    guard
}

/// Polls `fut`, advancing mock time by `step` between polls, until it completes or `until`
/// (absolute mock time) has passed.
///
/// Within one instant it polls again while something woke it (a task signalling another, as a
/// real executor would run the woken task at once), at most [`MAX_POLLS_PER_STEP`] times.
pub fn drive<F: Future>(mut fut: Pin<&mut F>, until: Instant, step: Duration) -> Option<F::Output> {
    let woken = Arc::new(Flag::default());
    let waker = Waker::from(woken.clone());
    let mut cx = Context::from_waker(&waker);
    loop {
        for _ in 0..MAX_POLLS_PER_STEP {
            woken.0.store(false, Ordering::SeqCst);
            if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                return Some(out);
            }
            if !woken.0.load(Ordering::SeqCst) {
                break;
            }
        }
        if Instant::now() >= until {
            return None;
        }
        MockDriver::get().advance(step);
    }
}

/// Bound on re-polls within one mock instant (a task that always wakes itself would spin).
pub const MAX_POLLS_PER_STEP: usize = 64;

#[derive(Default)]
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A radio replaying timed advertisements and check-in writes (times in ms since boot).
#[derive(Debug, Default)]
pub struct ScriptRadio {
    /// Advertisements, in time order.
    pub adverts: Vec<(u64, Advertisement)>,
    /// Check-in writes, in time order.
    pub check_ins: Vec<(u64, CheckInWrite)>,
}

impl Radio for ScriptRadio {
    type Scanner = ScriptScanner;
    type Beacon = ScriptBeacon;

    fn split(self) -> (ScriptScanner, ScriptBeacon) {
        (
            ScriptScanner(self.adverts.into()),
            ScriptBeacon {
                writes: self.check_ins.into(),
                advertised: Rc::default(),
            },
        )
    }
}

/// Receive half of [`ScriptRadio`].
#[derive(Debug)]
pub struct ScriptScanner(VecDeque<(u64, Advertisement)>);

impl Scanner for ScriptScanner {
    type Error = Infallible;

    async fn next(&mut self) -> Result<Advertisement, Infallible> {
        let Some((at, adv)) = self.0.pop_front() else {
            return core::future::pending().await;
        };
        Timer::at(Instant::from_millis(at)).await;
        Ok(adv)
    }
}

/// Transmit half of [`ScriptRadio`]; records what it was asked to advertise.
#[derive(Debug)]
pub struct ScriptBeacon {
    writes: VecDeque<(u64, CheckInWrite)>,
    /// Every payload passed to `advertise`.
    pub advertised: Rc<RefCell<Vec<Vec<u8>>>>,
}

impl Beacon for ScriptBeacon {
    type Error = Infallible;

    async fn advertise(&mut self, adv: &[u8]) -> Result<CheckInWrite, Infallible> {
        self.advertised.borrow_mut().push(adv.to_vec());
        let Some((at, write)) = self.writes.pop_front() else {
            return core::future::pending().await;
        };
        Timer::at(Instant::from_millis(at)).await;
        Ok(write)
    }
}

/// A serial writer that keeps every byte.
#[derive(Debug, Clone, Default)]
pub struct Capture(pub Rc<RefCell<Vec<u8>>>);

impl Capture {
    /// Decodes everything written so far as uplink frames.
    pub fn frames(&self) -> Vec<Result<Uplink, DecodeError>> {
        let bytes = self.0.borrow();
        FrameDecoder::<Uplink>::new().feed(&bytes).collect()
    }
}

impl ErrorType for Capture {
    type Error = Infallible;
}

impl Write for Capture {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }

    async fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

/// A serial reader delivering byte chunks at given times (ms since boot), then nothing.
#[derive(Debug, Default)]
pub struct ScriptReader(pub VecDeque<(u64, Vec<u8>)>);

impl ErrorType for ScriptReader {
    type Error = Infallible;
}

impl Read for ScriptReader {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        let Some((at, mut chunk)) = self.0.pop_front() else {
            return core::future::pending().await;
        };
        Timer::at(Instant::from_millis(at)).await;
        let n = chunk.len().min(buf.len());
        buf[..n].copy_from_slice(&chunk[..n]);
        if n < chunk.len() {
            // The rest is delivered on the next read, at once.
            self.0.push_front((at, chunk.split_off(n)));
        }
        Ok(n)
    }
}
