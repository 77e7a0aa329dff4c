//! HTTPS: the CA bundle is trusted in addition to the system roots; a server
//! whose certificate it does not vouch for is refused with exit 77.

mod common;

use common::tls::{Ca, TlsFront};
use common::*;

fn https_env(
    server: &S3Server,
    front: &TlsFront,
    bundle: Option<&std::path::Path>,
) -> Vec<(String, String)> {
    let file = fixture("etcd-3.4-small.db.gz");
    let mut env = with(
        &without(&server.job_env(), &["INSECURE"]),
        &[
            ("ENDPOINT", &format!("https://127.0.0.1:{}", front.port)),
            ("BACKUP_TO_CREATE", "tls.db.gz"),
            ("BACKUP_TO_RESTORE", "tls.db.gz"),
            ("SNAPSHOT_FILE", file.to_str().unwrap()),
        ],
    );
    if let Some(b) = bundle {
        env = with(&env, &[("CA_BUNDLE", b.to_str().unwrap())]);
    }
    env
}

#[test]
fn store_and_restore_over_https_with_the_ca_bundle() {
    let server = S3Server::start();
    let ca = Ca::new("snapjob test CA");
    let front = TlsFront::start(server.port, &ca);
    let dir = tempfile::tempdir().unwrap();
    let bundle = write_file(dir.path(), "ca-bundle.pem", ca.pem.as_bytes());
    let env = https_env(&server, &front, Some(&bundle));
    run("store", &env, &[]).assert_code(0);
    let stored = std::fs::read(server.object_file(&format!("{CLUSTER}-tls.db.gz"))).unwrap();
    assert_eq!(
        stored,
        std::fs::read(fixture("etcd-3.4-small.db.gz")).unwrap()
    );
    let out = dir.path().join("snapshot.db");
    let env = without(&env, &["SNAPSHOT_FILE"]);
    run("restore", &env, &["--output", out.to_str().unwrap()]).assert_code(0);
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(fixture("etcd-3.4-small.db")).unwrap()
    );
}

#[test]
fn an_untrusted_certificate_is_refused_with_77() {
    let server = S3Server::start();
    let ca = Ca::new("snapjob test CA");
    let front = TlsFront::start(server.port, &ca);
    let dir = tempfile::tempdir().unwrap();
    let wrong = write_file(
        dir.path(),
        "other-ca.pem",
        Ca::new("some other CA").pem.as_bytes(),
    );
    for bundle in [Some(wrong.as_path()), None] {
        let r = run("store", &https_env(&server, &front, bundle), &[]);
        r.assert_code(77);
        let line = &r.error_lines()[0];
        assert!(
            line.contains("certificate is not trusted") && line.contains("CA_BUNDLE"),
            "{line}"
        );
        assert!(!server.object_file(&format!("{CLUSTER}-tls.db.gz")).exists());
    }
}
