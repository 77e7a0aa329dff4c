//! The walk of the `key` bucket: revisions counted, each entry into HashKV's
//! [`Pass`]; a large value (a leaf with overflow pages) is taken in pieces and
//! hashed as it comes, its user key read from its first bytes.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use super::bolt::{BUCKET_LEAF, Visitor};
use super::hashkv::Pass;
use super::{Rev, kv_key, parse_rev};
use crate::base::error::Result;

/// A value being taken in pieces.
struct Taking {
    rev: Rev,
    crc: u32,
    len: u64,
    /// The user key's hash, once the value's first bytes held it.
    user: Option<u64>,
}

/// The `key` bucket's visitor.
pub(super) struct KeyWalk<'a> {
    pub(super) pass: Pass,
    /// Entries, the first one's revision, the newest revision.
    pub(super) revisions: u64,
    pub(super) first: i64,
    pub(super) newest: i64,
    /// Nested buckets (etcd makes none; checked all the same).
    pub(super) nested: Vec<(Vec<u8>, Vec<u8>)>,
    hasher: &'a RandomState,
    check: &'a dyn Fn() -> Result<()>,
    taking: Option<Taking>,
    /// A value's first bytes, until they hold its user key.
    prefix: Vec<u8>,
}

impl<'a> KeyWalk<'a> {
    pub(super) fn new(
        pass: Pass,
        hasher: &'a RandomState,
        check: &'a dyn Fn() -> Result<()>,
    ) -> Self {
        KeyWalk {
            pass,
            revisions: 0,
            first: 0,
            newest: 0,
            nested: Vec::new(),
            hasher,
            check,
            taking: None,
            prefix: Vec::new(),
        }
    }

    /// Counts the entry with key `k`.
    fn count(&mut self, k: &[u8]) -> Result<Rev> {
        // A long walk stops for a shutdown or the deadline.
        if self.revisions % 65536 == 65535 {
            (self.check)()?;
        }
        let rev = parse_rev(k)?;
        if self.revisions == 0 {
            self.first = rev.main;
        }
        self.revisions += 1;
        self.newest = self.newest.max(rev.main);
        Ok(rev)
    }
}

impl Visitor for KeyWalk<'_> {
    fn entry(&mut self, k: &[u8], v: &[u8], flags: u32) -> Result<()> {
        if flags & BUCKET_LEAF != 0 {
            self.nested.push((k.to_vec(), v.to_vec()));
            return Ok(());
        }
        let rev = self.count(k)?;
        let user = self.hasher.hash_one(kv_key(v)?);
        self.pass.write(rev, user, k, v);
        Ok(())
    }

    fn pieces(&self) -> bool {
        true
    }

    fn start(&mut self, k: &[u8], len: u64, _flags: u32) -> Result<()> {
        let rev = self.count(k)?;
        self.prefix.clear();
        self.taking = Some(Taking {
            rev,
            crc: crc32c::crc32c(k),
            len: k.len() as u64 + len,
            user: None,
        });
        Ok(())
    }

    fn piece(&mut self, data: &[u8]) -> Result<()> {
        let Some(t) = self.taking.as_mut() else {
            return Ok(());
        };
        t.crc = crc32c::crc32c_append(t.crc, data);
        if t.user.is_none() {
            // The key field parsed from the first bytes is the one the whole
            // value gives (the parse reads in order and stops at it).
            if self.prefix.is_empty() {
                if let Ok(key) = kv_key(data) {
                    t.user = Some(self.hasher.hash_one(key));
                    return Ok(());
                }
            }
            self.prefix.extend_from_slice(data);
            if let Ok(key) = kv_key(&self.prefix) {
                t.user = Some(self.hasher.hash_one(key));
                self.prefix.clear();
            }
        }
        Ok(())
    }

    fn end(&mut self) -> Result<()> {
        let Some(t) = self.taking.take() else {
            return Ok(());
        };
        let user = match t.user {
            Some(u) => u,
            None => self.hasher.hash_one(kv_key(&self.prefix)?),
        };
        self.pass.write_crc(t.rev, user, t.crc, t.len);
        Ok(())
    }
}
