//! A streaming bbolt checker: what `bbolt check` checks, on a file read through
//! a window of pages ([`super::pages`]; memory: the window, one branch page per
//! tree level, and one bit per page).
//!
//! Checked: both meta pages (magic, version, page size, checksum); every page
//! reachable from the newest meta (the root tree, each bucket's tree, the
//! freelist) lies below the high-water mark, inside the file, carries its own id
//! and a branch or leaf type, and is referenced once only; the freelist (when
//! synced) names no page in use, none twice, and with the pages in use covers every
//! page below the high-water mark; the keys of each page are in strictly
//! ascending order and inside the range its parent branch gives it. The layout is
//! bbolt 1.3's (lib/formats/datadir/bolt.rs describes it).

use crate::formats::datadir::bolt::{fnv1a64, u16_at, u32_at, u64_at};
use std::fs::File;
use std::os::unix::fs::FileExt;

use super::pages::Pages;

use crate::base::error::{Error, Result};

const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
pub(super) const PAGE_HEADER: usize = 16;
pub(super) const ELEMENT: usize = 16;
const BRANCH_PAGE: u16 = 0x01;
const LEAF_PAGE: u16 = 0x02;
const META_PAGE: u16 = 0x04;
const FREELIST_PAGE: u16 = 0x10;
/// A leaf element flag: the value is a bucket header.
pub const BUCKET_LEAF: u32 = 0x01;
const BUCKET_HEADER: usize = 16;
const NO_FREELIST: u64 = u64::MAX;
const MAX_DEPTH: usize = 64;

pub(super) fn corrupt(why: impl std::fmt::Display) -> Error {
    Error::Data(format!("bbolt check: {why}"))
}

/// One meta page's fields.
#[derive(Debug, Clone, Copy)]
struct Meta {
    page_size: u32,
    root: u64,
    freelist: u64,
    pgid: u64,
    txid: u64,
}

fn meta_of(page: &[u8], pgid: u64) -> std::result::Result<Meta, String> {
    if u64_at(page, 0) != pgid {
        return Err(format!(
            "meta page {pgid} carries the id {}",
            u64_at(page, 0)
        ));
    }
    if u16_at(page, 8) != META_PAGE {
        return Err(format!("meta page {pgid} has flags {:#x}", u16_at(page, 8)));
    }
    let m = &page[PAGE_HEADER..PAGE_HEADER + 64];
    if u32_at(m, 0) != MAGIC {
        return Err(format!("meta page {pgid}: bad magic {:#x}", u32_at(m, 0)));
    }
    if u32_at(m, 4) != VERSION {
        return Err(format!("meta page {pgid}: version {}", u32_at(m, 4)));
    }
    if fnv1a64(&m[..56]) != u64_at(m, 56) {
        return Err(format!("meta page {pgid}: checksum mismatch"));
    }
    Ok(Meta {
        page_size: u32_at(m, 8),
        root: u64_at(m, 16),
        freelist: u64_at(m, 32),
        pgid: u64_at(m, 40),
        txid: u64_at(m, 48),
    })
}

/// A bbolt file being checked.
pub struct Bolt<'f> {
    pages: Pages<'f>,
    page_size: usize,
    meta: Meta,
    marks: Marks,
    /// One branch page buffer per tree level, reused.
    pool: Vec<Vec<u8>>,
}

/// The pages found in use, and those the freelist names.
struct Marks {
    /// The high-water mark.
    hwm: u64,
    /// One bit per page below the high-water mark: reachable.
    used: Vec<u64>,
    /// One bit per page: named by the freelist (empty when it is not synced).
    free: Vec<u64>,
    free_count: u64,
    used_count: u64,
}

/// Where an element lies, for messages (built only when one is needed).
#[derive(Clone, Copy)]
pub(super) struct At(pub(super) Option<u64>);

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(p) => write!(f, "page {p}"),
            None => f.write_str("an inline bucket"),
        }
    }
}

fn get(bits: &[u64], i: u64) -> bool {
    bits.get((i / 64) as usize)
        .is_some_and(|w| w & (1 << (i % 64)) != 0)
}
fn set(bits: &mut [u64], i: u64) {
    bits[(i / 64) as usize] |= 1 << (i % 64);
}

/// A visitor of a tree's key/values.
pub trait Visitor {
    /// An element: key, value, leaf flags.
    fn entry(&mut self, key: &[u8], value: &[u8], flags: u32) -> Result<()>;
    /// Whether a value over [`PIECE`] bytes on a page with overflow pages (a
    /// bucket header aside) comes as [`Visitor::start`], [`Visitor::piece`]s
    /// and [`Visitor::end`], read through a small buffer, not whole: a large
    /// value copied whole costs several times as much (the copy's destination
    /// falls out of the CPU's cache).
    fn pieces(&self) -> bool {
        false
    }
    /// A value in pieces begins: its key, length and leaf flags.
    fn start(&mut self, _key: &[u8], _len: u64, _flags: u32) -> Result<()> {
        Ok(())
    }
    /// The value's next bytes.
    fn piece(&mut self, _data: &[u8]) -> Result<()> {
        Ok(())
    }
    /// The value is complete.
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

impl<F: FnMut(&[u8], &[u8], u32) -> Result<()>> Visitor for F {
    fn entry(&mut self, key: &[u8], value: &[u8], flags: u32) -> Result<()> {
        self(key, value, flags)
    }
}

/// A visitor, as the walks take it.
pub type Visit<'a> = dyn Visitor + 'a;

/// The most bytes of a value read at once when it comes in pieces.
pub const PIECE: usize = 64 << 10;

impl<'f> Bolt<'f> {
    /// Checks both meta pages and the freelist; `len` is the db's length in the
    /// file (an etcd snapshot's trailer follows it).
    pub fn open(file: &'f File, len: u64) -> Result<Bolt<'f>> {
        let mut first = vec![0u8; PAGE_HEADER + 64];
        file.read_exact_at(&mut first, 0)
            .map_err(|e| corrupt(format!("cannot read meta page 0: {e}")))?;
        let page_size = u32_at(&first, PAGE_HEADER + 8) as usize;
        if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(corrupt(format!("meta page 0: page size {page_size}")));
        }
        let mut metas = Vec::new();
        for pgid in 0..2u64 {
            let mut page = vec![0u8; PAGE_HEADER + 64];
            file.read_exact_at(&mut page, pgid * page_size as u64)
                .map_err(|e| corrupt(format!("cannot read meta page {pgid}: {e}")))?;
            let meta = meta_of(&page, pgid).map_err(corrupt)?;
            if meta.page_size as usize != page_size {
                return Err(corrupt(format!(
                    "meta page {pgid}: page size {} differs from page 0's {page_size}",
                    meta.page_size
                )));
            }
            metas.push(meta);
        }
        let meta = if metas[1].txid > metas[0].txid {
            metas[1]
        } else {
            metas[0]
        };
        let file_pages = len / page_size as u64;
        if meta.pgid < 2 || meta.pgid > file_pages {
            return Err(corrupt(format!(
                "the meta page's high-water mark is page {}, the file holds {file_pages} pages",
                meta.pgid
            )));
        }
        let words = meta.pgid.div_ceil(64) as usize;
        let mut bolt = Bolt {
            pages: Pages::new(file, page_size, meta.pgid),
            page_size,
            meta,
            marks: Marks {
                hwm: meta.pgid,
                used: vec![0; words],
                free: Vec::new(),
                free_count: 0,
                used_count: 0,
            },
            pool: Vec::new(),
        };
        bolt.marks.mark(0, 0)?;
        bolt.marks.mark(1, 0)?;
        if meta.freelist != NO_FREELIST {
            bolt.read_freelist()?;
        }
        Ok(bolt)
    }

    /// The page size.
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// The high-water mark (pages in the db).
    pub fn pages(&self) -> u64 {
        self.meta.pgid
    }

    /// The newest transaction id.
    pub fn txid(&self) -> u64 {
        self.meta.txid
    }

    /// Pages found in use so far (meta, freelist, trees walked with marking).
    pub fn used_pages(&self) -> u64 {
        self.marks.used_count
    }

    /// Pages the freelist names; None when the freelist is not synced.
    pub fn free_pages(&self) -> Option<u64> {
        (self.meta.freelist != NO_FREELIST).then_some(self.marks.free_count)
    }

    fn read_freelist(&mut self) -> Result<()> {
        let pgid = self.meta.freelist;
        let page = self.pages.page(pgid)?;
        let marks = &mut self.marks;
        if u16_at(page, 8) != FREELIST_PAGE {
            return Err(corrupt(format!(
                "freelist page {pgid} has flags {:#x}",
                u16_at(page, 8)
            )));
        }
        marks.mark(pgid, u64::from(u32_at(page, 12)))?;
        let (mut start, mut count) = (PAGE_HEADER, u64::from(u16_at(page, 10)));
        if count == 0xFFFF {
            count = u64_at(page, PAGE_HEADER);
            start += 8;
        }
        let fits = count
            .checked_mul(8)
            .and_then(|n| n.checked_add(start as u64))
            .is_some_and(|n| n <= page.len() as u64);
        if !fits {
            return Err(corrupt(format!(
                "freelist page {pgid}: {count} ids overflow it"
            )));
        }
        marks.free = vec![0; marks.used.len()];
        for i in 0..count as usize {
            let id = u64_at(page, start + i * 8);
            if id < 2 || id >= self.meta.pgid {
                return Err(corrupt(format!(
                    "the freelist names page {id}, outside 2..{}",
                    self.meta.pgid
                )));
            }
            if get(&marks.free, id) {
                return Err(corrupt(format!("the freelist names page {id} twice")));
            }
            if get(&marks.used, id) {
                return Err(corrupt(format!("page {id} is in use and in the freelist")));
            }
            set(&mut marks.free, id);
            marks.free_count += 1;
        }
        Ok(())
    }

    /// With a synced freelist: every page is either in use or free. Call after
    /// every tree was walked with marking.
    pub fn check_coverage(&self) -> Result<()> {
        if self.meta.freelist == NO_FREELIST {
            return Ok(());
        }
        for p in 2..self.meta.pgid {
            if !get(&self.marks.used, p) && !get(&self.marks.free, p) {
                return Err(corrupt(format!("page {p} is neither reachable nor free")));
            }
        }
        Ok(())
    }

    /// Walks the root bucket's tree.
    pub fn walk_root(&mut self, mark: bool, visit: &mut Visit<'_>) -> Result<()> {
        let root = self.meta.root;
        self.walk_tree(root, None, None, 0, mark, visit)
    }

    /// Walks the bucket whose header (and inline page) is `value`.
    pub fn walk_bucket(&mut self, value: &[u8], mark: bool, visit: &mut Visit<'_>) -> Result<()> {
        if value.len() < BUCKET_HEADER {
            return Err(corrupt("a bucket header is shorter than 16 bytes"));
        }
        match u64_at(value, 0) {
            0 => {
                let page = &value[BUCKET_HEADER..];
                if page.len() < PAGE_HEADER || u16_at(page, 8) != LEAF_PAGE {
                    return Err(corrupt("an inline bucket is not a leaf page"));
                }
                leaf(page, None, None, At(None), visit)
            }
            root => self.walk_tree(root, None, None, 0, mark, visit),
        }
    }

    fn walk_tree(
        &mut self,
        pgid: u64,
        lo: Option<&[u8]>,
        hi: Option<&[u8]>,
        depth: usize,
        mark: bool,
        visit: &mut Visit<'_>,
    ) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(corrupt(format!(
                "page {pgid}: tree deeper than {MAX_DEPTH}"
            )));
        }
        let head = self.pages.head(pgid)?;
        let (kind, count) = (u16_at(head, 8), u16_at(head, 10) as usize);
        let overflow = u64::from(u32_at(head, 12));
        if mark {
            self.marks.mark(pgid, overflow)?;
        }
        let what = At(Some(pgid));
        let table_fits = PAGE_HEADER + count * ELEMENT <= self.page_size;
        if kind == LEAF_PAGE && overflow > 0 && table_fits && visit.pieces() {
            return super::leafrun::leaf_run(&mut self.pages, pgid, lo, hi, what, visit);
        }
        let page = self.pages.page(pgid)?;
        match u16_at(page, 8) {
            LEAF_PAGE => leaf(page, lo, hi, what, visit),
            BRANCH_PAGE => {
                // The window moves on as the children are read: a copy of the page.
                if self.pool.len() <= depth {
                    self.pool.resize_with(depth + 1, Vec::new);
                }
                let mut copy = std::mem::take(&mut self.pool[depth]);
                copy.clear();
                copy.extend_from_slice(page);
                let walked = self.walk_branch(&copy, lo, hi, depth, mark, visit);
                self.pool[depth] = copy;
                walked
            }
            f => Err(corrupt(format!("{what}: invalid type {f:#x}"))),
        }
    }

    fn walk_branch(
        &mut self,
        page: &[u8],
        lo: Option<&[u8]>,
        hi: Option<&[u8]>,
        depth: usize,
        mark: bool,
        visit: &mut Visit<'_>,
    ) -> Result<()> {
        let what = At(Some(u64_at(page, 0)));
        let count = u16_at(page, 10) as usize;
        if count == 0 {
            return Err(corrupt(format!("{what}: an empty branch page")));
        }
        elements(page, count, what)?;
        let keys = (0..count)
            .map(|i| {
                let at = PAGE_HEADER + i * ELEMENT;
                let (pos, ksize) = (u32_at(page, at) as usize, u32_at(page, at + 4) as usize);
                slice(page, at, pos, ksize, what)
            })
            .collect::<Result<Vec<_>>>()?;
        check_order(&keys, lo, hi, what)?;
        for i in 0..count {
            let child = u64_at(page, PAGE_HEADER + i * ELEMENT + 8);
            // A child's keys lie in [its separator, the next one).
            let next = keys.get(i + 1).copied().or(hi);
            self.walk_tree(child, Some(keys[i]), next, depth + 1, mark, visit)?;
        }
        Ok(())
    }
}

impl Marks {
    /// Records pages `pgid..=pgid+overflow` as in use.
    fn mark(&mut self, pgid: u64, overflow: u64) -> Result<()> {
        for p in pgid..=pgid.saturating_add(overflow) {
            if p >= self.hwm {
                return Err(corrupt(format!(
                    "page {p} lies beyond the high-water mark {}",
                    self.hwm
                )));
            }
            if get(&self.used, p) {
                return Err(corrupt(format!("page {p} is referenced twice")));
            }
            if get(&self.free, p) {
                return Err(corrupt(format!("page {p} is in use and in the freelist")));
            }
            set(&mut self.used, p);
            self.used_count += 1;
        }
        Ok(())
    }
}

/// The element table fits the page.
fn elements(page: &[u8], count: usize, what: At) -> Result<()> {
    if PAGE_HEADER + count * ELEMENT > page.len() {
        return Err(corrupt(format!(
            "{what}: {count} elements overflow the page"
        )));
    }
    Ok(())
}

/// `len` bytes at `element + pos`, inside the page.
fn slice(page: &[u8], element: usize, pos: usize, len: usize, what: At) -> Result<&[u8]> {
    let start = element.checked_add(pos);
    match start.and_then(|s| s.checked_add(len).map(|e| (s, e))) {
        Some((s, e)) if e <= page.len() => Ok(&page[s..e]),
        _ => Err(corrupt(format!(
            "{what}: an element's data lies past the page"
        ))),
    }
}

/// Keys strictly ascending and within `[lo, hi)`.
fn check_order(keys: &[&[u8]], lo: Option<&[u8]>, hi: Option<&[u8]>, what: At) -> Result<()> {
    for w in keys.windows(2) {
        if w[0] >= w[1] {
            return Err(corrupt(format!("{what}: keys out of order")));
        }
    }
    if let (Some(first), Some(lo)) = (keys.first(), lo) {
        if *first < lo {
            return Err(corrupt(format!("{what}: a key below its parent's range")));
        }
    }
    if let (Some(last), Some(hi)) = (keys.last(), hi) {
        if *last >= hi {
            return Err(corrupt(format!("{what}: a key above its parent's range")));
        }
    }
    Ok(())
}

/// Visits a leaf page's elements after checking them.
fn leaf(
    page: &[u8],
    lo: Option<&[u8]>,
    hi: Option<&[u8]>,
    what: At,
    visit: &mut Visit<'_>,
) -> Result<()> {
    let count = u16_at(page, 10) as usize;
    elements(page, count, what)?;
    let mut prev: Option<&[u8]> = None;
    for i in 0..count {
        let at = PAGE_HEADER + i * ELEMENT;
        let flags = u32_at(page, at);
        let pos = u32_at(page, at + 4) as usize;
        let ksize = u32_at(page, at + 8) as usize;
        let vsize = u32_at(page, at + 12) as usize;
        let kv = slice(page, at, pos, ksize.saturating_add(vsize), what)?;
        let (key, value) = kv.split_at(ksize);
        if prev.is_some_and(|p| p >= key) {
            return Err(corrupt(format!("{what}: keys out of order")));
        }
        if prev.is_none() && lo.is_some_and(|lo| key < lo) {
            return Err(corrupt(format!("{what}: a key below its parent's range")));
        }
        prev = Some(key);
        visit.entry(key, value, flags)?;
    }
    if let (Some(last), Some(hi)) = (prev, hi) {
        if last >= hi {
            return Err(corrupt(format!("{what}: a key above its parent's range")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixture's db, and the pages a walk of every tree finds unused.
    fn fixture_and_free() -> (Vec<u8>, Vec<u64>) {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/etcd-3.4-small.db");
        let raw = std::fs::read(path).unwrap();
        let db = raw[..raw.len() - 32].to_vec();
        let f = tempfile::tempfile().unwrap();
        f.write_all_at(&db, 0).unwrap();
        let mut b = Bolt::open(&f, db.len() as u64).unwrap();
        let mut buckets = Vec::new();
        b.walk_root(true, &mut |_: &[u8], v: &[u8], _: u32| {
            buckets.push(v.to_vec());
            Ok(())
        })
        .unwrap();
        for v in buckets {
            b.walk_bucket(&v, true, &mut |_: &[u8], _: &[u8], _: u32| Ok(()))
                .unwrap();
        }
        let free = (2..b.pages()).filter(|p| !get(&b.marks.used, *p)).collect();
        (db, free)
    }

    /// The db with a synced freelist naming `free`, written at a new last page.
    fn with_freelist(db: &[u8], free: &[u64]) -> std::fs::File {
        let mut db = db.to_vec();
        let hwm = (db.len() / 4096) as u64;
        let mut page = vec![0u8; 4096];
        page[..8].copy_from_slice(&hwm.to_le_bytes());
        page[8..10].copy_from_slice(&FREELIST_PAGE.to_le_bytes());
        page[10..12].copy_from_slice(&(free.len() as u16).to_le_bytes());
        for (i, id) in free.iter().enumerate() {
            page[PAGE_HEADER + i * 8..PAGE_HEADER + i * 8 + 8].copy_from_slice(&id.to_le_bytes());
        }
        db.extend_from_slice(&page);
        for m in [0usize, 4096] {
            let meta = &mut db[m + PAGE_HEADER..m + PAGE_HEADER + 64];
            meta[32..40].copy_from_slice(&hwm.to_le_bytes());
            meta[40..48].copy_from_slice(&(hwm + 1).to_le_bytes());
            let sum = fnv1a64(&meta[..56]);
            meta[56..64].copy_from_slice(&sum.to_le_bytes());
        }
        let f = tempfile::tempfile().unwrap();
        f.write_all_at(&db, 0).unwrap();
        f
    }

    fn check_all(f: &std::fs::File) -> Result<u64> {
        let len = f.metadata().unwrap().len();
        let mut b = Bolt::open(f, len)?;
        let mut buckets = Vec::new();
        b.walk_root(true, &mut |_: &[u8], v: &[u8], _: u32| {
            buckets.push(v.to_vec());
            Ok(())
        })?;
        for v in buckets {
            b.walk_bucket(&v, true, &mut |_: &[u8], _: &[u8], _: u32| Ok(()))?;
        }
        b.check_coverage()?;
        Ok(b.free_pages().unwrap())
    }

    #[test]
    fn a_synced_freelist_must_cover_exactly_the_unused_pages() {
        let (db, free) = fixture_and_free();
        assert!(!free.is_empty(), "the fixture has free pages");
        assert_eq!(
            check_all(&with_freelist(&db, &free)).unwrap(),
            free.len() as u64
        );
        // A free page missing from the list.
        let err = check_all(&with_freelist(&db, &free[1..])).unwrap_err();
        assert!(
            err.to_string().contains("neither reachable nor free"),
            "{err}"
        );
        // A page in use listed as free.
        let mut wrong = free.clone();
        wrong.push(2);
        let err = check_all(&with_freelist(&db, &wrong)).unwrap_err();
        assert!(
            err.to_string().contains("in use and in the freelist"),
            "{err}"
        );
        // A page listed twice, and one past the high-water mark.
        let mut twice = free.clone();
        twice.push(free[0]);
        let err = check_all(&with_freelist(&db, &twice)).unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
        let mut past = free.clone();
        past.push(10_000);
        let err = check_all(&with_freelist(&db, &past)).unwrap_err();
        assert!(err.to_string().contains("outside"), "{err}");
    }
}
