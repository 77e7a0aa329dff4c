//! Writing a file atomically: a temporary file beside the destination, fsynced,
//! renamed into place, the directory fsynced; removed on any failure.

use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// `<dir of path>/.<name of path>.snapjob-<pid>.<suffix>`: this process's own name
/// for a file beside `path`, hidden, in the same directory (so a rename is atomic).
pub(crate) fn beside(path: &Path, suffix: &str) -> PathBuf {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    dir.join(format!(".{name}.snapjob-{}.{suffix}", std::process::id()))
}

/// A temporary file beside the destination, removed on drop unless persisted.
pub(crate) struct TempFile {
    pub(crate) path: PathBuf,
    keep: bool,
}

impl TempFile {
    pub(crate) fn create(dest: &Path) -> Result<(TempFile, File)> {
        Self::beside(dest, "tmp")
    }

    /// [`beside`]`(dest, suffix)`, created or truncated; read and write.
    pub(crate) fn beside(dest: &Path, suffix: &str) -> Result<(TempFile, File)> {
        let path = beside(dest, suffix);
        let dir = path.parent().expect("beside() joins a name to a directory");
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(dir, "cannot create output directory", e))?;
        if dest.file_name().is_none() {
            return Err(Error::Usage(format!(
                "output {} is not a file name",
                dest.display()
            )));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| Error::io(&path, "cannot create temporary output file", e))?;
        Ok((TempFile { path, keep: false }, file))
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

/// Flushes a buffered file writer and fsyncs the file (`path` names it in errors).
pub(crate) fn flush_sync(w: BufWriter<File>, path: &Path) -> Result<File> {
    let file = w
        .into_inner()
        .map_err(|e| Error::io(path, "cannot write the snapshot", e.into_error()))?;
    file.sync_all()
        .map_err(|e| Error::io(path, "cannot sync the snapshot", e))?;
    Ok(file)
}
