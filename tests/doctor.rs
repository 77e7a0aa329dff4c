//! `doctor` against each S3 server the harness starts (s3s-fs, garage, moto):
//! the lines it prints, its exit code, and nothing left under its prefix, also
//! when a check fails. Each server's output is printed (`--nocapture`) for the
//! README.

mod common;

use common::garage::Garage;
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

/// The checks store, restore and delete need: OK on every server.
fn assert_works(lines: &[(String, String)]) {
    for check in [
        "credentials",
        "tls",
        "region",
        "put",
        "get",
        "head + metadata",
        "ranged get",
        "multipart",
        "list",
        "delete",
        "abort",
        "cleanup",
    ] {
        let s = status(lines, check);
        assert!(
            s.starts_with("OK") || (check == "tls" && s.starts_with("WARN: plain HTTP")),
            "{check}: {s}"
        );
    }
    assert!(status(lines, "head + metadata").contains("kept"));
    assert!(
        !lines.iter().any(|(_, s)| s.starts_with("FAILED")),
        "{lines:?}"
    );
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
    assert!(
        !lines.iter().any(|(_, s)| s.starts_with("FAILED")),
        "{lines:?}"
    );
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
