//! What a Job sees besides logs: the JSON termination message, and metrics pushed
//! to a Pushgateway (a small receiver on loopback stands in for it).

mod common;

use common::*;

fn termination(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(!text.contains(SECRET_KEY));
    assert_eq!(text.lines().count(), 1, "one line: {text}");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn the_termination_message_summarises_success_and_failure() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("termination-log");
    let file = fixture("etcd-3.4-small.db.gz");
    let env = with(
        &server.job_env(),
        &[
            ("BACKUP_TO_CREATE", "t.db.gz"),
            ("SNAPSHOT_FILE", file.to_str().unwrap()),
            ("TERMINATION_LOG", log.to_str().unwrap()),
        ],
    );
    run("store", &env, &[]).assert_code(0);
    let ok = termination(&log);
    assert_eq!(ok["operation"], "store");
    assert_eq!(ok["result"], "ok");
    assert_eq!(ok["exit_code"], 0);
    assert_eq!(ok["bytes"], std::fs::metadata(&file).unwrap().len());
    assert_eq!(ok["sha256"], sha256_hex(&std::fs::read(&file).unwrap()));
    assert!(
        ok["key"]
            .as_str()
            .unwrap()
            .ends_with(&format!("{CLUSTER}-t.db.gz"))
    );

    run("store", &without(&env, &["BUCKET_NAME"]), &[]).assert_code(78);
    let failed = termination(&log);
    assert_eq!(failed["result"], "error");
    assert_eq!(failed["exit_code"], 78);
    assert!(failed["error"].as_str().unwrap().contains("BUCKET_NAME"));
    assert!(failed["hint"].as_str().unwrap().contains("variable"));
}

#[test]
fn a_long_error_is_cut_and_the_summary_fields_survive() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("termination-log");
    // A path longer than PATH_MAX: opening it fails, and the error names it whole.
    let long = dir.path().join("d/".repeat(2600)).join("snapshot.db.gz");
    let env = with(
        &server.job_env(),
        &[
            ("BACKUP_TO_CREATE", "long.db.gz"),
            ("SNAPSHOT_FILE", long.to_str().unwrap()),
            ("TERMINATION_LOG", log.to_str().unwrap()),
        ],
    );
    let r = run("store", &env, &[]);
    r.assert_code(74);
    assert!(
        r.stderr.len() > 5000,
        "the full error went to the log: {}",
        r.stderr
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.len() <= 4096, "{} bytes", text.len());
    let cut = termination(&log);
    assert_eq!(cut["operation"], "store");
    assert_eq!(cut["result"], "error");
    assert_eq!(cut["exit_code"], 74);
    let error = cut["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!("{}/d/d/", dir.path().display())) && error.ends_with('…'),
        "the error is cut at its end: {error}"
    );
    assert!(
        error.len() > 3000,
        "most of the room goes to the error: {}",
        error.len()
    );
    assert!(
        cut["hint"].as_str().is_some_and(|h| !h.is_empty()),
        "{text}"
    );
}

#[test]
fn metrics_are_pushed_and_a_dead_pushgateway_only_warns() {
    let server = S3Server::start();
    let (port, pushes) = http_receiver();
    let file = fixture("etcd-3.4-small.db.gz");
    let env = with(
        &server.job_env(),
        &[
            ("BACKUP_TO_CREATE", "m.db.gz"),
            ("SNAPSHOT_FILE", file.to_str().unwrap()),
            ("PUSHGATEWAY_URL", &format!("http://127.0.0.1:{port}")),
        ],
    );
    run("store", &env, &[]).assert_code(0);
    let (method, path, body) = pushes
        .recv_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    assert_eq!(method, "POST", "POST keeps earlier metrics of the group");
    assert_eq!(
        path,
        format!("/metrics/job/snapjob/cluster/{CLUSTER}/operation/store")
    );
    assert!(
        body.contains("snapjob_exit_code 0\n")
            && body.contains("snapjob_last_success_timestamp_seconds "),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            "snapjob_bytes {}\n",
            std::fs::metadata(&file).unwrap().len()
        )),
        "{body}"
    );

    run(
        "store",
        &with(
            &env,
            &[("SNAPSHOT_FILE", fixture("empty.db.gz").to_str().unwrap())],
        ),
        &[],
    )
    .assert_code(65);
    let (_, _, body) = pushes
        .recv_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    assert!(
        body.contains("snapjob_exit_code 65\n") && !body.contains("last_success"),
        "{body}"
    );

    let dead = with(
        &env,
        &[(
            "PUSHGATEWAY_URL",
            &format!("http://127.0.0.1:{}", closed_port()),
        )],
    );
    let r = run("store", &dead, &[]);
    r.assert_code(0);
    assert!(r.stderr.contains("pushing metrics failed"), "{}", r.stderr);
}

#[test]
fn long_transfers_log_progress() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "s.db", &synthetic_snapshot(3000, 1));
    let env = with(
        &server.job_env(),
        &[
            ("BACKUP_TO_CREATE", "p.db"),
            ("BACKUP_TO_RESTORE", "p.db"),
            ("SNAPSHOT_FILE", file.to_str().unwrap()),
            ("PART_SIZE", "5MiB"),
            ("SINGLE_PUT_MAX", "0"),
            ("PROGRESS_INTERVAL", "0"),
        ],
    );
    let r = run("store", &env, &[]);
    r.assert_code(0);
    let total = std::fs::metadata(&file).unwrap().len();
    let lines: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("\"message\":\"uploading\""))
        .collect();
    // Parts stream from the file in chunks; interval 0 logs every chunk, so
    // there are more lines than the three parts.
    assert!(
        lines.len() > 3,
        "one line per chunk at interval 0: {}",
        r.stderr
    );
    assert!(
        lines
            .last()
            .unwrap()
            .contains(&format!("\"bytes\":{total},")),
        "the last line reaches the total: {}",
        r.stderr
    );
    assert!(
        lines[0].contains(&format!("\"total\":{total}")) && lines[0].contains("eta_s"),
        "{}",
        lines[0]
    );
    let out = dir.path().join("out.db");
    let r = run(
        "restore",
        &without(&env, &["SNAPSHOT_FILE"]),
        &["--output", out.to_str().unwrap()],
    );
    r.assert_code(0);
    assert!(
        r.stderr.contains("\"message\":\"downloading\""),
        "{}",
        r.stderr
    );
}

#[test]
fn a_terminal_gets_a_progress_bar() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "s.db", &synthetic_snapshot(3000, 2));
    let env = with(
        &server.job_env(),
        &[
            ("BACKUP_TO_CREATE", "tty.db"),
            ("SNAPSHOT_FILE", file.to_str().unwrap()),
            ("PART_SIZE", "5MiB"),
            ("SINGLE_PUT_MAX", "0"),
            ("PROGRESS_INTERVAL", "0"),
            ("LOG_FORMAT", "human"),
        ],
    );
    // `script` runs the binary on a pseudo-terminal (util-linux).
    let out = output_within(
        std::process::Command::new("script")
            .args(["-qfec", env!("CARGO_BIN_EXE_store"), "/dev/null"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .envs(env.iter().map(|(k, v)| (k, v))),
        "script",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains(SECRET_KEY));
    assert!(
        text.contains("\r\x1b[Kuploading ["),
        "a bar redrawn in place: {text:?}"
    );
    assert!(text.contains("100%"), "{text:?}");
    assert!(
        !text.contains("INFO uploading"),
        "no progress log lines on a terminal: {text:?}"
    );
    assert!(text.contains("stored"), "{text:?}");
}
