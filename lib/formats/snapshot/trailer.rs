//! The check of a raw snapshot as it passes: the bbolt magic in the first page
//! and etcd's SHA-256 trailer over everything before it.

use std::io::{self, Write};

use crate::base::digest::Sha256;

use crate::base::error::{Error, Result};

use super::{BOLT_MAGIC, Stop, TRAILER};

/// Hashes the raw snapshot except its last 32 bytes, keeps those apart, and
/// passes everything through to the sink.
pub(super) struct TrailerCheck<W: Write> {
    sink: W,
    hash: Sha256,
    /// The last (up to) 32 bytes seen, not hashed yet.
    tail: Vec<u8>,
    /// The first 20 bytes (page header + bbolt magic).
    first: Vec<u8>,
    pub(super) len: u64,
    /// The bytes are decompressed (for messages).
    pub(super) gzip: bool,
}

impl<W: Write> TrailerCheck<W> {
    pub(super) fn new(sink: W) -> Self {
        TrailerCheck {
            sink,
            hash: Sha256::new(),
            tail: Vec::with_capacity(2 * TRAILER),
            first: Vec::with_capacity(20),
            len: 0,
            gzip: false,
        }
    }

    fn what(&self) -> &'static str {
        if self.gzip {
            "the decompressed snapshot"
        } else {
            "the snapshot"
        }
    }

    /// The first page's bbolt magic, once its bytes are in: anything else is
    /// refused before the rest is read (etcd's db always starts with a meta page).
    fn not_bolt(&self) -> Option<String> {
        (self.first.len() >= 20 && !is_bolt_magic(&self.first[16..20]))
            .then(|| format!("{} is not an etcd (bbolt) database", self.what()))
    }

    /// The hash of every byte written so far, trailer candidate included.
    pub(super) fn whole_hash(&self) -> Sha256 {
        let mut h = self.hash.clone();
        h.update(&self.tail);
        h
    }

    pub(super) fn finish(self, check_trailer: bool) -> Result<W> {
        let what = self.what();
        if self.len == 0 {
            return Err(Error::Data(format!("{what} is empty")));
        }
        if self.first.len() < 20 || !is_bolt_magic(&self.first[16..20]) {
            return Err(Error::Data(format!(
                "{what} is not an etcd (bbolt) database"
            )));
        }
        if !check_trailer {
            return Ok(self.sink);
        }
        if self.len % 512 != TRAILER as u64 {
            return Err(Error::Data(format!(
                "{what} has no SHA-256 trailer ({} bytes is not 512*k+32): truncated, or not taken with `etcdctl snapshot save`",
                self.len
            )));
        }
        if self.hash.finalize()[..] != self.tail[..] {
            return Err(Error::Data(format!(
                "{what} fails its SHA-256 trailer check: the database is corrupt"
            )));
        }
        Ok(self.sink)
    }
}

pub(super) fn is_bolt_magic(b: &[u8]) -> bool {
    let b: [u8; 4] = b.try_into().expect("four bytes");
    u32::from_le_bytes(b) == BOLT_MAGIC || u32::from_be_bytes(b) == BOLT_MAGIC
}

impl<W: Write> Write for TrailerCheck<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.first.len() < 20 {
            let n = (20 - self.first.len()).min(buf.len());
            self.first.extend_from_slice(&buf[..n]);
            if let Some(refusal) = self.not_bolt() {
                return Err(Stop::Refused(refusal).into_io());
            }
        }
        self.len += buf.len() as u64;
        if buf.len() >= TRAILER {
            // Everything held back plus all but the last 32 new bytes is db content.
            self.hash.update(&self.tail);
            self.hash.update(&buf[..buf.len() - TRAILER]);
            self.tail.clear();
            self.tail.extend_from_slice(&buf[buf.len() - TRAILER..]);
        } else {
            self.tail.extend_from_slice(buf);
            if self.tail.len() > TRAILER {
                let excess = self.tail.len() - TRAILER;
                self.hash.update(&self.tail[..excess]);
                self.tail.drain(..excess);
            }
        }
        self.sink.write_all(buf).map_err(|e| {
            if e.get_ref().is_some_and(|inner| inner.is::<Stop>()) {
                e // already says which file
            } else {
                Stop::Write {
                    path: None,
                    source: e,
                }
                .into_io()
            }
        })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sink.flush()
    }
}
