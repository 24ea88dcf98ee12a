//! Scan task: every advertisement heard becomes a sample in the aggregation table. Nothing is
//! sent from here: the report task turns the table into frames once per interval.

use core::convert::Infallible;

use embassy_time::{Duration, Instant, Timer};

use super::radio::Scanner;
use super::state::{bump, Shared};
use crate::token;
use crate::wire::Subject;

/// Pause after a scanner error, so a failing stack does not spin the CPU.
const ERROR_BACKOFF: Duration = Duration::from_millis(100);

pub(crate) async fn task<S: Scanner>(shared: &Shared, mut scanner: S) -> Infallible {
    loop {
        let adv = match scanner.next().await {
            Ok(adv) => adv,
            Err(_) => {
                bump(&shared.counters.radio_errors);
                Timer::after(ERROR_BACKOFF).await;
                continue;
            }
        };
        let subject = match token::find_token_with(shared.config.company_id, &adv.data) {
            Ok(token) => Subject::Token(token),
            Err(_) if shared.config.forward_raw => Subject::Raw {
                addr: adv.addr,
                adv: adv.data,
            },
            Err(_) => continue,
        };
        let now = Instant::now();
        shared
            .aggregator
            .lock(|a| a.borrow_mut().record(now, subject, adv.rssi));
    }
}
