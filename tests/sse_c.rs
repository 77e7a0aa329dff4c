//! SSE-C on the uploads whose parts come from a stream, `store --from-etcd` and
//! `copy`, against garage (which implements SSE-C): CreateMultipartUpload,
//! every UploadPart and CompleteMultipartUpload carry the key (AWS wants it on
//! Complete too when the upload has checksums or a bucket policy demands SSE-C;
//! garage accepts a Complete without it), `restore` with the key gives the
//! snapshot back, without it 78 naming the variable; a SIGTERM mid-upload
//! leaves no object and no pending upload. The fault proxy records each
//! request's head, so what was sent is asserted.

mod common;

use std::path::Path;

use common::garage::Garage;
use common::proxy::{Fault, Op, Proxy, Rule, header};
use common::*;

/// base64 of the 32 bytes `0123456789abcdef0123456789abcdef`.
const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
/// The MD5 of those 32 bytes, base64, as sent beside the key.
const KEY_MD5: &str = "hRasmdxgYDKV3nvbahU1MA==";

/// Every multipart request the proxy forwarded (Create, UploadPart, Complete)
/// carried the key's MD5, and each kind was sent (`parts` parts at least).
fn every_upload_request_carried_the_key(proxy: &Proxy, parts: usize) {
    let heads = proxy.heads();
    let multipart: Vec<&String> = heads
        .iter()
        .filter(|h| {
            let line = h.lines().next().unwrap_or("");
            line.contains("uploads") || line.contains("uploadId=")
        })
        .filter(|h| !h.starts_with("DELETE ") && !h.starts_with("GET "))
        .collect();
    for head in &multipart {
        assert_eq!(
            header(head, "x-amz-server-side-encryption-customer-key-md5").as_deref(),
            Some(KEY_MD5),
            "{head}"
        );
    }
    assert_eq!(proxy.count(Op::CreateUpload), 1);
    assert!(proxy.count(Op::UploadPart) >= parts, "{multipart:?}");
    assert_eq!(proxy.count(Op::Complete), 1);
    assert_eq!(proxy.count(Op::PutObject), 0);
}

fn restore(env: &[(String, String)], backup: &str, out: &Path) -> Run {
    let _ = std::fs::remove_file(out);
    run(
        "restore",
        env,
        &["--backup", backup, "--output", out.to_str().unwrap()],
    )
}

/// Restored with the key: `want`; without it: 78 naming the variable, nothing
/// written. The key is in no output.
fn only_the_key_restores(env: &[(String, String)], backup: &str, out: &Path, want: &[u8]) {
    let r = restore(env, backup, out);
    r.assert_code(0);
    assert!(!r.all().contains(KEY));
    assert!(std::fs::read(out).unwrap() == want, "{backup}: restored");
    let r = restore(&without(env, &["SSE_CUSTOMER_KEY"]), backup, out);
    r.assert_code(78);
    assert!(r.stderr.contains("SSE_CUSTOMER_KEY"), "{}", r.stderr);
    assert!(!out.exists());
}

#[test]
fn store_from_etcd_with_sse_c_on_garage() {
    let dir = tempfile::tempdir().unwrap();
    let (bin, ctl) = (etcd35("etcd"), etcd35("etcdctl"));
    let etcd = Etcd::fresh(&bin, "src", &dir.path().join("src-data"), "src-token");
    let endpoint = etcd.client_url.clone();
    wait_healthy(&ctl, &endpoint);
    // About 6 MiB of values: two 5 MiB parts uncompressed.
    let value = "v".repeat(64 * 1024);
    for i in 0..96 {
        etcdctl(&ctl, &endpoint, &["put", &format!("/big/{i}"), &value]);
    }
    let reference = dir.path().join("ref.db");
    let saved = output_within(
        std::process::Command::new(&ctl)
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &endpoint, "snapshot", "save"])
            .arg(&reference),
        "etcdctl",
    );
    assert!(saved.status.success());
    let want = std::fs::read(&reference).unwrap();

    let g = Garage::start();
    let proxy = Proxy::start(g.port, vec![]);
    let env = with(
        &g.job_env(),
        &[
            ("ENDPOINT", &format!("http://127.0.0.1:{}", proxy.port)),
            ("SSE_CUSTOMER_KEY", KEY),
            ("PART_SIZE", "5MiB"),
            ("LOG_LEVEL", "trace"),
        ],
    );
    let r = run(
        "store",
        &with(
            &env,
            &[
                ("BACKUP_TO_CREATE", "live.db"),
                ("ETCD_ENDPOINTS", &endpoint),
            ],
        ),
        &["--from-etcd", "--compress", "none"],
    );
    r.assert_code(0);
    assert!(!r.all().contains(KEY), "the key was printed");
    every_upload_request_carried_the_key(&proxy, 2);
    assert!(g.uploads().is_empty(), "{:?}", g.uploads());
    // The object is encrypted: s3cmd without the key cannot read it.
    let url = format!("s3://{BUCKET}/{CLUSTER}-live.db");
    assert!(!g.s3cmd(&["get", &url, "-"]).status.success());
    only_the_key_restores(&env, "live.db", &dir.path().join("out.db"), &want);
}

/// A snapshot of about 6.5 MB stored on an s3s-fs source.
fn source_with_backup(dir: &Path) -> (S3Server, Vec<u8>, String) {
    let a = S3Server::start();
    let snap = synthetic_snapshot(1600, 41);
    let file = write_file(dir, "big.db", &snap);
    let env = with(
        &a.job_env(),
        &[
            ("BACKUP_TO_CREATE", "big.db"),
            ("SNAPSHOT_FILE", file.to_str().unwrap()),
        ],
    );
    run("store", &env, &[]).assert_code(0);
    (a, snap, format!("{CLUSTER}-big.db"))
}

/// Garage's environment through `proxy` with the key, `a` as the source.
fn copy_env(g: &Garage, proxy: &Proxy, a: &S3Server) -> Vec<(String, String)> {
    with(
        &g.job_env(),
        &[
            ("ENDPOINT", &format!("http://127.0.0.1:{}", proxy.port)),
            ("SSE_CUSTOMER_KEY", KEY),
            ("PART_SIZE", "5MiB"),
            ("CONCURRENCY", "1"),
            ("SOURCE_ENDPOINT", &a.endpoint()),
            ("SOURCE_INSECURE", "true"),
            ("SOURCE_ACCESS_KEY_ID", ACCESS_KEY),
            ("SOURCE_SECRET_ACCESS_KEY", SECRET_KEY),
        ],
    )
}

#[test]
fn copy_to_garage_with_sse_c() {
    let dir = tempfile::tempdir().unwrap();
    let (a, snap, key) = source_with_backup(dir.path());
    let g = Garage::start();
    let proxy = Proxy::start(g.port, vec![]);
    let env = copy_env(&g, &proxy, &a);
    let s3 = format!("s3://{BUCKET}");
    let args = ["--from", s3.as_str(), "--to", s3.as_str(), "--key", &key];
    let r = run("copy", &with(&env, &[("LOG_LEVEL", "trace")]), &args);
    r.assert_code(0);
    assert!(!r.all().contains(KEY), "the key was printed");
    every_upload_request_carried_the_key(&proxy, 2);
    assert!(g.uploads().is_empty(), "{:?}", g.uploads());
    // The copy's recorded SHA-256 is read with the key: the second run skips it.
    let r = run("copy", &env, &args);
    r.assert_code(0);
    assert!(r.all().contains("already at the target"), "{}", r.all());
    assert_eq!(proxy.count(Op::CreateUpload), 1);
    only_the_key_restores(&env, "big.db", &dir.path().join("out.db"), &snap);
}

/// A SIGTERM while the second part hangs: the upload is aborted, garage lists
/// no pending upload and nothing is at the key; the run exits 143.
#[test]
fn a_signal_mid_copy_with_sse_c_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _, key) = source_with_backup(dir.path());
    let g = Garage::start();
    let proxy = Proxy::start(g.port, vec![Rule::once(Op::UploadPart, 2, Fault::Stall)]);
    let env = copy_env(&g, &proxy, &a);
    let s3 = format!("s3://{BUCKET}");
    let args = ["--from", &s3, "--to", &s3, "--key", &key];
    // Stopped while the stalled second part is at the proxy.
    let r = proxy.terminated_at((Op::UploadPart, 2), "copy", &env, &args);
    r.assert_code(143);
    assert_eq!(proxy.count(Op::Abort), 1, "{}", r.all());
    assert_eq!(g.object(&key), None);
    assert!(g.uploads().is_empty(), "{:?}", g.uploads());
}
