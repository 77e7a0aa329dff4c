//! `--bump-revision N --mark-compacted`, with etcdutl 3.5.10+'s meaning
//! (etcd-io/etcd#16028, `etcdutl/snapshot/v3_snapshot.go` `modifyLatestRevision`):
//! the newest revision in the `key` bucket, `latest`, gets a key
//! `(latest.main + N, 0)` with an empty value, and `meta/scheduledCompactRev` is
//! set to that revision. etcd then starts at revision `latest + N`, finishes the
//! scheduled compaction on boot, and answers a watch from an older revision with
//! "compacted": informers relist instead of missing events.
//!
//! The key is appended copy-on-write: the `key` bucket's rightmost leaf, and each
//! branch page on the path to it, are written anew at the high-water mark; the
//! pages they replace become unreachable (free on the next scan, the freelist is
//! not synced). The new key sorts after every other, so no branch key changes.

use super::bolt::{self, BRANCH_PAGE, Db, ELEMENT, Item, LEAF_PAGE, PAGE_HEADER, u16_at, u64_at};
use crate::base::error::{Error, Result};

/// The new revision's `key` bucket key and `meta/scheduledCompactRev` value:
/// `BE main ‖ '_' ‖ BE 0`.
pub fn rev_bytes(main: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.extend_from_slice(&main.to_be_bytes());
    k.push(b'_');
    k.extend_from_slice(&0i64.to_be_bytes());
    k
}

/// The main revision of the last key of `items` (the newest), 0 when empty.
fn latest_main(last: Option<&Item>) -> Result<i64> {
    match last {
        None => Ok(0),
        Some(i) if i.key.len() >= 17 && i.key[8] == b'_' => {
            Ok(i64::from_be_bytes(i.key[..8].try_into().expect("8 bytes")))
        }
        Some(i) => Err(Error::Data(format!(
            "the snapshot's key bucket ends with a malformed revision key {}",
            hex::encode(&i.key)
        ))),
    }
}

/// What the bump adds to the restore's one transaction.
pub struct Bumped {
    /// The `key` bucket's new header value.
    pub key_bucket: Vec<u8>,
    /// New pages, `(pgid, bytes)`, from the high-water mark up.
    pub pages: Vec<(u64, Vec<u8>)>,
    /// The high-water mark after them.
    pub next: u64,
    /// The new revision (also the scheduled compaction).
    pub revision: i64,
}

/// Appends the bumped revision to the `key` bucket whose header is `bucket`.
pub fn bump(db: &Db, bucket: &[u8], amount: u64) -> Result<Bumped> {
    let amount = i64::try_from(amount)
        .map_err(|_| Error::Usage(format!("--bump-revision {amount} is too large")))?;
    let mut next = db.pgid();
    let mut pages = Vec::new();
    let root = bucket_root(bucket)?;
    let sequence = bolt::bucket_sequence(bucket);
    if root == 0 {
        // An inline bucket (a tiny db): rewritten inline.
        let mut items = db.bucket_items(bucket)?;
        let revision = bumped(latest_main(items.last())?, amount)?;
        items.push(entry(revision));
        return Ok(Bumped {
            key_bucket: bolt::inline_bucket(&items, sequence),
            pages,
            next,
            revision,
        });
    }
    // Down the rightmost path.
    let mut path = Vec::new();
    let mut pgid = root;
    let leaf = loop {
        if path.len() > 64 {
            return Err(Error::Data("the key bucket's tree is too deep".into()));
        }
        let page = db.page(pgid)?;
        if u16_at(&page, 8) == LEAF_PAGE {
            break page;
        }
        let child = last_child(&page)?;
        path.push(page);
        pgid = child;
    };
    let mut items = bolt::leaf_items(&leaf)?;
    let revision = bumped(latest_main(items.last())?, amount)?;
    items.push(entry(revision));
    let mut page = bolt::leaf_page(&items, db.page_size());
    let mut child = next;
    page[..8].copy_from_slice(&child.to_le_bytes());
    next += (page.len() / db.page_size()) as u64;
    pages.push((child, page));
    // Each branch above: a copy pointing its last element at the new child.
    while let Some(mut branch) = path.pop() {
        set_last_child(&mut branch, child)?;
        let at = next;
        branch[..8].copy_from_slice(&at.to_le_bytes());
        next += (branch.len() / db.page_size()) as u64;
        pages.push((at, branch));
        child = at;
    }
    let mut key_bucket = Vec::with_capacity(16);
    key_bucket.extend_from_slice(&child.to_le_bytes());
    key_bucket.extend_from_slice(&sequence.to_le_bytes());
    Ok(Bumped {
        key_bucket,
        pages,
        next,
        revision,
    })
}

fn bumped(latest: i64, amount: i64) -> Result<i64> {
    latest
        .checked_add(amount)
        .ok_or_else(|| Error::Usage(format!("--bump-revision {amount} is too large")))
}

fn entry(revision: i64) -> Item {
    Item {
        key: rev_bytes(revision),
        value: Vec::new(),
        bucket: false,
    }
}

/// A bucket header's root page (0: inline).
fn bucket_root(bucket: &[u8]) -> Result<u64> {
    if bucket.len() < 16 {
        return Err(Error::Data("the key bucket's header is short".into()));
    }
    Ok(u64_at(bucket, 0))
}

/// Where a branch page's last element is.
fn last_element(page: &[u8]) -> Result<usize> {
    let count = u16_at(page, 10) as usize;
    let at = PAGE_HEADER + count.saturating_sub(1) * ELEMENT;
    if u16_at(page, 8) != BRANCH_PAGE || count == 0 || at + ELEMENT > page.len() {
        return Err(Error::Data(
            "the key bucket's tree has a malformed branch page".into(),
        ));
    }
    Ok(at)
}

/// The page a branch page's last element points at.
fn last_child(page: &[u8]) -> Result<u64> {
    Ok(u64_at(page, last_element(page)? + 8))
}

/// Points a branch page's last element at `child`.
fn set_last_child(page: &mut [u8], child: u64) -> Result<()> {
    let at = last_element(page)? + 8;
    page[at..at + 8].copy_from_slice(&child.to_le_bytes());
    Ok(())
}
