//! The interrupt, retry and abort scenarios against garage, which (unlike s3s-fs)
//! lists multipart uploads: "no upload left" is checked through the S3 API.

mod common;

use common::garage::Garage;
use common::proxy::{Fault, Op, Proxy, Rule};
use common::*;

/// A 12 MiB gzip'd snapshot: three 5 MiB parts. Returns the file, its bytes and
/// the raw snapshot that restore must give back.
fn snapshot(dir: &std::path::Path) -> (std::path::PathBuf, Vec<u8>, Vec<u8>) {
    let raw = synthetic_snapshot(3000, 9);
    let gz = gzip(&raw);
    (write_file(dir, "snapshot.db.gz", &gz), gz, raw)
}

/// Restores `g.db.gz` from `g` into `out`; asserts it was checked and that the
/// bytes written are `raw`.
fn restore_equals(g: &Garage, out: &std::path::Path, raw: &[u8], what: &str) {
    let env = with(&g.job_env(), &[("BACKUP_TO_RESTORE", "g.db.gz")]);
    let r = run("restore", &env, &["--output", out.to_str().unwrap()]);
    r.assert_code(0);
    assert!(r.stderr.contains("\"sha256_checked\":true"), "{}", r.stderr);
    let got = std::fs::read(out).unwrap();
    assert!(
        got == raw,
        "{what}: restore wrote {} bytes that differ from the {} of the snapshot",
        got.len(),
        raw.len()
    );
}

fn store_env(g: &Garage, endpoint_port: u16, file: &std::path::Path) -> Vec<(String, String)> {
    with(
        &g.job_env(),
        &[
            ("ENDPOINT", &format!("http://127.0.0.1:{endpoint_port}")),
            ("BACKUP_TO_CREATE", "g.db.gz"),
            ("SNAPSHOT_FILE", file.to_str().unwrap()),
            ("PART_SIZE", "5MiB"),
            ("SINGLE_PUT_MAX", "0"),
            ("CONCURRENCY", "1"),
        ],
    )
}

const KEY: &str = "xyz123abc-g.db.gz";

#[test]
fn round_trip_with_s3cmd_and_restore() {
    let g = Garage::start();
    let dir = tempfile::tempdir().unwrap();
    let (file, gz, raw) = snapshot(dir.path());
    run("store", &store_env(&g, g.port, &file), &[]).assert_code(0);
    assert!(
        g.object(KEY) == Some(gz),
        "s3cmd reads back what store wrote"
    );
    restore_equals(&g, &dir.path().join("out.db"), &raw, "multipart");
    assert!(g.uploads().is_empty());
}

#[test]
fn sigterm_during_a_stalled_part_aborts_the_upload() {
    let g = Garage::start();
    let proxy = Proxy::start(g.port, vec![Rule::once(Op::UploadPart, 2, Fault::Stall)]);
    let dir = tempfile::tempdir().unwrap();
    let (file, _, _) = snapshot(dir.path());
    let mut child = command("store", &store_env(&g, proxy.port, &file), &[])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The second part stalls, so the upload is surely in progress: wait until
    // the server lists it, then signal.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while g.uploads().is_empty() || proxy.count(Op::UploadPart) < 2 {
        assert!(std::time::Instant::now() < until, "no upload in progress");
        assert!(child.try_wait().unwrap().is_none(), "store ended early");
    }
    signal(&child, Signal::SIGTERM);
    let out = wait_within(child, "store");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert_eq!(g.uploads(), Vec::<String>::new(), "the upload was aborted");
    assert_eq!(g.object(KEY), None);
}

#[test]
fn retries_and_persistent_failures() {
    let g = Garage::start();
    let dir = tempfile::tempdir().unwrap();
    let (file, gz, _) = snapshot(dir.path());
    let once = Proxy::start(
        g.port,
        vec![Rule::once(Op::UploadPart, 2, Fault::Status(503))],
    );
    run("store", &store_env(&g, once.port, &file), &[]).assert_code(0);
    assert_eq!(once.count(Op::UploadPart), 4, "the 503 part was sent again");
    assert!(g.object(KEY) == Some(gz));

    let delete_env = with(&g.job_env(), &[("BACKUP_TO_DELETE", "g.db.gz")]);
    run("delete", &delete_env, &[]).assert_code(0);
    let always = Proxy::start(
        g.port,
        vec![Rule::always(Op::UploadPart, Fault::Status(503))],
    );
    run("store", &store_env(&g, always.port, &file), &[]).assert_code(15);
    assert_eq!(g.uploads(), Vec::<String>::new());
    assert_eq!(g.object(KEY), None);
}

#[test]
fn a_corrupt_snapshot_is_aborted_after_parts_were_sent() {
    let g = Garage::start();
    let dir = tempfile::tempdir().unwrap();
    let mut raw = synthetic_snapshot(4000, 2);
    raw[11 << 20] ^= 1;
    let file = write_file(dir.path(), "snapshot.db.gz", &gzip(&raw));
    run("store", &store_env(&g, g.port, &file), &[]).assert_code(65);
    assert_eq!(g.uploads(), Vec::<String>::new());
    assert_eq!(g.object(KEY), None);
}

#[test]
fn a_streaming_put_round_trips_through_garage() {
    let g = Garage::start();
    let dir = tempfile::tempdir().unwrap();
    let (file, gz, raw) = snapshot(dir.path());
    for signed in ["false", "true"] {
        let env = with(
            &store_env(&g, g.port, &file),
            &[("SINGLE_PUT_MAX", "1GiB"), ("SIGNED_PAYLOAD", signed)],
        );
        let r = run("store", &env, &[]);
        r.assert_code(0);
        assert!(r.stderr.contains("\"parts\":1"), "{}", r.stderr);
        assert!(g.object(KEY) == Some(gz.clone()), "signed={signed}");
        let out = dir.path().join(format!("out-{signed}.db"));
        restore_equals(&g, &out, &raw, &format!("single PUT, signed={signed}"));
        // Gone before the next round, so that round's object is its own.
        let delete_env = with(&g.job_env(), &[("BACKUP_TO_DELETE", "g.db.gz")]);
        run("delete", &delete_env, &[]).assert_code(0);
        assert_eq!(g.object(KEY), None);
    }
}
