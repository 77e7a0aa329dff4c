//! Turning a snapshot into an etcd member data dir, in pure Rust: what
//! `etcdutl snapshot restore` (3.5) and `etcdctl snapshot restore` (3.4) write,
//! byte for byte for the WAL and `.snap` (docs/ETCD-RESTORE.md).
//!
//! Everything is checked before a byte is written (membership with etcd's rules,
//! target directories, then the snapshot while it is copied). The member is built
//! in a hidden sibling directory (a separate WAL dir in one beside it), fsynced,
//! and renamed into place (the WAL dir first, taken back out if the data dir's
//! rename fails), so a failure at any point leaves the previous data dir untouched
//! and no WAL dir behind. The db is streamed: memory
//! does not grow with the snapshot.
//!
//! - [`cluster`]: initial-cluster parsing, IDs, member JSON.
//! - [`bolt`]: the minimal bbolt writer for the `members`, `members_removed` and
//!   `meta` buckets.
//! - [`wal`]: the WAL segment and the `.snap` file; `pb` the protobuf bits;
//!   [`v2store`] the v2 JSON inside the `.snap`.

pub mod bolt;
pub mod bump;
pub mod cluster;
mod pb;
pub mod v2store;
pub mod wal;

use std::fs::{self, OpenOptions};
use std::io::BufWriter;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::base::error::{Error, Result};
use crate::base::fs::TempDir;
use crate::formats::snapshot::{NamedSink, Verifier};
use bolt::{Db, Item};
use cluster::{Cluster, id_hex, member_json};
pub use wal::Flavor;

/// What to restore and how.
#[derive(Debug, Clone)]
pub struct DataDirSpec {
    /// This member's name (`--name`).
    pub name: String,
    /// `--initial-cluster`: `name=url,…`.
    pub initial_cluster: String,
    /// `--initial-advertise-peer-urls`.
    pub advertise_peer_urls: String,
    /// `--initial-cluster-token`.
    pub token: String,
    /// `--data-dir`: must not exist, or be empty.
    pub data_dir: PathBuf,
    /// `--wal-dir`, when not `<data-dir>/member/wal`; must not exist.
    pub wal_dir: Option<PathBuf>,
    /// Accept a snapshot without (or with a wrong) SHA-256 trailer.
    pub skip_hash_check: bool,
    /// Whose output to reproduce.
    pub flavor: Flavor,
    /// `--bump-revision N --mark-compacted` (etcdutl 3.5.10+): N ([`bump`]).
    pub bump_revision: Option<u64>,
}

/// What was restored.
#[derive(Debug, Clone)]
pub struct DataDirReport {
    /// The data dir written.
    pub data_dir: PathBuf,
    /// This member's ID (hex).
    pub member_id: String,
    /// The cluster ID (hex).
    pub cluster_id: String,
    /// Number of members.
    pub members: usize,
    /// Size of `member/snap/db`.
    pub db_bytes: u64,
}

/// The suffix of the hidden directories a member (and its WAL dir) is built in,
/// beside the data dir: `.<data dir>.snapjob-<pid>.restore`.
pub(crate) const STAGING: &str = "restore";

fn io(path: &Path, action: &str) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    let action = action.to_string();
    move |e| Error::io(path, action, e)
}

/// Checks the membership and the target directories: nothing is written.
pub fn validate(spec: &DataDirSpec) -> Result<Cluster> {
    let cluster = Cluster::new(
        &spec.name,
        &spec.initial_cluster,
        &spec.advertise_peer_urls,
        &spec.token,
    )?;
    match fs::read_dir(&spec.data_dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::Usage(format!(
                    "data dir {} is not empty; refusing to overwrite a member",
                    spec.data_dir.display()
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&spec.data_dir, "cannot read data dir", e)),
    }
    if let Some(w) = &spec.wal_dir {
        if w.exists() {
            return Err(Error::Usage(format!(
                "WAL dir {} already exists",
                w.display()
            )));
        }
    }
    Ok(cluster)
}

/// Restores `snapshot` (raw or gzip, a local file) into `spec.data_dir`.
pub fn restore_data_dir(snapshot: &Path, spec: &DataDirSpec) -> Result<DataDirReport> {
    let cluster = validate(spec)?;
    let parent = match spec.data_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(io(&parent, "cannot create the data dir's parent"))?;
    let staging = TempDir::beside(&spec.data_dir, STAGING)?;
    let tmp = staging.path.clone();
    // A separate WAL dir is built beside its own place (a rename cannot cross
    // filesystems), and moved into place only with the data dir.
    let wal_staging = match &spec.wal_dir {
        None => None,
        Some(w) => {
            let wal_parent = match w.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            fs::create_dir_all(wal_parent)
                .map_err(io(wal_parent, "cannot create the WAL dir's parent"))?;
            Some(TempDir::beside(w, STAGING)?)
        }
    };

    let member = tmp.join("member");
    let snap = member.join("snap");
    fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(&snap)
        .map_err(io(&snap, "cannot create"))?;
    let db = snap.join("db");
    let db_bytes = copy_db(snapshot, &db, !spec.skip_hash_check)?;
    rewrite_db(&db, &cluster, spec.bump_revision)?;
    let v2 = v2store::v2_json(&cluster);
    wal::write_new_file(
        &snap.join(wal::snap_name(&cluster)),
        &wal::snap_file(&cluster, v2.as_bytes()),
        0o644,
    )?;
    wal::sync_dir(&snap)?;
    let records = wal::wal_records(&cluster, spec.flavor);
    match &wal_staging {
        None => wal::write_wal_dir(&member.join("wal"), &records)?,
        Some(w) => wal::write_wal_dir(&w.path, &records)?,
    }
    wal::sync_dir(&member)?;
    wal::sync_dir(&tmp)?;
    // The WAL dir first: it did not exist, so taking it back out after a failed
    // second rename leaves things as they were; a data dir moved in first could
    // have replaced an empty one, which could not be put back.
    let wal_placed = match (&wal_staging, &spec.wal_dir) {
        (Some(w), Some(dest)) => {
            place_new_dir(&w.path, dest)?;
            Some((w.path.clone(), dest.clone()))
        }
        _ => None,
    };
    // rename(2) replaces an empty directory, and fails on a non-empty one.
    if let Err(e) = fs::rename(&tmp, &spec.data_dir) {
        if let Some((back, dest)) = &wal_placed {
            // Back to its staging name (removed with it), else removed here.
            if fs::rename(dest, back).is_err() {
                let _ = fs::remove_dir_all(dest);
            }
        }
        return Err(Error::io(
            &spec.data_dir,
            "cannot move the restored member into place",
            e,
        ));
    }
    staging.keep();
    if let (Some(w), Some((_, dest))) = (wal_staging, &wal_placed) {
        w.keep();
        let wal_parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        wal::sync_dir(wal_parent)?;
    }
    wal::sync_dir(&parent)?;
    Ok(DataDirReport {
        data_dir: spec.data_dir.clone(),
        member_id: id_hex(cluster.local.id),
        cluster_id: id_hex(cluster.cluster_id),
        members: cluster.members.len(),
        db_bytes,
    })
}

/// Renames the directory `from` to `to`, which must not exist (an empty directory
/// that appeared there since the checks is not replaced).
fn place_new_dir(from: &Path, to: &Path) -> Result<()> {
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    let fail = |e: std::io::Error| Error::io(to, "cannot move the WAL dir into place", e);
    match renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE) {
        Ok(()) => Ok(()),
        // A filesystem without RENAME_NOREPLACE: checked, then renamed.
        Err(nix::errno::Errno::EINVAL) => {
            if fs::symlink_metadata(to).is_ok() {
                return Err(fail(std::io::ErrorKind::AlreadyExists.into()));
            }
            fs::rename(from, to).map_err(fail)
        }
        Err(e) => Err(fail(e.into())),
    }
}

/// Streams the snapshot into `db` (mode 0600), verifying it; drops the trailer.
fn copy_db(snapshot: &Path, db: &Path, check_trailer: bool) -> Result<u64> {
    let out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(db)
        .map_err(io(db, "cannot create db"))?;
    let sink = NamedSink::new(BufWriter::with_capacity(1 << 20, out), db);
    let (info, out) = crate::formats::snapshot::verify_file(
        snapshot,
        Verifier::with_trailer_check(sink, false, check_trailer),
    )?;
    let file = out
        .into_inner()
        .into_inner()
        .map_err(|e| Error::io(db, "cannot write db", e.into_error()))?;
    let len = if info.has_trailer {
        info.snapshot_bytes - 32
    } else {
        info.snapshot_bytes
    };
    file.set_len(len)
        .map_err(io(db, "cannot trim the hash from db"))?;
    file.sync_all().map_err(io(db, "cannot sync db"))?;
    Ok(len)
}

/// The one bbolt transaction of a restore: new `members`, empty
/// `members_removed`, `meta/consistent_index = N` and `meta/term = 1`; with a
/// revision bump, the bumped revision in `key` and `meta/scheduledCompactRev`.
fn rewrite_db(path: &Path, cluster: &Cluster, bump_revision: Option<u64>) -> Result<()> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io(path, "cannot open db"))?;
    let db = Db::open(&file)?;
    let mut root = db.root_items()?;
    let n = cluster.members.len() as u64;

    let meta = root
        .iter()
        .find(|i| i.bucket && i.key == b"meta")
        .ok_or_else(|| Error::Data("the snapshot has no meta bucket: not an etcd v3 db".into()))?;
    let mut meta_items = db.bucket_items(&meta.value)?;
    put(&mut meta_items, b"consistent_index", &n.to_be_bytes());
    put(&mut meta_items, b"term", &1u64.to_be_bytes());
    let bumped = match bump_revision {
        Some(n) => {
            let key = root
                .iter()
                .find(|i| i.bucket && i.key == b"key")
                .ok_or_else(|| Error::Data("the snapshot has no key bucket".into()))?;
            let b = bump::bump(&db, &key.value, n)?;
            put(
                &mut meta_items,
                b"scheduledCompactRev",
                &bump::rev_bytes(b.revision),
            );
            Some(b)
        }
        None => None,
    };
    let meta_value = bolt::inline_bucket(&meta_items, bolt::bucket_sequence(&meta.value));

    let mut members: Vec<Item> = cluster
        .members
        .iter()
        .map(|m| Item {
            key: id_hex(m.id).into_bytes(),
            value: member_json(m).into_bytes(),
            bucket: false,
        })
        .collect();
    members.sort_by(|a, b| a.key.cmp(&b.key));
    let seq = |name: &[u8]| {
        root.iter()
            .find(|i| i.bucket && i.key == name)
            .map_or(0, |i| bolt::bucket_sequence(&i.value))
    };
    let members_value = bolt::inline_bucket(&members, seq(b"members"));
    let removed_value = bolt::inline_bucket(&[], seq(b"members_removed"));

    set_bucket(&mut root, b"meta", meta_value);
    set_bucket(&mut root, b"members", members_value);
    set_bucket(&mut root, b"members_removed", removed_value);
    match bumped {
        Some(b) => {
            set_bucket(&mut root, b"key", b.key_bucket);
            db.commit(&root, &b.pages, b.next, path)
        }
        None => db.commit_root(&root, path),
    }
}

/// Sets `key` in a sorted item list.
fn put(items: &mut Vec<Item>, key: &[u8], value: &[u8]) {
    match items.binary_search_by(|i| i.key.as_slice().cmp(key)) {
        Ok(at) => items[at].value = value.to_vec(),
        Err(at) => items.insert(
            at,
            Item {
                key: key.to_vec(),
                value: value.to_vec(),
                bucket: false,
            },
        ),
    }
}

fn set_bucket(root: &mut Vec<Item>, name: &[u8], value: Vec<u8>) {
    put(root, name, &value);
    if let Ok(at) = root.binary_search_by(|i| i.key.as_slice().cmp(name)) {
        root[at].bucket = true;
    }
}
