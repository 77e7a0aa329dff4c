//! A bbolt file's pages, read through one window of contiguous pages: a page
//! inside the window costs no read; one just past it doubles the window (a
//! run of adjacent leaves, an overflow page's tail) up to [`MAX_WINDOW`]; one
//! elsewhere starts a window of its own. Memory: the window, at most
//! [`MAX_WINDOW`] bytes or one page with its overflow pages.

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::bolt::corrupt;
use crate::base::error::Result;
use crate::formats::datadir::bolt::{u32_at, u64_at};

/// The most a window reads ahead, in bytes.
pub const MAX_WINDOW: usize = 4 << 20;

/// Pages `2..hwm` of a file.
pub struct Pages<'f> {
    file: &'f File,
    page_size: usize,
    hwm: u64,
    /// The window's bytes (its length: the most ever read; `count` pages valid).
    buf: Vec<u8>,
    start: u64,
    count: u64,
    /// Pages the next window reads ahead.
    ahead: u64,
}

impl<'f> Pages<'f> {
    /// Pages of `page_size` bytes below the high-water mark `hwm`.
    pub fn new(file: &'f File, page_size: usize, hwm: u64) -> Pages<'f> {
        Pages {
            file,
            page_size,
            hwm,
            buf: Vec::new(),
            start: 0,
            count: 0,
            ahead: 1,
        }
    }

    /// Reads pages `from..from + n` into the window at page `from - start`
    /// (growing the buffer, never zeroing more than it grows).
    fn read(&mut self, from: u64, n: u64) -> Result<()> {
        let ps = self.page_size as u64;
        let at = ((from - self.start) * ps) as usize;
        let end = at + (n * ps) as usize;
        if self.buf.len() < end {
            self.buf.resize(end, 0);
        }
        self.file
            .read_exact_at(&mut self.buf[at..end], from * ps)
            .map_err(|e| corrupt(format!("cannot read page {from}: {e}")))?;
        self.count = from + n - self.start;
        Ok(())
    }

    /// `buf.len()` bytes at `offset` of the file (part of page `pgid`), not
    /// through the window.
    pub fn read_at(&self, pgid: u64, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| corrupt(format!("cannot read page {pgid}: {e}")))
    }

    /// Page `pgid` alone (not its overflow pages), its header's id and extent
    /// checked.
    pub fn head(&mut self, pgid: u64) -> Result<&[u8]> {
        let at = self.locate(pgid)?;
        Ok(&self.buf[at..at + self.page_size])
    }

    /// Page `pgid` with its overflow pages, its header's id and extent checked.
    pub fn page(&mut self, pgid: u64) -> Result<&[u8]> {
        let at = self.locate(pgid)?;
        let ps = self.page_size;
        let overflow = u64::from(u32_at(&self.buf[at..at + ps], 12));
        let last = pgid + overflow;
        let end = self.start + self.count;
        if last >= end {
            // The overflow pages' tail, and as much again ahead when it fits.
            let more = (last + 1 - end).max(self.ahead).min(self.hwm - end);
            self.read(end, more)?;
        }
        let len = (overflow as usize + 1) * ps;
        Ok(&self.buf[at..at + len])
    }

    /// Page `pgid`'s place in the window (read there if need be), its header
    /// checked.
    fn locate(&mut self, pgid: u64) -> Result<usize> {
        if pgid < 2 || pgid >= self.hwm {
            return Err(corrupt(format!(
                "page {pgid} lies outside 2..{} (the high-water mark)",
                self.hwm
            )));
        }
        let end = self.start + self.count;
        if pgid < self.start || pgid >= end {
            let max = (MAX_WINDOW / self.page_size).max(1) as u64;
            self.ahead = match pgid == end {
                true => (self.ahead * 2).min(max),
                false => 1,
            };
            (self.start, self.count) = (pgid, 0);
            self.read(pgid, self.ahead.min(self.hwm - pgid))?;
        }
        let ps = self.page_size;
        let at = (pgid - self.start) as usize * ps;
        let header = &self.buf[at..at + ps];
        if u64_at(header, 0) != pgid {
            return Err(corrupt(format!(
                "page {pgid} carries the id {}",
                u64_at(header, 0)
            )));
        }
        let overflow = u64::from(u32_at(header, 12));
        if pgid + overflow >= self.hwm {
            return Err(corrupt(format!(
                "page {pgid} with {overflow} overflow pages runs past the high-water mark"
            )));
        }
        Ok(at)
    }
}
