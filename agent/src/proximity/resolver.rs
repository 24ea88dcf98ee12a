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
//! Ids are AES outputs, so their top bits are uniform. The map is one array of ids and one of
//! packed values, grouped by the top `k` bits of the id (a counting sort: linear, no comparison
//! sort of 3 million entries), with `2^k` bucket offsets, `2^k` about the number of entries. A
//! lookup reads one offset pair and scans about 1.5 entries: two or three cache misses against a
//! map of 1,000,000 members, where a binary search would take about 20 steps. Entries cost
//! 12 bytes (a `u64` id, a `u32` of member index and interval) and a bucket 4 bytes.
//!
//! Member ids are not copied: the map holds the caller's [`MemberId`]s (shared `Arc<str>`), one
//! per member, and entries refer to them by `u32` index.
//!
//! The build runs the key schedule and three AES blocks per member twice (once to count bucket
//! sizes, once to place), which costs less than keeping a temporary copy of every entry would
//! cost in memory. It is pure and single-threaded: run it on a blocking thread at each interval
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

/// Rotating id -> member for the intervals `n - 1`, `n`, `n + 1`.
#[derive(Debug, Clone)]
pub struct ResolverMap {
    interval: u64,
    shift: u32,
    /// `offsets[b]..offsets[b + 1]` are bucket `b`'s entries.
    offsets: Vec<u32>,
    ids: Vec<u64>,
    values: Vec<u32>,
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
        // About one bucket per entry (the largest power of two not above the entry count):
        // short scans, 4 bytes a bucket. Capped at 2^28 buckets (1 GiB of offsets).
        let k = (usize::BITS - entries.max(16).leading_zeros() - 1).clamp(4, 28);
        let shift = 64 - k;
        let buckets = 1usize << k;

        // Pass 1: bucket sizes. Offsets are u32: 3 x MAX_MEMBERS entries still fit.
        let mut offsets = vec![0u32; buckets + 1];
        for (_, key) in members {
            for id in IdGenerator::new(key).three(first) {
                offsets[(id >> shift) as usize + 1] += 1;
            }
        }
        for b in 0..buckets {
            offsets[b + 1] += offsets[b];
        }

        // Pass 2: place, recomputing the ids instead of holding 3 million entries twice.
        let mut ids = vec![0u64; entries];
        let mut values = vec![0u32; entries];
        let mut cursor: Vec<u32> = offsets[..buckets].to_vec();
        for (index, (_, key)) in members.iter().enumerate() {
            let ids3 = IdGenerator::new(key).three(first);
            for (offset, id) in ids3.into_iter().enumerate() {
                let b = (id >> shift) as usize;
                let at = cursor[b] as usize;
                cursor[b] += 1;
                ids[at] = id;
                values[at] = (offset as u32) << MEMBER_BITS | index as u32;
            }
        }
        drop(cursor);

        // Within each bucket (≈ 1.5 entries), find ids claimed by two members.
        let mut conflicts = 0;
        for b in 0..buckets {
            let range = offsets[b] as usize..offsets[b + 1] as usize;
            if range.len() < 2 {
                continue;
            }
            conflicts += mark_conflicts(&mut ids[range.clone()], &mut values[range]);
        }

        Ok(Self {
            interval,
            shift,
            offsets,
            ids,
            values,
            members: members.iter().map(|(m, _)| m.clone()).collect(),
            conflicts,
        })
    }

    /// Resolves `id` heard during interval `now`.
    pub fn resolve(&self, id: u64, now: u64) -> Resolution<'_> {
        let b = (id >> self.shift) as usize;
        let (Some(&start), Some(&end)) = (self.offsets.get(b), self.offsets.get(b + 1)) else {
            return Resolution::Unknown;
        };
        let mut found = Resolution::Unknown;
        for at in start as usize..end as usize {
            let (Some(&candidate), Some(&value)) = (self.ids.get(at), self.values.get(at)) else {
                break;
            };
            if candidate != id {
                continue;
            }
            let index = value & MEMBER_MASK;
            if index == AMBIGUOUS {
                return Resolution::Ambiguous;
            }
            // interval ≥ 1 was checked at build: `interval - 1 + offset` cannot underflow.
            let interval = self.interval - 1 + u64::from(value >> MEMBER_BITS);
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
        self.ids.len()
    }

    /// Whether the map holds no id.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Distinct ids claimed by two or more members in the window (each resolves to nobody).
    pub fn conflicts(&self) -> usize {
        self.conflicts
    }

    /// Heap bytes the map owns (member id strings excluded: they are shared with the member
    /// table).
    pub fn heap_bytes(&self) -> usize {
        self.offsets.capacity() * 4
            + self.ids.capacity() * 8
            + self.values.capacity() * 4
            + self.members.capacity() * std::mem::size_of::<MemberId>()
    }
}

/// Marks every entry whose id another member also has as ambiguous; returns the number of
/// distinct such ids. Sorts the bucket by id first (insertion sort: buckets hold about 1.5
/// entries) so that equal ids sit side by side.
fn mark_conflicts(ids: &mut [u64], values: &mut [u32]) -> usize {
    for i in 1..ids.len() {
        let mut j = i;
        while j > 0 && ids[j - 1] > ids[j] {
            ids.swap(j - 1, j);
            values.swap(j - 1, j);
            j -= 1;
        }
    }
    let mut conflicts = 0;
    let mut run = 0;
    while run < ids.len() {
        let mut end = run + 1;
        while end < ids.len() && ids[end] == ids[run] {
            end += 1;
        }
        let first = values[run] & MEMBER_MASK;
        if values[run..end].iter().any(|v| v & MEMBER_MASK != first) {
            conflicts += 1;
            for v in &mut values[run..end] {
                *v = (*v & !MEMBER_MASK) | AMBIGUOUS;
            }
        }
        run = end;
    }
    conflicts
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
        // mark_conflicts directly: member 1's id of n-1 equals member 2's id of n+1.
        let mut ids = [5u64, 9, 5];
        let mut values = [1, 3 | 1 << MEMBER_BITS, 2 | 2 << MEMBER_BITS];
        assert_eq!(mark_conflicts(&mut ids, &mut values), 1);
        // Sorted by id: the two 5s first, both ambiguous, their interval offsets kept.
        assert_eq!(ids, [5, 5, 9]);
        assert_eq!(values[0], AMBIGUOUS);
        assert_eq!(values[1], AMBIGUOUS | 2 << MEMBER_BITS);
        assert_eq!(values[2], 3 | 1 << MEMBER_BITS);
        // The same member twice (a 64-bit truncation collision of its own ids) is no conflict.
        let mut values = [1, 1 | 1 << MEMBER_BITS];
        assert_eq!(mark_conflicts(&mut [5, 5], &mut values), 0);
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
    fn memory_is_about_28_bytes_a_member() {
        let map = ResolverMap::build(&members(10_000), N).expect("builds");
        // 3 entries x 12 B + ~1 bucket per entry (4 B, rounded down to a power of two) + 16 B.
        let per_member = map.heap_bytes() as f64 / 10_000.0;
        assert!(per_member < 70.0, "{per_member} bytes a member");
    }
}
