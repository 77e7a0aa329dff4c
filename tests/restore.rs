//! `restore` (download half): ours and s3cmd's objects, verified, written
//! atomically; every mismatch exits 65 and leaves the output as it was.

mod common;

use common::*;
use object_store::{Attribute, Attributes, ObjectStore, PutOptions, path::Path as ObjectPath};
use snapjob::{Inputs, Remote, transport::remote::ClientTuning};

fn restore_env(server: &S3Server, backup: &str, out: &std::path::Path) -> Vec<(String, String)> {
    with(
        &server.job_env(),
        &[
            ("BACKUP_TO_RESTORE", backup),
            ("OUTPUT_FILE", out.to_str().unwrap()),
        ],
    )
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
        server.s3cmd_put(&file, &format!("{CLUSTER}-{name}"));
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
    server.s3cmd_put(&raw_file, &format!("{CLUSTER}-misnamed.db.gz"));
    server.s3cmd_put(
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
        server.s3cmd_put(&fixture(name), &format!("{CLUSTER}-{name}"));
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

/// Stores a synthetic raw snapshot of about 23 MiB as `big.db` (three 8 MiB
/// ranges: the open GET's first, then two ranged GETs); returns it and where the
/// test keeps its files.
fn stored_big(server: &S3Server) -> (Vec<u8>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
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
    std::fs::remove_file(&file).unwrap();
    (raw, dir)
}

/// Restores `big.db` through a proxy applying `rules`, with `deadline`.
fn restore_big(
    server: &S3Server,
    rules: Vec<common::proxy::Rule>,
    deadline: &str,
    out: &std::path::Path,
) -> (Run, common::proxy::Proxy) {
    let proxy = common::proxy::Proxy::start(server.port, rules);
    let env = with(
        &restore_env(server, "big.db", out),
        &[
            ("ENDPOINT", &format!("127.0.0.1:{}", proxy.port)),
            ("DEADLINE", deadline),
        ],
    );
    (run("restore", &env, &[]), proxy)
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn large_objects_come_in_parallel_ranges_byte_identical() {
    use common::proxy::Op;
    let server = S3Server::start();
    let (raw, dir) = stored_big(&server);
    let out = dir.path().join("out.db");
    let (r, proxy) = restore_big(&server, vec![], "60s", &out);
    r.assert_code(0);
    assert!(r.stderr.contains("\"sha256_checked\":true"), "{}", r.stderr);
    assert_eq!(proxy.count(Op::Get), raw.len().div_ceil(8 << 20));
    assert!(std::fs::read(&out).unwrap() == raw, "restored bytes differ");
    assert_eq!(files_in(dir.path()), ["out.db"], "nothing else left");
}

#[test]
fn a_ranged_get_cut_before_its_answer_is_retried() {
    use common::proxy::{Fault, Op, Rule};
    let server = S3Server::start();
    let (raw, dir) = stored_big(&server);
    let out = dir.path().join("out.db");
    let rules = vec![Rule::once(Op::Get, 2, Fault::ResetAfter(0))];
    let (r, proxy) = restore_big(&server, rules, "60s", &out);
    r.assert_code(0);
    assert_eq!(proxy.count(Op::Get), raw.len().div_ceil(8 << 20) + 1);
    assert!(std::fs::read(&out).unwrap() == raw, "restored bytes differ");
    assert_eq!(files_in(dir.path()), ["out.db"]);
}

#[test]
fn stalled_ranges_end_at_the_deadline_leaving_nothing() {
    use common::proxy::{Fault, Op, Rule};
    let server = S3Server::start();
    let (_, dir) = stored_big(&server);
    let out = dir.path().join("out.db");
    std::fs::write(&out, b"previous contents").unwrap();
    // The first GET is answered (its 8 MiB land); every ranged GET stalls.
    let rules = vec![Rule {
        op: Op::Get,
        first: 2,
        times: usize::MAX,
        fault: Fault::Stall,
    }];
    let (r, _proxy) = restore_big(&server, rules, "3s", &out);
    r.assert_code(75);
    assert_eq!(r.error_lines().len(), 1, "{}", r.stderr);
    assert_eq!(std::fs::read(&out).unwrap(), b"previous contents");
    assert_eq!(files_in(dir.path()), ["out.db"], "no download left behind");
}
