//! `delete`: remove one backup; an object that is already gone is success.
//!
//! S3 answers 204 to a DELETE of a missing key, so a HEAD first tells "deleted"
//! from "already absent" for the log. A missing *bucket* is what made the old
//! s3cmd snippet exit 12, which the controller maps to success: it is reported as
//! [`DeleteOutcome::BucketMissing`] (the binary warns and exits 0) unless `strict`.

use object_store::ObjectStoreExt;

use crate::cancel::{Deadline, Shutdown};
use crate::config::DeleteConfig;
use crate::error::{Error, Result};
use crate::remote::Remote;

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

/// Deletes `cfg.key`. See the module documentation for what counts as success.
#[tracing::instrument(name = "delete", skip_all, fields(key = %cfg.key))]
pub async fn delete(cfg: &DeleteConfig, shutdown: &Shutdown) -> Result<DeleteOutcome> {
    let deadline = Deadline::after(cfg.deadline);
    let location = cfg.remote.describe(&cfg.key);
    let (client, path) = cfg.remote.connect(&cfg.key, &deadline, shutdown).await?;
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
