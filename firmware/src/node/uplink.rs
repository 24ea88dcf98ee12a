//! Uplink task: the only writer of the serial line. Frames are encoded one at a time into a
//! stack buffer and written whole.
//!
//! A lone delimiter goes out first at boot and again after any write error, so whatever the
//! agent holds of a frame cut by a reset or a failed write ends before the next good frame
//! begins: the agent loses the cut frame, never the one after it.

use core::convert::Infallible;

use embedded_io_async::Write;

use super::state::{bump, Shared};
use crate::wire::{self, DELIMITER, MAX_ENCODED};

pub(crate) async fn task<W: Write>(shared: &Shared, mut tx: W) -> Infallible {
    let mut resync = true;
    let mut buf = [0u8; MAX_ENCODED];
    loop {
        let frame = shared.uplink.receive().await;
        let Ok(n) = wire::encode(&frame, &mut buf) else {
            // Cannot happen for frames built by this crate (a test encodes the largest one);
            // counted rather than trusted.
            bump(&shared.counters.uplink_errors);
            continue;
        };
        if resync {
            if tx.write_all(&[DELIMITER]).await.is_err() {
                bump(&shared.counters.uplink_errors);
                continue;
            }
            resync = false;
        }
        let written = match tx.write_all(&buf[..n]).await {
            Ok(()) => tx.flush().await,
            Err(e) => Err(e),
        };
        if written.is_err() {
            bump(&shared.counters.uplink_errors);
            resync = true;
        }
    }
}
