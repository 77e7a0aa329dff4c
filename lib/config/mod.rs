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
use crate::transport::etcd::EtcdSource;
use crate::transport::remote::{Remote, parse_bool};

mod copy;
mod delete;
mod doctor;
mod etcd;
mod parse;
mod part_size;
mod restore;
mod verify;

pub use copy::{CopyConfig, CopyWhat};
pub use delete::{AbortIncomplete, DeleteConfig, Retention, Scope};
pub use doctor::DoctorConfig;
pub use etcd::{DEFAULT_GZIP_LEVEL, SnapshotConfig, etcd_settings};
pub use parse::{MAX_DURATION, parse_count, parse_duration, parse_size};
use parse::{concurrency, deadline, progress};
pub use part_size::{DEFAULT_PART_SIZE, STREAMED_PART_SIZE};
use part_size::{file_part_size, part_size, streamed_part_size};
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
                part_size: if from_etcd {
                    streamed_part_size(i, &remote)?
                } else {
                    file_part_size(i, &remote)?
                },
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
            etcd: if from_etcd {
                Some(etcd_settings(i)?)
            } else {
                None
            },
            remote,
        })
    }
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
