//! `loyalty-agent demo`: a whole store day on one machine.
//!
//! A temporary data dir, two lanes whose scanners are real pseudo-terminals, a POS that talks
//! to the agent's HTTP API, members with cards, app QR keys and phones, a front door whose
//! sensors are a replayed trace, and the real HQ on loopback that is down when the store opens
//! and comes back in the afternoon. It plays a short day and writes what happened, as a
//! cashier, a member and the store's IT staff would see it, to `out`.

mod door;
mod hq;

use crate::config::Config;
use crate::ledger::{Ledger, MemberProfile, MemberRecord};
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
const CARLA_CARD: &str = "96385074";

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
    let hq_port = hq::reserve_port()?;
    let trace = dir.path().join("door.jsonl");
    let unix_now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
    let sightings = door::write_door_trace(&trace, unix_now)?;
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

[hq]
url = "http://127.0.0.1:{hq_port}"
token = "{token}"

[points]
per_euro = 1
version = "demo-2026-11"
tiers = {{ gold = 1.5 }}
{door}"#,
        data = dir.path().join("data").display(),
        l1 = name(&lane1_slave)?,
        l2 = name(&lane2_slave)?,
        token = hq::STORE_TOKEN,
        door = door::config_toml(&trace),
    );
    let config = Config::parse(&config_text, &dir.path().join("agent.toml"))
        .map_err(|e| anyhow::anyhow!("demo config: {e}"))?;

    let bob_key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let carla_key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let carla_public = crate::member::key::public_b64(&carla_key);
    let bob_public =
        base64::engine::general_purpose::STANDARD.encode(bob_key.verifying_key().as_bytes());
    {
        let (ledger, writer) = Ledger::open(&config.ledger_path(), Arc::new(config.rules.clone()))?;
        ledger
            .import_members(vec![
                MemberRecord {
                    member_id: "anna".into(),
                    profile: MemberProfile {
                        tier: Some("gold".into()),
                        segments: vec![],
                        cards: vec![ANNA_CARD.into()],
                        qr_public_key: None,
                        proximity_key: None,
                        display_name: None,
                    },
                },
                MemberRecord {
                    member_id: "bob".into(),
                    profile: MemberProfile {
                        tier: None,
                        segments: vec!["students".into()],
                        cards: vec![],
                        qr_public_key: Some(bob_public.clone()),
                        proximity_key: None,
                        display_name: None,
                    },
                },
                MemberRecord {
                    member_id: "carla".into(),
                    profile: MemberProfile {
                        tier: None,
                        segments: vec![],
                        cards: vec![CARLA_CARD.into()],
                        qr_public_key: None,
                        proximity_key: Some(door::CARLA_KEY.into()),
                        display_name: None,
                    },
                },
                MemberRecord {
                    member_id: "dave".into(),
                    profile: MemberProfile {
                        tier: None,
                        segments: vec![],
                        cards: vec![],
                        qr_public_key: None,
                        proximity_key: Some(door::DAVE_KEY.into()),
                        display_name: None,
                    },
                },
            ])
            .await?;
        drop(ledger);
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    }
    writeln!(out, "Loyalty Edge demo: store-demo, 2 lanes on pseudo-terminals, a front door with two sensors (a replayed trace of {sightings} sightings)")?;
    writeln!(
        out,
        "Members: anna (gold, card), bob (app QR), carla and dave (phones with the app; carla's follows her feed at HQ)"
    )?;
    writeln!(out, "HQ (the real loyalty-hq, in-process on 127.0.0.1:{hq_port}) is down when the store opens.\n")?;

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

    // 7. HQ comes back: the queue drains and balances converge.
    let backlog = pos.get("/healthz").await?["components"]["hq"].clone();
    writeln!(
        out,
        "\n16:50 HQ     still down: {} events queued, oldest {} s, state {} ({})",
        backlog["backlog"],
        backlog["oldest_unsynced_age_seconds"],
        backlog["state"],
        backlog["last_error"].as_str().unwrap_or("no error yet")
    )?;
    let hq = hq::DemoHq::start(hq_port, &dir.path().join("hq.db")).await?;
    hq.register_store("store-demo").await?;
    for (id, tier, cards, qr, prox) in [
        ("anna", Some("gold"), vec![ANNA_CARD], None, None),
        ("bob", None, vec![], Some(bob_public.as_str()), None),
        (
            "carla",
            None,
            vec![CARLA_CARD],
            Some(carla_public.as_str()),
            Some(door::CARLA_KEY),
        ),
        ("dave", None, vec![], None, Some(door::DAVE_KEY)),
    ] {
        hq.admin_put(
            &format!("/v1/admin/members/{id}"),
            json!({"tier": tier, "segments": [], "cards": cards, "qr_public_key": qr, "proximity_key": prox}),
        )
        .await?;
    }
    let started = std::time::Instant::now();
    let synced = wait_for_sync(&pos).await?;
    writeln!(
        out,
        "16:51 HQ     back: queue drained in {:.1} s (backlog {}, dead letters {}, clock skew {} ms)",
        started.elapsed().as_secs_f64(),
        synced["backlog"],
        synced["dead_letters"],
        synced["skew_ms"]
    )?;
    for id in ["anna", "bob"] {
        let here = pos.get(&format!("/v1/members/{id}")).await?;
        let there = hq.admin_get(&format!("/v1/admin/members/{id}")).await?;
        writeln!(
            out,
            "              {id:<5} store balance {} / HQ balance {} ({} events at HQ)",
            here["balance"], there["balance"], there["events"]
        )?;
    }

    // 8. Carla's phone (the reference member client) follows her feed at HQ.
    let phone = crate::member::MemberClient::new(hq.url(), "carla", carla_key.clone())?;
    let (gifts_tx, mut gifts_rx) = tokio::sync::mpsc::unbounded_channel();
    let phone_task = tokio::spawn(async move {
        // From the start of her feed: a gift issued before the phone connected still shows.
        let _ = phone
            .watch(Some(0), |item| {
                if item.kind == "gift.issued" {
                    let _ = gifts_tx.send(item);
                }
            })
            .await;
    });

    // 9. The front door: dave walked past outside, carla lingered in the doorway.
    let on_phone = tokio::time::timeout(Duration::from_secs(40), gifts_rx.recv())
        .await
        .ok()
        .flatten()
        .context("carla's phone heard of no gift")?;
    writeln!(
        out,
        "17:05 phone   carla's phone: {}",
        crate::member::feed::describe(&on_phone)
    )?;
    phone_task.abort();
    let carla = wait_for_gift(&pos, "carla").await?;
    let dave = pos.get("/v1/members/dave").await?;
    let tracking = pos.get("/healthz").await?["components"]["proximity"]["tracking"].clone();
    writeln!(
        out,
        "      door    dave walked by on the pavement -> {} gifts (a passer-by gets nothing)",
        dave["gifts"].as_array().map(Vec::len).unwrap_or(0)
    )?;
    let gift = carla["gifts"][0].clone();
    writeln!(
        out,
        "      door    carla lingered at the door edge -> {} gift: {} (valid until {}); {} sightings resolved, {} visits open",
        carla["gifts"].as_array().map(Vec::len).unwrap_or(0),
        gift["gift"],
        gift["expires_at"],
        tracking["resolved"],
        tracking["open_visits"]
    )?;
    scan(&mut lane1, format!("{CARLA_CARD}\r\n").as_bytes())?;
    let at_lane = wait_for_lane_member(&pos, "1", "carla").await?;
    writeln!(
        out,
        "17:10 lane 1  carla's card -> the lane shows her open gift: {}",
        at_lane["gifts"][0]["gift"]
    )?;
    let (status, handed) = pos
        .post(
            "/v1/lanes/1/redemptions",
            json!({"redemption_id": "G-0001", "gift_id": gift["gift_id"]}),
        )
        .await?;
    writeln!(
        out,
        "17:11 lane 1  gift handed over -> {status}, redeemed {}",
        handed["redeemed"]
    )?;

    // The handover just recorded leaves at once; the day ends once HQ holds it.
    wait_for_sync(&pos).await?;
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
        "  outbox: {} events waiting for HQ (HQ {})",
        health["components"]["ledger"]["outbox"]["depth"], health["components"]["hq"]["state"]
    )?;
    for line in scans {
        writeln!(out, "  {line}")?;
    }

    shutdown.cancel();
    agent.await.context("the agent task")??;
    hq.stop().await?;
    writeln!(out, "Agent and HQ stopped cleanly (SIGTERM path: queued writes committed); the temporary store is removed.")?;
    drop((lane1_slave, lane2_slave));
    Ok(())
}

async fn wait_for_gift(pos: &Pos, member: &str) -> anyhow::Result<Value> {
    // The doorway scene lasts about 20 s of real time.
    for _ in 0..300 {
        let m = pos.get(&format!("/v1/members/{member}")).await?;
        if m["gifts"].as_array().is_some_and(|g| !g.is_empty()) {
            return Ok(m);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{member} got no gift at the door")
}

async fn wait_for_lane_member(pos: &Pos, lane: &str, member: &str) -> anyhow::Result<Value> {
    for _ in 0..100 {
        let l = pos.get(&format!("/v1/lanes/{lane}")).await?;
        if l["member"]["member_id"] == member {
            return Ok(l["member"].clone());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("{member} never showed at lane {lane}")
}

async fn wait_for_sync(pos: &Pos) -> anyhow::Result<Value> {
    for _ in 0..600 {
        let hq = pos.get("/healthz").await?["components"]["hq"].clone();
        if hq["state"] == "online" && hq["backlog"] == 0 && hq["last_pull_at"].is_string() {
            return Ok(hq);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the queue did not drain to HQ in 30 s")
}
