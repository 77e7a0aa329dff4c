//! Azure Blob Storage against Azurite (npm), with Microsoft's Python SDK
//! (azure-storage-blob) as the peer that reads what we store and writes what we
//! restore. `scripts/test.sh` installs both.

mod common;

use common::azurite::{Azurite, CONTAINER, KEY};
use common::*;

/// Runs `bin`; fails the test if the account key was printed.
fn az_run(bin: &str, env: &[(String, String)], args: &[&str]) -> Run {
    let r = run(bin, env, args);
    assert!(
        !r.all().contains(KEY),
        "the account key was printed:\n{}",
        r.all()
    );
    r
}

fn key(prefix: &str, backup: &str) -> String {
    format!("{prefix}/{CLUSTER}-{backup}")
}

#[test]
fn store_restore_delete_with_a_connection_string_and_the_sdk_as_peer() {
    let az = Azurite::start();
    let dir = tempfile::tempdir().unwrap();
    let env = az.env("etcd/prod");
    let file = fixture("etcd-3.4-small.db.gz");
    let r = az_run(
        "store",
        &env,
        &["--backup", "one.db.gz", "--file", file.to_str().unwrap()],
    );
    r.assert_code(0);
    assert!(
        r.stderr.contains("az://etcd-backups/etcd/prod/"),
        "{}",
        r.stderr
    );
    let name = key("etcd/prod", "one.db.gz");
    assert_eq!(az.names(), vec![name.clone()]);

    // The SDK downloads it byte-identical, and sees the SHA-256 and the cluster.
    let got = dir.path().join("sdk.db.gz");
    az.py(&["get", CONTAINER, &name, got.to_str().unwrap()]);
    let sent = std::fs::read(&file).unwrap();
    assert_eq!(std::fs::read(&got).unwrap(), sent);
    let meta: serde_json::Value =
        serde_json::from_str(&az.py(&["meta", CONTAINER, &name])).unwrap();
    assert_eq!(meta["sha256"], sha256_hex(&sent));
    assert_eq!(meta["snapjob_cluster"], CLUSTER);

    // Restored identical (decompressed), its SHA-256 checked.
    let out = dir.path().join("out.db");
    let r = az_run(
        "restore",
        &env,
        &["--backup", "one.db.gz", "--output", out.to_str().unwrap()],
    );
    r.assert_code(0);
    assert!(r.stderr.contains("\"sha256_checked\":true"), "{}", r.stderr);
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(fixture("etcd-3.4-small.db")).unwrap()
    );

    az_run("delete", &env, &["--backup", "one.db.gz"]).assert_code(0);
    assert_eq!(az.names(), Vec::<String>::new());
    // Deleting what is not there is success.
    az_run("delete", &env, &["--backup", "one.db.gz"]).assert_code(0);
    // Restoring it is "not found".
    az_run(
        "restore",
        &env,
        &["--backup", "one.db.gz", "--output", out.to_str().unwrap()],
    )
    .assert_code(12);
}

#[test]
fn multipart_store_commits_one_block_per_part_and_restores_identical() {
    let az = Azurite::start();
    let dir = tempfile::tempdir().unwrap();
    let raw = synthetic_snapshot(3000, 9);
    let gz = gzip(&raw);
    assert!(gz.len() > 10 << 20, "{}", gz.len());
    let file = write_file(dir.path(), "snapshot.db.gz", &gz);
    let env = with(
        &az.env("mp"),
        // Under S3's 5 MiB floor: Azure blocks have none.
        &[("PART_SIZE", "2MiB"), ("CONCURRENCY", "2")],
    );
    az_run(
        "store",
        &env,
        &["--backup", "big.db.gz", "--file", file.to_str().unwrap()],
    )
    .assert_code(0);
    let name = key("mp", "big.db.gz");
    let blocks: usize = az.py(&["blocks", CONTAINER, &name]).trim().parse().unwrap();
    assert_eq!(blocks, gz.len().div_ceil(2 << 20));
    let out = dir.path().join("out.db");
    az_run(
        "restore",
        &env,
        &["--backup", "big.db.gz", "--output", out.to_str().unwrap()],
    )
    .assert_code(0);
    assert_eq!(sha256_hex(&std::fs::read(&out).unwrap()), sha256_hex(&raw));
}

#[test]
fn a_corrupt_snapshot_leaves_no_blob() {
    let az = Azurite::start();
    let env = az.env("bad");
    let file = fixture("broken-trailer.db.gz");
    let r = az_run(
        "store",
        &env,
        &["--backup", "bad.db.gz", "--file", file.to_str().unwrap()],
    );
    r.assert_code(65);
    assert_eq!(az.names(), Vec::<String>::new());
    // Verification runs beside the upload: the block was staged, but the block
    // list that would make it a blob was never sent.
    assert_eq!(
        az.py(&["uncommitted", CONTAINER])
            .lines()
            .collect::<Vec<_>>(),
        [key("bad", "bad.db.gz")]
    );
}

#[test]
fn a_snapshot_the_sdk_uploaded_is_restored_and_a_wrong_digest_refused() {
    let az = Azurite::start();
    let dir = tempfile::tempdir().unwrap();
    let env = az.env("peer");
    let file = fixture("etcd-3.4-small.db.gz");
    let sum = sha256_hex(&std::fs::read(&file).unwrap());
    let f = file.to_str().unwrap();
    az.py(&[
        "put",
        CONTAINER,
        &key("peer", "sdk.db.gz"),
        f,
        &format!("sha256={sum}"),
    ]);
    az.py(&["put", CONTAINER, &key("peer", "plain.db.gz"), f]);
    let wrong = "0".repeat(64);
    az.py(&[
        "put",
        CONTAINER,
        &key("peer", "lie.db.gz"),
        f,
        &format!("sha256={wrong}"),
    ]);
    let raw = std::fs::read(fixture("etcd-3.4-small.db")).unwrap();
    for (backup, checked) in [("sdk.db.gz", true), ("plain.db.gz", false)] {
        let out = dir.path().join(format!("{backup}.out"));
        let r = az_run(
            "restore",
            &env,
            &["--backup", backup, "--output", out.to_str().unwrap()],
        );
        r.assert_code(0);
        assert!(
            r.stderr.contains(&format!("\"sha256_checked\":{checked}")),
            "{}",
            r.stderr
        );
        assert_eq!(std::fs::read(&out).unwrap(), raw);
    }
    let out = dir.path().join("lie.out");
    let r = az_run(
        "restore",
        &env,
        &["--backup", "lie.db.gz", "--output", out.to_str().unwrap()],
    );
    r.assert_code(65);
    assert!(!out.exists());
}

#[test]
fn every_credential_form_reaches_the_container_and_a_wrong_key_is_77() {
    let az = Azurite::start();
    let file = fixture("etcd-3.4-small.db.gz");
    let f = file.to_str().unwrap();
    let base = vec![
        ("STORAGE_URL".to_string(), format!("az://{CONTAINER}/creds")),
        ("CLUSTER".to_string(), CLUSTER.to_string()),
    ];
    let endpoint = format!("http://127.0.0.1:{}/devstoreaccount1", az.port);
    let sas = az.py(&["sas", CONTAINER]).trim().to_string();
    let forms: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "emulator",
            vec![
                ("AZURE_STORAGE_USE_EMULATOR", "true".into()),
                (
                    "AZURITE_BLOB_STORAGE_URL",
                    format!("http://127.0.0.1:{}", az.port),
                ),
            ],
        ),
        (
            "key",
            vec![
                ("AZURE_STORAGE_ACCOUNT_NAME", "devstoreaccount1".into()),
                ("AZURE_STORAGE_ACCOUNT_KEY", KEY.into()),
                ("AZURE_STORAGE_ENDPOINT", endpoint.clone()),
            ],
        ),
        (
            "sas",
            vec![
                ("AZURE_STORAGE_ACCOUNT_NAME", "devstoreaccount1".into()),
                ("AZURE_STORAGE_SAS_TOKEN", sas.clone()),
                ("AZURE_STORAGE_ENDPOINT", endpoint.clone()),
            ],
        ),
        (
            "sas-connection-string",
            vec![(
                "AZURE_STORAGE_CONNECTION_STRING",
                format!("BlobEndpoint={endpoint};SharedAccessSignature={sas}"),
            )],
        ),
    ];
    for (form, pairs) in &forms {
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let env = with(&base, &pairs);
        let r = az_run(
            "store",
            &env,
            &["--backup", &format!("{form}.db.gz"), "--file", f],
        );
        r.assert_code(0);
        assert!(!r.all().contains(&sas), "{form}: the SAS token was printed");
        az_run("delete", &env, &["--backup", &format!("{form}.db.gz")]).assert_code(0);
    }
    assert_eq!(az.names(), Vec::<String>::new());

    // A wrong key: access denied, nothing stored, the key not shown.
    let wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk=";
    let env = with(
        &base,
        &[
            ("AZURE_STORAGE_ACCOUNT_NAME", "devstoreaccount1"),
            ("AZURE_STORAGE_ACCOUNT_KEY", wrong),
            ("AZURE_STORAGE_ENDPOINT", &endpoint),
        ],
    );
    let r = az_run("store", &env, &["--backup", "denied.db.gz", "--file", f]);
    r.assert_code(77);
    assert!(!r.all().contains(wrong));
    assert_eq!(az.names(), Vec::<String>::new());

    // A container that does not exist: not found.
    let env = with(&az.env("x"), &[("STORAGE_URL", "az://no-such-container/x")]);
    az_run("store", &env, &["--backup", "nc.db.gz", "--file", f]).assert_code(12);
}

#[test]
fn retention_keeps_the_newest_of_this_cluster_and_never_touches_others() {
    let az = Azurite::start();
    let env = az.env("ret");
    let f = fixture("etcd-3.4-small.db.gz");
    let f = f.to_str().unwrap();
    for b in ["a.db.gz", "b.db.gz", "c.db.gz"] {
        az_run("store", &env, &["--backup", b, "--file", f]).assert_code(0);
    }
    // Same prefix, but not recorded as this cluster's backup.
    let foreign = format!("ret/{CLUSTER}-foreign.db.gz");
    az.py(&["put", CONTAINER, &foreign, f]);
    let r = az_run("delete", &with(&env, &[("KEEP_LAST", "1")]), &[]);
    r.assert_code(0);
    let left = az.names();
    assert!(left.contains(&foreign), "{left:?}");
    assert_eq!(left.len(), 2, "one backup and the foreign object: {left:?}");
}

#[test]
fn a_kops_store_in_azureblob_lists_restores_and_refuses_a_write() {
    let az = Azurite::start();
    let dir = tempfile::tempdir().unwrap();
    let main = fixture("etcd-manager/main");
    // Upload the fixture store (backups with and without meta files).
    for entry in std::fs::read_dir(&main).unwrap() {
        let entry = entry.unwrap();
        if !entry.path().is_dir() || entry.file_name() == "control" {
            continue;
        }
        for file in std::fs::read_dir(entry.path()).unwrap() {
            let file = file.unwrap();
            let name = format!(
                "kops/backups/etcd/main/{}/{}",
                entry.file_name().to_string_lossy(),
                file.file_name().to_string_lossy()
            );
            az.py(&["put", CONTAINER, &name, file.path().to_str().unwrap()]);
        }
    }
    let env = vec![(
        "AZURE_STORAGE_CONNECTION_STRING".to_string(),
        az.connection_string(),
    )];
    let url = format!("azureblob://{CONTAINER}/kops/backups/etcd/main");
    let listed = az_run("restore", &env, &["--backup-store", &url, "list-backups"]);
    listed.assert_code(0);
    assert_eq!(
        listed.stdout.lines().collect::<Vec<_>>(),
        ["2026-01-02T03:04:05Z-000007", "2026-01-04T00:00:00Z-000009"]
    );
    let out = dir.path().join("out.db");
    let r = az_run(
        "restore",
        &env,
        &[
            "--backup-store",
            &url,
            "--backup",
            "2026-01-02T03:04:05Z-000007",
            "--output",
            out.to_str().unwrap(),
        ],
    );
    r.assert_code(0);
    assert!(std::fs::metadata(&out).unwrap().len() > 0);

    // Writing a backup must be create-only, which object_store's block list
    // commit cannot say: refused before anything is sent.
    let before = az.names();
    let f = fixture("etcd-3.4-small.db.gz");
    let env = with(&env, &[("ETCD_VERSION", "3.4.13"), ("MEMBER_COUNT", "1")]);
    let r = az_run(
        "store",
        &env,
        &["--backup-store", &url, "--file", f.to_str().unwrap()],
    );
    r.assert_code(78);
    assert!(r.stderr.contains("create-only"), "{}", r.stderr);
    assert_eq!(az.names(), before);
}

#[test]
fn sigterm_mid_upload_commits_nothing() {
    use common::proxy::{Fault, Op, Proxy, Rule};
    let az = Azurite::start();
    // The second block never gets an answer, so the upload is surely in progress.
    let proxy = Proxy::start(az.port, vec![Rule::once(Op::PutObject, 2, Fault::Stall)]);
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "snapshot.db", &synthetic_snapshot(3000, 5));
    let env = with(
        &az.env("sig"),
        &[
            (
                "AZURE_STORAGE_CONNECTION_STRING",
                &az.connection_string_via(proxy.port),
            ),
            ("PART_SIZE", "5MiB"),
            ("CONCURRENCY", "1"),
            ("BACKUP_TO_CREATE", "sig.db"),
            ("SNAPSHOT_FILE", file.to_str().unwrap()),
        ],
    );
    let mut child = command("store", &env, &[])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while proxy.count(Op::PutObject) < 2 {
        assert!(std::time::Instant::now() < until, "no upload in progress");
        assert!(child.try_wait().unwrap().is_none(), "store ended early");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    signal(&child, Signal::SIGTERM);
    let out = wait_within(child, "store");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("stopped by SIGTERM"), "{stderr}");
    assert!(
        stderr.contains("never committed, so no blob exists"),
        "{stderr}"
    );
    // No blob: the first block was staged, but the block list never committed
    // (the service discards uncommitted blocks).
    assert_eq!(az.names(), Vec::<String>::new());
    assert_eq!(
        az.py(&["uncommitted", CONTAINER])
            .lines()
            .collect::<Vec<_>>(),
        [key("sig", "sig.db")],
        "the staged block is there, uncommitted"
    );
}

#[test]
fn from_etcd_to_azure_then_into_a_data_dir_that_boots() {
    let az = Azurite::start();
    let dir = tempfile::tempdir().unwrap();
    let (bin, ctl) = (etcd34("etcd"), etcd34("etcdctl"));
    let src = Etcd::fresh(&bin, "src", &dir.path().join("src-data"), "src-token");
    wait_healthy(&ctl, &src.client_url);
    etcdctl(&ctl, &src.client_url, &["put", "/azure/key", "from etcd"]);
    let env = with(
        &az.env("live"),
        &[("ETCD_ENDPOINTS", &src.client_url), ("PART_SIZE", "5MiB")],
    );
    az_run("store", &env, &["--from-etcd", "--backup", "live.db.gz"]).assert_code(0);
    drop(src);
    assert_eq!(az.names(), vec![key("live", "live.db.gz")]);

    let data = dir.path().join("restored");
    let (client, peer) = (port(), port());
    let peer_url = format!("http://127.0.0.1:{peer}");
    let cluster = format!("m0={peer_url}");
    let d = data.to_str().unwrap();
    az_run(
        "restore",
        &env,
        &[
            "--backup",
            "live.db.gz",
            "--data-dir",
            d,
            "--name",
            "m0",
            "--initial-cluster",
            &cluster,
            "--initial-cluster-token",
            "t",
            "--initial-advertise-peer-urls",
            &peer_url,
        ],
    )
    .assert_code(0);
    let member = Etcd::boot(&bin, "m0", &data, client, &peer_url, &cluster, "t");
    wait_healthy(&ctl, &member.client_url);
    let got = etcdctl(
        &ctl,
        &member.client_url,
        &["get", "/azure/key", "--print-value-only"],
    );
    assert_eq!(got.trim(), "from etcd");
}

#[test]
fn throttling_until_the_retries_end_is_15_and_leaves_no_blob() {
    use common::proxy::{Fault, Op, Proxy, Rule};
    let az = Azurite::start();
    let proxy = Proxy::start(
        az.port,
        vec![Rule::always(Op::PutObject, Fault::Status(503))],
    );
    let env = with(
        &az.env("busy"),
        &[
            (
                "AZURE_STORAGE_CONNECTION_STRING",
                &az.connection_string_via(proxy.port),
            ),
            ("DEADLINE", "20s"),
        ],
    );
    let f = fixture("etcd-3.4-small.db.gz");
    let r = az_run(
        "store",
        &env,
        &["--backup", "busy.db.gz", "--file", f.to_str().unwrap()],
    );
    r.assert_code(15);
    assert!(proxy.count(Op::PutObject) > 1, "retried");
    assert_eq!(az.names(), Vec::<String>::new());
}

#[test]
fn workload_identity_sends_the_federated_token_to_the_authority_host() {
    let az = Azurite::start();
    let dir = tempfile::tempdir().unwrap();
    let token = "federated-token-7c1e-do-not-print";
    let token_file = write_file(dir.path(), "token", token.as_bytes());
    // A loopback token endpoint: it records the exchange and answers no token.
    let (port, requests) = http_receiver();
    let env = vec![
        ("STORAGE_URL".to_string(), format!("az://{CONTAINER}/wi")),
        ("CLUSTER".to_string(), CLUSTER.to_string()),
        (
            "AZURE_STORAGE_ACCOUNT_NAME".to_string(),
            "devstoreaccount1".to_string(),
        ),
        (
            "AZURE_STORAGE_ENDPOINT".to_string(),
            format!("http://127.0.0.1:{}/devstoreaccount1", az.port),
        ),
        ("AZURE_CLIENT_ID".to_string(), "my-client-id".to_string()),
        ("AZURE_TENANT_ID".to_string(), "my-tenant".to_string()),
        (
            "AZURE_FEDERATED_TOKEN_FILE".to_string(),
            token_file.to_str().unwrap().to_string(),
        ),
        (
            "AZURE_AUTHORITY_HOST".to_string(),
            format!("http://127.0.0.1:{port}"),
        ),
        ("DEADLINE".to_string(), "10s".to_string()),
    ];
    let f = fixture("etcd-3.4-small.db.gz");
    let r = az_run(
        "store",
        &env,
        &["--backup", "wi.db.gz", "--file", f.to_str().unwrap()],
    );
    assert_ne!(r.code, 0, "{}", r.all());
    assert!(
        !r.all().contains(token),
        "the token was printed:\n{}",
        r.all()
    );
    assert!(r.stderr.contains("workload identity"), "{}", r.stderr);
    let (method, path, body) = requests
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("no token request");
    assert_eq!(method, "POST");
    assert_eq!(path, "/my-tenant/oauth2/v2.0/token");
    assert!(
        body.contains(&format!("client_assertion={token}")),
        "{body}"
    );
    assert!(body.contains("client_id=my-client-id"), "{body}");
    assert_eq!(az.names(), Vec::<String>::new());
}

#[test]
fn managed_identity_asks_the_msi_endpoint_for_a_storage_token() {
    let az = Azurite::start();
    let (port, requests) = http_receiver();
    let env = vec![
        ("STORAGE_URL".to_string(), format!("az://{CONTAINER}/mi")),
        ("CLUSTER".to_string(), CLUSTER.to_string()),
        (
            "AZURE_STORAGE_ACCOUNT_NAME".to_string(),
            "devstoreaccount1".to_string(),
        ),
        (
            "AZURE_STORAGE_ENDPOINT".to_string(),
            format!("http://127.0.0.1:{}/devstoreaccount1", az.port),
        ),
        (
            "AZURE_CLIENT_ID".to_string(),
            "user-assigned-id".to_string(),
        ),
        (
            "AZURE_MSI_ENDPOINT".to_string(),
            format!("http://127.0.0.1:{port}/metadata/identity/oauth2/token"),
        ),
        ("DEADLINE".to_string(), "10s".to_string()),
    ];
    let f = fixture("etcd-3.4-small.db.gz");
    let r = az_run(
        "store",
        &env,
        &["--backup", "mi.db.gz", "--file", f.to_str().unwrap()],
    );
    assert_ne!(r.code, 0, "{}", r.all());
    assert!(r.stderr.contains("managed identity"), "{}", r.stderr);
    let (method, path, _) = requests
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("no token request");
    assert_eq!(method, "GET");
    assert!(
        path.starts_with("/metadata/identity/oauth2/token?"),
        "{path}"
    );
    assert!(path.contains("client_id=user-assigned-id"), "{path}");
    assert!(
        path.contains("resource=https%3A%2F%2Fstorage.azure.com"),
        "{path}"
    );
    assert_eq!(az.names(), Vec::<String>::new());
}
