//! The pieces of `store`'s upload of a file: the pre-pass that hashes it (and
//! verifies a raw snapshot), the verification of a gzip snapshot beside the
//! upload, and the multipart path: parts read on a blocking thread, uploaded in
//! parallel with back-pressure, aborted on every failure.
//!
//! Multipart memory is bounded: at most `concurrency` parts in flight, one queued
//! and one being read, so about `part_size * (concurrency + 2)` bytes whatever the
//! file size. The verifier reads the file on its own, with a 1 MiB buffer.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use object_store::{MultipartUpload, PutPayload};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::cancel::{Deadline, Shutdown};
use crate::digest::Sha256;
use crate::error::{Error, Result};
use crate::snapshot::{SnapshotInfo, Verifier};

/// Uploads every part from `parts`, at most `concurrency` at once. Returns the
/// number of parts. On error the caller must abort (see [`abort`]).
pub(crate) async fn send_parts(
    upload: &mut dyn MultipartUpload,
    parts: &mut mpsc::Receiver<Result<Bytes>>,
    in_flight: &mut JoinSet<object_store::Result<()>>,
    concurrency: usize,
    what: &str,
    progress: &mut crate::progress::Progress,
) -> Result<usize> {
    let mut count = 0;
    while let Some(part) = parts.recv().await {
        let bytes = part?;
        while in_flight.len() >= concurrency {
            join_one(in_flight, what).await?;
        }
        progress.add(bytes.len() as u64);
        in_flight.spawn(upload.put_part(PutPayload::from(bytes)));
        count += 1;
    }
    while !in_flight.is_empty() {
        join_one(in_flight, what).await?;
    }
    Ok(count)
}

async fn join_one(in_flight: &mut JoinSet<object_store::Result<()>>, what: &str) -> Result<()> {
    match in_flight.join_next().await {
        Some(Ok(Ok(()))) | None => Ok(()),
        Some(Ok(Err(e))) => Err(Error::remote(format!("uploading a part of {what}"), e)),
        Some(Err(join)) => Err(Error::Other(format!(
            "a part upload of {what} failed: {join}"
        ))),
    }
}

/// Cancels the parts still in flight and aborts the upload so no parts stay on
/// the server. Bounded in time; a failed abort is logged, and the original error
/// is what the caller reports.
pub(crate) async fn abort(
    mut upload: Box<dyn MultipartUpload>,
    mut in_flight: JoinSet<object_store::Result<()>>,
    what: &str,
) -> Option<String> {
    in_flight.shutdown().await;
    let limit = std::time::Duration::from_secs(15);
    let failure = match tokio::time::timeout(limit, upload.abort()).await {
        Ok(Ok(())) => {
            tracing::info!(object = what, "multipart upload aborted; no parts left");
            return None;
        }
        Ok(Err(e)) => Error::remote("abort", e).chain(),
        Err(_) => "timed out after 15s".to_string(),
    };
    let left = format!(
        "the multipart upload of {what} could not be aborted ({failure}): its parts remain \
         until a lifecycle rule or an abort removes them"
    );
    tracing::warn!(object = what, "{left}");
    Some(left)
}

/// Completes the upload. A signal does not interrupt it (once sent, the object
/// exists whole or not at all, and a finished backup deserves exit 0); the deadline
/// does. When completing fails, `stored` is asked whether the object at the key is
/// ours anyway (the request succeeded and only its answer was lost: a timeout, a
/// reset, or a retried Complete told NoSuchUpload); if not, the upload is aborted
/// and the error returned.
pub(crate) async fn complete(
    mut upload: Box<dyn MultipartUpload>,
    in_flight: JoinSet<object_store::Result<()>>,
    what: &str,
    deadline: &Deadline,
    stored: impl AsyncFnOnce() -> bool,
) -> Result<()> {
    let completed = deadline
        .run(
            &Shutdown::never(),
            "completing the multipart upload",
            async {
                upload
                    .complete()
                    .await
                    .map_err(|e| Error::remote(format!("completing the upload to {what}"), e))
            },
        )
        .await;
    let Err(e) = completed else {
        return Ok(());
    };
    if stored().await {
        tracing::warn!(
            object = what,
            error = %e.chain(),
            "completing the upload reported an error, but the object at the key has our size and SHA-256: stored"
        );
        return Ok(());
    }
    let left = abort(upload, in_flight, what).await;
    Err(e.leaving(left))
}

/// The first read of a file about to be stored: its SHA-256 (S3 takes it as
/// metadata before the data) and, for a raw snapshot, the whole verification,
/// whose trailer hash shares the one SHA-256 pass. A gzip snapshot is only hashed
/// here; decompressing it is left to [`spawn_verification`], beside the upload.
/// `gzip` is what the caller sniffed. Stops on a stop request or the deadline.
async fn prepass(
    path: &Path,
    gzip: bool,
    shutdown: &Shutdown,
    deadline: &Deadline,
) -> Result<(String, Option<SnapshotInfo>)> {
    let path = path.to_path_buf();
    let stop = shutdown.clone();
    let task =
        tokio::task::spawn_blocking(move || -> Result<Option<(String, Option<SnapshotInfo>)>> {
            let mut file =
                File::open(&path).map_err(|e| Error::io(&path, "cannot open snapshot file", e))?;
            let mut buf = vec![0u8; 1 << 20];
            let mut hash = Sha256::new();
            let mut verifier = (!gzip).then(|| Verifier::new(std::io::sink(), true));
            loop {
                if stop.requested().is_some() {
                    return Ok(None);
                }
                let n = file
                    .read(&mut buf)
                    .map_err(|e| Error::io(&path, "cannot read snapshot file", e))?;
                if n == 0 {
                    break;
                }
                match &mut verifier {
                    Some(v) => v
                        .update(&buf[..n])
                        .map_err(|e| e.about(format_args!("snapshot file {}", path.display())))?,
                    None => hash.update(&buf[..n]),
                }
            }
            Ok(Some(match verifier {
                Some(v) => {
                    let info = v
                        .finish()
                        .map_err(|e| e.about(format_args!("snapshot file {}", path.display())))?
                        .0;
                    let sum = info
                        .input_sha256
                        .clone()
                        .expect("the verifier hashes its input");
                    (sum, Some(info))
                }
                None => (hex::encode(hash.finalize()), None),
            }))
        });
    let joined = deadline
        .run(shutdown, "hashing the snapshot file", async {
            task.await
                .map_err(|e| Error::Other(format!("hashing task failed: {e}")))
        })
        .await?;
    match joined? {
        Some(done) => Ok(done),
        None => Err(Error::Cancelled(
            shutdown.requested().expect("stopped only on request"),
        )),
    }
}

/// The SHA-256 of the file to record, and its verification under way: a gzip
/// snapshot's starts at once on its own read of the file, beside the hash pass
/// and then the upload; a raw one's is the hash pass itself.
pub(crate) async fn hash_and_verify(
    path: &Path,
    shutdown: &Shutdown,
    deadline: &Deadline,
) -> Result<(String, tokio::task::JoinHandle<Result<SnapshotInfo>>)> {
    let mut head = [0u8; 2];
    let n = File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| Error::io(path, "cannot read snapshot file", e))?;
    let gzip = n == 2 && head == crate::snapshot::GZIP_MAGIC;
    let early = gzip.then(|| spawn_verification(path.to_path_buf(), None));
    let (sha256, verified) = prepass(path, gzip, shutdown, deadline).await?;
    let verification = match early {
        Some(running) => running,
        None => spawn_verification(path.to_path_buf(), verified),
    };
    Ok((sha256, verification))
}

/// Verification of the snapshot at `path`: `done` when the pre-pass already did
/// it, else on a blocking thread with its own read of the file, so the upload
/// never waits for decompression except at the very end.
pub(crate) fn spawn_verification(
    path: PathBuf,
    done: Option<SnapshotInfo>,
) -> tokio::task::JoinHandle<Result<SnapshotInfo>> {
    match done {
        Some(info) => tokio::spawn(async move { Ok(info) }),
        None => tokio::task::spawn_blocking(move || {
            let mut file =
                File::open(&path).map_err(|e| Error::io(&path, "cannot open snapshot file", e))?;
            let mut v = Verifier::new(std::io::sink(), false);
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = file
                    .read(&mut buf)
                    .map_err(|e| Error::io(&path, "cannot read snapshot file", e))?;
                if n == 0 {
                    return Ok(v.finish()?.0);
                }
                v.update(&buf[..n])?;
            }
        }),
    }
}
