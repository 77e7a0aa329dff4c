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

#[tokio::test]
async fn keep_prunes_to_the_newest_backups_under_the_prefix() {
    use object_store::{ObjectStoreExt, PutPayload, path::Path as ObjectPath};
    let server = S3Server::start();
    let client = snapjob::Remote::from_inputs(&snapjob::Inputs::from_env_vars(server.job_env()))
        .unwrap()
        .open(&snapjob::remote::ClientTuning::for_deadline(
            std::time::Duration::from_secs(30),
        ))
        .await
        .unwrap();
    let keys = ["b1.db.gz", "b2.db.gz", "b3.db.gz", "b4.db.gz"].map(|b| format!("{CLUSTER}-{b}"));
    for k in keys.iter().chain([&"other-cluster-b1.db.gz".to_string()]) {
        client
            .put(&ObjectPath::from(k.as_str()), PutPayload::from_static(b"x"))
            .await
            .unwrap();
    }
    // Retention only: no BACKUP_TO_DELETE.
    let r = run("delete", &server.job_env(), &["--keep", "2"]);
    r.assert_code(0);
    let exists = |k: &str| server.object_file(k).exists();
    assert!(
        !exists(&keys[0]) && !exists(&keys[1]),
        "the two oldest were pruned"
    );
    assert!(
        exists(&keys[2]) && exists(&keys[3]),
        "the two newest were kept"
    );
    assert!(
        exists("other-cluster-b1.db.gz"),
        "another cluster's backups are not touched"
    );
    // With a deletion first.
    let env = with(
        &server.job_env(),
        &[("BACKUP_TO_DELETE", "b4.db.gz"), ("KEEP_LAST", "1")],
    );
    run("delete", &env, &[]).assert_code(0);
    assert!(!exists(&keys[3]) && exists(&keys[2]));
    let r = run("delete", &server.job_env(), &["--keep", "0"]);
    r.assert_code(78);
    assert!(exists(&keys[2]), "nothing deleted on a bad setting");
}
