//! kops etcd-manager backup stores (`--backup-store`): etcd-manager-ctl's commands
//! on the golden store in fixtures/etcd-manager, a direct data-dir restore from a
//! backup, and a backup written by `store` that we list, restore and boot.

mod common;

use std::path::{Path, PathBuf};

use common::*;

const GOOD: &str = "2026-01-02T03:04:05Z-000007";
const NO_META: &str = "2026-01-03T00:00:00Z-000008";
const CORRUPT: &str = "2026-01-04T00:00:00Z-000009";

/// A copy of the golden store in a temp dir; returns (dir, its file:// URL).
fn store_copy() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture("etcd-manager/main"), &dir.path().join("main"));
    let url = format!("file://{}/main", dir.path().display());
    (dir, url)
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn ctl(url: &str, args: &[&str]) -> Run {
    let mut all = vec!["--backup-store", url];
    all.extend_from_slice(args);
    run("restore", &[], &all)
}

fn commands(root: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root.join("main/control"))
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path().join("_command.json");
            p.exists().then_some(p)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn list_backups_shows_only_backups_with_a_meta_file() {
    let (_dir, url) = store_copy();
    let r = ctl(&url, &["list-backups"]);
    r.assert_code(0);
    assert_eq!(r.stdout.lines().collect::<Vec<_>>(), [GOOD, CORRUPT]);
}

/// Queues a restore command for `backup` with this timestamp (ns) under the
/// directory `name`, as etcd-manager would.
fn queue(root: &Path, name: &str, timestamp: i64, backup: &str) {
    let dir = root.join("main/control").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let cmd = serde_json::json!({
        "timestamp": timestamp.to_string(),
        "restoreBackup": {
            "clusterSpec": {"memberCount": 1, "etcdVersion": "3.4.23"},
            "backup": backup,
        },
    });
    std::fs::write(dir.join("_command.json"), cmd.to_string()).unwrap();
}

/// The golden store's queued command: `2026-01-05T00:00:00Z-000000`, for CORRUPT.
const QUEUED_AT: i64 = 1_767_571_200_000_000_000;

#[test]
fn restore_backup_queues_a_command_with_the_current_spec() {
    let (dir, url) = store_copy();
    // Commands older and newer than any clock, under names that sort the other
    // way round: the listing must go by timestamp, not by name or by chance.
    queue(dir.path(), "9999-12-31T23:59:59Z-000000", 1, "oldest");
    queue(
        dir.path(),
        "0001-01-01T00:00:00Z-000000",
        i64::MAX,
        "newest",
    );
    let before = commands(dir.path());
    ctl(&url, &["restore-backup", GOOD]).assert_code(0);
    let after = commands(dir.path());
    assert_eq!(after.len(), before.len() + 1);
    let new = after.iter().find(|p| !before.contains(p)).unwrap();
    let name = new
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        name.ends_with("Z-000000") && name.len() == "2026-01-05T00:00:00Z-000000".len(),
        "{name}"
    );
    let cmd: serde_json::Value = serde_json::from_slice(&std::fs::read(new).unwrap()).unwrap();
    assert_eq!(cmd["restoreBackup"]["backup"], GOOD);
    assert_eq!(
        cmd["restoreBackup"]["clusterSpec"],
        serde_json::json!({"memberCount": 1, "etcdVersion": "3.4.23"})
    );
    let ours = cmd["timestamp"].as_str().unwrap().parse::<i64>().unwrap();
    assert!(ours > 1_700_000_000_000_000_000, "int64 as a string, in ns");

    // What we queued, we list and parse back (with etcd-manager's own command),
    // oldest first; where ours goes against the golden one depends on the clock,
    // so that order is read from the two timestamps.
    let listed = ctl(&url, &["list-commands"]);
    listed.assert_code(0);
    let lines: Vec<&str> = listed.stdout.lines().collect();
    let middle = if ours < QUEUED_AT {
        [GOOD, CORRUPT]
    } else {
        [CORRUPT, GOOD]
    };
    let want = ["oldest", middle[0], middle[1], "newest"];
    assert_eq!(lines.len(), want.len(), "{}", listed.stdout);
    for (line, backup) in lines.iter().zip(want) {
        assert!(
            line.contains(&format!("\"backup\":\"{backup}\"")),
            "oldest first, want {want:?}: {lines:?}"
        );
    }

    ctl(&url, &["delete-command", GOOD]).assert_code(0);
    assert_eq!(commands(dir.path()), before, "only our command was deleted");
}

#[test]
fn refusals_queue_nothing() {
    let (dir, url) = store_copy();
    let before = commands(dir.path());
    for (args, code, want) in [
        (
            vec!["restore-backup", "2020-01-01T00:00:00Z-000001"],
            12,
            "no backup",
        ),
        (vec!["restore-backup", NO_META], 12, "_etcd_backup.meta"),
        (vec!["restore-backup", "../escape"], 64, "not a backup name"),
        (vec!["frobnicate"], 64, "unknown backup-store command"),
    ] {
        let r = ctl(&url, &args);
        r.assert_code(code);
        assert!(r.error_lines()[0].contains(want), "{args:?}: {}", r.stderr);
        assert_eq!(commands(dir.path()), before, "{args:?} queued something");
    }
    std::fs::remove_file(dir.path().join("main/control/etcd-cluster-spec")).unwrap();
    let r = ctl(&url, &["restore-backup", GOOD]);
    r.assert_code(12);
    assert!(r.error_lines()[0].contains("cluster spec"), "{}", r.stderr);
    assert_eq!(commands(dir.path()), before);
    let r = run("restore", &[], &["list-backups"]);
    r.assert_code(64);
}

fn member_args<'a>(data_dir: &'a str, peer: &'a str, cluster: &'a str) -> Vec<&'a str> {
    vec![
        "--data-dir",
        data_dir,
        "--name",
        "m0",
        "--initial-cluster",
        cluster,
        "--initial-cluster-token",
        "kops",
        "--initial-advertise-peer-urls",
        peer,
    ]
}

#[test]
fn a_backup_restores_straight_into_a_data_dir() {
    let (dir, url) = store_copy();
    let peer = "http://127.0.0.1:2380";
    let cluster = format!("m0={peer}");
    let ok = dir.path().join("ok");
    let ok_s = ok.to_str().unwrap().to_string();
    let mut args = vec!["--backup-store", url.as_str(), "--backup", GOOD];
    args.extend(member_args(&ok_s, peer, &cluster));
    run("restore", &[], &args).assert_code(0);
    let status = output_within(
        std::process::Command::new(etcd34("etcdctl"))
            .env("ETCDCTL_API", "3")
            .args(["snapshot", "status", "-w", "json"])
            .arg(ok.join("member/snap/db")),
        "etcdctl",
    );
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["revision"], 208);

    for (name, code) in [(CORRUPT, 65), (NO_META, 12)] {
        let target = dir.path().join(format!("dd-{code}"));
        let t = target.to_str().unwrap().to_string();
        let mut args = vec!["--backup-store", url.as_str(), "--backup", name];
        args.extend(member_args(&t, peer, &cluster));
        run("restore", &[], &args).assert_code(code);
        assert!(!target.exists(), "{name}: nothing written");
    }
}

#[test]
fn what_store_writes_is_listed_restored_and_boots() {
    let (dir, url) = store_copy();
    let file = fixture("etcd-3.4-small.db.gz");
    let r = run(
        "store",
        &[],
        &["--backup-store", &url, "--file", file.to_str().unwrap()],
    );
    r.assert_code(0);
    let listed = ctl(&url, &["list-backups"]);
    let names: Vec<&str> = listed.stdout.lines().collect();
    assert_eq!(names.len(), 3, "{}", listed.stdout);
    let new = *names
        .iter()
        .find(|n| **n != GOOD && **n != CORRUPT)
        .unwrap();
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("main").join(new).join("_etcd_backup.meta")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        meta["etcdVersion"], "3.4.23",
        "taken from the store's cluster spec"
    );
    assert_eq!(meta["clusterSpec"]["memberCount"], 1);

    let (client, peer_port) = (port(), port());
    let peer = format!("http://127.0.0.1:{peer_port}");
    let cluster = format!("m0={peer}");
    let data = dir.path().join("booted");
    let d = data.to_str().unwrap().to_string();
    let mut args = vec!["--backup-store", url.as_str(), "--backup", new];
    args.extend(member_args(&d, &peer, &cluster));
    run("restore", &[], &args).assert_code(0);
    let etcd = Etcd::boot(
        &etcd34("etcd"),
        "m0",
        &data,
        client,
        &peer,
        &cluster,
        "kops",
    );
    wait_healthy(&etcd34("etcdctl"), &etcd.client_url);
    let got: serde_json::Value = serde_json::from_str(&etcdctl(
        &etcd34("etcdctl"),
        &etcd.client_url,
        &["get", "/a", "-w", "json"],
    ))
    .unwrap();
    assert_eq!(got["header"]["revision"], 208);
    assert_eq!(got["kvs"][0]["value"], "dGhyZWU=", "/a = three");
}

#[test]
fn the_same_on_s3() {
    let server = S3Server::start();
    let url = format!("s3://{BUCKET}/kops.example.com/backups/etcd/main");
    let env = server.job_env();
    let file = fixture("etcd-3.4-small.db.gz");
    // No cluster spec in a fresh store: the meta needs the version given.
    let r = run(
        "store",
        &env,
        &["--backup-store", &url, "--file", file.to_str().unwrap()],
    );
    r.assert_code(78);
    assert!(r.error_lines()[0].contains("ETCD_VERSION"), "{}", r.stderr);
    assert!(
        !server
            .root
            .path()
            .join(BUCKET)
            .join("kops.example.com")
            .exists(),
        "nothing was uploaded"
    );
    let r = run(
        "store",
        &env,
        &[
            "--backup-store",
            &url,
            "--file",
            file.to_str().unwrap(),
            "--etcd-version",
            "3.5.1",
            "--member-count",
            "3",
        ],
    );
    r.assert_code(0);
    let listed = run("restore", &env, &["--backup-store", &url, "list-backups"]);
    listed.assert_code(0);
    let names: Vec<&str> = listed.stdout.lines().collect();
    assert_eq!(names.len(), 1, "{}", listed.stdout);
    let dir = server
        .root
        .path()
        .join(BUCKET)
        .join("kops.example.com/backups/etcd/main")
        .join(names[0]);
    assert_eq!(
        std::fs::read(dir.join("etcd.backup.gz")).unwrap(),
        std::fs::read(&file).unwrap()
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("_etcd_backup.meta")).unwrap()).unwrap();
    assert_eq!(
        meta["clusterSpec"],
        serde_json::json!({"memberCount": 3, "etcdVersion": "3.5.1"})
    );
}

/// Retention over a kops store: the backups are the names with a meta file, timed
/// by their names; each deleted meta file first; a name without a meta file (a
/// backup being written) is never touched. And `delete --backup NAME` there.
#[test]
fn retention_and_delete_by_name_in_a_kops_store() {
    let (dir, url) = store_copy();
    let main = dir.path().join("main");
    let newer = [
        "2026-01-05T10:00:00Z-000000",
        "2026-01-05T20:00:00Z-000000",
        "2026-01-06T10:00:00Z-000000",
    ];
    for name in newer {
        copy_tree(&main.join(GOOD), &main.join(name));
    }
    let listed = |url: &str| {
        let r = ctl(url, &["list-backups"]);
        r.assert_code(0);
        r.stdout.lines().map(str::to_string).collect::<Vec<_>>()
    };
    let policy = ["--backup-store", &url, "--keep-daily", "2"];
    let r = run("delete", &[], &[&policy[..], &["--dry-run"]].concat());
    r.assert_code(0);
    assert_eq!(listed(&url).len(), 5, "a dry run deletes nothing");
    assert!(
        r.stderr.contains(&format!("\"key\":\"{CORRUPT}\""))
            && r.stderr.contains("\"action\":\"delete\""),
        "{}",
        r.stderr
    );

    // Days 01-06 and 01-05 (its newest) are kept; the rest go, meta and data.
    let r = run("delete", &[], &policy);
    r.assert_code(0);
    assert_eq!(listed(&url), [newer[1], newer[2]], "{}", r.stderr);
    for gone in [GOOD, CORRUPT, newer[0]] {
        for file in ["_etcd_backup.meta", "etcd.backup.gz"] {
            assert!(!main.join(gone).join(file).exists(), "{gone}/{file}");
        }
    }
    let unlisted = std::fs::read_dir(main.join(NO_META)).unwrap().count();
    assert!(unlisted > 0, "a name without a meta file is never touched");

    // One backup by name; a second time it is already absent; a bad name is 78.
    let by_name = |name: &str| run("delete", &[], &["--backup-store", &url, "--backup", name]);
    by_name(newer[1]).assert_code(0);
    assert_eq!(listed(&url), [newer[2]]);
    assert!(!main.join(newer[1]).join("etcd.backup.gz").exists());
    let r = by_name(newer[1]);
    r.assert_code(0);
    assert!(r.stderr.contains("already absent"), "{}", r.stderr);
    by_name("../main").assert_code(78);
    assert_eq!(listed(&url), [newer[2]]);
}

/// `restore --before TIME` in a kops store: the newest backup with a meta file
/// whose name's time is at or before TIME (a name without a meta file is not a
/// backup); none that old is 12; with `--backup` it is 64.
#[test]
fn before_picks_the_newest_kops_backup_at_or_before_the_time() {
    let (dir, url) = store_copy();
    let out = dir.path().join("out.db");
    let restore = |extra: &[&str]| {
        let _ = std::fs::remove_file(&out);
        let mut args = vec!["--backup-store", url.as_str(), "--output"];
        args.push(out.to_str().unwrap());
        args.extend_from_slice(extra);
        run("restore", &[], &args)
    };
    let good = std::fs::read(
        fixture("etcd-manager/main")
            .join(GOOD)
            .join("etcd.backup.gz"),
    )
    .unwrap();
    let mut good_raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&good[..]), &mut good_raw)
        .unwrap();
    // The 3rd holds a backup name without a meta file: still GOOD.
    for before in ["2026-01-03T12:00:00Z", "2026-01-02T03:04:05Z"] {
        let r = restore(&["--before", before]);
        r.assert_code(0);
        assert!(r.stderr.contains(GOOD), "{before}: {}", r.stderr);
        assert_eq!(std::fs::read(&out).unwrap(), good_raw, "{before}");
    }
    // After the 4th the newest is CORRUPT, and it is refused as such.
    let r = restore(&["--before", "2026-01-05T00:00:00Z"]);
    r.assert_code(65);
    assert!(r.all().contains(CORRUPT), "{}", r.all());
    assert!(!out.exists());
    let r = restore(&["--before", "2026-01-02T03:04:04Z"]);
    r.assert_code(12);
    assert!(r.all().contains("no backup at or before"), "{}", r.all());
    restore(&["--before", "2026-01-03T12:00:00Z", "--backup", GOOD]).assert_code(64);
    assert!(!out.exists());
}
