//! `copy`: backups from one store to another (a second site), streamed and
//! verified on the way.
//!
//! For each object: HEAD the target first; an object there with the same size
//! and SHA-256 is skipped. Otherwise the source is read as a stream, cut into
//! parts sent to a multipart upload on the target (`CONCURRENCY` in flight),
//! while a blocking thread hashes every byte and runs the snapshot
//! [`Verifier`] (gzip intact, bbolt magic, etcd's SHA-256 trailer). The upload
//! is completed only when the bytes hash to the SHA-256 the source recorded (when
//! it records one) and the snapshot verified; on every failure, deadline or
//! signal it is aborted, so nothing appears at the target key and no parts stay.
//! The metadata (`sha256`, `snapjob-cluster`) is carried over.
//!
//! An age-encrypted object (bytes starting `age-encryption.org/v1`) is copied as
//! bytes: only its recorded SHA-256 is checked, the snapshot inside cannot be.
//!
//! In a kops etcd-manager store each backup's data is copied first and its meta
//! file last, so the target lists the backup only once it is whole.
//!
//! Memory is flat, whatever the size: at most `CONCURRENCY` parts in flight, one
//! queued and one held by the sender, one being cut from the stream, and the
//! verifier's (one queued, one being read; usually parts also in flight): about
//! `PART_SIZE x (CONCURRENCY + 5)`.

use crate::base::cancel::{Deadline, Shutdown};
use crate::base::error::{Error, ErrorClass, Result};
use crate::config::{CopyConfig, CopyWhat};
use crate::formats::etcd_manager;
use crate::transport::object::cluster_objects;

mod run;

use run::Run;

/// The first bytes of an age-encrypted file.
const AGE_MAGIC: &[u8] = b"age-encryption.org/v1";

/// What `copy` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// The source, `s3://bucket/prefix/` or `file:///dir/`.
    pub from: String,
    /// The target.
    pub to: String,
    /// Objects (or kops backups) copied.
    pub copied: usize,
    /// Already at the target with the same SHA-256.
    pub skipped: usize,
    /// Bytes copied.
    pub bytes: u64,
}

/// What happened to one object.
enum Done {
    Copied(u64),
    Skipped,
}

/// What to do with a different object already at the target key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Existing {
    /// Leave it and report it (a backup of the target's own).
    Keep,
    /// Replace it (a kops backup's data without its meta file: not listed, so
    /// not a backup yet).
    Replace,
}

/// Copies what `cfg.what` names; see the module documentation.
#[tracing::instrument(name = "copy", skip_all)]
pub async fn copy(cfg: &CopyConfig, shutdown: &Shutdown) -> Result<CopyReport> {
    let deadline = Deadline::after(cfg.deadline);
    let (src, _) = cfg.from.connect("", &deadline, shutdown).await?;
    // On S3 also the target of uploads on our own requests (SSE-C's key on each).
    let (dst, _, dst_s3) = cfg.to.connect_put("", &deadline, shutdown).await?;
    let run = Run {
        cfg,
        src,
        dst,
        dst_s3,
        shutdown,
        deadline: &deadline,
    };
    let mut report = CopyReport {
        from: cfg.from.describe(""),
        to: cfg.to.describe(""),
        ..CopyReport::default()
    };
    let mut failed: Vec<Error> = Vec::new();
    let mut tally = |done: Result<Done>, report: &mut CopyReport| -> Result<()> {
        match done {
            Ok(Done::Copied(n)) => {
                report.copied += 1;
                report.bytes += n;
                Ok(())
            }
            Ok(Done::Skipped) => {
                report.skipped += 1;
                Ok(())
            }
            // A corrupt source object (or a different one at the target) is
            // reported; the others are still copied.
            Err(e) if e.class() == ErrorClass::Data => {
                tracing::error!(error = %e.chain(), "not copied");
                failed.push(e);
                Ok(())
            }
            Err(e) => Err(e),
        }
    };
    match &cfg.what {
        CopyWhat::Key(key) => {
            let done = run.object(key, Existing::Keep, true).await;
            tally(done, &mut report)?;
        }
        CopyWhat::Cluster { prefix, cluster } => {
            let (found, listed) = deadline
                .run(shutdown, "listing backups", async {
                    cluster_objects(&run.src, &cfg.from, prefix, cluster).await
                })
                .await?;
            tracing::info!(
                cluster = %cluster,
                prefix = %prefix,
                listed,
                backups = found.len(),
                "source listed"
            );
            for o in found {
                let done = run.object(o.location.as_ref(), Existing::Keep, false).await;
                tally(done, &mut report)?;
            }
        }
        CopyWhat::EtcdManager(name) => {
            let names = match name {
                Some(n) => vec![n.clone()],
                None => {
                    deadline
                        .run(shutdown, "listing backups", async {
                            etcd_manager::list_backups(run.src.as_ref()).await
                        })
                        .await?
                }
            };
            tracing::info!(backups = names.len(), "source listed");
            for n in names {
                let done = run.kops_backup(&n).await;
                tally(done, &mut report)?;
            }
        }
    }
    tracing::info!(
        from = %report.from,
        to = %report.to,
        copied = report.copied,
        skipped = report.skipped,
        failed = failed.len(),
        bytes = report.bytes,
        "copy done"
    );
    match failed.len() {
        0 => Ok(report),
        1 => Err(failed.remove(0)),
        n => Err(Error::Data(format!(
            "{n} backups were not copied (copied {}, skipped {}); the first: {}",
            report.copied,
            report.skipped,
            failed[0].chain()
        ))),
    }
}
