//! The reads of a file about to be stored: the pre-pass that hashes it (and
//! verifies a raw snapshot), and the verification of a gzip snapshot beside the
//! upload. The verifier reads the file on its own, with a 1 MiB buffer.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::base::cancel::{Deadline, Shutdown};
use crate::base::digest::Sha256;
use crate::base::error::{Error, Result};
use crate::formats::snapshot::{SnapshotInfo, Verifier};

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
    let gzip = n == 2 && head == crate::formats::snapshot::GZIP_MAGIC;
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
