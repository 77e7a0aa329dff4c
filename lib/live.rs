//! Snapshots straight from a live etcd, with no temporary file and no second pass:
//! the stream is checked (etcd's SHA-256 trailer), compressed and either written
//! to a local file atomically ([`snapshot_to_file`], the init container's job) or
//! uploaded as a multipart upload while it arrives ([`store_from_etcd`]).
//!
//! Stages overlap: the async side reads the etcd stream and uploads parts, a
//! blocking thread verifies and compresses. Memory is bounded by the part size and
//! concurrency (plus a few 32 KiB stream chunks), whatever the snapshot size.
//! S3 takes metadata when an upload starts, before the streamed digest is known,
//! so objects stored this way carry no recorded SHA-256; the etcd trailer inside
//! them (and gzip's CRC) is what `restore` verifies.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::digest::Sha256;
use bytes::Bytes;
use object_store::{ObjectStore, PutMultipartOptions};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::atomic::TempFile;
use crate::cancel::{Deadline, Shutdown};
use crate::config::{SnapshotConfig, StoreConfig};
use crate::error::{Error, Result};
use crate::etcd::{self, EtcdSource};
use crate::progress::Progress;
use crate::snapshot::{NamedSink, SnapshotInfo, Verifier};
use crate::store::{StoreReport, mib_per_s};
use crate::upload;

/// How the stream is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compress {
    /// As etcd sends it (what `etcdctl snapshot save` writes).
    None,
    /// gzip at this level (1-9).
    Gzip(u32),
}

/// A writer that compresses or not, and can be finished.
enum Encoder<W: Write> {
    Plain(W),
    Gzip(Box<flate2::write::GzEncoder<W>>),
}

impl<W: Write> Encoder<W> {
    fn new(w: W, c: Compress) -> Self {
        match c {
            Compress::None => Encoder::Plain(w),
            Compress::Gzip(level) => Encoder::Gzip(Box::new(flate2::write::GzEncoder::new(
                w,
                flate2::Compression::new(level),
            ))),
        }
    }

    fn finish(self) -> std::io::Result<W> {
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

/// Runs the verifier (trailer required) and encoder over the chunks on a
/// blocking thread, then `done` on the finished sink (on that thread too: it may
/// block); returns what was verified and what `done` returned.
fn spawn_pipeline<W, T, F>(
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

/// Reads the etcd stream into `tx`, with progress lines every `every`.
async fn pump(
    stream: &mut etcd::SnapshotStream,
    tx: mpsc::Sender<Bytes>,
    every: Duration,
) -> Result<u64> {
    let mut progress = Progress::new("streaming the snapshot", None, every);
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await? {
        n += chunk.len() as u64;
        progress.add(chunk.len() as u64);
        if tx.send(chunk).await.is_err() {
            break; // the pipeline stopped; its error is reported
        }
    }
    Ok(n)
}

/// What `snapshot` did.
#[derive(Debug, Clone)]
pub struct SnapshotReport {
    /// The file written.
    pub file: PathBuf,
    /// The endpoint the snapshot came from.
    pub endpoint: String,
    /// Raw snapshot bytes (with the trailer).
    pub snapshot_bytes: u64,
    /// Wall time.
    pub seconds: f64,
}

/// Writes a snapshot of `cfg.source` to `cfg.file` atomically, compressed as asked.
#[tracing::instrument(name = "snapshot", skip_all)]
pub async fn snapshot_to_file(cfg: &SnapshotConfig, shutdown: &Shutdown) -> Result<SnapshotReport> {
    let (src, file, compress, progress) =
        (&cfg.source, cfg.file.as_path(), cfg.compress, cfg.progress);
    let started = Instant::now();
    let deadline = Deadline::after(cfg.deadline);
    let mut stream = deadline
        .run(shutdown, "connecting to etcd", etcd::open(src))
        .await?;
    let (info, _) = stream_to_file(
        &mut stream,
        file,
        "tmp",
        (compress, progress),
        shutdown,
        &deadline,
    )
    .await?;
    let report = SnapshotReport {
        file: file.to_path_buf(),
        endpoint: stream.endpoint.clone(),
        snapshot_bytes: info.snapshot_bytes,
        seconds: started.elapsed().as_secs_f64(),
    };
    tracing::info!(
        file = %file.display(),
        endpoint = %report.endpoint,
        snapshot_bytes = report.snapshot_bytes,
        seconds = crate::progress::round_to(report.seconds, 3),
        "snapshot written"
    );
    Ok(report)
}

/// Streams `stream`, verified and compressed, into a locked temporary file
/// `.<file>.snapjob-<id>.<suffix>` and renames it into place once whole; what a
/// killed run left there first is swept. Returns what was verified and the
/// SHA-256 and size of the file written.
async fn stream_to_file(
    stream: &mut etcd::SnapshotStream,
    file: &std::path::Path,
    suffix: &str,
    (compress, progress): (Compress, Duration),
    shutdown: &Shutdown,
    deadline: &Deadline,
) -> Result<(SnapshotInfo, (String, u64))> {
    // What a killed run left beside the file (a live one holds its lock).
    crate::atomic::sweep(file, &[suffix]);
    let (temp, out) = TempFile::beside(file, suffix)?;
    let (tx, rx) = mpsc::channel(16);
    let path = file.to_path_buf();
    // Write errors name the file (74), a full disk included.
    let sink = Hashing {
        inner: NamedSink::new(BufWriter::with_capacity(1 << 20, out), temp.path.clone()),
        hash: Sha256::new(),
        total: 0,
    };
    let pipeline = spawn_pipeline(rx, sink, compress, move |w: Hashing<NamedSink<_>>| {
        crate::atomic::flush_sync(w.inner.into_inner(), &path)?;
        Ok((hex::encode(w.hash.finalize()), w.total))
    });
    let pumped = deadline
        .run(
            shutdown,
            "streaming the snapshot",
            pump(stream, tx, progress),
        )
        .await;
    let finished = pipeline
        .await
        .map_err(|e| Error::Other(format!("snapshot task failed: {e}")));
    pumped?;
    let done = finished??;
    temp.persist(file)?;
    Ok(done)
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    total: u64,
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

/// Cuts the compressed stream into parts for the uploader and hashes it.
struct PartSink {
    part_size: usize,
    buf: Vec<u8>,
    parts: mpsc::Sender<Result<Bytes>>,
    hash: Sha256,
    total: u64,
}

impl PartSink {
    fn send(&mut self) -> std::io::Result<()> {
        let part = std::mem::replace(&mut self.buf, Vec::with_capacity(self.part_size));
        self.parts
            .blocking_send(Ok(Bytes::from(part)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the upload stopped"))
    }

    /// Sends the last part; returns the SHA-256 and size of the whole object.
    fn finish(mut self) -> std::io::Result<(String, u64)> {
        if !self.buf.is_empty() || self.total == 0 {
            self.send()?;
        }
        Ok((hex::encode(self.hash.finalize()), self.total))
    }
}

impl Write for PartSink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.hash.update(data);
        self.total += data.len() as u64;
        let mut rest = data;
        while !rest.is_empty() {
            let take = (self.part_size - self.buf.len()).min(rest.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buf.len() == self.part_size {
                self.send()?;
            }
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `store --from-etcd`: streams a snapshot of `src` into `cfg.key`.
pub async fn store_from_etcd(
    cfg: &StoreConfig,
    src: &EtcdSource,
    compress: Compress,
    shutdown: &Shutdown,
    deadline: &Deadline,
) -> Result<StoreReport> {
    let started = Instant::now();
    let what = cfg.remote.describe(&cfg.key);
    let mut stream = deadline
        .run(shutdown, "connecting to etcd", etcd::open(src))
        .await?;
    let (client, path) = cfg.remote.connect(&cfg.key, deadline, shutdown).await?;
    if let crate::remote::Remote::Local { root } = &cfg.remote {
        // A local directory: the same locked temporary file and rename as a
        // file's store, never object_store's staging file that no run sweeps.
        let (info, (sha256, bytes)) = stream_to_file(
            &mut stream,
            &root.join(&cfg.key),
            "upload",
            (compress, cfg.progress),
            shutdown,
            deadline,
        )
        .await?;
        crate::store::confirm(&client, &path, &what, bytes, None, deadline).await?;
        let seconds = started.elapsed().as_secs_f64();
        tracing::info!(key = %cfg.key, location = %what, endpoint = %stream.endpoint, bytes,
            snapshot_bytes = info.snapshot_bytes, sha256 = %sha256,
            seconds = crate::progress::round_to(seconds, 3), "stored from etcd");
        return Ok(StoreReport {
            location: what,
            bytes,
            sha256,
            sha256_recorded: false,
            parts: 1,
            snapshot: info,
            seconds,
        });
    }
    // Not cut by a signal: the server may create the upload before we learn its
    // id, and only the id lets us abort it. The deadline bounds it.
    let mut upload = deadline
        .run(&Shutdown::never(), "starting the multipart upload", async {
            client
                .put_multipart_opts(
                    &path,
                    PutMultipartOptions {
                        attributes: crate::store::backup_attributes(
                            None,
                            cfg.cluster.as_deref(),
                            cfg.remote.keeps_metadata(),
                        ),
                        ..PutMultipartOptions::default()
                    },
                )
                .await
                .map_err(|e| Error::remote(format!("upload to {what}"), e))
        })
        .await?;
    if let Some(reason) = shutdown.requested() {
        let left = upload::abort(upload, JoinSet::new(), &what).await;
        return Err(Error::Cancelled(reason).leaving(left));
    }
    let (raw_tx, raw_rx) = mpsc::channel(16);
    let (parts_tx, mut parts_rx) = mpsc::channel(1);
    let sink = PartSink {
        part_size: cfg.transfer.part_size,
        buf: Vec::with_capacity(cfg.transfer.part_size),
        parts: parts_tx,
        hash: Sha256::new(),
        total: 0,
    };
    let pipeline = spawn_pipeline(raw_rx, sink, compress, |sink: PartSink| {
        sink.finish()
            .map_err(|e| Error::Other(format!("finishing the upload stream: {e}")))
    });
    let mut in_flight = JoinSet::new();
    // The stream's own progress lines cover the upload.
    let mut quiet = Progress::new("uploading", None, Duration::MAX);
    let moved = deadline
        .run(shutdown, "streaming the snapshot", async {
            tokio::try_join!(
                pump(&mut stream, raw_tx, cfg.progress),
                upload::send_parts(
                    upload.as_mut(),
                    &mut parts_rx,
                    &mut in_flight,
                    cfg.transfer.concurrency,
                    &what,
                    &mut quiet,
                ),
            )
        })
        .await;
    drop(parts_rx);
    let finished = pipeline
        .await
        .map_err(|e| Error::Other(format!("snapshot task failed: {e}")));
    let checked: Result<_> = (|| {
        let (_, parts) = moved?;
        let (info, (sha256, bytes)) = finished??;
        Ok((parts, info, sha256, bytes))
    })();
    let (parts, info, sha256, bytes) = match checked {
        Ok(v) => v,
        Err(e) => {
            let left = upload::abort(upload, in_flight, &what).await;
            return Err(e.leaving(left));
        }
    };
    // No recorded digest to compare with: a failed completion is aborted.
    upload::complete(upload, in_flight, &what, deadline, async || false).await?;
    // No recorded digest (it was not known when the upload started): the size.
    crate::store::confirm(&client, &path, &what, bytes, None, deadline).await?;
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        key = %cfg.key,
        location = %what,
        endpoint = %stream.endpoint,
        bytes,
        snapshot_bytes = info.snapshot_bytes,
        sha256 = %sha256,
        parts,
        seconds = crate::progress::round_to(seconds, 3),
        mib_per_s = crate::progress::round_to(mib_per_s(info.snapshot_bytes, seconds), 1),
        "stored from etcd"
    );
    Ok(StoreReport {
        location: what,
        bytes,
        sha256,
        sha256_recorded: false,
        parts,
        snapshot: info,
        seconds,
    })
}
