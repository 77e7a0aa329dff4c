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
    let put = server.s3cmd(&[
        "put",
        file.to_str().unwrap(),
        &format!("s3://{BUCKET}/{key}"),
    ]);
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
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
