//! Google Cloud Storage (`gs://`) against fake-gcs-server, with the Python
//! `google-cloud-storage` SDK as the peer on the same server: store (one and
//! several chunks), a corrupt snapshot and a SIGTERM leave nothing, restore
//! identical (ours and the SDK's objects, the recorded SHA-256 checked), delete,
//! retention, and a kops etcd-manager store in `gs://`.

mod common;

use std::path::Path;

use common::gcs::FakeGcs;
use common::proxy::{Fault, Op, Proxy, Rule};
use common::*;

fn store_env(gcs: &FakeGcs, backup: &str, file: &Path) -> Vec<(String, String)> {
    with(
        &gcs.job_env("etcd"),
        &[
            ("BACKUP_TO_CREATE", backup),
            ("SNAPSHOT_FILE", file.to_str().unwrap()),
        ],
    )
}

fn restore_env(gcs: &FakeGcs, backup: &str, out: &Path) -> Vec<(String, String)> {
    with(
        &gcs.job_env("etcd"),
        &[
            ("BACKUP_TO_RESTORE", backup),
            ("OUTPUT_FILE", out.to_str().unwrap()),
        ],
    )
}

#[test]
fn store_in_one_and_in_several_chunks_is_read_back_by_the_sdk() {
    let gcs = FakeGcs::start();
    let dir = tempfile::tempdir().unwrap();
    // 12 MiB raw in 5 MiB chunks: three requests, the last held back until verified.
    let big = synthetic_snapshot(3 * 1024, 7);
    for (name, bytes, part_size) in [
        (
            "small.db.gz",
            std::fs::read(fixture("etcd-3.4-small.db.gz")).unwrap(),
            "8MiB",
        ),
        ("big.db", big, "5MiB"),
    ] {
        let file = write_file(dir.path(), name, &bytes);
        let env = with(&store_env(&gcs, name, &file), &[("PART_SIZE", part_size)]);
        let r = run("store", &env, &[]);
        r.assert_code(0);
        let key = format!("etcd/{CLUSTER}-{name}");
        let parts = if name == "big.db" { 3 } else { 1 };
        assert!(
            r.stderr.contains(&format!("\"parts\":{parts}")),
            "{}",
            r.stderr
        );
        let back = dir.path().join(format!("{name}.sdk"));
        gcs.download(&key, &back);
        assert_eq!(std::fs::read(&back).unwrap(), bytes, "{name}");
        assert_eq!(
            gcs.metadata(&key),
            [
                format!("sha256={}", sha256_hex(&bytes)),
                format!("snapjob-cluster={CLUSTER}")
            ],
        );
        // And restore brings back the same snapshot, its SHA-256 checked.
        let out = dir.path().join(format!("{name}.out"));
        let r = run("restore", &restore_env(&gcs, name, &out), &[]);
        r.assert_code(0);
        assert!(r.stderr.contains("\"sha256_checked\":true"), "{}", r.stderr);
    }
}

#[test]
fn a_corrupt_snapshot_and_a_missing_bucket_leave_nothing() {
    let gcs = FakeGcs::start();
    let env = store_env(&gcs, "bad.db.gz", &fixture("broken-trailer.db.gz"));
    run("store", &env, &[]).assert_code(65);
    assert!(gcs.keys("").is_empty(), "{:?}", gcs.keys(""));
    // A bucket that does not exist: not found (12), named.
    let env = with(
        &store_env(&gcs, "x.db.gz", &fixture("etcd-3.4-small.db.gz")),
        &[("STORAGE_URL", "gs://no-such-bucket/etcd")],
    );
    let r = run("store", &env, &[]);
    r.assert_code(12);
    assert!(r.all().contains("gs://no-such-bucket/etcd/"), "{}", r.all());
}

#[test]
fn sigterm_during_the_upload_leaves_nothing() {
    let gcs = FakeGcs::start();
    // Chunk uploads stall; the session's start and its cancellation pass.
    let proxy = Proxy::start(gcs.port, vec![Rule::always(Op::PutObject, Fault::Stall)]);
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "big.db", &synthetic_snapshot(3 * 1024, 3));
    let env = with(
        &store_env(&gcs, "big.db", &file),
        &[
            (
                "STORAGE_EMULATOR_HOST",
                &format!("127.0.0.1:{}", proxy.port),
            ),
            ("PART_SIZE", "5MiB"),
        ],
    );
    let child = command("store", &env, &[])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A condition, not a timer: the first chunk has reached the proxy.
    let until = std::time::Instant::now() + time_limit();
    while proxy.count(Op::PutObject) == 0 {
        assert!(std::time::Instant::now() < until, "no chunk was sent");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    signal(&child, Signal::SIGTERM);
    let r = Run::of(wait_within(child, "store"));
    r.assert_code(143);
    assert_eq!(proxy.count(Op::Delete), 1, "the session was not cancelled");
    assert!(gcs.keys("").is_empty(), "{:?}", gcs.keys(""));
}

#[test]
fn sdk_uploads_restore_and_a_wrong_recorded_sha256_is_refused() {
    let gcs = FakeGcs::start();
    let dir = tempfile::tempdir().unwrap();
    let snap = synthetic_snapshot(64, 5);
    let file = write_file(dir.path(), "peer.db", &snap);
    let key = format!("etcd/{CLUSTER}-peer.db");
    gcs.upload(&file, &key, &[]);
    let out = dir.path().join("out.db");
    run("restore", &restore_env(&gcs, "peer.db", &out), &[]).assert_code(0);
    assert_eq!(std::fs::read(&out).unwrap(), snap);
    // With the right SHA-256 recorded it is checked; a wrong one is refused (65)
    // and the output left as it was.
    gcs.upload(&file, &key, &[("sha256", &sha256_hex(&snap))]);
    let r = run("restore", &restore_env(&gcs, "peer.db", &out), &[]);
    r.assert_code(0);
    assert!(r.stderr.contains("\"sha256_checked\":true"), "{}", r.stderr);
    gcs.upload(&file, &key, &[("sha256", &sha256_hex(b"other"))]);
    std::fs::remove_file(&out).unwrap();
    run("restore", &restore_env(&gcs, "peer.db", &out), &[]).assert_code(65);
    assert!(!out.exists());
    // Missing: 12.
    run("restore", &restore_env(&gcs, "missing.db", &out), &[]).assert_code(12);
}

#[test]
fn delete_and_retention() {
    let gcs = FakeGcs::start();
    let dir = tempfile::tempdir().unwrap();
    let file = fixture("etcd-3.4-small.db.gz");
    for name in ["a.db.gz", "b.db.gz", "c.db.gz"] {
        run("store", &store_env(&gcs, name, &file), &[]).assert_code(0);
    }
    // A backup of another cluster with the same prefix is not ours to count.
    let other = write_file(dir.path(), "o", b"other");
    gcs.upload(&other, &format!("etcd/{CLUSTER}-zz.db.gz"), &[]);
    let del = |name: &str, extra: &[(&str, &str)]| {
        let env = with(&gcs.job_env("etcd"), &[("BACKUP_TO_DELETE", name)]);
        run("delete", &with(&env, extra), &[])
    };
    // A missing backup is already deleted: 0.
    del("missing.db.gz", &[]).assert_code(0);
    del("a.db.gz", &[]).assert_code(0);
    let k = |n: &str| format!("etcd/{CLUSTER}-{n}");
    assert_eq!(
        gcs.keys("etcd/"),
        [k("b.db.gz"), k("c.db.gz"), k("zz.db.gz")]
    );
    // Retention: keep the newest one of this cluster's backups.
    del("b.db.gz", &[("KEEP_LAST", "1")]).assert_code(0);
    assert_eq!(gcs.keys("etcd/"), [k("c.db.gz"), k("zz.db.gz")]);
}

#[test]
fn kops_store_in_gs_lists_and_restores() {
    let gcs = FakeGcs::start();
    let root = fixture("etcd-manager/main");
    // The golden store, uploaded by the SDK under main/.
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(&root).unwrap().to_str().unwrap();
                gcs.upload(&p, &format!("main/{rel}"), &[]);
            }
        }
    }
    let url = format!("gs://{BUCKET}/main");
    let env = [("STORAGE_EMULATOR_HOST".to_string(), gcs.host())];
    let r = run("restore", &env, &["--backup-store", &url, "list-backups"]);
    r.assert_code(0);
    assert_eq!(
        r.stdout.lines().collect::<Vec<_>>(),
        ["2026-01-02T03:04:05Z-000007", "2026-01-04T00:00:00Z-000009"]
    );
    let before = gcs.keys("main/control/").len();
    let r = run(
        "restore",
        &env,
        &[
            "--backup-store",
            &url,
            "restore-backup",
            "2026-01-02T03:04:05Z-000007",
        ],
    );
    r.assert_code(0);
    assert_eq!(gcs.keys("main/control/").len(), before + 1, "{}", r.all());
    // A backup written by `store` into the same store (create-only), listed
    // with the others and restored byte-identical.
    let file = fixture("etcd-3.4-small.db.gz");
    let r = run(
        "store",
        &env,
        &[
            "--backup-store",
            &url,
            "--file",
            file.to_str().unwrap(),
            "--etcd-version",
            "3.5.1",
            "--member-count",
            "3",
        ],
    );
    r.assert_code(0);
    let listed = run("restore", &env, &["--backup-store", &url, "list-backups"]);
    listed.assert_code(0);
    let names: Vec<&str> = listed.stdout.lines().collect();
    assert_eq!(names.len(), 3, "{}", listed.stdout);
    let ours = names.iter().find(|n| !n.starts_with("2026-01-0")).unwrap();
    let keys = gcs.keys(&format!("main/{ours}/"));
    assert_eq!(keys.len(), 2, "{keys:?}");
    let data = keys.iter().find(|k| !k.ends_with(".meta")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let back = dir.path().join("back");
    gcs.download(data, &back);
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&file).unwrap());
}

/// A metadata server on loopback: answers every request with a token and
/// records the request heads.
fn metadata_server() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut head = String::new();
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            log.lock().unwrap().push(head);
            let body =
                r#"{"access_token":"metadata-token-1","expires_in":3600,"token_type":"Bearer"}"#;
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, seen)
}

#[test]
fn credentials_from_the_metadata_server_and_a_service_account_key() {
    let gcs = FakeGcs::start();
    let file = fixture("etcd-3.4-small.db.gz");
    let endpoint = format!("http://{}", gcs.host());
    // fake-gcs-server takes any token; what is checked is that each source
    // gives one and the whole store goes through with it.
    let base = without(
        &store_env(&gcs, "md.db.gz", &file),
        &["STORAGE_EMULATOR_HOST"],
    );
    let base = with(&base, &[("GCS_ENDPOINT", &endpoint)]);

    // The metadata server (GKE workload identity), at GCE_METADATA_HOST.
    let (port, seen) = metadata_server();
    let env = with(
        &base,
        &[("GCE_METADATA_HOST", &format!("127.0.0.1:{port}"))],
    );
    let r = run("store", &env, &[]);
    r.assert_code(0);
    assert!(
        r.stderr.contains("\"credentials\":\"metadata server\""),
        "{}",
        r.stderr
    );
    let heads = seen.lock().unwrap().clone();
    assert!(
        heads.iter().any(|h| h
            .contains("/computeMetadata/v1/instance/service-accounts/default/token")
            && h.to_ascii_lowercase().contains("metadata-flavor: google")),
        "{heads:?}"
    );
    assert!(
        !r.all().contains("metadata-token-1"),
        "the token was printed"
    );

    // A service account key (GOOGLE_APPLICATION_CREDENTIALS): self-signed JWTs.
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("key.pem");
    let out = output_within(
        std::process::Command::new("openssl").args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            pem.to_str().unwrap(),
        ]),
        "openssl genpkey",
    );
    assert!(out.status.success(), "{out:?}");
    let key = serde_json::json!({
        "type": "service_account",
        "project_id": "test",
        "private_key_id": "k1",
        "private_key": std::fs::read_to_string(&pem).unwrap(),
        "client_email": "backup@test.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token",
    });
    let json = dir.path().join("sa.json");
    std::fs::write(&json, key.to_string()).unwrap();
    let env = with(
        &base,
        &[
            ("GOOGLE_APPLICATION_CREDENTIALS", json.to_str().unwrap()),
            ("BACKUP_TO_CREATE", "sa.db.gz"),
        ],
    );
    let r = run("store", &env, &[]);
    r.assert_code(0);
    assert!(r.stderr.contains("key file"), "{}", r.stderr);
    assert!(!r.all().contains("PRIVATE KEY"), "the key was printed");
    assert_eq!(
        gcs.keys("etcd/"),
        [
            format!("etcd/{CLUSTER}-md.db.gz"),
            format!("etcd/{CLUSTER}-sa.db.gz")
        ]
    );
}

#[test]
fn store_from_etcd_streams_into_one_resumable_session() {
    let gcs = FakeGcs::start();
    let dir = tempfile::tempdir().unwrap();
    let (bin, ctl) = (etcd34("etcd"), etcd34("etcdctl"));
    let etcd = Etcd::fresh(&bin, "src", &dir.path().join("data"), "src-token");
    wait_healthy(&ctl, &etcd.client_url);
    // About 10 MiB uncompressed: two 5 MiB parts, cut into 256 KiB-aligned chunks.
    let value = "v".repeat(64 * 1024);
    for i in 0..160 {
        etcdctl(
            &ctl,
            &etcd.client_url,
            &["put", &format!("/big/{i}"), &value],
        );
    }
    let env = with(
        &gcs.job_env("etcd"),
        &[
            ("BACKUP_TO_CREATE", "live.db"),
            ("ETCD_ENDPOINTS", &etcd.client_url),
            ("PART_SIZE", "5MiB"),
            ("COMPRESS", "none"),
        ],
    );
    let r = run("store", &env, &["--from-etcd"]);
    r.assert_code(0);
    let key = format!("etcd/{CLUSTER}-live.db");
    let back = dir.path().join("back.db");
    gcs.download(&key, &back);
    let stored = std::fs::read(&back).unwrap();
    assert!(stored.len() > 10 << 20, "{}", stored.len());
    let out = dir.path().join("out.db");
    run("restore", &restore_env(&gcs, "live.db", &out), &[]).assert_code(0);
    assert_eq!(std::fs::read(&out).unwrap(), stored);
}

#[test]
fn service_refusals_map_to_exit_codes() {
    let gcs = FakeGcs::start();
    let dir = tempfile::tempdir().unwrap();
    let file = fixture("etcd-3.4-small.db.gz");
    for (status, code) in [(403, 77), (401, 77), (429, 15), (503, 15)] {
        // Every request answered with `status` by a proxy in front of the server.
        let proxy = Proxy::start(gcs.port, Rule::on_every_request(Fault::Status(status)));
        let host = format!("127.0.0.1:{}", proxy.port);
        let over = [("STORAGE_EMULATOR_HOST", host.as_str()), ("DEADLINE", "5s")];
        let r = run(
            "store",
            &with(&store_env(&gcs, "x.db.gz", &file), &over),
            &[],
        );
        r.assert_code(code);
        let out = dir.path().join("out");
        let r = run(
            "restore",
            &with(&restore_env(&gcs, "x.db.gz", &out), &over),
            &[],
        );
        r.assert_code(code);
        let env = with(&gcs.job_env("etcd"), &[("BACKUP_TO_DELETE", "x.db.gz")]);
        run("delete", &with(&env, &over), &[]).assert_code(code);
    }
    assert!(gcs.keys("").is_empty());
}

#[test]
fn restore_to_a_data_dir_from_gs_matches_the_one_from_the_file() {
    let gcs = FakeGcs::start();
    let dir = tempfile::tempdir().unwrap();
    let file = fixture("etcd-3.4-small.db.gz");
    run("store", &store_env(&gcs, "dd.db.gz", &file), &[]).assert_code(0);
    let member = |data: &Path| member_flags(data, UNUSED_PEER, "tok");
    let (from_gs, from_file) = (dir.path().join("gs"), dir.path().join("file"));
    let args = member(&from_gs);
    let env = with(&gcs.job_env("etcd"), &[("BACKUP_TO_RESTORE", "dd.db.gz")]);
    run("restore", &env, &strs(&args)).assert_code(0);
    let args = from_snapshot(&file, member(&from_file));
    run("restore", &[], &strs(&args)).assert_code(0);
    let db = |d: &Path| std::fs::read(d.join("member/snap/db")).unwrap();
    assert!(!db(&from_gs).is_empty());
    assert_eq!(db(&from_gs), db(&from_file));
}
