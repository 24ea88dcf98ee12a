//! Gifts whose validity ended are announced (`gift.expired`) by HQ: no store records it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::feed_hub::FeedHub;
use crate::store::Store;

/// How often HQ looks for gifts that just expired: an expiry is announced within this.
pub const EVERY: Duration = Duration::from_secs(5);

pub async fn run(store: Arc<dyn Store>, hub: Arc<FeedHub>, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        let st = store.clone();
        match tokio::task::spawn_blocking(move || st.expire_gifts()).await {
            Ok(Ok(posted)) => {
                if !posted.is_empty() {
                    tracing::info!(gifts = posted.len(), "Gifts expired.");
                }
                hub.publish(&posted);
            }
            Ok(Err(e)) => tracing::error!(error = %e, "Expiring gifts failed; tried again soon."),
            Err(e) => tracing::error!(error = %e, "Expiring gifts failed; tried again soon."),
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}
