//! One scenario every backend runs (issues 15 and 16: s3s-fs, garage, moto,
//! file://, Azurite, fake-gcs-server): store one-shot and multipart, a
//! corrupt snapshot leaves nothing, a SIGTERM mid-upload leaves nothing (S3
//! servers, whose parts the fault proxy can stall), restore identical, `list`,
//! delete of a missing backup is 0, retention with `delete --keep` (refused
//! where the store keeps no metadata), delete by name. The README's server
//! table is this scenario's result.
//! Adding a backend means adding one constructor and one `#[test]` line below.
//! Backend-specific promises (signals, peers, kops) live in each backend's file.

mod common;

use common::azurite::Azurite;
use common::*;

/// A store under test: the Job's environment for it, and a listing of what it holds.
struct Backend {
    name: &'static str,
    /// Location and credentials; the location's prefix is `conf`.
    env: Vec<(String, String)>,
    /// Whether the store keeps object metadata (retention needs it).
    keeps_metadata: bool,
    /// Every object name under the location's root, `conf/...` for ours; fails
    /// the test if an incomplete upload is left where the server can tell.
    names: Box<dyn Fn() -> Vec<String>>,
    /// An S3 server's port, for the fault proxy (the SIGTERM step).
    s3_port: Option<u16>,
    /// Whether the server implements AbortMultipartUpload.
    aborts: bool,
}

fn s3s_fs() -> Backend {
    let server = std::rc::Rc::new(S3Server::start());
    let env = with(
        &without(&server.job_env(), &["BUCKET_NAME"]),
        &[("STORAGE_URL", &format!("s3://{BUCKET}/conf"))],
    );
    Backend {
        name: "s3s-fs",
        env,
        keeps_metadata: true,
        s3_port: Some(server.port),
        aborts: true,
        names: Box::new(move || {
            assert_eq!(
                server.leftover_uploads(),
                Vec::<String>::new(),
                "s3s-fs: an upload was left"
            );
            s3cmd_keys(server.s3cmd(&["ls", "-r", &format!("s3://{BUCKET}/")]))
        }),
    }
}

/// s3cmd's `ls -r` of the bucket: the keys, sorted.
fn s3cmd_keys(out: std::process::Output) -> Vec<String> {
    assert!(
        out.status.success(),
        "s3cmd ls: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let prefix = format!("s3://{BUCKET}/");
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().last()?.strip_prefix(&prefix))
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

fn garage() -> Backend {
    let g = std::rc::Rc::new(common::garage::Garage::start());
    let env = with(
        &without(&g.job_env(), &["BUCKET_NAME"]),
        &[("STORAGE_URL", &format!("s3://{BUCKET}/conf"))],
    );
    Backend {
        name: "garage",
        env,
        keeps_metadata: true,
        s3_port: Some(g.port),
        aborts: true,
        names: Box::new(move || {
            assert_eq!(
                g.uploads(),
                Vec::<String>::new(),
                "garage: an upload was left"
            );
            s3cmd_keys(g.s3cmd(&["ls", "-r", &format!("s3://{BUCKET}/")]))
        }),
    }
}

fn moto() -> Backend {
    let m = std::rc::Rc::new(common::moto::Moto::start());
    let env = with(
        &without(&m.job_env(), &["BUCKET_NAME"]),
        &[("STORAGE_URL", &format!("s3://{BUCKET}/conf"))],
    );
    Backend {
        name: "moto",
        env,
        keeps_metadata: true,
        s3_port: Some(m.port),
        aborts: true,
        names: Box::new(move || {
            assert_eq!(m.uploads(), Vec::new(), "moto: an upload was left");
            m.keys()
        }),
    }
}

/// s3rver has no AbortMultipartUpload (405): the uploads of a failed or
/// stopped store stay on its disk, and the store says so.
fn s3rver() -> (Backend, std::rc::Rc<common::s3rver::S3rver>) {
    let s = std::rc::Rc::new(common::s3rver::S3rver::start());
    let env = with(
        &without(&s.job_env(), &["BUCKET_NAME"]),
        &[("STORAGE_URL", &format!("s3://{BUCKET}/conf"))],
    );
    let server = s.clone();
    let backend = Backend {
        name: "s3rver",
        env,
        keeps_metadata: true,
        s3_port: Some(s.port),
        aborts: false,
        names: Box::new(move || {
            s3cmd_keys(server.s3cmd(&["ls", "-r", &format!("s3://{BUCKET}/")]))
        }),
    };
    (backend, s)
}

fn local() -> Backend {
    let dir = std::rc::Rc::new(tempfile::tempdir().unwrap());
    let env = vec![
        (
            "STORAGE_URL".to_string(),
            format!("file://{}/conf", dir.path().display()),
        ),
        ("CLUSTER".to_string(), CLUSTER.to_string()),
    ];
    Backend {
        name: "file://",
        env,
        keeps_metadata: false,
        s3_port: None,
        aborts: true,
        names: Box::new(move || {
            let mut v = Vec::new();
            let root = dir.path();
            let mut stack = vec![root.to_path_buf()];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).unwrap() {
                    let p = e.unwrap().path();
                    if p.is_dir() {
                        stack.push(p);
                    } else {
                        v.push(p.strip_prefix(root).unwrap().display().to_string());
                    }
                }
            }
            v.sort();
            v
        }),
    }
}

fn azurite() -> Backend {
    let az = std::rc::Rc::new(Azurite::start());
    Backend {
        name: "azurite",
        env: az.env("conf"),
        keeps_metadata: true,
        s3_port: None,
        aborts: true,
        names: Box::new(move || az.names()),
    }
}

fn fake_gcs() -> Backend {
    let gcs = std::rc::Rc::new(common::gcs::FakeGcs::start());
    Backend {
        name: "fake-gcs-server",
        env: gcs.job_env("conf"),
        keeps_metadata: true,
        s3_port: None,
        aborts: true,
        names: Box::new(move || gcs.keys("")),
    }
}

fn scenario(b: &Backend) {
    let name = b.name;
    let dir = tempfile::tempdir().unwrap();
    let k = |backup: &str| format!("conf/{CLUSTER}-{backup}");
    let small = fixture("etcd-3.4-small.db.gz");
    let small = small.to_str().unwrap();
    let small_raw = std::fs::read(fixture("etcd-3.4-small.db")).unwrap();

    // One-shot.
    run("store", &b.env, &["--backup", "one.db.gz", "--file", small]).assert_code(0);
    assert_eq!((b.names)(), vec![k("one.db.gz")], "{name}");

    // Multipart: three 5 MiB parts.
    let raw = synthetic_snapshot(3000, 9);
    let big = write_file(dir.path(), "big.db.gz", &gzip(&raw));
    let env = with(&b.env, &[("PART_SIZE", "5MiB"), ("SINGLE_PUT_MAX", "0")]);
    run(
        "store",
        &env,
        &["--backup", "big.db.gz", "--file", big.to_str().unwrap()],
    )
    .assert_code(0);
    let out = dir.path().join("big.out");
    run(
        "restore",
        &b.env,
        &["--backup", "big.db.gz", "--output", out.to_str().unwrap()],
    )
    .assert_code(0);
    assert!(
        std::fs::read(&out).unwrap() == raw,
        "{name}: multipart restore"
    );

    // A corrupt snapshot leaves nothing.
    let before = (b.names)();
    let bad = fixture("broken-trailer.db.gz");
    run(
        "store",
        &env,
        &["--backup", "bad.db.gz", "--file", bad.to_str().unwrap()],
    )
    .assert_code(65);
    assert_eq!(
        (b.names)(),
        before,
        "{name}: a corrupt snapshot left something"
    );

    // SIGTERM while a part hangs: exit 143, the upload aborted, nothing new.
    if let Some(port) = b.s3_port {
        use common::proxy::{Fault, Op, Proxy, Rule};
        let proxy = Proxy::start(port, vec![Rule::once(Op::UploadPart, 2, Fault::Stall)]);
        // One part at a time: when the second stalls, the first was answered and
        // no other is on its way (a part cut mid-body may still land on some
        // servers after the abort, as S3 documents; s3s-fs keeps it as a file).
        let env = with(
            &env,
            &[
                ("ENDPOINT", &format!("http://127.0.0.1:{}", proxy.port)),
                ("CONCURRENCY", "1"),
            ],
        );
        let mut child = command(
            "store",
            &env,
            &["--backup", "term.db.gz", "--file", big.to_str().unwrap()],
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while proxy.count(Op::UploadPart) < 2 {
            assert!(std::time::Instant::now() < until, "{name}: no part stalled");
            assert!(child.try_wait().unwrap().is_none(), "{name}: store ended");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        signal(&child, Signal::SIGTERM);
        let out = wait_within(child, "store");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(143), "{name}: {stderr}");
        assert_eq!(proxy.count(Op::Abort), 1, "{name}: {stderr}");
        if !b.aborts {
            assert!(stderr.contains("could not be aborted"), "{name}: {stderr}");
        }
        assert_eq!((b.names)(), before, "{name}: SIGTERM left something");
    }

    // list: the backups, newest first, in JSON lines.
    let listed = run("list", &b.env, &["--json"]);
    listed.assert_code(0);
    for backup in ["one.db.gz", "big.db.gz"] {
        assert!(
            listed.stdout.contains(&format!("{CLUSTER}-{backup}")),
            "{name}: list\n{}",
            listed.all()
        );
    }

    // Restore identical.
    let out = dir.path().join("one.out");
    run(
        "restore",
        &b.env,
        &["--backup", "one.db.gz", "--output", out.to_str().unwrap()],
    )
    .assert_code(0);
    assert_eq!(std::fs::read(&out).unwrap(), small_raw, "{name}");

    // Delete of a missing backup is success, and changes nothing.
    run("delete", &b.env, &["--backup", "nope.db.gz"]).assert_code(0);
    assert_eq!((b.names)(), before, "{name}");

    // Retention: the newest one of this cluster's backups is kept.
    if b.keeps_metadata {
        run("delete", &b.env, &["--keep", "1"]).assert_code(0);
        assert_eq!((b.names)().len(), 1, "{name}: {:?}", (b.names)());
    } else {
        run("delete", &b.env, &["--keep", "1"]).assert_code(78);
        assert_eq!((b.names)(), before, "{name}");
    }

    // Delete by name.
    for n in (b.names)() {
        let backup = n.strip_prefix(&format!("conf/{CLUSTER}-")).unwrap();
        run("delete", &b.env, &["--backup", backup]).assert_code(0);
    }
    assert_eq!((b.names)(), Vec::<String>::new(), "{name}");
}

#[test]
fn s3s_fs_conforms() {
    scenario(&s3s_fs());
}

#[test]
fn garage_conforms() {
    scenario(&garage());
}

#[test]
fn moto_conforms() {
    scenario(&moto());
}

#[test]
fn s3rver_conforms() {
    let (backend, server) = s3rver();
    scenario(&backend);
    // The two uploads that could not be aborted (the corrupt snapshot's and
    // the SIGTERM's) are all that is left: completed ones are gone.
    assert_eq!(server.uploads().len(), 2, "{:?}", server.uploads());
}

#[test]
fn file_conforms() {
    scenario(&local());
}

#[test]
fn azurite_conforms() {
    scenario(&azurite());
}

#[test]
fn fake_gcs_server_conforms() {
    scenario(&fake_gcs());
}
