//! `delete` on the controller's contract: deleted, already absent and missing
//! bucket all exit 0 (the last with a warning); `--strict` makes a missing bucket 12.

mod common;

use common::proxy::{Fault, Op, Proxy, Rule};
use common::*;

fn delete_env(server: &S3Server, backup: &str) -> Vec<(String, String)> {
    with(&server.job_env(), &[("BACKUP_TO_DELETE", backup)])
}

#[test]
fn delete_twice_exits_zero_twice() {
    let server = S3Server::start();
    let file = fixture("etcd-3.4-small.db.gz");
    let store_env = with(
        &server.job_env(),
        &[
            ("BACKUP_TO_CREATE", "d.db.gz"),
            ("SNAPSHOT_FILE", file.to_str().unwrap()),
        ],
    );
    run("store", &store_env, &[]).assert_code(0);
    let key = format!("{CLUSTER}-d.db.gz");
    assert!(server.object_file(&key).exists());

    let first = run("delete", &delete_env(&server, "d.db.gz"), &[]);
    first.assert_code(0);
    assert!(
        first.stderr.contains("\"message\":\"deleted\""),
        "{}",
        first.stderr
    );
    assert!(!server.object_file(&key).exists());

    let second = run("delete", &delete_env(&server, "d.db.gz"), &[]);
    second.assert_code(0);
    assert!(
        second.stderr.contains("already absent"),
        "{}",
        second.stderr
    );
}

#[test]
fn delete_removes_an_object_s3cmd_uploaded() {
    let server = S3Server::start();
    let key = format!("{CLUSTER}-old-s3cmd.db.gz");
    let file = fixture("etcd-3.4-small.db.gz");
    server.s3cmd_put(&file, &key);
    run("delete", &delete_env(&server, "old-s3cmd.db.gz"), &[]).assert_code(0);
    assert!(!server.object_file(&key).exists());
}

#[test]
fn missing_bucket_warns_and_exits_zero_or_twelve_with_strict() {
    let server = S3Server::start();
    let env = with(
        &delete_env(&server, "x.db.gz"),
        &[("BUCKET_NAME", "gone-bucket")],
    );
    let lenient = run("delete", &env, &[]);
    lenient.assert_code(0);
    let warning = lenient
        .stderr
        .lines()
        .find(|l| l.contains("\"level\":\"WARN\""))
        .expect("a warning");
    assert!(
        warning.contains("gone-bucket") && warning.contains("does not exist"),
        "{warning}"
    );

    let strict = run("delete", &env, &["--strict"]);
    strict.assert_code(12);
    assert!(
        strict.error_lines()[0].contains("gone-bucket"),
        "{}",
        strict.stderr
    );
}

#[test]
fn delete_without_the_backup_name_is_a_config_error() {
    let server = S3Server::start();
    let r = run("delete", &server.job_env(), &[]);
    r.assert_code(78);
    assert!(
        r.error_lines()[0].contains("BACKUP_TO_DELETE is not set"),
        "{}",
        r.stderr
    );
}

/// Stores `fixture` as `$cluster-$backup` with the real `store` binary.
fn store_as(server: &S3Server, cluster: &str, backup: &str) {
    let env = with(
        &server.job_env(),
        &[
            ("CLUSTER", cluster),
            ("BACKUP_TO_CREATE", backup),
            (
                "SNAPSHOT_FILE",
                fixture("etcd-3.4-small.db.gz").to_str().unwrap(),
            ),
        ],
    );
    run("store", &env, &[]).assert_code(0);
}

#[test]
fn keep_counts_only_this_clusters_backups_newest_by_age_not_name() {
    let server = S3Server::start();
    // prod's backups, named against their age: daily-1 is the newest.
    for n in 1..=5 {
        let backup = format!("daily-{n}");
        store_as(&server, "prod", &backup);
        server.age(&format!("prod-{backup}"), 10 + n);
    }
    // Another cluster whose name starts with "prod-", and its backups are newer.
    for n in 1..=2 {
        let backup = format!("daily-{n}");
        store_as(&server, "prod-eu", &backup);
        server.age(&format!("prod-eu-{backup}"), n);
    }
    // Objects no store of ours wrote: a note, and an old s3cmd-era backup.
    let tmp = tempfile::tempdir().unwrap();
    let note = write_file(tmp.path(), "note", b"not a backup");
    for key in ["prod-notes.txt", "prod-daily-0"] {
        server.s3cmd_put(&note, key);
    }
    server.age("prod-daily-0", 100);
    let prod = with(&server.job_env(), &[("CLUSTER", "prod")]);
    let r = run("delete", &prod, &["--keep", "2"]);
    r.assert_code(0);
    let exists = |k: &str| server.object_file(k).exists();
    for kept in ["prod-daily-1", "prod-daily-2"] {
        assert!(
            exists(kept),
            "{kept}: the two newest are kept\n{}",
            r.stderr
        );
    }
    for pruned in ["prod-daily-3", "prod-daily-4", "prod-daily-5"] {
        assert!(!exists(pruned), "{pruned}: older than the two newest");
    }
    for foreign in [
        "prod-eu-daily-1",
        "prod-eu-daily-2",
        "prod-notes.txt",
        "prod-daily-0",
    ] {
        assert!(exists(foreign), "{foreign} is not prod's: never deleted");
    }
    // A deletion first, then retention: the newest left is never deleted.
    let env = with(
        &prod,
        &[("BACKUP_TO_DELETE", "daily-1"), ("KEEP_LAST", "1")],
    );
    run("delete", &env, &[]).assert_code(0);
    assert!(!exists("prod-daily-1") && exists("prod-daily-2"));
    // Bad settings delete nothing.
    run("delete", &prod, &["--keep", "0"]).assert_code(78);
    let r = run(
        "delete",
        &without(&prod, &["CLUSTER"]),
        &["--keep", "1", "--prefix", "prod-"],
    );
    r.assert_code(78);
    assert!(r.stderr.contains("CLUSTER"), "{}", r.stderr);
    assert!(exists("prod-daily-2") && exists("prod-eu-daily-2"));
}

#[test]
fn keep_is_refused_on_a_store_without_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    std::fs::write(dir.path().join("prod-daily-1"), b"x").unwrap();
    let env = [
        ("STORAGE_URL".to_string(), url),
        ("CLUSTER".to_string(), "prod".to_string()),
    ];
    let r = run("delete", &env, &["--keep", "1"]);
    r.assert_code(78);
    assert!(r.stderr.contains("KEEP_LAST"), "{}", r.stderr);
    assert!(dir.path().join("prod-daily-1").exists());
}

/// Unix seconds of `YYYY-MM-DD HH:MM` UTC (for backups dated in the past).
fn utc(s: &str) -> u64 {
    let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days from civil (proleptic Gregorian).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    (days * 86_400 + n(11..13) * 3600 + n(14..16) * 60) as u64
}

#[test]
fn a_policy_keeps_by_period_a_dry_run_deletes_nothing_and_a_refused_deletion_is_skipped() {
    let server = S3Server::start();
    // prod's backups over two ISO weeks (17 and 18 of 2025); names say nothing.
    let dates = [
        ("b1", "2025-05-02 23:00"),
        ("b2", "2025-05-02 11:00"),
        ("b3", "2025-05-01 11:00"),
        ("b4", "2025-04-29 11:00"),
        ("b5", "2025-04-25 23:00"),
        ("b6", "2025-04-21 11:00"),
    ];
    for (backup, date) in dates {
        store_as(&server, "prod", backup);
        server.dated(&format!("prod-{backup}"), utc(date));
    }
    store_as(&server, "prod-eu", "old");
    server.dated("prod-eu-old", utc("2020-01-01 00:00"));
    let exists = |k: &str| server.object_file(k).exists();
    let all_there = || dates.iter().all(|(b, _)| exists(&format!("prod-{b}")));
    let tmp = tempfile::tempdir().unwrap();
    let summary = tmp.path().join("termination-log");
    let prod = with(
        &server.job_env(),
        &[
            ("CLUSTER", "prod"),
            ("TERMINATION_LOG", summary.to_str().unwrap()),
        ],
    );
    // daily 2: b1 (05-02), b3 (05-01); weekly 2: b1 (week 18), b5 (week 17).
    let policy = ["--keep-daily", "2", "--keep-weekly", "2"];
    let plan = |r: &Run, key: &str| -> String {
        r.stderr
            .lines()
            .find(|l| l.contains("\"plan\"") && l.contains(&format!("\"key\":\"{key}\"")))
            .unwrap_or_else(|| panic!("no plan line for {key}: {}", r.stderr))
            .to_string()
    };

    let r = run("delete", &prod, &[&policy[..], &["--dry-run"]].concat());
    r.assert_code(0);
    assert!(all_there(), "a dry run deletes nothing");
    for (key, action) in [
        ("prod-b1", "keep"),
        ("prod-b2", "delete"),
        ("prod-b3", "keep"),
        ("prod-b4", "delete"),
        ("prod-b5", "keep"),
        ("prod-b6", "delete"),
    ] {
        let line = plan(&r, key);
        assert!(
            line.contains(&format!("\"action\":\"{action}\"")),
            "{key}: {line}"
        );
    }
    assert!(plan(&r, "prod-b1").contains("newest, daily, weekly"));
    assert!(plan(&r, "prod-b5").contains("\"rules\":\"weekly\""));
    assert!(
        !r.stderr.contains("prod-eu-old"),
        "not prod's: {}",
        r.stderr
    );

    // The store refuses the first deletion (an object lock, a legal hold, a
    // bucket policy: here a 403 AccessDenied): it is skipped, the others go, the
    // run succeeds and says so.
    let refuse = || {
        Proxy::start(
            server.port,
            vec![Rule::once(Op::Delete, 1, Fault::Error(403, "AccessDenied"))],
        )
    };
    let proxy = refuse();
    let via = |proxy: &Proxy| with(&prod, &[("ENDPOINT", &format!("127.0.0.1:{}", proxy.port))]);
    let r = run("delete", &via(&proxy), &policy);
    r.assert_code(0);
    assert!(r.stderr.contains("refused to delete"), "{}", r.stderr);
    assert!(exists("prod-b2"), "refused: still there");
    assert!(!exists("prod-b4") && !exists("prod-b6"), "{}", r.stderr);
    for kept in ["prod-b1", "prod-b3", "prod-b5", "prod-eu-old"] {
        assert!(exists(kept), "{kept}");
    }
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(s["retention"]["deleted"], 2, "{s}");
    assert_eq!(s["retention"]["skipped"], 1, "{s}");
    assert_eq!(s["retention"]["kept"], 3, "{s}");
    // With --strict the refusal fails the run (77), after trying the rest.
    let proxy = refuse();
    run(
        "delete",
        &via(&proxy),
        &[&policy[..], &["--strict"]].concat(),
    )
    .assert_code(77);
    assert!(exists("prod-b2"));
    // Once the store allows it, it goes.
    run("delete", &prod, &policy).assert_code(0);
    assert!(!exists("prod-b2"));
    for kept in ["prod-b1", "prod-b3", "prod-b5", "prod-eu-old"] {
        assert!(exists(kept), "{kept}");
    }
}

#[test]
fn bad_policy_settings_are_named_and_delete_nothing() {
    let server = S3Server::start();
    store_as(&server, "prod", "b1");
    store_as(&server, "prod", "b2");
    server.age("prod-b2", 48);
    let prod = with(&server.job_env(), &[("CLUSTER", "prod")]);
    for (args, var) in [
        (["--keep-daily", "seven"], "KEEP_DAILY"),
        (["--keep-within", "1w"], "KEEP_WITHIN"),
        (["--timezone", "Europe/Berlin"], "RETENTION_TIMEZONE"),
        (["--keep-last", "0"], "KEEP_LAST"),
    ] {
        let r = run("delete", &prod, &args);
        r.assert_code(78);
        assert!(r.error_lines()[0].contains(var), "{var}: {}", r.stderr);
    }
    let r = run(
        "delete",
        &without(&prod, &["CLUSTER"]),
        &["--keep-daily", "1"],
    );
    r.assert_code(78);
    assert!(
        r.error_lines()[0].contains("KEEP_DAILY needs CLUSTER"),
        "{}",
        r.stderr
    );
    assert!(server.object_file("prod-b1").exists() && server.object_file("prod-b2").exists());
}

/// A RETENTION_PREFIX whose directory holds a character object_store's
/// `Path::from` would escape (`~`) lists that directory as the keys have it, so
/// the older backups under it are pruned.
#[test]
fn keep_lists_a_prefix_directory_with_odd_characters_as_written() {
    let server = S3Server::start();
    for n in 1..=3 {
        let key = format!("~team/prod-daily-{n}");
        let env = with(
            &server.job_env(),
            &[
                ("CLUSTER", "prod"),
                ("OBJECT_KEY", &key),
                (
                    "SNAPSHOT_FILE",
                    fixture("etcd-3.4-small.db.gz").to_str().unwrap(),
                ),
            ],
        );
        run("store", &env, &[]).assert_code(0);
        server.age(&key, 10 + n);
    }
    let prod = with(&server.job_env(), &[("CLUSTER", "prod")]);
    let r = run("delete", &prod, &["--keep", "1", "--prefix", "~team/prod-"]);
    r.assert_code(0);
    let exists = |k: &str| server.object_file(k).exists();
    assert!(exists("~team/prod-daily-1"), "the newest is kept");
    for pruned in ["~team/prod-daily-2", "~team/prod-daily-3"] {
        assert!(!exists(pruned), "{pruned}: pruned\n{}", r.stderr);
    }
    // A directory part no object key can have is a configuration error.
    let r = run("delete", &prod, &["--keep", "1", "--prefix", "team//prod-"]);
    r.assert_code(78);
    assert!(r.stderr.contains("RETENTION_PREFIX"), "{}", r.stderr);
}
