//! A live etcd's snapshot stream into a local file: verified and compressed on the
//! way (the stage pipeline), written to a locked temporary file and renamed into
//! place once whole.

use std::io::BufWriter;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::base::cancel::{Deadline, Shutdown};
use crate::base::digest::Sha256;
use crate::base::error::{Error, Result};
use crate::base::fs::TempFile;
use crate::base::progress::Progress;
use crate::formats::pipeline::{Hashing, Stages, spawn_pipeline};
use crate::formats::snapshot::{NamedSink, SnapshotInfo};
use crate::transport::etcd;

/// Reads the etcd stream into `tx`, with progress lines every `every`.
pub async fn pump(
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

/// Streams `stream`, verified and through `stages` (compression, encryption), into a locked temporary file
/// `.<file>.snapjob-<id>.<suffix>` and renames it into place once whole; what a
/// killed run left there first is swept. Returns what was verified and the
/// SHA-256 and size of the file written.
pub async fn stream_to_file(
    stream: &mut etcd::SnapshotStream,
    file: &std::path::Path,
    suffix: &str,
    (stages, progress): (Stages, Duration),
    shutdown: &Shutdown,
    deadline: &Deadline,
) -> Result<(SnapshotInfo, (String, u64))> {
    // What a killed run left beside the file (a live one holds its lock).
    crate::base::fs::sweep(file, &[suffix]);
    let (temp, out) = TempFile::beside(file, suffix)?;
    let (tx, rx) = mpsc::channel(16);
    let path = file.to_path_buf();
    // Write errors name the file (74), a full disk included.
    let sink = Hashing {
        inner: NamedSink::new(BufWriter::with_capacity(1 << 20, out), temp.path.clone()),
        hash: Sha256::new(),
        total: 0,
    };
    let pipeline = spawn_pipeline(rx, sink, stages, move |w: Hashing<NamedSink<_>>| {
        crate::base::fs::flush_sync(w.inner.into_inner(), &path)?;
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
