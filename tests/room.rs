//! Pre-flight free space: a restore that cannot fit stops before it writes
//! anything (74), naming what it needs and what is free. Proven on real small
//! file systems (tmpfs mounts; the test needs root to mount them).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A tmpfs of `size` mounted on a fresh directory; unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        match (ok, root) {
            (true, _) => Some(Tmpfs { dir }),
            (false, true) => panic!("cannot mount a tmpfs as root"),
            (false, false) => {
                eprintln!("SKIPPED: mounting a tmpfs needs root");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn entries(&self) -> Vec<String> {
        std::fs::read_dir(self.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn assert_no_room(r: &Run, path: &Path, what: &str) {
    r.assert_code(74);
    let e = r.error_lines().join("\n");
    assert!(e.contains(&path.display().to_string()), "{e}");
    assert!(
        e.contains(&format!("not enough free space for {what}")),
        "{e}"
    );
    assert!(e.contains("needed") && e.contains("free"), "{e}");
}

#[test]
fn a_restore_that_cannot_fit_stops_before_writing() {
    let Some(small) = Tmpfs::mount("1m") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // 2 MiB of snapshot into 1 MiB, as an object.
    let big = write_file(dir.path(), "big.db", &synthetic_snapshot(512, 7));
    let out = small.path().join("out.db");
    let server = S3Server::start();
    let env = with(
        &server.job_env(),
        &[
            ("BACKUP_TO_CREATE", "big.db"),
            ("SNAPSHOT_FILE", big.to_str().unwrap()),
        ],
    );
    run("store", &env, &[]).assert_code(0);
    let env = with(&server.job_env(), &[("BACKUP_TO_RESTORE", "big.db")]);
    let r = run("restore", &env, &["--output", out.to_str().unwrap()]);
    assert_no_room(&r, &out, "the downloaded backup");
    assert!(small.entries().is_empty(), "{:?}", small.entries());
    // The same snapshot as a local file.
    let r = run(
        "restore",
        &[],
        &[
            "--snapshot",
            big.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ],
    );
    assert_no_room(&r, &out, "the restored snapshot");
    assert!(small.entries().is_empty(), "{:?}", small.entries());

    // The db fits in 4 MiB, its 64 MB WAL file does not.
    let Some(four) = Tmpfs::mount("4m") else {
        return;
    };
    let data: PathBuf = four.path().join("data");
    let args = from_snapshot(
        &fixture("etcd-3.4-small.db"),
        member_flags(&data, UNUSED_PEER, "t"),
    );
    let r = run("restore", &[], &strs(&args));
    assert_no_room(&r, &data, "the member's db and the member's WAL");
    assert!(four.entries().is_empty(), "{:?}", four.entries());
}
