//! `verify`: a restore drill that writes nothing but its report. Each selected
//! backup is downloaded (one stream, to a temporary file, one at a time), its
//! size and recorded SHA-256 checked, inflated, its etcd trailer checked, and its
//! bbolt db checked and described (crate::formats::etcddb): structure as `bbolt
//! check`, etcd's facts, and `HashKV` at its revision, compared with the member's
//! answer when `store` recorded one. A corrupt backup does not stop the run: every
//! selected backup gets its line; any other failure (network, deadline) does.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{Attribute, GetOptions, ObjectStore};
use serde::Serialize;

use crate::base::cancel::{Deadline, Shutdown};
use crate::base::error::{Error, ErrorClass, Result};
use crate::base::fs::TempFile;
use crate::config::{Selection, VerifyConfig};
use crate::formats::etcddb::recorded::{self, Compared, Recorded};
use crate::formats::etcddb::{self, DbFacts};
use crate::formats::snapshot::{NamedSink, SnapshotInfo, Verifier};
use crate::transport::object::{SHA256_METADATA, recorded_hashkv};

/// One backup's result.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    /// Object key.
    pub key: String,
    /// `ok` or `corrupt`.
    pub result: String,
    /// What failed, for a corrupt backup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Bytes of the object.
    pub object_bytes: u64,
    /// The object's time, Unix seconds.
    pub last_modified: i64,
    /// Whether a recorded SHA-256 was there (and matched).
    pub sha256_checked: bool,
    /// Whether the member's HashKV was recorded (and matched).
    pub hash_kv_checked: bool,
    /// The object was gzip.
    pub gzip: bool,
    /// `--restore-test`: the member data dir built from it checked, and its db's
    /// size in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_test: Option<u64>,
    /// What the db holds (for a backup that got that far).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub facts: Option<DbFacts>,
    /// Wall time of the db check (structure walk, facts and HashKV) alone.
    pub check_seconds: f64,
    /// Wall time.
    pub seconds: f64,
}

impl Checked {
    /// Whether the backup passed.
    pub fn passed(&self) -> bool {
        self.result == "ok"
    }
}

/// What `verify` found.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Each backup, in the order checked (newest first for a listing).
    pub backups: Vec<Checked>,
    /// Wall time.
    pub seconds: f64,
}

impl VerifyReport {
    /// Ok when every backup passed; else a data error (65) naming each corrupt
    /// one and what failed.
    pub fn outcome(&self) -> Result<()> {
        let bad: Vec<String> = self
            .backups
            .iter()
            .filter(|c| !c.passed())
            .map(|c| format!("{}: {}", c.key, c.error.as_deref().unwrap_or("failed")))
            .collect();
        if bad.is_empty() {
            return Ok(());
        }
        Err(Error::Data(format!(
            "{} of {} backups failed verification: {}",
            bad.len(),
            self.backups.len(),
            bad.join("; ")
        )))
    }
}

/// Runs the drill; `each` sees every backup's result as it is known.
#[tracing::instrument(name = "verify", skip_all)]
pub async fn verify(
    cfg: &VerifyConfig,
    shutdown: &Shutdown,
    each: &mut (dyn FnMut(&Checked) + Send),
) -> Result<VerifyReport> {
    let started = Instant::now();
    let deadline = Deadline::after(cfg.deadline);
    let scratch = cfg.temp_dir.join("snapjob-verify.db");
    crate::base::fs::sweep(&scratch, &["verify", "restore-test"]);
    let (client, _) = cfg.remote.connect("verify", &deadline, shutdown).await?;
    let keys: Vec<String> = match &cfg.selection {
        Selection::Key(k) => vec![k.clone()],
        Selection::Latest { n, cluster, prefix } => {
            let mut found = list(cfg, &client, prefix, Some(cluster), &deadline, shutdown).await?;
            found.truncate(*n);
            found
        }
        Selection::All { prefix } => list(cfg, &client, prefix, None, &deadline, shutdown).await?,
    };
    if keys.is_empty() {
        return Err(Error::NotFound(format!(
            "no backups to verify under {}",
            cfg.remote.describe(match &cfg.selection {
                Selection::Latest { prefix, .. } | Selection::All { prefix } => prefix,
                Selection::Key(k) => k,
            })
        )));
    }
    let mut report = VerifyReport::default();
    for key in keys {
        let checked = one(cfg, &client, &key, &scratch, &deadline, shutdown).await?;
        if checked.passed() {
            tracing::info!(key = %checked.key, revision = checked.facts.as_ref().map_or(0, |f| f.revision),
                hash_kv = checked.facts.as_ref().map_or(0, |f| f.hash_kv), "verified");
        } else {
            tracing::error!(key = %checked.key, error = checked.error.as_deref().unwrap_or(""), "corrupt");
        }
        each(&checked);
        report.backups.push(checked);
    }
    let unrecorded = report
        .backups
        .iter()
        .filter(|c| c.passed() && !c.hash_kv_checked)
        .count();
    if unrecorded > 0 {
        tracing::info!(
            "{unrecorded} of {} backups carry no member HashKV to compare (s3cmd uploads, \
             file://, backups older than the record): their offline HashKV is reported only",
            report.backups.len()
        );
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

async fn list(
    cfg: &VerifyConfig,
    client: &Arc<dyn ObjectStore>,
    prefix: &str,
    cluster: Option<&str>,
    deadline: &Deadline,
    shutdown: &Shutdown,
) -> Result<Vec<String>> {
    let found = deadline
        .run(shutdown, "listing backups", async {
            crate::transport::listing::backups(client.as_ref(), prefix, cluster, false)
                .await
                .map_err(|e| Error::remote(format!("listing {}", cfg.remote.describe(prefix)), e))
        })
        .await?;
    Ok(found
        .into_iter()
        .map(|l| l.meta.location.to_string())
        .collect())
}

/// Checks one backup: a data error makes it corrupt, other errors end the run.
async fn one(
    cfg: &VerifyConfig,
    client: &Arc<dyn ObjectStore>,
    key: &str,
    scratch: &Path,
    deadline: &Deadline,
    shutdown: &Shutdown,
) -> Result<Checked> {
    let started = Instant::now();
    let mut checked = Checked {
        key: key.to_string(),
        result: "ok".into(),
        error: None,
        object_bytes: 0,
        last_modified: 0,
        sha256_checked: false,
        hash_kv_checked: false,
        gzip: false,
        restore_test: None,
        facts: None,
        check_seconds: 0.0,
        seconds: 0.0,
    };
    let outcome = check_one(cfg, client, key, scratch, deadline, shutdown, &mut checked).await;
    checked.seconds = started.elapsed().as_secs_f64();
    match outcome {
        Ok(()) => Ok(checked),
        Err(e) if e.class() == ErrorClass::Data => {
            checked.result = "corrupt".into();
            checked.error = Some(e.chain());
            Ok(checked)
        }
        Err(e) => Err(e.about(cfg.remote.describe(key))),
    }
}

async fn check_one(
    cfg: &VerifyConfig,
    client: &Arc<dyn ObjectStore>,
    key: &str,
    scratch: &Path,
    deadline: &Deadline,
    shutdown: &Shutdown,
    checked: &mut Checked,
) -> Result<()> {
    let location = cfg.remote.describe(key);
    let path = ObjectPath::parse(key).map_err(|e| Error::Config(format!("object key: {e}")))?;
    let got = deadline
        .run(shutdown, "starting the download", async {
            client
                .get_opts(&path, GetOptions::default())
                .await
                .map_err(|e| match e {
                    object_store::Error::NotFound { .. } => {
                        Error::NotFound(format!("no backup at {location}"))
                    }
                    e => Error::remote(format!("download of {location}"), e),
                })
        })
        .await?;
    checked.object_bytes = got.meta.size;
    checked.last_modified = got.meta.last_modified.timestamp();
    let meta = |name: &str| {
        got.attributes
            .get(&Attribute::Metadata(name.to_string().into()))
            .map(|v| v.to_string())
    };
    let recorded_sha = meta(SHA256_METADATA).map(|v| v.to_ascii_lowercase());
    let [rev, hash, compact] = recorded_hashkv(&got.attributes);
    let recorded_hash = Recorded::parse(rev.as_deref(), hash.as_deref(), compact.as_deref())?;
    let size = got.meta.size;
    let (temp, file) = TempFile::beside(scratch, "verify")?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let sink_path = temp.path.clone();
    let mut progress = crate::base::progress::Progress::new("verifying", Some(size), cfg.progress);
    let inflate = tokio::task::spawn_blocking(move || -> Result<(SnapshotInfo, std::fs::File)> {
        let sink = NamedSink::new(BufWriter::with_capacity(1 << 20, file), &sink_path);
        let mut v = Verifier::new(sink, true);
        while let Some(chunk) = rx.blocking_recv() {
            v.update(&chunk)?;
            progress.add(chunk.len() as u64);
        }
        let (info, sink) = v.finish()?;
        let mut w = sink.into_inner();
        w.flush()
            .map_err(|e| Error::io(&sink_path, "cannot write the snapshot", e))?;
        let file = w
            .into_inner()
            .map_err(|e| Error::io(&sink_path, "cannot write the snapshot", e.into_error()))?;
        Ok((info, file))
    });
    let streamed = deadline
        .run(shutdown, "downloading", async {
            let mut stream = got.into_stream();
            while let Some(chunk) = stream.next().await {
                let chunk =
                    chunk.map_err(|e| Error::remote(format!("download of {location}"), e))?;
                if tx.send(chunk).await.is_err() {
                    break; // the verifier stopped; its error says why
                }
            }
            Ok(())
        })
        .await;
    drop(tx);
    let inflated = inflate
        .await
        .map_err(|e| Error::Other(format!("verification task failed: {e}")))?;
    streamed?;
    let (info, file) = inflated?;
    checked.gzip = info.gzip;
    if info.input_bytes != size {
        return Err(Error::Data(format!(
            "received {} bytes, the object has {size}",
            info.input_bytes
        )));
    }
    let actual = info.input_sha256.clone().unwrap_or_default();
    if let Some(want) = &recorded_sha {
        if *want != actual {
            return Err(Error::Data(format!(
                "SHA-256 {actual} does not match the recorded {want}"
            )));
        }
        checked.sha256_checked = true;
    }
    let len = info.snapshot_bytes - if info.has_trailer { 32 } else { 0 };
    let (d, s) = (*deadline, shutdown.clone());
    let (restore_test, scratch) = (cfg.restore_test, scratch.to_path_buf());
    let (facts, restored, took) = tokio::task::spawn_blocking(move || {
        let stop = || d.check(&s, "checking the db");
        let started = Instant::now();
        let at = recorded_hash.map(|r| r.revision);
        let (facts, hash_at) = etcddb::check_at(&file, len, at, &stop)?;
        let took = started.elapsed().as_secs_f64();
        drop(file);
        let restored = match restore_test {
            true => Some(restore_and_check(&temp.path, &scratch, &facts, &stop)?),
            false => None,
        };
        drop(temp);
        Ok::<_, Error>(((facts, hash_at), restored, took))
    })
    .await
    .map_err(|e| Error::Other(format!("check task failed: {e}")))??;
    let (facts, hash_at) = facts;
    checked.check_seconds = took;
    checked.restore_test = restored;
    if let Some(rec) = &recorded_hash {
        match recorded::compare(rec, &facts, hash_at)? {
            Compared::Equal => checked.hash_kv_checked = true,
            Compared::NotComparable(why) => {
                tracing::warn!(key, "the recorded HashKV was not compared: {why}");
            }
        }
    }
    checked.facts = Some(facts);
    Ok(())
}

/// `--restore-test`: builds a one-member data dir from the snapshot with our
/// restore (crate::formats::datadir) in a temporary directory beside `scratch`,
/// checks its db as the snapshot's was and compares what etcd would serve from it
/// (revision, compaction, HashKV, keys, revisions, leases); checks its WAL is
/// there. Everything is removed after. Returns the restored db's size.
fn restore_and_check(
    snapshot: &Path,
    scratch: &Path,
    want: &DbFacts,
    stop: &dyn Fn() -> Result<()>,
) -> Result<u64> {
    use crate::formats::datadir::{DataDirSpec, Flavor, restore_data_dir};
    let dir = crate::base::fs::TempDir::beside(scratch, "restore-test")?;
    let data_dir = dir.path.join("data");
    let spec = DataDirSpec {
        name: "verify".into(),
        initial_cluster: "verify=http://127.0.0.1:2380".into(),
        advertise_peer_urls: "http://127.0.0.1:2380".into(),
        token: "snapjob-verify".into(),
        data_dir: data_dir.clone(),
        wal_dir: None,
        skip_hash_check: false,
        flavor: Flavor::V35,
        bump_revision: None,
    };
    restore_data_dir(snapshot, &spec)?;
    let db_path = data_dir.join("member").join("snap").join("db");
    let db = std::fs::File::open(&db_path)
        .map_err(|e| Error::io(&db_path, "cannot open the restored db", e))?;
    let len = db
        .metadata()
        .map_err(|e| Error::io(&db_path, "cannot read the restored db", e))?
        .len();
    let got = etcddb::check(&db, len, stop)
        .map_err(|e| Error::Data(format!("restore test: the restored member's {}", e.chain())))?;
    let pairs = [
        ("revision", got.revision, want.revision),
        (
            "compact revision",
            got.compact_revision,
            want.compact_revision,
        ),
        ("HashKV", i64::from(got.hash_kv), i64::from(want.hash_kv)),
        ("live keys", got.keys as i64, want.keys as i64),
        ("revisions", got.revisions as i64, want.revisions as i64),
        ("leases", got.leases as i64, want.leases as i64),
    ];
    for (what, restored, snapshot) in pairs {
        if restored != snapshot {
            return Err(Error::Data(format!(
                "restore test: the restored member's {what} is {restored}, the snapshot's {snapshot}"
            )));
        }
    }
    let wal = data_dir.join("member").join("wal");
    let has_wal = std::fs::read_dir(&wal)
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".wal"))
        })
        .unwrap_or(false);
    if !has_wal {
        return Err(Error::Data(format!(
            "restore test: no WAL file in {}",
            wal.display()
        )));
    }
    Ok(len)
}
