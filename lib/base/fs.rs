//! Writing a file atomically: a temporary file beside the destination, fsynced,
//! renamed into place, the directory fsynced; removed on any failure.
//!
//! Every temporary file or directory this process creates beside a destination is
//! named `.<name>.snapjob-<id>.<suffix>` and held under an advisory lock
//! (`flock(2)`) for as long as it lives. A run that is killed cannot remove its
//! own, but its lock dies with it: a later run removes every such sibling of its
//! own kind whose lock it can take ([`sweep`]). PIDs are not enough to tell a
//! dead run from a live one (a Job's process is often PID 1 in its own PID
//! namespace, on a shared volume); the lock is.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};

use crate::base::error::{Error, Result};

/// `<dir of path>/.<name of path>.snapjob-<pid>.<suffix>`: this process's own name
/// for a file beside `path`, hidden, in the same directory (so a rename is atomic).
pub(crate) fn beside(path: &Path, suffix: &str) -> PathBuf {
    beside_nth(path, suffix, 0)
}

/// [`beside`], with `-<n>` after the PID when `n` is not 0 (the name with the bare
/// PID is another live run's: another PID namespace on the same volume).
fn beside_nth(path: &Path, suffix: &str, n: u32) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let id = match n {
        0 => std::process::id().to_string(),
        n => format!("{}-{n}", std::process::id()),
    };
    parent_of(path).join(format!(".{name}.snapjob-{id}.{suffix}"))
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// What a temporary entry is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
}

/// Creates a new file or directory `[`beside`](dest, suffix)`, locked. Names taken
/// by anyone else (a live run of the same PID elsewhere, a stale entry [`sweep`]
/// has not removed) are skipped.
fn claim(dest: &Path, suffix: &str, kind: Kind) -> Result<(PathBuf, Flock<File>)> {
    for n in 0..1000 {
        let path = beside_nth(dest, suffix, n);
        let created = match kind {
            Kind::File => OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path),
            Kind::Dir => std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&path)
                .and_then(|()| File::open(&path)),
        };
        let file = match created {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                let what = match kind {
                    Kind::File => "cannot create temporary output file",
                    Kind::Dir => "cannot create the restore dir",
                };
                return Err(Error::io(&path, what, e));
            }
        };
        // Between the create and the lock, a sweep of another run may have taken
        // the lock first and removed the entry: then this name is not ours.
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) if same_entry(&lock, &path) => return Ok((path, lock)),
            Ok(_) | Err((_, Errno::EWOULDBLOCK)) => continue,
            Err((_, e)) => return Err(Error::io(&path, "cannot lock", e.into())),
        }
    }
    Err(Error::io(
        beside(dest, suffix),
        "cannot find a free temporary name",
        io::Error::from(io::ErrorKind::AlreadyExists),
    ))
}

/// `file` is what `path` names (neither removed nor replaced since it was opened).
fn same_entry(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Removes the temporary entries beside `dest` that killed runs left:
/// `.<name of dest>.snapjob-<id>.<suffix>` for each of `suffixes`, files or
/// directories, whose lock can be taken (a live run holds the lock on its own).
/// Best effort: what cannot be removed is logged and left. Returns what was removed.
pub(crate) fn sweep(dest: &Path, suffixes: &[&str]) -> Vec<PathBuf> {
    let Some(name) = dest.file_name() else {
        return Vec::new();
    };
    let prefix = format!(".{}.snapjob-", name.to_string_lossy());
    let dir = parent_of(dest);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.filter_map(|e| e.ok()) {
        let entry_name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = entry_name.strip_prefix(&prefix) else {
            continue;
        };
        let Some((id, suffix)) = rest.split_once('.') else {
            continue;
        };
        let id_ok = !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit() || b == b'-');
        if !id_ok || !suffixes.contains(&suffix) {
            continue;
        }
        let path = entry.path();
        match remove_stale(&path) {
            Ok(Some(bytes)) => {
                tracing::warn!(path = %path.display(), bytes, "removed a temporary file a killed run left");
                removed.push(path);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a temporary file a killed run left");
            }
        }
    }
    removed
}

/// Removes `path` (a file, or a directory with all in it) if nobody holds its lock;
/// the bytes it held, or None when it is not ours to remove.
fn remove_stale(path: &Path) -> io::Result<Option<u64>> {
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.is_file() && !meta.is_dir() {
        return Ok(None);
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
        .open(path)?;
    let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((_, Errno::EWOULDBLOCK)) => return Ok(None),
        Err((_, e)) => return Err(e.into()),
    };
    if !same_entry(&lock, path) {
        return Ok(None);
    }
    let meta = lock.metadata()?;
    // Removed while the lock is held: a run creating this name right now finds
    // its lock taken, or the name gone once it has it, and picks another.
    let bytes = if meta.is_dir() {
        let bytes = dir_bytes(path);
        std::fs::remove_dir_all(path)?;
        bytes
    } else {
        std::fs::remove_file(path)?;
        meta.len()
    };
    drop(lock);
    Ok(Some(bytes))
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// A temporary file beside the destination, locked while it lives, removed on
/// drop unless persisted.
pub(crate) struct TempFile {
    pub(crate) path: PathBuf,
    keep: bool,
    /// Released after the file is removed (fields drop after `drop`).
    _lock: Flock<File>,
}

impl TempFile {
    pub(crate) fn create(dest: &Path) -> Result<(TempFile, File)> {
        Self::beside(dest, "tmp")
    }

    /// A new file [`beside`]`(dest, suffix)`, locked; read and write.
    pub(crate) fn beside(dest: &Path, suffix: &str) -> Result<(TempFile, File)> {
        let dir = parent_of(dest);
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(dir, "cannot create output directory", e))?;
        if dest.file_name().is_none() {
            return Err(Error::Usage(format!(
                "output {} is not a file name",
                dest.display()
            )));
        }
        let (path, lock) = claim(dest, suffix, Kind::File)?;
        let file = lock
            .try_clone()
            .map_err(|e| Error::io(&path, "cannot open temporary output file", e))?;
        let temp = TempFile {
            path,
            keep: false,
            _lock: lock,
        };
        Ok((temp, file))
    }

    /// Renames into place and fsyncs the directory so the rename is durable.
    pub(crate) fn persist(mut self, dest: &Path) -> Result<()> {
        std::fs::rename(&self.path, dest)
            .map_err(|e| Error::io(dest, "cannot move the snapshot into place", e))?;
        self.keep = true;
        if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| Error::io(dir, "cannot sync output directory", e))?;
        }
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A temporary directory beside a destination (mode 0700), locked while it lives,
/// removed with everything in it on drop unless kept.
pub(crate) struct TempDir {
    pub(crate) path: PathBuf,
    keep: bool,
    _lock: Flock<File>,
}

impl TempDir {
    /// A new directory [`beside`]`(dest, suffix)`, locked.
    pub(crate) fn beside(dest: &Path, suffix: &str) -> Result<TempDir> {
        let (path, lock) = claim(dest, suffix, Kind::Dir)?;
        Ok(TempDir {
            path,
            keep: false,
            _lock: lock,
        })
    }

    /// It has been renamed into place: nothing to remove any more.
    pub(crate) fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Flushes a buffered file writer and fsyncs the file (`path` names it in errors).
pub(crate) fn flush_sync(w: BufWriter<File>, path: &Path) -> Result<File> {
    let file = w
        .into_inner()
        .map_err(|e| Error::io(path, "cannot write the snapshot", e.into_error()))?;
    file.sync_all()
        .map_err(|e| Error::io(path, "cannot sync the snapshot", e))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_removes_unlocked_siblings_of_its_kind_only() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.db");
        let stale = [
            ".out.db.snapjob-1.download",
            ".out.db.snapjob-77-2.tmp",
            ".out.db.snapjob-1.restore",
        ];
        for n in &stale[..2] {
            std::fs::write(dir.path().join(n), b"left by a killed run").unwrap();
        }
        std::fs::create_dir(dir.path().join(stale[2])).unwrap();
        std::fs::write(dir.path().join(stale[2]).join("db"), b"x").unwrap();
        let others = [
            "out.db",
            ".out.db.snapjob-1.other",
            ".other.db.snapjob-1.tmp",
            ".out.db.snapjob-x.tmp",
        ];
        for n in others {
            std::fs::write(dir.path().join(n), b"not ours").unwrap();
        }
        // A live run's, locked.
        let (live, _file) = TempFile::beside(&dest, "download").unwrap();
        let removed = sweep(&dest, &["download", "tmp", "restore"]);
        assert_eq!(removed.len(), 3, "{removed:?}");
        for n in stale {
            assert!(!dir.path().join(n).exists(), "{n} is removed");
        }
        for n in others {
            assert!(dir.path().join(n).exists(), "{n} is left");
        }
        assert!(live.path.exists(), "the live run's file is left");
    }

    /// Two pods on one volume are both PID 1: another run's entries carry the
    /// very names this process would pick first. Held (locked) by that live run,
    /// they are neither opened nor truncated, replaced or removed: not by
    /// creating, writing, persisting or dropping ours, nor by a sweep.
    #[test]
    fn the_same_pid_elsewhere_keeps_its_entries() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.db");
        let theirs_file = beside(&dest, "tmp");
        std::fs::write(&theirs_file, b"the other pod's download").unwrap();
        let _file_lock = Flock::lock(
            File::open(&theirs_file).unwrap(),
            FlockArg::LockExclusiveNonblock,
        )
        .unwrap();
        let theirs_dir = beside(&dest, "restore");
        std::fs::create_dir(&theirs_dir).unwrap();
        std::fs::write(theirs_dir.join("db"), b"the other pod's member").unwrap();
        let _dir_lock = Flock::lock(
            File::open(&theirs_dir).unwrap(),
            FlockArg::LockExclusiveNonblock,
        )
        .unwrap();

        let (ours, file) = TempFile::create(&dest).unwrap();
        assert_ne!(ours.path, theirs_file);
        std::io::Write::write_all(&mut &file, b"ours").unwrap();
        ours.persist(&dest).unwrap();
        let (ours, _file) = TempFile::create(&dest).unwrap();
        drop(ours);
        let staging = TempDir::beside(&dest, "restore").unwrap();
        assert_ne!(staging.path, theirs_dir);
        drop(staging);
        assert!(sweep(&dest, &["tmp", "restore"]).is_empty());

        assert_eq!(std::fs::read(&dest).unwrap(), b"ours");
        assert_eq!(
            std::fs::read(&theirs_file).unwrap(),
            b"the other pod's download"
        );
        assert_eq!(
            std::fs::read(theirs_dir.join("db")).unwrap(),
            b"the other pod's member"
        );
    }

    #[test]
    fn a_name_held_by_a_live_run_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.db");
        let (a, _fa) = TempFile::create(&dest).unwrap();
        let (b, _fb) = TempFile::create(&dest).unwrap();
        assert_ne!(a.path, b.path);
        assert!(sweep(&dest, &["tmp"]).is_empty());
        let d = TempDir::beside(&dest, "restore").unwrap();
        assert!(d.path.is_dir());
        assert!(sweep(&dest, &["restore"]).is_empty());
        let path = d.path.clone();
        drop(d);
        assert!(!path.exists());
    }
}
