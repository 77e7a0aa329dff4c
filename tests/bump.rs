//! `restore --data-dir --bump-revision N --mark-compacted` (etcdutl 3.5.10+'s
//! meaning): real etcd 3.4.23 and 3.5.1 boot on the result; the next put's
//! revision is the snapshot's + N + 1; a watch from an old revision is told
//! "compacted"; every key (with its value) and the lease are there. The flags
//! go together, and need a data dir (64).

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

fn json(ctl: &Path, ep: &str, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-w", "json"]);
    serde_json::from_str(&etcdctl(ctl, ep, &a)).unwrap()
}

/// Every key and value, in order.
fn kvs(ctl: &Path, ep: &str) -> Vec<(String, String)> {
    json(ctl, ep, &["get", "", "--prefix"])["kvs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|kv| {
            (
                kv["key"].as_str().unwrap().to_string(),
                kv["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn leases(ctl: &Path, ep: &str) -> Vec<i64> {
    let mut ids: Vec<i64> = json(ctl, ep, &["lease", "list"])["leases"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|l| l["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    ids
}

#[test]
fn bumped_restores_boot_on_etcd_3_4_and_3_5_compacted_with_every_key() {
    for (bin, ctl) in [
        (etcd34("etcd"), etcd34("etcdctl")),
        (etcd35("etcd"), etcd35("etcdctl")),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let ctl = ctl.as_path();
        let src = Etcd::fresh(&bin, "src", &dir.path().join("src"), "src-token");
        let ep = src.client_url.clone();
        wait_healthy(ctl, &ep);
        for i in 0..30 {
            etcdctl(ctl, &ep, &["put", &format!("/k/{i:02}"), &format!("v{i}")]);
        }
        etcdctl(ctl, &ep, &["put", "/k/00", "overwritten"]);
        etcdctl(ctl, &ep, &["del", "/k/01"]);
        let lease = etcdctl(ctl, &ep, &["lease", "grant", "3600"]);
        let id = lease.split_whitespace().nth(1).unwrap().to_string();
        etcdctl(ctl, &ep, &["put", "/leased", "x", "--lease", &id]);
        let old = json(ctl, &ep, &["get", "/none"])["header"]["revision"]
            .as_i64()
            .unwrap();
        let (want_kvs, want_leases) = (kvs(ctl, &ep), leases(ctl, &ep));
        let snapshot = dir.path().join("snap.db");
        etcdctl(ctl, &ep, &["snapshot", "save", snapshot.to_str().unwrap()]);
        drop(src);

        let (client, peer) = (port(), port());
        let peer_url = format!("http://127.0.0.1:{peer}");
        let data = dir.path().join("restored");
        let cluster = format!("m0={peer_url}");
        let membership = from_snapshot(&snapshot, member_flags(&data, &peer_url, "bumped"));
        let membership = strs(&membership);
        // Alone, either flag is refused, as etcdutl refuses it; nothing is written.
        for alone in [&["--bump-revision", "1000"][..], &["--mark-compacted"]] {
            let r = run("restore", &[], &[&membership[..], alone].concat());
            r.assert_code(64);
            assert!(r.all().contains("go together"), "{}", r.all());
            assert!(!data.exists());
        }
        let r = run(
            "restore",
            &[],
            &[
                &membership[..],
                &["--bump-revision", "1000", "--mark-compacted"],
            ]
            .concat(),
        );
        r.assert_code(0);
        let _restored = Etcd::boot(&bin, "m0", &data, client, &peer_url, &cluster, "bumped");
        let ep = format!("http://127.0.0.1:{client}");
        wait_healthy(ctl, &ep);
        assert_eq!(kvs(ctl, &ep), want_kvs, "{}", bin.display());
        assert_eq!(leases(ctl, &ep), want_leases, "{}", bin.display());
        let put = json(ctl, &ep, &["put", "/after", "bump"]);
        assert_eq!(
            put["header"]["revision"].as_i64(),
            Some(old + 1000 + 1),
            "{}: {put}",
            bin.display()
        );
        // A watch from a revision before the bump is told it was compacted.
        let watch = output_within(
            under_timeout(20)
                .arg(ctl)
                .env("ETCDCTL_API", "3")
                .args(["--endpoints", &ep, "watch", "/k/00", "--rev"])
                .arg((old - 1).to_string()),
            "etcdctl watch",
        );
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&watch.stdout),
            String::from_utf8_lossy(&watch.stderr)
        );
        assert!(said.contains("compacted"), "{}: {said}", bin.display());
        // And a read at an old revision too.
        let old_read = output_within(
            std::process::Command::new(ctl)
                .env("ETCDCTL_API", "3")
                .args(["--endpoints", &ep, "get", "/k/00", "--rev"])
                .arg(old.to_string()),
            "etcdctl get --rev",
        );
        assert!(
            String::from_utf8_lossy(&old_read.stderr).contains("compacted"),
            "{}",
            String::from_utf8_lossy(&old_read.stderr)
        );
    }
}

#[test]
fn the_bump_needs_a_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.db");
    let r = run(
        "restore",
        &[],
        &[
            "--snapshot",
            fixture("etcd-3.4-small.db").to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--bump-revision",
            "5",
            "--mark-compacted",
        ],
    );
    r.assert_code(64);
    assert!(r.all().contains("need --data-dir"), "{}", r.all());
    assert!(!out.exists());
}

/// The fixture's key bucket is a tree with branch pages (200 bulk keys): the new
/// rightmost leaf and the branch copies above it are what etcd reads.
#[test]
fn a_key_bucket_with_branch_pages_is_bumped_too() {
    let dir = tempfile::tempdir().unwrap();
    let (bin, ctl) = (etcd35("etcd"), etcd35("etcdctl"));
    let (client, peer) = (port(), port());
    let peer_url = format!("http://127.0.0.1:{peer}");
    let data = dir.path().join("restored");
    let cluster = format!("m0={peer_url}");
    let mut args = from_snapshot(
        &fixture("etcd-3.4-small.db"),
        member_flags(&data, &peer_url, "bumped"),
    );
    args.extend(["--bump-revision", "1000000", "--mark-compacted"].map(String::from));
    run("restore", &[], &strs(&args)).assert_code(0);
    let _etcd = Etcd::boot(&bin, "m0", &data, client, &peer_url, &cluster, "bumped");
    let ep = format!("http://127.0.0.1:{client}");
    wait_healthy(&ctl, &ep);
    // etcdctl snapshot status: revision 208; /a, /b, /leased, 200 /bulk/NNN.
    assert_eq!(kvs(&ctl, &ep).len(), 203);
    assert_eq!(leases(&ctl, &ep).len(), 1);
    let put = json(&ctl, &ep, &["put", "/after", "bump"]);
    assert_eq!(
        put["header"]["revision"].as_i64(),
        Some(208 + 1_000_000 + 1)
    );
}
