//! The webhook sender: a task of its own that reads the durable queue, so ingestion only ever
//! inserts queue rows in its transaction and never waits on a receiver.
//!
//! Each due message (the oldest pending one of its member and endpoint: a member's events
//! arrive in order) is posted on its own task, with a timeout and without following redirects,
//! signed as Standard Webhooks describes. A 2xx delivers it; anything else (refused, timed out,
//! 3xx, 4xx, 5xx) is logged as an attempt and retried with exponential backoff and equal
//! jitter until `dead_after`, after which it is a dead letter an admin can see and redeliver.
//! Deliveries are at least once: a receiver that answered 2xx but whose answer was lost gets
//! the message again under the same `webhook-id`.

pub mod sign;

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::task::JoinSet;

use crate::config::WebhookSettings;
use crate::feed_hub::FeedHub;
use crate::store::feed::now_ms;
use crate::store::webhooks::{webhook_id, Due, Outcome};
use crate::store::Store;

/// The delay before attempt `attempts + 1`: `base * 2^attempts` capped, half of it fixed and
/// half random, so receivers coming back are not hit by every sender at once.
pub fn retry_delay(settings: &WebhookSettings, attempts: i64, rng: &mut impl Rng) -> Duration {
    let exp = settings
        .retry_base
        .saturating_mul(1u32 << attempts.clamp(0, 20) as u32)
        .min(settings.retry_cap);
    let half = exp / 2;
    half + rng.gen_range(Duration::ZERO..=half)
}

/// Runs until `stop` completes.
pub async fn run(
    store: Arc<dyn Store>,
    hub: Arc<FeedHub>,
    settings: WebhookSettings,
    stop: impl Future<Output = ()>,
) {
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(settings.timeout)
        .user_agent(concat!("loyalty-hq/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "No HTTP client for webhooks; none will be delivered.");
            return;
        }
    };
    tokio::pin!(stop);
    let mut in_flight: HashSet<i64> = HashSet::new();
    let mut tasks: JoinSet<Outcome> = JoinSet::new();
    loop {
        let room = settings.concurrency.saturating_sub(in_flight.len());
        let mut next_look = Duration::from_secs(1);
        if room > 0 {
            let st = store.clone();
            let limit = room + in_flight.len();
            match tokio::task::spawn_blocking(move || st.webhooks_due(now_ms(), limit)).await {
                Ok(Ok(due)) => {
                    for d in due {
                        if in_flight.len() >= settings.concurrency {
                            break;
                        }
                        if in_flight.contains(&d.message_id) {
                            continue;
                        }
                        in_flight.insert(d.message_id);
                        let (client, settings) = (client.clone(), settings.clone());
                        tasks.spawn(async move { attempt(&client, &settings, d).await });
                    }
                }
                Ok(Err(e)) => tracing::error!(error = %e, "Reading the webhook queue failed."),
                Err(e) => tracing::error!(error = %e, "Reading the webhook queue failed."),
            }
        }
        // When the next message not already in flight falls due (a message in flight is due
        // on paper: counting it would spin).
        let st = store.clone();
        let limit = in_flight.len() + 1;
        if let Ok(Ok(heads)) = tokio::task::spawn_blocking(move || st.webhook_heads(limit)).await {
            if let Some((_, at)) = heads.iter().find(|(id, _)| !in_flight.contains(id)) {
                let wait = u64::try_from(at - now_ms()).unwrap_or(0);
                next_look = next_look.min(Duration::from_millis(wait));
            }
        }
        tokio::select! {
            _ = &mut stop => break,
            _ = hub.webhooks.notified() => {}
            _ = tokio::time::sleep(next_look) => {}
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                let mut outcomes = Vec::new();
                if let Ok(o) = done {
                    outcomes.push(o);
                }
                while let Some(more) = tasks.try_join_next() {
                    if let Ok(o) = more {
                        outcomes.push(o);
                    }
                }
                for o in &outcomes {
                    in_flight.remove(&o.message_id);
                }
                let st = store.clone();
                match tokio::task::spawn_blocking(move || st.record_deliveries(&outcomes)).await {
                    Ok(Ok(dead)) => {
                        for id in dead {
                            tracing::warn!(webhook_id = %webhook_id(id), "Webhook message is a dead letter: retried past dead_after_secs.");
                        }
                    }
                    Ok(Err(e)) => tracing::error!(error = %e, "Recording webhook attempts failed; they will be sent again."),
                    Err(e) => tracing::error!(error = %e, "Recording webhook attempts failed; they will be sent again."),
                }
            }
        }
    }
    // Messages in flight at a stop were not recorded: they are sent again after the restart.
    tasks.abort_all();
}

/// One POST of one message.
async fn attempt(client: &reqwest::Client, settings: &WebhookSettings, d: Due) -> Outcome {
    let id = webhook_id(d.message_id);
    let at_ms = now_ms();
    let started = Instant::now();
    let timestamp = at_ms / 1000;
    let result = match sign::signature(&d.secret, &id, timestamp, &d.body) {
        Err(e) => Err(e.to_string()),
        Ok(signature) => client
            .post(&d.url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(d.body.clone())
            .send()
            .await
            .map_err(|e| describe(&e, settings)),
    };
    let duration_ms = started.elapsed().as_millis() as i64;
    let (status, error) = match result {
        Ok(res) if res.status().is_success() => (Some(res.status().as_u16()), None),
        Ok(res) if res.status().is_redirection() => {
            let to = res
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?")
                .to_owned();
            (
                Some(res.status().as_u16()),
                Some(format!("redirect to {to} not followed")),
            )
        }
        Ok(res) => (
            Some(res.status().as_u16()),
            Some(format!("answered {}", res.status())),
        ),
        Err(e) => (None, Some(e)),
    };
    let retry_at_ms = error.as_ref().map(|_| {
        let delay = retry_delay(settings, d.attempts, &mut rand::thread_rng());
        at_ms.saturating_add(delay.as_millis() as i64)
    });
    match &error {
        None => {
            tracing::debug!(webhook_id = %id, endpoint = %d.endpoint_id, duration_ms, "Webhook delivered.")
        }
        Some(e) => {
            tracing::warn!(webhook_id = %id, endpoint = %d.endpoint_id, attempt = d.attempts + 1, error = %e, "Webhook attempt failed; retried later.")
        }
    }
    Outcome {
        message_id: d.message_id,
        at_ms,
        status,
        error,
        duration_ms,
        retry_at_ms,
    }
}

fn describe(e: &reqwest::Error, settings: &WebhookSettings) -> String {
    if e.is_timeout() {
        format!("no answer within {} s", settings.timeout.as_secs_f64())
    } else if e.is_connect() {
        format!("could not connect: {e}")
    } else {
        format!("failed: {e}")
    }
}
