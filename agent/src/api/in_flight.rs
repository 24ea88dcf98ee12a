//! Requests that carry the same id run one after the other.
//!
//! A POS that times out retries while its first request may still be on its way through the
//! ledger. Without a turn, the retry finds no recorded answer yet and goes through the checks
//! the first one already passed (the lane's one spend per fresh QR, for one), and is refused
//! for points the first request spent. With a turn, the retry waits for the first to finish
//! and then answers with what it recorded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::OwnedMutexGuard;

type Turns = Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>;

/// The ids being worked on now.
#[derive(Default)]
pub struct InFlight {
    turns: Turns,
}

/// This request's turn for its id; the next request with the id goes when it is dropped.
pub struct Turn {
    key: String,
    turns: Turns,
    guard: Option<OwnedMutexGuard<()>>,
}

impl InFlight {
    /// Waits until no other request with `key` (an idempotency key) is being worked on.
    pub async fn turn(&self, key: String) -> Turn {
        let lock = {
            let mut turns = self
                .turns
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            turns.entry(key.clone()).or_default().clone()
        };
        let guard = lock.lock_owned().await;
        Turn {
            key,
            turns: self.turns.clone(),
            guard: Some(guard),
        }
    }

    /// Ids with a request being worked on or waiting (for tests).
    pub fn len(&self) -> usize {
        self.turns.lock().map(|t| t.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut turns = self
            .turns
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // The map's own reference is the last one: nobody holds or waits for this id.
        if turns
            .get(&self.key)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            turns.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn the_same_id_waits_another_does_not_and_nothing_is_left_behind() {
        let in_flight = Arc::new(InFlight::default());
        let first = in_flight.turn("redeem:D-1".into()).await;
        let other = tokio::time::timeout(
            Duration::from_millis(100),
            in_flight.turn("redeem:D-2".into()),
        )
        .await;
        assert!(other.is_ok(), "another id must not wait");
        drop(other);
        let waiting = {
            let in_flight = in_flight.clone();
            tokio::spawn(async move { in_flight.turn("redeem:D-1".into()).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "the retry went before the first finished"
        );
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .unwrap()
            .unwrap();
        drop(second);
        assert!(in_flight.is_empty());
    }
}
