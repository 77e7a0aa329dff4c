//! Snapshots from a live etcd (3.4.23 and 3.5.1, plain and TLS with client
//! certificates): `snapshot` and `store --from-etcd` give exactly what
//! `etcdctl snapshot save` gives; a dead first endpoint is skipped; a stream cut
//! mid-way stores nothing and leaves no upload.

mod common;

use std::path::{Path, PathBuf};

use common::tls::Ca;
use common::*;

/// A one-member etcd on loopback with some data: keys with history, a delete,
/// a lease, and `big` values of 64 KiB.
fn etcd(bin: &Path, ctl: &Path, dir: &Path, big: usize, tls: Option<&[String]>) -> (Etcd, String) {
    let (client, peer) = (port(), port());
    let peer_url = format!("http://127.0.0.1:{peer}");
    let scheme = if tls.is_some() { "https" } else { "http" };
    let e = Etcd::boot_with(
        bin,
        "src",
        &dir.join("src-data"),
        client,
        &peer_url,
        &format!("src={peer_url}"),
        "src-token",
        scheme,
        tls.unwrap_or(&[]),
    );
    let endpoint = e.client_url.clone();
    if tls.is_none() {
        wait_healthy(ctl, &endpoint);
        for i in 0..20 {
            etcdctl(
                ctl,
                &endpoint,
                &["put", &format!("/k/{i}"), &format!("value {i}")],
            );
        }
        etcdctl(ctl, &endpoint, &["put", "/k/0", "again"]);
        etcdctl(ctl, &endpoint, &["del", "/k/1"]);
        let value = "v".repeat(64 * 1024);
        for i in 0..big {
            etcdctl(ctl, &endpoint, &["put", &format!("/big/{i}"), &value]);
        }
    }
    (e, endpoint)
}

fn etcdctl_save(ctl: &Path, endpoint: &str, out: &Path, tls: &[String]) {
    let o = output_within(
        std::process::Command::new(ctl)
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", endpoint])
            .args(tls)
            .args(["snapshot", "save"])
            .arg(out),
        "etcdctl",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn snapshot_and_store_equal_etcdctl_on_etcd_3_4_and_3_5() {
    for (bin, ctl) in [
        (etcd34("etcd"), etcd34("etcdctl")),
        (etcd35("etcd"), etcd35("etcdctl")),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (_etcd, endpoint) = etcd(&bin, &ctl, dir.path(), 3, None);
        let reference = dir.path().join("ref.db");
        etcdctl_save(&ctl, &endpoint, &reference, &[]);
        let want = std::fs::read(&reference).unwrap();
        // A dead first endpoint is skipped.
        let endpoints = format!("http://127.0.0.1:{},{endpoint}", closed_port());

        let raw = dir.path().join("raw.db");
        run(
            "snapshot",
            &[],
            &[
                "--etcd-endpoints",
                &endpoints,
                "--compress",
                "none",
                "--file",
                raw.to_str().unwrap(),
            ],
        )
        .assert_code(0);
        assert!(
            std::fs::read(&raw).unwrap() == want,
            "{}: snapshot --compress none",
            bin.display()
        );

        let server = S3Server::start();
        let env = with(
            &server.job_env(),
            &[
                ("BACKUP_TO_CREATE", "live.db.gz"),
                ("ETCD_ENDPOINTS", &endpoints),
            ],
        );
        let r = run("store", &env, &["--from-etcd"]);
        r.assert_code(0);
        assert!(
            r.stderr.contains("trying the next"),
            "the dead endpoint was reported: {}",
            r.stderr
        );
        let object = std::fs::read(server.object_file(&format!("{CLUSTER}-live.db.gz"))).unwrap();
        assert!(
            gunzip(&object) == want,
            "{}: the stored object, decompressed",
            bin.display()
        );
        assert!(server.leftover_uploads().is_empty());

        // The same to a local directory: the file written whole, nothing beside it.
        let local = dir.path().join("local");
        let env = [
            (
                "STORAGE_URL".to_string(),
                format!("file://{}", local.display()),
            ),
            ("CLUSTER".to_string(), CLUSTER.to_string()),
            ("BACKUP_TO_CREATE".to_string(), "live.db.gz".to_string()),
            ("ETCD_ENDPOINTS".to_string(), endpoint.clone()),
        ];
        run("store", &env, &["--from-etcd"]).assert_code(0);
        let names: Vec<_> = std::fs::read_dir(&local)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [format!("{CLUSTER}-live.db.gz")],
            "{}",
            bin.display()
        );
        let stored = std::fs::read(local.join(&names[0])).unwrap();
        assert!(
            gunzip(&stored) == want,
            "{}: file:// from etcd",
            bin.display()
        );

        // etcdctl accepts what restore makes of the object.
        let out = dir.path().join("restored.db");
        let env = with(&server.job_env(), &[("BACKUP_TO_RESTORE", "live.db.gz")]);
        run("restore", &env, &["--output", out.to_str().unwrap()]).assert_code(0);
        let status = output_within(
            std::process::Command::new(&ctl)
                .env("ETCDCTL_API", "3")
                .args(["snapshot", "status"])
                .arg(&out),
            "etcdctl",
        );
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
    }
}

/// An etcd member that requires client certificates, up and holding `/tls`:
/// the member, its endpoint, the temp dir, the CA file, and etcdctl's TLS flags
/// (with a client certificate the CA issued).
struct TlsEtcd {
    _etcd: Etcd,
    endpoint: String,
    dir: tempfile::TempDir,
    ca_file: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    ctl_tls: Vec<String>,
}

fn tls_etcd(bin: &Path, ctl: &Path) -> TlsEtcd {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("etcd test CA");
    let (server_cert, server_key) = ca.issue();
    let (client_cert, client_key) = ca.issue();
    let path = |n: &str, body: &str| -> PathBuf { write_file(dir.path(), n, body.as_bytes()) };
    let (ca_file, sc, sk, cc, ck) = (
        path("ca.pem", &ca.pem),
        path("server.pem", &server_cert),
        path("server-key.pem", &server_key),
        path("client.pem", &client_cert),
        path("client-key.pem", &client_key),
    );
    let s = |p: &PathBuf| p.to_str().unwrap().to_string();
    let tls = [
        "--cert-file".into(),
        s(&sc),
        "--key-file".into(),
        s(&sk),
        "--client-cert-auth".into(),
        "--trusted-ca-file".into(),
        s(&ca_file),
    ];
    let (etcd, endpoint) = etcd(bin, ctl, dir.path(), 0, Some(&tls));
    let ctl_tls = vec![
        "--cacert".to_string(),
        s(&ca_file),
        "--cert".into(),
        s(&cc),
        "--key".into(),
        s(&ck),
    ];
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let o = output_within(
            std::process::Command::new(ctl)
                .env("ETCDCTL_API", "3")
                .args(["--endpoints", &endpoint])
                .args(&ctl_tls)
                .args(["put", "/tls", "yes"]),
            "etcdctl",
        );
        if o.status.success() {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "etcd with TLS did not come up"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    TlsEtcd {
        _etcd: etcd,
        endpoint,
        dir,
        ca_file,
        client_cert: cc,
        client_key: ck,
        ctl_tls,
    }
}

#[test]
fn tls_with_client_certificates() {
    let e = tls_etcd(&etcd35("etcd"), &etcd35("etcdctl"));
    let reference = e.dir.path().join("ref.db");
    etcdctl_save(&etcd35("etcdctl"), &e.endpoint, &reference, &e.ctl_tls);
    let out = e.dir.path().join("ours.db");
    let args = [
        "--etcd-endpoints",
        &e.endpoint,
        "--etcd-ca-file",
        e.ca_file.to_str().unwrap(),
        "--etcd-client-cert-file",
        e.client_cert.to_str().unwrap(),
        "--etcd-client-key-file",
        e.client_key.to_str().unwrap(),
        "--compress",
        "none",
        "--file",
        out.to_str().unwrap(),
    ];
    run("snapshot", &[], &args).assert_code(0);
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&reference).unwrap());
}

/// Without the client certificate etcd refuses the connection: access denied (77,
/// the README's table), one error line, nothing written.
fn refused_client_certificate(bin: &Path, ctl: &Path) {
    let e = tls_etcd(bin, ctl);
    let refused = e.dir.path().join("refused.db");
    let args = [
        "--etcd-endpoints",
        &e.endpoint,
        "--etcd-ca-file",
        e.ca_file.to_str().unwrap(),
        "--file",
        refused.to_str().unwrap(),
    ];
    let r = run("snapshot", &[], &args);
    r.assert_code(77);
    assert_eq!(r.error_lines().len(), 1, "{}", r.stderr);
    assert!(
        r.error_lines()[0].contains("ETCD_CLIENT_CERT_FILE"),
        "the error names the missing setting: {}",
        r.stderr
    );
    assert!(!refused.exists());
}

/// etcd 3.5.1 (built with an older Go) speaks TLS 1.2 here: the refusal comes
/// inside the handshake.
#[test]
fn a_refused_client_certificate_is_access_denied_tls_1_2() {
    refused_client_certificate(&etcd35("etcd"), &etcd35("etcdctl"));
}

/// Debian's etcd 3.4.23 speaks TLS 1.3, as current etcd builds do: the refusal
/// comes after the handshake.
#[test]
fn a_refused_client_certificate_is_access_denied_tls_1_3() {
    refused_client_certificate(&etcd34("etcd"), &etcd34("etcdctl"));
}

#[test]
fn a_stream_cut_midway_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (bin, ctl) = (etcd34("etcd"), etcd34("etcdctl"));
    let (_etcd, endpoint) = etcd(&bin, &ctl, dir.path(), 40, None);
    let etcd_port: u16 = endpoint.rsplit(':').next().unwrap().parse().unwrap();
    // About 2.6 MB of snapshot; the connection dies after 600 KB of it.
    let cut = CutProxy::start(etcd_port, 600 * 1024);
    let cut_endpoint = format!("http://127.0.0.1:{}", cut.port);

    let server = S3Server::start();
    let env = with(
        &server.job_env(),
        &[
            ("BACKUP_TO_CREATE", "cut.db.gz"),
            ("ETCD_ENDPOINTS", &cut_endpoint),
            ("PART_SIZE", "5MiB"),
        ],
    );
    let r = run("store", &env, &["--from-etcd", "--compress", "none"]);
    r.assert_code(75);
    assert!(r.error_lines()[0].contains("stream"), "{}", r.stderr);
    assert!(!server.object_file(&format!("{CLUSTER}-cut.db.gz")).exists());
    assert_eq!(server.leftover_uploads(), Vec::<String>::new());

    let file = dir.path().join("cut.db");
    let r = run(
        "snapshot",
        &[],
        &[
            "--etcd-endpoints",
            &cut_endpoint,
            "--file",
            file.to_str().unwrap(),
        ],
    );
    r.assert_code(75);
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("cut"))
        .collect();
    assert!(left.is_empty(), "no file or temporary file left: {left:?}");
}

/// `store --from-etcd` to S3 aborts what a killed run of the key left, as a
/// file's store does (moto lists pending uploads; its `Initiated` is always in
/// 2010, so any leftover counts as older than the run).
#[test]
fn store_from_etcd_aborts_the_keys_leftover_upload() {
    let dir = tempfile::tempdir().unwrap();
    let (bin, ctl) = (etcd34("etcd"), etcd34("etcdctl"));
    let (_etcd, endpoint) = etcd(&bin, &ctl, dir.path(), 0, None);
    let m = common::moto::Moto::start();
    let key = format!("{CLUSTER}-live.db.gz");
    let left = m.create_upload(&key);
    let other = m.create_upload(&format!("{CLUSTER}-other.db.gz"));
    let env = with(
        &m.job_env(),
        &[
            ("BACKUP_TO_CREATE", "live.db.gz"),
            ("ETCD_ENDPOINTS", &endpoint),
        ],
    );
    let r = run("store", &env, &["--from-etcd"]);
    r.assert_code(0);
    assert!(
        r.stderr.contains(&left),
        "the aborted upload is named: {}",
        r.stderr
    );
    assert_eq!(
        m.uploads(),
        vec![(format!("{CLUSTER}-other.db.gz"), other)],
        "only the key's own upload is aborted"
    );
    assert!(m.object(&key).is_some());
}
