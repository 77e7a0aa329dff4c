//! `doctor` against each S3 server the harness starts (s3s-fs, garage, moto),
//! a `file://` directory, Azurite and fake-gcs-server: the lines it prints,
//! its exit code, and nothing left under its prefix, also when a check fails.
//! Each server's output is printed (`--nocapture`) for the README.

mod common;

use common::azurite::{self, Azurite};
use common::garage::Garage;
use common::gcs::FakeGcs;
use common::moto::Moto;
use common::*;

/// Runs doctor; returns the run and its check lines by name.
fn doctor(env: &[(String, String)]) -> (Run, Vec<(String, String)>) {
    let r = run("doctor", env, &[]);
    println!("{}", r.stdout);
    let lines = r
        .stdout
        .lines()
        .skip(1)
        .map(|l| {
            let (name, rest) = l.split_at(22.min(l.len()));
            (name.trim().to_string(), rest.trim().to_string())
        })
        .collect();
    (r, lines)
}

fn status<'a>(lines: &'a [(String, String)], check: &str) -> &'a str {
    lines
        .iter()
        .find(|(n, _)| n == check)
        .map(|(_, s)| s.as_str())
        .unwrap_or_else(|| panic!("no {check} line in {lines:?}"))
}

/// The checks of objects under the prefix, which every kind of store runs.
const OBJECT_CHECKS: [&str; 9] = [
    "put",
    "get",
    "head + metadata",
    "ranged get",
    "multipart",
    "list",
    "delete",
    "abort",
    "cleanup",
];

/// No check line says FAILED.
fn none_failed(lines: &[(String, String)]) {
    assert!(
        !lines.iter().any(|(_, s)| s.starts_with("FAILED")),
        "{lines:?}"
    );
}

/// The checks store, restore and delete need: OK on every server.
fn assert_works(lines: &[(String, String)]) {
    for check in ["credentials", "tls", "region"]
        .into_iter()
        .chain(OBJECT_CHECKS)
    {
        let s = status(lines, check);
        assert!(
            s.starts_with("OK") || (check == "tls" && s.starts_with("WARN: plain HTTP")),
            "{check}: {s}"
        );
    }
    assert!(status(lines, "head + metadata").contains("kept"));
    none_failed(lines);
}

fn prefix_of(r: &Run) -> String {
    let first = r.stdout.lines().next().unwrap_or_default();
    let i = first.find("snapjob-doctor-").expect("the prefix is named");
    first[i..].trim_end_matches('/').to_string()
}

/// Every file under `root` whose path mentions `needle` (s3s-fs keeps the
/// emptied directories, which hold no object).
fn files_named(root: &std::path::Path, needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.to_string_lossy().contains(needle) {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

#[test]
fn doctor_on_s3s_fs() {
    let server = S3Server::start();
    let (r, lines) = doctor(&server.job_env());
    r.assert_code(0);
    assert_works(&lines);
    // s3s-fs answers ListMultipartUploads with 501: a warning, not a failure.
    assert!(
        status(&lines, "list uploads").starts_with("WARN: ListMultipartUploads not implemented"),
        "{lines:?}"
    );
    assert!(status(&lines, "clock skew").starts_with("OK"), "{lines:?}");
    assert_eq!(
        files_named(server.root.path(), &prefix_of(&r)),
        Vec::<String>::new()
    );

    // A secret the server refuses: the first write fails, 77, with what to
    // check; the cleanup still runs and leaves nothing.
    let env = with(
        &server.job_env(),
        &[("SECRET_ACCESS_KEY", "wrong-secret-key")],
    );
    let (r, lines) = doctor(&env);
    r.assert_code(77);
    let put = status(&lines, "put");
    assert!(put.starts_with("FAILED: "), "{put}");
    assert!(put.contains("s3:PutObject"), "{put}");
    assert!(!r.all().contains("wrong-secret-key"));
    assert_eq!(
        files_named(server.root.path(), "snapjob-doctor-"),
        Vec::<String>::new()
    );
}

#[test]
fn doctor_on_garage() {
    let g = Garage::start();
    let (r, lines) = doctor(&g.job_env());
    r.assert_code(0);
    assert_works(&lines);
    let prefix = prefix_of(&r);
    let listed = g.s3cmd(&["ls", "-r", &format!("s3://{BUCKET}/")]);
    assert!(!String::from_utf8_lossy(&listed.stdout).contains(&prefix));
    assert!(
        !g.uploads().iter().any(|u| u.contains(&prefix)),
        "{:?}",
        g.uploads()
    );
}

#[test]
fn doctor_on_moto() {
    let m = Moto::start();
    let (r, lines) = doctor(&m.job_env());
    r.assert_code(0);
    assert_works(&lines);
    assert!(
        status(&lines, "list uploads").starts_with("OK"),
        "{lines:?}"
    );
    let prefix = prefix_of(&r);
    let (code, body) = m.request("GET", &format!("/{BUCKET}?prefix={prefix}"), "");
    assert_eq!(code, 200);
    assert!(!body.contains("<Key>"), "{body}");
    assert!(m.uploads().is_empty(), "{:?}", m.uploads());
    // No STS endpoint for a custom ENDPOINT: AWS is not asked.
    let identity = status(&lines, "identity");
    assert!(
        identity.starts_with("SKIPPED: ENDPOINT is 127.0.0.1, not AWS")
            && identity.contains("AWS_ENDPOINT_URL_STS"),
        "{identity}"
    );
}

/// The identity line: moto's STS answers GetCallerIdentity (signed with the
/// S3 credentials) with the principal; an STS that does not answer is a
/// FAILED identity line naming what to set, and the exit code stays 0 as the
/// S3 checks pass.
#[test]
fn doctor_identity_from_moto_sts() {
    let m = Moto::start();
    let env = with(&m.job_env(), &[("AWS_ENDPOINT_URL_STS", &m.endpoint())]);
    let (r, lines) = doctor(&env);
    r.assert_code(0);
    assert_works(&lines);
    let identity = status(&lines, "identity");
    assert!(
        identity.starts_with("OK: arn:aws:") && identity.contains("(account 123456789012)"),
        "{identity}"
    );
    assert!(!r.all().contains(common::SECRET_KEY));

    let nowhere = format!("http://127.0.0.1:{}", closed_port());
    let env = with(&m.job_env(), &[("AWS_ENDPOINT_URL_STS", &nowhere)]);
    let (r, lines) = doctor(&env);
    r.assert_code(0);
    let identity = status(&lines, "identity");
    assert!(
        identity.starts_with(&format!("FAILED: {nowhere}:"))
            && identity.contains("set AWS_ENDPOINT_URL_STS")
            && identity.contains("informational"),
        "{identity}"
    );
    for check in ["put", "multipart", "cleanup"] {
        assert!(status(&lines, check).starts_with("OK"), "{lines:?}");
    }
}

/// An STS of our own on 127.0.0.1 that refuses every request with 403 and
/// an STS error body, keeping the head of each request.
fn refusing_sts() -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for mut tcp in listener.incoming().flatten() {
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match tcp.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            let _ = tx.send(String::from_utf8_lossy(&got).to_string());
            let body = "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code>\
                        <Message>The security token included in the request is invalid.</Message>\
                        </Error></ErrorResponse>";
            let _ = write!(
                tcp,
                "HTTP/1.1 403 Forbidden\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, rx)
}

/// STS refuses the credentials: a FAILED identity line with STS' code and
/// what to check, exit 0 as the bucket works. The request was
/// GetCallerIdentity signed for STS with the S3 access key.
#[test]
fn doctor_identity_refused_by_sts() {
    let server = S3Server::start();
    let (sts, requests) = refusing_sts();
    let env = with(&server.job_env(), &[("AWS_ENDPOINT_URL_STS", &sts)]);
    let (r, lines) = doctor(&env);
    r.assert_code(0);
    let others: Vec<_> = lines
        .iter()
        .filter(|(n, _)| n != "identity")
        .cloned()
        .collect();
    assert_works(&others);
    let identity = status(&lines, "identity");
    assert!(
        identity.starts_with(&format!(
            "FAILED: {sts}: STS answered 403 Forbidden: InvalidClientTokenId: "
        )) && identity.contains("check the source named above")
            && identity.contains("informational"),
        "{identity}"
    );
    let head = requests.recv_timeout(time_limit()).unwrap();
    assert!(
        head.starts_with("GET /?Action=GetCallerIdentity&Version=2011-06-15 ")
            && head.contains(&format!("Credential={}/", common::ACCESS_KEY))
            && head.contains("/sts/aws4_request"),
        "{head}"
    );
    assert!(!head.contains(common::SECRET_KEY) && !r.all().contains(common::SECRET_KEY));
}

/// The checks of a store that is not S3: the object checks OK, the S3-only
/// ones SKIPPED with why.
fn assert_works_elsewhere(lines: &[(String, String)]) {
    for check in OBJECT_CHECKS {
        let s = status(lines, check);
        assert!(s.starts_with("OK"), "{check}: {s}");
    }
    for check in [
        "identity",
        "tls",
        "clock skew",
        "region",
        "list uploads",
        "checksum",
        "sse",
    ] {
        let s = status(lines, check);
        assert!(s.starts_with("SKIPPED: ") && s.len() > 20, "{check}: {s}");
    }
    none_failed(lines);
}

#[test]
fn doctor_on_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("backups");
    let url = format!("file://{}", root.display());
    let (r, lines) = doctor(&[("STORAGE_URL".to_string(), url)]);
    r.assert_code(0);
    assert_works_elsewhere(&lines);
    assert!(status(&lines, "credentials").starts_with("SKIPPED"));
    assert!(status(&lines, "head + metadata").contains("keeps no metadata"));
    assert!(status(&lines, "abort").contains("no staging file left"));
    // Not even the emptied directories stay.
    let left: Vec<_> = std::fs::read_dir(&root).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");

    // A directory that cannot be made (a file is in its path): the store line
    // fails naming STORAGE_URL (74, a local I/O error), and nothing else runs.
    std::fs::write(dir.path().join("file"), b"x").unwrap();
    let url = format!("file://{}/file/backups", dir.path().display());
    let (r, lines) = doctor(&[("STORAGE_URL".to_string(), url)]);
    r.assert_code(74);
    let store = &lines.last().unwrap().1;
    assert!(
        lines.last().unwrap().0 == "store"
            && store.starts_with("FAILED: ")
            && store.contains("STORAGE_URL"),
        "{lines:?}"
    );
}

#[test]
fn doctor_on_azurite() {
    let az = Azurite::start();
    let (r, lines) = doctor(&az.env("backups"));
    r.assert_code(0);
    assert_works_elsewhere(&lines);
    assert!(
        status(&lines, "credentials").starts_with("OK: account key for account devstoreaccount1")
    );
    assert!(status(&lines, "head + metadata").contains("kept"));
    assert!(
        az.names().iter().all(|n| !n.contains("snapjob-doctor-")),
        "{:?}",
        az.names()
    );

    // A key the service refuses: the first write fails (77), nothing is left.
    let wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk=";
    let env = with(
        &az.env("backups"),
        &[(
            "AZURE_STORAGE_CONNECTION_STRING",
            &az.connection_string().replace(azurite::KEY, wrong),
        )],
    );
    let (r, lines) = doctor(&env);
    r.assert_code(77);
    let put = status(&lines, "put");
    assert!(
        put.starts_with("FAILED: PUT: access denied") && put.contains("(check AZURE_STORAGE_"),
        "{put}"
    );
    let aborts = lines.iter().filter(|(n, _)| n == "abort").count();
    assert_eq!(aborts, 1, "{lines:?}");
    assert!(!r.all().contains(wrong));
    assert!(az.names().is_empty(), "{:?}", az.names());
}

#[test]
fn doctor_on_fake_gcs() {
    let gcs = FakeGcs::start();
    let (r, lines) = doctor(&gcs.job_env("backups"));
    r.assert_code(0);
    assert_works_elsewhere(&lines);
    assert!(status(&lines, "credentials").starts_with("OK: none (STORAGE_EMULATOR_HOST)"));
    assert!(status(&lines, "head + metadata").contains("kept"));
    assert_eq!(gcs.keys("backups/"), Vec::<String>::new());

    // A bucket that does not exist: the first write fails (12, not found).
    let env = with(
        &gcs.job_env("backups"),
        &[("STORAGE_URL", "gs://no-such-bucket/backups")],
    );
    let (r, lines) = doctor(&env);
    r.assert_code(12);
    let put = status(&lines, "put");
    assert!(put.starts_with("FAILED: PUT: not found"), "{put}");
    assert!(status(&lines, "cleanup").starts_with("OK"), "{lines:?}");
}

/// With SSE-C and CHECKSUM set, every check runs with them (garage implements
/// both), the multipart check too (its parts and Complete carry the key), and
/// the last lines say what was sent, never the key.
#[test]
fn doctor_with_sse_c_and_checksums_on_garage() {
    let g = Garage::start();
    let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // base64 of 32 bytes
    let mut env = g.job_env();
    env.push(("SSE_CUSTOMER_KEY".into(), key.into()));
    env.push(("CHECKSUM".into(), "sha256".into()));
    let (r, lines) = doctor(&env);
    r.assert_code(0);
    for check in [
        "put",
        "get",
        "head + metadata",
        "ranged get",
        "multipart",
        "abort",
        "cleanup",
    ] {
        assert!(
            status(&lines, check).starts_with("OK"),
            "{check}: {lines:?}"
        );
    }
    none_failed(&lines);
    assert!(status(&lines, "checksum").starts_with("OK"), "{lines:?}");
    assert!(
        status(&lines, "sse").starts_with("OK: SSE-C with the key of SSE_CUSTOMER_KEY"),
        "{lines:?}"
    );
    assert!(!r.stdout.contains(key) && !r.stderr.contains(key));
    let prefix = prefix_of(&r);
    let listed = g.s3cmd(&["ls", "-r", &format!("s3://{BUCKET}/")]);
    assert!(!String::from_utf8_lossy(&listed.stdout).contains(&prefix));
}
