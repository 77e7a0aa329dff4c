//! gzip inflated in parallel when it is made of indexed members (as snapjob
//! writes it, crate::formats::gzip_members), as one stream otherwise.
//!
//! Members whose header carries an `SJ` entry are cut out of the input by the
//! lengths it gives and inflated by worker threads; their output is written in
//! order. The entry is not trusted: a member that does not inflate to exactly
//! what its header says (length, raw size, CRC-32, ISIZE), or any header that is
//! not of that shape, switches to one stream (flate2's multi-member decoder) from
//! that member's first byte on, fed the same bytes in the same order, so the
//! output is what one stream gives, or its error. Input of other writers (Go's
//! gzip, GNU gzip, s3cmd uploads) goes that way from its first byte, as before.
//!
//! Memory: the input of at most `threads + 2` members in flight, each with its
//! output (at most [`MAX_MEMBER`] + [`BLOCK`] bytes apiece), and the member
//! being gathered.

use std::io::{self, Write};

use flate2::write::MultiGzDecoder;

use super::Stop;
use super::handoff::Handoff;
use crate::base::pool::Ordered;
use crate::formats::gzip_members::{BLOCK, Header, MAX_MEMBER, Member, inflate_member};

/// Inflating threads at most, whatever the CPUs.
const MAX_THREADS: usize = 8;

type Job = (Vec<u8>, Member);
type Done = (Vec<u8>, Result<Vec<u8>, &'static str>);

/// The gzip stage of the verifier.
pub(super) enum Inflate<W: Write + Send + 'static> {
    /// Indexed members so far.
    Members(Box<Parallel<W>>),
    /// One stream from some member on.
    Stream(Box<MultiGzDecoder<Handoff<W>>>),
    /// Only while switching.
    Switching,
}

pub(super) struct Parallel<W: Write + Send + 'static> {
    out: Handoff<W>,
    /// Input not yet cut into members, from `start`.
    pending: Vec<u8>,
    start: usize,
    pool: Option<Ordered<Job, Done>>,
    threads: usize,
}

impl<W: Write + Send + 'static> Inflate<W> {
    pub(super) fn new(out: Handoff<W>) -> Self {
        Self::with_threads(out, crate::base::pool::cpus())
    }

    pub(super) fn with_threads(out: Handoff<W>, threads: usize) -> Self {
        Inflate::Members(Box::new(Parallel {
            out,
            pending: Vec::new(),
            start: 0,
            pool: None,
            threads: threads.clamp(1, MAX_THREADS),
        }))
    }

    pub(super) fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let next = match self {
            Inflate::Stream(d) => return d.write_all(bytes),
            Inflate::Members(p) => p.take(bytes)?,
            Inflate::Switching => unreachable!("switching ends within a call"),
        };
        match next {
            Next::Go => Ok(()),
            Next::Switch(failed) => self.switch_to_stream(failed),
        }
    }

    /// Switches to one stream: the decoder is fed `failed` (the input of the
    /// member that did not check out), the input of every member after it still
    /// in flight, and what is not cut yet.
    fn switch_to_stream(&mut self, failed: Option<Vec<u8>>) -> io::Result<()> {
        let Inflate::Members(p) = std::mem::replace(self, Inflate::Switching) else {
            unreachable!("only from members")
        };
        let Parallel {
            out,
            pending,
            start,
            pool,
            ..
        } = *p;
        let mut d = MultiGzDecoder::new(out);
        if let Some(input) = failed {
            d.write_all(&input)?;
        }
        if let Some(mut pool) = pool {
            while let Some(done) = pool.take_oldest() {
                let (input, _) = done.map_err(|_| gone())?;
                d.write_all(&input)?;
            }
        }
        d.write_all(&pending[start..])?;
        *self = Inflate::Stream(Box::new(d));
        Ok(())
    }

    /// Ends the input: every member written, or the stream finished (a
    /// truncated or trailing part is the decoder's error).
    pub(super) fn finish(mut self) -> io::Result<Handoff<W>> {
        self.settle()?;
        match self {
            Inflate::Members(p) => Ok(p.out),
            Inflate::Stream(d) => d.finish(),
            Inflate::Switching => unreachable!("switching ends within a call"),
        }
    }

    /// Writes every member in flight; switches to one stream if one does not
    /// check out or input is left that is not a whole member.
    fn settle(&mut self) -> io::Result<()> {
        let next = match self {
            Inflate::Members(p) => match p.drain()? {
                Some(failed) => Next::Switch(Some(failed)),
                None if p.pending.len() > p.start => Next::Switch(None),
                None => Next::Go,
            },
            _ => Next::Go,
        };
        match next {
            Next::Switch(failed) => self.switch_to_stream(failed),
            Next::Go => Ok(()),
        }
    }
}

/// Whether to go on with members or switch to one stream (fed the input of the
/// member that did not check out, if one did not).
enum Next {
    Go,
    Switch(Option<Vec<u8>>),
}

impl<W: Write + Send + 'static> Parallel<W> {
    /// Cuts and queues the members `bytes` complete.
    fn take(&mut self, bytes: &[u8]) -> io::Result<Next> {
        self.pending.extend_from_slice(bytes);
        loop {
            match crate::formats::gzip_members::parse_header(&self.pending[self.start..]) {
                Header::Short => break,
                Header::Other => return Ok(Next::Switch(None)),
                Header::Indexed(m) => {
                    if self.pending.len() - self.start < m.len {
                        break;
                    }
                    let member = self.pending[self.start..self.start + m.len].to_vec();
                    // An earlier member that did not check out leaves this one
                    // in `pending`, to be fed to the stream after those in flight.
                    if let Some(failed) = self.submit(member, m)? {
                        return Ok(Next::Switch(Some(failed)));
                    }
                    self.start += m.len;
                }
            }
        }
        self.pending.drain(..self.start);
        self.start = 0;
        Ok(Next::Go)
    }

    /// Queues a member, first writing finished ones while `threads + 2` are in
    /// flight; returns the input of one that did not check out (`member` is
    /// then not queued).
    fn submit(&mut self, member: Vec<u8>, m: Member) -> io::Result<Option<Vec<u8>>> {
        let threads = self.threads;
        let pool = self.pool.get_or_insert_with(|| {
            Ordered::new(threads, threads + 2, |(input, m): Job| {
                let out = inflate_member(&input, m);
                (input, out)
            })
        });
        while pool.is_full() {
            if let Some(failed) = write_next(pool, &mut self.out)? {
                return Ok(Some(failed));
            }
        }
        pool.submit((member, m)).map_err(|_| gone())?;
        Ok(None)
    }

    /// Writes every member in flight, in order; the input of the first that
    /// did not check out stops it.
    fn drain(&mut self) -> io::Result<Option<Vec<u8>>> {
        let Some(pool) = &mut self.pool else {
            return Ok(None);
        };
        while pool.in_flight() > 0 {
            if let Some(failed) = write_next(pool, &mut self.out)? {
                return Ok(Some(failed));
            }
        }
        Ok(None)
    }
}

/// Writes the oldest member's output; its input when it did not check out.
fn write_next<W: Write + Send + 'static>(
    pool: &mut Ordered<Job, Done>,
    out: &mut Handoff<W>,
) -> io::Result<Option<Vec<u8>>> {
    let Some(done) = pool.take_oldest() else {
        return Ok(None);
    };
    match done.map_err(|_| gone())? {
        (_, Ok(raw)) => {
            out.write_all(&raw)?;
            Ok(None)
        }
        (input, Err(why)) => {
            tracing::debug!(
                why,
                "a gzip member's index entry does not check out: one stream from here"
            );
            Ok(Some(input))
        }
    }
}

fn gone() -> io::Error {
    Stop::Thread("an inflating thread panicked".into()).into_io()
}

// Bounds the memory note above: a member in flight is at most this big.
const _: () = assert!(MAX_MEMBER < 2 * BLOCK);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::error::ErrorClass;
    use crate::formats::compress::{Compress, Encoder};
    use crate::formats::snapshot::Verifier;
    use crate::formats::snapshot::tests::{gzip, synthetic};
    use crate::formats::snapshot::trailer::TrailerCheck;

    fn members(raw: &[u8]) -> Vec<u8> {
        let mut e = Encoder::new(
            Vec::new(),
            Compress::Gzip {
                level: 1,
                threads: 2,
            },
        );
        e.write_all(raw).unwrap();
        e.finish().unwrap()
    }

    /// Inflates `gz` fed in `chunk`-sized writes; whether every member was
    /// inflated in parallel, and the output.
    fn inflate(gz: &[u8], chunk: usize) -> io::Result<(bool, Vec<u8>)> {
        let mut d = Inflate::with_threads(Handoff::new(TrailerCheck::new(Vec::new())), 3);
        for c in gz.chunks(chunk) {
            d.write_all(c)?;
        }
        d.settle()?;
        let parallel = matches!(d, Inflate::Members(_));
        let check = d.finish()?.finish()?;
        Ok((parallel, check.finish(true).map_err(io::Error::other)?))
    }

    /// The offsets of the members' `SJ` entries.
    fn entries(gz: &[u8]) -> Vec<usize> {
        let mut at = 0;
        let mut found = Vec::new();
        while let Header::Indexed(m) = crate::formats::gzip_members::parse_header(&gz[at..]) {
            found.push(at + 16);
            at += m.len;
        }
        assert_eq!(at, gz.len(), "every member is indexed");
        found
    }

    #[test]
    fn indexed_members_inflate_in_parallel_in_any_chunking() {
        let db = synthetic(700); // about 2.7 MiB: three members
        let gz = members(&db);
        assert_eq!(entries(&gz).len(), 3);
        for chunk in [1000, 65536, 1 << 20, gz.len()] {
            let (parallel, out) = inflate(&gz, chunk).unwrap();
            assert!(parallel, "chunk {chunk}");
            assert!(out == db, "chunk {chunk}");
        }
        // Another writer's single stream: one stream from the start, as before.
        let (parallel, out) = inflate(&gzip(&db), 65536).unwrap();
        assert!(!parallel);
        assert!(out == db);
    }

    #[test]
    fn a_wrong_index_falls_back_to_one_stream_with_the_same_output() {
        let db = synthetic(700);
        let gz = members(&db);
        let at = entries(&gz);
        let field = |v: &[u8], i: usize| u32::from_le_bytes(v[i..i + 4].try_into().unwrap());
        for (member, offset, delta) in [
            (1, 0, -1i64),   // the second member's length, short
            (1, 0, 5),       // and long
            (0, 4, -1),      // the first member's raw size
            (2, 0, 1 << 30), // out of bounds: not taken as an index at all
            (2, 4, 1),       // the last member's raw size
        ] {
            let mut bad = gz.clone();
            let i = at[member] + offset;
            let v = (i64::from(field(&bad, i)) + delta) as u32;
            bad[i..i + 4].copy_from_slice(&v.to_le_bytes());
            let (parallel, out) = inflate(&bad, 100_000).unwrap();
            assert!(!parallel, "member {member} +{offset} {delta}: fell back");
            assert!(out == db, "member {member} +{offset} {delta}: same output");
        }
    }

    #[test]
    fn corrupt_or_truncated_members_are_data_errors() {
        let db = synthetic(700);
        let gz = members(&db);
        let at = entries(&gz);
        let verify = |bytes: &[u8]| {
            let mut v = Verifier::new(io::sink(), true);
            for c in bytes.chunks(300_000) {
                v.update(c)?;
            }
            v.finish().map(|_| ())
        };
        let mut body = gz.clone();
        body[at[1] + 5000] ^= 0x10; // deflate data of the second member
        let mut crc = gz.clone();
        crc[at[2] - 16 - 7] ^= 1; // the first member's... CRC-32 of the second
        for (what, bad) in [
            ("deflate data", body),
            ("CRC-32", crc),
            ("truncated", gz[..gz.len() - 3].to_vec()),
            ("a member cut short", gz[..at[2] - 16 + 100].to_vec()),
            (
                "trailing garbage",
                [gz.clone(), b"garbage".to_vec()].concat(),
            ),
        ] {
            let e = verify(&bad).expect_err(what);
            assert_eq!(e.class(), ErrorClass::Data, "{what}: {e}");
        }
        verify(&gz).unwrap();
    }
}
