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
    use std::io::Write;
    let mut child = Command::new(ctl)
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoint, "txn"])
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
    let out = wait_within(child, "etcdctl txn");
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
        let (client, peer) = (port(), port());
        let peer_url = format!("http://127.0.0.1:{peer}");
        let e = Etcd::boot(
            &bin,
            "m",
            &dir.path().join("data"),
            client,
            &peer_url,
            &format!("m={peer_url}"),
            "hashkv-token",
        );
        let ep = e.client_url.clone();
        let ctl = ctl.as_path();
        wait_healthy(ctl, &ep);
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

        // The facts: live keys and leases as etcd counts them.
        let r = verify_file(dir.path(), "defragged.db");
        let facts = &lines(&r)[0];
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
