//! Wake-ups between HQ processes: `NOTIFY` sent with a commit, `LISTEN` on a connection of its
//! own in every process.
//!
//! A notification carries only what the `FeedHub` needs to wake its waiters (which member's
//! feed, that the changes feed moved, that webhooks are due); every waiter then reads the
//! database again, so a notification lost with a dropped connection costs a wait, never data:
//! after a reconnect everything is woken once.

use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;
use tokio_postgres::AsyncMessage;

use crate::store::sql::Wake;

pub const CHANNEL: &str = "loyalty_hq";

/// Under PostgreSQL's 8,000-byte limit of a payload.
const MAX_PAYLOAD: usize = 7_000;

/// The payloads that carry `wakes`: a line each (`c`, `w`, `f <feed id> <member>`).
pub fn encode(wakes: &[Wake]) -> Vec<String> {
    let mut payloads = Vec::new();
    let mut current = String::new();
    for w in wakes {
        let line = match w {
            Wake::Changes => "c".to_owned(),
            Wake::Webhooks => "w".to_owned(),
            Wake::Feed { member_id, feed_id } => format!("f {feed_id} {member_id}"),
        };
        if !current.is_empty() && current.len() + line.len() + 1 > MAX_PAYLOAD {
            payloads.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(&line);
    }
    if !current.is_empty() {
        payloads.push(current);
    }
    payloads
}

pub fn decode(payload: &str) -> Vec<Wake> {
    payload
        .lines()
        .filter_map(|line| match line.split_once(' ') {
            None if line == "c" => Some(Wake::Changes),
            None if line == "w" => Some(Wake::Webhooks),
            Some(("f", rest)) => {
                let (id, member) = rest.split_once(' ')?;
                Some(Wake::Feed {
                    member_id: member.to_owned(),
                    feed_id: id.parse().ok()?,
                })
            }
            _ => None,
        })
        .collect()
}

/// Listens until `tx`'s receiver is gone, reconnecting after a lost connection.
pub async fn run(config: tokio_postgres::Config, tx: UnboundedSender<Wake>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match listen(&config, &tx).await {
            Ok(Listened::Stopped) => return,
            Ok(Listened::Closed) => {
                tracing::warn!(retry_ms = backoff.as_millis() as u64, "The connection listening for other HQ processes' commits closed; reconnecting.");
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_ms = backoff.as_millis() as u64, "Listening for other HQ processes' commits failed; reconnecting.");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
        // What was committed while no one listened: every waiter reads again.
        if tx.send(Wake::Changes).is_err() || tx.send(Wake::Webhooks).is_err() {
            return;
        }
    }
}

enum Listened {
    /// The receiver is gone: HQ stopped.
    Stopped,
    /// The server ended the connection.
    Closed,
}

async fn listen(
    config: &tokio_postgres::Config,
    tx: &UnboundedSender<Wake>,
) -> Result<Listened, tokio_postgres::Error> {
    let (client, mut connection) = config.connect(tokio_postgres::NoTls).await?;
    let (messages_tx, mut messages) = tokio::sync::mpsc::unbounded_channel();
    // The connection is driven here; its notifications come out of `poll_message`.
    let driver = tokio::spawn(async move {
        while let Some(m) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            if messages_tx.send(m?).is_err() {
                break;
            }
        }
        Ok::<(), tokio_postgres::Error>(())
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    tracing::debug!("Listening for other HQ processes' commits.");
    while let Some(m) = messages.recv().await {
        if let AsyncMessage::Notification(n) = m {
            for wake in decode(n.payload()) {
                if tx.send(wake).is_err() {
                    driver.abort();
                    return Ok(Listened::Stopped);
                }
            }
        }
    }
    match driver.await {
        Ok(Err(e)) => Err(e),
        _ => Ok(Listened::Closed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_survive_the_payload_and_split_under_its_limit() {
        let mut wakes = vec![Wake::Changes, Wake::Webhooks];
        for i in 0..1_000 {
            wakes.push(Wake::Feed {
                member_id: format!("member with spaces {i}"),
                feed_id: i,
            });
        }
        let payloads = encode(&wakes);
        assert!(payloads.len() > 1);
        assert!(payloads.iter().all(|p| p.len() <= MAX_PAYLOAD));
        let back: Vec<Wake> = payloads.iter().flat_map(|p| decode(p)).collect();
        assert_eq!(back, wakes);
    }
}
