//! The btleplug source's own memory of devices, and the decisions made from it. Pure: no
//! D-Bus, no clock (every function takes `now`), so it is unit-tested here.
//!
//! BlueZ does not report every advertisement: it emits a `PropertiesChanged` signal only when a
//! property changes (an RSSI that did not move is silent), it splits one signal into several
//! btleplug events (RSSI, manufacturer data, ...), and it keeps the last RSSI of a device as a
//! property after the device went quiet. So the table holds, per device, when it was last heard
//! and what it advertises (its phone token, if any), and:
//! - an RSSI update for a known device is a sighting without reading its properties again;
//! - a *listing* (the `DeviceDiscovered` btleplug synthesises for every device BlueZ already
//!   knows when an event stream opens, i.e. after each scan restart) of a device heard within
//!   the TTL is not an advertisement and reports nothing: its RSSI property may be stale;
//! - entries not heard for the TTL are dropped, and the table never grows past its capacity
//!   (a crowd of random addresses evicts the least recently heard).

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use crate::proximity::Advert;

/// Devices remembered at most: a busy street outside a shop window stays well under this.
pub const DEFAULT_CAPACITY: usize = 4096;

/// What a device advertises, as far as this source cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A member's phone token: its rotating id.
    Phone(u64),
    /// A beacon of another known format (iBeacon, AltBeacon, Eddystone): counted in health, not
    /// sent, because nothing downstream resolves it to a member.
    Beacon,
    /// Nothing we decode (headphones, watches, ...).
    Other,
}

/// The kind of a device from all the adverts decoded from its properties: a phone token wins
/// over any beacon format it may also carry.
pub fn classify(adverts: &[Advert]) -> Kind {
    if let Some(token) = adverts.iter().find_map(Advert::token_id) {
        Kind::Phone(token)
    } else if adverts.is_empty() {
        Kind::Other
    } else {
        Kind::Beacon
    }
}

/// How a device's properties were read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// An advertisement event (manufacturer data, service data, an RSSI change of a device not in
    /// the table, an updated device, or a device new to BlueZ).
    Advertised,
    /// `DeviceDiscovered`, which btleplug also synthesises for every device BlueZ already holds
    /// when an event stream opens: maybe an advertisement, maybe an old listing.
    Listed,
}

/// Why a heard device produced no sighting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// BlueZ has no RSSI for it: it is cached, not in range now.
    NoRssi,
    /// Listed again within the TTL: its RSSI property is not news.
    Relisted,
    /// It advertises nothing we decode.
    NotOurs,
}

/// What to do with one event about one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send a sighting of this phone token at this RSSI.
    Phone { token: u64, rssi: i8 },
    /// A beacon of another format was heard: count it.
    Beacon,
    /// Nothing to report.
    Skip(Skip),
    /// An RSSI update of a device the table does not know: read its properties, then call
    /// [`DeviceTable::heard`] with [`Cause::Advertised`].
    ReadProperties,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    last_heard: Instant,
    kind: Kind,
}

/// Address -> (last heard, what it advertises), bounded in time ([`DeviceTable::expire`]) and
/// size. Generic over the key so tests need no btleplug types; the source keys it by
/// `PeripheralId`, which RSSI events carry.
#[derive(Debug)]
pub struct DeviceTable<K> {
    entries: HashMap<K, Entry>,
    capacity: usize,
    ttl: Duration,
}

impl<K: Hash + Eq + Clone> DeviceTable<K> {
    /// `capacity` is at least 1.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity: capacity.max(1),
            ttl,
        }
    }

    /// Devices remembered now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The phone token last seen from `key`.
    pub fn token(&self, key: &K) -> Option<u64> {
        match self.entries.get(key)?.kind {
            Kind::Phone(token) => Some(token),
            Kind::Beacon | Kind::Other => None,
        }
    }

    /// An RSSI change reported for `key` (BlueZ heard an advertisement whose RSSI moved).
    pub fn rssi_update(&mut self, key: &K, rssi: i16, now: Instant) -> Verdict {
        match self.entries.get_mut(key) {
            Some(entry) if !expired(entry, now, self.ttl) => {
                entry.last_heard = now;
                verdict(entry.kind, rssi)
            }
            // Unknown or forgotten: what it advertises may have changed while it was away.
            _ => Verdict::ReadProperties,
        }
    }

    /// A device's properties, read after an event: `rssi` is BlueZ's RSSI property (`None` when
    /// BlueZ has none), `kind` what its advertising data decodes to.
    pub fn heard(
        &mut self,
        key: &K,
        rssi: Option<i16>,
        kind: Kind,
        cause: Cause,
        now: Instant,
    ) -> Verdict {
        let Some(rssi) = rssi else {
            return Verdict::Skip(Skip::NoRssi);
        };
        if let Some(entry) = self.entries.get_mut(key) {
            let fresh = !expired(entry, now, self.ttl);
            // What it advertises is current either way; when it was heard is not, for a listing.
            entry.kind = kind;
            if cause == Cause::Listed && fresh {
                return Verdict::Skip(Skip::Relisted);
            }
            entry.last_heard = now;
            return verdict(kind, rssi);
        }
        self.make_room(now);
        self.entries.insert(
            key.clone(),
            Entry {
                last_heard: now,
                kind,
            },
        );
        verdict(kind, rssi)
    }

    /// Drops entries not heard for the TTL; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let before = self.entries.len();
        let ttl = self.ttl;
        self.entries.retain(|_, entry| !expired(entry, now, ttl));
        before - self.entries.len()
    }

    /// Before an insert: expire, and if still full evict the least recently heard. Linear, but
    /// only when the table is full, which a shop floor does not reach.
    fn make_room(&mut self, now: Instant) {
        if self.entries.len() < self.capacity {
            return;
        }
        self.expire(now);
        while self.entries.len() >= self.capacity {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.last_heard)
                .map(|(key, _)| key.clone());
            match oldest {
                Some(key) => {
                    self.entries.remove(&key);
                }
                None => break,
            }
        }
    }
}

fn expired(entry: &Entry, now: Instant, ttl: Duration) -> bool {
    now.saturating_duration_since(entry.last_heard) > ttl
}

fn verdict(kind: Kind, rssi: i16) -> Verdict {
    match kind {
        Kind::Phone(token) => Verdict::Phone {
            token,
            rssi: rssi_i8(rssi),
        },
        Kind::Beacon => Verdict::Beacon,
        Kind::Other => Verdict::Skip(Skip::NotOurs),
    }
}

/// BlueZ reports RSSI as an i16; real values are -127..=20 dBm, so clamping loses nothing.
pub fn rssi_i8(rssi: i16) -> i8 {
    i8::try_from(rssi.clamp(i16::from(i8::MIN), i16::from(i8::MAX))).unwrap_or(i8::MIN)
}

/// When the scan counts as stalled: `stall_after` past the last event (or the scan's start).
pub fn stall_deadline(last_event: Instant, stall_after: Duration) -> Instant {
    last_event + stall_after
}

#[cfg(test)]
mod tests {
    use loyalty_firmware::ibeacon::IBeacon;
    use loyalty_firmware::token::PhoneToken;

    use super::*;

    const TTL: Duration = Duration::from_secs(10);

    fn phone(id: u64) -> Advert {
        Advert::PhoneToken(PhoneToken { id, tx_power: -59 })
    }

    fn beacon() -> Advert {
        Advert::IBeacon(IBeacon {
            uuid: [7; 16],
            major: 1,
            minor: 2,
            measured_power: -60,
        })
    }

    #[test]
    fn phone_tokens_win_and_the_rest_is_beacon_or_other() {
        assert_eq!(classify(&[beacon(), phone(9)]), Kind::Phone(9));
        assert_eq!(classify(&[beacon()]), Kind::Beacon);
        assert_eq!(classify(&[]), Kind::Other);
    }

    #[test]
    fn rssi_is_clamped_into_an_i8() {
        assert_eq!(rssi_i8(-58), -58);
        assert_eq!(rssi_i8(-300), -128);
        assert_eq!(rssi_i8(200), 127);
    }

    #[test]
    fn an_advert_is_a_sighting_and_an_rssi_update_reuses_the_token() {
        let t0 = Instant::now();
        let mut table = DeviceTable::new(TTL, 8);
        assert_eq!(
            table.heard(&"a", Some(-60), Kind::Phone(5), Cause::Advertised, t0),
            Verdict::Phone {
                token: 5,
                rssi: -60
            }
        );
        assert_eq!(table.token(&"a"), Some(5));
        let t1 = t0 + Duration::from_secs(3);
        assert_eq!(
            table.rssi_update(&"a", -52, t1),
            Verdict::Phone {
                token: 5,
                rssi: -52
            }
        );
        // Unknown device: its properties must be read first.
        assert_eq!(table.rssi_update(&"b", -70, t1), Verdict::ReadProperties);
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn no_rssi_and_foreign_devices_send_nothing() {
        let t0 = Instant::now();
        let mut table = DeviceTable::new(TTL, 8);
        assert_eq!(
            table.heard(&"a", None, Kind::Phone(5), Cause::Advertised, t0),
            Verdict::Skip(Skip::NoRssi)
        );
        assert!(table.is_empty());
        assert_eq!(
            table.heard(&"b", Some(-70), Kind::Other, Cause::Advertised, t0),
            Verdict::Skip(Skip::NotOurs)
        );
        assert_eq!(
            table.heard(&"c", Some(-70), Kind::Beacon, Cause::Advertised, t0),
            Verdict::Beacon
        );
        // Remembered all the same: their RSSI updates need no property read.
        assert_eq!(
            table.rssi_update(&"b", -71, t0),
            Verdict::Skip(Skip::NotOurs)
        );
        assert_eq!(table.rssi_update(&"c", -71, t0), Verdict::Beacon);
    }

    #[test]
    fn a_relisting_within_the_ttl_is_not_news_but_updates_the_token() {
        let t0 = Instant::now();
        let mut table = DeviceTable::new(TTL, 8);
        table.heard(&"a", Some(-60), Kind::Phone(5), Cause::Listed, t0);
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(
            table.heard(&"a", Some(-60), Kind::Phone(6), Cause::Listed, t1),
            Verdict::Skip(Skip::Relisted)
        );
        assert_eq!(table.token(&"a"), Some(6));
        // A listing does not keep a device alive: it expires from its last advertisement.
        let t2 = t0 + TTL + Duration::from_millis(1);
        assert_eq!(table.expire(t2), 1);
        // Listed after expiry: the RSSI is BlueZ's latest, report it.
        assert_eq!(
            table.heard(&"a", Some(-61), Kind::Phone(6), Cause::Listed, t2),
            Verdict::Phone {
                token: 6,
                rssi: -61
            }
        );
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let t0 = Instant::now();
        let mut table = DeviceTable::new(TTL, 8);
        table.heard(&"a", Some(-60), Kind::Phone(5), Cause::Advertised, t0);
        table.heard(&"b", Some(-60), Kind::Other, Cause::Advertised, t0);
        let t1 = t0 + Duration::from_secs(6);
        table.rssi_update(&"a", -58, t1);
        assert_eq!(table.expire(t0 + TTL), 0);
        assert_eq!(table.expire(t0 + TTL + Duration::from_millis(1)), 1);
        assert_eq!(table.token(&"a"), Some(5));
        // An expired entry is not trusted even before the sweep removes it.
        let late = t1 + TTL + Duration::from_millis(1);
        assert_eq!(table.rssi_update(&"a", -58, late), Verdict::ReadProperties);
        assert_eq!(table.expire(late), 1);
        assert!(table.is_empty());
    }

    #[test]
    fn the_table_never_grows_past_its_capacity() {
        let t0 = Instant::now();
        let mut table = DeviceTable::new(TTL, 3);
        for i in 0..100u64 {
            let at = t0 + Duration::from_millis(i);
            table.heard(&i, Some(-80), Kind::Phone(i), Cause::Advertised, at);
            assert!(table.len() <= 3);
        }
        // The most recently heard stay.
        assert_eq!(table.token(&99), Some(99));
        assert_eq!(table.token(&97), Some(97));
        assert_eq!(table.token(&0), None);
    }

    #[test]
    fn the_stall_deadline_counts_from_the_last_event() {
        let t0 = Instant::now();
        assert_eq!(
            stall_deadline(t0, Duration::from_secs(30)),
            t0 + Duration::from_secs(30)
        );
    }
}
