//! kops etcd-manager backup stores: what `etcd-manager-ctl` does (list backups,
//! queue a restore, list and delete queued commands), and the layout `store`
//! writes and `restore` reads with `--backup-store`.
//!
//! Layout (kubernetes-sigs/etcd-manager `pkg/backup/vfs.go`, `pkg/commands/vfs.go`):
//! a store is a URL prefix (`s3://bucket/cluster/backups/etcd/main`) holding
//! `<RFC 3339 UTC>-<sequence>/etcd.backup.gz` and `…/_etcd_backup.meta` (the backup
//! is listed only once its meta file exists), `control/etcd-cluster-spec` and queued
//! commands `control/<RFC 3339 UTC>-000000/_command.json`. Files are protobuf-JSON
//! (lowerCamelCase, int64 as strings, zero values omitted, two-space indent); readers
//! accept int64 as numbers and the snake_case names too, as protojson does.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::base::error::{Error, Result};
use crate::base::time::rfc3339;

mod store;

pub use store::{
    backup_info, cluster_spec, delete_backup, delete_commands, list_backups, list_commands,
    names_in_use, new_backup_info, queue_restore, write_backup_info,
};

/// The snapshot of a backup (gzip of `etcdctl snapshot save`).
pub const DATA_FILE: &str = "etcd.backup.gz";
/// The meta file; written last.
pub const META_FILE: &str = "_etcd_backup.meta";
/// A queued command.
pub const COMMAND_FILE: &str = "_command.json";
/// The cluster spec etcd-manager expects.
pub const SPEC_FILE: &str = "control/etcd-cluster-spec";

/// `etcd.ClusterSpec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    /// Members of the cluster.
    #[serde(default, alias = "member_count", skip_serializing_if = "is_zero")]
    pub member_count: i32,
    /// etcd version, e.g. `3.5.1`.
    #[serde(
        default,
        alias = "etcd_version",
        skip_serializing_if = "String::is_empty"
    )]
    pub etcd_version: String,
}

/// `etcd.BackupInfo`: the meta file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupInfo {
    /// etcd version of the snapshot.
    #[serde(
        default,
        alias = "etcd_version",
        skip_serializing_if = "String::is_empty"
    )]
    pub etcd_version: String,
    /// Unix seconds.
    #[serde(default, with = "int64", skip_serializing_if = "is_zero64")]
    pub timestamp: i64,
    /// The cluster spec at backup time.
    #[serde(
        default,
        alias = "cluster_spec",
        skip_serializing_if = "Option::is_none"
    )]
    pub cluster_spec: Option<ClusterSpec>,
}

/// `etcd.RestoreBackupCommand`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreBackupCommand {
    /// The spec to restore into.
    #[serde(
        default,
        alias = "cluster_spec",
        skip_serializing_if = "Option::is_none"
    )]
    pub cluster_spec: Option<ClusterSpec>,
    /// The backup's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub backup: String,
}

/// `etcd.Command`: a queued command.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Command {
    /// Unix nanoseconds.
    #[serde(default, with = "int64", skip_serializing_if = "is_zero64")]
    pub timestamp: i64,
    /// The restore request.
    #[serde(
        default,
        alias = "restore_backup",
        skip_serializing_if = "Option::is_none"
    )]
    pub restore_backup: Option<RestoreBackupCommand>,
}

fn is_zero(v: &i32) -> bool {
    *v == 0
}
fn is_zero64(v: &i64) -> bool {
    *v == 0
}

/// protobuf-JSON int64: written as a string, read from a string or a number.
mod int64 {
    use super::*;

    pub fn serialize<S: Serializer>(v: &i64, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<i64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            N(i64),
            S(String),
        }
        match Either::deserialize(d)? {
            Either::N(n) => Ok(n),
            Either::S(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// protobuf-JSON text of `v`, two-space indented like etcd-manager's `ToJson`.
pub fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).expect("plain structs serialise")
}

/// `<RFC 3339 UTC, seconds>-<sequence>`: a backup or command name.
pub fn name_at(unix_secs: u64, sequence: u32) -> String {
    format!("{}-{sequence:06}", rfc3339(unix_secs))
}

/// When a backup or command name says it was made (`2025-05-02T23:00:00Z-000001`),
/// in Unix seconds; `None` for a name not in that form.
pub fn name_time(name: &str) -> Option<i64> {
    let stamp = name.get(..20)?;
    let b = stamp.as_bytes();
    let shape = b.len() == 20
        && [4, 7].iter().all(|&i| b[i] == b'-')
        && b[10] == b'T'
        && [13, 16].iter().all(|&i| b[i] == b':')
        && b[19] == b'Z';
    let n = |r: std::ops::Range<usize>| stamp[r].parse::<i64>().ok();
    if !shape || name.as_bytes().get(20) != Some(&b'-') {
        return None;
    }
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let days = crate::base::time::days_from_civil(y, m, d);
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// The first name at `unix_secs` that no name in `in_use` has taken: sequence 0,
/// or one past the highest sequence already used in that second (two stores in
/// one second must not write the same backup).
pub fn unused_name(in_use: &[String], unix_secs: u64) -> String {
    let second = format!("{}-", rfc3339(unix_secs));
    let next = in_use
        .iter()
        .filter_map(|n| n.strip_prefix(&second)?.parse::<u32>().ok())
        .max()
        .map_or(0, |s| s.saturating_add(1));
    name_at(unix_secs, next)
}

/// A backup name must be one path component (etcd-manager's `validateBackupName`).
pub fn check_backup_name(name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(Error::Usage(format!("{name:?} is not a backup name")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_names_time_is_read_back() {
        let t = 1_746_226_800; // 2025-05-02T23:00:00Z
        assert_eq!(name_time(&name_at(t, 7)), Some(t as i64));
        for bad in [
            "2025-05-02T23:00:00Z",
            "2025-13-02T23:00:00Z-000000",
            "2025-05-02 23:00:00Z-000000",
            "backup-1",
            "",
        ] {
            assert_eq!(name_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn names_are_rfc3339_utc_with_a_sequence() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(name_at(1_557_253_681, 977), "2019-05-07T18:28:01Z-000977");
        assert_eq!(rfc3339(1_709_251_199), "2024-02-29T23:59:59Z");
        assert!(check_backup_name("../x").is_err());
        assert!(check_backup_name("2019-05-07T18:28:01Z-000977").is_ok());
    }

    #[test]
    fn a_second_store_in_the_same_second_takes_the_next_sequence() {
        let t = 1_557_253_681;
        assert_eq!(unused_name(&[], t), "2019-05-07T18:28:01Z-000000");
        let in_use = [
            "2019-05-07T18:28:01Z-000000".to_string(),
            "2019-05-07T18:28:01Z-000003".to_string(),
            "2019-05-07T18:28:02Z-000009".to_string(),
            "control".to_string(),
        ];
        assert_eq!(unused_name(&in_use, t), "2019-05-07T18:28:01Z-000004");
        assert_eq!(unused_name(&in_use, t + 2), "2019-05-07T18:28:03Z-000000");
    }

    #[test]
    fn protobuf_json_both_ways() {
        let info = BackupInfo {
            etcd_version: "3.5.1".into(),
            timestamp: 1_557_253_681,
            cluster_spec: Some(ClusterSpec {
                member_count: 3,
                etcd_version: "3.5.1".into(),
            }),
        };
        let text = to_json(&info);
        assert_eq!(
            text,
            "{\n  \"etcdVersion\": \"3.5.1\",\n  \"timestamp\": \"1557253681\",\n  \"clusterSpec\": {\n    \"memberCount\": 3,\n    \"etcdVersion\": \"3.5.1\"\n  }\n}"
        );
        assert_eq!(serde_json::from_str::<BackupInfo>(&text).unwrap(), info);
        // Readers accept int64 as numbers and the proto field names.
        let alt = r#"{"etcd_version":"3.5.1","timestamp":1557253681,"cluster_spec":{"member_count":3,"etcd_version":"3.5.1"}}"#;
        assert_eq!(serde_json::from_str::<BackupInfo>(alt).unwrap(), info);
        let cmd: Command =
            serde_json::from_str(r#"{"timestamp":"5","restoreBackup":{"backup":"b"}}"#).unwrap();
        assert_eq!(cmd.restore_backup.unwrap().backup, "b");
        assert_eq!(
            to_json(&Command::default()),
            "{}",
            "zero values are omitted"
        );
    }
}
