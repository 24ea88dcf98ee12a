//! `loyalty-agent demo`: a whole store day on one machine.
//!
//! A temporary data dir, two lanes whose scanners are real pseudo-terminals, a POS that talks
//! to the agent's HTTP API, and members with cards and app QR keys. It plays a short day and
//! writes what happened, as a cashier and a member would see it, to `out`.

use crate::config::Config;
use crate::ledger::{Ledger, MemberRecord};
use crate::scan::qr;
use anyhow::{bail, Context};
use base64::Engine;
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};
use serialport::{SerialPort, TTYPort};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const ANNA_CARD: &str = "4006381333931";
const STRANGER_CARD: &str = "5901234123457";

struct Pos {
    client: reqwest::Client,
    base: String,
}

impl Pos {
    async fn post(&self, path: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        let r = self
            .client
            .post(format!("{}{}", self.base, path))
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = r.status().as_u16();
        Ok((
            status,
            r.json()
                .await
                .with_context(|| format!("POST {path} body"))?,
        ))
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let r = self
            .client
            .get(format!("{}{}", self.base, path))
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        r.json().await.with_context(|| format!("GET {path} body"))
    }

    /// Waits until the lane shows a member (the scan travelled pty -> scanner -> lane).
    async fn wait_for_member(&self, lane: &str) -> anyhow::Result<Value> {
        for _ in 0..100 {
            let v = self.get(&format!("/v1/lanes/{lane}")).await?;
            if !v["member"].is_null() {
                return Ok(v["member"].clone());
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        bail!("lane {lane} never showed a member")
    }
}

fn scan(port: &mut TTYPort, bytes: &[u8]) -> anyhow::Result<()> {
    port.write_all(bytes)
        .context("writing to the simulated scanner")?;
    port.flush().context("flushing the simulated scanner")
}

pub async fn run(out: &mut dyn Write) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("creating the demo data dir")?;
    let (mut lane1, lane1_slave) = TTYPort::pair().context("creating lane 1's pseudo-terminal")?;
    let (mut lane2, lane2_slave) = TTYPort::pair().context("creating lane 2's pseudo-terminal")?;
    let name = |p: &TTYPort| p.name().context("pseudo-terminal without a name");
    let config_text = format!(
        r#"
[store]
id = "store-demo"
data_dir = "{data}"

[api]
listen = "127.0.0.1:0"

[[lanes]]
id = "1"
scanner = {{ port = "{l1}" }}

[[lanes]]
id = "2"
scanner = {{ port = "{l2}" }}

[points]
per_euro = 1
version = "demo-2026-11"
tiers = {{ gold = 1.5 }}
"#,
        data = dir.path().join("data").display(),
        l1 = name(&lane1_slave)?,
        l2 = name(&lane2_slave)?,
    );
    let config = Config::parse(&config_text, &dir.path().join("agent.toml"))
        .map_err(|e| anyhow::anyhow!("demo config: {e}"))?;

    let bob_key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let bob_public =
        base64::engine::general_purpose::STANDARD.encode(bob_key.verifying_key().as_bytes());
    {
        let (ledger, writer) = Ledger::open(&config.ledger_path(), Arc::new(config.rules.clone()))?;
        ledger
            .import_members(vec![
                MemberRecord {
                    member_id: "anna".into(),
                    tier: Some("gold".into()),
                    segments: vec![],
                    cards: vec![ANNA_CARD.into()],
                    qr_public_key: None,
                    proximity_key: None,
                },
                MemberRecord {
                    member_id: "bob".into(),
                    tier: None,
                    segments: vec!["students".into()],
                    cards: vec![],
                    qr_public_key: Some(bob_public),
                    proximity_key: None,
                },
            ])
            .await?;
        drop(ledger);
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    }
    writeln!(out, "Loyalty Edge demo: store-demo, 2 lanes on pseudo-terminals, members anna (gold, card) and bob (app QR)")?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let agent = tokio::spawn(crate::app::run(config, listener, shutdown.clone()));
    let pos = Pos {
        client: reqwest::Client::new(),
        base,
    };
    // Let the scanners open their ports.
    for _ in 0..100 {
        let h = pos.get("/healthz").await.unwrap_or(Value::Null);
        if h["status"] == "ok" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }

    // 1. Anna's card on lane 1, after a smudged read the scanner sent as garbage.
    scan(&mut lane1, b"\x80\x81garbage\r\n]E0")?;
    tokio::time::sleep(Duration::from_millis(20)).await;
    scan(&mut lane1, format!("{}\r\n", &ANNA_CARD).as_bytes())?;
    let member = pos.wait_for_member("1").await?;
    writeln!(
        out,
        "08:02 lane 1  card scanned -> {} (tier {}), balance {}",
        member["member_id"], member["tier"], member["balance"]
    )?;
    let (_, sale) = pos
        .post(
            "/v1/lanes/1/sales",
            json!({"receipt_id": "R-0001", "total_cents": 2350}),
        )
        .await?;
    writeln!(
        out,
        "08:03 lane 1  sale R-0001 23.50 EUR -> +{} points, balance {}",
        sale["points_earned"], sale["balance"]
    )?;
    let (_, retry) = pos
        .post(
            "/v1/lanes/1/sales",
            json!({"receipt_id": "R-0001", "total_cents": 2350}),
        )
        .await?;
    writeln!(
        out,
        "08:03 lane 1  POS retried R-0001 -> same answer, balance still {} (no double credit)",
        retry["balance"]
    )?;

    // 2. Bob's app QR on lane 2: earns, then spends.
    let now = chrono::Utc::now().timestamp();
    let token = qr::mint(&bob_key, "bob", now, rand::random());
    scan(&mut lane2, format!("]Q1{token}\r\n").as_bytes())?;
    let member = pos.wait_for_member("2").await?;
    writeln!(
        out,
        "09:15 lane 2  app QR scanned -> {} (may spend: {})",
        member["member_id"], member["can_spend"]
    )?;
    let (_, sale) = pos
        .post(
            "/v1/lanes/2/sales",
            json!({"receipt_id": "R-0002", "total_cents": 4000}),
        )
        .await?;
    writeln!(
        out,
        "09:16 lane 2  sale R-0002 40.00 EUR -> +{} points, balance {}",
        sale["points_earned"], sale["balance"]
    )?;
    let fresh = qr::mint(&bob_key, "bob", now, rand::random());
    let (status, spend) = pos
        .post(
            "/v1/lanes/2/redemptions",
            json!({"redemption_id": "D-0001", "points": 25, "qr": fresh}),
        )
        .await?;
    writeln!(
        out,
        "09:17 lane 2  redeem 25 points with a fresh QR -> {status}, balance {}",
        spend["balance"]
    )?;

    // 3. A screenshot of the same QR at lane 1: it still earns, it cannot spend.
    scan(&mut lane1, format!("{fresh}\r\n").as_bytes())?;
    let member = pos.wait_for_member("1").await?;
    let (status, refused) = pos
        .post(
            "/v1/lanes/1/redemptions",
            json!({"redemption_id": "D-0002", "points": 5}),
        )
        .await?;
    writeln!(
        out,
        "10:40 lane 1  replayed QR -> {} identified, spending refused ({status} {}): {}",
        member["member_id"], refused["error"], refused["message"]
    )?;
    pos.post(
        "/v1/lanes/1/sales",
        json!({"receipt_id": "R-0003", "total_cents": 150}),
    )
    .await?;

    // 4. A forged QR: bob's id, someone else's key.
    let forger = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let forged = qr::mint(&forger, "bob", now, rand::random());
    let (status, e) = pos
        .post(
            "/v1/lanes/2/sales",
            json!({"receipt_id": "R-0004", "total_cents": 999, "qr": forged}),
        )
        .await?;
    writeln!(
        out,
        "11:05 lane 2  forged QR -> {status} {}: {}",
        e["error"], e["message"]
    )?;

    // 5. A card the store does not know yet (offline): it earns under the card number.
    let (_, sale) = pos
        .post(
            "/v1/lanes/2/sales",
            json!({"receipt_id": "R-0005", "total_cents": 1200, "card": STRANGER_CARD}),
        )
        .await?;
    writeln!(out, "12:30 lane 2  unknown card {STRANGER_CARD} -> +{} points held under the card until HQ links it", sale["points_earned"])?;

    // 6. Anna returns half her basket.
    let (_, refund) = pos
        .post(
            "/v1/lanes/1/refunds",
            json!({"refund_id": "F-0001", "receipt_id": "R-0001", "total_cents": 1175}),
        )
        .await?;
    writeln!(
        out,
        "16:45 lane 1  refund of half of R-0001 -> -{} points, balance {}",
        refund["points_taken_back"], refund["balance"]
    )?;

    let anna = pos.get("/v1/members/anna").await?;
    let bob = pos.get("/v1/members/bob").await?;
    let health = pos.get("/healthz").await?;
    let metrics = pos
        .client
        .get(format!("{}/metrics", pos.base))
        .send()
        .await?
        .text()
        .await?;
    let scans: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("loyalty_scans_total"))
        .collect();
    writeln!(out, "\nEnd of day")?;
    writeln!(
        out,
        "  anna: balance {}, {} events waiting for HQ",
        anna["balance"], anna["pending_events"]
    )?;
    writeln!(
        out,
        "  bob:  balance {}, {} events waiting for HQ",
        bob["balance"], bob["pending_events"]
    )?;
    writeln!(
        out,
        "  outbox: {} events (HQ sync arrives with the HQ issue)",
        health["components"]["ledger"]["outbox"]["depth"]
    )?;
    for line in scans {
        writeln!(out, "  {line}")?;
    }

    shutdown.cancel();
    agent.await.context("the agent task")??;
    writeln!(out, "Agent stopped cleanly (SIGTERM path: queued writes committed); the temporary store is removed.")?;
    drop((lane1_slave, lane2_slave));
    Ok(())
}
