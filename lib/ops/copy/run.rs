//! One copy run: each object (or kops backup) streamed, verified and completed,
//! and the checks of the bytes on the way.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, ObjectStore, PutMultipartOptions};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::base::cancel::{Deadline, Shutdown};
use crate::base::digest::Sha256;
use crate::base::error::{Error, ErrorClass, Result};
use crate::base::progress::Progress;
use crate::config::CopyConfig;
use crate::formats::etcd_manager;
use crate::formats::snapshot::{SnapshotInfo, Verifier};
use crate::transport::multipart;
use crate::transport::object::{
    CLUSTER_METADATA, confirm, metadata_value, recorded_sha256, stored_matches,
};
use crate::transport::put::Target;
use crate::transport::remote::head;

use super::{AGE_MAGIC, Done, Existing};

pub(super) struct Run<'a> {
    pub(super) cfg: &'a CopyConfig,
    pub(super) src: Arc<dyn ObjectStore>,
    pub(super) dst: Arc<dyn ObjectStore>,
    /// An S3 target's bucket, for uploads on our own requests (put/parts.rs).
    pub(super) dst_s3: Option<Target>,
    pub(super) shutdown: &'a Shutdown,
    pub(super) deadline: &'a Deadline,
}

impl Run<'_> {
    /// One kops backup: its data, then its meta file (create-only).
    pub(super) async fn kops_backup(&self, name: &str) -> Result<Done> {
        let info = self
            .deadline
            .run(self.shutdown, "reading the backup's meta file", async {
                etcd_manager::backup_info(self.src.as_ref(), name).await
            })
            .await?;
        let listed = self
            .deadline
            .run(self.shutdown, "looking up the target", async {
                match etcd_manager::backup_info(self.dst.as_ref(), name).await {
                    Ok(_) => Ok(true),
                    Err(e) if e.class() == ErrorClass::NotFound => Ok(false),
                    Err(e) => Err(e),
                }
            })
            .await?;
        let data = format!("{name}/{}", etcd_manager::DATA_FILE);
        let existing = if listed {
            Existing::Keep
        } else {
            Existing::Replace
        };
        let done = match self.object(&data, existing, true).await {
            // A meta file without its data: a broken backup, reported like a
            // corrupt one (the others are still copied).
            Err(e) if e.class() == ErrorClass::NotFound => {
                return Err(Error::Data(format!(
                    "backup {name} has a meta file but no {} at the source: not copied ({})",
                    etcd_manager::DATA_FILE,
                    e.chain()
                )));
            }
            other => other?,
        };
        if listed {
            return Ok(done);
        }
        self.deadline
            .run(self.shutdown, "writing the meta file", async {
                etcd_manager::write_backup_info(self.dst.as_ref(), name, &info).await
            })
            .await?;
        tracing::info!(backup = %name, "etcd-manager backup listed at the target");
        Ok(match done {
            Done::Skipped => Done::Copied(0),
            copied => copied,
        })
    }

    /// One object, `key` under both URLs. `must_exist`: a missing source object
    /// is an error (12); else it went away since the listing and is skipped.
    pub(super) async fn object(
        &self,
        key: &str,
        existing: Existing,
        must_exist: bool,
    ) -> Result<Done> {
        let from = self.cfg.from.describe(key);
        let to = self.cfg.to.describe(key);
        let path = ObjectPath::parse(key)
            .map_err(|e| Error::Config(format!("object key {key:?}: {e}")))?;
        let (source, target) = self
            .deadline
            .run(self.shutdown, "looking up the object", async {
                let source = match head(self.src.as_ref(), &path).await {
                    Ok(h) => Some(h),
                    Err(object_store::Error::NotFound { .. }) => None,
                    Err(e) => return Err(Error::remote(format!("looking up {from}"), e)),
                };
                let target = match head(self.dst.as_ref(), &path).await {
                    Ok(h) => Some(h),
                    Err(object_store::Error::NotFound { .. }) => None,
                    Err(e) => return Err(Error::remote(format!("looking up {to}"), e)),
                };
                Ok((source, target))
            })
            .await?;
        let Some(source) = source else {
            if must_exist {
                return Err(Error::NotFound(format!("no object {from} at the source")));
            }
            tracing::warn!(source = %from, "gone from the source since it was listed; skipped");
            return Ok(Done::Skipped);
        };
        if let Some(target) = target {
            let (want, have) = self
                .deadline
                .run(self.shutdown, "comparing with the target", async {
                    let want = match recorded_sha256(&source.attributes) {
                        Some(s) => s,
                        None => hash_object(&self.src, &path, &from).await?,
                    };
                    let have = match recorded_sha256(&target.attributes) {
                        Some(s) => s,
                        None => hash_object(&self.dst, &path, &to).await?,
                    };
                    Ok((want, have))
                })
                .await?;
            if want == have && source.meta.size == target.meta.size {
                tracing::info!(target = %to, sha256 = %want, "already at the target; skipped");
                return Ok(Done::Skipped);
            }
            if existing == Existing::Keep {
                return Err(Error::Data(format!(
                    "{to} holds a different object (sha256 {have}, {} bytes) than {from} \
                     (sha256 {want}, {} bytes); it was left as it is",
                    target.meta.size, source.meta.size
                )));
            }
        }
        let bytes = self.stream(&path, &from, &to).await?;
        Ok(Done::Copied(bytes))
    }

    /// Streams the source object into a multipart upload on the target,
    /// completed only when verified; returns the bytes copied.
    pub(super) async fn stream(&self, path: &ObjectPath, from: &str, to: &str) -> Result<u64> {
        let got = self
            .deadline
            .run(self.shutdown, "reading the source", async {
                self.src
                    .get_opts(path, GetOptions::default())
                    .await
                    .map_err(|e| Error::remote(format!("reading {from}"), e))
            })
            .await?;
        let size = got.meta.size;
        let recorded = recorded_sha256(&got.attributes);
        let cluster = metadata_value(&got.attributes, CLUSTER_METADATA);
        let keep_meta = self.cfg.to.keeps_metadata();
        if recorded.is_none() {
            tracing::warn!(
                source = %from,
                "the source records no sha256: the copy is checked by its content only (the \
                 snapshot trailer) and carries no sha256 either"
            );
        }
        let opts = PutMultipartOptions {
            attributes: self
                .cfg
                .to
                .backup_attributes(recorded.as_deref(), cluster.as_deref(), &[]),
            ..PutMultipartOptions::default()
        };
        let target = match &self.dst_s3 {
            Some(bucket) => Some(bucket.at(path.as_ref())?),
            None => None,
        };
        let mut upload = multipart::start(
            (&self.dst, path),
            target.as_ref(),
            opts,
            to,
            self.shutdown,
            self.deadline,
        )
        .await?;
        let mut in_flight = JoinSet::new();
        let part_size = self.cfg.transfer.part_size;
        let (verify_tx, verify_rx) = mpsc::channel::<Bytes>(1);
        let verification = spawn_verification(verify_rx);
        let (parts_tx, mut parts) = mpsc::channel::<Result<Bytes>>(1);
        let reader = {
            let from = from.to_string();
            async move {
                let mut stream = got.into_stream();
                // One allocation of exactly a part per part: the buffers the
                // allocator sees are all alike, so freed ones are reused.
                let mut buf = BytesMut::with_capacity(part_size);
                let forward = async |part: Bytes| -> Result<()> {
                    // The verifier first: when it stops (corrupt bytes), reading stops.
                    verify_tx
                        .send(part.clone())
                        .await
                        .map_err(|_| Error::Data("verification stopped".into()))?;
                    parts_tx
                        .send(Ok(part))
                        .await
                        .map_err(|_| Error::Other("the upload stopped".into()))
                };
                while let Some(chunk) = stream.next().await {
                    let mut chunk =
                        chunk.map_err(|e| Error::remote(format!("reading {from}"), e))?;
                    while !chunk.is_empty() {
                        let take = chunk.len().min(part_size - buf.len());
                        buf.extend_from_slice(&chunk.split_to(take));
                        if buf.len() == part_size {
                            let full =
                                std::mem::replace(&mut buf, BytesMut::with_capacity(part_size));
                            forward(full.freeze()).await?;
                        }
                    }
                }
                if !buf.is_empty() {
                    forward(buf.freeze()).await?;
                }
                Ok::<(), Error>(())
            }
        };
        let mut progress = Progress::new("copying", Some(size), self.cfg.progress);
        let sent = self
            .deadline
            .run(self.shutdown, "copying the object", async {
                tokio::try_join!(
                    reader,
                    multipart::send_parts(
                        upload.as_mut(),
                        &mut parts,
                        &mut in_flight,
                        self.cfg.transfer.concurrency,
                        to,
                        &mut progress,
                    )
                )
            })
            .await;
        drop(parts);
        // The verifier's verdict comes first: a corrupt object stops the reader
        // with a stand-in error.
        let checked = async {
            let verdict = verification
                .await
                .map_err(|e| Error::Other(format!("verification task failed: {e}")));
            let (sha256, total, info) = match (sent, verdict) {
                (Err(e), Ok(Err(v))) if e.class() == ErrorClass::Data => return Err(v),
                (Err(e), _) => return Err(e),
                (Ok(_), verdict) => verdict??,
            };
            if total != size {
                return Err(Error::Data(format!(
                    "{from}: read {total} bytes, the source announced {size}"
                )));
            }
            if let Some(want) = &recorded
                && *want != sha256
            {
                return Err(Error::Data(format!(
                    "{from} records sha256 {want} but its bytes hash to {sha256}: not copied"
                )));
            }
            let info = info.map_err(|e| e.about(from))?;
            Ok((sha256, info))
        }
        .await;
        let (sha256, info) = match checked {
            Ok(done) => done,
            Err(e) => {
                let left = multipart::abort(upload, in_flight, to).await;
                return Err(e.leaving(left));
            }
        };
        let recorded_at_target = keep_meta.then_some(recorded.as_deref()).flatten();
        multipart::complete(upload, in_flight, to, self.deadline, async || {
            recorded_at_target.is_some() && stored_matches(&self.dst, path, size, &sha256).await
        })
        .await?;
        confirm(&self.dst, path, to, size, recorded_at_target, self.deadline).await?;
        match info {
            Some(i) => tracing::info!(
                source = %from,
                target = %to,
                bytes = size,
                sha256 = %sha256,
                gzip = i.gzip,
                snapshot_bytes = i.snapshot_bytes,
                "copied"
            ),
            None if recorded.is_some() => tracing::info!(
                source = %from,
                target = %to,
                bytes = size,
                sha256 = %sha256,
                "copied an age-encrypted object: its SHA-256 checked, the snapshot inside not"
            ),
            None => tracing::warn!(
                source = %from,
                target = %to,
                bytes = size,
                sha256 = %sha256,
                "copied an age-encrypted object that records no sha256: nothing could be verified"
            ),
        }
        Ok(size)
    }
}

/// The bytes' SHA-256 and count, and the snapshot's verdict (`None`: an
/// age-encrypted object, only hashed).
type Verdict = (String, u64, Result<Option<SnapshotInfo>>);

/// Hashes and verifies the parts as they come, on a blocking thread: the
/// SHA-256 and size of every byte, and the snapshot's verdict (`None` for an
/// age-encrypted object, which is only hashed). Stops at the first corrupt byte.
fn spawn_verification(
    mut parts: mpsc::Receiver<Bytes>,
) -> tokio::task::JoinHandle<Result<Verdict>> {
    tokio::task::spawn_blocking(move || {
        let mut hash = Sha256::new();
        let mut total = 0u64;
        let mut verifier: Option<Verifier<std::io::Sink>> = None;
        let mut encrypted = false;
        while let Some(part) = parts.blocking_recv() {
            if total == 0 {
                encrypted = part.starts_with(AGE_MAGIC);
                if !encrypted {
                    verifier = Some(Verifier::new(std::io::sink(), false));
                }
            }
            hash.update(&part);
            total += part.len() as u64;
            if let Some(v) = &mut verifier {
                v.update(&part)?;
            }
        }
        let info = match verifier {
            Some(v) => v.finish().map(|(info, _)| Some(info)),
            None if encrypted => Ok(None),
            None => Err(Error::Data("the object is empty".into())),
        };
        Ok((hex::encode(hash.finalize()), total, info))
    })
}

/// The SHA-256 of an object's bytes, read as a stream (for an object that
/// records none).
async fn hash_object(
    client: &Arc<dyn ObjectStore>,
    path: &ObjectPath,
    what: &str,
) -> Result<String> {
    let got = client
        .get_opts(path, GetOptions::default())
        .await
        .map_err(|e| Error::remote(format!("reading {what}"), e))?;
    let mut stream = got.into_stream();
    let mut hash = Sha256::new();
    while let Some(chunk) = stream.next().await {
        hash.update(&chunk.map_err(|e| Error::remote(format!("reading {what}"), e))?);
    }
    Ok(hex::encode(hash.finalize()))
}
