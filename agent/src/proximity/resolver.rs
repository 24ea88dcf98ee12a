//! Member resolution: rotating id -> member, for the intervals around now.
//!
//! # Invariants
//! - A [`ResolverMap`] built for interval `n` holds every member's ids of `n - 1`, `n` and
//!   `n + 1`, and nothing else: an id of any other interval (a replay) is [`Resolution::Unknown`].
//! - An id is accepted only when its interval is within one of the `now` interval passed to
//!   [`ResolverMap::resolve`]: a map kept past its interval answers [`Resolution::Stale`] rather
//!   than accept a dead id.
//! - An id that two members claim within the window resolves to nobody
//!   ([`Resolution::Ambiguous`]) and is counted ([`ResolverMap::conflicts`]): guessing would
//!   hand one member's gift to another.
//!
//! # Layout, and why
//! Ids are AES outputs, so their bits are uniform and cannot be steered by anyone without the
//! keys. The map is an open-addressing table with linear probing, indexed by the id's top bits
//! (no hashing needed), at most 3/4 full: a slot is the id (`u64`) and a `u32` packing the member
//! index and the interval, 16 bytes, so a lookup usually reads one cache line (a sorted array
//! with binary search would take about 20 dependent reads at 3 million ids). 1,000,000 members
//! make 3,000,000 ids in 2^22 slots: 64 MiB, plus 16 bytes a member for the member list.
//!
//! Member ids are not copied: the map holds the caller's [`MemberId`]s (shared `Arc<str>`), one
//! per member, and slots refer to them by `u32` index.
//!
//! The build expands each member's key once and encrypts three blocks together (AES-NI
//! pipelines them). It is pure and single-threaded: run it on a blocking thread at each interval
//! boundary and swap the result in (the old map keeps answering meanwhile, since it accepts
//! `n + 1`).

use std::sync::Arc;

use super::rotating_id::{IdGenerator, ProximityKey};

/// A member id, shared between the member table and the proximity pipeline.
pub type MemberId = Arc<str>;

/// Packed value: member index in the low 30 bits, interval offset (0, 1, 2 for `n-1`, `n`,
/// `n+1`) in the top 2.
const MEMBER_BITS: u32 = 30;
const MEMBER_MASK: u32 = (1 << MEMBER_BITS) - 1;
/// Member index marking an id claimed by two members.
const AMBIGUOUS: u32 = MEMBER_MASK;
/// The most members one map holds (the ambiguous marker takes the last index).
pub const MAX_MEMBERS: usize = AMBIGUOUS as usize;

/// Why a map could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolverError {
    /// More members than the packed index holds.
    #[error("{0} members is more than the resolver holds ({MAX_MEMBERS})")]
    TooManyMembers(usize),
    /// Interval 0 has no previous interval (only a clock at 1970 asks for it).
    #[error("interval {0} has no previous interval")]
    Interval(u64),
}

/// What an id resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution<'a> {
    /// A member's id of an interval within one of now.
    Member {
        /// The member.
        member: &'a MemberId,
        /// The member's index in the map (valid for this map only).
        index: u32,
        /// The interval the id belongs to.
        interval: u64,
    },
    /// Two members claim this id: nobody gets it.
    Ambiguous,
    /// A member's id, but of an interval more than one away from now.
    Stale {
        /// The interval the id belongs to.
        interval: u64,
    },
    /// No member's id in the map's three intervals.
    Unknown,
}

impl<'a> Resolution<'a> {
    /// The member, when resolved.
    pub fn member(&self) -> Option<&'a MemberId> {
        match self {
            Self::Member { member, .. } => Some(member),
            _ => None,
        }
    }
}

/// A slot of the table. `value == EMPTY` marks a free slot.
#[derive(Debug, Clone, Copy)]
struct Slot {
    id: u64,
    value: u32,
}

/// Interval offset 3 is never used, so this value is no entry's.
const EMPTY: u32 = u32::MAX;

/// Rotating id -> member for the intervals `n - 1`, `n`, `n + 1`.
#[derive(Debug, Clone)]
pub struct ResolverMap {
    interval: u64,
    shift: u32,
    mask: usize,
    slots: Vec<Slot>,
    len: usize,
    members: Vec<MemberId>,
    conflicts: usize,
}

impl ResolverMap {
    /// Builds the map for `interval` from `(member id, proximity key)` pairs.
    ///
    /// A member listed twice counts as two members (its ids become ambiguous): the member table
    /// should not hold duplicates, and this refuses to guess which entry is right.
    pub fn build(
        members: &[(MemberId, ProximityKey)],
        interval: u64,
    ) -> Result<Self, ResolverError> {
        if members.len() > MAX_MEMBERS {
            return Err(ResolverError::TooManyMembers(members.len()));
        }
        let first = interval
            .checked_sub(1)
            .ok_or(ResolverError::Interval(interval))?;
        let entries = members.len() * 3;
        // At most 3/4 full keeps probe runs short (about 2.5 slots for a miss at 0.72).
        let size = (entries * 4 / 3 + 1).next_power_of_two().max(16);
        let shift = 64 - size.trailing_zeros();
        let mask = size - 1;
        let mut slots = vec![
            Slot {
                id: 0,
                value: EMPTY,
            };
            size
        ];
        let mut conflicts = 0;
        for (index, (_, key)) in members.iter().enumerate() {
            let ids = IdGenerator::new(key).three(first);
            for (offset, id) in ids.into_iter().enumerate() {
                let value = (offset as u32) << MEMBER_BITS | index as u32;
                conflicts += insert(&mut slots, shift, mask, id, value);
            }
        }
        Ok(Self {
            interval,
            shift,
            mask,
            slots,
            len: entries,
            members: members.iter().map(|(m, _)| m.clone()).collect(),
            conflicts,
        })
    }

    /// Resolves `id` heard during interval `now`.
    pub fn resolve(&self, id: u64, now: u64) -> Resolution<'_> {
        let mut at = (id >> self.shift) as usize & self.mask;
        let mut found = Resolution::Unknown;
        // The table is never full, so the probe meets a free slot; the bound is belt and braces.
        for _ in 0..self.slots.len() {
            let Some(slot) = self.slots.get(at) else {
                break;
            };
            if slot.value == EMPTY {
                break;
            }
            at = (at + 1) & self.mask;
            if slot.id != id {
                continue;
            }
            let index = slot.value & MEMBER_MASK;
            if index == AMBIGUOUS {
                return Resolution::Ambiguous;
            }
            // interval ≥ 1 was checked at build: `interval - 1 + offset` cannot underflow.
            let interval = self.interval - 1 + u64::from(slot.value >> MEMBER_BITS);
            if interval.abs_diff(now) > 1 {
                found = Resolution::Stale { interval };
                continue;
            }
            return match self.members.get(index as usize) {
                Some(member) => Resolution::Member {
                    member,
                    index,
                    interval,
                },
                None => Resolution::Unknown,
            };
        }
        found
    }

    /// The interval the map was built for.
    pub fn interval(&self) -> u64 {
        self.interval
    }

    /// Members in the map.
    pub fn members(&self) -> usize {
        self.members.len()
    }

    /// The member at `index` (from a [`Resolution::Member`] of this map).
    pub fn member(&self, index: u32) -> Option<&MemberId> {
        self.members.get(index as usize)
    }

    /// Ids in the map (three per member).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the map holds no id.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Distinct ids claimed by two or more members in the window (each resolves to nobody).
    pub fn conflicts(&self) -> usize {
        self.conflicts
    }

    /// Heap bytes the map owns (member id strings excluded: they are shared with the member
    /// table).
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.members.capacity() * std::mem::size_of::<MemberId>()
    }
}

/// Inserts one id; returns 1 when it makes a new conflict (another member already has the id:
/// every entry of the id becomes ambiguous, and later claimants join them).
fn insert(slots: &mut [Slot], shift: u32, mask: usize, id: u64, value: u32) -> usize {
    let member = value & MEMBER_MASK;
    let mut at = (id >> shift) as usize & mask;
    let mut conflict = 0;
    let mut ambiguous = false;
    for _ in 0..slots.len() {
        let Some(slot) = slots.get_mut(at) else {
            break;
        };
        if slot.value == EMPTY {
            let value = if ambiguous {
                (value & !MEMBER_MASK) | AMBIGUOUS
            } else {
                value
            };
            *slot = Slot { id, value };
            return conflict;
        }
        if slot.id == id {
            let other = slot.value & MEMBER_MASK;
            if other == AMBIGUOUS {
                ambiguous = true;
            } else if other != member {
                // First clash for this id: count it once, mark every entry of it on the way.
                if !ambiguous {
                    conflict = 1;
                }
                ambiguous = true;
                slot.value = (slot.value & !MEMBER_MASK) | AMBIGUOUS;
            }
            // The same member twice (its own ids colliding after truncation, 2^-64): keep both.
        }
        at = (at + 1) & mask;
    }
    conflict
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proximity::rotating_id::rotating_id;

    fn key(i: u32) -> ProximityKey {
        let mut k = [0u8; 16];
        k[..4].copy_from_slice(&i.to_be_bytes());
        k[15] = 0x5A;
        ProximityKey(k)
    }

    fn members(n: u32) -> Vec<(MemberId, ProximityKey)> {
        (0..n)
            .map(|i| (MemberId::from(format!("M{i:06}")), key(i)))
            .collect()
    }

    const N: u64 = 2_900_000;

    #[test]
    fn resolves_every_member_in_the_window() {
        let ms = members(1000);
        let map = ResolverMap::build(&ms, N).expect("builds");
        assert_eq!(map.len(), 3000);
        assert_eq!(map.members(), 1000);
        assert_eq!(map.conflicts(), 0);
        for (m, k) in &ms {
            for n in [N - 1, N, N + 1] {
                match map.resolve(rotating_id(k, n), N) {
                    Resolution::Member {
                        member, interval, ..
                    } => {
                        assert_eq!(member, m);
                        assert_eq!(interval, n);
                    }
                    other => panic!("{m}: interval {n}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn replayed_and_foreign_ids_are_not_resolved() {
        let ms = members(100);
        let map = ResolverMap::build(&ms, N).expect("builds");
        // An id of two intervals ago, replayed: not in the map at all.
        assert_eq!(
            map.resolve(rotating_id(&ms[3].1, N - 2), N),
            Resolution::Unknown
        );
        assert_eq!(
            map.resolve(rotating_id(&ms[3].1, N + 2), N),
            Resolution::Unknown
        );
        assert_eq!(map.resolve(0xDEAD_BEEF, N), Resolution::Unknown);
    }

    #[test]
    fn map_kept_past_its_interval_answers_stale() {
        let ms = members(10);
        let map = ResolverMap::build(&ms, N).expect("builds");
        // The clock moved on to N+1 before the rebuild: N-1's ids are now two intervals old.
        assert_eq!(
            map.resolve(rotating_id(&ms[0].1, N - 1), N + 1),
            Resolution::Stale { interval: N - 1 }
        );
        // N and N+1 still resolve, so the old map serves while the new one is built.
        assert!(map
            .resolve(rotating_id(&ms[0].1, N + 1), N + 1)
            .member()
            .is_some());
        assert!(map
            .resolve(rotating_id(&ms[0].1, N), N + 1)
            .member()
            .is_some());
    }

    #[test]
    fn id_claimed_by_two_members_resolves_to_nobody() {
        let mut ms = members(50);
        // A data error: two members share a key, so all three of their ids clash.
        ms[7].1 = ms[20].1;
        let map = ResolverMap::build(&ms, N).expect("builds");
        assert_eq!(map.conflicts(), 3);
        for n in [N - 1, N, N + 1] {
            assert_eq!(
                map.resolve(rotating_id(&ms[7].1, n), N),
                Resolution::Ambiguous
            );
        }
        // Everyone else is unaffected.
        assert_eq!(
            map.resolve(rotating_id(&ms[8].1, N), N).member(),
            Some(&ms[8].0)
        );
    }

    #[test]
    fn conflicts_across_intervals_count_too() {
        // Member 1's id of n-1 equals member 2's id of n+1, then member 3 claims it too.
        let mut slots = vec![
            Slot {
                id: 0,
                value: EMPTY
            };
            16
        ];
        let (shift, mask) = (60, 15);
        assert_eq!(insert(&mut slots, shift, mask, 5, 1), 0);
        assert_eq!(insert(&mut slots, shift, mask, 9, 3 | 1 << MEMBER_BITS), 0);
        assert_eq!(insert(&mut slots, shift, mask, 5, 2 | 2 << MEMBER_BITS), 1);
        assert_eq!(insert(&mut slots, shift, mask, 5, 4), 0, "counted once");
        let fives: Vec<u32> = slots
            .iter()
            .filter(|s| s.id == 5)
            .map(|s| s.value)
            .collect();
        assert_eq!(fives, [AMBIGUOUS, AMBIGUOUS | 2 << MEMBER_BITS, AMBIGUOUS]);
        // The same member twice is no conflict.
        assert_eq!(insert(&mut slots, shift, mask, 9, 3), 0);
    }

    #[test]
    fn probe_runs_wrap_around_the_table() {
        let mut slots = vec![
            Slot {
                id: 0,
                value: EMPTY
            };
            16
        ];
        // Ids whose top bits point at the last slot.
        for i in 0..3 {
            assert_eq!(insert(&mut slots, 60, 15, u64::MAX - i, i as u32), 0);
        }
        let map = ResolverMap {
            interval: N,
            shift: 60,
            mask: 15,
            slots,
            len: 3,
            members: (0..3).map(|i| MemberId::from(format!("M{i}"))).collect(),
            conflicts: 0,
        };
        for i in 0..3 {
            assert_eq!(
                map.resolve(u64::MAX - i, N).member().map(|m| &**m),
                Some(&*format!("M{i}"))
            );
        }
    }

    #[test]
    fn empty_and_edge_maps() {
        let map = ResolverMap::build(&[], N).expect("builds");
        assert!(map.is_empty());
        assert_eq!(map.resolve(u64::MAX, N), Resolution::Unknown);
        assert_eq!(
            ResolverMap::build(&members(1), 0).err(),
            Some(ResolverError::Interval(0))
        );
        let map = ResolverMap::build(&members(1), 1).expect("interval 1 has interval 0 before it");
        assert!(map.resolve(rotating_id(&key(0), 0), 1).member().is_some());
    }

    #[test]
    fn stable_across_rebuilds_with_reordered_members() {
        let ms = members(200);
        let mut reversed = ms.clone();
        reversed.reverse();
        let a = ResolverMap::build(&ms, N).expect("builds");
        let b = ResolverMap::build(&reversed, N).expect("builds");
        for (m, k) in &ms {
            let id = rotating_id(k, N);
            assert_eq!(a.resolve(id, N).member(), Some(m));
            assert_eq!(b.resolve(id, N).member(), Some(m));
        }
    }

    #[test]
    fn memory_is_under_150_bytes_a_member() {
        let map = ResolverMap::build(&members(10_000), N).expect("builds");
        // 3 slots of 16 B, the table between 3/8 and 3/4 full (a power of two), + 16 B.
        let per_member = map.heap_bytes() as f64 / 10_000.0;
        assert!(per_member < 150.0, "{per_member} bytes a member");
    }
}
