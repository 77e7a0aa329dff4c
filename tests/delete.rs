//! `delete` on the controller's contract: deleted, already absent and missing
//! bucket all exit 0 (the last with a warning); `--strict` makes a missing bucket 12.

mod common;

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
