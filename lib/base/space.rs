//! Free space, checked before anything is written: a restore that cannot fit
//! stops at once (74) naming what it needs and what is free, instead of
//! filling the disk half-way.

use std::path::Path;

use crate::base::error::{Error, Result};

/// Bytes an unprivileged writer may still use in the file system holding
/// `path`, or its nearest existing ancestor (a data dir not made yet).
pub fn free_bytes(path: &Path) -> Result<u64> {
    let mut at = path;
    loop {
        match nix::sys::statvfs::statvfs(at) {
            // The field types differ between platforms.
            #[allow(clippy::unnecessary_cast)]
            Ok(s) => {
                return Ok((s.blocks_available() as u64).saturating_mul(s.fragment_size() as u64));
            }
            Err(nix::errno::Errno::ENOENT) => match at.parent() {
                Some(p) if !p.as_os_str().is_empty() => at = p,
                _ => at = Path::new("."),
            },
            Err(e) => {
                return Err(Error::io(
                    path,
                    "cannot read the free space of its file system",
                    e.into(),
                ));
            }
        }
    }
}

/// The error when `need` bytes do not fit in `free`, else `None`.
pub fn shortfall(path: &Path, what: &str, need: u64, free: u64) -> Option<Error> {
    (need > free).then(|| {
        Error::io(
            path,
            format!(
                "not enough free space for {what}: {} needed, {} free",
                size(need),
                size(free)
            ),
            std::io::Error::from(std::io::ErrorKind::StorageFull),
        )
    })
}

/// Checks that each `(path, what, bytes)` fits in its file system; needs of
/// paths on the same file system are added up. 74 naming the need and the free
/// space when one does not.
pub fn ensure_room(needs: &[(&Path, &str, u64)]) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mut by_fs: Vec<(u64, &Path, String, u64)> = Vec::new();
    for (path, what, bytes) in needs {
        let dev = existing(path)
            .and_then(|p| std::fs::metadata(p).ok())
            .map_or(0, |m| m.dev());
        match by_fs.iter_mut().find(|(d, ..)| *d == dev) {
            Some(entry) => {
                entry.2 = format!("{} and {what}", entry.2);
                entry.3 += bytes;
            }
            None => by_fs.push((dev, path, what.to_string(), *bytes)),
        }
    }
    for (_, path, what, need) in by_fs {
        if let Some(e) = shortfall(path, &what, need, free_bytes(path)?) {
            return Err(e);
        }
    }
    Ok(())
}

/// `path` or its nearest existing ancestor.
fn existing(path: &Path) -> Option<&Path> {
    path.ancestors()
        .find(|p| !p.as_os_str().is_empty() && p.exists())
        .or(Some(Path::new(".")))
}

/// Bytes as people read them (MiB with one decimal, and the exact count).
fn size(n: u64) -> String {
    format!("{:.1} MiB ({n} bytes)", n as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shortfall_names_the_need_and_the_free_space() {
        let p = Path::new("/var/lib/etcd");
        assert!(shortfall(p, "the db", 10, 10).is_none());
        let e = shortfall(p, "the db", 3 << 20, 1 << 20).unwrap();
        assert_eq!(e.exit_code(), 74);
        let text = e.to_string();
        assert!(text.contains("/var/lib/etcd"), "{text}");
        assert!(text.contains("3.0 MiB (3145728 bytes) needed"), "{text}");
        assert!(text.contains("1.0 MiB (1048576 bytes) free"), "{text}");
    }

    #[test]
    fn free_space_is_read_for_paths_not_made_yet() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_bytes(&dir.path().join("a/b/c")).unwrap();
        assert!(free > 0);
        ensure_room(&[(&dir.path().join("x"), "a byte", 1)]).unwrap();
        let e = ensure_room(&[(&dir.path().join("x"), "everything", u64::MAX)]).unwrap_err();
        assert_eq!(e.exit_code(), 74);
    }
}
