//! `restore --before TIME` on a real S3 server (s3s-fs) holding several backups:
//! the newest of this cluster's at or before the time is restored (a time equal
//! to a backup's picks it), another cluster's sharing the key prefix never is;
//! none that old is 12; a bad time is 78; with `--backup` it is 64.

mod common;

use common::*;

/// 2026-01-0D 00:00:00Z in Unix seconds.
fn day(d: u64) -> u64 {
    1_767_225_600 + (d - 1) * 86_400
}

#[test]
fn before_picks_the_newest_backup_at_or_before_the_time() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    // Three backups of the cluster, a day apart, each different; another
    // cluster's backup under the same key prefix, newer than the second.
    let mut bodies = Vec::new();
    for (n, cluster, name, when) in [
        (1u64, CLUSTER.to_string(), "a.db", day(1)),
        (2, CLUSTER.to_string(), "b.db", day(2)),
        (3, CLUSTER.to_string(), "c.db", day(3)),
        (4, format!("{CLUSTER}-eu"), "d.db", day(2) + 3600),
    ] {
        let body = synthetic_snapshot(4, n);
        let file = write_file(dir.path(), name, &body);
        let env = with(
            &server.job_env(),
            &[
                ("CLUSTER", &cluster),
                ("BACKUP_TO_CREATE", name),
                ("SNAPSHOT_FILE", file.to_str().unwrap()),
            ],
        );
        run("store", &env, &[]).assert_code(0);
        server.dated(&format!("{cluster}-{name}"), when);
        bodies.push(body);
    }
    let out = dir.path().join("out.db");
    let restore = |before: &str| {
        let _ = std::fs::remove_file(&out);
        run(
            "restore",
            &server.job_env(),
            &["--before", before, "--output", out.to_str().unwrap()],
        )
    };
    for (before, want) in [
        ("2026-01-02T18:00:00Z", 1),
        ("2026-01-02T00:00:00Z", 1),
        ("2026-01-01T23:59:59Z", 0),
        ("2026-06-01T00:00:00.5+00:00", 2),
    ] {
        let r = restore(before);
        r.assert_code(0);
        assert!(
            std::fs::read(&out).unwrap() == bodies[want],
            "{before}: not backup {want}: {}",
            r.stderr
        );
    }
    let r = restore("2025-12-31T23:59:59Z");
    r.assert_code(12);
    assert!(r.all().contains("no backup of cluster"), "{}", r.all());
    assert!(!out.exists());

    restore("2026-01-02").assert_code(78);
    let r = run(
        "restore",
        &with(&server.job_env(), &[("BACKUP_TO_RESTORE", "a.db")]),
        &[
            "--before",
            "2026-01-02T00:00:00Z",
            "--output",
            out.to_str().unwrap(),
        ],
    );
    r.assert_code(64);
    assert!(!out.exists());
}
