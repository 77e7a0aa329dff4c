//! Typed, validated configuration for each operation, built from [`Inputs`].
//!
//! Everything is checked here, before any network call: the object key
//! (`$CLUSTER-$BACKUP_TO_*`, exactly, as the controller computes it), sizes,
//! durations, and the location (see [`Remote::from_inputs`]). Each error names
//! the variable at fault and exits 78. `restore` (and its presets) and the etcd
//! settings have modules of their own.

use std::path::PathBuf;
use std::time::Duration;

use object_store::path::Path as ObjectPath;

use crate::base::error::{Error, Result};
use crate::base::settings::Inputs;
use crate::formats::compress::Compress;
use crate::formats::encrypt::{Identities, Recipients};
use crate::formats::retention::{Count, Policy, Span, parse_offset};
use crate::transport::etcd::EtcdSource;
use crate::transport::remote::{Remote, parse_bool};

mod copy;
mod doctor;
mod etcd;
mod part_size;
mod restore;
mod verify;

pub use copy::{CopyConfig, CopyWhat};
pub use doctor::DoctorConfig;
pub use etcd::{DEFAULT_GZIP_LEVEL, SnapshotConfig, etcd_settings};
pub use part_size::DEFAULT_PART_SIZE;
use part_size::part_size;
pub use restore::{CtlConfig, RestoreConfig, RestoreSource};
pub use verify::{ListConfig, Selection, VerifyConfig, VerifyFlags};

/// Where the controller's init container leaves the snapshot.
pub const DEFAULT_SNAPSHOT_FILE: &str = "/backup/snapshot.db.gz";
/// Default parts in flight at once.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Default largest file sent to S3 in one streaming PUT. In benches/RESULTS.md
/// one PUT wins at 200 MiB in both network profiles and parallel parts catch up
/// by 1 GiB behind 10 ms of latency; past a few hundred MiB, parts also mean a
/// failure retries one part, not the whole file.
pub const DEFAULT_SINGLE_PUT_MAX: u64 = 256 << 20;
/// S3's limit on key length, in bytes.
const MAX_KEY_BYTES: usize = 1024;

/// Multipart transfer shape: memory in use is bounded by about
/// `part_size * (concurrency + 2)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    /// Bytes per part (5 MiB .. 5 GiB; az://: 1 MiB .. 4000 MiB, see part_size.rs).
    pub part_size: usize,
    /// Parts uploaded at once.
    pub concurrency: usize,
    /// Files up to this size go to S3 in one streaming PUT (0: never).
    pub single_put_max: u64,
}

impl Default for Transfer {
    fn default() -> Self {
        Transfer {
            part_size: DEFAULT_PART_SIZE,
            concurrency: DEFAULT_CONCURRENCY,
            single_put_max: DEFAULT_SINGLE_PUT_MAX,
        }
    }
}

/// Configuration of `store`.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Destination.
    pub remote: Remote,
    /// Object key, `$CLUSTER-$BACKUP_TO_CREATE`.
    pub key: String,
    /// The snapshot file to upload.
    pub file: PathBuf,
    /// Part size and concurrency.
    pub transfer: Transfer,
    /// Internal time budget (below the Job's `activeDeadlineSeconds: 120`).
    pub deadline: Duration,
    /// Interval of progress lines on long transfers.
    pub progress: Duration,
    /// Take the snapshot from this etcd instead of `file`, stored compressed so.
    pub etcd: Option<(EtcdSource, Compress)>,
    /// Write a kops etcd-manager backup (the key is `<name>/etcd.backup.gz`), then
    /// its meta file.
    pub etcd_manager: Option<EtcdManagerBackup>,
    /// `CLUSTER`, recorded as object metadata (`x-amz-meta-snapjob-cluster`) so
    /// that retention can prove which objects are this cluster's backups.
    pub cluster: Option<String>,
    /// Encrypt what is stored to these age recipients (`ENCRYPT_RECIPIENTS`,
    /// `ENCRYPT_RECIPIENTS_FILE`).
    pub encrypt: Option<Recipients>,
}

/// A backup in a kops etcd-manager store.
#[derive(Debug, Clone)]
pub struct EtcdManagerBackup {
    /// Unix seconds: the name's second (`store` takes the first sequence of it
    /// that the store does not hold yet) and the meta file's timestamp.
    pub unix_secs: i64,
    /// etcd version for the meta file (else the store's cluster spec's).
    pub etcd_version: Option<String>,
    /// Member count for the meta file (else the store's cluster spec's).
    pub member_count: Option<i32>,
}

/// The etcd-manager backup store, when `BACKUP_STORE` is given.
fn backup_store(i: &Inputs) -> Result<Option<Remote>> {
    let Some(url) = &i.backup_store else {
        return Ok(None);
    };
    let mut j = i.clone();
    j.storage_url = Some(url.clone());
    j.bucket_name = None;
    Remote::from_inputs(&j)
        .map(Some)
        .map_err(|e| Error::Config(e.to_string().replace("STORAGE_URL", "BACKUP_STORE")))
}

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

impl StoreConfig {
    /// Validates the inputs of `store`.
    pub fn from_inputs(i: &Inputs) -> Result<Self> {
        let (key, remote, etcd_manager) = match backup_store(i)? {
            Some(remote) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let member_count = match &i.member_count {
                    Some(raw) => Some(parse_count(raw, "MEMBER_COUNT", 1, 9)? as i32),
                    None => None,
                };
                let backup = EtcdManagerBackup {
                    unix_secs: now as i64,
                    etcd_version: i.etcd_version.clone(),
                    member_count,
                };
                (
                    // Provisional: `store` names the backup against the store.
                    format!(
                        "{}/{}",
                        crate::formats::etcd_manager::name_at(now, 0),
                        crate::formats::etcd_manager::DATA_FILE
                    ),
                    remote,
                    Some(backup),
                )
            }
            None => (
                object_key(i, "BACKUP_TO_CREATE", i.backup_to_create.as_deref())?,
                Remote::from_inputs(i)?,
                None,
            ),
        };
        let encrypt = recipients(i)?;
        let forced = parse_bool(
            i.force_encrypted_etcd_manager.as_deref(),
            "FORCE_ENCRYPTED_ETCD_MANAGER",
        )?;
        if encrypt.is_some() && etcd_manager.is_some() && !forced {
            return Err(Error::Config(
                "ENCRYPT_RECIPIENTS with BACKUP_STORE: kops etcd-manager cannot read an \
                 encrypted backup (only snapjob's restore decrypts it); set \
                 FORCE_ENCRYPTED_ETCD_MANAGER=true (--force-encrypted-etcd-manager) to store \
                 it encrypted anyway"
                    .into(),
            ));
        }
        let from_etcd = parse_bool(i.from_etcd.as_deref(), "FROM_ETCD")?;
        if encrypt.is_some()
            && !from_etcd
            && !matches!(remote, Remote::S3(_) | Remote::Local { .. })
        {
            // Refused before anything is read or sent (store_file would find out
            // only after encrypting the file).
            return Err(Error::Config(format!(
                "ENCRYPT_RECIPIENTS: encrypting a snapshot file is supported for s3:// and \
                 file:// stores, not {} (--from-etcd encrypts in the stream anywhere)",
                remote.describe("")
            )));
        }
        Ok(StoreConfig {
            encrypt,
            key,
            etcd_manager,
            cluster: i
                .cluster
                .clone()
                .filter(|c| crate::transport::remote::header_safe(c, "CLUSTER", false).is_ok()),
            file: PathBuf::from(i.snapshot_file.as_deref().unwrap_or(DEFAULT_SNAPSHOT_FILE)),
            transfer: Transfer {
                part_size: part_size(i, &remote)?,
                concurrency: concurrency(i)?,
                single_put_max: match &i.single_put_max {
                    Some(raw) => parse_size(
                        raw,
                        "SINGLE_PUT_MAX",
                        0,
                        crate::transport::put::MAX_SINGLE_PUT as usize,
                    )? as u64,
                    None => DEFAULT_SINGLE_PUT_MAX,
                },
            },
            deadline: deadline(i, Duration::from_secs(110))?,
            progress: progress(i)?,
            etcd: if parse_bool(i.from_etcd.as_deref(), "FROM_ETCD")? {
                Some(etcd_settings(i)?)
            } else {
                None
            },
            remote,
        })
    }
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
    let prefix = i
        .retention_prefix
        .clone()
        .unwrap_or_else(|| format!("{cluster}-"));
    // Its directory is listed: it must be an object path as written.
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

/// The age recipients to encrypt to, from `ENCRYPT_RECIPIENTS` and
/// `ENCRYPT_RECIPIENTS_FILE` (both read now: a bad one fails before any upload).
pub fn recipients(i: &Inputs) -> Result<Option<Recipients>> {
    let file = i
        .encrypt_recipients_file
        .as_deref()
        .map(std::path::Path::new);
    Recipients::parse(
        i.encrypt_recipients
            .as_deref()
            .map(|l| (l, "ENCRYPT_RECIPIENTS")),
        file.map(|f| (f, "ENCRYPT_RECIPIENTS_FILE")),
    )
}

/// The age identities to decrypt with, from `DECRYPT_IDENTITY_FILE` (paths
/// separated by commas), read now; none when it is not set.
pub fn identities(i: &Inputs) -> Result<Identities> {
    let files: Vec<PathBuf> = i
        .decrypt_identity_file
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(PathBuf::from)
        .collect();
    Identities::from_files(&files, "DECRYPT_IDENTITY_FILE")
}

/// `$CLUSTER-$<backup_var>`, or `OBJECT_KEY` when given; checked against S3's and
/// object_store's rules so a bad name fails here, not halfway through an upload.
pub fn object_key(i: &Inputs, backup_var: &str, backup: Option<&str>) -> Result<String> {
    let (key, source) = match &i.object_key {
        Some(k) => (k.clone(), "OBJECT_KEY".to_string()),
        None => {
            let cluster = i
                .cluster
                .as_deref()
                .ok_or_else(|| Error::Config("CLUSTER is not set".into()))?;
            let backup = backup.ok_or_else(|| Error::Config(format!("{backup_var} is not set")))?;
            (
                format!("{cluster}-{backup}"),
                format!("CLUSTER and {backup_var}"),
            )
        }
    };
    let bad = |why: &str| Error::Config(format!("object key {key:?} (from {source}) {why}"));
    if key.len() > MAX_KEY_BYTES {
        return Err(bad(&format!(
            "is {} bytes; S3 allows {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    if key.chars().any(char::is_control) {
        return Err(bad("contains control characters"));
    }
    let parsed =
        ObjectPath::parse(&key).map_err(|e| bad(&format!("is not a valid object path: {e}")))?;
    if parsed.as_ref() != key {
        return Err(bad(
            "is not a canonical object path (leading, trailing or double '/')",
        ));
    }
    Ok(key)
}

/// `CONCURRENCY`, or the default.
fn concurrency(i: &Inputs) -> Result<usize> {
    match &i.concurrency {
        Some(raw) => parse_count(raw, "CONCURRENCY", 1, 64),
        None => Ok(DEFAULT_CONCURRENCY),
    }
}

fn progress(i: &Inputs) -> Result<Duration> {
    match i.progress_interval.as_deref().map(str::trim) {
        None => Ok(Duration::from_secs(5)),
        Some("0") => Ok(Duration::ZERO),
        Some(raw) => parse_duration(raw, "PROGRESS_INTERVAL"),
    }
}

fn deadline(i: &Inputs, default: Duration) -> Result<Duration> {
    match &i.deadline {
        Some(raw) => parse_duration(raw, "DEADLINE"),
        None => Ok(default),
    }
}

/// Parses a byte size: `16777216`, `16M`, `16MiB`, `1G` (binary units).
pub fn parse_size(raw: &str, var: &str, min: usize, max: usize) -> Result<usize> {
    let t = raw.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(Error::Config(format!(
                "{var}={raw:?} is not a size (e.g. 16MiB)"
            )));
        }
    };
    let n: usize = num
        .parse()
        .map_err(|_| Error::Config(format!("{var}={raw:?} is not a size (e.g. 16MiB)")))?;
    let v = n.saturating_mul(mult);
    if v < min || v > max {
        return Err(Error::Config(format!(
            "{var}={raw:?} is out of range ({} MiB .. {} MiB)",
            min >> 20,
            max >> 20
        )));
    }
    Ok(v)
}

/// Parses a whole number in `min..=max`.
pub fn parse_count(raw: &str, var: &str, min: usize, max: usize) -> Result<usize> {
    match raw.trim().parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(Error::Config(format!(
            "{var}={raw:?} must be a whole number from {min} to {max}"
        ))),
    }
}

/// The longest duration any setting takes (a week): far beyond any Job, and far
/// from where adding it to a clock could overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Parses a duration: `90`, `90s`, `2m`, `1h` (at least one second, at most
/// [`MAX_DURATION`]).
pub fn parse_duration(raw: &str, var: &str) -> Result<Duration> {
    let t = raw.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let secs: Option<u64> = num.parse::<u64>().ok().and_then(|n| match unit {
        "" | "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        _ => None,
    });
    match secs {
        Some(s) if s > MAX_DURATION.as_secs() => Err(Error::Config(format!(
            "{var}={raw:?} is too long (at most {}h)",
            MAX_DURATION.as_secs() / 3600
        ))),
        Some(s) if s > 0 => Ok(Duration::from_secs(s)),
        _ => Err(Error::Config(format!(
            "{var}={raw:?} is not a duration (e.g. 110s, 2m)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn inputs(pairs: &[(&str, &str)]) -> Inputs {
        let base = [
            ("BUCKET_NAME", "backups"),
            ("ACCESS_KEY_ID", "AKIAEXAMPLE"),
            ("SECRET_ACCESS_KEY", "secretsecretsecret"),
            ("ENDPOINT", "127.0.0.1:9000"),
            ("INSECURE", "true"),
            ("CLUSTER", "xyz123"),
        ];
        let all = base.iter().chain(pairs.iter());
        Inputs::from_env_vars(all.map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn store_key_is_exactly_cluster_dash_backup() {
        let c = StoreConfig::from_inputs(&inputs(&[(
            "BACKUP_TO_CREATE",
            "daily-backup-2021-03-16t03-48-00.db.gz",
        )]))
        .unwrap();
        assert_eq!(c.key, "xyz123-daily-backup-2021-03-16t03-48-00.db.gz");
        assert_eq!(c.file, PathBuf::from(DEFAULT_SNAPSHOT_FILE));
        assert_eq!(c.transfer, Transfer::default());
        assert_eq!(c.deadline, Duration::from_secs(110));
    }

    #[test]
    fn missing_key_parts_name_the_variable() {
        let err = StoreConfig::from_inputs(&inputs(&[])).unwrap_err();
        assert_eq!(err.exit_code(), 78);
        assert!(err.to_string().contains("BACKUP_TO_CREATE"), "{err}");
        let err = DeleteConfig::from_inputs(&inputs(&[]), false).unwrap_err();
        assert!(err.to_string().contains("BACKUP_TO_DELETE"), "{err}");
    }

    #[test]
    fn odd_keys() {
        let key = |b: &str| {
            let i = inputs(&[("BACKUP_TO_CREATE", b)]);
            object_key(&i, "BACKUP_TO_CREATE", i.backup_to_create.as_deref())
        };
        assert_eq!(key("a b ünï.db.gz").unwrap(), "xyz123-a b ünï.db.gz");
        assert_eq!(key("dir/file.db.gz").unwrap(), "xyz123-dir/file.db.gz");
        for bad in ["x/../y", "x//y", "x/", "tab\there", &"x".repeat(1100)] {
            let err = key(bad).unwrap_err();
            assert_eq!(err.exit_code(), 78, "{bad}");
            assert!(err.to_string().contains("BACKUP_TO_CREATE"), "{err}");
        }
    }

    #[test]
    fn sizes_counts_durations() {
        let m = 1 << 20;
        assert_eq!(parse_size("16MiB", "P", 5 * m, 1 << 32).unwrap(), 16 * m);
        assert_eq!(parse_size("8M", "P", 5 * m, 1 << 32).unwrap(), 8 * m);
        assert_eq!(parse_size("1G", "P", 5 * m, 1 << 32).unwrap(), 1 << 30);
        assert_eq!(parse_size("6291456", "P", 5 * m, 1 << 32).unwrap(), 6 * m);
        for bad in ["1M", "lots", "16XB", ""] {
            assert!(
                parse_size(bad, "PART_SIZE", 5 * m, 1 << 32).is_err(),
                "{bad}"
            );
        }
        assert_eq!(parse_count("4", "C", 1, 64).unwrap(), 4);
        assert!(parse_count("0", "C", 1, 64).is_err());
        assert!(parse_count("-1", "C", 1, 64).is_err());
        assert_eq!(parse_duration("90", "D").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2m", "D").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("0", "D").is_err());
        for absurd in ["18446744073709551615", "18446744073709551615h", "605000"] {
            let err = parse_duration(absurd, "DEADLINE").unwrap_err();
            assert_eq!(err.exit_code(), 78, "{absurd}");
            assert!(err.to_string().starts_with("DEADLINE="), "{err}");
        }
        assert_eq!(
            parse_duration("168h", "D").unwrap(),
            Duration::from_secs(604_800)
        );
        assert!(
            parse_duration("soon", "DEADLINE")
                .unwrap_err()
                .to_string()
                .contains("DEADLINE")
        );
    }

    #[test]
    fn bad_transfer_settings_fail_early() {
        let i = inputs(&[("BACKUP_TO_CREATE", "b"), ("PART_SIZE", "1M")]);
        let err = StoreConfig::from_inputs(&i).unwrap_err();
        assert!(err.to_string().starts_with("PART_SIZE="), "{err}");
        let i = inputs(&[("BACKUP_TO_CREATE", "b"), ("CONCURRENCY", "many")]);
        let err = StoreConfig::from_inputs(&i).unwrap_err();
        assert!(err.to_string().starts_with("CONCURRENCY="), "{err}");
    }

    #[test]
    fn abort_incomplete_settings() {
        let d = DeleteConfig::from_inputs(&inputs(&[("ABORT_INCOMPLETE", "true")]), false).unwrap();
        assert_eq!(d.key, None);
        let a = d.abort_incomplete.unwrap();
        assert_eq!(a.prefix, "xyz123-");
        assert_eq!(a.older_than, Duration::from_secs(24 * 3600));
        assert!(!a.dry_run);
        let i = inputs(&[
            ("ABORT_INCOMPLETE", "true"),
            ("ABORT_OLDER_THAN", "0s"),
            ("RETENTION_PREFIX", "p/"),
            ("DRY_RUN", "true"),
        ]);
        let a = DeleteConfig::from_inputs(&i, false)
            .unwrap()
            .abort_incomplete
            .unwrap();
        assert_eq!(
            (a.prefix.as_str(), a.older_than, a.dry_run),
            ("p/", Duration::ZERO, true)
        );
        for (pairs, named) in [
            (&[("ABORT_OLDER_THAN", "1h")][..], "ABORT_OLDER_THAN"),
            (
                &[("ABORT_INCOMPLETE", "true"), ("ABORT_OLDER_THAN", "soon")][..],
                "ABORT_OLDER_THAN",
            ),
            (
                &[("ABORT_INCOMPLETE", "yes please")][..],
                "ABORT_INCOMPLETE",
            ),
            (
                &[
                    ("ABORT_INCOMPLETE", "true"),
                    ("STORAGE_URL", "file:///tmp/x"),
                ][..],
                "ABORT_INCOMPLETE",
            ),
        ] {
            let err = DeleteConfig::from_inputs(&inputs(pairs), false).unwrap_err();
            assert_eq!(err.class(), crate::base::error::ErrorClass::Config, "{err}");
            assert!(err.to_string().contains(named), "{err}");
        }
    }
}
