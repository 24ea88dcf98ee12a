//! The chaos soak (issue 10): three stores sell, refund and redeem against one HQ while
//! everything that can go wrong does, at times drawn from a seed; then the system heals and
//! every acknowledged fact must be at HQ exactly once, with the same balances everywhere.
//!
//! Tried, while one POS thread per store keeps working (sales with a member's card, partial and
//! full refunds of its own acknowledged sales, point redemptions with a fresh app QR):
//! - kill -9 of a random agent, restarted after a random pause (requests in flight die with it);
//! - kill -9 of HQ, restarted on the same database and port;
//! - each store's fault proxy switched at random: pass, refuse, reset mid-request, cut HQ's
//!   answer after 0, 150 or 600 bytes, delay it;
//! - a full disk: a store's agent restarted under a file-size limit (as `disk_full.rs` does)
//!   until it answers 503, then killed -9 and restarted normally;
//! - README's restore procedure: an online `loyalty-agent backup`, more sales that reach HQ (so
//!   HQ is ahead of the backup), stop, backup copied over `ledger.db`, `-wal`/`-shm` deleted,
//!   start, a few sales (HQ must refuse them with `seq_conflict`, writing nothing), stop,
//!   `loyalty-agent rebase`, start.
//!
//! A request the agent did not answer 2xx (connection refused or reset by a kill, 503 from the
//! full disk) is either retried later with the same id (idempotency: the agent answers the
//! first outcome if it had recorded it) or dropped as not acknowledged; the book says which. A
//! dropped request may still have been recorded (the agent died after committing, before
//! answering): HQ may then hold it once, and its points count at HQ. Refusals (409
//! `insufficient_balance`, `offline_allowance`) record nothing and must not reach HQ.
//!
//! At the end: all proxies pass, everything runs, every store syncs; then every acknowledged
//! fact (by idempotency key) is held at HQ exactly once with the points the agent answered,
//! nothing is held that was never attempted, and each member's balance at HQ and at every store
//! equals the sum of the acknowledged facts (plus those dropped-but-recorded).
//!
//! Bounded: `CHAOS_SECS` of chaos (default 30, about a minute in all in a debug build);
//! `CHAOS_SECS=600` for a long soak. `CHAOS_SEED` replays a schedule: the seed fixes the
//! sequence of faults (which, where, their pauses), the scripted steps' stores and the POS
//! threads' random draws; how these meet the processes' own timing still varies from run to
//! run, so a failure names its seed and keeps its logs.

use loyalty_e2e::fault_proxy::{FaultProxy, Mode};
use loyalty_e2e::{agent_binary, limit_file_size, wait_until, Agent, AppKey, Hq, Store};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

const STORES: [&str; 3] = ["store-north", "store-harbour", "store-mall"];
const MEMBERS: usize = 6;
const LANE: &str = "[[lanes]]\nid = \"1\"\n";
/// Offline after 3 s without a successful round (60 s by default), so that HQ kills and bad
/// lines also exercise the offline spending allowance.
const HQ_EXTRA: &str = "offline_after_secs = 3\n";
const DEFAULT_SECS: u64 = 30;
/// Each disk-full, backup and restore round takes this much of the run (at least one round).
const ROUND_SECS: u64 = 150;
/// Upper bounds on the loops, whatever the clock says.
const MAX_FAULTS: usize = 20_000;
const MAX_OPS_PER_STORE: usize = 500_000;
/// How long the healed system may take to answer a retried request, or to sync.
const HEAL_TIMEOUT: Duration = Duration::from_secs(90);
/// Refusals a POS may meet in this soak: anything else is a bug (ours or the product's).
const EXPECTED_REFUSALS: [&str; 2] = ["insufficient_balance", "offline_allowance"];

/// SplitMix64: tiny, seedable, and the same on every platform, so a seed replays a schedule.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.between(lo, hi))
    }
}

struct Member {
    id: String,
    card: String,
    key: AppKey,
}

/// One POS request, with the id it keeps across retries.
#[derive(Debug, Clone)]
enum Op {
    Sale {
        receipt: String,
        total: i64,
        member: usize,
    },
    Refund {
        refund_id: String,
        sale: Refundable,
        total: i64,
    },
    Redeem {
        redemption_id: String,
        member: usize,
        points: i64,
    },
}

impl Op {
    /// The idempotency key the agent records and HQ stores the event under.
    fn key(&self) -> String {
        match self {
            Op::Sale { receipt, .. } => format!("sale:{receipt}"),
            Op::Refund { refund_id, .. } => format!("refund:{refund_id}"),
            Op::Redeem { redemption_id, .. } => format!("redeem:{redemption_id}"),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Op::Sale { .. } => "sale",
            Op::Refund { .. } => "refund",
            Op::Redeem { .. } => "redemption",
        }
    }
}

/// An acknowledged sale of this store that can still be refunded (in part).
#[derive(Debug, Clone)]
struct Refundable {
    receipt: String,
    member: usize,
    total: i64,
    refunded: i64,
}

/// An acknowledged fact: what the agent answered.
#[derive(Debug, Clone)]
struct Fact {
    kind: &'static str,
    member: usize,
    /// Signed: earned, or minus what was taken back or spent.
    points: i64,
}

enum Outcome {
    Acked(Value),
    /// A 4xx with this error code: nothing was recorded.
    Refused(String, Value),
    /// No answer, or a 5xx: recorded or not, the POS cannot know.
    Failed(Failure),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Unreachable,
    LedgerUnavailable,
    Other(u16),
}

/// What one store's POS did, and what it believes.
#[derive(Default)]
struct Book {
    next_id: u64,
    attempted: BTreeSet<String>,
    acked: BTreeMap<String, Fact>,
    refused: BTreeMap<String, String>,
    dropped: BTreeSet<String>,
    /// Failed requests to send again with the same id, and how often each failed.
    pending: VecDeque<(Op, u32)>,
    refundable: Vec<Refundable>,
    acked_after_retry: u64,
    unreachable: u64,
    ledger_unavailable: u64,
    other_failures: u64,
}

impl Book {
    fn fresh_id(&mut self, store: &str, prefix: &str) -> String {
        self.next_id += 1;
        format!("{store}-{prefix}{:06}", self.next_id)
    }
}

/// One store: its agent behind its own proxy, its POS book, and the gate its POS thread holds
/// around each request, which the chaos thread takes to stop that POS for a scripted step.
struct Rig {
    id: &'static str,
    store: Store,
    proxy: FaultProxy,
    agent: Mutex<Option<Agent>>,
    book: Mutex<Book>,
    paused: AtomicBool,
    gate: Mutex<()>,
    starts: Mutex<u32>,
}

/// The POS of a rig, stopped between two requests until dropped.
struct Paused<'a> {
    rig: &'a Rig,
    _gate: MutexGuard<'a, ()>,
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        self.rig.paused.store(false, Ordering::SeqCst);
    }
}

impl Rig {
    fn data(&self) -> PathBuf {
        self.store.dir.path().join("data")
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().expect("book")
    }

    fn pause(&self) -> Paused<'_> {
        // The flag first: the POS thread checks it before taking the gate, so it cannot
        // starve us by taking the gate again right after each request.
        self.paused.store(true, Ordering::SeqCst);
        Paused {
            rig: self,
            _gate: self.gate.lock().expect("gate"),
        }
    }

    /// (Re)starts the agent, after keeping the log of the run before: `Store::start_with`
    /// starts a new log each time, and a failure needs the whole story.
    fn start(&self, slot: &mut Option<Agent>, adjust: impl FnOnce(&mut Command)) {
        if let Some(mut old) = slot.take() {
            old.kill9();
        }
        let mut starts = self.starts.lock().expect("starts");
        if *starts > 0 {
            let dir = self.store.dir.path();
            let _ = std::fs::copy(
                dir.join("agent.log"),
                dir.join(format!("agent-{starts}.log")),
            );
        }
        *starts += 1;
        *slot = Some(self.store.start_with(adjust));
    }

    fn agent(&self) -> MutexGuard<'_, Option<Agent>> {
        self.agent.lock().expect("agent slot")
    }

    fn send(&self, members: &[Member], op: &Op) -> Outcome {
        let (path, body) = match op {
            Op::Sale {
                receipt,
                total,
                member,
            } => (
                "/v1/lanes/1/sales",
                json!({"receipt_id": receipt, "total_cents": total, "card": members[*member].card}),
            ),
            Op::Refund {
                refund_id,
                sale,
                total,
            } => (
                "/v1/lanes/1/refunds",
                json!({"refund_id": refund_id, "receipt_id": sale.receipt, "total_cents": total}),
            ),
            // A fresh QR on every attempt: a nonce the agent has seen identifies the member
            // but never allows spending, and the first attempt may have recorded it.
            Op::Redeem {
                redemption_id,
                member,
                points,
            } => {
                let m = &members[*member];
                (
                    "/v1/lanes/1/redemptions",
                    json!({"redemption_id": redemption_id, "points": points, "qr": m.key.qr(&m.id)}),
                )
            }
        };
        let (status, answer) = self.store.post(path, &body);
        match status {
            200..=299 => Outcome::Acked(answer),
            0 => Outcome::Failed(Failure::Unreachable),
            _ if answer["error"] == "ledger_unavailable" => {
                Outcome::Failed(Failure::LedgerUnavailable)
            }
            500.. => Outcome::Failed(Failure::Other(status)),
            _ => Outcome::Refused(answer["error"].as_str().unwrap_or("?").to_owned(), answer),
        }
    }

    /// Books an outcome. `drop_if_failed` says what the POS does with a failed request:
    /// gives up on it (not acknowledged) or keeps it to send again with the same id.
    fn record(
        &self,
        members: &[Member],
        op: Op,
        tries: u32,
        outcome: Outcome,
        drop_if_failed: bool,
    ) {
        let mut book = self.book();
        let key = op.key();
        book.attempted.insert(key.clone());
        match outcome {
            Outcome::Acked(answer) => {
                let fact = match &op {
                    Op::Sale {
                        receipt,
                        total,
                        member,
                    } => {
                        assert_eq!(
                            answer["member_id"], members[*member].id,
                            "{}: the store knows the card of every member: {answer}",
                            self.id
                        );
                        book.refundable.push(Refundable {
                            receipt: receipt.clone(),
                            member: *member,
                            total: *total,
                            refunded: 0,
                        });
                        Fact {
                            kind: "sale",
                            member: *member,
                            points: answer["points_earned"].as_i64().expect("points_earned"),
                        }
                    }
                    Op::Refund { sale, total, .. } => {
                        let mut sale = sale.clone();
                        sale.refunded += total;
                        let member = sale.member;
                        if sale.refunded < sale.total {
                            book.refundable.push(sale);
                        }
                        Fact {
                            kind: "refund",
                            member,
                            points: -answer["points_taken_back"]
                                .as_i64()
                                .expect("points_taken_back"),
                        }
                    }
                    Op::Redeem { member, points, .. } => {
                        assert_eq!(answer["points_spent"], *points, "{}: {answer}", self.id);
                        Fact {
                            kind: "redemption",
                            member: *member,
                            points: -points,
                        }
                    }
                };
                if tries > 0 {
                    book.acked_after_retry += 1;
                }
                let again = book.acked.insert(key.clone(), fact);
                assert!(
                    again.is_none(),
                    "{key} was acknowledged twice by the POS book"
                );
            }
            Outcome::Refused(code, answer) => {
                assert!(
                    EXPECTED_REFUSALS.contains(&code.as_str()),
                    "{}: {} {key} refused unexpectedly: {answer}",
                    self.id,
                    op.kind()
                );
                // A refused refund's sale is not offered again: simpler than knowing why.
                book.refused.insert(key, code);
            }
            Outcome::Failed(failure) => {
                match failure {
                    Failure::Unreachable => book.unreachable += 1,
                    Failure::LedgerUnavailable => book.ledger_unavailable += 1,
                    Failure::Other(_) => book.other_failures += 1,
                }
                if drop_if_failed {
                    book.dropped.insert(key);
                } else {
                    book.pending.push_back((op, tries + 1));
                }
            }
        }
    }

    /// Sends every pending request again until each is answered; the agent must be up.
    fn drain_pending(&self, members: &[Member]) {
        let deadline = Instant::now() + HEAL_TIMEOUT;
        loop {
            let next = self.book().pending.pop_front();
            let Some((op, tries)) = next else {
                return;
            };
            let outcome = self.send(members, &op);
            let failed = matches!(outcome, Outcome::Failed(_));
            if failed {
                assert!(
                    Instant::now() < deadline,
                    "{}: {} still unanswered {HEAL_TIMEOUT:?} after healing (a hang?); log:\n{}",
                    self.id,
                    op.key(),
                    self.store.log()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            self.record(members, op, tries, outcome, false);
        }
    }
}

/// The POS of one store until `stop`: mostly sales, some refunds and redemptions, and the
/// failed requests sent again.
fn pos(rig: &Rig, members: &[Member], seed: u64, stop: &AtomicBool) {
    let mut rng = Rng::new(seed);
    let mut ops = 0;
    while ops < MAX_OPS_PER_STORE && !stop.load(Ordering::SeqCst) {
        if rig.paused.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        let gate = rig.gate.lock().expect("gate");
        ops += 1;
        let retry = {
            let mut book = rig.book();
            if !book.pending.is_empty() && rng.percent(30) {
                book.pending.pop_front()
            } else {
                None
            }
        };
        let (op, tries) = match retry {
            Some(r) => r,
            None => (new_op(rig, &mut rng), 0),
        };
        let outcome = rig.send(members, &op);
        // Giving up is decided at the first failure only: a cashier retries a redemption less
        // often than a receipt, which the POS keeps until it is through.
        let give_up = tries == 0
            && matches!(outcome, Outcome::Failed(_))
            && rng.percent(match op {
                Op::Redeem { .. } => 50,
                _ => 10,
            });
        rig.record(members, op, tries, outcome, give_up);
        drop(gate);
        std::thread::sleep(rng.millis(2, 12));
    }
}

fn new_op(rig: &Rig, rng: &mut Rng) -> Op {
    let mut book = rig.book();
    let roll = rng.below(100);
    if roll < 14 && !book.refundable.is_empty() {
        // The refund takes the sale out of the pool until it is answered, so that two
        // refunds of one sale never race past its total.
        let at = rng.below(book.refundable.len() as u64) as usize;
        let sale = book.refundable.swap_remove(at);
        let left = sale.total - sale.refunded;
        let total = if rng.percent(40) {
            left
        } else {
            rng.between(1, left as u64) as i64
        };
        return Op::Refund {
            refund_id: book.fresh_id(rig.id, "F"),
            sale,
            total,
        };
    }
    if roll < 28 {
        return Op::Redeem {
            redemption_id: book.fresh_id(rig.id, "D"),
            member: rng.below(MEMBERS as u64) as usize,
            points: rng.between(1, 40) as i64,
        };
    }
    Op::Sale {
        receipt: book.fresh_id(rig.id, "R"),
        total: rng.between(50, 6_000) as i64,
        member: rng.below(MEMBERS as u64) as usize,
    }
}

#[derive(Default)]
struct Counts {
    agent_kills: u32,
    hq_kills: u32,
    proxy_switches: u32,
    disk_full: u32,
    backups: u32,
    restores: u32,
    /// Events HQ held past the backup when it was restored: gone from the store's ledger.
    only_at_hq: i64,
}

#[derive(Debug, Clone, Copy)]
enum Step {
    DiskFull(usize),
    Backup(usize),
    Restore(usize),
}

/// Sets the flag when the thread holding it panics.
struct StopOnPanic<'a>(&'a AtomicBool);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

/// Copies every log to a directory that outlives the test's temporary ones, when the test
/// fails: HQ's and each agent's, every run of each.
struct KeepLogsOnFailure {
    seed: u64,
    /// (directory, prefix for the copies)
    dirs: Vec<(PathBuf, String)>,
}

impl Drop for KeepLogsOnFailure {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let out =
            std::env::temp_dir().join(format!("chaos-soak-{}-{}", self.seed, std::process::id()));
        let _ = std::fs::create_dir_all(&out);
        for (dir, prefix) in &self.dirs {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.ends_with(".log") {
                    let _ = std::fs::copy(entry.path(), out.join(format!("{prefix}{name}")));
                }
            }
        }
        eprintln!(
            "chaos: FAILED with seed {} (CHAOS_SEED={} replays the schedule); logs kept in {}",
            self.seed,
            self.seed,
            out.display()
        );
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a whole number")),
    )
}

#[test]
fn chaos_soak_every_acknowledged_fact_reaches_hq_once_and_balances_agree() {
    let t0 = Instant::now();
    let _ = (agent_binary(), loyalty_e2e::hq_binary());
    let seed = env_u64("CHAOS_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos() as u64
            % 1_000_000_007
    });
    let secs = env_u64("CHAOS_SECS").unwrap_or(DEFAULT_SECS).max(5);
    eprintln!(
        "chaos: seed {seed} (CHAOS_SEED={seed} to replay), {secs} s of chaos (CHAOS_SECS); binaries ready in {:?}",
        t0.elapsed()
    );
    let started = Instant::now();
    let mut rng = Rng::new(seed);

    let mut hq = Hq::start();
    let members: Vec<Member> = (0..MEMBERS)
        .map(|i| Member {
            id: format!("m-{i}"),
            card: format!("CS-{:04}", 1_000 + i),
            key: AppKey::from_seed(40 + i as u8),
        })
        .collect();
    for m in &members {
        hq.put_member(
            &m.id,
            &json!({"tier": null, "segments": [], "cards": [m.card], "qr_public_key": m.key.public_b64()}),
        );
    }
    let rigs: Vec<Rig> = STORES
        .iter()
        .map(|&id| {
            let token = format!("{id}-token-0001");
            hq.add_store(id, &token);
            let proxy = FaultProxy::start(hq.addr(), Mode::Pass);
            let store = Store::with_hq(id, &proxy.url(), &token, HQ_EXTRA, LANE);
            Rig {
                id,
                store,
                proxy,
                agent: Mutex::new(None),
                book: Mutex::default(),
                paused: AtomicBool::new(false),
                gate: Mutex::new(()),
                starts: Mutex::new(0),
            }
        })
        .collect();
    for rig in &rigs {
        let mut slot = rig.agent();
        rig.start(&mut slot, |_| {});
    }
    for rig in &rigs {
        wait_until(
            Duration::from_secs(20),
            "every member (and card and app key) to arrive from HQ",
            || members.iter().all(|m| rig.store.balance(&m.id) == Some(0)),
            || rig.store.log(),
        );
    }
    // Dropped last: it sees any failure below, in this thread or (through the scope) a POS's.
    let _keep = KeepLogsOnFailure {
        seed,
        dirs: std::iter::once((hq.dir.path().to_path_buf(), String::new()))
            .chain(
                rigs.iter()
                    .map(|r| (r.store.dir.path().to_path_buf(), format!("{}-", r.id))),
            )
            .collect(),
    };
    let mut counts = Counts::default();
    let stop = AtomicBool::new(false);
    let worker_seeds: Vec<u64> = (0..rigs.len()).map(|_| rng.next()).collect();
    std::thread::scope(|scope| {
        for (rig, &s) in rigs.iter().zip(&worker_seeds) {
            let (members, stop) = (&members, &stop);
            scope.spawn(move || {
                // A POS that fails stops the chaos too, so its panic is reported at once.
                let _stop = StopOnPanic(stop);
                pos(rig, members, s, stop)
            });
        }
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            chaos(&mut hq, &rigs, &members, &mut rng, secs, &stop, &mut counts)
        }));
        // Whatever happened, the POS threads must stop, or the scope never ends.
        stop.store(true, Ordering::SeqCst);
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    });
    let chaos_secs = started.elapsed().as_secs();

    // Heal: every line passes, HQ and every agent run (the chaos leaves them running), each
    // POS sends what it still holds, each store syncs.
    assert!(hq.is_running());
    for rig in &rigs {
        rig.proxy.set(Mode::Pass);
    }
    for rig in &rigs {
        rig.drain_pending(&members);
    }
    for rig in &rigs {
        rig.store
            .wait_synced(HEAL_TIMEOUT, "every store to sync once healed");
    }
    eprintln!("chaos: healed and synced at {:?}", started.elapsed());

    let mut problems: Vec<String> = Vec::new();
    let (mut sales, mut refunds, mut redemptions) = (0u64, 0u64, 0u64);
    let (mut lost, mut doubled, mut dropped_recorded) = (0u64, 0u64, 0u64);
    let (mut retried, mut dropped, mut refused) = (0u64, 0u64, 0u64);
    let (mut unreachable, mut ledger_unavailable) = (0u64, 0u64);
    let mut expected: BTreeMap<String, i64> = members.iter().map(|m| (m.id.clone(), 0)).collect();
    for rig in &rigs {
        let book = rig.book();
        let held = hq.facts_held(rig.id);
        for (key, fact) in &book.acked {
            match fact.kind {
                "sale" => sales += 1,
                "refund" => refunds += 1,
                _ => redemptions += 1,
            }
            *expected.get_mut(&members[fact.member].id).expect("member") += fact.points;
            match held.get(key) {
                None => {
                    lost += 1;
                    problems.push(format!("{}: acknowledged {key} is not at HQ", rig.id));
                }
                Some(h) if h.count != 1 => {
                    doubled += 1;
                    problems.push(format!("{}: {key} is at HQ {} times", rig.id, h.count));
                }
                Some(h)
                    if h.points != fact.points
                        || h.account.as_deref() != Some(&members[fact.member].id) =>
                {
                    problems.push(format!(
                        "{}: {key} answered {} points for {}, HQ holds {h:?}",
                        rig.id, fact.points, members[fact.member].id
                    ));
                }
                Some(_) => {}
            }
        }
        for (key, h) in &held {
            if book.acked.contains_key(key) {
                continue;
            }
            if h.count != 1 {
                doubled += 1;
                problems.push(format!("{}: {key} is at HQ {} times", rig.id, h.count));
            }
            if book.dropped.contains(key) {
                // Recorded by the agent, which died (or whose answer was lost) before the POS
                // heard: a fact all the same, once.
                dropped_recorded += 1;
                let account = h.account.clone().unwrap_or_default();
                *expected.entry(account).or_default() += h.points;
            } else if book.refused.contains_key(key) {
                problems.push(format!("{}: {key} was refused yet is at HQ: {h:?}", rig.id));
            } else {
                problems.push(format!(
                    "{}: {key} is at HQ but was never attempted: {h:?}",
                    rig.id
                ));
            }
        }
        // The receipt view of the same thing, as the other sync tests check it.
        let receipts = hq.sales_held(rig.id);
        for key in book.acked.keys() {
            if let Some(receipt) = key.strip_prefix("sale:") {
                if receipts.get(receipt) != Some(&1) {
                    problems.push(format!(
                        "{}: receipt {receipt} held {:?} times by receipt id",
                        rig.id,
                        receipts.get(receipt)
                    ));
                }
            }
        }
        let rejected = hq.rejections_held(rig.id);
        if rejected != 0 {
            problems.push(format!("{}: HQ rejected {rejected} events", rig.id));
        }
        let dead = rig.store.hq_health()["dead_letters"].clone();
        if dead != 0 {
            problems.push(format!("{}: {dead} dead letters", rig.id));
        }
        let flags = hq.flags_held(rig.id);
        for bad in [
            "duplicate_receipt",
            "conflicting_duplicate",
            "refund_without_sale",
            "unknown_member",
            "implausible_points",
        ] {
            if let Some(n) = flags.get(bad) {
                problems.push(format!("{}: HQ flagged {n} events {bad}", rig.id));
            }
        }
        eprintln!(
            "chaos: {}: acknowledged {}, acknowledged after a retry {}, dropped {} ({} of them recorded), refused {} {:?}, failures: unreachable {}, ledger unavailable {}, other {}; HQ flags {flags:?}",
            rig.id,
            book.acked.len(),
            book.acked_after_retry,
            book.dropped.len(),
            book.dropped.iter().filter(|k| held.contains_key(*k)).count(),
            book.refused.len(),
            book.refused.values().fold(BTreeMap::<&str, u32>::new(), |mut m, c| {
                *m.entry(c.as_str()).or_default() += 1;
                m
            }),
            book.unreachable,
            book.ledger_unavailable,
            book.other_failures,
        );
        retried += book.acked_after_retry;
        dropped += book.dropped.len() as u64;
        refused += book.refused.len() as u64;
        unreachable += book.unreachable;
        ledger_unavailable += book.ledger_unavailable;
    }
    eprintln!(
        "chaos: seed {seed}, {} s, facts {} (sales {sales}, refunds {refunds}, redemptions {redemptions}), agent kills {}, hq kills {}, proxy switches {}, disk full {}, restores {}, lost {lost}, doubled {doubled}",
        t0.elapsed().as_secs(),
        sales + refunds + redemptions,
        counts.agent_kills,
        counts.hq_kills,
        counts.proxy_switches,
        counts.disk_full,
        counts.restores,
    );
    eprintln!(
        "chaos: chaos phase {chaos_secs} s, backups {}, events only at HQ after the restores {}, retried and acknowledged {retried}, dropped {dropped} ({dropped_recorded} recorded all the same), refused {refused}, requests unanswered {unreachable}, 503 ledger unavailable {ledger_unavailable}",
        counts.backups, counts.only_at_hq
    );
    assert!(
        problems.is_empty(),
        "{} problems (the first 50):\n{}",
        problems.len(),
        problems
            .iter()
            .take(50)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!((lost, doubled), (0, 0));

    // Balances: HQ's is the sum of the facts; every store shows HQ's once it has pulled.
    for m in &members {
        let want = expected[&m.id];
        let at_hq = hq.member(&m.id);
        assert_eq!(at_hq["balance"], want, "HQ balance of {}: {at_hq}", m.id);
        for rig in &rigs {
            wait_until(
                Duration::from_secs(30),
                "every store to show HQ's balance",
                || rig.store.balance(&m.id) == Some(want),
                || {
                    format!(
                        "{} at {}: {:?}, HQ {want}",
                        m.id,
                        rig.id,
                        rig.store.balance(&m.id)
                    )
                },
            );
        }
    }
    eprintln!("chaos: balances agree at {:?}", started.elapsed());
    assert!(
        counts.restores >= 1 && counts.disk_full >= 1,
        "the scripted steps ran"
    );
}

/// Faults until `secs` have passed: random ones between the scripted disk-full, backup and
/// restore steps of each round.
fn chaos(
    hq: &mut Hq,
    rigs: &[Rig],
    members: &[Member],
    rng: &mut Rng,
    secs: u64,
    stop: &AtomicBool,
    counts: &mut Counts,
) {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let rounds = (secs / ROUND_SECS).max(1);
    let round = Duration::from_secs(secs) / rounds as u32;
    let mut script: VecDeque<(Instant, Step)> = VecDeque::new();
    for r in 0..rounds as u32 {
        let at = |fraction: f64| start + round * r + round.mul_f64(fraction);
        let disk = rng.below(rigs.len() as u64) as usize;
        // Another store than the full disk's, so each scripted step has a store to itself.
        let restored = (disk + 1 + rng.below(rigs.len() as u64 - 1) as usize) % rigs.len();
        script.push_back((at(0.15), Step::DiskFull(disk)));
        script.push_back((at(0.35), Step::Backup(restored)));
        script.push_back((at(0.6), Step::Restore(restored)));
    }
    let mut backups: BTreeMap<usize, Backup> = BTreeMap::new();
    for _ in 0..MAX_FAULTS {
        if stop.load(Ordering::SeqCst) {
            // A POS thread failed: its panic says why once the scope ends.
            return;
        }
        let now = Instant::now();
        if let Some(&(when, step)) = script.front() {
            if when <= now {
                script.pop_front();
                eprintln!(
                    "chaos: {:>5.1} s {step:?} ({})",
                    start.elapsed().as_secs_f64(),
                    rigs[index(step)].id
                );
                match step {
                    Step::DiskFull(i) => disk_full(&rigs[i], counts),
                    Step::Backup(i) => {
                        backups.insert(i, backup(&rigs[i], counts));
                    }
                    Step::Restore(i) => {
                        let b = backups.remove(&i).expect("a backup before the restore");
                        restore(hq, &rigs[i], members, &b, counts);
                    }
                }
                continue;
            }
        } else if now >= deadline {
            break;
        }
        // Drawn whole before the clock has a say, so that a seed fixes the sequence of faults
        // whatever the timing (only how many fit in the run varies).
        let fault = Fault::draw(rng, rigs.len());
        let pause = rng.millis(150, 900);
        let next = script.front().map_or(deadline, |s| s.0.min(deadline));
        std::thread::sleep(pause.min(next.saturating_duration_since(now)));
        if Instant::now() >= next {
            continue;
        }
        match fault {
            Fault::Line(i, mode) => {
                rigs[i].proxy.set(mode);
                counts.proxy_switches += 1;
            }
            Fault::HealLines => {
                for rig in rigs {
                    rig.proxy.set(Mode::Pass);
                    counts.proxy_switches += 1;
                }
            }
            Fault::KillAgent(i, down) => {
                let rig = &rigs[i];
                let mut slot = rig.agent();
                if let Some(agent) = slot.as_mut() {
                    agent.kill9();
                }
                counts.agent_kills += 1;
                // Down a while: the POS meets refused connections meanwhile.
                std::thread::sleep(down);
                rig.start(&mut slot, |_| {});
            }
            Fault::KillHq(down) => {
                hq.kill9();
                counts.hq_kills += 1;
                std::thread::sleep(down);
                hq.launch();
            }
        }
    }
}

/// One random fault: which, where, and for how long.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// A store's line to HQ switches mode.
    Line(usize, Mode),
    /// Every line passes again: without it, backlogs would only drain at the end.
    HealLines,
    /// kill -9 of a store's agent, restarted after this long.
    KillAgent(usize, Duration),
    /// kill -9 of HQ, restarted after this long.
    KillHq(Duration),
}

impl Fault {
    fn draw(rng: &mut Rng, stores: usize) -> Fault {
        let store = rng.below(stores as u64) as usize;
        match rng.below(100) {
            0..=54 => Fault::Line(
                store,
                match rng.below(8) {
                    0 | 1 => Mode::Pass,
                    2 => Mode::Refuse,
                    3 => Mode::ResetMidRequest,
                    4 => Mode::CutResponse(0),
                    5 => Mode::CutResponse(150),
                    6 => Mode::CutResponse(600),
                    _ => Mode::Delay(rng.millis(50, 1_500)),
                },
            ),
            55..=64 => Fault::HealLines,
            65..=87 => Fault::KillAgent(store, rng.millis(0, 800)),
            _ => Fault::KillHq(rng.millis(100, 2_000)),
        }
    }
}

fn index(step: Step) -> usize {
    match step {
        Step::DiskFull(i) | Step::Backup(i) | Step::Restore(i) => i,
    }
}

/// The agent restarted under a file-size limit a little above its ledger's size, then, once it
/// answered 503 (or after a while), killed -9 with the disk still full and started normally.
fn disk_full(rig: &Rig, counts: &mut Counts) {
    let refusals_before = rig.book().ledger_unavailable;
    {
        let _paused = rig.pause();
        let mut slot = rig.agent();
        // A clean stop checkpoints the WAL into ledger.db, so the limit is measured against
        // what the ledger really holds and the restarted agent can open it.
        rig.proxy.set(Mode::Pass);
        let code = slot.as_mut().and_then(Agent::terminate);
        assert_eq!(
            code,
            Some(0),
            "{}: a clean stop; log:\n{}",
            rig.id,
            rig.store.log()
        );
        let size = |name: &str| std::fs::metadata(rig.data().join(name)).map_or(0, |m| m.len());
        let limit = size("ledger.db") + size("ledger.db-wal") + 48 * 1024;
        rig.start(&mut slot, |cmd| limit_file_size(cmd, limit));
    }
    // The POS keeps selling into it until the disk is full.
    wait_until(
        Duration::from_secs(30),
        "the full disk to refuse a request with 503",
        || rig.book().ledger_unavailable > refusals_before,
        || rig.store.log(),
    );
    std::thread::sleep(Duration::from_millis(500));
    let _paused = rig.pause();
    let (status, health) = rig.store.get("/healthz");
    assert_eq!(
        status, 200,
        "{}: a full disk still answers reads: {health}",
        rig.id
    );
    let mut slot = rig.agent();
    rig.start(&mut slot, |_| {});
    counts.disk_full += 1;
}

struct Backup {
    path: PathBuf,
    /// The last seq the backup's ledger holds: HQ must be ahead of it before the restore.
    last_seq: i64,
}

/// `loyalty-agent backup` while the agent serves and the POS sells.
fn backup(rig: &Rig, counts: &mut Counts) -> Backup {
    counts.backups += 1;
    let path = rig
        .store
        .dir
        .path()
        .join(format!("backup-{}.db", counts.backups));
    let out = Command::new(agent_binary())
        .args(["backup", "--config"])
        .arg(&rig.store.config)
        .arg("--out")
        .arg(&path)
        .output()
        .expect("running loyalty-agent backup");
    assert!(
        out.status.success(),
        "{}: backup: {}{}",
        rig.id,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let last_seq =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| c.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0)))
            .expect("reading the backup");
    Backup { path, last_seq }
}

/// README's restore procedure, HQ being ahead of the backup; then `rebase`.
fn restore(hq: &Hq, rig: &Rig, members: &[Member], backup: &Backup, counts: &mut Counts) {
    let _paused = rig.pause();
    rig.proxy.set(Mode::Pass);
    rig.drain_pending(members);
    // Sales after the backup, made sure of (the POS may have made none on a slow machine).
    let sell = |n: usize| {
        for _ in 0..n {
            let op = {
                let mut book = rig.book();
                Op::Sale {
                    receipt: book.fresh_id(rig.id, "R"),
                    total: 1_000,
                    member: 0,
                }
            };
            let outcome = rig.send(members, &op);
            assert!(
                matches!(outcome, Outcome::Acked(_)),
                "{}: a sale on a healthy agent",
                rig.id
            );
            rig.record(members, op, 0, outcome, false);
        }
    };
    sell(3);
    // Everything acknowledged so far must be at HQ before the ledger loses it: a restore
    // loses what HQ does not hold, which no product can bring back.
    rig.store.wait_synced(
        HEAL_TIMEOUT,
        "everything since the backup to reach HQ before the restore",
    );
    let held = hq.events_held(rig.id);
    let watermark = hq.watermark(rig.id);
    assert!(
        watermark > backup.last_seq,
        "{}: HQ (up to seq {watermark}) is ahead of the backup (up to seq {})",
        rig.id,
        backup.last_seq
    );
    counts.only_at_hq += watermark - backup.last_seq;
    let mut slot = rig.agent();
    let code = slot.as_mut().and_then(Agent::terminate);
    assert_eq!(
        code,
        Some(0),
        "{}: a clean stop; log:\n{}",
        rig.id,
        rig.store.log()
    );
    std::fs::copy(&backup.path, rig.data().join("ledger.db")).expect("copying the backup in");
    for side in ["ledger.db-wal", "ledger.db-shm"] {
        let _ = std::fs::remove_file(rig.data().join(side));
    }
    rig.start(&mut slot, |_| {});
    // What was sold before is no longer all in this ledger: refunds only of sales made from
    // now on (a refund of a sale the ledger lost would be refused as an unknown receipt).
    rig.book().refundable.clear();
    sell(3);
    wait_until(
        Duration::from_secs(30),
        "HQ to refuse the restored ledger with seq_conflict",
        || {
            let h = rig.store.hq_health();
            h["state"] == "blocked" && h["blocked"] == "seq_conflict"
        },
        || {
            format!(
                "healthz: {}\nlog:\n{}",
                rig.store.hq_health(),
                rig.store.log()
            )
        },
    );
    assert_eq!(
        hq.events_held(rig.id),
        held,
        "{}: nothing of a refused push is written",
        rig.id
    );
    let code = slot.as_mut().and_then(Agent::terminate);
    assert_eq!(
        code,
        Some(0),
        "{}: a clean stop; log:\n{}",
        rig.id,
        rig.store.log()
    );
    let out = Command::new(agent_binary())
        .args([
            "rebase",
            "--reason",
            "chaos soak: restored a backup",
            "--config",
        ])
        .arg(&rig.store.config)
        .output()
        .expect("running loyalty-agent rebase");
    assert!(
        out.status.success(),
        "{}: rebase: {}{}",
        rig.id,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    rig.start(&mut slot, |_| {});
    counts.restores += 1;
}
