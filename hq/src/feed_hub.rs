//! Wake-ups after a commit: who is watching which member's feed, the webhook sender, and the
//! stores' pulls waiting on the changes feed.
//!
//! A live feed holds a `watch` receiver of its member's newest feed id and reads the rows
//! after its own position from the database when it changes: a slow reader skips no event (it
//! reads them all from the table), and a publish costs one map lookup per member touched, not
//! one wake per open feed.
//!
//! A waiting pull (`GET /v1/stores/{store}/changes?wait=N`) holds a receiver of one counter,
//! bumped after every commit that handed out change sequence numbers; it then reads its page
//! from the database again, so a wake carries no data and a missed one cannot lose a change.
//! On PostgreSQL the commits of other HQ processes on the same database wake this one's
//! waiters too: the store's `LISTEN` connection hands their `NOTIFY`s to [`relay`].

use std::collections::HashMap;
use std::sync::Mutex;

use std::sync::Arc;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::{watch, Notify};

use crate::store::sql::Wake;
use crate::store::FeedPosted;

pub struct FeedHub {
    members: Mutex<HashMap<String, watch::Sender<i64>>>,
    /// Poked when queue rows were committed: the webhook sender looks at once.
    pub webhooks: Notify,
    /// Set when HQ stops: live feeds end, so the server's drain is not held open by them.
    stopping: watch::Sender<bool>,
    /// Bumped after each commit of the changes feed (members, campaigns, gift redemptions).
    changes: watch::Sender<u64>,
}

impl Default for FeedHub {
    fn default() -> Self {
        FeedHub {
            members: Mutex::default(),
            webhooks: Notify::new(),
            stopping: watch::channel(false).0,
            changes: watch::channel(0).0,
        }
    }
}

impl FeedHub {
    /// Ends every live feed and tells the background tasks to stop.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Completes once [`FeedHub::stop`] was called.
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.stopping.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    /// A receiver of `member`'s newest feed id, starting at `latest`.
    pub fn subscribe(&self, member: &str, latest: i64) -> watch::Receiver<i64> {
        let Ok(mut members) = self.members.lock() else {
            // A poisoned map: a receiver that never changes; the keep-alive still flows.
            return watch::channel(latest).1;
        };
        match members.get(member) {
            Some(tx) => {
                tx.send_if_modified(|v| {
                    let newer = latest > *v;
                    *v = (*v).max(latest);
                    newer
                });
                tx.subscribe()
            }
            None => {
                let (tx, rx) = watch::channel(latest);
                members.insert(member.to_owned(), tx);
                rx
            }
        }
    }

    /// Raises `member`'s newest id to at least `latest` (read from the database).
    pub fn note(&self, member: &str, latest: i64) {
        if let Ok(members) = self.members.lock() {
            if let Some(tx) = members.get(member) {
                tx.send_if_modified(|v| {
                    let newer = latest > *v;
                    *v = (*v).max(latest);
                    newer
                });
            }
        }
    }

    /// Tells the watchers of each member touched, and the webhook sender if anything was queued.
    pub fn publish(&self, posted: &[FeedPosted]) {
        if posted.is_empty() {
            return;
        }
        if let Ok(mut members) = self.members.lock() {
            for p in posted {
                if let Some(tx) = members.get(&p.member_id) {
                    if tx.receiver_count() == 0 {
                        members.remove(&p.member_id);
                    } else {
                        tx.send_if_modified(|v| {
                            let newer = p.feed_id > *v;
                            *v = (*v).max(p.feed_id);
                            newer
                        });
                    }
                }
            }
        }
        if posted.iter().any(|p| p.queued) {
            self.webhooks.notify_one();
        }
    }

    /// Wakes every waiting pull: call after the commit, so that what they read again holds it.
    pub fn changes_committed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that changes at the next [`FeedHub::changes_committed`]. Take it before
    /// reading the page: a commit in between is then either in the page or a wake-up.
    pub fn watch_changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Members with a live feed open (for metrics and the idle-cost figure).
    pub fn watched(&self) -> usize {
        self.members
            .lock()
            .map(|m| m.values().filter(|tx| tx.receiver_count() > 0).count())
            .unwrap_or(0)
    }
}

/// Passes another HQ process's commits (the store's wake-ups) to `hub`'s waiters, until the
/// store stops sending.
pub async fn relay(mut wakeups: UnboundedReceiver<Wake>, hub: Arc<FeedHub>) {
    while let Some(wake) = wakeups.recv().await {
        match wake {
            Wake::Feed { member_id, feed_id } => hub.note(&member_id, feed_id),
            Wake::Changes => hub.changes_committed(),
            Wake::Webhooks => hub.webhooks.notify_one(),
        }
    }
}
