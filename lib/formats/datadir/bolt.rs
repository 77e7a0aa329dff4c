//! A minimal bbolt reader/writer: just enough to rewrite the root-level buckets
//! `members`, `members_removed` and `meta` of an etcd db in one copy-on-write
//! transaction (docs/ETCD-RESTORE.md §2.3, §3 "own minimal writer").
//!
//! Layout used (Go bbolt 1.3, page size from the meta page, little-endian):
//! - page header: `id u64 | flags u16 | count u16 | overflow u32` (16 bytes);
//! - meta (pages 0 and 1, after the header): `magic u32 | version u32 | page_size u32 |
//!   flags u32 | root {root pgid u64, sequence u64} | freelist u64 | pgid u64 | txid u64 |
//!   checksum u64` where checksum = FNV-1a-64 of the 56 bytes before it;
//! - leaf element: `flags u32 | pos u32 | ksize u32 | vsize u32`, key at element + pos;
//! - branch element: `pos u32 | ksize u32 | pgid u64`;
//! - a bucket value is `root u64 | sequence u64`, followed by an inline leaf page
//!   when root is 0.
//!
//! The write appends one new root leaf page (with overflow pages when needed) at
//! the high-water mark and writes the *other* meta page with `txid + 1` and the
//! freelist marked "not synced" (`u64::MAX`, as etcd's `NoFreelistSync` writes it), so
//! readers rebuild the freelist by scanning and pages that became unreachable are
//! simply free; nothing else in the file changes.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::base::error::{Error, Result};

const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
pub(crate) const PAGE_HEADER: usize = 16;
pub(crate) const ELEMENT: usize = 16;
pub(crate) const BRANCH_PAGE: u16 = 0x01;
pub(crate) const LEAF_PAGE: u16 = 0x02;
const META_PAGE: u16 = 0x04;
const BUCKET_LEAF: u32 = 0x01;
const BUCKET_HEADER: usize = 16;
/// Meta offsets, relative to the start of the meta struct.
const META_ROOT: usize = 16;
const META_FREELIST: usize = 32;
/// bbolt's `PGID_NO_FREELIST`: readers rebuild the freelist by scanning.
const NO_FREELIST: u64 = u64::MAX;
const META_PGID: usize = 40;
const META_TXID: usize = 48;
const META_CHECKSUM: usize = 56;

/// One key/value of a leaf; `bucket` marks a sub-bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Key bytes.
    pub key: Vec<u8>,
    /// Value bytes (a bucket header, maybe with an inline page, for buckets).
    pub value: Vec<u8>,
    /// Whether this entry is a bucket.
    pub bucket: bool,
}

/// An open db file and its current meta page.
pub struct Db<'f> {
    file: &'f File,
    /// Pages that exist in the file (a corrupt meta may claim more).
    file_pages: u64,
    page_size: usize,
    meta: Vec<u8>,
}

fn corrupt(why: impl std::fmt::Display) -> Error {
    Error::Data(format!(
        "the snapshot's bbolt database is not readable: {why}"
    ))
}

pub(crate) fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}
pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// FNV-1a, 64 bits: bbolt's meta checksum.
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl<'f> Db<'f> {
    /// Reads both meta pages and keeps the valid one with the higher txid.
    pub fn open(file: &'f File) -> Result<Db<'f>> {
        let mut first = vec![0u8; PAGE_HEADER + 64];
        file.read_exact_at(&mut first, 0).map_err(corrupt)?;
        let page_size = u32_at(&first, PAGE_HEADER + 8) as usize;
        if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(corrupt(format!("page size {page_size}")));
        }
        let mut best: Option<Vec<u8>> = None;
        for pgid in 0..2u64 {
            let mut page = vec![0u8; PAGE_HEADER + 64];
            file.read_exact_at(&mut page, pgid * page_size as u64)
                .map_err(corrupt)?;
            let meta = page[PAGE_HEADER..].to_vec();
            let valid = u32_at(&meta, 0) == MAGIC
                && u32_at(&meta, 4) == VERSION
                && fnv1a64(&meta[..META_CHECKSUM]) == u64_at(&meta, META_CHECKSUM);
            if valid
                && best
                    .as_ref()
                    .is_none_or(|b| u64_at(&meta, META_TXID) > u64_at(b, META_TXID))
            {
                best = Some(meta);
            }
        }
        let meta = best.ok_or_else(|| corrupt("no valid meta page"))?;
        let file_pages = file.metadata().map_err(corrupt)?.len() / page_size as u64;
        Ok(Db {
            file,
            file_pages,
            page_size,
            meta,
        })
    }

    /// The high-water mark: pages in use.
    pub fn pgid(&self) -> u64 {
        u64_at(&self.meta, META_PGID)
    }

    /// The current transaction id.
    pub fn txid(&self) -> u64 {
        u64_at(&self.meta, META_TXID)
    }

    /// Reads page `pgid` with its overflow pages; both must lie below the
    /// high-water mark and inside the file.
    pub(crate) fn page(&self, pgid: u64) -> Result<Vec<u8>> {
        let end = self.pgid().min(self.file_pages);
        if pgid < 2 || pgid >= end {
            return Err(corrupt(format!("page {pgid} out of range")));
        }
        let mut header = vec![0u8; PAGE_HEADER];
        let at = pgid * self.page_size as u64;
        self.file.read_exact_at(&mut header, at).map_err(corrupt)?;
        let overflow = u32_at(&header, 12) as u64;
        if pgid + overflow >= end {
            return Err(corrupt(format!("page {pgid} overflows the file")));
        }
        let mut page = vec![0u8; (overflow as usize + 1) * self.page_size];
        self.file.read_exact_at(&mut page, at).map_err(corrupt)?;
        Ok(page)
    }

    /// All entries of the tree rooted at `pgid`, in key order. Each page may be
    /// visited once: a corrupt branch pointing back up the tree is an error, not a loop.
    fn tree(
        &self,
        pgid: u64,
        depth: usize,
        seen: &mut HashSet<u64>,
        out: &mut Vec<Item>,
    ) -> Result<()> {
        if depth > 64 {
            return Err(corrupt("tree too deep"));
        }
        if !seen.insert(pgid) {
            return Err(corrupt(format!("page {pgid} is referenced twice")));
        }
        let page = self.page(pgid)?;
        match u16_at(&page, 8) {
            LEAF_PAGE => out.extend(leaf_items(&page)?),
            BRANCH_PAGE => {
                for i in 0..u16_at(&page, 10) as usize {
                    let at = PAGE_HEADER + i * ELEMENT;
                    if at + ELEMENT > page.len() {
                        return Err(corrupt("branch element past the page"));
                    }
                    self.tree(u64_at(&page, at + 8), depth + 1, seen, out)?;
                }
            }
            f => return Err(corrupt(format!("page {pgid} has flags {f:#x}"))),
        }
        Ok(())
    }

    /// The root bucket's entries (etcd's buckets).
    pub fn root_items(&self) -> Result<Vec<Item>> {
        let mut out = Vec::new();
        self.tree(
            u64_at(&self.meta, META_ROOT),
            0,
            &mut HashSet::new(),
            &mut out,
        )?;
        Ok(out)
    }

    /// The key/values of a bucket, from its header value.
    pub fn bucket_items(&self, bucket_value: &[u8]) -> Result<Vec<Item>> {
        if bucket_value.len() < BUCKET_HEADER {
            return Err(corrupt("short bucket header"));
        }
        match u64_at(bucket_value, 0) {
            0 => leaf_items(&bucket_value[BUCKET_HEADER..]),
            root => {
                let mut out = Vec::new();
                self.tree(root, 0, &mut HashSet::new(), &mut out)?;
                Ok(out)
            }
        }
    }

    /// The page size.
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// Writes `root` (sorted by key) as the new root leaf and commits.
    pub fn commit_root(&self, root: &[Item], path: &std::path::Path) -> Result<()> {
        self.commit(root, &[], self.pgid(), path)
    }

    /// Writes the pages `extra` (`(pgid, bytes)`, at the high-water mark and
    /// up, ids set), then `root` as the new root leaf at `next`, and commits.
    pub fn commit(
        &self,
        root: &[Item],
        extra: &[(u64, Vec<u8>)],
        next: u64,
        path: &std::path::Path,
    ) -> Result<()> {
        let page = leaf_page(root, self.page_size);
        let new_pgid = next;
        let pages = (page.len() / self.page_size) as u64;
        let mut page = page;
        page[..8].copy_from_slice(&new_pgid.to_le_bytes());
        let io = |e| Error::io(path, "cannot write the restored db", e);
        for (pgid, bytes) in extra {
            self.file
                .write_all_at(bytes, pgid * self.page_size as u64)
                .map_err(io)?;
        }
        self.file
            .write_all_at(&page, new_pgid * self.page_size as u64)
            .map_err(io)?;
        let mut meta = self.meta.clone();
        meta[META_ROOT..META_ROOT + 8].copy_from_slice(&new_pgid.to_le_bytes());
        // Always "not synced": a freelist page from a live db would not list the
        // root page this transaction orphans; a scan finds it.
        meta[META_FREELIST..META_FREELIST + 8].copy_from_slice(&NO_FREELIST.to_le_bytes());
        meta[META_PGID..META_PGID + 8].copy_from_slice(&(new_pgid + pages).to_le_bytes());
        let txid = self.txid() + 1;
        meta[META_TXID..META_TXID + 8].copy_from_slice(&txid.to_le_bytes());
        let sum = fnv1a64(&meta[..META_CHECKSUM]);
        meta[META_CHECKSUM..META_CHECKSUM + 8].copy_from_slice(&sum.to_le_bytes());
        let meta_pgid = txid % 2;
        let mut meta_page = vec![0u8; self.page_size];
        meta_page[..8].copy_from_slice(&meta_pgid.to_le_bytes());
        meta_page[8..10].copy_from_slice(&META_PAGE.to_le_bytes());
        meta_page[PAGE_HEADER..PAGE_HEADER + meta.len()].copy_from_slice(&meta);
        // Data pages first and durable, then the meta page that points at them.
        self.file.sync_all().map_err(io)?;
        self.file
            .write_all_at(&meta_page, meta_pgid * self.page_size as u64)
            .map_err(io)?;
        self.file.sync_all().map_err(io)
    }
}

/// Parses the elements of a leaf page (or inline page).
pub(crate) fn leaf_items(page: &[u8]) -> Result<Vec<Item>> {
    if page.len() < PAGE_HEADER || u16_at(page, 8) != LEAF_PAGE {
        return Err(corrupt("expected a leaf page"));
    }
    let count = u16_at(page, 10) as usize;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let at = PAGE_HEADER + i * ELEMENT;
        if at + ELEMENT > page.len() {
            return Err(corrupt("leaf element past the page"));
        }
        let flags = u32_at(page, at);
        let pos = u32_at(page, at + 4) as usize;
        let ksize = u32_at(page, at + 8) as usize;
        let vsize = u32_at(page, at + 12) as usize;
        let k = at + pos;
        let end = k + ksize + vsize;
        if end > page.len() {
            return Err(corrupt("leaf data past the page"));
        }
        out.push(Item {
            key: page[k..k + ksize].to_vec(),
            value: page[k + ksize..end].to_vec(),
            bucket: flags & BUCKET_LEAF != 0,
        });
    }
    Ok(out)
}

/// Lays out `items` as one leaf page (id 0), padded to whole pages when
/// `page_size` is given, or exactly sized (an inline page) when it is 0.
pub fn leaf_page(items: &[Item], page_size: usize) -> Vec<u8> {
    let data: usize = items.iter().map(|i| i.key.len() + i.value.len()).sum();
    let len = PAGE_HEADER + items.len() * ELEMENT + data;
    let total = if page_size == 0 {
        len
    } else {
        len.div_ceil(page_size) * page_size
    };
    let mut page = vec![0u8; total];
    page[8..10].copy_from_slice(&LEAF_PAGE.to_le_bytes());
    page[10..12].copy_from_slice(&(items.len() as u16).to_le_bytes());
    if let Some(pages) = total.checked_div(page_size) {
        page[12..16].copy_from_slice(&((pages - 1) as u32).to_le_bytes());
    }
    let mut data_at = PAGE_HEADER + items.len() * ELEMENT;
    for (i, item) in items.iter().enumerate() {
        let at = PAGE_HEADER + i * ELEMENT;
        let flags = if item.bucket { BUCKET_LEAF } else { 0 };
        page[at..at + 4].copy_from_slice(&flags.to_le_bytes());
        page[at + 4..at + 8].copy_from_slice(&((data_at - at) as u32).to_le_bytes());
        page[at + 8..at + 12].copy_from_slice(&(item.key.len() as u32).to_le_bytes());
        page[at + 12..at + 16].copy_from_slice(&(item.value.len() as u32).to_le_bytes());
        page[data_at..data_at + item.key.len()].copy_from_slice(&item.key);
        data_at += item.key.len();
        page[data_at..data_at + item.value.len()].copy_from_slice(&item.value);
        data_at += item.value.len();
    }
    page
}

/// A bucket value holding `items` inline, keeping `sequence`.
pub fn inline_bucket(items: &[Item], sequence: u64) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0u64.to_le_bytes());
    v.extend_from_slice(&sequence.to_le_bytes());
    v.extend_from_slice(&leaf_page(items, 0));
    v
}

/// The sequence number of a bucket header.
pub fn bucket_sequence(bucket_value: &[u8]) -> u64 {
    if bucket_value.len() >= BUCKET_HEADER {
        u64_at(bucket_value, 8)
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_the_reference_values() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
    }

    /// A 3-page db: two meta pages (root at page 2, high-water mark 3) and `page2`.
    fn tiny_db(page2: &[u8]) -> std::fs::File {
        let mut bytes = Vec::new();
        for (id, txid) in [(0u64, 1u64), (1, 2)] {
            let mut page = vec![0u8; 4096];
            page[..8].copy_from_slice(&id.to_le_bytes());
            page[8..10].copy_from_slice(&META_PAGE.to_le_bytes());
            let m = &mut page[PAGE_HEADER..];
            m[0..4].copy_from_slice(&MAGIC.to_le_bytes());
            m[4..8].copy_from_slice(&VERSION.to_le_bytes());
            m[8..12].copy_from_slice(&4096u32.to_le_bytes());
            m[META_ROOT..META_ROOT + 8].copy_from_slice(&2u64.to_le_bytes());
            m[META_FREELIST..META_FREELIST + 8].copy_from_slice(&NO_FREELIST.to_le_bytes());
            m[META_PGID..META_PGID + 8].copy_from_slice(&3u64.to_le_bytes());
            m[META_TXID..META_TXID + 8].copy_from_slice(&txid.to_le_bytes());
            let sum = fnv1a64(&m[..META_CHECKSUM]);
            m[META_CHECKSUM..META_CHECKSUM + 8].copy_from_slice(&sum.to_le_bytes());
            bytes.extend_from_slice(&page);
        }
        let mut p2 = page2.to_vec();
        p2.resize(4096, 0);
        bytes.extend_from_slice(&p2);
        let mut f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut f, &bytes).unwrap();
        f
    }

    #[test]
    fn corrupt_trees_are_errors_not_hangs_or_aborts() {
        // A branch page whose element points back at itself.
        let mut branch = vec![0u8; 32];
        branch[..8].copy_from_slice(&2u64.to_le_bytes());
        branch[8..10].copy_from_slice(&BRANCH_PAGE.to_le_bytes());
        branch[10..12].copy_from_slice(&1u16.to_le_bytes());
        branch[PAGE_HEADER + 8..PAGE_HEADER + 16].copy_from_slice(&2u64.to_le_bytes());
        let f = tiny_db(&branch);
        let err = Db::open(&f).unwrap().root_items().unwrap_err();
        assert!(err.to_string().contains("referenced twice"), "{err}");
        // A leaf claiming four billion overflow pages.
        let mut leaf = vec![0u8; 16];
        leaf[8..10].copy_from_slice(&LEAF_PAGE.to_le_bytes());
        leaf[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        let f = tiny_db(&leaf);
        let err = Db::open(&f).unwrap().root_items().unwrap_err();
        assert_eq!(err.exit_code(), 65);
        // An empty leaf root reads as no buckets.
        let mut empty = vec![0u8; 16];
        empty[8..10].copy_from_slice(&LEAF_PAGE.to_le_bytes());
        let f = tiny_db(&empty);
        let db = Db::open(&f).unwrap();
        assert_eq!(db.txid(), 2, "the meta page with the higher txid wins");
        assert!(db.root_items().unwrap().is_empty());
    }

    #[test]
    fn leaf_pages_round_trip() {
        let items = vec![
            Item {
                key: b"a".to_vec(),
                value: b"one".to_vec(),
                bucket: false,
            },
            Item {
                key: b"bb".to_vec(),
                value: inline_bucket(&[], 7),
                bucket: true,
            },
        ];
        let page = leaf_page(&items, 4096);
        assert_eq!(page.len(), 4096);
        assert_eq!(leaf_items(&page).unwrap(), items);
        let inline = inline_bucket(&items[..1], 3);
        assert_eq!(bucket_sequence(&inline), 3);
        assert_eq!(leaf_items(&inline[BUCKET_HEADER..]).unwrap(), items[..1]);
        let big = vec![Item {
            key: b"k".to_vec(),
            value: vec![1; 5000],
            bucket: false,
        }];
        let page = leaf_page(&big, 4096);
        assert_eq!(page.len(), 8192);
        assert_eq!(u32_at(&page, 12), 1, "one overflow page");
    }
}
