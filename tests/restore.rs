//! `restore` (download half): ours and s3cmd's objects, verified, written
//! atomically; every mismatch exits 65 and leaves the output as it was.

mod common;

use common::*;
use object_store::{Attribute, Attributes, ObjectStore, PutOptions, path::Path as ObjectPath};
use snapjob::{Inputs, Remote, remote::ClientTuning};

fn restore_env(server: &S3Server, backup: &str, out: &std::path::Path) -> Vec<(String, String)> {
    with(
        &server.job_env(),
        &[
            ("BACKUP_TO_RESTORE", backup),
            ("OUTPUT_FILE", out.to_str().unwrap()),
        ],
    )
}

fn s3cmd_put(server: &S3Server, file: &std::path::Path, key: &str) {
    let put = server.s3cmd(&[
        "put",
        file.to_str().unwrap(),
        &format!("s3://{BUCKET}/{key}"),
    ]);
    assert!(
        put.status.success(),
        "s3cmd put: {}",
        String::from_utf8_lossy(&put.stderr)
    );
}

#[test]
fn store_then_restore_round_trip_checks_the_recorded_sha256() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let file = fixture("etcd-3.4-small.db.gz");
    let env = with(
        &server.job_env(),
        &[
            ("BACKUP_TO_CREATE", "rt.db.gz"),
            ("SNAPSHOT_FILE", file.to_str().unwrap()),
        ],
    );
    run("store", &env, &[]).assert_code(0);
    let out = dir.path().join("restored").join("snapshot.db");
    let r = run("restore", &restore_env(&server, "rt.db.gz", &out), &[]);
    r.assert_code(0);
    assert!(r.stderr.contains("\"sha256_checked\":true"), "{}", r.stderr);
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(fixture("etcd-3.4-small.db")).unwrap()
    );
}

#[test]
fn objects_uploaded_by_s3cmd_restore_single_and_multipart() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    // 1 MiB goes up in one PUT; 40 MiB in s3cmd's 15 MiB multipart chunks.
    for (name, pages) in [("one-mib.db.gz", 256), ("forty-mib.db.gz", 10_240)] {
        let raw = synthetic_snapshot(pages, pages as u64);
        let file = write_file(dir.path(), name, &gzip(&raw));
        s3cmd_put(&server, &file, &format!("{CLUSTER}-{name}"));
        let out = dir.path().join(format!("{name}.out"));
        let r = run("restore", &restore_env(&server, name, &out), &[]);
        r.assert_code(0);
        assert!(
            r.stderr.contains("\"sha256_checked\":false"),
            "{}",
            r.stderr
        );
        assert!(
            std::fs::read(&out).unwrap() == raw,
            "{name} restored differently"
        );
    }
}

#[test]
fn raw_objects_are_detected_by_content_not_name() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let raw = std::fs::read(fixture("etcd-3.4-small.db")).unwrap();
    // A raw snapshot under a .gz name, and a gzip one under a .db name.
    let raw_file = write_file(dir.path(), "a", &raw);
    s3cmd_put(&server, &raw_file, &format!("{CLUSTER}-misnamed.db.gz"));
    s3cmd_put(
        &server,
        &fixture("etcd-3.4-small.db.gz"),
        &format!("{CLUSTER}-misnamed.db"),
    );
    for name in ["misnamed.db.gz", "misnamed.db"] {
        let out = dir.path().join(format!("{name}.out"));
        run("restore", &restore_env(&server, name, &out), &[]).assert_code(0);
        assert_eq!(std::fs::read(&out).unwrap(), raw, "{name}");
    }
}

#[test]
fn corrupt_objects_exit_65_and_leave_the_output_alone() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("snapshot.db");
    std::fs::write(&out, b"previous contents").unwrap();
    for name in ["broken-trailer.db.gz", "truncated.db.gz", "empty.db.gz"] {
        s3cmd_put(&server, &fixture(name), &format!("{CLUSTER}-{name}"));
        let r = run("restore", &restore_env(&server, name, &out), &[]);
        r.assert_code(65);
        assert_eq!(r.error_lines().len(), 1, "{}", r.stderr);
        assert_eq!(std::fs::read(&out).unwrap(), b"previous contents", "{name}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary files left");
}

#[tokio::test]
async fn a_mismatching_recorded_sha256_exits_65() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let client = Remote::from_inputs(&Inputs::from_env_vars(server.job_env()))
        .unwrap()
        .open(&ClientTuning::for_deadline(std::time::Duration::from_secs(
            30,
        )))
        .await
        .unwrap();
    let mut attrs = Attributes::new();
    attrs.insert(Attribute::Metadata("sha256".into()), "00".repeat(32).into());
    let body = std::fs::read(fixture("etcd-3.4-small.db.gz")).unwrap();
    let key = format!("{CLUSTER}-tampered.db.gz");
    client
        .put_opts(
            &ObjectPath::parse(&key).unwrap(),
            body.into(),
            PutOptions {
                attributes: attrs,
                ..PutOptions::default()
            },
        )
        .await
        .unwrap();
    let out = dir.path().join("snapshot.db");
    let r = run(
        "restore",
        &restore_env(&server, "tampered.db.gz", &out),
        &[],
    );
    r.assert_code(65);
    assert!(
        r.error_lines()[0].contains("does not match the recorded"),
        "{}",
        r.stderr
    );
    assert!(!out.exists());
}

#[test]
fn missing_object_and_missing_bucket_exit_12() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("snapshot.db");
    let r = run(
        "restore",
        &restore_env(&server, "never-made.db.gz", &out),
        &[],
    );
    r.assert_code(12);
    assert!(
        r.error_lines()[0].contains("never-made.db.gz"),
        "{}",
        r.stderr
    );
    let env = with(
        &restore_env(&server, "x", &out),
        &[("BUCKET_NAME", "no-such-bucket")],
    );
    run("restore", &env, &[]).assert_code(12);
    assert!(!out.exists());
}

#[test]
fn restore_needs_an_output_file() {
    let server = S3Server::start();
    let env = with(&server.job_env(), &[("BACKUP_TO_RESTORE", "x.db.gz")]);
    let r = run("restore", &env, &[]);
    r.assert_code(64);
    assert!(r.error_lines()[0].contains("--output"), "{}", r.stderr);
}

#[test]
fn a_local_snapshot_file_is_verified_and_decompressed_to_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("snapshot.db");
    let gz = fixture("etcd-3.4-small.db.gz");
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
    r.assert_code(0);
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(fixture("etcd-3.4-small.db")).unwrap()
    );
    let bad = fixture("broken-trailer.db.gz");
    let out2 = dir.path().join("bad.db");
    run(
        "restore",
        &[],
        &[
            "--snapshot",
            bad.to_str().unwrap(),
            "--output",
            out2.to_str().unwrap(),
        ],
    )
    .assert_code(65);
    assert!(!out2.exists());
}

#[test]
fn large_objects_come_in_parallel_ranges_byte_identical() {
    use common::proxy::{Op, Proxy};
    let server = S3Server::start();
    let proxy = Proxy::start(server.port, vec![]);
    let dir = tempfile::tempdir().unwrap();
    // About 23 MiB raw: the open GET's first 4 MiB, then five ranged GETs.
    let raw = synthetic_snapshot(5800, 21);
    let file = write_file(dir.path(), "snapshot.db", &raw);
    let env = with(
        &server.job_env(),
        &[
            ("BACKUP_TO_CREATE", "big.db"),
            ("SNAPSHOT_FILE", file.to_str().unwrap()),
        ],
    );
    run("store", &env, &[]).assert_code(0);
    let out = dir.path().join("out.db");
    let env = with(
        &restore_env(&server, "big.db", &out),
        &[("ENDPOINT", &format!("127.0.0.1:{}", proxy.port))],
    );
    let r = run("restore", &env, &[]);
    r.assert_code(0);
    assert!(r.stderr.contains("\"sha256_checked\":true"), "{}", r.stderr);
    assert_eq!(proxy.count(Op::Get), raw.len().div_ceil(4 << 20));
    assert!(std::fs::read(&out).unwrap() == raw, "restored bytes differ");
}
