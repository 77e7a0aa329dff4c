//! An etcd v3 db (the bbolt file in a snapshot), checked and described offline:
//! its structure as `bbolt check` checks it ([`bolt`]), etcd's own facts from its
//! buckets (revisions, compaction, consistent index and term, live keys, leases,
//! members and the cluster id), and etcd's `HashKV` at its last revision ([`hashkv`]):
//! the value `etcdctl endpoint hashkv` prints for a member holding this data.
//!
//! One walk of every tree (`meta` first: HashKV's rule needs the compact
//! revision while it walks `key`). Memory: a read window of at most 4 MiB (or
//! the largest page with its overflow pages), one branch page per tree level and
//! one bit per page, plus about 48 bytes per distinct user key (live keys and
//! HashKV's compaction rule need each key's newest revision, with that entry's
//! CRC; keys are held as 64-bit keyed hashes, not their bytes).

use std::fs::File;

use serde::Serialize;

use crate::base::error::{Error, Result};
use crate::formats::datadir::cluster::{cluster_id, id_hex};

pub mod bolt;
mod crc;
pub mod hashkv;
mod keywalk;
mod leafrun;
mod pages;
pub mod recorded;

use bolt::{BUCKET_LEAF, Bolt};

/// What a db holds, in etcd's terms.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct DbFacts {
    /// The store's current revision (what etcd starts at): the newest revision
    /// in the `key` bucket, or the compact revision if that is higher (at least 1).
    pub revision: i64,
    /// The oldest revision still in the `key` bucket (0 when it is empty).
    pub first_revision: i64,
    /// The compact revision (the newer of the scheduled and finished ones); -1
    /// when the store was never compacted, as etcd says.
    pub compact_revision: i64,
    /// etcd's `HashKV` at `revision` (CRC-32C), as `etcdctl endpoint hashkv` prints it.
    pub hash_kv: u32,
    /// Live keys at `revision`.
    pub keys: u64,
    /// Entries in the `key` bucket (revisions kept).
    pub revisions: u64,
    /// Leases.
    pub leases: u64,
    /// `meta/consistent_index`.
    pub consistent_index: u64,
    /// `meta/term` (etcd 3.5 and later write it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub term: Option<u64>,
    /// The cluster id, from the member ids (as etcd derives it), hex.
    pub cluster_id: String,
    /// The members, `id=name` (hex id), by id.
    pub members: Vec<String>,
    /// Root buckets, by name.
    pub buckets: Vec<String>,
    /// bbolt page size.
    pub page_size: u64,
    /// Bytes of the db (pages up to the high-water mark).
    pub db_bytes: u64,
    /// Bytes of the pages in use (`db_bytes` less free pages).
    pub in_use_bytes: u64,
    /// The newest bbolt transaction id.
    pub txid: u64,
}

fn bad(why: impl std::fmt::Display) -> Error {
    Error::Data(format!("etcd db: {why}"))
}

/// A `key` bucket key: `BE main ‖ '_' ‖ BE sub`, then `t` for a tombstone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rev {
    /// Main revision.
    pub main: i64,
    /// Sub revision (position within the transaction).
    pub sub: i64,
    /// A deletion marker.
    pub tombstone: bool,
}

/// Parses a `key` bucket key.
pub fn parse_rev(k: &[u8]) -> Result<Rev> {
    let tombstone = match k.len() {
        17 => false,
        18 if k[17] == b't' => true,
        _ => {
            return Err(bad(format!(
                "key bucket: malformed revision key {}",
                hex::encode(k)
            )));
        }
    };
    if k[8] != b'_' {
        return Err(bad(format!(
            "key bucket: malformed revision key {}",
            hex::encode(k)
        )));
    }
    Ok(Rev {
        main: i64::from_be_bytes(k[..8].try_into().expect("8 bytes")),
        sub: i64::from_be_bytes(k[9..17].try_into().expect("8 bytes")),
        tombstone,
    })
}

/// The `key` field (1) of an `mvccpb.KeyValue`.
pub fn kv_key(v: &[u8]) -> Result<&[u8]> {
    let mut at = 0;
    while at < v.len() {
        let (tag, n) = varint(&v[at..])?;
        at += n;
        match tag & 7 {
            0 => at += varint(&v[at..])?.1,
            1 => at += 8,
            5 => at += 4,
            2 => {
                let (len, n) = varint(&v[at..])?;
                at += n;
                let end = at
                    .checked_add(len as usize)
                    .filter(|e| *e <= v.len())
                    .ok_or_else(|| bad("key bucket: a value is not a KeyValue"))?;
                if tag >> 3 == 1 {
                    return Ok(&v[at..end]);
                }
                at = end;
            }
            _ => return Err(bad("key bucket: a value is not a KeyValue")),
        }
    }
    Err(bad("key bucket: a KeyValue without a key"))
}

fn varint(b: &[u8]) -> Result<(u64, usize)> {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((v, i + 1));
        }
    }
    Err(bad("key bucket: a value is not a KeyValue"))
}

/// Checks the db at the start of `file` (`len` bytes: a snapshot's trailer
/// follows) and describes it. `check` is called between buckets, to stop a long
/// walk (shutdown, deadline).
pub fn check(file: &File, len: u64, check: &dyn Fn() -> Result<()>) -> Result<DbFacts> {
    check_at(file, len, None, check).map(|(facts, _)| facts)
}

/// [`check`], and etcd's `HashKV` at the revision `at` as well when it is given
/// (what a member answered before the snapshot was taken; [`recorded`]). When
/// `at` is below the db's revision, each key's newest revision at `at` is kept
/// beside the newest overall: up to twice the per-key memory.
pub fn check_at(
    file: &File,
    len: u64,
    at: Option<i64>,
    check: &dyn Fn() -> Result<()>,
) -> Result<(DbFacts, Option<u32>)> {
    let mut db = Bolt::open(file, len)?;
    let mut roots: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    db.walk_root(true, &mut |k: &[u8], v: &[u8], flags: u32| {
        if flags & BUCKET_LEAF == 0 {
            return Err(bad(format!(
                "the root bucket holds a plain key {:?}, not a bucket",
                String::from_utf8_lossy(k)
            )));
        }
        roots.push((k.to_vec(), v.to_vec()));
        Ok(())
    })?;
    let mut facts = DbFacts {
        page_size: db.page_size() as u64,
        db_bytes: db.pages() * db.page_size() as u64,
        txid: db.txid(),
        buckets: roots
            .iter()
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .collect(),
        ..DbFacts::default()
    };
    for want in ["key", "meta", "members"] {
        if !roots.iter().any(|(k, _)| k == want.as_bytes()) {
            return Err(bad(format!("no {want:?} bucket")));
        }
    }
    let hasher = std::collections::hash_map::RandomState::new();
    let (mut scheduled, mut finished) = (-1i64, -1i64);
    // HashKV's walk of `key` needs the compact revision: `meta` first.
    let mut pass: Option<hashkv::Pass> = None;
    let mut member_ids = Vec::new();
    let metas = roots.iter().filter(|(k, _)| k == b"meta");
    for (name, header) in metas.chain(roots.iter().filter(|(k, _)| k != b"meta")) {
        check()?;
        let mut nested: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let name_s = String::from_utf8_lossy(name).into_owned();
        let inside = |why: String| bad(format!("bucket {name_s:?}: {why}"));
        if name == b"key" {
            let compact = scheduled.max(finished);
            let mut walk = keywalk::KeyWalk::new(hashkv::Pass::new(compact, at), &hasher, check);
            db.walk_bucket(header, true, &mut walk)?;
            (facts.revisions, facts.first_revision) = (walk.revisions, walk.first);
            facts.revision = facts.revision.max(walk.newest);
            nested = std::mem::take(&mut walk.nested);
            pass = Some(walk.pass);
        }
        let ours = |k: &[u8], v: &[u8], flags: u32| -> Result<()> {
            if flags & BUCKET_LEAF != 0 {
                nested.push((k.to_vec(), v.to_vec()));
                return Ok(());
            }
            match name.as_slice() {
                b"lease" => facts.leases += 1,
                b"members" => {
                    let id = std::str::from_utf8(k)
                        .ok()
                        .and_then(|s| u64::from_str_radix(s, 16).ok())
                        .ok_or_else(|| {
                            inside(format!(
                                "member key {:?} is not a hex id",
                                String::from_utf8_lossy(k)
                            ))
                        })?;
                    let m: serde_json::Value = serde_json::from_slice(v)
                        .map_err(|e| inside(format!("member {id:x} is not JSON: {e}")))?;
                    let member_name = m.get("name").and_then(|n| n.as_str()).unwrap_or("");
                    member_ids.push(id);
                    facts.members.push(format!("{}={member_name}", id_hex(id)));
                }
                b"meta" => match k {
                    b"consistent_index" => facts.consistent_index = be_u64(v, "consistent_index")?,
                    b"term" => facts.term = Some(be_u64(v, "term")?),
                    b"scheduledCompactRev" => scheduled = parse_rev(v)?.main,
                    b"finishedCompactRev" => finished = parse_rev(v)?.main,
                    _ => {}
                },
                _ => {}
            }
            Ok(())
        };
        if name != b"key" {
            db.walk_bucket(header, true, &mut { ours })?;
        }
        // etcd nests no buckets; any there are checked all the same.
        while let Some((_, header)) = nested.pop() {
            db.walk_bucket(&header, true, &mut |k: &[u8], v: &[u8], flags: u32| {
                if flags & BUCKET_LEAF != 0 {
                    nested.push((k.to_vec(), v.to_vec()));
                }
                let _ = (k, v);
                Ok(())
            })?;
        }
    }
    db.check_coverage()?;
    facts.in_use_bytes = match db.free_pages() {
        Some(free) => (db.pages() - free) * db.page_size() as u64,
        None => db.used_pages() * db.page_size() as u64,
    };
    facts.compact_revision = scheduled.max(finished);
    // etcd's store starts at revision 1.
    facts.revision = facts.revision.max(facts.compact_revision).max(1);
    let pass = pass.unwrap_or_else(|| hashkv::Pass::new(facts.compact_revision, at));
    facts.keys = pass.live_keys();
    facts.cluster_id = id_hex(cluster_id(&member_ids));
    facts.members.sort();
    let (hash_kv, hash_at) = pass.finish();
    facts.hash_kv = hash_kv;
    Ok((facts, hash_at))
}

fn be_u64(v: &[u8], what: &str) -> Result<u64> {
    v.try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| bad(format!("meta/{what} has {} bytes, not 8", v.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> (File, u64) {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/etcd-3.4-small.db");
        let f = File::open(path).unwrap();
        let len = f.metadata().unwrap().len() - 32;
        (f, len)
    }

    #[test]
    fn the_fixture_checks_and_its_facts_are_etcds() {
        let (f, len) = fixture();
        let facts = check(&f, len, &|| Ok(())).unwrap();
        eprintln!("{facts:?}");
        // etcdctl snapshot status: revision 208 (fixtures/README.md).
        assert_eq!(facts.revision, 208);
        assert_eq!(facts.db_bytes, len);
        assert_eq!(facts.leases, 1);
        // /a, /b, /leased, 200 /bulk/NNN (/deleted is deleted).
        assert_eq!(facts.keys, 203);
        assert_eq!(facts.members.len(), 1);
    }

    /// Each page of the fixture's db altered in its header or first element:
    /// never a panic, always exit 65 when caught, and caught for every page the
    /// db uses (a changed id or type of a page in use is always seen).
    #[test]
    fn altered_pages_are_errors_not_panics() {
        let (f, len) = fixture();
        let mut bytes = vec![0u8; len as usize];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut bytes, 0).unwrap();
        check(&f, len, &|| Ok(())).unwrap();
        let mut caught = 0;
        for page in 0..(len / 4096) as usize {
            for (at, xor) in [(0usize, 1u8), (8, 0x03), (10, 0x40), (16, 0x10), (20, 0x01)] {
                let mut b = bytes.clone();
                b[page * 4096 + at] ^= xor;
                let mut t = tempfile::tempfile().unwrap();
                std::io::Write::write_all(&mut t, &b).unwrap();
                match check(&t, len, &|| Ok(())) {
                    Err(e) => {
                        assert_eq!(e.exit_code(), 65, "{e}");
                        caught += 1;
                    }
                    // A meta page's header count (offset 10) means nothing.
                    Ok(_) => assert!(
                        page >= 2 || at == 10,
                        "meta page {page} altered at {at} went unseen"
                    ),
                }
            }
        }
        assert!(caught > 10, "{caught}");
    }

    /// Bytes flipped anywhere in the db (a fixed pseudo-random sequence): every
    /// outcome is a checked db or a data error, never a panic or a hang.
    #[test]
    fn random_flips_never_panic() {
        let (f, len) = fixture();
        let mut bytes = vec![0u8; len as usize];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut bytes, 0).unwrap();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let t = tempfile::tempfile().unwrap();
        for _ in 0..1500 {
            let mut b = bytes.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() % len) as usize;
                b[at] ^= 1 << (next() % 8);
            }
            t.set_len(0).unwrap();
            std::os::unix::fs::FileExt::write_all_at(&t, &b, 0).unwrap();
            if let Err(e) = check(&t, len, &|| Ok(())) {
                assert_eq!(e.exit_code(), 65, "{e}");
            }
        }
    }
}
