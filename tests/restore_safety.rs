//! `restore` cleaning up after runs that were killed, and failing safely: stale
//! temporary files removed (never a live run's), a full disk named (74), an object
//! replaced mid-download (75), a non-snapshot refused at its first page (65), and
//! `--wal-dir` rolled back with the data dir.

mod common;

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use common::*;
use nix::fcntl::{Flock, FlockArg};

fn restore_env(server: &S3Server, backup: &str, out: &Path) -> Vec<(String, String)> {
    with(
        &server.job_env(),
        &[
            ("BACKUP_TO_RESTORE", backup),
            ("OUTPUT_FILE", out.to_str().unwrap()),
        ],
    )
}

/// What a killed run leaves: a file of `len` bytes, nobody holding its lock.
fn stale_file(dir: &Path, name: &str, len: usize) -> PathBuf {
    write_file(dir, name, &vec![7u8; len])
}

/// A live run's temporary file: created and locked, as long as the lock lives.
fn live_file(dir: &Path, name: &str) -> (PathBuf, Flock<File>) {
    let path = write_file(dir, name, b"a live run's bytes");
    let lock = Flock::lock(File::open(&path).unwrap(), FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .unwrap();
    (path, lock)
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_restore_removes_what_killed_runs_left_beside_the_output_but_not_a_live_runs() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    server.s3cmd_put(
        &fixture("etcd-3.4-small.db.gz"),
        &format!("{CLUSTER}-small.db.gz"),
    );
    let out = dir.path().join("out.db");
    // PID 1 each time: a Job's process in its own PID namespace.
    let stale = [
        stale_file(dir.path(), ".out.db.snapjob-1.download", 1 << 20),
        stale_file(dir.path(), ".out.db.snapjob-1.tmp", 4 << 20),
        stale_file(dir.path(), ".out.db.snapjob-1-2.tmp", 10),
    ];
    let (live, _held) = live_file(dir.path(), ".out.db.snapjob-1-1.download");
    let unrelated = stale_file(dir.path(), ".other.db.snapjob-1.tmp", 10);

    run("restore", &restore_env(&server, "small.db.gz", &out), &[]).assert_code(0);
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(fixture("etcd-3.4-small.db")).unwrap()
    );
    for p in &stale {
        assert!(!p.exists(), "{} is removed", p.display());
    }
    assert_eq!(std::fs::read(&live).unwrap(), b"a live run's bytes");
    assert!(unrelated.exists(), "another output's file is not ours");
    assert_eq!(
        names_in(dir.path()),
        [
            ".other.db.snapjob-1.tmp",
            ".out.db.snapjob-1-1.download",
            "out.db"
        ]
    );
}

fn restore_member(snapshot: &Path, data_dir: &Path, extra: &[&str]) -> Run {
    let mut args = from_snapshot(snapshot, member_flags(data_dir, UNUSED_PEER, "t"));
    args.extend(extra.iter().map(|s| s.to_string()));
    run("restore", &[], &strs(&args))
}

#[test]
fn a_data_dir_restore_removes_stale_staging_dirs_but_not_a_live_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let wal = dir.path().join("wal");
    let stale_dirs = [".data.snapjob-1.restore", ".wal.snapjob-1.restore"];
    for d in stale_dirs {
        let member = dir.path().join(d).join("member/snap");
        std::fs::create_dir_all(&member).unwrap();
        std::fs::write(member.join("db"), vec![0u8; 1 << 20]).unwrap();
    }
    let stale = stale_file(dir.path(), ".data.snapjob-1.download", 1 << 20);
    let live_dir = dir.path().join(".data.snapjob-1-1.restore");
    std::fs::create_dir(&live_dir).unwrap();
    let _held = Flock::lock(
        File::open(&live_dir).unwrap(),
        FlockArg::LockExclusiveNonblock,
    )
    .map_err(|(_, e)| e)
    .unwrap();

    let snapshot = fixture("etcd-3.4-small.db");
    let r = restore_member(&snapshot, &data, &["--wal-dir", wal.to_str().unwrap()]);
    r.assert_code(0);
    for d in stale_dirs {
        assert!(!dir.path().join(d).exists(), "{d} is removed");
    }
    assert!(!stale.exists());
    assert!(live_dir.is_dir(), "the live run's staging dir is left");
    assert_eq!(
        names_in(dir.path()),
        [".data.snapjob-1-1.restore", "data", "wal"]
    );
}

#[test]
fn a_failure_after_the_copy_leaves_neither_the_data_dir_nor_the_wal_dir() {
    let dir = tempfile::tempdir().unwrap();
    // The data dir passes the checks (an empty directory, through a symlink), but
    // the member cannot be renamed over it (ENOTDIR): a failure after everything
    // was written, WAL included.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let data = dir.path().join("data");
    std::os::unix::fs::symlink(&empty, &data).unwrap();
    let wal = dir.path().join("wal");

    let snapshot = fixture("etcd-3.4-small.db");
    let r = restore_member(&snapshot, &data, &["--wal-dir", wal.to_str().unwrap()]);
    r.assert_code(74);
    assert_eq!(r.error_lines().len(), 1, "{}", r.stderr);
    assert!(
        r.error_lines()[0].contains(data.to_str().unwrap()),
        "{}",
        r.stderr
    );
    assert!(!wal.exists(), "the WAL dir is not left behind");
    assert_eq!(names_in(dir.path()), ["data", "empty"]);
    assert!(std::fs::symlink_metadata(&data).unwrap().is_symlink());
    assert!(names_in(&empty).is_empty());
}

/// A 2 MiB tmpfs, unmounted on drop. Needs root (the test sandbox is); set
/// SNAPJOB_SKIP_MOUNT_TESTS=1 where it is not.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> Option<SmallDisk> {
        if std::env::var_os("SNAPJOB_SKIP_MOUNT_TESTS").is_some() {
            eprintln!("skipped: SNAPJOB_SKIP_MOUNT_TESTS is set");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount a 2 MiB tmpfs (needs root; SNAPJOB_SKIP_MOUNT_TESTS=1 skips this): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// A valid snapshot that inflates to 8 MiB from a few KiB of gzip.
fn compressible_snapshot() -> Vec<u8> {
    let mut db = vec![0u8; 2048 * 4096];
    db[16..20].copy_from_slice(&0xED0C_DAEDu32.to_le_bytes());
    let sum = snapjob::base::digest::Sha256::digest(&db);
    db.extend_from_slice(&sum);
    db
}

/// The run failed with 74 on one line naming a file on `disk`, said it cannot
/// write, and left nothing on the disk but `left`.
fn assert_disk_full_named(r: &Run, disk: &Path, left: &[&str]) {
    r.assert_code(74);
    let lines = r.error_lines();
    assert_eq!(lines.len(), 1, "{}", r.stderr);
    assert!(
        lines[0].contains(&format!("{}/", disk.display())) && lines[0].contains("cannot write"),
        "the error names the file: {}",
        lines[0]
    );
    assert!(lines[0].contains("No space left on device"), "{}", lines[0]);
    assert_eq!(names_in(disk), left);
}

#[test]
fn a_full_disk_while_inflating_exits_74_naming_the_file() {
    let Some(disk) = SmallDisk::mount() else {
        return;
    };
    let server = S3Server::start();
    let src = tempfile::tempdir().unwrap();
    let gz = write_file(src.path(), "small.db.gz", &gzip(&compressible_snapshot()));
    server.s3cmd_put(&gz, &format!("{CLUSTER}-full.db.gz"));
    let out = disk.path().join("out.db");
    std::fs::write(&out, b"previous contents").unwrap();

    // The download half: the object lands, its inflate does not fit.
    let r = run("restore", &restore_env(&server, "full.db.gz", &out), &[]);
    assert_disk_full_named(&r, disk.path(), &["out.db"]);
    assert_eq!(std::fs::read(&out).unwrap(), b"previous contents");

    // A local gzip file.
    let r = run(
        "restore",
        &[],
        &[
            "--snapshot",
            gz.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ],
    );
    assert_disk_full_named(&r, disk.path(), &["out.db"]);
    assert_eq!(std::fs::read(&out).unwrap(), b"previous contents");

    // A member data dir: its 64 MB WAL cannot fit, which the pre-flight says
    // before anything is written.
    std::fs::remove_file(&out).unwrap();
    let r = restore_member(&gz, &disk.path().join("data"), &[]);
    r.assert_code(74);
    assert!(
        r.all()
            .contains("not enough free space for the member's db and the member's WAL"),
        "{}",
        r.all()
    );
    assert!(names_in(disk.path()).is_empty());
    // With the WAL elsewhere the db passes the pre-flight (the gzip's size is all
    // that is known before it inflates) and the full disk is met while inflating.
    let wal = src.path().join("wal");
    let r = restore_member(
        &gz,
        &disk.path().join("data"),
        &["--wal-dir", wal.to_str().unwrap()],
    );
    assert_disk_full_named(&r, disk.path(), &[]);
    assert!(!wal.exists());
}

/// Bytes that are not a snapshot: no bbolt magic on the first page.
fn not_a_snapshot(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 253) as u8 | 1).collect()
}

#[test]
fn a_local_file_that_is_not_bbolt_is_refused_at_its_first_page() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("snapshot.db");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // 1 GiB offered through a pipe: how much restore takes before refusing.
    const OFFERED: usize = 1 << 30;
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            let block = not_a_snapshot(1 << 20);
            let mut written = 0;
            while written < OFFERED {
                match f.write_all(&block) {
                    Ok(()) => written += block.len(),
                    Err(_) => break, // restore closed the pipe
                }
            }
            written
        })
    };
    let out = dir.path().join("out.db");
    // A restore that opened the pipe twice would wait for a second writer
    // forever: output_within ends it and fails the test.
    let done = output_within(
        &mut command(
            "restore",
            &[],
            &[
                "--snapshot",
                fifo.to_str().unwrap(),
                "--output",
                out.to_str().unwrap(),
            ],
        ),
        "restore from a pipe",
    );
    // Had restore not opened the pipe, this lets the writer go on (and fail).
    let _ = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(&fifo);
    let written = writer.join().unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(65), "{stderr}");
    assert!(
        stderr.contains("the snapshot is not an etcd (bbolt) database"),
        "{stderr}"
    );
    assert!(
        written < 64 << 20,
        "restore read {written} of {OFFERED} bytes before refusing"
    );
    assert!(!out.exists());
}

#[test]
fn an_object_that_is_not_bbolt_is_refused_before_most_of_it_is_fetched() {
    use object_store::{ObjectStore, PutOptions, path::Path as ObjectPath};
    use snapjob::{Inputs, Remote, transport::remote::ClientTuning};
    let server = S3Server::start();
    // 20 ranges of 8 MiB; eight are fetched at once.
    const RANGES: usize = 20;
    let key = format!("{CLUSTER}-not-bbolt.db");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = Remote::from_inputs(&Inputs::from_env_vars(server.job_env()))
            .unwrap()
            .open(&ClientTuning::for_deadline(std::time::Duration::from_secs(
                60,
            )))
            .await
            .unwrap();
        client
            .put_opts(
                &ObjectPath::parse(&key).unwrap(),
                not_a_snapshot(RANGES * (8 << 20)).into(),
                PutOptions::default(),
            )
            .await
            .unwrap();
    });
    drop(runtime);
    let proxy = proxy::Proxy::start(server.port, vec![]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.db");
    let env = with(
        &restore_env(&server, "not-bbolt.db", &out),
        &[("ENDPOINT", &format!("http://127.0.0.1:{}", proxy.port))],
    );
    let r = run("restore", &env, &[]);
    r.assert_code(65);
    assert!(
        r.stderr
            .contains("the snapshot is not an etcd (bbolt) database"),
        "{}",
        r.stderr
    );
    let gets = proxy.count(proxy::Op::Get);
    assert!(
        gets < RANGES - 4,
        "{gets} of {RANGES} ranges fetched before the refusal"
    );
    assert_eq!(names_in(dir.path()), Vec::<String>::new());
}

/// A proxy that holds every ranged GET until [`Gate::open`]; each connection
/// carries one request (`Connection: close` is forced).
struct Gate {
    port: u16,
    state: std::sync::Arc<(std::sync::Mutex<(bool, usize)>, std::sync::Condvar)>,
}

impl Gate {
    fn start(upstream: u16) -> Gate {
        use std::io::{Read, Write};
        use std::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state =
            std::sync::Arc::new((std::sync::Mutex::new((false, 0)), std::sync::Condvar::new()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { return };
                let state = shared.clone();
                std::thread::spawn(move || {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if client.read(&mut byte).unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let text = String::from_utf8_lossy(&head).into_owned();
                    let ranged = text
                        .lines()
                        .any(|l| l.to_ascii_lowercase().starts_with("range:"));
                    if ranged {
                        let (lock, cv) = &*state;
                        let mut s = lock.lock().unwrap();
                        s.1 += 1;
                        cv.notify_all();
                        while !s.0 {
                            s = cv.wait(s).unwrap();
                        }
                    }
                    let mut lines: Vec<&str> = text
                        .trim_end()
                        .split("\r\n")
                        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
                        .collect();
                    lines.push("Connection: close");
                    let head = format!("{}\r\n\r\n", lines.join("\r\n"));
                    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
                        return;
                    };
                    if up.write_all(head.as_bytes()).is_err() {
                        return;
                    }
                    let (mut c2, mut u2) = (client.try_clone().unwrap(), up.try_clone().unwrap());
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut c2, &mut u2);
                    });
                    let _ = std::io::copy(&mut up, &mut client);
                    let _ = client.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        Gate { port, state }
    }

    /// Waits until a ranged GET is being held.
    fn wait_held(&self) {
        let (lock, cv) = &*self.state;
        let mut s = lock.lock().unwrap();
        while s.1 == 0 {
            s = cv.wait(s).unwrap();
        }
    }

    fn open(&self) {
        let (lock, cv) = &*self.state;
        lock.lock().unwrap().0 = true;
        cv.notify_all();
    }
}

fn put_object(server: &S3Server, key: &str, body: Vec<u8>) {
    use object_store::{ObjectStore, PutOptions, path::Path as ObjectPath};
    use snapjob::{Inputs, Remote, transport::remote::ClientTuning};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = Remote::from_inputs(&Inputs::from_env_vars(server.job_env()))
            .unwrap()
            .open(&ClientTuning::for_deadline(std::time::Duration::from_secs(
                60,
            )))
            .await
            .unwrap();
        client
            .put_opts(
                &ObjectPath::parse(key).unwrap(),
                body.into(),
                PutOptions::default(),
            )
            .await
            .unwrap();
    });
}

#[test]
fn an_object_replaced_during_the_download_is_a_temporary_failure_naming_it() {
    for (case, replacement) in [
        ("same size", synthetic_snapshot(3000, 2)),
        ("shorter", synthetic_snapshot(1000, 3)),
    ] {
        let server = S3Server::start();
        let key = format!("{CLUSTER}-moving.db");
        put_object(&server, &key, synthetic_snapshot(3000, 1));
        let gate = Gate::start(server.port);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.db");
        let env = with(
            &restore_env(&server, "moving.db", &out),
            &[("ENDPOINT", &format!("http://127.0.0.1:{}", gate.port))],
        );
        let child = command("restore", &env, &[])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The first GET has answered (the ranged ones follow it): replace the
        // object, then let the ranged GETs through.
        gate.wait_held();
        put_object(&server, &key, replacement);
        gate.open();
        let done = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&done.stderr);
        assert_eq!(done.status.code(), Some(75), "{case}: {stderr}");
        let want = format!(
            "\"message\":\"s3://{BUCKET}/{key}: changed during the download (its ETag moved); try again: "
        );
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("\"level\":\"ERROR\""))
            .collect();
        assert_eq!(errors.len(), 1, "{case}: {stderr}");
        eprintln!("{case}: {}", errors[0]);
        assert!(errors[0].contains(&want), "{case}: {stderr}");
        assert_eq!(names_in(dir.path()), Vec::<String>::new(), "{case}");
    }
}

#[test]
fn a_restore_killed_mid_download_leaves_files_the_next_run_removes() {
    let server = S3Server::start();
    let key = format!("{CLUSTER}-big.db");
    let db = synthetic_snapshot(3000, 4);
    put_object(&server, &key, db.clone());
    let gate = Gate::start(server.port);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.db");
    let through_gate = with(
        &restore_env(&server, "big.db", &out),
        &[("ENDPOINT", &format!("http://127.0.0.1:{}", gate.port))],
    );
    let mut child = command("restore", &through_gate, &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Mid-download: the first range is landing, the others are held.
    gate.wait_held();
    let landing = || {
        names_in(dir.path())
            .into_iter()
            .find(|n| n.starts_with(".out.db.snapjob-") && n.ends_with(".download"))
    };
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while landing().is_none() {
        assert!(
            std::time::Instant::now() < until,
            "no download file appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let left = landing().expect("a killed run leaves its download");

    run("restore", &restore_env(&server, "big.db", &out), &[]).assert_code(0);
    assert_eq!(std::fs::read(&out).unwrap(), db);
    assert_eq!(names_in(dir.path()), ["out.db"], "{left} is removed");
    gate.open();
}

#[test]
fn a_data_dir_restored_from_an_object_leaves_nothing_beside_it() {
    let server = S3Server::start();
    server.s3cmd_put(
        &fixture("etcd-3.4-small.db.gz"),
        &format!("{CLUSTER}-small.db.gz"),
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let wal = dir.path().join("wal");
    let env = with(&server.job_env(), &[("BACKUP_TO_RESTORE", "small.db.gz")]);
    let mut args = member_flags(&data, UNUSED_PEER, "t");
    args.extend(["--wal-dir".to_string(), wal.to_str().unwrap().to_string()]);
    run("restore", &env, &strs(&args)).assert_code(0);
    assert_eq!(names_in(dir.path()), ["data", "wal"]);
    assert_eq!(names_in(&data), ["member"]);
    assert_eq!(names_in(&data.join("member")), ["snap"]);
    assert_eq!(names_in(&wal), ["0000000000000000-0000000000000000.wal"]);
}
