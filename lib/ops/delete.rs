//! `delete`: remove one backup; an object that is already gone is success.
//!
//! S3 answers 204 to a DELETE of a missing key, so a HEAD first tells "deleted"
//! from "already absent" for the log. A missing *bucket* is what made the old
//! s3cmd snippet exit 12, which the controller maps to success: it is reported as
//! [`DeleteOutcome::BucketMissing`] (the binary warns and exits 0) unless `strict`.

use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::base::cancel::{Deadline, Shutdown};
use crate::base::error::{Error, ErrorClass, Result};
use crate::config::{AbortIncomplete, DeleteConfig, Retention, Scope};
use crate::formats::{etcd_manager, retention};
use crate::transport::object::cluster_objects;
use crate::transport::remote::Remote;

/// What `delete` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// The object existed and was deleted.
    Deleted,
    /// There was no such object.
    AlreadyAbsent,
    /// The bucket does not exist (so neither does the object).
    BucketMissing,
}

/// What `delete` did: the deletion of the key, and what retention did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteReport {
    /// The deletion of `BACKUP_TO_DELETE` (`AlreadyAbsent` when none was asked).
    pub outcome: DeleteOutcome,
    /// Retention, when a policy was given.
    pub retention: Option<PruneReport>,
}

/// What retention did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// This cluster's backups kept.
    pub kept: usize,
    /// Backups deleted (in a dry run: to be deleted).
    pub deleted: usize,
    /// Backups the store refused to delete (object lock, legal hold, a policy).
    pub skipped: usize,
    /// Bytes of the deleted backups.
    pub bytes_freed: u64,
    /// Nothing was deleted: the plan only.
    pub dry_run: bool,
}

/// Deletes `cfg.key` (see the module documentation for what counts as success),
/// then, when asked, applies the retention policy (see [`prune`]).
#[tracing::instrument(name = "delete", skip_all, fields(key = ?cfg.key))]
pub async fn delete(cfg: &DeleteConfig, shutdown: &Shutdown) -> Result<DeleteReport> {
    let deadline = Deadline::after(cfg.deadline);
    if let Some(sweep) = &cfg.abort_incomplete {
        abort_incomplete(cfg, sweep, &deadline, shutdown).await?;
    }
    let outcome = match &cfg.key {
        Some(key) => delete_one(cfg, key, &deadline, shutdown).await?,
        None => DeleteOutcome::AlreadyAbsent,
    };
    let retention = match (&cfg.retention, outcome == DeleteOutcome::BucketMissing) {
        (Some(r), false) => Some(prune(cfg, r, &deadline, shutdown).await?),
        _ => None,
    };
    Ok(DeleteReport { outcome, retention })
}

/// `--abort-incomplete`: aborts the incomplete multipart uploads under
/// `sweep.prefix` initiated at least `sweep.older_than` ago (what killed `store`
/// runs left), one log line each and a summary; in a dry run lists them only. A
/// server that cannot list them is an error (exit 1), and so is an abort that
/// failed, after the others were tried (its own class: 77 when refused).
async fn abort_incomplete(
    cfg: &DeleteConfig,
    sweep: &AbortIncomplete,
    deadline: &Deadline,
    shutdown: &Shutdown,
) -> Result<()> {
    let (_, _, target) = cfg
        .remote
        .connect_put(&sweep.prefix, deadline, shutdown)
        .await?;
    let Some(target) = target else {
        return Err(Error::Config(
            "ABORT_INCOMPLETE needs an S3 store: other stores have no multipart uploads".into(),
        ));
    };
    let cutoff = std::time::SystemTime::now()
        .checked_sub(sweep.older_than)
        .unwrap_or(std::time::UNIX_EPOCH);
    let prefix = target.full_key().to_string();
    let swept = deadline
        .run(
            shutdown,
            "aborting incomplete multipart uploads",
            target.sweep(|p| p.initiated <= cutoff, sweep.dry_run),
        )
        .await?;
    let Some(s) = swept else {
        return Err(Error::Other(format!(
            "{}: the server does not list incomplete multipart uploads (ListMultipartUploads \
             not implemented), so none can be aborted",
            cfg.remote.describe(&sweep.prefix)
        )));
    };
    let failed = s.failed.as_ref().map_or(0, |(_, n)| *n);
    tracing::info!(
        prefix = %prefix,
        older_than_secs = sweep.older_than.as_secs(),
        matched = s.matched,
        aborted = s.aborted,
        failed,
        dry_run = sweep.dry_run,
        "{}",
        if sweep.dry_run {
            "incomplete multipart uploads listed (dry run: none aborted)"
        } else {
            "incomplete multipart uploads swept"
        }
    );
    match s.failed {
        // Each was logged; the first one's error is the run's.
        Some((e, _)) => Err(e),
        None => Ok(()),
    }
}

/// A backup retention may delete: its key (or etcd-manager name), time, size.
struct Backup {
    key: String,
    time: i64,
    size: u64,
}

/// Applies `r.policy` to the backups in `r.scope` and deletes those no rule keeps
/// (the newest is always kept). For a cluster's backups, an object counts only
/// when its metadata says it is one (what `store` records): a key prefix cannot
/// tell `prod-` backups from `prod-eu-` ones, and an object someone else put there
/// is never ours to delete; its time is its last-modified time. In a kops store,
/// the backups are the names with a meta file, timed by their names, and each is
/// deleted meta file first. A deletion the store refuses (object lock, legal
/// hold, a bucket policy) is reported and skipped; with `--strict` the run then
/// fails (77) after trying the rest. In a dry run the plan is logged, one line per
/// backup with the rules that keep it, and nothing is deleted.
pub async fn prune(
    cfg: &DeleteConfig,
    r: &Retention,
    deadline: &Deadline,
    shutdown: &Shutdown,
) -> Result<PruneReport> {
    let (client, _) = cfg.remote.connect("retention", deadline, shutdown).await?;
    let (found, listed) = deadline
        .run(shutdown, "listing backups", async {
            match &r.scope {
                Scope::Cluster { prefix, cluster } => {
                    cluster_backups(cfg, &client, prefix, cluster).await
                }
                Scope::EtcdManager => kops_backups(&client).await,
            }
        })
        .await?;
    let times: Vec<i64> = found.iter().map(|b| b.time).collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut report = PruneReport {
        dry_run: r.dry_run,
        ..PruneReport::default()
    };
    for decision in retention::apply(&r.policy, &times, now) {
        let b = &found[decision.index];
        let time = crate::base::time::rfc3339(b.time.max(0) as u64);
        if !decision.kept_by.is_empty() {
            report.kept += 1;
            let rules = decision.kept_by.join(", ");
            if r.dry_run {
                tracing::info!(key = %b.key, time = %time, action = "keep", rules = %rules, "plan");
            } else {
                tracing::debug!(key = %b.key, time = %time, rules = %rules, "kept");
            }
            continue;
        }
        if r.dry_run {
            tracing::info!(key = %b.key, time = %time, action = "delete", bytes = b.size, "plan");
            report.deleted += 1;
            report.bytes_freed += b.size;
            continue;
        }
        let deleted = deadline
            .run(shutdown, "pruning old backups", async {
                match &r.scope {
                    Scope::EtcdManager => etcd_manager::delete_backup(client.as_ref(), &b.key)
                        .await
                        .map(|_| ()),
                    Scope::Cluster { .. } => {
                        let path = ObjectPath::parse(&b.key)
                            .map_err(|e| Error::Other(format!("listed key {:?}: {e}", b.key)))?;
                        client.delete(&path).await.map_err(|e| {
                            Error::remote(format!("delete of {}", cfg.remote.describe(&b.key)), e)
                        })
                    }
                }
            })
            .await;
        match deleted {
            Ok(()) => {
                tracing::info!(key = %b.key, time = %time, bytes = b.size, "pruned");
                report.deleted += 1;
                report.bytes_freed += b.size;
            }
            Err(e) if e.class() == ErrorClass::Denied => {
                tracing::warn!(
                    key = %b.key,
                    error = %e.chain(),
                    "the store refused to delete this backup (object lock, legal hold or a \
                     bucket policy); skipped"
                );
                report.skipped += 1;
            }
            Err(e) => return Err(e),
        }
    }
    tracing::info!(
        scope = %match &r.scope {
            Scope::Cluster { prefix, cluster } => format!("{cluster} under {prefix:?}"),
            Scope::EtcdManager => "etcd-manager backups".to_string(),
        },
        listed,
        not_backups = listed - found.len(),
        kept = report.kept,
        deleted = report.deleted,
        skipped = report.skipped,
        bytes_freed = report.bytes_freed,
        dry_run = report.dry_run,
        "retention applied"
    );
    if report.skipped > 0 && cfg.strict {
        return Err(Error::Denied(format!(
            "the store refused to delete {} backup(s) in {} (--strict)",
            report.skipped,
            cfg.remote.describe("")
        )));
    }
    Ok(report)
}

/// The cluster's backups under `prefix`, and how many objects were listed there.
async fn cluster_backups(
    cfg: &DeleteConfig,
    client: &Arc<dyn ObjectStore>,
    prefix: &str,
    cluster: &str,
) -> Result<(Vec<Backup>, usize)> {
    let (found, count) = cluster_objects(client, &cfg.remote, prefix, cluster).await?;
    let found = found
        .into_iter()
        .map(|o| Backup {
            key: o.location.to_string(),
            time: o.last_modified.timestamp(),
            size: o.size,
        })
        .collect();
    Ok((found, count))
}

/// A kops store's backups: names with a meta file and a time in their name (a
/// name without a meta file may be a backup being written: never counted).
async fn kops_backups(client: &Arc<dyn ObjectStore>) -> Result<(Vec<Backup>, usize)> {
    let names = etcd_manager::list_backups(client.as_ref()).await?;
    let count = names.len();
    let mut found = Vec::new();
    for name in names {
        let Some(time) = etcd_manager::name_time(&name) else {
            tracing::warn!(backup = %name, "not a timestamped backup name; never pruned");
            continue;
        };
        let data = ObjectPath::from(format!("{name}/{}", etcd_manager::DATA_FILE));
        let size = match client.head(&data).await {
            Ok(m) => m.size,
            Err(object_store::Error::NotFound { .. }) => 0,
            Err(e) => return Err(Error::remote(format!("looking up {data}"), e)),
        };
        found.push(Backup {
            key: name,
            time,
            size,
        });
    }
    Ok((found, count))
}

async fn delete_one(
    cfg: &DeleteConfig,
    key: &str,
    deadline: &Deadline,
    shutdown: &Shutdown,
) -> Result<DeleteOutcome> {
    let location = cfg.remote.describe(key);
    if cfg.etcd_manager {
        // A kops backup: its meta file first, then its data.
        let (client, _) = cfg.remote.connect("", deadline, shutdown).await?;
        let deleted = deadline
            .run(shutdown, "deleting the backup", async {
                etcd_manager::delete_backup(client.as_ref(), key).await
            })
            .await?;
        return Ok(match deleted {
            Some(_) => {
                tracing::info!(backup = %key, location = %location, "deleted");
                DeleteOutcome::Deleted
            }
            None => {
                tracing::info!(backup = %key, location = %location, "already absent");
                DeleteOutcome::AlreadyAbsent
            }
        });
    }
    let (client, path) = cfg.remote.connect(key, deadline, shutdown).await?;
    let existed = deadline
        .run(shutdown, "looking up the object", async {
            match client.head(&path).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(Error::remote(format!("looking up {location}"), e)),
            }
        })
        .await?;
    let deleted = deadline
        .run(shutdown, "deleting the object", async {
            client
                .delete(&path)
                .await
                .map_err(|e| Error::remote(format!("delete of {location}"), e))
        })
        .await;
    let outcome = match deleted {
        Ok(()) if existed => DeleteOutcome::Deleted,
        Ok(()) => DeleteOutcome::AlreadyAbsent,
        Err(e) if e.is_missing_bucket() => {
            if cfg.strict {
                return Err(Error::NotFound(format!(
                    "bucket {} does not exist (--strict)",
                    bucket_name(&cfg.remote)
                )));
            }
            DeleteOutcome::BucketMissing
        }
        Err(e) if e.class() == ErrorClass::NotFound => DeleteOutcome::AlreadyAbsent,
        Err(e) => return Err(e),
    };
    match outcome {
        DeleteOutcome::Deleted => tracing::info!(location = %location, "deleted"),
        DeleteOutcome::AlreadyAbsent => tracing::info!(location = %location, "already absent"),
        DeleteOutcome::BucketMissing => tracing::warn!(
            location = %location,
            bucket = %bucket_name(&cfg.remote),
            "the bucket does not exist; nothing to delete"
        ),
    }
    Ok(outcome)
}

fn bucket_name(remote: &Remote) -> String {
    match remote {
        Remote::S3(s) => s.bucket.clone(),
        Remote::Gcs(g) => g.bucket.clone(),
        Remote::Local { root } => root.display().to_string(),
        Remote::Azure(a) => a.container.clone(),
    }
}
