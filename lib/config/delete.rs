//! `delete`'s configuration: the key, retention (which backups to keep), and the
//! sweep of incomplete multipart uploads.

use std::time::Duration;

use object_store::path::Path as ObjectPath;

use super::{backup_store, deadline, object_key, parse_count, parse_duration};
use crate::base::error::{Error, Result};
use crate::base::settings::Inputs;
use crate::formats::retention::{Count, Policy, Span, parse_offset};
use crate::transport::remote::{Remote, parse_bool};

/// Retention: which backups of a scope to keep, by `policy` (restic's rules; the
/// newest is always kept); the rest are deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// The rules.
    pub policy: Policy,
    /// Which objects are backups the policy may delete.
    pub scope: Scope,
    /// Print the plan, delete nothing.
    pub dry_run: bool,
}

/// Which objects retention counts as backups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The objects under `prefix` whose metadata, written by `store`, names
    /// `cluster`: a prefix alone cannot tell `prod-` backups from `prod-eu-` ones.
    Cluster {
        /// Key prefix to list, `$CLUSTER-` by default.
        prefix: String,
        /// The cluster whose backups count (`CLUSTER`).
        cluster: String,
    },
    /// The backups of a kops etcd-manager store (`BACKUP_STORE`): names with a
    /// meta file, timed by their names.
    EtcdManager,
}

/// Configuration of `delete`.
#[derive(Debug, Clone)]
pub struct DeleteConfig {
    /// Where the object lives.
    pub remote: Remote,
    /// Object key, `$CLUSTER-$BACKUP_TO_DELETE`; none for a retention-only run.
    pub key: Option<String>,
    /// Retention after the deletion (opt-in).
    pub retention: Option<Retention>,
    /// `remote` is a kops etcd-manager store (`BACKUP_STORE`): `key` is a backup
    /// name, deleted meta file first.
    pub etcd_manager: bool,
    /// Exit 12 for a missing bucket instead of warning and exiting 0.
    pub strict: bool,
    /// Internal time budget (below the Job's `activeDeadlineSeconds: 240`).
    pub deadline: Duration,
    /// `--abort-incomplete`: sweep the incomplete multipart uploads first.
    pub abort_incomplete: Option<AbortIncomplete>,
}

/// Which incomplete multipart uploads `delete --abort-incomplete` aborts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbortIncomplete {
    /// Key prefix (under the STORAGE_URL prefix): `RETENTION_PREFIX`, default `$CLUSTER-`.
    pub prefix: String,
    /// Initiated at least this long ago (`ABORT_OLDER_THAN`, default 24h; `0s`: all).
    pub older_than: Duration,
    /// List them, abort nothing (`DRY_RUN`).
    pub dry_run: bool,
}

/// The retention policy of `delete`, when any rule is given; `etcd_manager`:
/// `remote` is a kops backup store.
fn retention(i: &Inputs, remote: &Remote, etcd_manager: bool) -> Result<Option<Retention>> {
    let count = |raw: &Option<String>, var: &str| -> Result<Option<Count>> {
        raw.as_deref()
            .map(|r| Count::parse(r, var).map_err(Error::Config))
            .transpose()
    };
    let last = match &i.keep_last {
        Some(raw) if raw.trim() != "unlimited" => {
            Some(Count::N(parse_count(raw, "KEEP_LAST", 1, 100_000)? as u32))
        }
        other => count(other, "KEEP_LAST")?,
    };
    let policy = Policy {
        last,
        hourly: count(&i.keep_hourly, "KEEP_HOURLY")?,
        daily: count(&i.keep_daily, "KEEP_DAILY")?,
        weekly: count(&i.keep_weekly, "KEEP_WEEKLY")?,
        monthly: count(&i.keep_monthly, "KEEP_MONTHLY")?,
        yearly: count(&i.keep_yearly, "KEEP_YEARLY")?,
        within: i
            .keep_within
            .as_deref()
            .map(|r| Span::parse(r, "KEEP_WITHIN").map_err(Error::Config))
            .transpose()?,
        utc_offset: i
            .retention_timezone
            .as_deref()
            .map(|r| parse_offset(r, "RETENTION_TIMEZONE").map_err(Error::Config))
            .transpose()?
            .unwrap_or(0),
    };
    if !policy.is_set() {
        return Ok(None);
    }
    // The rules given, to name them in errors.
    let given = [
        ("KEEP_LAST", &i.keep_last),
        ("KEEP_HOURLY", &i.keep_hourly),
        ("KEEP_DAILY", &i.keep_daily),
        ("KEEP_WEEKLY", &i.keep_weekly),
        ("KEEP_MONTHLY", &i.keep_monthly),
        ("KEEP_YEARLY", &i.keep_yearly),
        ("KEEP_WITHIN", &i.keep_within),
    ]
    .iter()
    .filter(|(_, v)| v.is_some())
    .map(|(name, _)| *name)
    .collect::<Vec<_>>()
    .join(", ");
    let dry_run = parse_bool(i.dry_run.as_deref(), "DRY_RUN")?;
    if etcd_manager {
        return Ok(Some(Retention {
            policy,
            scope: Scope::EtcdManager,
            dry_run,
        }));
    }
    let cluster = i.cluster.clone().ok_or_else(|| {
        Error::Config(format!(
            "{given} needs CLUSTER: retention deletes only objects that store \
             recorded as this cluster's backups"
        ))
    })?;
    crate::transport::remote::header_safe(&cluster, "CLUSTER", false)
        .map_err(|e| Error::Config(format!("{e} ({given} matches it to object metadata)")))?;
    if !remote.keeps_metadata() {
        return Err(Error::Config(format!(
            "{given} needs an S3 store: a file:// store keeps no object metadata, \
             so nothing proves which objects are this cluster's backups"
        )));
    }
    let prefix = cluster_prefix(i, &cluster)?;
    Ok(Some(Retention {
        policy,
        scope: Scope::Cluster { prefix, cluster },
        dry_run,
    }))
}

impl DeleteConfig {
    /// Validates the inputs of `delete`.
    pub fn from_inputs(i: &Inputs, strict: bool) -> Result<Self> {
        let kops = backup_store(i)?;
        let etcd_manager = kops.is_some();
        let remote = match kops {
            Some(r) => r,
            None => Remote::from_inputs(i)?,
        };
        let retention = retention(i, &remote, etcd_manager)?;
        let abort_incomplete = abort_incomplete(i, &remote)?;
        let key = match (&i.backup_to_delete, &i.object_key, &retention) {
            (None, None, Some(_)) => None,
            (None, None, None) if abort_incomplete.is_some() => None,
            (Some(name), _, _) if etcd_manager => {
                crate::formats::etcd_manager::check_backup_name(name)
                    .map_err(|e| Error::Config(format!("BACKUP_TO_DELETE: {e}")))?;
                Some(name.clone())
            }
            _ if etcd_manager => {
                return Err(Error::Config(
                    "BACKUP_STORE: give BACKUP_TO_DELETE (a backup name) or a retention rule \
                     (KEEP_*)"
                        .into(),
                ));
            }
            _ => Some(object_key(
                i,
                "BACKUP_TO_DELETE",
                i.backup_to_delete.as_deref(),
            )?),
        };
        Ok(DeleteConfig {
            key,
            retention,
            etcd_manager,
            strict,
            deadline: deadline(i, Duration::from_secs(220))?,
            remote,
            abort_incomplete,
        })
    }
}

/// `ABORT_INCOMPLETE` (`delete --abort-incomplete`): an S3 store only, since only
/// S3 has multipart uploads to sweep.
fn abort_incomplete(i: &Inputs, remote: &Remote) -> Result<Option<AbortIncomplete>> {
    if !parse_bool(i.abort_incomplete.as_deref(), "ABORT_INCOMPLETE")? {
        if i.abort_older_than.is_some() {
            return Err(Error::Config(
                "ABORT_OLDER_THAN (--older-than) is given without ABORT_INCOMPLETE \
                 (--abort-incomplete)"
                    .into(),
            ));
        }
        return Ok(None);
    }
    if !matches!(remote, Remote::S3(_)) {
        return Err(Error::Config(
            "ABORT_INCOMPLETE needs an S3 store (STORAGE_URL s3:// or BUCKET_NAME): \
             other stores have no incomplete multipart uploads to abort"
                .into(),
        ));
    }
    let older_than = match i.abort_older_than.as_deref().map(str::trim) {
        None => Duration::from_secs(24 * 3600),
        Some("0" | "0s" | "0m" | "0h") => Duration::ZERO,
        Some(raw) => parse_duration(raw, "ABORT_OLDER_THAN")?,
    };
    let prefix = match (&i.retention_prefix, &i.cluster) {
        (Some(p), _) => p.clone(),
        (None, Some(cluster)) => format!("{cluster}-"),
        (None, None) => {
            return Err(Error::Config(
                "ABORT_INCOMPLETE needs CLUSTER or RETENTION_PREFIX (--prefix): the key \
                 prefix whose incomplete uploads are aborted"
                    .into(),
            ));
        }
    };
    if prefix.is_empty() {
        return Err(Error::Config(
            "RETENTION_PREFIX (--prefix) is empty: ABORT_INCOMPLETE would sweep the whole bucket"
                .into(),
        ));
    }
    Ok(Some(AbortIncomplete {
        prefix,
        older_than,
        dry_run: parse_bool(i.dry_run.as_deref(), "DRY_RUN")?,
    }))
}

/// `RETENTION_PREFIX`, or `$CLUSTER-`: the key prefix of a cluster's backups.
/// Its directory is listed, so it must be an object path as written.
pub(super) fn cluster_prefix(i: &Inputs, cluster: &str) -> Result<String> {
    let prefix = i
        .retention_prefix
        .clone()
        .unwrap_or_else(|| format!("{cluster}-"));
    if let Some((dir, _)) = prefix.rsplit_once('/') {
        match ObjectPath::parse(dir) {
            Ok(p) if p.as_ref() == dir => {}
            Ok(_) => {
                return Err(Error::Config(format!(
                    "RETENTION_PREFIX={prefix:?} has a leading or double '/'"
                )));
            }
            Err(e) => {
                return Err(Error::Config(format!(
                    "RETENTION_PREFIX={prefix:?} is not under an object path: {e}"
                )));
            }
        }
    }
    Ok(prefix)
}
