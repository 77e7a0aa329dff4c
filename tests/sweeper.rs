//! Orphaned multipart uploads: what a SIGKILLed `store` leaves is aborted by the
//! next `store` of the key, and by `delete --abort-incomplete` under a prefix.
//! Against moto, which lists pending uploads as AWS does (garage drops them by
//! itself, s3s-fs cannot list them: docs in tests/common/moto.rs); and on s3s-fs,
//! whose 501 is a warning for `store`.

mod common;

use common::moto::Moto;
use common::proxy::{Fault, Op, Proxy, Rule};
use common::*;

const KEY: &str = "xyz123abc-m.db.gz";

/// A gzip'd snapshot of about 12 MiB: three 5 MiB parts (moto enforces the
/// 5 MiB minimum part); the file and its bytes.
fn snapshot(dir: &std::path::Path, seed: u64) -> (std::path::PathBuf, Vec<u8>) {
    let gz = gzip(&synthetic_snapshot(3000, seed));
    (write_file(dir, &format!("snapshot-{seed}.db.gz"), &gz), gz)
}

fn store_env(env: &[(String, String)], port: u16, file: &std::path::Path) -> Vec<(String, String)> {
    with(
        env,
        &[
            ("ENDPOINT", &format!("http://127.0.0.1:{port}")),
            ("BACKUP_TO_CREATE", "m.db.gz"),
            ("SNAPSHOT_FILE", file.to_str().unwrap()),
            ("PART_SIZE", "5MiB"),
            ("SINGLE_PUT_MAX", "0"),
            ("CONCURRENCY", "1"),
        ],
    )
}

fn keys(uploads: &[(String, String)]) -> Vec<&str> {
    let mut k: Vec<&str> = uploads.iter().map(|(k, _)| k.as_str()).collect();
    k.sort();
    k
}

#[test]
fn the_next_store_aborts_what_a_sigkilled_store_left() {
    let m = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let (first, _) = snapshot(dir.path(), 1);
    // The second part never gets an answer: the upload is surely in progress.
    let proxy = Proxy::start(m.port, vec![Rule::once(Op::UploadPart, 2, Fault::Stall)]);
    let mut child = command("store", &store_env(&m.job_env(), proxy.port, &first), &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while m.uploads().is_empty() || proxy.count(Op::UploadPart) < 2 {
        assert!(std::time::Instant::now() < until, "no upload in progress");
        assert!(child.try_wait().unwrap().is_none(), "store ended early");
    }
    signal(&child, Signal::SIGKILL);
    let _ = wait_within(child, "store");
    let orphan = m.uploads();
    assert_eq!(keys(&orphan), vec![KEY], "SIGKILL left the upload behind");

    let (second, gz) = snapshot(dir.path(), 2);
    let r = run("store", &store_env(&m.job_env(), m.port, &second), &[]);
    r.assert_code(0);
    assert!(
        r.stderr.contains("\"aborted\":1") && r.stderr.contains("stale multipart uploads"),
        "the abort is logged with its count:\n{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&orphan[0].1),
        "the aborted upload is named"
    );
    assert_eq!(m.uploads(), Vec::new(), "the old upload is gone");
    assert!(
        m.object(KEY) == Some(gz),
        "the new object is the second snapshot"
    );
}

#[test]
fn delete_abort_incomplete_sweeps_its_prefix_only() {
    let m = Moto::start();
    let ours = m.create_upload("xyz123abc-old.db.gz");
    let theirs = m.create_upload("other-old.db.gz");
    let env = m.job_env();

    // (moto 5.2.5 answers every upload's Initiated as 2010-11-10T20:48:33Z, so
    // the age filter itself cannot be shown here: every upload is "old".)

    // A dry run names it and aborts nothing.
    let r = run(
        "delete",
        &env,
        &["--abort-incomplete", "--older-than", "0s", "--dry-run"],
    );
    r.assert_code(0);
    assert!(
        r.stderr.contains(&ours) && r.stderr.contains("would abort"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains(&theirs), "{}", r.stderr);
    assert_eq!(m.uploads().len(), 2);

    let r = run(
        "delete",
        &env,
        &["--abort-incomplete", "--older-than", "0s"],
    );
    r.assert_code(0);
    assert!(r.stderr.contains("\"aborted\":1"), "{}", r.stderr);
    assert_eq!(
        m.uploads(),
        vec![("other-old.db.gz".to_string(), theirs.clone())],
        "the other prefix's upload stays"
    );

    // --prefix picks another prefix.
    let r = run(
        "delete",
        &env,
        &[
            "--abort-incomplete",
            "--older-than",
            "0s",
            "--prefix",
            "other-",
        ],
    );
    r.assert_code(0);
    assert_eq!(m.uploads(), Vec::new());
}

#[test]
fn on_s3s_fs_store_warns_once_and_stores_and_the_sweep_fails_clearly() {
    let s = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let (file, gz) = snapshot(dir.path(), 3);
    let r = run("store", &store_env(&s.job_env(), s.port, &file), &[]);
    r.assert_code(0);
    let warnings = r
        .stderr
        .matches("does not list incomplete multipart uploads")
        .count();
    assert_eq!(warnings, 1, "{}", r.stderr);
    assert_eq!(std::fs::read(s.object_file(KEY)).unwrap(), gz);

    let r = run("delete", &s.job_env(), &["--abort-incomplete"]);
    r.assert_code(1);
    assert!(
        r.stderr
            .contains("does not list incomplete multipart uploads"),
        "{}",
        r.stderr
    );
}

/// garage reports when an upload was really initiated (moto does not): a fresh
/// one left by a SIGKILLed store is kept by the default age (24h) and swept by
/// `--older-than 0s`. Its listing checks the request's signature too.
#[test]
fn on_garage_the_age_decides_what_the_sweep_aborts() {
    let g = common::garage::Garage::start();
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = snapshot(dir.path(), 4);
    let proxy = Proxy::start(g.port, vec![Rule::once(Op::UploadPart, 2, Fault::Stall)]);
    let mut child = command("store", &store_env(&g.job_env(), proxy.port, &file), &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while g.uploads().is_empty() || proxy.count(Op::UploadPart) < 2 {
        assert!(std::time::Instant::now() < until, "no upload in progress");
        assert!(child.try_wait().unwrap().is_none(), "store ended early");
    }
    signal(&child, Signal::SIGKILL);
    let _ = wait_within(child, "store");
    assert_eq!(g.uploads().len(), 1);

    let r = run("delete", &g.job_env(), &["--abort-incomplete"]);
    r.assert_code(0);
    assert!(r.stderr.contains("\"matched\":0"), "{}", r.stderr);
    assert_eq!(g.uploads().len(), 1, "younger than 24h: kept");

    let r = run(
        "delete",
        &g.job_env(),
        &["--abort-incomplete", "--older-than", "0s"],
    );
    r.assert_code(0);
    assert!(r.stderr.contains("\"aborted\":1"), "{}", r.stderr);
    assert_eq!(g.uploads(), Vec::<String>::new());
}
