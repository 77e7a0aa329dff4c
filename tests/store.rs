//! `store` against a real S3 server (s3s-fs, SigV4 checked), with the
//! controller's exact environment; s3cmd reads back what we wrote.

mod common;

use std::sync::Arc;

use common::*;
use object_store::{Attribute, GetOptions, ObjectStore, path::Path as ObjectPath};
use snapjob::transport::remote::ClientTuning;
use snapjob::{Inputs, Remote};

fn store_env(server: &S3Server, backup: &str, file: &std::path::Path) -> Vec<(String, String)> {
    with(
        &server.job_env(),
        &[
            ("BACKUP_TO_CREATE", backup),
            ("SNAPSHOT_FILE", file.to_str().unwrap()),
        ],
    )
}

/// Our own client on the same server, to read metadata the binaries recorded.
async fn client(server: &S3Server) -> Arc<dyn ObjectStore> {
    let inputs = Inputs::from_env_vars(server.job_env());
    Remote::from_inputs(&inputs)
        .unwrap()
        .open(&ClientTuning::for_deadline(std::time::Duration::from_secs(
            30,
        )))
        .await
        .unwrap()
}

async fn recorded_sha256(server: &S3Server, key: &str) -> Option<String> {
    let opts = GetOptions {
        head: true,
        ..GetOptions::default()
    };
    let head = client(server)
        .await
        .get_opts(&ObjectPath::parse(key).unwrap(), opts)
        .await
        .unwrap();
    head.attributes
        .get(&Attribute::Metadata("sha256".into()))
        .map(|v| v.as_ref().to_string())
}

#[tokio::test]
async fn store_single_put_is_read_back_identically_by_s3cmd() {
    let server = S3Server::start();
    let file = fixture("etcd-3.4-small.db.gz");
    let backup = "daily-backup-2021-03-16t03-48-00.db.gz";
    let run = run("store", &store_env(&server, backup, &file), &[]);
    run.assert_code(0);
    let key = format!("{CLUSTER}-{backup}");
    assert!(
        run.stderr.contains("\"message\":\"stored\""),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&key),
        "summary names the key: {}",
        run.stderr
    );

    let dir = tempfile::tempdir().unwrap();
    let got = dir.path().join("got");
    let out = server.s3cmd(&[
        "get",
        &format!("s3://{BUCKET}/{key}"),
        got.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "s3cmd get: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let original = std::fs::read(&file).unwrap();
    assert_eq!(std::fs::read(&got).unwrap(), original);
    assert_eq!(
        recorded_sha256(&server, &key).await,
        Some(sha256_hex(&original))
    );
    assert!(
        run.stderr.contains(&sha256_hex(&original)),
        "summary has the sha256"
    );
}

#[tokio::test]
async fn store_multipart_in_parallel_parts_is_read_back_identically() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    // About 23 MiB of incompressible data gzip'd: five 5 MiB parts.
    let raw = synthetic_snapshot(5800, 7);
    let gz = gzip(&raw);
    let file = write_file(dir.path(), "snapshot.db.gz", &gz);
    let env = with(
        &store_env(&server, "big.db.gz", &file),
        &[
            ("PART_SIZE", "5MiB"),
            ("CONCURRENCY", "3"),
            ("SINGLE_PUT_MAX", "0"),
        ],
    );
    let run = run("store", &env, &[]);
    run.assert_code(0);
    assert!(run.stderr.contains("\"parts\":5"), "{}", run.stderr);
    let key = format!("{CLUSTER}-big.db.gz");
    assert_eq!(std::fs::read(server.object_file(&key)).unwrap(), gz);
    assert_eq!(recorded_sha256(&server, &key).await, Some(sha256_hex(&gz)));
    assert!(server.leftover_uploads().is_empty());

    let got = dir.path().join("got");
    let out = server.s3cmd(&[
        "get",
        &format!("s3://{BUCKET}/{key}"),
        got.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert_eq!(std::fs::read(&got).unwrap(), gz);
}

#[tokio::test]
async fn store_raw_db_multipart() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let raw = synthetic_snapshot(3000, 11);
    let file = write_file(dir.path(), "snapshot.db", &raw);
    let env = with(
        &store_env(&server, "raw.db", &file),
        &[("PART_SIZE", "5MiB"), ("SINGLE_PUT_MAX", "0")],
    );
    run("store", &env, &[]).assert_code(0);
    let key = format!("{CLUSTER}-raw.db");
    assert_eq!(std::fs::read(server.object_file(&key)).unwrap(), raw);
}

#[test]
fn corrupt_snapshots_are_never_stored() {
    let server = S3Server::start();
    for (name, what) in [
        ("broken-trailer.db.gz", "SHA-256 trailer"),
        ("truncated.db.gz", "gzip stream is corrupt or truncated"),
        ("empty.db.gz", "is empty"),
    ] {
        let file = fixture(name);
        let r = run("store", &store_env(&server, name, &file), &[]);
        r.assert_code(65);
        let errors = r.error_lines();
        assert_eq!(errors.len(), 1, "one error line: {}", r.stderr);
        assert!(
            errors[0].contains(what) && errors[0].contains(name),
            "{}",
            errors[0]
        );
        assert!(
            !server.object_file(&format!("{CLUSTER}-{name}")).exists(),
            "{name} was stored"
        );
    }
}

#[test]
fn a_corrupt_multipart_snapshot_is_aborted_with_nothing_left() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let mut raw = synthetic_snapshot(4000, 3);
    raw[10 << 20] ^= 0x55; // inside the third part: parts 1 and 2 are already sent
    let gz = gzip(&raw);
    let file = write_file(dir.path(), "snapshot.db.gz", &gz);
    let env = with(
        &store_env(&server, "bad.db.gz", &file),
        &[("PART_SIZE", "5MiB"), ("SINGLE_PUT_MAX", "0")],
    );
    let r = run("store", &env, &[]);
    r.assert_code(65);
    assert!(
        r.stderr.contains("multipart upload aborted"),
        "{}",
        r.stderr
    );
    assert!(!server.object_file(&format!("{CLUSTER}-bad.db.gz")).exists());
    assert_eq!(server.leftover_uploads(), Vec::<String>::new());
}

#[test]
fn a_signal_mid_upload_aborts_it_and_exits_143_or_130() {
    use common::proxy::{Fault, Op, Proxy, Rule};
    for (sig, code, name) in [
        (Signal::SIGTERM, 143, "SIGTERM"),
        (Signal::SIGINT, 130, "SIGINT"),
    ] {
        let server = S3Server::start();
        // The second part never gets an answer, so an upload is surely in progress.
        let proxy = Proxy::start(
            server.port,
            vec![Rule::once(Op::UploadPart, 2, Fault::Stall)],
        );
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(dir.path(), "snapshot.db", &synthetic_snapshot(3000, 5));
        let env = with(
            &store_env(&server, "sig.db", &file),
            &[
                ("ENDPOINT", &format!("127.0.0.1:{}", proxy.port)),
                ("PART_SIZE", "5MiB"),
                ("SINGLE_PUT_MAX", "0"),
                ("CONCURRENCY", "1"),
            ],
        );
        let mut child = command("store", &env, &[])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while server.leftover_uploads().is_empty() || proxy.count(Op::UploadPart) < 2 {
            assert!(std::time::Instant::now() < until, "no upload in progress");
            assert!(child.try_wait().unwrap().is_none(), "store ended early");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        signal(&child, sig);
        let out = wait_within(child, "store");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{stderr}");
        assert!(stderr.contains(&format!("stopped by {name}")), "{stderr}");
        assert!(stderr.contains("multipart upload aborted"), "{stderr}");
        assert!(!server.object_file(&format!("{CLUSTER}-sig.db")).exists());
        assert_eq!(server.leftover_uploads(), Vec::<String>::new());
    }
}

#[test]
fn wrong_secret_is_access_denied() {
    let server = S3Server::start();
    let file = fixture("etcd-3.4-small.db.gz");
    let env = with(
        &store_env(&server, "x.db.gz", &file),
        &[("SECRET_ACCESS_KEY", "wrong-secret-wrong-secret")],
    );
    let r = run("store", &env, &[]);
    r.assert_code(77);
    assert!(r.error_lines()[0].contains("access denied"), "{}", r.stderr);
    assert!(!r.all().contains("wrong-secret-wrong-secret"));
    assert!(!server.object_file(&format!("{CLUSTER}-x.db.gz")).exists());
}

// A missing bucket on store is not tested here: s3s-fs creates the bucket
// directory on PutObject instead of answering NoSuchBucket. restore and delete
// cover the NoSuchBucket mapping (tests/restore.rs, tests/delete.rs).

#[test]
fn connection_refused_exits_111() {
    let file = fixture("etcd-3.4-small.db.gz");
    let server = S3Server::start();
    let port = closed_port();
    let env = with(
        &store_env(&server, "x.db.gz", &file),
        &[("ENDPOINT", &format!("127.0.0.1:{port}"))],
    );
    let r = run("store", &env, &[]);
    r.assert_code(111);
    assert!(
        r.error_lines()[0].contains("connection refused"),
        "{}",
        r.stderr
    );
}

#[test]
fn missing_snapshot_file_is_a_local_io_error_naming_it() {
    let server = S3Server::start();
    let env = with(&server.job_env(), &[("BACKUP_TO_CREATE", "x.db.gz")]);
    // No SNAPSHOT_FILE: the default path /backup/snapshot.db.gz, absent here.
    let r = run("store", &env, &[]);
    r.assert_code(74);
    assert!(
        r.error_lines()[0].contains("/backup/snapshot.db.gz"),
        "{}",
        r.stderr
    );
}

#[test]
fn secrets_stay_out_of_trace_logs() {
    let server = S3Server::start();
    let file = fixture("etcd-3.4-small.db.gz");
    let env = with(
        &store_env(&server, "t.db.gz", &file),
        &[("LOG_LEVEL", "trace")],
    );
    // `run` asserts the secret is absent from everything printed.
    let r = run("store", &env, &[]);
    r.assert_code(0);
    assert!(
        r.stderr.lines().count() > 5,
        "trace logging produced output"
    );
}

#[test]
fn a_stalled_server_hits_the_deadline_and_exits_75() {
    // A server that accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    let file = fixture("etcd-3.4-small.db.gz");
    let env = with(
        &[
            ("ACCESS_KEY_ID", ACCESS_KEY),
            ("SECRET_ACCESS_KEY", SECRET_KEY),
            ("BUCKET_NAME", BUCKET),
            ("INSECURE", "true"),
            ("CLUSTER", CLUSTER),
            ("BACKUP_TO_CREATE", "stall.db.gz"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
        &[
            ("ENDPOINT", &format!("127.0.0.1:{port}")),
            ("SNAPSHOT_FILE", file.to_str().unwrap()),
            ("DEADLINE", "2s"),
        ],
    );
    let r = run("store", &env, &[]);
    r.assert_code(75);
    assert!(
        r.error_lines()[0].contains("deadline of 2s exceeded"),
        "{}",
        r.stderr
    );
}

#[test]
fn odd_but_valid_keys_are_stored_exactly() {
    let server = S3Server::start();
    let file = fixture("etcd-3.4-small.db.gz");
    for backup in [
        "with space ü.db.gz",
        "sub/dir/backup.db.gz",
        "dots..in..name.db.gz",
    ] {
        run("store", &store_env(&server, backup, &file), &[]).assert_code(0);
        let stored = std::fs::read(server.object_file(&format!("{CLUSTER}-{backup}"))).unwrap();
        assert_eq!(stored, std::fs::read(&file).unwrap(), "{backup}");
    }
}

#[test]
fn a_file_that_is_not_a_snapshot_is_refused() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let junk = write_file(
        dir.path(),
        "snapshot.db.gz",
        &b"<html>proxy error page</html>\n".repeat(50),
    );
    let r = run("store", &store_env(&server, "junk.db.gz", &junk), &[]);
    r.assert_code(65);
    assert!(
        r.error_lines()[0].contains("not an etcd (bbolt) database"),
        "{}",
        r.stderr
    );
    assert!(
        !server
            .object_file(&format!("{CLUSTER}-junk.db.gz"))
            .exists()
    );
}

#[test]
fn a_large_file_streams_in_one_put_read_back_by_s3cmd() {
    use common::proxy::{Op, Proxy};
    let server = S3Server::start();
    let proxy = Proxy::start(server.port, vec![]);
    let dir = tempfile::tempdir().unwrap();
    // About 23 MiB: more than a part, less than SINGLE_PUT_MAX.
    let gz = gzip(&synthetic_snapshot(5800, 8));
    let file = write_file(dir.path(), "snapshot.db.gz", &gz);
    let env = with(
        &store_env(&server, "one.db.gz", &file),
        &[("ENDPOINT", &format!("127.0.0.1:{}", proxy.port))],
    );
    let r = run("store", &env, &[]);
    r.assert_code(0);
    assert!(r.stderr.contains("\"parts\":1"), "{}", r.stderr);
    assert_eq!(proxy.count(Op::PutObject), 1);
    assert_eq!(proxy.count(Op::CreateUpload), 0);
    let key = format!("{CLUSTER}-one.db.gz");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(
        rt.block_on(recorded_sha256(&server, &key)),
        Some(sha256_hex(&gz))
    );
    let got = dir.path().join("got");
    let out = server.s3cmd(&[
        "get",
        &format!("s3://{BUCKET}/{key}"),
        got.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert_eq!(std::fs::read(&got).unwrap(), gz);
}

#[test]
fn a_corrupt_streamed_snapshot_is_cut_before_its_last_byte() {
    use common::proxy::{Op, Proxy};
    let server = S3Server::start();
    let proxy = Proxy::start(server.port, vec![]);
    let dir = tempfile::tempdir().unwrap();
    let mut raw = synthetic_snapshot(4000, 3);
    raw[12 << 20] ^= 0x55; // found only by the trailer check, after all is read
    let gz = gzip(&raw);
    let file = write_file(dir.path(), "snapshot.db.gz", &gz);
    let env = with(
        &store_env(&server, "bad.db.gz", &file),
        &[("ENDPOINT", &format!("127.0.0.1:{}", proxy.port))],
    );
    let r = run("store", &env, &[]);
    r.assert_code(65);
    let errors = r.error_lines();
    assert_eq!(errors.len(), 1, "{}", r.stderr);
    assert!(
        errors[0].contains("SHA-256 trailer") && errors[0].contains("snapshot.db.gz"),
        "{}",
        errors[0]
    );
    // The PUT was under way, and the server got no object from it.
    assert_eq!(proxy.count(Op::PutObject), 1);
    assert!(!server.object_file(&format!("{CLUSTER}-bad.db.gz")).exists());
}

/// `SIGNED_PAYLOAD` on the wire: unsigned requests say `UNSIGNED-PAYLOAD`, signed
/// ones carry the SHA-256 of the very body sent, and s3s-fs (which checks it)
/// accepts them. A body altered in flight is refused by the server when signed;
/// unsigned, the server stores it and only restore's recorded-digest check
/// catches it.
#[test]
fn a_signed_payload_carries_its_digest_and_an_altered_body_is_refused() {
    use common::proxy::{Fault, Op, Proxy, Rule};
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let gz = gzip(&synthetic_snapshot(3000, 4));
    let file = write_file(dir.path(), "snapshot.db.gz", &gz);
    for (op, single_put_max) in [(Op::PutObject, "1GiB"), (Op::UploadPart, "0")] {
        for signed in ["false", "true"] {
            let name = format!("signed-{op:?}-{signed}.db.gz");
            let env = |proxy: &Proxy| {
                with(
                    &store_env(&server, &name, &file),
                    &[
                        ("ENDPOINT", &format!("127.0.0.1:{}", proxy.port)),
                        ("SIGNED_PAYLOAD", signed),
                        ("PART_SIZE", "5MiB"),
                        ("SINGLE_PUT_MAX", single_put_max),
                    ],
                )
            };
            let key = format!("{CLUSTER}-{name}");

            let clean = Proxy::start(server.port, vec![]);
            run("store", &env(&clean), &[]).assert_code(0);
            let seen = clean.seen(op);
            assert_eq!(seen.len(), if op == Op::PutObject { 1 } else { 3 });
            for s in &seen {
                let want = match signed {
                    "true" => s.body_sha256.as_str(),
                    _ => "UNSIGNED-PAYLOAD",
                };
                assert_eq!(s.content_sha256.as_deref(), Some(want), "{name}: {s:?}");
            }
            if op == Op::PutObject && signed == "true" {
                assert_eq!(seen[0].body_sha256, sha256_hex(&gz), "the file's digest");
            }
            assert!(
                std::fs::read(server.object_file(&key)).unwrap() == gz,
                "{name}"
            );
            std::fs::remove_file(server.object_file(&key)).unwrap();

            // Every try of the request has one body byte flipped on the way.
            let altering = Proxy::start(server.port, vec![Rule::always(op, Fault::Corrupt(1000))]);
            let r = run("store", &env(&altering), &[]);
            assert_eq!(server.leftover_uploads(), Vec::<String>::new(), "{name}");
            if signed == "true" {
                r.assert_code(SIGNED_REFUSAL);
                assert!(
                    r.error_lines()[0].contains("status code: 500"),
                    "{}",
                    r.stderr
                );
                assert!(altering.count(op) > 1, "the refused request was retried");
                assert!(!server.object_file(&key).exists(), "{name}: {}", r.stderr);
            } else {
                // The server cannot tell; the object is stored altered...
                r.assert_code(0);
                let stored = std::fs::read(server.object_file(&key)).unwrap();
                assert!(stored.len() == gz.len() && stored != gz, "{name}");
                // ...and only restore refuses it, as corrupt data.
                let out = dir.path().join(format!("{name}.out"));
                let renv = with(&server.job_env(), &[("BACKUP_TO_RESTORE", name.as_str())]);
                run("restore", &renv, &["--output", out.to_str().unwrap()]).assert_code(65);
                assert!(!out.exists());
                std::fs::remove_file(server.object_file(&key)).unwrap();
            }
        }
    }
}

/// The exit code of a store whose signed body s3s-fs refused as altered: s3s-fs
/// answers the payload-hash mismatch with 500 InternalError (AWS: 400
/// XAmzContentSHA256Mismatch), which store retries and then reports as the
/// server's failure.
const SIGNED_REFUSAL: i32 = 15;
