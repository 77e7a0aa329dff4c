//! Compression of a snapshot as it is stored: none (what `etcdctl snapshot save`
//! writes) or gzip at a level.

use std::io::Write;

/// How the stream is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compress {
    /// As etcd sends it (what `etcdctl snapshot save` writes).
    None,
    /// gzip at this level (1-9).
    Gzip(u32),
}

/// A writer that compresses or not, and can be finished.
pub enum Encoder<W: Write> {
    Plain(W),
    Gzip(Box<flate2::write::GzEncoder<W>>),
}

impl<W: Write> Encoder<W> {
    pub fn new(w: W, c: Compress) -> Self {
        match c {
            Compress::None => Encoder::Plain(w),
            Compress::Gzip(level) => Encoder::Gzip(Box::new(flate2::write::GzEncoder::new(
                w,
                flate2::Compression::new(level),
            ))),
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
