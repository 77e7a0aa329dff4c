//! etcd's `HashKV(rev)` offline: what a member answers to
//! `Maintenance/HashKV` (`etcdctl endpoint hashkv --rev R`).
//!
//! etcd (server/storage/mvcc `hash.go`, and `kvstore.go` `HashByRev` in 3.4 and
//! 3.5) hashes with CRC-32C (Castagnoli): first the bucket name `key`, then every
//! key and value of the `key` bucket in order whose main revision is at most
//! `rev`, except, when the compact revision is `C`:
//! - an entry at or below `C` is skipped unless compaction at `rev` would keep
//!   it (`kvindex.Keep(rev)`: each live key's newest revision at `rev`; a
//!   deleted key's none), and this rule applies only when that set is not empty;
//! - a tombstone at exactly `C` is skipped (newer etcd keeps it on disk, older
//!   deleted it: both hash the same).
//!
//! One pass over the bucket (in revision order, with `C` read from `meta`
//! first): entries above `C` are hashed as they come; an entry at or below `C`
//! is kept only if no newer revision of its key follows, which the walk knows
//! only at its end, so each key's newest revision carries its own entry's CRC,
//! and the kept ones are joined in revision order at the end ([`super::crc`]).
//! The entries at or below `C` are hashed as a whole too, for when no key is
//! live. `HashKV` at an earlier `rev` is the same, taken when the walk first
//! passes `rev`.

use std::collections::HashMap;

use super::Rev;
use super::crc::combine;

/// A user key's newest revision so far (the key is held as a keyed hash).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Latest {
    main: i64,
    sub: i64,
    /// The entry's own CRC-32C and length (key and value), when at or below `C`.
    len: u64,
    crc: u32,
    tomb: bool,
}

/// Each user key's newest revision, by keyed hash.
pub(crate) type Newest = HashMap<u64, Latest>;

/// A CRC-32C and the length of what it covers.
#[derive(Debug, Clone, Copy, Default)]
struct Part {
    crc: u32,
    len: u64,
}

impl Part {
    fn join(&mut self, crc: u32, len: u64) {
        self.crc = combine(self.crc, crc, len);
        self.len += len;
    }
}

/// The walk of the `key` bucket: facts' newest revisions and `HashKV`.
pub(crate) struct Pass {
    compact: i64,
    at: Option<i64>,
    newest: Newest,
    /// Entries at or below `C` (less a tombstone at `C`): hashed when no key is live.
    below_all: Part,
    /// Entries above `C`.
    above: Part,
    /// `HashKV` at `at`, once the walk passed it.
    at_sum: Option<u32>,
}

impl Pass {
    /// A walk for compact revision `compact`; `at`: hash at that revision too.
    pub(crate) fn new(compact: i64, at: Option<i64>) -> Pass {
        Pass {
            compact,
            at,
            newest: Newest::new(),
            below_all: Part::default(),
            above: Part::default(),
            at_sum: None,
        }
    }

    /// The next entry of the `key` bucket (ascending), its user key hashed to `user`.
    pub(crate) fn write(&mut self, r: Rev, user: u64, k: &[u8], v: &[u8]) {
        self.passing(r);
        let len = (k.len() + v.len()) as u64;
        if r.main > self.compact {
            let crc = crc32c::crc32c_append(self.above.crc, k);
            self.above.crc = crc32c::crc32c_append(crc, v);
            self.above.len += len;
            self.record(r, user, 0, 0);
        } else {
            let crc = crc32c::crc32c_append(crc32c::crc32c(k), v);
            self.below(r, user, crc, len);
        }
    }

    /// [`Pass::write`] of an entry given by its CRC-32C (key and value) and length.
    pub(crate) fn write_crc(&mut self, r: Rev, user: u64, crc: u32, len: u64) {
        self.passing(r);
        if r.main > self.compact {
            self.above.join(crc, len);
            self.record(r, user, 0, 0);
        } else {
            self.below(r, user, crc, len);
        }
    }

    /// HashKV at `at` is taken when the walk first passes it.
    fn passing(&mut self, r: Rev) {
        if self.at.is_some_and(|at| r.main > at) && self.at_sum.is_none() {
            self.at_sum = Some(self.sum());
        }
    }

    fn below(&mut self, r: Rev, user: u64, crc: u32, len: u64) {
        if !(r.main == self.compact && r.tombstone) {
            self.below_all.join(crc, len);
        }
        self.record(r, user, crc, len);
    }

    fn record(&mut self, r: Rev, user: u64, crc: u32, len: u64) {
        let latest = Latest {
            main: r.main,
            sub: r.sub,
            len,
            crc,
            tomb: r.tombstone,
        };
        self.newest.insert(user, latest);
    }

    /// `HashKV` of what was written so far.
    fn sum(&self) -> u32 {
        let mut kept: Vec<Latest> = self
            .newest
            .values()
            .filter(|l| !l.tomb && l.main <= self.compact)
            .copied()
            .collect();
        let below = if self.newest.values().any(|l| !l.tomb) {
            kept.sort_unstable_by_key(|l| (l.main, l.sub));
            let mut p = Part::default();
            for l in kept {
                p.join(l.crc, l.len);
            }
            p
        } else {
            self.below_all
        };
        let with_below = combine(crc32c::crc32c(b"key"), below.crc, below.len);
        combine(with_below, self.above.crc, self.above.len)
    }

    /// Live keys: those whose newest revision is not a deletion.
    pub(crate) fn live_keys(&self) -> u64 {
        self.newest.values().filter(|l| !l.tomb).count() as u64
    }

    /// `HashKV` at the db's revision, and at `at` when it was given.
    pub(crate) fn finish(self) -> (u32, Option<u32>) {
        let sum = self.sum();
        let at = self.at.map(|_| self.at_sum.unwrap_or(sum));
        (sum, at)
    }
}
