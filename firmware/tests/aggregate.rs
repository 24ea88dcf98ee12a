//! Aggregation under embassy-time's mock driver: bursts, eviction when full, interval
//! boundaries. Run with `--features mock-time`.

use embassy_time::{Duration, Instant, MockDriver};
use loyalty_firmware::aggregate::{Aggregator, Recorded, TABLE_CAPACITY};
use loyalty_firmware::heapless;
use loyalty_firmware::node::testkit::lock_time;
use loyalty_firmware::token::PhoneToken;
use loyalty_firmware::wire::{Sighting, Subject};

fn token(id: u64) -> Subject {
    Subject::Token(PhoneToken { id, tx_power: -59 })
}

fn raw(n: u8) -> Subject {
    Subject::Raw {
        addr: [n, 0, 0, 0, 0, 0xC0],
        adv: heapless::Vec::from_slice(&[2, 1, 6]).expect("fits"),
    }
}

fn advance_ms(ms: u64) {
    MockDriver::get().advance(Duration::from_millis(ms));
}

fn drain(agg: &mut Aggregator) -> Vec<Sighting> {
    let mut all = Vec::new();
    loop {
        let (batch, more) = agg.take_batch();
        all.extend(batch);
        if !more {
            return all;
        }
    }
}

#[test]
fn burst_is_one_sighting_with_stats() {
    let _t = lock_time();
    let mut agg = Aggregator::new(Instant::now());
    // 100 advertisements in 1 s from one phone: -80..-61 repeating, plus one spike.
    for i in 0..100u8 {
        advance_ms(10);
        let rssi = -80 + (i % 20) as i8;
        agg.record(Instant::now(), token(1), rssi);
    }
    agg.record(Instant::now(), token(1), -30);
    let (first, last) = agg.seen(&token(1)).expect("tracked");
    assert_eq!(first, Instant::from_millis(10));
    assert_eq!(last, Instant::from_millis(1000));
    let closed = agg.close_interval(Instant::now());
    assert_eq!(closed.duration(), Duration::from_millis(1000));
    let out = drain(&mut agg);
    assert_eq!(out.len(), 1);
    let stats = out[0].rssi;
    assert_eq!(stats.count, 101);
    assert_eq!(stats.max, -30);
    assert_eq!(stats.min, -80);
    // Median of the last 15 samples (-75..=-61 then -30 replacing -75): -67; the spike
    // does not drag it.
    assert_eq!(stats.median, -67);
    assert!(agg.is_empty());
}

#[test]
fn token_keyed_by_id_raw_by_address() {
    let _t = lock_time();
    let mut agg = Aggregator::new(Instant::now());
    assert_eq!(
        agg.record(Instant::now(), token(5), -60),
        Recorded::Inserted
    );
    // Same id, new tx power (as after an app update): same device.
    let moved = Subject::Token(PhoneToken {
        id: 5,
        tx_power: -40,
    });
    assert_eq!(
        agg.record(Instant::now(), moved.clone(), -61),
        Recorded::Updated
    );
    assert_eq!(agg.record(Instant::now(), raw(1), -70), Recorded::Inserted);
    assert_eq!(agg.record(Instant::now(), raw(1), -71), Recorded::Updated);
    assert_eq!(agg.len(), 2);
    agg.close_interval(Instant::now());
    let out = drain(&mut agg);
    let tok = out.iter().find(|s| matches!(s.subject, Subject::Token(_)));
    assert_eq!(tok.map(|s| &s.subject), Some(&moved));
}

#[test]
fn full_table_evicts_least_recent_raw_first_and_counts() {
    let _t = lock_time();
    let mut agg = Aggregator::new(Instant::now());
    // Half raw, half tokens, all at distinct times; raw(0) is the oldest overall.
    for i in 0..TABLE_CAPACITY as u64 {
        advance_ms(1);
        let subject = if i % 2 == 0 { raw(i as u8) } else { token(i) };
        assert_eq!(agg.record(Instant::now(), subject, -70), Recorded::Inserted);
    }
    advance_ms(1);
    // Refresh raw(0): now raw(2) is the least recently heard raw.
    agg.record(Instant::now(), raw(0), -70);
    advance_ms(1);
    assert_eq!(
        agg.record(Instant::now(), token(1000), -50),
        Recorded::Evicted
    );
    assert_eq!(agg.dropped(), 1);
    assert!(agg.seen(&raw(2)).is_none(), "least recent raw evicted");
    assert!(agg.seen(&raw(0)).is_some());
    assert!(
        agg.seen(&token(1)).is_some(),
        "tokens kept while raw remain"
    );
    assert_eq!(agg.len(), TABLE_CAPACITY);
    assert_eq!(usize::from(agg.high_water()), TABLE_CAPACITY);
}

#[test]
fn tokens_only_table_drops_raw_and_evicts_oldest_token_for_token() {
    let _t = lock_time();
    let mut agg = Aggregator::new(Instant::now());
    for i in 0..TABLE_CAPACITY as u64 {
        advance_ms(1);
        agg.record(Instant::now(), token(i), -70);
    }
    advance_ms(1);
    assert_eq!(agg.record(Instant::now(), raw(9), -40), Recorded::Dropped);
    assert_eq!(
        agg.record(Instant::now(), token(500), -40),
        Recorded::Evicted
    );
    assert!(agg.seen(&token(0)).is_none(), "oldest token evicted");
    assert!(agg.seen(&token(500)).is_some());
    assert_eq!(agg.dropped(), 2);
}

#[test]
fn interval_boundary_splits_sightings() {
    let _t = lock_time();
    let mut agg = Aggregator::new(Instant::now());
    advance_ms(999);
    agg.record(Instant::now(), token(1), -60);
    advance_ms(1);
    let closed = agg.close_interval(Instant::now());
    assert_eq!(closed.end, Instant::from_millis(1000));
    // Heard at exactly the boundary, after the close: next interval.
    agg.record(Instant::now(), token(1), -90);
    // Sealed entries are taken; the new one stays.
    let (batch, more) = agg.take_batch();
    assert!(!more);
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].rssi.count, 1);
    assert_eq!(batch[0].rssi.max, -60);
    assert_eq!(agg.len(), 1);
    advance_ms(1000);
    let next = agg.close_interval(Instant::now());
    assert_eq!(next.start, Instant::from_millis(1000));
    let out = drain(&mut agg);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].rssi.max, -90);
}

#[test]
fn sightings_during_a_slow_drain_go_to_the_next_interval() {
    let _t = lock_time();
    let mut agg = Aggregator::new(Instant::now());
    for i in 0..20 {
        agg.record(Instant::now(), token(i), -60);
    }
    agg.close_interval(Instant::now());
    let (first, more) = agg.take_batch();
    assert_eq!(first.len(), 8);
    assert!(more);
    // While batch 1 is on the wire, device 3 is heard again (it may already have been sent).
    advance_ms(50);
    agg.record(Instant::now(), token(3), -55);
    let rest = drain(&mut agg);
    assert_eq!(first.len() + rest.len(), 20);
    // The new sample stays for the next interval, in its own entry.
    assert_eq!(agg.len(), 1);
    assert_eq!(
        agg.seen(&token(3)),
        Some((Instant::from_millis(50), Instant::from_millis(50)))
    );
}

#[test]
fn empty_interval_is_one_empty_batch() {
    let _t = lock_time();
    let mut agg = Aggregator::new(Instant::now());
    agg.close_interval(Instant::now());
    let (batch, more) = agg.take_batch();
    assert!(batch.is_empty());
    assert!(!more);
}
