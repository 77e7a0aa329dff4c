//! `delete`: remove one backup; an object that is already gone is success.
//!
//! S3 answers 204 to a DELETE of a missing key, so a HEAD first tells "deleted"
//! from "already absent" for the log. A missing *bucket* is what made the old
//! s3cmd snippet exit 12, which the controller maps to success: it is reported as
//! [`DeleteOutcome::BucketMissing`] (the binary warns and exits 0) unless `strict`.

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{Attribute, ObjectStore, ObjectStoreExt};

use crate::cancel::{Deadline, Shutdown};
use crate::config::{DeleteConfig, Retention};
use crate::error::{Error, Result};
use crate::remote::Remote;
use crate::store::CLUSTER_METADATA;

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

/// Deletes `cfg.key` (see the module documentation for what counts as success),
/// then, when asked, prunes to the newest backups (see [`prune`]).
#[tracing::instrument(name = "delete", skip_all, fields(key = ?cfg.key))]
pub async fn delete(cfg: &DeleteConfig, shutdown: &Shutdown) -> Result<DeleteOutcome> {
    let deadline = Deadline::after(cfg.deadline);
    let outcome = match &cfg.key {
        Some(key) => delete_one(cfg, key, &deadline, shutdown).await?,
        None => DeleteOutcome::AlreadyAbsent,
    };
    if let (Some(r), false) = (&cfg.retention, outcome == DeleteOutcome::BucketMissing) {
        prune(cfg, r, &deadline, shutdown).await?;
    }
    Ok(outcome)
}

/// Keeps the newest `r.keep` backups of `r.cluster` under `r.prefix` and deletes
/// the others: newest by last-modified time, ties broken by key. An object counts
/// as a backup of the cluster only when its metadata says so (what `store`
/// records): a key prefix cannot tell `prod-` backups from `prod-eu-` ones, and
/// an object someone else put there is never ours to delete. Since `keep` is at
/// least 1, the newest backup is always kept. Returns the deleted keys.
pub async fn prune(
    cfg: &DeleteConfig,
    r: &Retention,
    deadline: &Deadline,
    shutdown: &Shutdown,
) -> Result<Vec<String>> {
    let (client, _) = cfg.remote.connect("retention", deadline, shutdown).await?;
    // object_store lists by path segment, so list the prefix's directory and
    // compare the last segment as a string.
    let (dir, start) = match r.prefix.rsplit_once('/') {
        // `parse`, not `from`: the directory as the keys have it (config checked it).
        Some((d, s)) => (
            Some(
                ObjectPath::parse(d)
                    .map_err(|e| Error::Config(format!("RETENTION_PREFIX {:?}: {e}", r.prefix)))?,
            ),
            s,
        ),
        None => (None, r.prefix.as_str()),
    };
    let listing = deadline
        .run(shutdown, "listing backups", async {
            client.list_with_delimiter(dir.as_ref()).await.map_err(|e| {
                Error::remote(format!("listing {}", cfg.remote.describe(&r.prefix)), e)
            })
        })
        .await?;
    let listed: Vec<_> = listing
        .objects
        .into_iter()
        .filter(|o| o.location.filename().is_some_and(|f| f.starts_with(start)))
        .collect();
    let listed_count = listed.len();
    let mut found = deadline
        .run(shutdown, "reading backup metadata", async {
            futures::stream::iter(listed)
                .map(|o| {
                    let client = client.clone();
                    async move {
                        match belongs_to(client.as_ref(), &o.location, &r.cluster).await {
                            Ok(yes) => Ok(yes.then_some(o)),
                            Err(e) => Err(Error::remote(
                                format!("reading {}", cfg.remote.describe(o.location.as_ref())),
                                e,
                            )),
                        }
                    }
                })
                .buffer_unordered(8)
                .try_filter_map(|o| async move { Ok(o) })
                .try_collect::<Vec<_>>()
                .await
        })
        .await?;
    found.sort_by(|a, b| {
        b.last_modified
            .cmp(&a.last_modified)
            .then_with(|| b.location.cmp(&a.location))
    });
    let doomed = found.split_off(r.keep.max(1).min(found.len()));
    let mut deleted = Vec::new();
    for o in &doomed {
        let key = o.location.to_string();
        deadline
            .run(shutdown, "pruning old backups", async {
                client.delete(&o.location).await.map_err(|e| {
                    Error::remote(format!("delete of {}", cfg.remote.describe(&key)), e)
                })
            })
            .await?;
        tracing::info!(key = %key, "pruned");
        deleted.push(key);
    }
    tracing::info!(
        prefix = %r.prefix,
        cluster = %r.cluster,
        listed = listed_count,
        not_this_clusters = listed_count - found.len() - doomed.len(),
        kept = found.len(),
        deleted = deleted.len(),
        "retention applied"
    );
    Ok(deleted)
}

/// Whether the object's metadata names `cluster` (an object gone meanwhile is not).
async fn belongs_to(
    client: &dyn ObjectStore,
    location: &ObjectPath,
    cluster: &str,
) -> object_store::Result<bool> {
    match crate::remote::head(client, location).await {
        Ok(head) => Ok(head
            .attributes
            .get(&Attribute::Metadata(CLUSTER_METADATA.into()))
            .is_some_and(|v| v.as_ref() == cluster)),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

async fn delete_one(
    cfg: &DeleteConfig,
    key: &str,
    deadline: &Deadline,
    shutdown: &Shutdown,
) -> Result<DeleteOutcome> {
    let location = cfg.remote.describe(key);
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
        Err(e) if e.class() == crate::ErrorClass::NotFound => DeleteOutcome::AlreadyAbsent,
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
        Remote::Local { root } => root.display().to_string(),
    }
}
