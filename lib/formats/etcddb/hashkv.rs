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
//! "Each live key's newest revision at rev" is found in a first pass: the newest
//! in the bucket when `rev` is the db's own revision, else the newest the walk
//! (in revision order) had seen when it first passed `rev`.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use super::{Newest, kv_key, parse_rev};
use crate::base::error::Result;

/// The running hash.
pub struct Hasher<'a> {
    crc: u32,
    rev: i64,
    compact: i64,
    newest: &'a Newest,
    keep_any: bool,
    hasher: &'a RandomState,
}

impl<'a> Hasher<'a> {
    /// Hashing up to `rev` with compact revision `compact`; `newest` maps each
    /// user key (hashed by `hasher`) to its newest revision in the db.
    pub(crate) fn new(rev: i64, compact: i64, newest: &'a Newest, hasher: &'a RandomState) -> Self {
        Hasher {
            crc: crc32c::crc32c(b"key"),
            rev,
            compact,
            keep_any: newest.values().any(|(_, _, tomb)| !tomb),
            newest,
            hasher,
        }
    }

    /// The next entry of the `key` bucket.
    pub fn write(&mut self, k: &[u8], v: &[u8]) -> Result<()> {
        let r = parse_rev(k)?;
        if r.main > self.rev {
            return Ok(());
        }
        if r.main <= self.compact && self.keep_any {
            let user = self.hasher.hash_one(kv_key(v)?);
            let kept = self
                .newest
                .get(&user)
                .is_some_and(|(main, sub, tomb)| !tomb && *main == r.main && *sub == r.sub);
            if !kept {
                return Ok(());
            }
        }
        if r.main == self.compact && r.tombstone {
            return Ok(());
        }
        self.crc = crc32c::crc32c_append(self.crc, k);
        self.crc = crc32c::crc32c_append(self.crc, v);
        Ok(())
    }

    /// The hash.
    pub fn sum(&self) -> u32 {
        self.crc
    }
}
