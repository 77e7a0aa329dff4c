//! Compression of a snapshot as it is stored: none (what `etcdctl snapshot save`
//! writes) or gzip at a level, as independent members compressed on several
//! threads (crate::formats::gzip_members).

use std::io::Write;

use crate::base::pool::Ordered;
use crate::formats::gzip_members::{BLOCK, encode_member_into};

/// How the stream is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compress {
    /// As etcd sends it (what `etcdctl snapshot save` writes).
    None,
    /// gzip at `level` (1-9), members compressed on `threads` threads.
    Gzip { level: u32, threads: usize },
}

/// A writer that compresses or not, and can be finished.
pub enum Encoder<W: Write> {
    Plain(W),
    Gzip(Box<Members<W>>),
}

impl<W: Write> Encoder<W> {
    pub fn new(w: W, c: Compress) -> Self {
        match c {
            Compress::None => Encoder::Plain(w),
            Compress::Gzip { level, threads } => {
                Encoder::Gzip(Box::new(Members::new(w, level, threads)))
            }
        }
    }

    pub fn finish(self) -> std::io::Result<W> {
        match self {
            Encoder::Plain(w) => Ok(w),
            Encoder::Gzip(g) => (*g).finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Gzip(g) => g.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            Encoder::Gzip(g) => g.flush(),
        }
    }
}

/// A block to compress and the buffer its member is written into; given back
/// with the member, both are reused for later blocks.
type Job = (Vec<u8>, Vec<u8>);

/// gzip written as one member per [`BLOCK`], compressed by `threads` workers and
/// written in order. In memory: the block being filled, and at most `threads + 1`
/// blocks in flight with their compressed members: about `(2 x threads + 3)` MiB
/// at most, less as the snapshot compresses. The blocks' and members' buffers
/// are reused: no 1 MiB allocation per member (each one freed is page-faulted
/// in again, or kept in glibc's heap; benches/RESULTS.md, issue 20).
pub struct Members<W: Write> {
    out: W,
    block: Vec<u8>,
    pool: Ordered<Job, std::io::Result<Job>>,
    /// Buffers back from the workers, (block, member) pairs.
    spare: Vec<Job>,
    members: u64,
}

impl<W: Write> Members<W> {
    pub fn new(out: W, level: u32, threads: usize) -> Self {
        let threads = threads.max(1);
        Members {
            out,
            block: Vec::with_capacity(BLOCK),
            pool: Ordered::new(threads, threads + 1, move |(raw, out): Job| {
                encode_member_into(&raw, level, out).map(|member| (raw, member))
            }),
            spare: Vec::new(),
            members: 0,
        }
    }

    /// Writes the oldest finished member and keeps its buffers.
    fn write_next(&mut self) -> std::io::Result<()> {
        match self.pool.take_oldest() {
            Some(Ok(done)) => {
                let (mut raw, member) = done?;
                self.out.write_all(&member)?;
                raw.clear();
                self.spare.push((raw, member));
                Ok(())
            }
            Some(Err(_)) => Err(std::io::Error::other("a compressing thread panicked")),
            None => Ok(()),
        }
    }

    fn submit(&mut self) -> std::io::Result<()> {
        while self.pool.is_full() {
            self.write_next()?;
        }
        let (next, member) = self
            .spare
            .pop()
            .unwrap_or_else(|| (Vec::with_capacity(BLOCK), Vec::new()));
        let block = std::mem::replace(&mut self.block, next);
        self.members += 1;
        self.pool
            .submit((block, member))
            .map_err(|_| std::io::Error::other("the compressing threads stopped"))
    }

    /// Compresses what is left (one empty member for an empty input), writes
    /// every member in order, and returns the writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        if !self.block.is_empty() || self.members == 0 {
            self.submit()?;
        }
        while self.pool.in_flight() > 0 {
            self.write_next()?;
        }
        let Members { out, .. } = self;
        Ok(out)
    }
}

impl<W: Write> Write for Members<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let take = (BLOCK - self.block.len()).min(buf.len());
        self.block.extend_from_slice(&buf[..take]);
        if self.block.len() == BLOCK {
            self.submit()?;
        }
        Ok(take)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        // Members go when full or at the end.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn members_in_order_make_one_gzip_stream() {
        let raw: Vec<u8> = (0..3 * BLOCK + 12345)
            .map(|i| (i / 7 % 251) as u8 ^ (i % 3) as u8)
            .collect();
        for threads in [1, 3] {
            let mut e = Encoder::new(Vec::new(), Compress::Gzip { level: 3, threads });
            for piece in raw.chunks(100_000) {
                e.write_all(piece).unwrap();
            }
            let gz = e.finish().unwrap();
            let mut back = Vec::new();
            flate2::read::MultiGzDecoder::new(gz.as_slice())
                .read_to_end(&mut back)
                .unwrap();
            assert!(back == raw, "{threads} threads");
            let mut members = 0;
            let mut at = 0;
            while at < gz.len() {
                let crate::formats::gzip_members::Header::Indexed(m) =
                    crate::formats::gzip_members::parse_header(&gz[at..])
                else {
                    panic!("member {members} at {at} has no index entry")
                };
                at += m.len;
                members += 1;
            }
            assert_eq!(members, 4);
        }
        let empty = Encoder::new(
            Vec::new(),
            Compress::Gzip {
                level: 3,
                threads: 2,
            },
        )
        .finish()
        .unwrap();
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(empty.as_slice())
            .read_to_end(&mut back)
            .unwrap();
        assert!(back.is_empty());
    }
}
