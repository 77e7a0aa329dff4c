//! A leaf page with overflow pages, its values read in pieces of at most
//! [`PIECE`] bytes through one small buffer (for a [`Visitor`] that takes
//! them so): the checks of `bolt::leaf` (elements inside the page, keys in
//! order and inside the parent's range), without the page held whole.

use super::bolt::{At, BUCKET_LEAF, ELEMENT, PAGE_HEADER, PIECE, Visit, corrupt};
use super::pages::Pages;
use crate::base::error::Result;
use crate::formats::datadir::bolt::{u16_at, u32_at};

/// Visits leaf page `pgid`'s elements; its element table lies in its first page.
pub(super) fn leaf_run(
    pages: &mut Pages<'_>,
    pgid: u64,
    lo: Option<&[u8]>,
    hi: Option<&[u8]>,
    what: At,
    visit: &mut Visit<'_>,
) -> Result<()> {
    let head = pages.head(pgid)?;
    let ps = head.len() as u64;
    let count = u16_at(head, 10) as usize;
    let run = (u64::from(u32_at(head, 12)) + 1) * ps;
    let table: Vec<[u32; 4]> = (0..count)
        .map(|i| {
            let at = PAGE_HEADER + i * ELEMENT;
            [0, 4, 8, 12].map(|o| u32_at(head, at + o))
        })
        .collect();
    let base = pgid * ps;
    let (mut prev, mut key, mut buf) = (None::<Vec<u8>>, Vec::new(), Vec::new());
    for (i, [flags, pos, ksize, vsize]) in table.into_iter().enumerate() {
        let start = (PAGE_HEADER + i * ELEMENT) as u64 + u64::from(pos);
        let kend = start + u64::from(ksize);
        let end = kend + u64::from(vsize);
        if end > run {
            return Err(corrupt(format!(
                "{what}: an element's data lies past the page"
            )));
        }
        key.resize(ksize as usize, 0);
        pages.read_at(pgid, base + start, &mut key)?;
        if prev.as_ref().is_some_and(|p| *p >= key) {
            return Err(corrupt(format!("{what}: keys out of order")));
        }
        if prev.is_none() && lo.is_some_and(|lo| key.as_slice() < lo) {
            return Err(corrupt(format!("{what}: a key below its parent's range")));
        }
        if flags & BUCKET_LEAF != 0 || vsize as usize <= PIECE {
            buf.resize(vsize as usize, 0);
            pages.read_at(pgid, base + kend, &mut buf)?;
            visit.entry(&key, &buf, flags)?;
        } else {
            visit.start(&key, u64::from(vsize), flags)?;
            buf.resize(PIECE, 0);
            let mut at = kend;
            while at < end {
                let n = (end - at).min(PIECE as u64) as usize;
                pages.read_at(pgid, base + at, &mut buf[..n])?;
                visit.piece(&buf[..n])?;
                at += n as u64;
            }
            visit.end()?;
        }
        prev = Some(std::mem::take(&mut key));
    }
    if let (Some(last), Some(hi)) = (prev, hi) {
        if last.as_slice() >= hi {
            return Err(corrupt(format!("{what}: a key above its parent's range")));
        }
    }
    Ok(())
}
