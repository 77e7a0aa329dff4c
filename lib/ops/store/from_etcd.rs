//! `store --from-etcd`: a live etcd's snapshot with no temporary file and no second
//! pass: the stream is checked (etcd's SHA-256 trailer), compressed and uploaded as
//! a multipart upload while it arrives (to a local directory: written to a locked
//! temporary file and renamed).
//!
//! Stages overlap: the async side reads the etcd stream and uploads parts, a
//! blocking thread verifies and compresses. Memory is bounded by the part size and
//! concurrency (plus a few 32 KiB stream chunks), whatever the snapshot size.
//! S3 takes metadata when an upload starts, before the streamed digest is known,
//! so objects stored this way carry no recorded SHA-256; the etcd trailer inside
//! them (and gzip's CRC) is what `restore` verifies.

use std::io::Write;
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::PutMultipartOptions;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::StoreReport;
use crate::base::buffers::Buffers;
use crate::base::cancel::{Deadline, Shutdown};
use crate::base::digest::Sha256;
use crate::base::error::{Error, Result};
use crate::base::progress::Progress;
use crate::base::time::mib_per_s;
use crate::config::StoreConfig;
use crate::formats::compress::Compress;
use crate::formats::pipeline::{Stages, spawn_pipeline};
use crate::transport::etcd::to_file::{pump, stream_to_file};
use crate::transport::etcd::{self, EtcdSource};
use crate::transport::multipart;
use crate::transport::object::{confirm, encryption_metadata, hashkv_metadata};

/// Cuts the compressed stream into parts for the uploader and hashes it. The
/// parts' buffers are reused ([`Buffers`]): at most `concurrency + 2` exist, and
/// none is freed and allocated again per part (freed part-sized blocks stay in
/// glibc's heap once its mmap threshold has grown past them: 10-15 MiB more RSS,
/// benches/RESULTS.md, issue 20).
struct PartSink {
    part_size: usize,
    buffers: Buffers,
    buf: Vec<u8>,
    parts: mpsc::Sender<Result<Bytes>>,
    hash: Sha256,
    total: u64,
}

impl PartSink {
    /// An empty buffer of `part_size` capacity, reused when one came back.
    fn empty(buffers: &Buffers, part_size: usize) -> Vec<u8> {
        let mut buf = buffers.take(part_size);
        buf.clear();
        buf
    }

    fn send(&mut self) -> std::io::Result<()> {
        let part = std::mem::take(&mut self.buf);
        self.parts
            .blocking_send(Ok(self.buffers.hand_out(part)))
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
            if self.buf.capacity() == 0 {
                // Taken only when bytes come: a part waiting to be sent does
                // not hold a second buffer meanwhile.
                self.buf = Self::empty(&self.buffers, self.part_size);
            }
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
    let run_started = std::time::SystemTime::now();
    let what = cfg.remote.describe(&cfg.key);
    // Verified, compressed, then encrypted when recipients are given.
    let stages = |compress| Stages {
        compress,
        encrypt: cfg.encrypt.clone(),
    };
    let mut stream = deadline
        .run(shutdown, "connecting to etcd", etcd::open(src))
        .await?;
    let (client, path, target) = cfg.remote.connect_put(&cfg.key, deadline, shutdown).await?;
    if let Some(target) = &target {
        // What killed runs of this key left (see `abort_stale`).
        super::s3::abort_stale(target, run_started, shutdown, deadline).await?;
    }
    if let crate::transport::remote::Remote::Local { root } = &cfg.remote {
        // A local directory: the same locked temporary file and rename as a
        // file's store, never object_store's staging file that no run sweeps.
        let (info, (sha256, bytes)) = stream_to_file(
            &mut stream,
            &root.join(&cfg.key),
            "upload",
            (stages(compress), cfg.progress),
            shutdown,
            deadline,
        )
        .await?;
        confirm(&client, &path, &what, bytes, None, deadline).await?;
        let seconds = started.elapsed().as_secs_f64();
        tracing::info!(key = %cfg.key, location = %what, endpoint = %stream.endpoint, bytes,
            snapshot_bytes = info.snapshot_bytes, sha256 = %sha256,
            seconds = crate::base::progress::round_to(seconds, 3), "stored from etcd");
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
    let opts = PutMultipartOptions {
        attributes: cfg.remote.backup_attributes(
            None,
            cfg.cluster.as_deref(),
            &[
                encryption_metadata(cfg.encrypt.as_ref()),
                hashkv_metadata(stream.member_hash.as_ref()),
            ]
            .concat(),
        ),
        ..PutMultipartOptions::default()
    };
    let mut upload = multipart::start(
        (&client, &path),
        target.as_ref(),
        opts,
        &what,
        shutdown,
        deadline,
    )
    .await?;
    let (raw_tx, raw_rx) = mpsc::channel(16);
    let (parts_tx, mut parts_rx) = mpsc::channel(1);
    let sink = PartSink {
        part_size: cfg.transfer.part_size,
        // In flight, queued, and the one being filled.
        buffers: Buffers::new(cfg.transfer.concurrency + 2),
        buf: Vec::new(),
        parts: parts_tx,
        hash: Sha256::new(),
        total: 0,
    };
    let pipeline = spawn_pipeline(raw_rx, sink, stages(compress), |sink: PartSink| {
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
                multipart::send_parts(
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
            let left = multipart::abort(upload, in_flight, &what).await;
            return Err(e.leaving(left));
        }
    };
    // No recorded digest to compare with: a failed completion is aborted.
    multipart::complete(upload, in_flight, &what, deadline, async || false).await?;
    // No recorded digest (it was not known when the upload started): the size.
    confirm(&client, &path, &what, bytes, None, deadline).await?;
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        key = %cfg.key,
        location = %what,
        endpoint = %stream.endpoint,
        bytes,
        snapshot_bytes = info.snapshot_bytes,
        sha256 = %sha256,
        parts,
        seconds = crate::base::progress::round_to(seconds, 3),
        mib_per_s = crate::base::progress::round_to(mib_per_s(info.snapshot_bytes, seconds), 1),
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
