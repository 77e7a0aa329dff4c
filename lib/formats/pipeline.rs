//! The stages between a source of snapshot bytes and where they are written:
//! verify (etcd's trailer required), compress, then the sink, on one blocking
//! thread. A new stage (encryption) goes here, between the encoder and the sink.

use std::io::Write;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::base::digest::Sha256;
use crate::base::error::{Error, Result};
use crate::formats::compress::{Compress, Encoder};
use crate::formats::snapshot::{SnapshotInfo, Verifier};

/// Runs the verifier (trailer required) and encoder over the chunks on a
/// blocking thread, then `done` on the finished sink (on that thread too: it may
/// block); returns what was verified and what `done` returned.
pub fn spawn_pipeline<W, T, F>(
    mut chunks: mpsc::Receiver<Bytes>,
    sink: W,
    compress: Compress,
    done: F,
) -> tokio::task::JoinHandle<Result<(SnapshotInfo, T)>>
where
    W: Write + Send + 'static,
    T: Send + 'static,
    F: FnOnce(W) -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let mut v = Verifier::new(Encoder::new(sink, compress), false);
        while let Some(chunk) = chunks.blocking_recv() {
            v.update(&chunk)
                .map_err(|e| e.about("the snapshot from etcd"))?;
        }
        let (info, enc) = v.finish().map_err(|e| e.about("the snapshot from etcd"))?;
        let sink = enc
            .finish()
            .map_err(|e| Error::Other(format!("finishing the compressed stream: {e}")))?;
        Ok((info, done(sink)?))
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
