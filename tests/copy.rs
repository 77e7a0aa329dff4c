//! `copy` between two s3s-fs servers and file://: one key, `--all` (other
//! clusters and foreign objects stay behind), a second run skipping everything,
//! corrupt sources refused with nothing left at the target, and a kops store
//! copied then listed at the target.

mod common;

use std::path::Path;

use common::*;

/// The target's environment (server `to`) with the source's (`from`) as
/// SOURCE_* twins, and the summary written to `log`.
fn copy_env(from: &S3Server, to: &S3Server, log: &Path) -> Vec<(String, String)> {
    with(
        &to.job_env(),
        &[
            ("SOURCE_ENDPOINT", &from.endpoint()),
            ("SOURCE_INSECURE", "true"),
            ("TERMINATION_LOG", log.to_str().unwrap()),
        ],
    )
}

/// Stores `bytes` on `server` as `$cluster-$name` with `store`.
fn store(server: &S3Server, cluster: &str, name: &str, bytes: &[u8], dir: &Path) {
    let file = write_file(dir, name, bytes);
    let env = with(
        &server.job_env(),
        &[
            ("CLUSTER", cluster),
            ("BACKUP_TO_CREATE", name),
            ("SNAPSHOT_FILE", file.to_str().unwrap()),
        ],
    );
    run("store", &env, &[]).assert_code(0);
}

fn summary(log: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(log).unwrap()).unwrap()
}

/// The object's user metadata as s3cmd shows it (`x-amz-meta-NAME: value`).
fn metadata(server: &S3Server, key: &str, name: &str) -> Option<String> {
    let out = server.s3cmd(&["info", &format!("s3://{BUCKET}/{key}")]);
    assert!(out.status.success(), "s3cmd info {key}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let want = format!("x-amz-meta-{name}:");
    text.lines()
        .find_map(|l| l.trim().strip_prefix(&want).map(|v| v.trim().to_string()))
}

#[test]
fn one_key_then_all_of_the_cluster_then_nothing_left_to_copy() {
    let (a, b) = (S3Server::start(), S3Server::start());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("summary.json");
    let first = gzip(&synthetic_snapshot(64, 1));
    let second = gzip(&synthetic_snapshot(64, 2));
    store(&a, CLUSTER, "first.db.gz", &first, dir.path());
    store(&a, CLUSTER, "second.db.gz", &second, dir.path());
    // Another cluster whose keys share the prefix, and an object nobody stored.
    let other_cluster = format!("{CLUSTER}-eu");
    store(&a, &other_cluster, "x.db.gz", &first, dir.path());
    let foreign = write_file(dir.path(), "notes.txt", b"not a backup");
    a.s3cmd_put(&foreign, &format!("{CLUSTER}-notes.txt"));

    let env = copy_env(&a, &b, &log);
    let key = format!("{CLUSTER}-first.db.gz");
    let from = format!("s3://{BUCKET}");
    let r = run(
        "copy",
        &env,
        &["--from", &from, "--to", &from, "--key", &key],
    );
    // The same bucket name on two servers is two places: only the endpoints differ.
    r.assert_code(0);
    assert_eq!(std::fs::read(b.object_file(&key)).unwrap(), first);
    assert_eq!(
        metadata(&b, &key, "sha256").as_deref(),
        Some(sha256_hex(&first).as_str())
    );
    assert_eq!(
        metadata(&b, &key, "snapjob-cluster").as_deref(),
        Some(CLUSTER)
    );
    let s = summary(&log);
    assert_eq!(s["copy"]["copied"], 1, "{s}");
    assert_eq!(s["bytes"], first.len() as u64, "{s}");
    assert!(!r.all().contains(SECRET_KEY));

    let r = run("copy", &env, &["--from", &from, "--to", &from, "--all"]);
    r.assert_code(0);
    let s = summary(&log);
    assert_eq!(
        (&s["copy"]["copied"], &s["copy"]["skipped"]),
        (&1.into(), &1.into()),
        "{s}"
    );
    assert_eq!(
        std::fs::read(b.object_file(&format!("{CLUSTER}-second.db.gz"))).unwrap(),
        second
    );
    assert!(!b.object_file(&format!("{other_cluster}-x.db.gz")).exists());
    assert!(!b.object_file(&format!("{CLUSTER}-notes.txt")).exists());

    // Everything is there with the same SHA-256: nothing is sent again.
    let before = std::fs::metadata(b.object_file(&key))
        .unwrap()
        .modified()
        .unwrap();
    let r = run("copy", &env, &["--from", &from, "--to", &from, "--all"]);
    r.assert_code(0);
    let s = summary(&log);
    assert_eq!(
        (&s["copy"]["copied"], &s["copy"]["skipped"]),
        (&0.into(), &2.into()),
        "{s}"
    );
    assert_eq!(s["bytes"], 0, "{s}");
    let after = std::fs::metadata(b.object_file(&key))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after, "a skipped object is not rewritten");
    assert!(b.leftover_uploads().is_empty());

    // Retention at the target (`delete` against it) counts the copies as the
    // cluster's backups, by the metadata carried over: `--keep 1` of two deletes one.
    let r = run("delete", &b.job_env(), &["--keep", "1"]);
    r.assert_code(0);
    let left = [&key, &format!("{CLUSTER}-second.db.gz")]
        .iter()
        .filter(|k| b.object_file(k).exists())
        .count();
    assert_eq!(left, 1, "{}", r.all());
    // An object that is not a snapshot (nor age-encrypted) is refused by --key too.
    let notes = format!("{CLUSTER}-notes.txt");
    run(
        "copy",
        &env,
        &["--from", &from, "--to", &from, "--key", &notes],
    )
    .assert_code(65);
    assert!(!b.object_file(&notes).exists());
    assert!(b.leftover_uploads().is_empty());
    // A key the source does not hold: 12; a bad URL: 78 naming the variable.
    run(
        "copy",
        &env,
        &["--from", &from, "--to", &from, "--key", "nope"],
    )
    .assert_code(12);
    let r = run(
        "copy",
        &env,
        &["--from", "gopher://x", "--to", &from, "--key", "k"],
    );
    r.assert_code(78);
    assert!(r.all().contains("COPY_FROM"), "{}", r.all());
}

#[test]
fn explicit_source_credentials_and_file_urls_on_either_side() {
    let (a, b) = (S3Server::start(), S3Server::start());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("summary.json");
    let site = dir.path().join("site");
    let bytes = gzip(&synthetic_snapshot(32, 3));
    store(&a, CLUSTER, "f.db.gz", &bytes, dir.path());
    let key = format!("{CLUSTER}-f.db.gz");
    let s3 = format!("s3://{BUCKET}");
    let file = format!("file://{}", site.display());
    // S3 -> file://, the source's own credentials given.
    let env = with(
        &copy_env(&a, &b, &log),
        &[
            ("SOURCE_ACCESS_KEY_ID", ACCESS_KEY),
            ("SOURCE_SECRET_ACCESS_KEY", SECRET_KEY),
        ],
    );
    run("copy", &env, &["--from", &s3, "--to", &file, "--key", &key]).assert_code(0);
    assert_eq!(std::fs::read(site.join(&key)).unwrap(), bytes);
    // A wrong source secret is the source's failure: 77, and no secret shown.
    let bad = with(&env, &[("SOURCE_SECRET_ACCESS_KEY", "wrong-secret-value")]);
    let r = run("copy", &bad, &["--from", &s3, "--to", &file, "--key", &key]);
    r.assert_code(77);
    assert!(!r.all().contains("wrong-secret-value") && !r.all().contains(SECRET_KEY));

    // file:// -> S3 (server b): the file records no SHA-256, the trailer is
    // checked; a second run hashes both sides and skips.
    let to_b = b.job_env();
    let plain = with(&to_b, &[("TERMINATION_LOG", log.to_str().unwrap())]);
    run(
        "copy",
        &plain,
        &["--from", &file, "--to", &s3, "--key", &key],
    )
    .assert_code(0);
    assert_eq!(std::fs::read(b.object_file(&key)).unwrap(), bytes);
    let r = run(
        "copy",
        &plain,
        &["--from", &file, "--to", &s3, "--key", &key],
    );
    r.assert_code(0);
    assert_eq!(summary(&log)["copy"]["skipped"], 1);
}

#[test]
fn a_corrupt_source_object_exits_65_and_leaves_nothing_at_the_target() {
    let (a, b) = (S3Server::start(), S3Server::start());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("summary.json");
    let env = with(&copy_env(&a, &b, &log), &[("PART_SIZE", "5MiB")]);
    let s3 = format!("s3://{BUCKET}");

    // 1. A raw snapshot stored with its SHA-256, then replaced on the server's
    // disk by another valid snapshot of the same size: the trailer passes, the
    // recorded SHA-256 does not.
    let good = synthetic_snapshot(64, 4);
    store(&a, CLUSTER, "swapped.db", &good, dir.path());
    let swapped = format!("{CLUSTER}-swapped.db");
    // (synthetic_snapshot's seeds 4 and 5 are one stream: `seed | 1`.)
    let other = synthetic_snapshot(64, 8);
    assert_ne!(other, good);
    std::fs::write(a.object_file(&swapped), other).unwrap();
    let r = run(
        "copy",
        &env,
        &["--from", &s3, "--to", &s3, "--key", &swapped],
    );
    r.assert_code(65);
    assert!(r.all().contains("records sha256"), "{}", r.all());
    assert!(!b.object_file(&swapped).exists());
    assert!(
        b.leftover_uploads().is_empty(),
        "{:?}",
        b.leftover_uploads()
    );

    // 2. Uploaded by s3cmd with a SHA-256 that matches its bytes, in two parts,
    // but the etcd trailer broken: refused after both parts were sent; a good
    // backup beside it is still copied.
    let mut broken = synthetic_snapshot(1600, 6);
    let last = broken.len() - 1;
    broken[last] ^= 1;
    let file = write_file(dir.path(), "broken.db", &broken);
    let key = format!("{CLUSTER}-broken.db");
    let put = a.s3cmd(&[
        "put",
        &format!("--add-header=x-amz-meta-sha256:{}", sha256_hex(&broken)),
        &format!("--add-header=x-amz-meta-snapjob-cluster:{CLUSTER}"),
        file.to_str().unwrap(),
        &format!("s3://{BUCKET}/{key}"),
    ]);
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let fine = gzip(&synthetic_snapshot(16, 10));
    store(&a, CLUSTER, "fine.db.gz", &fine, dir.path());
    let r = run("copy", &env, &["--from", &s3, "--to", &s3, "--all"]);
    r.assert_code(65);
    assert!(r.all().contains(&key), "{}", r.all());
    assert!(!b.object_file(&key).exists());
    assert!(
        b.leftover_uploads().is_empty(),
        "{:?}",
        b.leftover_uploads()
    );
    assert_eq!(
        std::fs::read(b.object_file(&format!("{CLUSTER}-fine.db.gz"))).unwrap(),
        fine
    );
    let s = summary(&log);
    assert_eq!(s["exit_code"], 65, "{s}");
}

#[test]
fn an_age_encrypted_object_is_copied_as_bytes_checked_by_its_sha256() {
    let (a, b) = (S3Server::start(), S3Server::start());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("summary.json");
    let env = copy_env(&a, &b, &log);
    let s3 = format!("s3://{BUCKET}");
    let mut age = b"age-encryption.org/v1\n-> X25519 stanza\n--- mac\n".to_vec();
    age.extend_from_slice(&synthetic_snapshot(4, 8));
    let file = write_file(dir.path(), "e.db.gz.age", &age);
    for (key, sha) in [
        ("enc-good", sha256_hex(&age)),
        ("enc-bad", sha256_hex(b"something else")),
    ] {
        let put = a.s3cmd(&[
            "put",
            &format!("--add-header=x-amz-meta-sha256:{sha}"),
            file.to_str().unwrap(),
            &format!("s3://{BUCKET}/{key}"),
        ]);
        assert!(put.status.success());
    }
    let r = run(
        "copy",
        &env,
        &["--from", &s3, "--to", &s3, "--key", "enc-good"],
    );
    r.assert_code(0);
    assert!(r.all().contains("age-encrypted"), "{}", r.all());
    assert_eq!(std::fs::read(b.object_file("enc-good")).unwrap(), age);
    run(
        "copy",
        &env,
        &["--from", &s3, "--to", &s3, "--key", "enc-bad"],
    )
    .assert_code(65);
    assert!(!b.object_file("enc-bad").exists());
    assert!(b.leftover_uploads().is_empty());
}

#[test]
fn a_kops_store_copied_between_two_servers_is_listed_at_the_target() {
    let (a, b) = (S3Server::start(), S3Server::start());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("summary.json");
    let source = format!("s3://{BUCKET}/kops/etcd/main");
    let target = format!("s3://{BUCKET}/site-b/etcd/main");
    for seed in [10, 12] {
        let file = write_file(
            dir.path(),
            &format!("{seed}.db.gz"),
            &gzip(&synthetic_snapshot(16, seed)),
        );
        let r = run(
            "store",
            &a.job_env(),
            &[
                "--backup-store",
                &source,
                "--file",
                file.to_str().unwrap(),
                "--etcd-version",
                "3.5.9",
            ],
        );
        r.assert_code(0);
    }
    let listed_a = run(
        "restore",
        &a.job_env(),
        &["--backup-store", &source, "list-backups"],
    );
    listed_a.assert_code(0);
    let names: Vec<String> = listed_a.stdout.lines().map(String::from).collect();
    assert_eq!(names.len(), 2, "{}", listed_a.all());

    let env = copy_env(&a, &b, &log);
    let args = [
        "--etcd-manager",
        "--from",
        &source,
        "--to",
        &target,
        "--all",
    ];
    run("copy", &env, &args).assert_code(0);
    let listed_b = run(
        "restore",
        &b.job_env(),
        &["--backup-store", &target, "list-backups"],
    );
    listed_b.assert_code(0);
    assert_eq!(
        listed_b.stdout.lines().collect::<Vec<_>>(),
        names.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(summary(&log)["copy"]["copied"], 2);
    // Again: both are there, nothing is copied.
    run("copy", &env, &args).assert_code(0);
    let s = summary(&log);
    assert_eq!(
        (&s["copy"]["copied"], &s["copy"]["skipped"]),
        (&0.into(), &2.into()),
        "{s}"
    );
    assert!(b.leftover_uploads().is_empty());
    // A meta file without its data at the source: reported (65), not listed at
    // the target, and the others still there.
    let orphan = "2020-01-02T03:04:05Z-000000";
    let meta = a.object_file(&format!("kops/etcd/main/{}/_etcd_backup.meta", names[0]));
    let dir_a = a.object_file(&format!("kops/etcd/main/{orphan}"));
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::copy(&meta, dir_a.join("_etcd_backup.meta")).unwrap();
    let r = run("copy", &env, &args);
    r.assert_code(65);
    assert!(r.all().contains("meta file but no"), "{}", r.all());
    let listed_b = run(
        "restore",
        &b.job_env(),
        &["--backup-store", &target, "list-backups"],
    );
    assert_eq!(listed_b.stdout.lines().count(), 2, "{}", listed_b.all());
}

/// A SIGTERM while a part upload hangs: the upload is aborted (no parts left,
/// nothing at the target key) and the run exits 143.
#[test]
fn a_signal_mid_copy_aborts_the_upload() {
    use common::proxy::{Fault, Op, Proxy, Rule};
    let (a, b) = (S3Server::start(), S3Server::start());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("summary.json");
    let proxy = Proxy::start(b.port, vec![Rule::once(Op::UploadPart, 2, Fault::Stall)]);
    let snap = synthetic_snapshot(1600, 20);
    store(&a, CLUSTER, "big.db", &snap, dir.path());
    let key = format!("{CLUSTER}-big.db");
    let env = with(
        &copy_env(&a, &b, &log),
        &[
            ("ENDPOINT", &format!("127.0.0.1:{}", proxy.port)),
            ("PART_SIZE", "5MiB"),
            ("CONCURRENCY", "1"),
        ],
    );
    let s3 = format!("s3://{BUCKET}");
    let args = ["--from", &s3, "--to", &s3, "--key", &key];
    // Stopped while the stalled second part is at the proxy.
    let r = proxy.terminated_at((Op::UploadPart, 2), "copy", &env, &args);
    r.assert_code(143);
    assert!(proxy.count(Op::Abort) >= 1, "{}", r.all());
    assert!(!b.object_file(&key).exists());
    assert!(
        b.leftover_uploads().is_empty(),
        "{:?}",
        b.leftover_uploads()
    );
}

/// copy's own variables set to values a Secret or ConfigMap mistake produces:
/// never a panic, a code of the README's table, one error line. (The variables
/// that name where to connect are left out, as in no_loss.rs.)
#[test]
fn no_value_of_copys_variables_panics() {
    use common::proxy::{Fault, Proxy, Rule};
    let dir = tempfile::tempdir().unwrap();
    let refusing = Proxy::start(closed_port(), Rule::on_every_request(Fault::Status(403)));
    let env = with(
        &offline_env(),
        &[
            ("ENDPOINT", &format!("127.0.0.1:{}", refusing.port)),
            ("COPY_FROM", "s3://etcd-backups"),
            ("COPY_TO", &format!("file://{}/site", dir.path().display())),
            ("OBJECT_KEY", "k.db.gz"),
        ],
    );
    let vars = [
        "COPY_ALL",
        "OBJECT_KEY",
        "CLUSTER",
        "RETENTION_PREFIX",
        "SOURCE_ACCESS_KEY_ID",
        "SOURCE_SECRET_ACCESS_KEY",
        "SOURCE_SESSION_TOKEN",
        "SOURCE_INSECURE",
        "SOURCE_REGION",
        "SOURCE_CA_BUNDLE",
        "PART_SIZE",
        "CONCURRENCY",
        "DEADLINE",
    ];
    let values = ["x\n", "-1", "💥/../\u{7f}", &"a".repeat(5000)];
    for var in vars {
        for value in values {
            let r = Run::of(output_within(
                command("copy", &with(&env, &[(var, value)]), &[]).current_dir(dir.path()),
                "copy",
            ));
            let at = format!("{var}={:?}", value.chars().take(20).collect::<String>());
            assert!(!r.stderr.contains("panicked"), "{at}: {}", r.stderr);
            assert!(
                [0, 1, 12, 64, 65, 74, 75, 77, 78].contains(&r.code),
                "{at}: exit {}\n{}",
                r.code,
                r.stderr
            );
            if r.code != 0 {
                assert_eq!(r.error_lines().len(), 1, "{at}: {}", r.stderr);
            }
            assert!(!r.all().contains(SECRET_KEY), "{at}");
        }
    }
}

/// From s3s-fs to garage, each site with its own credentials (the source's as
/// SOURCE_*): two backups copied with their metadata, one in two parts; a
/// corrupt one refused with no upload left, as garage's own ListMultipartUploads
/// says; a second run copies nothing.
#[test]
fn to_garage_with_each_sites_own_credentials() {
    let (a, g) = (S3Server::start(), common::garage::Garage::start());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("summary.json");
    let big = synthetic_snapshot(1600, 30);
    let small = gzip(&synthetic_snapshot(16, 32));
    store(&a, CLUSTER, "big.db", &big, dir.path());
    store(&a, CLUSTER, "small.db.gz", &small, dir.path());
    let mut broken = gzip(&synthetic_snapshot(16, 34));
    let at = broken.len() / 2;
    broken[at] ^= 0x55;
    let file = write_file(dir.path(), "broken.db.gz", &broken);
    let put = a.s3cmd(&[
        "put",
        &format!("--add-header=x-amz-meta-sha256:{}", sha256_hex(&broken)),
        &format!("--add-header=x-amz-meta-snapjob-cluster:{CLUSTER}"),
        file.to_str().unwrap(),
        &format!("s3://{BUCKET}/{CLUSTER}-broken.db.gz"),
    ]);
    assert!(put.status.success());
    let env = with(
        &g.job_env(),
        &[
            ("SOURCE_ENDPOINT", &a.endpoint()),
            ("SOURCE_INSECURE", "true"),
            ("SOURCE_ACCESS_KEY_ID", ACCESS_KEY),
            ("SOURCE_SECRET_ACCESS_KEY", SECRET_KEY),
            ("PART_SIZE", "5MiB"),
            ("TERMINATION_LOG", log.to_str().unwrap()),
        ],
    );
    let s3 = format!("s3://{BUCKET}");
    let args = ["--from", s3.as_str(), "--to", s3.as_str(), "--all"];
    let r = run("copy", &env, &args);
    r.assert_code(65);
    assert!(r.all().contains("broken.db.gz"), "{}", r.all());
    assert_eq!(
        g.object(&format!("{CLUSTER}-big.db")).as_deref(),
        Some(&big[..])
    );
    assert_eq!(
        g.object(&format!("{CLUSTER}-small.db.gz")).as_deref(),
        Some(&small[..])
    );
    assert_eq!(g.object(&format!("{CLUSTER}-broken.db.gz")), None);
    assert!(g.uploads().is_empty(), "{:?}", g.uploads());
    let info = g.s3cmd(&["info", &format!("s3://{BUCKET}/{CLUSTER}-big.db")]);
    let info = String::from_utf8_lossy(&info.stdout).into_owned();
    assert!(info.contains(&sha256_hex(&big)), "{info}");

    let r = run("copy", &env, &args);
    r.assert_code(65);
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&log).unwrap()).unwrap();
    assert_eq!(s["exit_code"], 65);
    assert!(
        r.all().contains("\"copied\":0,\"skipped\":2"),
        "{}",
        r.all()
    );
    assert!(!r.all().contains(SECRET_KEY));
}

/// Everything from the environment (COPY_FROM, COPY_TO, COPY_ALL), the source
/// over HTTPS with its own CA (SOURCE_CA_BUNDLE) and region while the target
/// speaks plain HTTP (INSECURE=true, not inherited by SOURCE_ENDPOINT): the
/// source's TLS settings are its own. Without SOURCE_CA_BUNDLE the source's
/// certificate is not trusted (77).
#[test]
fn the_source_over_https_with_its_own_ca_from_the_environment() {
    use common::tls::{Ca, TlsFront};
    let (a, b) = (S3Server::start(), S3Server::start());
    let ca = Ca::new("site A CA");
    let front = TlsFront::start(a.port, &ca);
    let dir = tempfile::tempdir().unwrap();
    let bundle = write_file(dir.path(), "site-a.pem", ca.pem.as_bytes());
    let bytes = gzip(&synthetic_snapshot(16, 40));
    store(&a, CLUSTER, "tls.db.gz", &bytes, dir.path());
    let env = with(
        &b.job_env(),
        &[
            ("COPY_FROM", &format!("s3://{BUCKET}")),
            ("COPY_TO", &format!("s3://{BUCKET}")),
            ("COPY_ALL", "true"),
            (
                "SOURCE_ENDPOINT",
                &format!("https://127.0.0.1:{}", front.port),
            ),
            ("SOURCE_REGION", "eu-west-3"),
            ("SOURCE_CA_BUNDLE", bundle.to_str().unwrap()),
        ],
    );
    run("copy", &env, &[]).assert_code(0);
    let key = format!("{CLUSTER}-tls.db.gz");
    assert_eq!(std::fs::read(b.object_file(&key)).unwrap(), bytes);
    // A listing refused for the certificate: 77, not a retried connect error (75).
    let r = run("copy", &without(&env, &["SOURCE_CA_BUNDLE"]), &[]);
    r.assert_code(77);
    assert!(
        r.error_lines()[0].contains("certificate is not trusted"),
        "{}",
        r.all()
    );
}
