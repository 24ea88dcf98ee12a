//! An idle store's sync waits at HQ (`changes?wait=`) instead of pulling every second: it
//! hears of HQ's changes as they are made, pushes a new sale at once whatever the pull is
//! doing, and counts as online while it waits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use loyalty_agent::engine::Rules;
use loyalty_agent::ledger::{Identity, Ledger, SaleRequest};
use loyalty_agent::sync::{self, HqClient, SyncHealth, SyncSettings};
use loyalty_sim::hq::LocalHq;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const ADMIN: &str = "long-poll-admin-token-0123";
const TOKEN: &str = "s1-token-secret";

struct Store {
    hq: LocalHq,
    ledger: Ledger,
    health: Arc<SyncHealth>,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

async fn store(offline_after: Duration, pull_wait: Duration) -> Store {
    let dir = tempfile::tempdir().unwrap();
    let hq = LocalHq::start(
        "127.0.0.1:0".parse().unwrap(),
        &dir.path().join("hq.db"),
        ADMIN,
        |_| {},
    )
    .await
    .unwrap();
    let (status, _) = hq
        .admin_put("/v1/admin/stores/s1", json!({ "token": TOKEN }))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (ledger, _writer) =
        Ledger::open(&dir.path().join("ledger.db"), Arc::new(Rules::default())).unwrap();
    let health = Arc::new(SyncHealth::new(offline_after));
    let stop = CancellationToken::new();
    tokio::spawn(sync::run(
        HqClient::new(&hq.url, "s1", TOKEN, None).unwrap(),
        ledger.clone(),
        Arc::new(Rules::default()),
        SyncSettings {
            push_batch: sync::PUSH_BATCH,
            pull_wait,
        },
        health.clone(),
        stop.clone(),
    ));
    let s = Store {
        hq,
        ledger,
        health,
        stop,
        _dir: dir,
    };
    // The pull is recorded in the ledger a moment before the round counts as a contact.
    s.until("the first pull", Duration::from_secs(10), |s| {
        s.last_pull().is_some() && !s.health.is_offline()
    })
    .await;
    s
}

impl Store {
    fn last_pull(&self) -> Option<String> {
        self.ledger.readers().sync_status().unwrap().last_pull_at
    }

    /// Waits until `done` holds, at most `limit`; answers how long it took.
    async fn until(&self, what: &str, limit: Duration, done: impl Fn(&Store) -> bool) -> Duration {
        let started = Instant::now();
        while !done(self) {
            assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        started.elapsed()
    }
}

#[tokio::test]
async fn an_idle_store_waits_at_hq_hears_of_changes_at_once_and_pushes_at_once() {
    let s = store(Duration::from_secs(60), Duration::from_secs(25)).await;

    // Idle for 4 s: one pull waiting at HQ, not one a second.
    let mut pulls = vec![s.last_pull()];
    let idle = Instant::now();
    while idle.elapsed() < Duration::from_secs(4) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let last = s.last_pull();
        if pulls.last() != Some(&last) {
            pulls.push(last);
        }
        assert!(!s.health.is_offline(), "offline while a pull waits");
    }
    assert!(
        pulls.len() <= 2,
        "pulled {} times in 4 idle seconds",
        pulls.len()
    );

    // A member saved at HQ reaches the store while its pull waits.
    let (status, _) =
        s.hq.admin_put(
            "/v1/admin/members/carla",
            json!({"tier": "gold", "cards": ["4006381333931"]}),
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    let took = s
        .until("carla at the store", Duration::from_secs(3), |s| {
            s.ledger.readers().member("carla").unwrap().is_some()
        })
        .await;
    println!("member saved at HQ reached the store in {took:?}");

    // So does a campaign, and the store earns with it.
    let (status, _) =
        s.hq.admin_put(
            "/v1/admin/campaigns/spring",
            json!({"kind": "points", "multiplier": 2}),
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    s.until("the campaign applied", Duration::from_secs(4), |s| {
        s.ledger.rules().campaigns.len() == 1
    })
    .await;

    // A sale made while the pull waits reaches HQ at once, not at the end of the wait.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.ledger
        .sale(SaleRequest {
            lane: "1".into(),
            receipt_id: "r1".into(),
            total_cents: 1250,
            lines: Vec::new(),
            redemption_ids: Vec::new(),
            identity: Some(Identity::Member("carla".into())),
            at: Utc::now(),
        })
        .await
        .unwrap();
    let sold = Instant::now();
    loop {
        let (_, member) = s.hq.admin_get("/v1/admin/members/carla").await.unwrap();
        if member["events"] == 1 {
            break;
        }
        assert!(
            sold.elapsed() < Duration::from_secs(3),
            "the sale waited behind the pull: {member}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("sale reached HQ in {:?}", sold.elapsed());
    s.stop.cancel();
}

#[tokio::test]
async fn a_store_is_online_while_it_waits_and_offline_once_hq_is_gone() {
    // A wait longer than half the offline threshold is shortened to it.
    let s = store(Duration::from_secs(4), Duration::from_secs(25)).await;
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(7) {
        assert!(
            !s.health.is_offline(),
            "offline {:?} into waiting pulls",
            watched.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let Store {
        hq,
        ledger,
        health,
        stop,
        _dir,
    } = s;
    hq.stop().await.unwrap();
    let gone = Instant::now();
    while !health.is_offline() {
        assert!(
            gone.elapsed() < Duration::from_secs(10),
            "still online {:?} after HQ stopped",
            gone.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("offline {:?} after HQ stopped", gone.elapsed());
    stop.cancel();
    drop(ledger);
}
