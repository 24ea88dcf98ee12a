//! Heartbeat task: counters every heartbeat interval, and the Hello again every
//! `hello_every` heartbeats so an agent that opened the port after boot learns who we are
//! without having to ask.

use core::convert::Infallible;

use embassy_time::{Instant, Ticker};

use super::state::Shared;
use crate::wire::Uplink;

pub(crate) async fn task(shared: &Shared) -> Infallible {
    let mut ticker = Ticker::every(shared.config.heartbeat_interval);
    let mut beats: u32 = 0;
    loop {
        ticker.next().await;
        shared.offer(Uplink::Heartbeat(shared.heartbeat(Instant::now())));
        beats = beats.wrapping_add(1);
        let every = shared.config.hello_every;
        if every > 0 && beats.is_multiple_of(every) {
            shared.offer(Uplink::Hello(shared.hello()));
        }
    }
}
