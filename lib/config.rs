//! Typed, validated configuration for each operation, built from [`Inputs`].
//!
//! Everything is checked here, before any network call: the object key
//! (`$CLUSTER-$BACKUP_TO_*`, exactly, as the controller computes it), sizes,
//! durations, and the location (see [`Remote::from_inputs`]). Each error names
//! the variable at fault and exits 78.

use std::path::PathBuf;
use std::time::Duration;

use object_store::path::Path as ObjectPath;

use crate::datadir::{DataDirSpec, Flavor};
use crate::error::{Error, Result};
use crate::etcd::EtcdSource;
use crate::live::Compress;
use crate::remote::{Remote, parse_bool};
use crate::settings::Inputs;

/// Where the controller's init container leaves the snapshot.
pub const DEFAULT_SNAPSHOT_FILE: &str = "/backup/snapshot.db.gz";
/// Default multipart part size (see `benches/RESULTS.md` for the measurement).
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;
/// Default parts in flight at once.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// S3's limits on parts.
const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
const MAX_PART_SIZE: usize = 5 * 1024 * 1024 * 1024;
/// S3's limit on key length, in bytes.
const MAX_KEY_BYTES: usize = 1024;

/// Default gzip level for snapshots taken from etcd (see benches/RESULTS.md).
pub const DEFAULT_GZIP_LEVEL: u32 = 3;

/// Multipart transfer shape: memory in use is bounded by about
/// `part_size * (concurrency + 2)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    /// Bytes per part (5 MiB .. 5 GiB); files up to this size go in one PUT.
    pub part_size: usize,
    /// Parts uploaded at once.
    pub concurrency: usize,
}

impl Default for Transfer {
    fn default() -> Self {
        Transfer {
            part_size: DEFAULT_PART_SIZE,
            concurrency: DEFAULT_CONCURRENCY,
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
}

/// A backup in a kops etcd-manager store.
#[derive(Debug, Clone)]
pub struct EtcdManagerBackup {
    /// `<RFC 3339>-<sequence>`.
    pub name: String,
    /// Unix seconds, for the meta file.
    pub unix_secs: i64,
    /// etcd version for the meta file (else the store's cluster spec's).
    pub etcd_version: Option<String>,
    /// Member count for the meta file (else the store's cluster spec's).
    pub member_count: Option<i32>,
}

/// `restore --backup-store URL COMMAND [NAME]`: etcd-manager-ctl's commands.
#[derive(Debug, Clone)]
pub struct CtlConfig {
    /// The backup store.
    pub remote: Remote,
    /// The command and its argument.
    pub args: Vec<String>,
}

impl CtlConfig {
    /// Validates the inputs of a backup-store command.
    pub fn from_inputs(i: &Inputs, args: Vec<String>) -> Result<Self> {
        Ok(CtlConfig {
            remote: backup_store(i)?.ok_or_else(|| {
                Error::Usage(format!(
                    "{:?} needs --backup-store URL (BACKUP_STORE)",
                    args.join(" ")
                ))
            })?,
            args,
        })
    }
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

/// Configuration of `snapshot`: a live etcd's snapshot to a local file.
#[derive(Debug, Clone)]
pub struct SnapshotConfig {
    /// The etcd to snapshot.
    pub source: EtcdSource,
    /// Where to write it (atomically).
    pub file: PathBuf,
    /// Compression.
    pub compress: Compress,
    /// Internal time budget.
    pub deadline: Duration,
    /// Interval of progress lines on long transfers.
    pub progress: Duration,
}

impl SnapshotConfig {
    /// Validates the inputs of `snapshot`.
    pub fn from_inputs(i: &Inputs) -> Result<Self> {
        let (source, compress) = etcd_settings(i)?;
        Ok(SnapshotConfig {
            source,
            file: PathBuf::from(i.snapshot_file.as_deref().unwrap_or(DEFAULT_SNAPSHOT_FILE)),
            compress,
            deadline: deadline(i, Duration::from_secs(110))?,
            progress: progress(i)?,
        })
    }
}

/// The etcd connection and compression settings.
pub fn etcd_settings(i: &Inputs) -> Result<(EtcdSource, Compress)> {
    let endpoints: Vec<String> = i
        .etcd_endpoints
        .as_deref()
        .ok_or_else(|| Error::Config("ETCD_ENDPOINTS is not set (--etcd-endpoints)".into()))?
        .split(',')
        .map(|e| e.trim().trim_end_matches('/').to_string())
        .filter(|e| !e.is_empty())
        .collect();
    for e in &endpoints {
        if !(e.starts_with("http://") || e.starts_with("https://")) {
            return Err(Error::Config(format!(
                "ETCD_ENDPOINTS: {e:?} must start with http:// or https://"
            )));
        }
    }
    if endpoints.is_empty() {
        return Err(Error::Config("ETCD_ENDPOINTS is empty".into()));
    }
    let file = |v: &Option<String>| v.as_deref().map(PathBuf::from);
    let level = match &i.compress_level {
        Some(raw) => parse_count(raw, "COMPRESS_LEVEL", 1, 9)? as u32,
        None => DEFAULT_GZIP_LEVEL,
    };
    let compress = match i.compress.as_deref() {
        None | Some("gzip") => Compress::Gzip(level),
        Some("none") => Compress::None,
        Some(other) => {
            return Err(Error::Config(format!(
                "COMPRESS={other:?} must be gzip or none"
            )));
        }
    };
    Ok((
        EtcdSource {
            endpoints,
            ca_file: file(&i.etcd_ca_file),
            cert_file: file(&i.etcd_client_cert_file),
            key_file: file(&i.etcd_client_key_file),
            dial_timeout: match &i.etcd_dial_timeout {
                Some(raw) => parse_duration(raw, "ETCD_DIAL_TIMEOUT")?,
                None => Duration::from_secs(5),
            },
            stream_timeout: match &i.etcd_stream_timeout {
                Some(raw) => parse_duration(raw, "ETCD_STREAM_TIMEOUT")?,
                None => Duration::from_secs(30),
            },
        },
        compress,
    ))
}

/// Keep the newest `keep` objects whose keys start with `prefix`; delete the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// How many to keep (at least 1).
    pub keep: usize,
    /// Key prefix, `$CLUSTER-` by default.
    pub prefix: String,
}

/// Configuration of `delete`.
#[derive(Debug, Clone)]
pub struct DeleteConfig {
    /// Where the object lives.
    pub remote: Remote,
    /// Object key, `$CLUSTER-$BACKUP_TO_DELETE`; none for a retention-only run.
    pub key: Option<String>,
    /// Prune to the newest N backups after the deletion (opt-in).
    pub retention: Option<Retention>,
    /// Exit 12 for a missing bucket instead of warning and exiting 0.
    pub strict: bool,
    /// Internal time budget (below the Job's `activeDeadlineSeconds: 240`).
    pub deadline: Duration,
}

/// Where `restore` takes the snapshot from.
#[derive(Debug, Clone)]
pub enum RestoreSource {
    /// An object: `$CLUSTER-$BACKUP_TO_RESTORE` (or `OBJECT_KEY`).
    Object {
        /// Where it lives.
        remote: Box<Remote>,
        /// Its key.
        key: String,
    },
    /// A local snapshot file (`SNAPSHOT_FILE`), raw or gzip.
    File(PathBuf),
    /// A backup in a kops etcd-manager store (`BACKUP_STORE`, `BACKUP_TO_RESTORE`).
    EtcdManager {
        /// The store.
        remote: Box<Remote>,
        /// The backup's name.
        name: String,
    },
}

/// Configuration of `restore`: a verified snapshot file, a member data dir, or both.
#[derive(Debug, Clone)]
pub struct RestoreConfig {
    /// The snapshot's source.
    pub source: RestoreSource,
    /// Where the raw snapshot is written (atomically), if wanted.
    pub output: Option<PathBuf>,
    /// The member data dir to build, if wanted.
    pub member: Option<DataDirSpec>,
    /// Internal time budget.
    pub deadline: Duration,
    /// Interval of progress lines on long transfers.
    pub progress: Duration,
}

impl StoreConfig {
    /// Validates the inputs of `store`.
    pub fn from_inputs(i: &Inputs) -> Result<Self> {
        let (key, remote, etcd_manager) = match backup_store(i)? {
            Some(remote) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let name = crate::etcd_manager::name_at(now, 0);
                let member_count = match &i.member_count {
                    Some(raw) => Some(parse_count(raw, "MEMBER_COUNT", 1, 9)? as i32),
                    None => None,
                };
                let backup = EtcdManagerBackup {
                    name: name.clone(),
                    unix_secs: now as i64,
                    etcd_version: i.etcd_version.clone(),
                    member_count,
                };
                (
                    format!("{name}/{}", crate::etcd_manager::DATA_FILE),
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
        Ok(StoreConfig {
            key,
            etcd_manager,
            file: PathBuf::from(i.snapshot_file.as_deref().unwrap_or(DEFAULT_SNAPSHOT_FILE)),
            transfer: Transfer {
                part_size: match &i.part_size {
                    Some(raw) => parse_size(raw, "PART_SIZE", MIN_PART_SIZE, MAX_PART_SIZE)?,
                    None => DEFAULT_PART_SIZE,
                },
                concurrency: match &i.concurrency {
                    Some(raw) => parse_count(raw, "CONCURRENCY", 1, 64)?,
                    None => DEFAULT_CONCURRENCY,
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

impl DeleteConfig {
    /// Validates the inputs of `delete`.
    pub fn from_inputs(i: &Inputs, strict: bool) -> Result<Self> {
        let retention = match &i.keep_last {
            None => None,
            Some(raw) => Some(Retention {
                keep: parse_count(raw, "KEEP_LAST", 1, 100_000)?,
                prefix: match (&i.retention_prefix, &i.cluster) {
                    (Some(p), _) => p.clone(),
                    (None, Some(c)) => format!("{c}-"),
                    (None, None) => {
                        return Err(Error::Config(
                            "KEEP_LAST needs RETENTION_PREFIX (--prefix) or CLUSTER".into(),
                        ));
                    }
                },
            }),
        };
        let key = match (&i.backup_to_delete, &i.object_key, &retention) {
            (None, None, Some(_)) => None,
            _ => Some(object_key(
                i,
                "BACKUP_TO_DELETE",
                i.backup_to_delete.as_deref(),
            )?),
        };
        Ok(DeleteConfig {
            key,
            retention,
            strict,
            deadline: deadline(i, Duration::from_secs(220))?,
            remote: Remote::from_inputs(i)?,
        })
    }
}

impl RestoreConfig {
    /// Validates the inputs of `restore`.
    pub fn from_inputs(i: &Inputs) -> Result<Self> {
        let member = member_spec(i)?;
        let output = i.output_file.as_deref().map(PathBuf::from);
        if output.is_none() && member.is_none() {
            return Err(Error::Usage(
                "nothing to write: give --output FILE (OUTPUT_FILE) and/or --data-dir DIR (ETCD_DATA_DIR)".into(),
            ));
        }
        let source = match (&i.snapshot_file, backup_store(i)?) {
            (Some(f), _) => RestoreSource::File(PathBuf::from(f)),
            (None, Some(remote)) => {
                let name = i.backup_to_restore.clone().ok_or_else(|| {
                    Error::Usage("--backup-store needs --backup NAME (BACKUP_TO_RESTORE)".into())
                })?;
                crate::etcd_manager::check_backup_name(&name)?;
                RestoreSource::EtcdManager {
                    remote: Box::new(remote),
                    name,
                }
            }
            (None, None) => RestoreSource::Object {
                key: object_key(i, "BACKUP_TO_RESTORE", i.backup_to_restore.as_deref())?,
                remote: Box::new(Remote::from_inputs(i)?),
            },
        };
        Ok(RestoreConfig {
            source,
            output,
            member,
            deadline: deadline(i, Duration::from_secs(3600))?,
            progress: progress(i)?,
        })
    }
}

/// Fills in the membership settings of a known restore shape; explicit settings win.
///
/// - `kkp`: Kubermatic's per-member restore. Member `POD_NAME` of `CLUSTER_SIZE` (3)
///   pods `etcd-N` in `NAMESPACE` (`cluster-$CLUSTER`), TLS peers on
///   `https://etcd-N.etcd.<namespace>.svc.cluster.local:2381`, token `$CLUSTER`,
///   data dir `/var/run/etcd/pod_<pod>`.
/// - `kube-dc`: a single member with etcd's defaults (`default`,
///   `http://localhost:2380`, token `etcd-cluster`), data dir
///   `/var/run/etcd/default.etcd`.
fn apply_preset(i: &Inputs) -> Result<Inputs> {
    let mut o = i.clone();
    let fill = |slot: &mut Option<String>, v: String| {
        if slot.is_none() {
            *slot = Some(v);
        }
    };
    match i.restore_preset.as_deref() {
        None => {}
        Some("kkp") => {
            let pod = i
                .etcd_name
                .clone()
                .or_else(|| i.pod_name.clone())
                .ok_or_else(|| {
                    Error::Usage(
                        "RESTORE_PRESET=kkp needs POD_NAME (--pod) or ETCD_NAME (--name)".into(),
                    )
                })?;
            let cluster = i.cluster.clone();
            let ns = match (&i.namespace, &cluster) {
                (Some(ns), _) => ns.clone(),
                (None, Some(c)) => format!("cluster-{c}"),
                (None, None) => {
                    return Err(Error::Usage(
                        "RESTORE_PRESET=kkp needs NAMESPACE (--namespace) or CLUSTER".into(),
                    ));
                }
            };
            let size = match &i.cluster_size {
                Some(raw) => parse_count(raw, "CLUSTER_SIZE", 1, 9)?,
                None => 3,
            };
            let url = |pod: &str| format!("https://{pod}.etcd.{ns}.svc.cluster.local:2381");
            let members: Vec<String> = (0..size)
                .map(|n| format!("etcd-{n}={}", url(&format!("etcd-{n}"))))
                .collect();
            fill(&mut o.etcd_initial_cluster, members.join(","));
            fill(&mut o.etcd_initial_advertise_peer_urls, url(&pod));
            if let Some(c) = cluster {
                fill(&mut o.etcd_initial_cluster_token, c);
            }
            fill(&mut o.etcd_data_dir, format!("/var/run/etcd/pod_{pod}"));
            fill(&mut o.etcd_name, pod);
        }
        Some("kube-dc") => {
            fill(&mut o.etcd_name, "default".into());
            fill(
                &mut o.etcd_initial_cluster,
                "default=http://localhost:2380".into(),
            );
            fill(
                &mut o.etcd_initial_advertise_peer_urls,
                "http://localhost:2380".into(),
            );
            fill(&mut o.etcd_initial_cluster_token, "etcd-cluster".into());
            fill(&mut o.etcd_data_dir, "/var/run/etcd/default.etcd".into());
        }
        Some(other) => {
            return Err(Error::Usage(format!(
                "RESTORE_PRESET={other:?} is not a preset (kkp or kube-dc)"
            )));
        }
    }
    Ok(o)
}

/// The data-dir restore settings, when `ETCD_DATA_DIR` is given (or a preset).
fn member_spec(i: &Inputs) -> Result<Option<DataDirSpec>> {
    let i = &apply_preset(i)?;
    let Some(data_dir) = &i.etcd_data_dir else {
        return Ok(None);
    };
    let need = |v: &Option<String>, flag: &str, var: &str| {
        v.clone()
            .ok_or_else(|| Error::Usage(format!("--data-dir needs {flag} (or {var})")))
    };
    let name = need(&i.etcd_name, "--name", "ETCD_NAME")?;
    let initial_cluster = need(
        &i.etcd_initial_cluster,
        "--initial-cluster",
        "ETCD_INITIAL_CLUSTER",
    )?;
    let token = need(
        &i.etcd_initial_cluster_token,
        "--initial-cluster-token",
        "ETCD_INITIAL_CLUSTER_TOKEN",
    )?;
    let advertise_peer_urls = need(
        &i.etcd_initial_advertise_peer_urls,
        "--initial-advertise-peer-urls",
        "ETCD_INITIAL_ADVERTISE_PEER_URLS",
    )?;
    Ok(Some(DataDirSpec {
        name,
        initial_cluster,
        advertise_peer_urls,
        token,
        data_dir: PathBuf::from(data_dir),
        wal_dir: i.etcd_wal_dir.as_deref().map(PathBuf::from),
        skip_hash_check: parse_bool(i.skip_hash_check.as_deref(), "SKIP_HASH_CHECK")?,
        flavor: if parse_bool(i.etcd_v34.as_deref(), "ETCD_V34")? {
            Flavor::V34
        } else {
            Flavor::V35
        },
    }))
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

/// Parses a duration: `90`, `90s`, `2m`, `1h` (at least one second).
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
        Some(s) if s > 0 => Ok(Duration::from_secs(s)),
        _ => Err(Error::Config(format!(
            "{var}={raw:?} is not a duration (e.g. 110s, 2m)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(pairs: &[(&str, &str)]) -> Inputs {
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
    fn object_key_overrides_cluster_and_backup() {
        let c =
            RestoreConfig::from_inputs(&inputs(&[("OBJECT_KEY", "k.db"), ("OUTPUT_FILE", "/x")]))
                .unwrap();
        assert!(matches!(c.source, RestoreSource::Object { ref key, .. } if key == "k.db"));
        let err = RestoreConfig::from_inputs(&inputs(&[("OBJECT_KEY", "k.db")])).unwrap_err();
        assert_eq!(err.exit_code(), 64);
    }

    #[test]
    fn data_dir_restores_need_the_membership_flags() {
        let base = [
            ("SNAPSHOT_FILE", "/s.db"),
            ("ETCD_DATA_DIR", "/var/run/etcd/pod_etcd-0"),
            ("ETCD_NAME", "etcd-0"),
            ("ETCD_INITIAL_CLUSTER", "etcd-0=https://e0:2381"),
            ("ETCD_INITIAL_CLUSTER_TOKEN", "tok"),
            ("ETCD_INITIAL_ADVERTISE_PEER_URLS", "https://e0:2381"),
        ];
        let c = RestoreConfig::from_inputs(&inputs(&base)).unwrap();
        assert!(matches!(c.source, RestoreSource::File(_)));
        let m = c.member.unwrap();
        assert_eq!(m.flavor, Flavor::V35);
        assert!(!m.skip_hash_check);
        for missing in 2..base.len() {
            let mut pairs = base.to_vec();
            let (var, _) = pairs.remove(missing);
            let err = RestoreConfig::from_inputs(&inputs(&pairs)).unwrap_err();
            assert_eq!(err.exit_code(), 64, "{var}");
            assert!(err.to_string().contains(var), "{err} should name {var}");
        }
    }

    #[test]
    fn the_kkp_preset_matches_the_etcd_launcher() {
        let c = RestoreConfig::from_inputs(&inputs(&[
            ("RESTORE_PRESET", "kkp"),
            ("POD_NAME", "etcd-1"),
            ("BACKUP_TO_RESTORE", "daily.db.gz"),
        ]))
        .unwrap();
        let m = c.member.unwrap();
        let host = |n: u8| format!("https://etcd-{n}.etcd.cluster-xyz123.svc.cluster.local:2381");
        assert_eq!(m.name, "etcd-1");
        assert_eq!(
            m.initial_cluster,
            format!("etcd-0={},etcd-1={},etcd-2={}", host(0), host(1), host(2))
        );
        assert_eq!(m.advertise_peer_urls, host(1));
        assert_eq!(m.token, "xyz123");
        assert_eq!(m.data_dir, PathBuf::from("/var/run/etcd/pod_etcd-1"));
        assert!(
            matches!(c.source, RestoreSource::Object { ref key, .. } if key == "xyz123-daily.db.gz")
        );
        let err = RestoreConfig::from_inputs(&inputs(&[("RESTORE_PRESET", "kkp")])).unwrap_err();
        assert!(err.to_string().contains("POD_NAME"), "{err}");
    }

    #[test]
    fn the_kube_dc_preset_is_etcds_single_member_default() {
        let c = RestoreConfig::from_inputs(&inputs(&[
            ("RESTORE_PRESET", "kube-dc"),
            ("SNAPSHOT_FILE", "/s.db"),
            ("ETCD_DATA_DIR", "/data/override"),
        ]))
        .unwrap();
        let m = c.member.unwrap();
        assert_eq!(
            (m.name.as_str(), m.token.as_str()),
            ("default", "etcd-cluster")
        );
        assert_eq!(m.initial_cluster, "default=http://localhost:2380");
        assert_eq!(
            m.data_dir,
            PathBuf::from("/data/override"),
            "explicit settings win"
        );
        let bad = RestoreConfig::from_inputs(&inputs(&[
            ("RESTORE_PRESET", "nope"),
            ("SNAPSHOT_FILE", "/s"),
        ]));
        assert_eq!(bad.unwrap_err().exit_code(), 64);
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
}
