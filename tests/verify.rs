//! `verify`: the restore drill. Its offline HashKV equals what live etcd 3.4 and
//! 3.5 members answer (puts, overwrites, deletes, leases, transactions,
//! compactions before and after a defrag); altered bbolt pages behind a recomputed
//! trailer are caught; `--latest`/`--all` pick the backups; a corrupt one exits
//! 65 naming it, after every selected backup got its line; metrics and the
//! termination message say the same.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use object_store::{Attribute, Attributes, ObjectStore, PutOptions, path::Path as ObjectPath};
use serde_json::Value;
use snapjob::{Inputs, Remote, transport::remote::ClientTuning};

/// The JSON lines `verify` printed on stdout.
fn lines(r: &Run) -> Vec<Value> {
    r.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// `verify --key KEY` on a file:// store at `dir`.
fn verify_file(dir: &Path, key: &str) -> Run {
    let env = vec![(
        "STORAGE_URL".to_string(),
        format!("file://{}", dir.display()),
    )];
    run(
        "verify",
        &env,
        &["--key", key, "--temp-dir", dir.to_str().unwrap()],
    )
}

/// `etcdctl txn` with its requests on stdin.
fn txn(ctl: &Path, endpoint: &str, script: &str) {
    with_stdin(ctl, endpoint, &["txn"], script);
}

/// `etcdctl put key` of a value too long for an argument, `len` bytes.
fn put_long(ctl: &Path, endpoint: &str, key: &str, len: usize) {
    let value: String = (0..len)
        .map(|i| char::from(b'a' + ((i * 7 + i / 1000) % 26) as u8))
        .collect();
    with_stdin(ctl, endpoint, &["put", key], &value);
}

fn with_stdin(ctl: &Path, endpoint: &str, args: &[&str], script: &str) {
    use std::io::Write;
    let mut child = Command::new(ctl)
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoint])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = wait_within(child, "etcdctl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The member's revision now.
fn revision(ctl: &Path, endpoint: &str) -> i64 {
    let got: Value =
        serde_json::from_str(&etcdctl(ctl, endpoint, &["get", "/none", "-w", "json"])).unwrap();
    got["header"]["revision"].as_i64().unwrap()
}

/// Saves a snapshot as `name` in `dir`, and compares `verify`'s view of it with
/// the member's HashKV at the same revision.
fn snapshot_matches_member(ctl: &Path, endpoint: &str, dir: &Path, name: &str, compact: i64) {
    let rev = revision(ctl, endpoint);
    etcdctl(
        ctl,
        endpoint,
        &["snapshot", "save", dir.join(name).to_str().unwrap()],
    );
    let live: Value = serde_json::from_str(&etcdctl(
        ctl,
        endpoint,
        &[
            "endpoint",
            "hashkv",
            "--rev",
            &rev.to_string(),
            "-w",
            "json",
        ],
    ))
    .unwrap();
    let live = &live[0]["HashKV"];
    let r = verify_file(dir, name);
    r.assert_code(0);
    let ours = &lines(&r)[0];
    assert_eq!(ours["result"], "ok", "{ours}");
    assert_eq!(ours["revision"].as_i64(), Some(rev), "{name}: {ours}");
    assert_eq!(
        ours["compact_revision"].as_i64(),
        Some(compact),
        "{name}: {ours}"
    );
    assert_eq!(
        ours["hash_kv"].as_u64(),
        live["hash"].as_u64(),
        "{name}: offline HashKV vs the member's at revision {rev}: {ours} / {live}"
    );
    assert_eq!(live["compact_revision"].as_i64(), Some(compact), "{live}");
}

#[test]
fn offline_hashkv_equals_the_members_on_etcd_3_4_and_3_5() {
    for (bin, ctl) in [
        (etcd34("etcd"), etcd34("etcdctl")),
        (etcd35("etcd"), etcd35("etcdctl")),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let e = Etcd::fresh(&bin, "m", &dir.path().join("data"), "hashkv-token");
        let ep = e.client_url.clone();
        let ctl = ctl.as_path();
        wait_healthy(ctl, &ep);
        // Values larger than a piece (bolt::PIECE): leaves with overflow pages,
        // hashed as they are read; one kept below the compaction, one
        // overwritten above it.
        put_long(ctl, &ep, "/big/a", 300_000);
        put_long(ctl, &ep, "/big/b", 100_000);
        for i in 0..12 {
            etcdctl(
                ctl,
                &ep,
                &["put", &format!("/k/{i}"), &format!("value {i}")],
            );
        }
        etcdctl(ctl, &ep, &["put", "/k/0", "overwritten"]);
        etcdctl(ctl, &ep, &["put", "/k/1", "overwritten"]);
        etcdctl(ctl, &ep, &["put", "/k/1", "twice"]);
        etcdctl(ctl, &ep, &["del", "/k/2"]);
        let lease = etcdctl(ctl, &ep, &["lease", "grant", "600"]);
        let id = lease.split_whitespace().nth(1).unwrap().to_string();
        etcdctl(ctl, &ep, &["put", "/leased", "x", "--lease", &id]);
        txn(
            ctl,
            &ep,
            "value(\"/k/3\") = \"value 3\"\n\nput /k/3 in-txn\nput /txn/a one\ndel /k/4\n\nput /k/3 no\n\n",
        );
        // Never compacted: etcd says -1.
        snapshot_matches_member(ctl, &ep, dir.path(), "plain.db", -1);

        // A compaction in the middle of the history: older revisions of /k/0,
        // /k/1 and /k/3 go, their newest stay.
        let mid = revision(ctl, &ep) - 4;
        etcdctl(ctl, &ep, &["compact", &mid.to_string(), "--physical"]);
        etcdctl(ctl, &ep, &["put", "/k/5", "after compaction"]);
        put_long(ctl, &ep, "/big/b", 90_000);
        etcdctl(ctl, &ep, &["del", "/k/6"]);
        snapshot_matches_member(ctl, &ep, dir.path(), "compacted.db", mid);

        // A deletion at the compact revision itself, then a defrag.
        etcdctl(ctl, &ep, &["del", "/k/7"]);
        let at_delete = revision(ctl, &ep);
        etcdctl(ctl, &ep, &["put", "/k/8", "later"]);
        etcdctl(ctl, &ep, &["compact", &at_delete.to_string(), "--physical"]);
        etcdctl(ctl, &ep, &["defrag"]);
        etcdctl(ctl, &ep, &["put", "/k/0", "after defrag"]);
        etcdctl(ctl, &ep, &["del", "/k/9"]);
        snapshot_matches_member(ctl, &ep, dir.path(), "defragged.db", at_delete);

        // The facts: live keys and leases as etcd counts them. With --restore-test
        // the member data dir built from it serves the same revision, HashKV, keys
        // and leases (its db is one root page larger: restore rewrites the root).
        let env = vec![(
            "STORAGE_URL".to_string(),
            format!("file://{}", dir.path().display()),
        )];
        let temp = dir.path().join("tmp");
        std::fs::create_dir(&temp).unwrap();
        let r = run(
            "verify",
            &env,
            &[
                "--key",
                "defragged.db",
                "--restore-test",
                "--temp-dir",
                temp.to_str().unwrap(),
            ],
        );
        r.assert_code(0);
        let facts = &lines(&r)[0];
        assert_eq!(
            facts["restore_test"].as_u64(),
            Some(facts["db_bytes"].as_u64().unwrap() + 4096),
            "{facts}"
        );
        assert_eq!(
            std::fs::read_dir(&temp).unwrap().count(),
            0,
            "nothing left behind"
        );
        let count: Value = serde_json::from_str(&etcdctl(
            ctl,
            &ep,
            &["get", "", "--prefix", "--keys-only", "-w", "json"],
        ))
        .unwrap();
        assert_eq!(facts["keys"], count["count"], "{facts}");
        assert_eq!(facts["leases"], 1, "{facts}");
        assert_eq!(facts["members"].as_array().unwrap().len(), 1, "{facts}");
        let status: Value =
            serde_json::from_str(&etcdctl(ctl, &ep, &["endpoint", "status", "-w", "json"]))
                .unwrap();
        let cluster_id = status[0]["Status"]["header"]["cluster_id"]
            .as_u64()
            .unwrap();
        assert_eq!(facts["cluster_id"], format!("{cluster_id:x}"), "{facts}");

        // No live key left: etcd's compaction rule then skips nothing, and the
        // revisions compaction kept below the compact revision are hashed.
        etcdctl(ctl, &ep, &["del", "", "--prefix"]);
        let before = revision(ctl, &ep) - 1;
        etcdctl(ctl, &ep, &["compact", &before.to_string(), "--physical"]);
        snapshot_matches_member(ctl, &ep, dir.path(), "emptied.db", before);
        let r = verify_file(dir.path(), "emptied.db");
        assert_eq!(lines(&r)[0]["keys"], 0);
    }
}

/// The fixture's db with `alter` applied and its SHA-256 trailer recomputed, so
/// the trailer check passes.
fn altered(alter: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let raw = std::fs::read(fixture("etcd-3.4-small.db")).unwrap();
    let mut db = raw[..raw.len() - 32].to_vec();
    alter(&mut db);
    let sum = snapjob::base::digest::Sha256::digest(&db);
    db.extend_from_slice(&sum);
    db
}

/// The offset of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{:?} not in the db", String::from_utf8_lossy(needle)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_pages_behind_a_recomputed_trailer_are_caught() {
    let server = S3Server::start();
    let client = Remote::from_inputs(&Inputs::from_env_vars(server.job_env()))
        .unwrap()
        .open(&ClientTuning::for_deadline(std::time::Duration::from_secs(
            30,
        )))
        .await
        .unwrap();
    // The member's answer for the original, as store records it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("etcd-3.4-small.db"), dir.path().join("orig.db")).unwrap();
    let orig = lines(verify_file(dir.path(), "orig.db").assert_code(0))[0].clone();
    let mut attrs = Attributes::new();
    attrs.insert(
        Attribute::Metadata("snapjob-revision".into()),
        orig["revision"].to_string().into(),
    );
    attrs.insert(
        Attribute::Metadata("snapjob-hashkv".into()),
        orig["hash_kv"].to_string().into(),
    );
    attrs.insert(
        Attribute::Metadata("snapjob-compact-revision".into()),
        "0".into(),
    );
    attrs.insert(
        Attribute::Metadata("snapjob-cluster".into()),
        CLUSTER.into(),
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            // A value's bytes changed: the structure is intact, the data is not.
            "value",
            altered(|db| {
                let at = find(db, b"value-100-") + 12;
                db[at] ^= 0x20;
            }),
            "HashKV mismatch",
        ),
        (
            // A page's id in its header changed.
            "page-id",
            altered(|db| db[2 * 4096] ^= 0x01),
            "bbolt check",
        ),
        (
            // The high-water mark in both meta pages raised past the file, checksums recomputed.
            "high-water",
            altered(|db| {
                for m in [0usize, 4096] {
                    let at = m + 16 + 40;
                    let hwm = u64::from_le_bytes(db[at..at + 8].try_into().unwrap()) + 5;
                    db[at..at + 8].copy_from_slice(&hwm.to_le_bytes());
                    let sum = db[m + 16..m + 16 + 56]
                        .iter()
                        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                            (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
                        });
                    db[m + 16 + 56..m + 16 + 64].copy_from_slice(&sum.to_le_bytes());
                }
            }),
            "bbolt check",
        ),
        (
            // One meta page's checksum broken.
            "meta",
            altered(|db| db[4096 + 16 + 56] ^= 0xff),
            "meta page 1: checksum mismatch",
        ),
    ];
    for (name, body, _) in &cases {
        client
            .put_opts(
                &ObjectPath::parse(format!("{CLUSTER}-{name}.db")).unwrap(),
                body.clone().into(),
                PutOptions {
                    attributes: attrs.clone(),
                    ..PutOptions::default()
                },
            )
            .await
            .unwrap();
    }
    let mut env = with(&server.job_env(), &[]);
    env.push(("TMPDIR".into(), dir.path().to_str().unwrap().into()));
    for (name, _, want) in &cases {
        let r = tokio::task::block_in_place(|| {
            run("verify", &env, &["--key", &format!("{CLUSTER}-{name}.db")])
        });
        r.assert_code(65);
        let line = &lines(&r)[0];
        assert_eq!(line["result"], "corrupt", "{line}");
        let error = line["error"].as_str().unwrap();
        assert!(error.contains(want), "{name}: {error}");
        assert!(
            r.error_lines()
                .iter()
                .any(|l| l.contains(&format!("{name}.db"))),
            "{}",
            r.stderr
        );
    }
    // Nothing left in the temp dir but the original.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("orig.db")]);
}

/// Stores the fixture as `$CLUSTER-<name>` with `store` (which records the
/// cluster and the SHA-256), `hours_ago` old.
fn stored(server: &S3Server, name: &str, hours_ago: u64) {
    let env = with(
        &server.job_env(),
        &[
            ("BACKUP_TO_CREATE", name),
            (
                "SNAPSHOT_FILE",
                fixture("etcd-3.4-small.db.gz").to_str().unwrap(),
            ),
        ],
    );
    run("store", &env, &[]).assert_code(0);
    server.age(&format!("{CLUSTER}-{name}"), hours_ago);
}

#[test]
fn latest_picks_this_clusters_newest_and_a_corrupt_one_exits_65_naming_it() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    stored(&server, "a.db.gz", 3);
    stored(&server, "b.db.gz", 2);
    stored(&server, "c.db.gz", 1);
    // Newest of all, under the prefix, but not recorded as this cluster's.
    server.s3cmd_put(
        &fixture("etcd-3.4-small.db"),
        &format!("{CLUSTER}-foreign.db"),
    );
    let env = with(
        &server.job_env(),
        &[("TMPDIR", dir.path().to_str().unwrap())],
    );
    let keys = |r: &Run| -> Vec<String> {
        lines(r)
            .iter()
            .filter_map(|l| l["key"].as_str().map(str::to_string))
            .collect()
    };

    let r = run("verify", &env, &["--latest", "2"]);
    r.assert_code(0);
    assert_eq!(
        keys(&r),
        [format!("{CLUSTER}-c.db.gz"), format!("{CLUSTER}-b.db.gz")]
    );
    let first = &lines(&r)[0];
    assert_eq!(first["result"], "ok");
    assert_eq!(first["sha256_checked"], true);
    assert_eq!(first["gzip"], true);
    assert_eq!(first["revision"], 208, "{first}");
    let summary = lines(&r).pop().unwrap();
    assert_eq!(
        (summary["backups"].as_u64(), summary["passed"].as_u64()),
        (Some(2), Some(2))
    );

    let r = run("verify", &env, &["--all"]);
    r.assert_code(0);
    assert_eq!(keys(&r).len(), 4, "{}", r.stdout);
    assert_eq!(keys(&r)[0], format!("{CLUSTER}-foreign.db"));

    // b corrupted where it is stored: the recorded SHA-256 no longer matches.
    let file = server.object_file(&format!("{CLUSTER}-b.db.gz"));
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    let modified = std::fs::metadata(&file).unwrap().modified().unwrap();
    std::fs::write(&file, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    let (port, pushes) = http_receiver();
    let log = dir.path().join("termination-log");
    let env = with(
        &env,
        &[
            ("PUSHGATEWAY_URL", &format!("http://127.0.0.1:{port}")),
            ("TERMINATION_LOG", log.to_str().unwrap()),
        ],
    );
    let r = run("verify", &env, &["--latest", "3"]);
    r.assert_code(65);
    let results: Vec<(String, String)> = lines(&r)
        .iter()
        .filter(|l| l["key"].is_string())
        .map(|l| {
            (
                l["key"].as_str().unwrap().into(),
                l["result"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        results,
        [
            (format!("{CLUSTER}-c.db.gz"), "ok".into()),
            (format!("{CLUSTER}-b.db.gz"), "corrupt".into()),
            (format!("{CLUSTER}-a.db.gz"), "ok".into()),
        ]
    );
    let error = r.error_lines().pop().unwrap();
    // Named with what failed (here the gzip CRC sees the flipped byte first).
    assert!(
        error.contains(&format!(
            "1 of 3 backups failed verification: {CLUSTER}-b.db.gz: the gzip"
        )),
        "{error}"
    );
    let message: Value = serde_json::from_str(&std::fs::read_to_string(&log).unwrap()).unwrap();
    assert_eq!(message["operation"], "verify");
    assert_eq!(message["exit_code"], 65);
    assert!(
        message["error"].as_str().unwrap().contains("b.db.gz"),
        "{message}"
    );
    let mut bodies = Vec::new();
    while let Ok((_, path, body)) = pushes.recv_timeout(std::time::Duration::from_secs(10)) {
        assert_eq!(
            path,
            format!("/metrics/job/snapjob/cluster/{CLUSTER}/operation/verify")
        );
        bodies.push(body);
        if bodies.len() == 2 {
            break;
        }
    }
    let all = bodies.join("");
    assert!(
        all.contains(&format!(
            "snapjob_verify_passed{{key=\"{CLUSTER}-b.db.gz\"}} 0\n"
        )),
        "{all}"
    );
    assert!(
        all.contains(&format!(
            "snapjob_verify_passed{{key=\"{CLUSTER}-a.db.gz\"}} 1\n"
        )),
        "{all}"
    );
    assert!(
        all.contains(&format!(
            "snapjob_verify_revision{{key=\"{CLUSTER}-a.db.gz\"}} 208\n"
        )),
        "{all}"
    );
    assert!(all.contains("snapjob_verify_failed 1\n"), "{all}");
    assert!(
        !all.contains("snapjob_verify_last_success_timestamp_seconds"),
        "{all}"
    );
    assert!(all.contains("snapjob_exit_code 65\n"), "{all}");
    // Only what the run brought: the termination log.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("termination-log")]);
}

#[test]
fn bad_selections_and_missing_backups() {
    let server = S3Server::start();
    let env = server.job_env();
    let r = run("verify", &env, &[]);
    r.assert_code(64);
    assert!(r.stderr.contains("exactly one of"), "{}", r.stderr);
    run("verify", &env, &["--all", "--latest", "1"]).assert_code(64);
    let r = run("verify", &env, &["--key", "nothing-here.db"]);
    r.assert_code(12);
    let r = run("verify", &env, &["--latest", "2"]);
    r.assert_code(12);
    assert!(r.stderr.contains("no backups to verify"), "{}", r.stderr);
    let local = vec![
        ("STORAGE_URL".to_string(), "file:///tmp".to_string()),
        ("CLUSTER".into(), "c".into()),
    ];
    let r = run("verify", &local, &["--latest", "2"]);
    r.assert_code(78);
    assert!(
        r.stderr.contains("--latest needs an S3 store"),
        "{}",
        r.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_shows_the_inventory_newest_first_with_what_is_recorded() {
    let server = S3Server::start();
    tokio::task::block_in_place(|| {
        stored(&server, "old.db.gz", 5);
        server.s3cmd_put(
            &fixture("etcd-3.4-small.db"),
            &format!("{CLUSTER}-s3cmd.db"),
        );
        server.age(&format!("{CLUSTER}-s3cmd.db"), 3);
    });
    let client = Remote::from_inputs(&Inputs::from_env_vars(server.job_env()))
        .unwrap()
        .open(&ClientTuning::for_deadline(std::time::Duration::from_secs(
            30,
        )))
        .await
        .unwrap();
    let mut attrs = Attributes::new();
    for (k, v) in [
        ("snapjob-revision", "208"),
        ("snapjob-hashkv", "839412090"),
        ("snapjob-compact-revision", "-1"),
        ("sha256", &"ab".repeat(32)),
    ] {
        attrs.insert(
            Attribute::Metadata(k.to_string().into()),
            v.to_string().into(),
        );
    }
    client
        .put_opts(
            &ObjectPath::parse(format!("{CLUSTER}-new.db")).unwrap(),
            b"x".to_vec().into(),
            PutOptions {
                attributes: attrs,
                ..PutOptions::default()
            },
        )
        .await
        .unwrap();
    // Another cluster's prefix is not listed.
    tokio::task::block_in_place(|| {
        server.s3cmd_put(&fixture("etcd-3.4-small.db"), "other-cluster-x.db");
        let r = run("list", &server.job_env(), &["--json"]);
        r.assert_code(0);
        let got = lines(&r);
        let keys: Vec<&str> = got.iter().map(|l| l["key"].as_str().unwrap()).collect();
        assert_eq!(
            keys,
            [
                format!("{CLUSTER}-new.db"),
                format!("{CLUSTER}-s3cmd.db"),
                format!("{CLUSTER}-old.db.gz")
            ]
        );
        assert_eq!(got[0]["revision"], "208");
        assert_eq!(got[0]["hash_kv"], "839412090");
        assert_eq!(got[0]["sha256_recorded"], true);
        assert_eq!(got[1]["sha256_recorded"], false);
        assert!(got[1].get("revision").is_none(), "{}", got[1]);
        assert_eq!(got[2]["cluster"], CLUSTER);
        assert_eq!(got[2]["sha256_recorded"], true);
        let size = std::fs::metadata(fixture("etcd-3.4-small.db"))
            .unwrap()
            .len();
        assert_eq!(got[1]["size"], size);
        assert!(got[2]["time"].as_str().unwrap().ends_with('Z'));
        let r = run("list", &server.job_env(), &[]);
        r.assert_code(0);
        assert!(r.stdout.starts_with("TIME"), "{}", r.stdout);
        assert_eq!(r.stdout.lines().count(), 4, "{}", r.stdout);
    });
}
