//! Configuration of `restore`: where the snapshot comes from (an object, a local
//! file, a kops etcd-manager store), what to write, and the member restore presets.

use std::path::PathBuf;
use std::time::Duration;

use super::{backup_store, deadline, object_key, parse_count, progress};
use crate::base::error::{Error, Result};
use crate::base::settings::Inputs;
use crate::formats::datadir::{DataDirSpec, Flavor};
use crate::transport::remote::{Remote, parse_bool};

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
    /// The newest of this cluster's backups under `$CLUSTER-` (by the cluster
    /// `store` records, as `verify --latest`) whose time is at or before `before`
    /// (`RESTORE_BEFORE`, Unix seconds).
    Before {
        /// Where they live.
        remote: Box<Remote>,
        /// The key prefix listed (`$CLUSTER-`).
        prefix: String,
        /// The cluster their metadata must name.
        cluster: String,
        /// The latest time accepted, Unix seconds.
        before: i64,
    },
    /// The newest backup in a kops etcd-manager store (`BACKUP_STORE`) whose
    /// name's time is at or before `before` (`RESTORE_BEFORE`, Unix seconds).
    EtcdManagerBefore {
        /// The store.
        remote: Box<Remote>,
        /// The latest time accepted, Unix seconds.
        before: i64,
    },
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
    /// The age identities an encrypted backup is decrypted with
    /// (`DECRYPT_IDENTITY_FILE`); empty when none were given.
    pub identities: crate::formats::encrypt::Identities,
}

impl RestoreConfig {
    /// Validates the inputs of `restore`.
    pub fn from_inputs(i: &Inputs) -> Result<Self> {
        let member = member_spec(i)?;
        if member.is_none() && (i.bump_revision.is_some() || i.mark_compacted.is_some()) {
            return Err(Error::Usage(
                "--bump-revision and --mark-compacted need --data-dir (ETCD_DATA_DIR)".into(),
            ));
        }
        let output = i.output_file.as_deref().map(PathBuf::from);
        if output.is_none() && member.is_none() {
            return Err(Error::Usage(
                "nothing to write: give --output FILE (OUTPUT_FILE) and/or --data-dir DIR (ETCD_DATA_DIR)".into(),
            ));
        }
        if let (Some(_), Some(other)) = (
            &i.snapshot_file,
            [
                (&i.backup_to_restore, "BACKUP_TO_RESTORE (--backup)"),
                (&i.object_key, "OBJECT_KEY (--key)"),
            ]
            .into_iter()
            .find_map(|(v, name)| v.as_ref().map(|_| name)),
        ) {
            return Err(Error::Config(format!(
                "SNAPSHOT_FILE (--snapshot) and {other} both name what to restore; give one"
            )));
        }
        if let Some(raw) = &i.restore_before {
            let before = crate::base::time::parse_rfc3339_utc(raw).ok_or_else(|| {
                Error::Config(format!(
                    "RESTORE_BEFORE (--before) {raw:?} is not a UTC time like 2026-01-02T03:04:05Z"
                ))
            })?;
            if let Some(other) = [
                (&i.backup_to_restore, "BACKUP_TO_RESTORE (--backup)"),
                (&i.object_key, "OBJECT_KEY (--key)"),
                (&i.snapshot_file, "SNAPSHOT_FILE (--snapshot)"),
            ]
            .into_iter()
            .find_map(|(v, name)| v.as_ref().map(|_| name))
            {
                return Err(Error::Usage(format!(
                    "RESTORE_BEFORE (--before) and {other} both name what to restore; give one"
                )));
            }
            let source = match backup_store(i)? {
                Some(remote) => RestoreSource::EtcdManagerBefore {
                    remote: Box::new(remote),
                    before,
                },
                None => {
                    let cluster = i.cluster.clone().ok_or_else(|| {
                        Error::Config("RESTORE_BEFORE (--before) needs CLUSTER".into())
                    })?;
                    RestoreSource::Before {
                        remote: Box::new(Remote::from_inputs(i)?),
                        prefix: format!("{cluster}-"),
                        cluster,
                        before,
                    }
                }
            };
            return Ok(RestoreConfig {
                identities: super::identities(i)?,
                source,
                output,
                member,
                deadline: deadline(i, Duration::from_secs(3600))?,
                progress: progress(i)?,
            });
        }
        let source = match (&i.snapshot_file, backup_store(i)?) {
            (Some(f), _) => RestoreSource::File(PathBuf::from(f)),
            (None, Some(remote)) => {
                let name = i.backup_to_restore.clone().ok_or_else(|| {
                    Error::Usage("--backup-store needs --backup NAME (BACKUP_TO_RESTORE)".into())
                })?;
                crate::formats::etcd_manager::check_backup_name(&name)?;
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
            identities: super::identities(i)?,
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
        bump_revision: bump_revision(i)?,
    }))
}

/// `--bump-revision N --mark-compacted`: both or neither, as etcdutl has it (64).
fn bump_revision(i: &Inputs) -> Result<Option<u64>> {
    let marked = parse_bool(i.mark_compacted.as_deref(), "MARK_COMPACTED")?;
    let n = match i.bump_revision.as_deref() {
        None => 0,
        Some(raw) => raw
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= i64::MAX as u64 / 2)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "--bump-revision (BUMP_REVISION) {raw:?} is not a whole number of revisions"
                ))
            })?,
    };
    match (n, marked) {
        (0, false) => Ok(None),
        (n, true) if n > 0 => Ok(Some(n)),
        _ => Err(Error::Usage(
            "--bump-revision N (BUMP_REVISION) and --mark-compacted (MARK_COMPACTED) go together, N > 0"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::inputs;
    use super::*;

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
    fn a_local_snapshot_and_a_backup_name_together_are_refused() {
        for other in ["BACKUP_TO_RESTORE", "OBJECT_KEY"] {
            let err = RestoreConfig::from_inputs(&inputs(&[
                ("SNAPSHOT_FILE", "/backup/snapshot.db.gz"),
                (other, "daily.db.gz"),
                ("OUTPUT_FILE", "/x"),
            ]))
            .unwrap_err();
            assert_eq!(err.exit_code(), 78, "{other}");
            let text = err.to_string();
            assert!(
                text.contains("SNAPSHOT_FILE") && text.contains(other),
                "{text}"
            );
        }
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
}
