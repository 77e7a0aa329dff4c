//! `restore` (download half): fetch a backup, verify it, write the raw snapshot.
//!
//! The object is fetched in ranges, several at once, each written at its offset in
//! a file beside the output as it arrives; a second thread reads the file back in
//! order as it fills, hashes the object's bytes, detects gzip by content,
//! decompresses, checks the etcd SHA-256 trailer and writes the raw snapshot
//! (trailer included, so `etcdutl snapshot restore` can check it too) into a
//! temporary file beside the output (crate::ops::restore::landing). Only when the size, the
//! recorded SHA-256 (objects written by `store`; s3cmd's carry none) and the
//! trailer all match is the file fsynced and renamed into place. On any failure
//! the temporary files are removed and an existing output file is left as it was;
//! those of runs that were killed are removed by the next run (crate::base::fs::sweep).

use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{Attribute, GetOptions, ObjectStore};
use tokio::sync::mpsc;

use crate::base::cancel::{Deadline, Shutdown};
use crate::base::error::{Error, ErrorClass, Result};
use crate::base::fs::TempFile;
use crate::config::{RestoreConfig, RestoreSource};
use crate::formats::datadir::{self, DataDirReport};
use crate::formats::encrypt::{Decryption, Identities, RECIPIENTS_METADATA};
mod before;
mod landing;
mod recorded;
mod room;
use crate::formats::etcddb::recorded::Recorded;
use crate::formats::snapshot::{NamedSink, SnapshotInfo, Verifier};
use crate::transport::object::{SHA256_METADATA, recorded_hashkv};

/// What `restore` did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// Where the snapshot came from (`s3://…`, `file://…` or a local path).
    pub source: String,
    /// The raw snapshot file written, if one was asked for.
    pub output: Option<PathBuf>,
    /// Whether a recorded SHA-256 was present and matched.
    pub sha256_checked: bool,
    /// Whether the member's HashKV was recorded with the object and matched.
    pub hash_kv_checked: bool,
    /// What verification of the download found (none for a local source).
    pub snapshot: Option<SnapshotInfo>,
    /// The member data dir built, if one was asked for.
    pub member: Option<DataDirReport>,
    /// Wall time.
    pub seconds: f64,
}

/// Runs a restore: download and verify the snapshot (to `cfg.output`, or to a
/// temporary file beside the data dir), then build the member data dir when asked.
/// The membership and target directories are checked before anything is fetched.
#[tracing::instrument(name = "restore", skip_all)]
pub async fn restore(cfg: &RestoreConfig, shutdown: &Shutdown) -> Result<RestoreReport> {
    let started = Instant::now();
    let deadline = Deadline::after(cfg.deadline);
    if let Some(spec) = &cfg.member {
        datadir::validate(spec)?;
    }
    let mut report = RestoreReport {
        source: String::new(),
        output: cfg.output.clone(),
        sha256_checked: false,
        hash_kv_checked: false,
        snapshot: None,
        member: None,
        seconds: 0.0,
    };
    sweep_stale(cfg);
    // A download for a data dir (no --output) is kept beside it, locked, until the
    // member is built.
    let mut scratch = None;
    let snapshot_path = match &cfg.source {
        RestoreSource::File(path) => {
            report.source = path.display().to_string();
            let decrypt = Decryption {
                identities: cfg.identities.clone(),
                var: "DECRYPT_IDENTITY_FILE".into(),
                recorded: None,
            };
            match (&cfg.output, &cfg.member) {
                (Some(out), _) => {
                    let (src, dest) = (path.clone(), out.clone());
                    let info = tokio::task::spawn_blocking(move || {
                        let (info, temp) = copy_verified(&src, (&dest, "tmp"), &decrypt)?;
                        temp.persist(&dest)?;
                        Ok::<_, Error>(info)
                    })
                    .await
                    .map_err(|e| Error::Other(format!("restore task failed: {e}")))??;
                    report.snapshot = Some(info);
                    out.clone()
                }
                // An encrypted file is decrypted (and verified) beside the data
                // dir first; a plain one is read where it is.
                (None, Some(spec)) if local_is_age(path).unwrap_or(false) => {
                    let (src, beside) = (path.clone(), spec.data_dir.clone());
                    let (info, temp) = tokio::task::spawn_blocking(move || {
                        copy_verified(&src, (&beside, "download"), &decrypt)
                    })
                    .await
                    .map_err(|e| Error::Other(format!("restore task failed: {e}")))??;
                    report.snapshot = Some(info);
                    let p = temp.path.clone();
                    scratch = Some(temp);
                    p
                }
                (None, _) => path.clone(),
            }
        }
        source @ (RestoreSource::Object { .. }
        | RestoreSource::EtcdManager { .. }
        | RestoreSource::EtcdManagerBefore { .. }
        | RestoreSource::Before { .. }) => {
            let (remote, key) = match source {
                RestoreSource::Object { remote, key } => (remote, key.clone()),
                RestoreSource::Before { remote, prefix, .. } => (remote, prefix.clone()),
                RestoreSource::EtcdManagerBefore { remote, .. } => (remote, String::new()),
                RestoreSource::EtcdManager { remote, name } => (
                    remote,
                    format!("{name}/{}", crate::formats::etcd_manager::DATA_FILE),
                ),
                RestoreSource::File(_) => unreachable!("matched above"),
            };
            let (client, mut path) = remote.connect(&key, &deadline, shutdown).await?;
            let key = match source {
                RestoreSource::Before {
                    prefix,
                    cluster,
                    before,
                    ..
                } => {
                    let args = (prefix.as_str(), cluster.as_str(), *before);
                    let chosen = before::pick(&client, remote, args, &deadline, shutdown).await?;
                    path = ObjectPath::parse(&chosen)
                        .map_err(|e| Error::Config(format!("object key: {e}")))?;
                    chosen
                }
                RestoreSource::EtcdManagerBefore { before, .. } => {
                    let name =
                        before::pick_kops(&client, remote, *before, &deadline, shutdown).await?;
                    let chosen = format!("{name}/{}", crate::formats::etcd_manager::DATA_FILE);
                    path = ObjectPath::parse(&chosen)
                        .map_err(|e| Error::Config(format!("object key: {e}")))?;
                    chosen
                }
                _ => key,
            };
            if let RestoreSource::EtcdManager { name, .. } = source {
                // etcd-manager lists a backup only once its meta file exists.
                crate::formats::etcd_manager::backup_info(client.as_ref(), name).await?;
            }
            let location = remote.describe(&key);
            report.source = location.clone();
            // Temporary files are named after the output, or the data dir.
            let beside = match (&cfg.output, &cfg.member) {
                (Some(out), _) => out.clone(),
                (None, Some(spec)) => spec.data_dir.clone(),
                (None, None) => unreachable!("config requires an output or a data dir"),
            };
            let (landed, checked, rec) = download(
                (&client, &path),
                &location,
                &beside,
                &cfg.identities,
                shutdown,
                &deadline,
                cfg.progress,
            )
            .await?;
            report.snapshot = Some(landed.info.clone());
            report.sha256_checked = checked;
            report.hash_kv_checked = recorded::compare(
                rec,
                &landed.snapshot.path,
                &landed.info,
                &location,
                (shutdown, &deadline),
            )
            .await?;
            match &cfg.output {
                Some(out) => {
                    landed.persist(out)?;
                    out.clone()
                }
                None => {
                    let snapshot = landed.into_snapshot();
                    let p = snapshot.path.clone();
                    scratch = Some(snapshot);
                    p
                }
            }
        }
    };
    if let Some(spec) = &cfg.member {
        room::for_member(spec, &snapshot_path, report.snapshot.as_ref())?;
        let (spec, path) = (spec.clone(), snapshot_path.clone());
        // Not interrupted: a build that finished in the background after we gave
        // up would rename a member into place that we reported as failed.
        let built = tokio::task::spawn_blocking(move || datadir::restore_data_dir(&path, &spec))
            .await
            .map_err(|e| Error::Other(format!("restore task failed: {e}")))??;
        tracing::info!(
            data_dir = %built.data_dir.display(),
            member_id = %built.member_id,
            cluster_id = %built.cluster_id,
            members = built.members,
            db_bytes = built.db_bytes,
            "member data dir restored"
        );
        report.member = Some(built);
    }
    drop(scratch);
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Removes what killed runs left beside the output and the data dir (and the WAL
/// dir): their temporary files and staging directories, never a live run's
/// (crate::base::fs::sweep).
fn sweep_stale(cfg: &RestoreConfig) {
    if let Some(out) = &cfg.output {
        crate::base::fs::sweep(out, &["download", "tmp"]);
    }
    if let Some(spec) = &cfg.member {
        crate::base::fs::sweep(&spec.data_dir, &["download", "tmp", datadir::STAGING]);
        if let Some(wal) = &spec.wal_dir {
            crate::base::fs::sweep(wal, &[datadir::STAGING]);
        }
    }
}

/// Objects are fetched in ranges of this size, [`RANGES_IN_FLIGHT`] at once, each
/// written at its offset as it arrives (crate::ops::restore::landing).
const RANGE: u64 = 8 << 20;
const RANGES_IN_FLIGHT: usize = 8;
/// Bytes a range hands to the landing thread at a time, and how many such runs may
/// wait for it: all the download holds, one run filling per range and the queued ones, each
/// pinning the HTTP client's read buffers (up to twice its bytes; RESULTS.md, issue 16).
const RUN: u64 = 256 << 10;
const RUNS_QUEUED: usize = 2;

/// Downloads `key` into temporary files beside `dest`, verified. Returns the
/// verified snapshot, not yet in place, and whether a recorded SHA-256 was checked.
async fn download(
    (client, path): (&Arc<dyn ObjectStore>, &ObjectPath),
    location: &str,
    dest: &Path,
    identities: &Identities,
    shutdown: &Shutdown,
    deadline: &Deadline,
    every: std::time::Duration,
) -> Result<(landing::Landed, bool, Option<Recorded>)> {
    let got = deadline
        .run(shutdown, "starting the download", async {
            client
                .get_opts(path, GetOptions::default())
                .await
                .map_err(|e| match e {
                    object_store::Error::NotFound { .. } => Error::NotFound(format!(
                        "no backup at {location} (object or bucket missing)"
                    )),
                    e => Error::remote(format!("download of {location}"), e),
                })
        })
        .await?;
    room::for_download(dest, got.meta.size)?;
    let etag = got.meta.e_tag.clone();
    let fetched = fetch(
        (client, path),
        location,
        (dest, identities),
        got,
        shutdown,
        deadline,
        every,
    )
    .await;
    match fetched {
        // A ranged GET found another ETag (the server refused If-Match, or
        // answered for another version).
        Err(Error::Remote {
            source: source @ object_store::Error::Precondition { .. },
            ..
        }) => Err(changed(location, source)),
        // A failure a change of the object explains (bytes from two versions, a
        // range past its new end) is told as that change, if the ETag moved.
        Err(e) if matches!(e.class(), ErrorClass::Data | ErrorClass::General) => {
            match etag_now(client, path, shutdown, deadline).await {
                Some(now) if etag.is_some() && Some(&now) != etag.as_ref() => {
                    let source = object_store::Error::Precondition {
                        path: path.to_string(),
                        source: format!(
                            "ETag {now}, not {}; {}",
                            etag.unwrap_or_default(),
                            e.chain()
                        )
                        .into(),
                    };
                    Err(changed(location, source))
                }
                _ => Err(e),
            }
        }
        other => other,
    }
}

/// The object changed during the download: trying again fetches the new one.
fn changed(location: &str, source: object_store::Error) -> Error {
    Error::Remote {
        what: location.to_string(),
        reason: "changed during the download (its ETag moved); try again".into(),
        class: ErrorClass::Temporary,
        source,
    }
}

/// The object's ETag now, if it can be had quickly.
async fn etag_now(
    client: &Arc<dyn ObjectStore>,
    path: &ObjectPath,
    shutdown: &Shutdown,
    deadline: &Deadline,
) -> Option<String> {
    let head = deadline.run(shutdown, "checking the object", async {
        crate::transport::remote::head(client.as_ref(), path)
            .await
            .map_err(|e| Error::remote("head", e))
    });
    head.await.ok().and_then(|got| got.meta.e_tag)
}

/// Lands and verifies the object whose first GET is `got`.
#[allow(clippy::too_many_arguments)]
async fn fetch(
    (client, path): (&Arc<dyn ObjectStore>, &ObjectPath),
    location: &str,
    (dest, identities): (&Path, &Identities),
    got: object_store::GetResult,
    shutdown: &Shutdown,
    deadline: &Deadline,
    every: std::time::Duration,
) -> Result<(landing::Landed, bool, Option<Recorded>)> {
    let expected_size = got.meta.size;
    let [rev, hash, compact] = recorded_hashkv(&got.attributes);
    let rec = Recorded::parse(rev.as_deref(), hash.as_deref(), compact.as_deref())
        .map_err(|e| e.about(location))?;
    let recorded = got
        .attributes
        .get(&Attribute::Metadata(SHA256_METADATA.into()))
        .map(|v| v.as_ref().to_ascii_lowercase());
    // An encrypted object is told by its content; the metadata, when there,
    // names its recipients for the messages.
    let decrypt = Decryption {
        identities: identities.clone(),
        var: "DECRYPT_IDENTITY_FILE".into(),
        recorded: got
            .attributes
            .get(&Attribute::Metadata(RECIPIENTS_METADATA.into()))
            .map(|v| v.as_ref().to_string())
            .filter(|v| v.chars().all(|c| c.is_ascii_hexdigit() || c == ',')),
    };

    let (tx, rx) = mpsc::channel::<landing::Chunk>(RUNS_QUEUED);
    let plan = landing::Plan {
        dest: dest.to_path_buf(),
        size: expected_size,
        range: RANGE,
        progress: crate::base::progress::Progress::new("downloading", Some(expected_size), every),
        decrypt,
    };
    let landing = landing::spawn(plan, rx);
    let etag = got.meta.e_tag.clone();
    let streamed = deadline
        .run(shutdown, "downloading", async {
            let remote = |e| Error::remote(format!("download of {location}"), e);
            // The first range from the GET already open; the rest by ranged GETs
            // pinned to its ETag, several at once (one stream per connection is
            // what caps a single GET), each landing where it belongs.
            let head = expected_size.min(RANGE);
            let first = {
                let tx = tx.clone();
                Spawned(tokio::spawn(async move {
                    send(got.into_stream(), 0..head, &tx).await
                }))
            };
            let rest = (head..expected_size)
                .step_by(RANGE as usize)
                .map(|start| start..expected_size.min(start + RANGE))
                .map(|range| {
                    let opts = GetOptions {
                        range: Some(range.clone().into()),
                        if_match: etag.clone(),
                        ..GetOptions::default()
                    };
                    let (client, path, tx) = (Arc::clone(client), path.clone(), tx.clone());
                    // Spawned, so each range's body is read on the runtime thread
                    // that drives its connection, not handed to this task.
                    Spawned(tokio::spawn(async move {
                        let got = client.get_opts(&path, opts.clone()).await?;
                        // A server that ignores If-Match still says which version
                        // it answers for.
                        if let (Some(want), Some(have)) = (&opts.if_match, &got.meta.e_tag) {
                            if want != have {
                                return Err(object_store::Error::Precondition {
                                    path: path.to_string(),
                                    source: format!("ETag {have}, not {want}").into(),
                                });
                            }
                        }
                        send(got.into_stream(), range, &tx).await
                    }))
                });
            let all = std::iter::once(first).chain(rest);
            let mut fetches = futures::stream::iter(all).buffer_unordered(RANGES_IN_FLIGHT);
            while let Some(landed) = fetches.next().await {
                let landed = landed
                    .map_err(|e| Error::Other(format!("download task failed: {e}")))?
                    .map_err(remote)?;
                if !landed {
                    break; // the landing thread stopped; its error says why
                }
            }
            Ok(())
        })
        .await;
    drop(tx);
    let landed = landing
        .await
        .map_err(|e| Error::Other(format!("verification task failed: {e}")));
    streamed?;
    let landed = landed?.map_err(|e| e.about(location))?;
    let info = landed.info.clone();
    if landed.received != expected_size || info.input_bytes != expected_size {
        return Err(Error::Data(format!(
            "{location}: received {} bytes, the object has {expected_size}",
            landed.received
        )));
    }
    let actual = info.input_sha256.clone().unwrap_or_default();
    if let Some(want) = &recorded {
        if *want != actual {
            return Err(Error::Data(format!(
                "{location}: SHA-256 {actual} does not match the recorded {want}"
            )));
        }
    }
    tracing::info!(
        location = %location,
        output = %dest.display(),
        object_bytes = info.input_bytes,
        snapshot_bytes = info.snapshot_bytes,
        gzip = info.gzip,
        sha256 = %actual,
        sha256_checked = recorded.is_some(),
        "downloaded and verified"
    );
    Ok((landed, recorded.is_some(), rec))
}

/// A spawned task, aborted when dropped unfinished: a download given up on stops
/// fetching.
struct Spawned<T>(tokio::task::JoinHandle<T>);

impl<T> std::future::Future for Spawned<T> {
    type Output = std::result::Result<T, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for Spawned<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sends the bytes of `range` from `stream` to the landing thread in runs of
/// about [`RUN`] bytes, with their offsets; stops reading at the range's end.
/// False when the landing thread has stopped.
async fn send(
    mut stream: futures::stream::BoxStream<'static, object_store::Result<Bytes>>,
    range: std::ops::Range<u64>,
    tx: &mpsc::Sender<landing::Chunk>,
) -> object_store::Result<bool> {
    let (mut offset, mut run, mut run_len) = (range.start, Vec::new(), 0);
    while offset + run_len < range.end {
        let Some(chunk) = stream.next().await else {
            break; // short: the landing thread finds the gap
        };
        let mut chunk = chunk?;
        chunk.truncate((range.end - offset - run_len).min(chunk.len() as u64) as usize);
        run_len += chunk.len() as u64;
        run.push(chunk);
        if run_len >= RUN {
            if tx.send((offset, std::mem::take(&mut run))).await.is_err() {
                return Ok(false);
            }
            (offset, run_len) = (offset + run_len, 0);
        }
    }
    Ok(run.is_empty() || tx.send((offset, run)).await.is_ok())
}

/// The first bytes of the local file `path` (enough to tell an age file) and
/// the file, opened once: a pipe cannot be opened twice.
fn local_head(path: &Path) -> Result<(Vec<u8>, std::fs::File)> {
    let mut head = vec![0u8; crate::formats::encrypt::AGE_MAGIC.len()];
    let mut file =
        std::fs::File::open(path).map_err(|e| Error::io(path, "cannot open snapshot", e))?;
    let mut n = 0;
    while n < head.len() {
        match std::io::Read::read(&mut file, &mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(path, "cannot read snapshot", e)),
        }
    }
    head.truncate(n);
    Ok((head, file))
}

/// Whether the local file `path` is an age file (by its first bytes).
fn local_is_age(path: &Path) -> Result<bool> {
    Ok(crate::formats::encrypt::is_age(&local_head(path)?.0))
}

/// Verifies a local snapshot file (raw or gzip; decrypted first when it is an
/// age file) and writes the raw snapshot to a locked temporary file beside
/// `dest` (`suffix` naming it), synced, for the caller to keep or rename. The
/// file is opened once and read once, so a named pipe works.
fn copy_verified(
    src: &Path,
    (dest, suffix): (&Path, &str),
    decrypt: &Decryption,
) -> Result<(SnapshotInfo, TempFile)> {
    room::for_local_copy(dest, src)?;
    let (head, file) = local_head(src)?;
    let age = crate::formats::encrypt::is_age(&head);
    let input = std::io::Read::chain(std::io::Cursor::new(head), file);
    let (temp, out) = TempFile::beside(dest, suffix)?;
    let sink = NamedSink::new(BufWriter::with_capacity(1 << 20, out), &temp.path);
    let (info, out) = if age {
        let mut v = Verifier::new(sink, false);
        crate::formats::encrypt::decrypt_into(input, decrypt, &mut v)
            .map_err(|e| e.about(src.display()))?;
        v.finish().map_err(|e| e.about(src.display()))?
    } else {
        crate::formats::snapshot::verify_reader(input, src, Verifier::new(sink, true))?
    };
    crate::base::fs::flush_sync(out.into_inner(), &temp.path)?;
    Ok((info, temp))
}
