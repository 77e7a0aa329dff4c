//! The stages between a source of snapshot bytes and where they are written:
//! verify (etcd's trailer required), then each of [`Stages`] in order, then the
//! sink, on one blocking thread.
//!
//! Encryption (age) comes after compression: ciphertext does not compress.
//! The seam for a new stage: a field in [`Stages`], a layer in
//! [`Chain`] (built in [`Stages::chain`], ended in [`Chain::finish`], innermost
//! last). The verifier always sees the plaintext, before every stage; callers do
//! not change.

use std::io::Write;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::base::digest::Sha256;
use crate::base::error::{Error, Result};
use crate::formats::compress::{Compress, Encoder};
use crate::formats::encrypt::Recipients;
use crate::formats::snapshot::{SnapshotInfo, Verifier};

/// What happens to verified bytes before they reach the sink, in order.
#[derive(Debug, Clone)]
pub struct Stages {
    /// First: compression (or none).
    pub compress: Compress,
    /// Then: encryption to these recipients (the age format), or none.
    pub encrypt: Option<Recipients>,
}

impl Stages {
    /// Compression only.
    pub fn compress(compress: Compress) -> Stages {
        Stages {
            compress,
            encrypt: None,
        }
    }

    /// Wraps `sink` in the stages: what is written to the chain goes through
    /// each in order and then to `sink`.
    pub fn chain<W: Write>(self, sink: W) -> Result<Chain<W>> {
        let encrypted = match &self.encrypt {
            Some(r) => {
                Encrypting::Age(Box::new(r.encrypt(sink).map_err(|e| {
                    Error::Other(format!("starting the encrypted stream: {e}"))
                })?))
            }
            None => Encrypting::Plain(sink),
        };
        Ok(Chain {
            encoder: Encoder::new(encrypted, self.compress),
        })
    }
}

/// A sink wrapped in the stages.
pub struct Chain<W: Write> {
    encoder: Encoder<Encrypting<W>>,
}

impl<W: Write> Chain<W> {
    /// Ends each stage (a gzip trailer, age's last chunk) and returns the sink.
    pub fn finish(self) -> Result<W> {
        self.encoder
            .finish()
            .map_err(|e| Error::Other(format!("finishing the compressed stream: {e}")))?
            .finish()
    }
}

impl<W: Write> Write for Chain<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.encoder.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.encoder.flush()
    }
}

/// The encryption stage: the sink itself, or an age stream onto it.
enum Encrypting<W: Write> {
    Plain(W),
    Age(Box<age::stream::StreamWriter<W>>),
}

impl<W: Write> Encrypting<W> {
    fn finish(self) -> Result<W> {
        match self {
            Encrypting::Plain(w) => Ok(w),
            Encrypting::Age(w) => (*w)
                .finish()
                .map_err(|e| Error::Other(format!("finishing the encrypted stream: {e}"))),
        }
    }
}

impl<W: Write> Write for Encrypting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Encrypting::Plain(w) => w.write(buf),
            Encrypting::Age(w) => w.write(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Encrypting::Plain(w) => w.write_all(buf),
            Encrypting::Age(w) => w.write_all(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Encrypting::Plain(w) => w.flush(),
            Encrypting::Age(w) => w.flush(),
        }
    }
}

/// Runs the verifier (trailer required) and the stages over the chunks on a
/// blocking thread, then `done` on the finished sink (on that thread too: it may
/// block); returns what was verified and what `done` returned.
pub fn spawn_pipeline<W, T, F>(
    mut chunks: mpsc::Receiver<Bytes>,
    sink: W,
    stages: Stages,
    done: F,
) -> tokio::task::JoinHandle<Result<(SnapshotInfo, T)>>
where
    W: Write + Send + 'static,
    T: Send + 'static,
    F: FnOnce(W) -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let mut v = Verifier::new(stages.chain(sink)?, false);
        while let Some(chunk) = chunks.blocking_recv() {
            v.update(&chunk)
                .map_err(|e| e.about("the snapshot from etcd"))?;
        }
        let (info, chain) = v.finish().map_err(|e| e.about("the snapshot from etcd"))?;
        Ok((info, done(chain.finish()?)?))
    })
}

/// A writer that hashes and counts what passes through it.
pub struct Hashing<W> {
    pub inner: W,
    pub hash: Sha256,
    pub total: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(data)?;
        self.hash.update(&data[..n]);
        self.total += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_chain_compresses_and_finishes_to_the_sink() {
        let plain = b"etcd snapshot bytes, several times over; ".repeat(100);
        let mut chain = Stages::compress(Compress::Gzip {
            level: 6,
            threads: 2,
        })
        .chain(Vec::new())
        .unwrap();
        chain.write_all(&plain).unwrap();
        let gz = chain.finish().unwrap();
        assert!(gz.len() < plain.len(), "compressed");
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(gz.as_slice())
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, plain);
        let mut chain = Stages::compress(Compress::None).chain(Vec::new()).unwrap();
        chain.write_all(&plain).unwrap();
        assert_eq!(chain.finish().unwrap(), plain);
    }

    #[test]
    fn encryption_comes_after_compression() {
        let key = age::x25519::Identity::generate();
        let recipients = Recipients::parse(
            Some((&key.to_public().to_string(), "ENCRYPT_RECIPIENTS")),
            None,
        )
        .unwrap()
        .unwrap();
        let plain = b"etcd snapshot bytes, several times over; ".repeat(1000);
        let mut chain = Stages {
            compress: Compress::Gzip {
                level: 6,
                threads: 2,
            },
            encrypt: Some(recipients),
        }
        .chain(Vec::new())
        .unwrap();
        chain.write_all(&plain).unwrap();
        let sealed = chain.finish().unwrap();
        assert!(crate::formats::encrypt::is_age(&sealed));
        assert!(sealed.len() < plain.len(), "compressed before encryption");
        let mut gz = Vec::new();
        age::Decryptor::new_buffered(sealed.as_slice())
            .unwrap()
            .decrypt(std::iter::once(&key as &dyn age::Identity))
            .unwrap()
            .read_to_end(&mut gz)
            .unwrap();
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(gz.as_slice())
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, plain);
    }
}
