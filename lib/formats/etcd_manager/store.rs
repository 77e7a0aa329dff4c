//! Reading and writing a kops etcd-manager store through object_store: backups
//! and their meta files, the cluster spec, queued commands.

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use super::{
    BackupInfo, COMMAND_FILE, ClusterSpec, Command, DATA_FILE, META_FILE, RestoreBackupCommand,
    SPEC_FILE, check_backup_name, name_at, to_json,
};
use crate::base::error::{Error, Result};

/// Deletes backup `name`: its meta file first, so etcd-manager stops listing it
/// before its data goes (a half-deleted backup is never listed). Returns the
/// size of the data deleted, or `None` when there was no such backup.
pub async fn delete_backup(store: &dyn ObjectStore, name: &str) -> Result<Option<u64>> {
    check_backup_name(name)?;
    let (meta, data) = (
        path(&format!("{name}/{META_FILE}")),
        path(&format!("{name}/{DATA_FILE}")),
    );
    let size = match store.head(&data).await {
        Ok(m) => Some(m.size),
        Err(object_store::Error::NotFound { .. }) => None,
        Err(e) => return Err(Error::remote(format!("looking up {data}"), e)),
    };
    let had_meta = match store.head(&meta).await {
        Ok(_) => true,
        Err(object_store::Error::NotFound { .. }) => false,
        Err(e) => return Err(Error::remote(format!("looking up {meta}"), e)),
    };
    if !had_meta && size.is_none() {
        return Ok(None);
    }
    for p in [&meta, &data] {
        match store.delete(p).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(Error::remote(format!("delete of {p}"), e)),
        }
    }
    Ok(Some(size.unwrap_or(0)))
}

/// Every backup name that has any object under it, meta file or not (a name
/// without one may be another store's backup still being written).
pub async fn names_in_use(store: &dyn ObjectStore) -> Result<Vec<String>> {
    let listing = store
        .list_with_delimiter(None)
        .await
        .map_err(|e| Error::remote("listing the backup store", e))?;
    Ok(listing
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename().map(str::to_string))
        .collect())
}

pub(super) fn path(key: &str) -> ObjectPath {
    ObjectPath::from(key)
}

pub(super) async fn read_json<T: for<'de> Deserialize<'de>>(
    store: &dyn ObjectStore,
    key: &str,
) -> Result<Option<T>> {
    match store.get(&path(key)).await {
        Ok(got) => {
            let bytes = got
                .bytes()
                .await
                .map_err(|e| Error::remote(format!("reading {key}"), e))?;
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Data(format!("{key} is not valid protobuf-JSON: {e}")))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(Error::remote(format!("reading {key}"), e)),
    }
}

pub(super) async fn write_json<T: Serialize>(
    store: &dyn ObjectStore,
    key: &str,
    v: &T,
) -> Result<()> {
    store
        .put(&path(key), PutPayload::from(to_json(v).into_bytes()))
        .await
        .map(|_| ())
        .map_err(|e| Error::remote(format!("writing {key}"), e))
}

/// The backups in the store, sorted (only those with a meta file).
pub async fn list_backups(store: &dyn ObjectStore) -> Result<Vec<String>> {
    let objects: Vec<_> = store
        .list(None)
        .try_collect()
        .await
        .map_err(|e| Error::remote("listing the backup store", e))?;
    let mut names: Vec<String> = objects
        .iter()
        .filter_map(|o| {
            let parts: Vec<_> = o.location.parts().collect();
            match parts.as_slice() {
                [name, file] if file.as_ref() == META_FILE => Some(name.as_ref().to_string()),
                _ => None,
            }
        })
        .collect();
    names.sort();
    Ok(names)
}

/// The meta of backup `name`; a backup without one does not exist (exit 12).
pub async fn backup_info(store: &dyn ObjectStore, name: &str) -> Result<BackupInfo> {
    check_backup_name(name)?;
    read_json(store, &format!("{name}/{META_FILE}"))
        .await?
        .ok_or_else(|| {
            Error::NotFound(format!(
                "no backup {name:?} in the backup store (no {META_FILE})"
            ))
        })
}

/// The cluster spec etcd-manager expects, if any.
pub async fn cluster_spec(store: &dyn ObjectStore) -> Result<Option<ClusterSpec>> {
    read_json(store, SPEC_FILE).await
}

/// Queues a restore of `name` with the current cluster spec, like
/// `etcd-manager-ctl restore-backup`; returns the command's key.
pub async fn queue_restore(store: &dyn ObjectStore, name: &str, now_nanos: i64) -> Result<String> {
    backup_info(store, name).await?;
    let spec = cluster_spec(store).await?.ok_or_else(|| {
        Error::NotFound(format!(
            "no cluster spec at {SPEC_FILE}: is this a new cluster?"
        ))
    })?;
    let cmd = Command {
        timestamp: now_nanos,
        restore_backup: Some(RestoreBackupCommand {
            cluster_spec: Some(spec),
            backup: name.to_string(),
        }),
    };
    let key = format!(
        "control/{}/{COMMAND_FILE}",
        name_at((now_nanos / 1_000_000_000) as u64, 0)
    );
    write_json(store, &key, &cmd).await?;
    Ok(key)
}

/// Queued commands with their keys, oldest first.
pub async fn list_commands(store: &dyn ObjectStore) -> Result<Vec<(String, Command)>> {
    let prefix = path("control");
    let objects: Vec<_> = store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|e| Error::remote("listing queued commands", e))?;
    let mut out = Vec::new();
    for o in objects
        .iter()
        .filter(|o| o.location.filename() == Some(COMMAND_FILE))
    {
        let key = o.location.to_string();
        if let Some(cmd) = read_json::<Command>(store, &key).await? {
            out.push((key, cmd));
        }
    }
    out.sort_by_key(|(_, c)| c.timestamp);
    Ok(out)
}

/// Deletes the queued restores of backup `name`; returns how many.
pub async fn delete_commands(store: &dyn ObjectStore, name: &str) -> Result<usize> {
    let mut n = 0;
    for (key, cmd) in list_commands(store).await? {
        if cmd
            .restore_backup
            .as_ref()
            .is_some_and(|r| r.backup == name)
        {
            store
                .delete(&path(&key))
                .await
                .map_err(|e| Error::remote(format!("deleting {key}"), e))?;
            n += 1;
        }
    }
    Ok(n)
}

/// The meta of a new backup: the store's current cluster spec, with the given
/// version and member count over it, else built from them. Read before the upload,
/// so a backup that could not be listed is refused before anything is written.
pub async fn new_backup_info(
    store: &dyn ObjectStore,
    unix_secs: i64,
    etcd_version: Option<&str>,
    member_count: Option<i32>,
) -> Result<BackupInfo> {
    let spec = match (cluster_spec(store).await?, etcd_version) {
        (Some(mut s), v) => {
            if let Some(v) = v {
                s.etcd_version = v.to_string();
            }
            if let Some(n) = member_count {
                s.member_count = n;
            }
            s
        }
        (None, Some(v)) => ClusterSpec {
            member_count: member_count.unwrap_or(1),
            etcd_version: v.to_string(),
        },
        (None, None) => {
            return Err(Error::Config(format!(
                "the backup store has no {SPEC_FILE}: give ETCD_VERSION (--etcd-version) for the meta file"
            )));
        }
    };
    Ok(BackupInfo {
        etcd_version: spec.etcd_version.clone(),
        timestamp: unix_secs,
        cluster_spec: Some(spec),
    })
}

/// Writes the meta file of a stored backup (last, so listing sees only whole backups).
pub async fn write_backup_info(
    store: &dyn ObjectStore,
    name: &str,
    info: &BackupInfo,
) -> Result<()> {
    // Create-only: a meta file already there is another backup's.
    let key = format!("{name}/{META_FILE}");
    let opts = object_store::PutOptions {
        mode: object_store::PutMode::Create,
        ..object_store::PutOptions::default()
    };
    match store
        .put_opts(
            &path(&key),
            PutPayload::from(to_json(info).into_bytes()),
            opts,
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(object_store::Error::AlreadyExists { .. }) => Err(Error::Data(format!(
            "{key} already exists: another writer took backup name {name} at the same \
             moment; its meta file was left as it is"
        ))),
        Err(e) => Err(Error::remote(format!("writing {key}"), e)),
    }
}
