//! `restore --data-dir`: the pure-Rust member restore against the real tools.
//! WAL and `.snap` byte-identical to etcdutl 3.5.1 (and to etcdctl 3.4.23 with
//! `--v34`); the db accepted by Go bbolt with the same content hash; 3-member
//! clusters booted on etcd 3.4.23 and 3.5.1 from our output hold exactly what a
//! cluster booted from etcdutl's output holds.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

const TOKEN: &str = "restore-token";
const WAL: &str = "member/wal/0000000000000000-0000000000000000.wal";
const SNAP: &str = "member/snap/0000000000000001-0000000000000003.snap";
const DB: &str = "member/snap/db";

/// Three members on free loopback ports.
struct Layout {
    names: [&'static str; 3],
    peer: [String; 3],
    client: [u16; 3],
    initial_cluster: String,
}

fn layout() -> Layout {
    let names = ["m0", "m1", "m2"];
    let peer = [0, 1, 2].map(|_| format!("http://127.0.0.1:{}", port()));
    let initial_cluster = (0..3)
        .map(|i| format!("{}={}", names[i], peer[i]))
        .collect::<Vec<_>>()
        .join(",");
    Layout {
        names,
        peer,
        client: [0, 1, 2].map(|_| port()),
        initial_cluster,
    }
}

fn membership<'a>(l: &'a Layout, i: usize, data_dir: &'a str) -> Vec<&'a str> {
    membership_as(l, i, l.names[i], &l.initial_cluster, data_dir)
}

/// Member `i`'s flags, with `name` and `initial_cluster` given explicitly.
fn membership_as<'a>(
    l: &'a Layout,
    i: usize,
    name: &'a str,
    initial_cluster: &'a str,
    data_dir: &'a str,
) -> Vec<&'a str> {
    vec![
        "--name",
        name,
        "--initial-cluster",
        initial_cluster,
        "--initial-cluster-token",
        TOKEN,
        "--initial-advertise-peer-urls",
        &l.peer[i],
        "--data-dir",
        data_dir,
    ]
}

/// Our restore of member `i` from a local snapshot file.
fn ours(snapshot: &Path, l: &Layout, i: usize, dir: &Path, extra: &[&str]) -> Run {
    let dir = dir.to_str().unwrap();
    let mut args = vec!["--snapshot", snapshot.to_str().unwrap()];
    args.extend(membership(l, i, dir));
    args.extend_from_slice(extra);
    run("restore", &[], &args)
}

/// The reference tool's restore of member `i`: etcdutl 3.5.1, or etcdctl 3.4.23.
fn reference(tool: &Path, snapshot: &Path, l: &Layout, i: usize, dir: &Path) {
    let dir_s = dir.to_str().unwrap();
    let out = output_within(
        std::process::Command::new(tool)
            .env("ETCDCTL_API", "3")
            .args(["snapshot", "restore", snapshot.to_str().unwrap()])
            .args(membership(l, i, dir_s)),
        "the reference etcd tool",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn status(tool: &Path, db: &Path) -> Value {
    let out = output_within(
        std::process::Command::new(tool)
            .env("ETCDCTL_API", "3")
            .args(["snapshot", "status", "-w", "json"])
            .arg(db),
        "the reference etcd tool",
    );
    assert!(
        out.status.success(),
        "snapshot status {}: {}",
        db.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn same_file(a: &Path, b: &Path) {
    let (x, y) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    assert!(x == y, "{} and {} differ", a.display(), b.display());
}

#[test]
fn wal_and_snap_are_byte_identical_to_etcdutl_and_etcdctl() {
    let dir = tempfile::tempdir().unwrap();
    let l = layout();
    let snapshot = fixture("etcd-3.4-small.db");
    for i in 0..3 {
        let (mine, theirs) = (
            dir.path().join(format!("ours{i}")),
            dir.path().join(format!("ref{i}")),
        );
        ours(&snapshot, &l, i, &mine, &[]).assert_code(0);
        reference(&etcd35("etcdutl"), &snapshot, &l, i, &theirs);
        same_file(&mine.join(WAL), &theirs.join(WAL));
        same_file(&mine.join(SNAP), &theirs.join(SNAP));
        // Go bbolt's tx.Check passes and the content hash over all buckets is equal.
        let (a, b) = (
            status(&etcd35("etcdutl"), &mine.join(DB)),
            status(&etcd35("etcdutl"), &theirs.join(DB)),
        );
        assert_eq!(
            (&a["hash"], &a["revision"], &a["totalKey"]),
            (&b["hash"], &b["revision"], &b["totalKey"])
        );
        status(&etcd34("etcdctl"), &mine.join(DB));

        let (mine34, theirs34) = (
            dir.path().join(format!("ours34-{i}")),
            dir.path().join(format!("ref34-{i}")),
        );
        ours(&snapshot, &l, i, &mine34, &["--v34"]).assert_code(0);
        reference(&etcd34("etcdctl"), &snapshot, &l, i, &theirs34);
        same_file(&mine34.join(WAL), &theirs34.join(WAL));
        same_file(&mine34.join(SNAP), &theirs34.join(SNAP));
    }
    let wal_len = std::fs::metadata(dir.path().join("ours0").join(WAL))
        .unwrap()
        .len();
    assert_eq!(wal_len, 64_000_000, "the WAL is preallocated like etcd's");
}

/// What a running cluster holds, normalised for comparison.
#[derive(Debug, PartialEq)]
struct State {
    revision: Value,
    kvs: Vec<Value>,
    hashkv: Vec<Value>,
    peer_urls: Vec<Value>,
}

fn state(ctl: &Path, l: &Layout) -> State {
    let endpoints = l.client.map(|p| format!("http://127.0.0.1:{p}")).join(",");
    let first = format!("http://127.0.0.1:{}", l.client[0]);
    let got: Value = serde_json::from_str(&etcdctl(
        ctl,
        &first,
        &["get", "", "--prefix", "-w", "json"],
    ))
    .unwrap();
    let hashkv: Value = serde_json::from_str(&etcdctl(
        ctl,
        &endpoints,
        &["endpoint", "hashkv", "--rev", "208", "-w", "json"],
    ))
    .unwrap();
    let members: Value =
        serde_json::from_str(&etcdctl(ctl, &first, &["member", "list", "-w", "json"])).unwrap();
    let mut peer_urls: Vec<Value> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["peerURLs"].clone())
        .collect();
    peer_urls.sort_by_key(|v| v.to_string());
    State {
        revision: got["header"]["revision"].clone(),
        kvs: got["kvs"].as_array().unwrap().clone(),
        hashkv: hashkv
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["HashKV"]["hash"].clone())
            .collect(),
        peer_urls,
    }
}

/// Boots the three restored members `dirs` with `etcd`, reads the state, checks
/// the next write's revision, and stops them.
fn boot(etcd: &Path, ctl: &Path, l: &Layout, dirs: &[PathBuf]) -> State {
    let members: Vec<Etcd> = (0..3)
        .map(|i| {
            Etcd::boot(
                etcd,
                l.names[i],
                &dirs[i],
                l.client[i],
                &l.peer[i],
                &l.initial_cluster,
                TOKEN,
            )
        })
        .collect();
    let endpoints = l.client.map(|p| format!("http://127.0.0.1:{p}")).join(",");
    wait_healthy(ctl, &endpoints);
    let s = state(ctl, l);
    // The lease survived with its key attached (its TTL restarts, as with etcdutl).
    let first = &members[0].client_url;
    let leases = etcdctl(ctl, first, &["lease", "list"]);
    let id = leases.lines().nth(1).expect("one lease").trim().to_string();
    let ttl = etcdctl(ctl, first, &["lease", "timetolive", &id, "--keys"]);
    assert!(ttl.contains("/leased"), "lease {id}: {ttl}");
    let put: Value = serde_json::from_str(&etcdctl(
        ctl,
        &members[1].client_url,
        &["put", "/after-restore", "x", "-w", "json"],
    ))
    .unwrap();
    assert_eq!(
        put["header"]["revision"], 209,
        "the next write gets revision + 1"
    );
    drop(members);
    s
}

#[test]
fn restored_clusters_boot_on_etcd_3_4_and_3_5_with_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let l = layout();
    let snapshot = fixture("etcd-3.4-small.db");
    let restore_all = |prefix: &str, how: &dyn Fn(usize, &Path)| -> Vec<PathBuf> {
        (0..3)
            .map(|i| {
                let d = dir.path().join(format!("{prefix}{i}"));
                how(i, &d);
                d
            })
            .collect()
    };
    let theirs = restore_all("ref", &|i, d| {
        reference(&etcd35("etcdutl"), &snapshot, &l, i, d)
    });
    let expected = boot(&etcd35("etcd"), &etcd35("etcdctl"), &l, &theirs);
    assert_eq!(expected.revision, 208);
    assert_eq!(expected.kvs.len(), 203, "/a, /b, /leased and 200 bulk keys");
    assert!(
        expected.hashkv.windows(2).all(|w| w[0] == w[1]),
        "members agree: {:?}",
        expected.hashkv
    );

    // Ours, from the object a `store` wrote: the whole Job path.
    let server = S3Server::start();
    let env = with(
        &server.job_env(),
        &[
            ("BACKUP_TO_CREATE", "boot.db.gz"),
            (
                "SNAPSHOT_FILE",
                fixture("etcd-3.4-small.db.gz").to_str().unwrap(),
            ),
        ],
    );
    run("store", &env, &[]).assert_code(0);
    let env = with(&server.job_env(), &[("BACKUP_TO_RESTORE", "boot.db.gz")]);
    for (flavor, etcd, ctl) in [
        ("35-", etcd35("etcd"), etcd35("etcdctl")),
        ("34-", etcd34("etcd"), etcd34("etcdctl")),
    ] {
        let dirs = restore_all(flavor, &|i, d| {
            let d = d.to_str().unwrap().to_string();
            let args = membership(&l, i, &d);
            run("restore", &env, &args).assert_code(0);
        });
        let got = boot(&etcd, &ctl, &l, &dirs);
        assert_eq!(got, expected, "etcd {flavor} booted from our restore");
    }
}

#[test]
fn refusals_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let l = layout();
    let raw = std::fs::read(fixture("etcd-3.4-small.db")).unwrap();
    let no_hash = write_file(dir.path(), "no-hash.db", &raw[..raw.len() - 32]);
    let mut flipped = raw.clone();
    flipped[50_000] ^= 1;
    let flipped = write_file(dir.path(), "flipped.db", &flipped);
    let duplicate = format!("{},m3={}", l.initial_cluster, l.peer[0]);
    let good = fixture("etcd-3.4-small.db");
    let cases: Vec<(PathBuf, &str, &str, i32, &str)> = vec![
        (
            no_hash.clone(),
            "m1",
            &l.initial_cluster,
            65,
            "no SHA-256 trailer",
        ),
        (flipped, "m1", &l.initial_cluster, 65, "trailer check"),
        (
            fixture("truncated.db.gz"),
            "m1",
            &l.initial_cluster,
            65,
            "gzip",
        ),
        (
            good.clone(),
            "stranger",
            &l.initial_cluster,
            64,
            "not in --initial-cluster",
        ),
        (good, "m1", &duplicate, 64, "more than once"),
    ];
    for (snapshot, name, initial_cluster, code, want) in cases {
        let target = dir.path().join("member-dir");
        let target_s = target.to_str().unwrap().to_string();
        let mut args = vec!["--snapshot", snapshot.to_str().unwrap()];
        args.extend(membership_as(&l, 1, name, initial_cluster, &target_s));
        let r = run("restore", &[], &args);
        r.assert_code(code);
        assert!(r.error_lines()[0].contains(want), "{want}: {}", r.stderr);
        assert!(!target.exists(), "{want}: nothing written");
    }
    // A non-empty data dir is refused and left as it was.
    let busy = dir.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("keep"), b"old member").unwrap();
    let r = ours(&fixture("etcd-3.4-small.db"), &l, 1, &busy, &[]);
    r.assert_code(64);
    assert!(r.error_lines()[0].contains("not empty"), "{}", r.stderr);
    assert_eq!(std::fs::read(busy.join("keep")).unwrap(), b"old member");
    // A db without a trailer is accepted with --skip-hash-check.
    ours(
        &no_hash,
        &l,
        1,
        &dir.path().join("skipped"),
        &["--skip-hash-check"],
    )
    .assert_code(0);
    // Nothing but what the tests made: no temporary siblings left behind.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["busy", "flipped.db", "no-hash.db", "skipped"]);
}
