//! The member's HashKV recorded at backup time: `store --from-etcd` asks the
//! member (etcd 3.4.23 and 3.5.1) over the snapshot's connection and records
//! revision, hash and compact revision in the object's metadata; they equal what
//! `etcdctl endpoint hashkv --rev R` says; `verify` and `restore` compare them
//! with the snapshot (also when the snapshot ends after the recorded revision)
//! and a tampered record is a data error (65) naming both values, with nothing
//! written; a backup without a record restores and says so once.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use object_store::{Attribute, Attributes, GetOptions, ObjectStore, PutOptions, path::Path as P};
use serde_json::Value;
use snapjob::{Inputs, Remote, transport::remote::ClientTuning};

fn revision(ctl: &Path, ep: &str) -> i64 {
    let got: Value =
        serde_json::from_str(&etcdctl(ctl, ep, &["get", "/none", "-w", "json"])).unwrap();
    got["header"]["revision"].as_i64().unwrap()
}

/// `etcdctl endpoint hashkv --rev rev`: (hash, compact revision).
fn member_hashkv(ctl: &Path, ep: &str, rev: i64) -> (u64, i64) {
    let live: Value = serde_json::from_str(&etcdctl(
        ctl,
        ep,
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
    let h = &live[0]["HashKV"];
    (
        h["hash"].as_u64().unwrap(),
        h["compact_revision"].as_i64().unwrap_or(0),
    )
}

async fn metadata(client: &Arc<dyn ObjectStore>, key: &str) -> (Attributes, bytes::Bytes) {
    let got = client
        .get_opts(&P::parse(key).unwrap(), GetOptions::default())
        .await
        .unwrap();
    let attrs = got.attributes.clone();
    (attrs, got.bytes().await.unwrap())
}

fn meta(attrs: &Attributes, name: &str) -> Option<String> {
    attrs
        .get(&Attribute::Metadata(name.to_string().into()))
        .map(|v| v.to_string())
}

/// Puts `body` at `key` with the record (revision, hash, compact) and the cluster.
async fn put_recorded(
    client: &Arc<dyn ObjectStore>,
    key: &str,
    body: bytes::Bytes,
    (rev, hash, compact): (i64, u64, i64),
) {
    let mut attrs = Attributes::new();
    for (k, v) in [
        ("snapjob-revision", rev.to_string()),
        ("snapjob-hashkv", hash.to_string()),
        ("snapjob-compact-revision", compact.to_string()),
        ("snapjob-cluster", CLUSTER.to_string()),
    ] {
        attrs.insert(Attribute::Metadata(k.into()), v.into());
    }
    client
        .put_opts(
            &P::parse(key).unwrap(),
            body.into(),
            PutOptions {
                attributes: attrs,
                ..PutOptions::default()
            },
        )
        .await
        .unwrap();
}

fn verify_line(env: &[(String, String)], key: &str, code: i32) -> Value {
    let r = run("verify", env, &["--key", key]);
    r.assert_code(code);
    serde_json::from_str(r.stdout.lines().next().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_records_the_members_hashkv_and_verify_and_restore_compare_it() {
    for (bin, ctl) in [
        (etcd34("etcd"), etcd34("etcdctl")),
        (etcd35("etcd"), etcd35("etcdctl")),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let etcd = Etcd::fresh(&bin, "m", &dir.path().join("data"), "record-token");
        let ep = etcd.client_url.clone();
        let ctl = ctl.as_path();
        wait_healthy(ctl, &ep);
        for i in 0..10 {
            etcdctl(ctl, &ep, &["put", &format!("/k/{i}"), &format!("v{i}")]);
        }
        etcdctl(ctl, &ep, &["put", "/k/0", "overwritten"]);
        etcdctl(ctl, &ep, &["del", "/k/1"]);
        let lease = etcdctl(ctl, &ep, &["lease", "grant", "600"]);
        let id = lease.split_whitespace().nth(1).unwrap().to_string();
        etcdctl(ctl, &ep, &["put", "/leased", "x", "--lease", &id]);
        let mid = revision(ctl, &ep) - 3;
        etcdctl(ctl, &ep, &["compact", &mid.to_string(), "--physical"]);
        etcdctl(ctl, &ep, &["put", "/k/2", "after compaction"]);
        etcdctl(ctl, &ep, &["del", "/k/3"]);

        let server = S3Server::start();
        let env = server.job_env();
        let client = Remote::from_inputs(&Inputs::from_env_vars(env.clone()))
            .unwrap()
            .open(&ClientTuning::for_deadline(std::time::Duration::from_secs(
                30,
            )))
            .await
            .unwrap();
        let rev = revision(ctl, &ep);
        let (hash, compact) = member_hashkv(ctl, &ep, rev);
        assert_eq!(compact, mid);
        let store_env = with(
            &env,
            &[("BACKUP_TO_CREATE", "live.db.gz"), ("ETCD_ENDPOINTS", &ep)],
        );
        tokio::task::block_in_place(|| {
            run("store", &store_env, &["--from-etcd"]).assert_code(0);
        });
        let key = format!("{CLUSTER}-live.db.gz");
        let (attrs, body) = metadata(&client, &key).await;
        assert_eq!(
            meta(&attrs, "snapjob-revision"),
            Some(rev.to_string()),
            "{}",
            bin.display()
        );
        assert_eq!(meta(&attrs, "snapjob-hashkv"), Some(hash.to_string()));
        assert_eq!(
            meta(&attrs, "snapjob-compact-revision"),
            Some(mid.to_string())
        );

        tokio::task::block_in_place(|| {
            let line = verify_line(&env, &key, 0);
            assert_eq!(line["hash_kv_checked"], true, "{line}");
            assert_eq!(line["hash_kv"].as_u64(), Some(hash), "{line}");
            let out = dir.path().join("restored.db");
            let r = run(
                "restore",
                &with(&env, &[("BACKUP_TO_RESTORE", "live.db.gz")]),
                &["--output", out.to_str().unwrap()],
            );
            r.assert_code(0);
            assert!(
                r.stderr.contains("equals the member's recorded answer"),
                "{}",
                r.stderr
            );
        });

        // The member's answer at an earlier revision, recorded with a snapshot
        // that ends later: HashKV at that revision, computed from the snapshot.
        etcdctl(ctl, &ep, &["put", "/k/4", "later"]);
        etcdctl(ctl, &ep, &["put", "/k/new", "later"]);
        etcdctl(ctl, &ep, &["del", "/k/5"]);
        let later_env = with(
            &env,
            &[("BACKUP_TO_CREATE", "later.db.gz"), ("ETCD_ENDPOINTS", &ep)],
        );
        tokio::task::block_in_place(|| {
            run("store", &later_env, &["--from-etcd"]).assert_code(0);
        });
        let (_, later) = metadata(&client, &format!("{CLUSTER}-later.db.gz")).await;
        let earlier = format!("{CLUSTER}-earlier.db.gz");
        put_recorded(&client, &earlier, later.clone(), (rev, hash, mid)).await;
        tokio::task::block_in_place(|| {
            let line = verify_line(&env, &earlier, 0);
            assert_eq!(line["hash_kv_checked"], true, "{line}");
            assert_eq!(line["revision"].as_i64(), Some(rev + 3), "{line}");
        });

        // A tampered record: 65 naming both values; restore writes nothing.
        let tampered = format!("{CLUSTER}-tampered.db.gz");
        put_recorded(&client, &tampered, body.clone(), (rev, hash ^ 1, mid)).await;
        tokio::task::block_in_place(|| {
            let line = verify_line(&env, &tampered, 65);
            let error = line["error"].as_str().unwrap();
            let both = [
                format!("answered {} at revision {rev}", hash ^ 1),
                format!("gives {hash} at revision {rev}"),
            ];
            for want in &both {
                assert!(error.contains(want.as_str()), "{error}");
            }
            let out = dir.path().join("tampered.db");
            let data = dir.path().join("member");
            for args in [
                vec!["--output", out.to_str().unwrap()],
                vec![
                    "--data-dir",
                    data.to_str().unwrap(),
                    "--name",
                    "m0",
                    "--initial-cluster",
                    "m0=http://127.0.0.1:2380",
                    "--initial-advertise-peer-urls",
                    "http://127.0.0.1:2380",
                    "--initial-cluster-token",
                    "t",
                ],
            ] {
                let r = run(
                    "restore",
                    &with(&env, &[("BACKUP_TO_RESTORE", "tampered.db.gz")]),
                    &args,
                );
                r.assert_code(65);
                let last = r.error_lines().join("\n");
                for want in &both {
                    assert!(last.contains(want.as_str()), "{args:?}: {}", r.stderr);
                }
                assert!(!out.exists() && !data.exists(), "{args:?}: written");
                let beside: Vec<_> = std::fs::read_dir(dir.path())
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| n.contains("snapjob"))
                    .collect();
                assert!(beside.is_empty(), "left: {beside:?}");
            }
        });

        // No record (an s3cmd upload): restores, and says so once.
        let plain = dir.path().join("plain.db.gz");
        std::fs::write(&plain, &body).unwrap();
        server.s3cmd_put(&plain, &format!("{CLUSTER}-plain.db.gz"));
        tokio::task::block_in_place(|| {
            let out = dir.path().join("plain.db");
            let r = run(
                "restore",
                &with(&env, &[("BACKUP_TO_RESTORE", "plain.db.gz")]),
                &["--output", out.to_str().unwrap()],
            );
            r.assert_code(0);
            assert_eq!(
                r.stderr.matches("no member HashKV recorded").count(),
                1,
                "{}",
                r.stderr
            );
        });
    }
}
