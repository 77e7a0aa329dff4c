//! The ways a new user's trial lost a backup or got a panic (issue "No backup is
//! ever lost"), each as a run of the real binaries: common Secret mistakes and
//! absurd values are configuration errors (78, one line, a termination message),
//! never a panic; unknown log levels never silence the error line; a plain-HTTP
//! endpoint without INSECURE is named as such; a local snapshot and a backup name
//! together are refused; two etcd-manager stores in one second keep both backups.

mod common;

use common::*;

/// The controller's environment with nothing listening at the endpoint (every
/// case here must fail before any connection), its termination message in `dir`.
fn offline_env_in(dir: &std::path::Path) -> Vec<(String, String)> {
    with(
        &offline_env(),
        &[(
            "TERMINATION_LOG",
            dir.join("termination-log").to_str().unwrap(),
        )],
    )
}

/// The run exited 78 with exactly one error line naming `var`, no panic text, and
/// a termination message with the same code.
fn assert_named_config_error(r: &Run, dir: &std::path::Path, bin: &str, var: &str) {
    assert!(!r.stderr.contains("panicked"), "{bin}: {}", r.stderr);
    r.assert_code(78);
    let errors = r.error_lines();
    assert_eq!(errors.len(), 1, "{bin}: one error line: {}", r.stderr);
    assert!(errors[0].contains(var), "{bin}: names {var}: {}", errors[0]);
    let message = std::fs::read_to_string(dir.join("termination-log")).unwrap();
    let summary: serde_json::Value = serde_json::from_str(&message).unwrap();
    assert_eq!(summary["exit_code"], 78, "{bin}: {message}");
    assert_eq!(summary["operation"], bin, "{message}");
}

#[test]
fn a_trailing_newline_in_a_credential_or_region_is_named_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let env = offline_env_in(dir.path());
    for (var, value) in [
        ("ACCESS_KEY_ID", format!("{ACCESS_KEY}\n")),
        ("SECRET_ACCESS_KEY", format!("{SECRET_KEY}\n")),
        ("AWS_SESSION_TOKEN", "FwoGZXIvYXdzEJr\n".to_string()),
        ("REGION", "eu-central-1\n".to_string()),
    ] {
        for bin in ["store", "delete", "restore"] {
            let r = run(bin, &with(&env, &[(var, &value)]), &[]);
            assert_named_config_error(&r, dir.path(), bin, var);
            assert!(r.stderr.contains("newline"), "{bin} {var}: {}", r.stderr);
        }
    }
}

#[test]
fn an_absurd_deadline_is_named_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let env = offline_env_in(dir.path());
    for value in ["18446744073709551615", "9999999999h"] {
        for bin in ["store", "delete", "restore"] {
            let r = run(bin, &with(&env, &[("DEADLINE", value)]), &[]);
            assert_named_config_error(&r, dir.path(), bin, "DEADLINE");
        }
    }
}

#[test]
fn an_unknown_log_level_is_an_error_and_the_error_line_is_never_lost() {
    let dir = tempfile::tempdir().unwrap();
    let env = offline_env_in(dir.path());
    for level in ["verbose", "fatal", "loud"] {
        // A missing bucket besides: whichever is reported, a line must be there.
        let r = run("delete", &with(&env, &[("LOG_LEVEL", level)]), &[]);
        match level {
            "loud" => {
                assert_named_config_error(&r, dir.path(), "delete", "LOG_LEVEL");
            }
            _ => {
                // Taken as its nearest level: the run goes on and fails on the
                // closed port (111), with its error line.
                r.assert_code(111);
                assert_eq!(r.error_lines().len(), 1, "{level}: {}", r.stderr);
            }
        }
    }
    // Errors switched off by the user still leave the one error line.
    let r = run("delete", &with(&env, &[("LOG_LEVEL", "off")]), &[]);
    r.assert_code(111);
    assert!(
        r.stderr.lines().any(|l| l.starts_with("error: ")),
        "{}",
        r.stderr
    );
}

#[test]
fn a_local_snapshot_and_a_backup_name_together_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let env = offline_env_in(dir.path());
    let snap = fixture("etcd-3.4-small.db.gz");
    let out = dir.path().join("out.db");
    let r = run(
        "restore",
        &with(
            &env,
            &[
                ("SNAPSHOT_FILE", snap.to_str().unwrap()),
                ("OUTPUT_FILE", out.to_str().unwrap()),
            ],
        ),
        &[],
    );
    assert_named_config_error(&r, dir.path(), "restore", "SNAPSHOT_FILE");
    assert!(!out.exists(), "nothing restored");
    // Alone, the local file restores and the run says so in its last line.
    let r = run(
        "restore",
        &without(
            &with(
                &env,
                &[
                    ("SNAPSHOT_FILE", snap.to_str().unwrap()),
                    ("OUTPUT_FILE", out.to_str().unwrap()),
                ],
            ),
            &["BACKUP_TO_RESTORE"],
        ),
        &[],
    );
    r.assert_code(0);
    assert!(out.exists());
    assert!(
        r.stderr.contains("\"message\":\"finished\""),
        "one summary line: {}",
        r.stderr
    );
}

#[test]
fn a_plain_http_endpoint_without_insecure_is_named() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let env = with(
        &without(&server.job_env(), &["INSECURE"]),
        &[
            ("ENDPOINT", &format!("127.0.0.1:{}", server.port)),
            ("DEADLINE", "30s"),
            (
                "TERMINATION_LOG",
                dir.path().join("termination-log").to_str().unwrap(),
            ),
        ],
    );
    let snap = fixture("etcd-3.4-small.db.gz");
    let env = with(
        &env,
        &[
            ("SNAPSHOT_FILE", snap.to_str().unwrap()),
            ("BACKUP_TO_CREATE", "b.db.gz"),
            ("BACKUP_TO_DELETE", "b.db.gz"),
        ],
    );
    for bin in ["store", "delete"] {
        let r = run(bin, &env, &[]);
        r.assert_code(78);
        let errors = r.error_lines();
        assert_eq!(errors.len(), 1, "{bin}: {}", r.stderr);
        assert!(
            errors[0].contains("plain HTTP") && errors[0].contains("INSECURE"),
            "{bin}: {}",
            errors[0]
        );
    }
}

#[test]
fn two_etcd_manager_stores_in_one_second_keep_both_backups() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("main");
    // Backups already at sequence 0 of this second and the next few: a store
    // now must pick another name, never write into one of these.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let taken: Vec<String> = (0..10)
        .map(|s| snapjob::formats::etcd_manager::name_at(now + s, 0))
        .collect();
    for name in &taken {
        let d = store_dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("etcd.backup.gz"), name.as_bytes()).unwrap();
        std::fs::write(d.join("_etcd_backup.meta"), b"{}").unwrap();
    }
    let url = format!("file://{}", store_dir.display());
    let snap = fixture("etcd-3.4-small.db.gz");
    let env = [
        ("BACKUP_STORE".to_string(), url),
        ("SNAPSHOT_FILE".to_string(), snap.display().to_string()),
        ("ETCD_VERSION".to_string(), "3.5.1".to_string()),
    ];
    for _ in 0..2 {
        run("store", &env, &[]).assert_code(0);
    }
    for name in &taken {
        let data = std::fs::read(store_dir.join(name).join("etcd.backup.gz")).unwrap();
        assert_eq!(data, name.as_bytes(), "{name} was overwritten");
    }
    let ours: Vec<_> = std::fs::read_dir(&store_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !taken.contains(n))
        .collect();
    assert_eq!(ours.len(), 2, "two stores, two backups: {ours:?}");
    for name in &ours {
        assert!(
            !name.ends_with("-000000"),
            "{name} collides with a taken one"
        );
        let data = std::fs::read(store_dir.join(name).join("etcd.backup.gz")).unwrap();
        assert_eq!(data, std::fs::read(&snap).unwrap(), "{name}");
        assert!(store_dir.join(name).join("_etcd_backup.meta").exists());
    }
}

#[test]
fn an_upload_that_cannot_be_aborted_is_named_in_the_termination_message() {
    use common::proxy::{Fault, Op, Proxy, Rule};
    let server = S3Server::start();
    // Every abort is refused: the parts stay, and the run must say so.
    let proxy = Proxy::start(
        server.port,
        vec![Rule::always(Op::Abort, Fault::Status(500))],
    );
    let dir = tempfile::tempdir().unwrap();
    let mut raw = synthetic_snapshot(4000, 3);
    raw[10 << 20] ^= 0x55; // corrupt: verification fails after parts were sent
    let file = write_file(dir.path(), "snapshot.db.gz", &gzip(&raw));
    let log = dir.path().join("termination-log");
    let env = with(
        &server.job_env(),
        &[
            ("ENDPOINT", &format!("127.0.0.1:{}", proxy.port)),
            ("BACKUP_TO_CREATE", "bad.db.gz"),
            ("SNAPSHOT_FILE", file.to_str().unwrap()),
            ("PART_SIZE", "5MiB"),
            ("SINGLE_PUT_MAX", "0"),
            ("TERMINATION_LOG", log.to_str().unwrap()),
        ],
    );
    let r = run("store", &env, &[]);
    r.assert_code(65);
    assert!(proxy.count(Op::Abort) > 1, "the abort is retried");
    // s3s-fs keeps an upload as `.upload-<id>.json` beside its parts.
    let ids: Vec<String> = server
        .leftover_uploads()
        .iter()
        .filter_map(|n| n.strip_prefix(".upload-")?.strip_suffix(".json"))
        .map(str::to_string)
        .collect();
    assert_eq!(ids.len(), 1, "the refused abort left the upload");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&log).unwrap()).unwrap();
    let error = summary["error"].as_str().unwrap();
    assert!(error.contains("could not be aborted"), "{error}");
    assert!(
        error.contains(&ids[0]),
        "names the upload {}: {error}",
        ids[0]
    );
    assert!(
        error.contains(&format!("s3://{BUCKET}/{CLUSTER}-bad.db.gz")),
        "{error}"
    );
    assert_eq!(summary["exit_code"], 65);
    assert!(!server.object_file(&format!("{CLUSTER}-bad.db.gz")).exists());
}

#[test]
fn a_killed_local_store_leaves_nothing_the_next_store_does_not_remove() {
    use nix::fcntl::{Flock, FlockArg};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    std::fs::create_dir(&root).unwrap();
    let key = format!("{CLUSTER}-b.db.gz");
    // What a SIGKILLed store left (nobody holds its lock), and what a live one
    // holds right now (locked by this test, as that run would).
    let stale = root.join(format!(".{key}.snapjob-4242.upload"));
    std::fs::write(&stale, vec![7u8; 1 << 20]).unwrap();
    let live = root.join(format!(".{key}.snapjob-4343.upload"));
    std::fs::write(&live, b"in progress").unwrap();
    let held = Flock::lock(
        std::fs::File::open(&live).unwrap(),
        FlockArg::LockExclusiveNonblock,
    )
    .unwrap();
    let snap = fixture("etcd-3.4-small.db.gz");
    let env = [
        (
            "STORAGE_URL".to_string(),
            format!("file://{}", root.display()),
        ),
        ("CLUSTER".to_string(), CLUSTER.to_string()),
        ("BACKUP_TO_CREATE".to_string(), "b.db.gz".to_string()),
        ("SNAPSHOT_FILE".to_string(), snap.display().to_string()),
    ];
    let r = run("store", &env, &[]);
    r.assert_code(0);
    assert!(!stale.exists(), "the killed run's file is removed");
    assert!(live.exists(), "a live run's file is left alone");
    assert_eq!(
        std::fs::read(root.join(&key)).unwrap(),
        std::fs::read(&snap).unwrap()
    );
    drop(held);
    let left: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".snapjob-") && !n.contains("4343"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_corrupt_snapshot_stored_locally_leaves_nothing_at_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let env = |file: &std::path::Path| {
        [
            (
                "STORAGE_URL".to_string(),
                format!("file://{}", root.display()),
            ),
            ("CLUSTER".to_string(), CLUSTER.to_string()),
            ("BACKUP_TO_CREATE".to_string(), "b.db.gz".to_string()),
            ("SNAPSHOT_FILE".to_string(), file.display().to_string()),
        ]
    };
    let r = run("store", &env(&fixture("truncated.db.gz")), &[]);
    r.assert_code(65);
    let left: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        left.is_empty(),
        "nothing at the key, no temporary file: {left:?}"
    );
}

/// The same two stores against garage (a faithful S3 server): its answer to the
/// create-only write of the meta file must let both backups be listed.
#[test]
fn etcd_manager_stores_on_garage_write_the_meta_file_create_only() {
    let g = common::garage::Garage::start();
    let snap = fixture("etcd-3.4-small.db.gz");
    let store = format!("s3://{BUCKET}/kops/backups/etcd/main");
    let env = with(
        &without(&g.job_env(), &["BUCKET_NAME", "CLUSTER"]),
        &[
            ("BACKUP_STORE", &store),
            ("SNAPSHOT_FILE", snap.to_str().unwrap()),
            ("ETCD_VERSION", "3.5.1"),
        ],
    );
    for _ in 0..2 {
        run("store", &env, &[]).assert_code(0);
    }
    // A multipart one: CompleteMultipartUpload carries the condition too.
    let dir = tempfile::tempdir().unwrap();
    let big = write_file(dir.path(), "big.db.gz", &gzip(&synthetic_snapshot(1600, 9)));
    let parts = with(
        &env,
        &[
            ("SNAPSHOT_FILE", big.to_str().unwrap()),
            ("SINGLE_PUT_MAX", "0"),
            ("PART_SIZE", "5MiB"),
        ],
    );
    run("store", &parts, &[]).assert_code(0);
    let r = run("restore", &env, &["list-backups"]);
    r.assert_code(0);
    let listed: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.ends_with(char::is_numeric))
        .collect();
    assert_eq!(listed.len(), 3, "three stores, three backups:\n{}", r.all());
    assert!(listed[0] != listed[1] && listed[1] != listed[2]);
}

#[test]
fn an_etcd_manager_backup_name_taken_in_the_same_moment_is_not_overwritten() {
    use common::proxy::{Fault, Op, Proxy, Rule};
    let server = S3Server::start();
    // The server says the key was created by someone else first (412), as S3
    // answers `If-None-Match: *` on a key that exists.
    let proxy = Proxy::start(
        server.port,
        vec![Rule::once(Op::PutObject, 1, Fault::Status(412))],
    );
    let snap = fixture("etcd-3.4-small.db.gz");
    let endpoint = format!("127.0.0.1:{}", proxy.port);
    let store = format!("s3://{BUCKET}/kops/backups/etcd/main");
    let env = with(
        &without(&server.job_env(), &["BUCKET_NAME", "CLUSTER"]),
        &[
            ("ENDPOINT", &endpoint),
            ("BACKUP_STORE", &store),
            ("SNAPSHOT_FILE", snap.to_str().unwrap()),
            ("ETCD_VERSION", "3.5.1"),
        ],
    );
    let r = run("store", &env, &[]);
    r.assert_code(75);
    assert!(r.stderr.contains("another writer"), "{}", r.stderr);
    let put = proxy
        .heads()
        .into_iter()
        .find(|h| h.starts_with("PUT "))
        .unwrap();
    assert!(
        put.to_ascii_lowercase().contains("if-none-match: *"),
        "the data PUT is create-only: {put}"
    );
    // An ordinary store is not: the controller's key is its own to overwrite.
    let plain = with(
        &server.job_env(),
        &[
            ("ENDPOINT", &endpoint),
            ("BACKUP_TO_CREATE", "b.db.gz"),
            ("SNAPSHOT_FILE", snap.to_str().unwrap()),
        ],
    );
    run("store", &plain, &[]).assert_code(0);
    let put = proxy
        .heads()
        .into_iter()
        .rfind(|h| h.starts_with("PUT "))
        .unwrap();
    assert!(!put.to_ascii_lowercase().contains("if-none-match"), "{put}");
}

/// Every variable of the README's table, set to values a Secret or ConfigMap
/// mistake produces: never a panic, always a code of the table with one error
/// line (or success), and nothing contacted but the closed port. The variables
/// that name where to connect (`ENDPOINT`, `STORAGE_URL`, ...) are left out: a
/// blank one means AWS, and a test contacts nothing beyond loopback; their
/// parsing has unit tests of its own.
#[test]
fn no_value_of_any_variable_panics() {
    use common::proxy::{Fault, Proxy, Rule};
    let dir = tempfile::tempdir().unwrap();
    // A run that gets past its configuration meets a server that refuses at
    // once (403, never retried), so each case takes milliseconds.
    let refusing = Proxy::start(closed_port(), Rule::on_every_request(Fault::Status(403)));
    let endpoint = format!("127.0.0.1:{}", refusing.port);
    let env = with(&offline_env_in(dir.path()), &[("ENDPOINT", &endpoint)]);
    let vars = [
        "ACCESS_KEY_ID",
        "SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "BUCKET_NAME",
        "INSECURE",
        "REGION",
        "AWS_DEFAULT_REGION",
        "CA_BUNDLE",
        "CLUSTER",
        "BACKUP_TO_CREATE",
        "BACKUP_TO_DELETE",
        "BACKUP_TO_RESTORE",
        "OBJECT_KEY",
        "SNAPSHOT_FILE",
        "OUTPUT_FILE",
        "ETCD_DATA_DIR",
        "ETCD_NAME",
        "ETCD_INITIAL_CLUSTER",
        "ETCD_INITIAL_CLUSTER_TOKEN",
        "ETCD_INITIAL_ADVERTISE_PEER_URLS",
        "ETCD_WAL_DIR",
        "SKIP_HASH_CHECK",
        "ETCD_V34",
        "ETCD_VERSION",
        "MEMBER_COUNT",
        "RESTORE_PRESET",
        "POD_NAME",
        "NAMESPACE",
        "CLUSTER_SIZE",
        "FROM_ETCD",
        "ETCD_CA_FILE",
        "ETCD_CLIENT_CERT_FILE",
        "ETCD_CLIENT_KEY_FILE",
        "ETCD_DIAL_TIMEOUT",
        "ETCD_STREAM_TIMEOUT",
        "COMPRESS",
        "COMPRESS_LEVEL",
        "COMPRESS_THREADS",
        "SINGLE_PUT_MAX",
        "PART_SIZE",
        "CONCURRENCY",
        "SIGNED_PAYLOAD",
        "DEADLINE",
        "KEEP_LAST",
        "KEEP_HOURLY",
        "KEEP_DAILY",
        "KEEP_WEEKLY",
        "KEEP_MONTHLY",
        "KEEP_YEARLY",
        "KEEP_WITHIN",
        "RETENTION_TIMEZONE",
        "DRY_RUN",
        "RETENTION_PREFIX",
        "PROGRESS_INTERVAL",
        "LOG_FORMAT",
        "LOG_LEVEL",
        "ENCRYPT_RECIPIENTS",
        "ENCRYPT_RECIPIENTS_FILE",
        "DECRYPT_IDENTITY_FILE",
        "FORCE_ENCRYPTED_ETCD_MANAGER",
        "SSE",
        "SSE_KMS_KEY_ID",
        "SSE_BUCKET_KEY",
        "SSE_CUSTOMER_KEY",
        "SSE_CUSTOMER_KEY_FILE",
        "CHECKSUM",
        "ADDRESSING",
        "AWS_PROFILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_CONFIG_FILE",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        "AWS_EC2_METADATA_DISABLED",
        "BUMP_REVISION",
        "MARK_COMPACTED",
        "RESTORE_BEFORE",
    ];
    let values = [
        "x\n",
        "-1",
        "18446744073709551616h",
        "💥/../\u{7f}",
        &"a".repeat(5000),
    ];
    let cases: Vec<(&str, &str, &str)> = vars
        .iter()
        .flat_map(|v| values.iter().map(move |x| (*v, *x)))
        .flat_map(|(v, x)| ["store", "delete", "restore"].map(|b| (b, v, x)))
        .collect();
    // Four at a time: each run is a process that fails in milliseconds.
    std::thread::scope(|scope| {
        for share in cases.chunks(cases.len().div_ceil(4)) {
            let (env, dir) = (&env, dir.path());
            scope.spawn(move || {
                for (bin, var, value) in share {
                    check_no_panic(bin, env, dir, var, value);
                }
            });
        }
    });
}

fn check_no_panic(
    bin: &str,
    env: &[(String, String)],
    dir: &std::path::Path,
    var: &str,
    value: &str,
) {
    // In a scratch directory: relative paths land there.
    let r = Run::of(output_within(
        command(bin, &with(env, &[(var, value)]), &[]).current_dir(dir),
        bin,
    ));
    let at = format!(
        "{bin} {var}={:?}",
        value.chars().take(40).collect::<String>()
    );
    assert!(!r.stderr.contains("panicked"), "{at}: {}", r.stderr);
    assert!(
        [0, 1, 12, 15, 64, 65, 74, 75, 77, 78, 111].contains(&r.code),
        "{at}: exit {}\n{}",
        r.code,
        r.stderr
    );
    if r.code != 0 && r.code != 64 {
        assert_eq!(r.error_lines().len(), 1, "{at}: {}", r.stderr);
    }
}

/// A SIGTERM that arrives after a store's PUT was sent whole (the server has
/// the object; its answer is on the way) waits for that answer and reports what
/// the server did, instead of exiting 143 over a stored backup (found by the
/// invariant harness's long run).
#[test]
fn a_signal_after_the_whole_put_was_sent_waits_for_the_answer() {
    use common::proxy::{Fault, Op, Proxy, Rule};
    use std::io::BufRead;
    let server = S3Server::start();
    let proxy = Proxy::start(
        server.port,
        vec![Rule::once(Op::PutObject, 1, Fault::HoldResponse)],
    );
    let snap = fixture("etcd-3.4-small.db.gz");
    let env = with(
        &server.job_env(),
        &[
            ("ENDPOINT", &format!("127.0.0.1:{}", proxy.port)),
            ("BACKUP_TO_CREATE", "held.db.gz"),
            ("SNAPSHOT_FILE", snap.to_str().unwrap()),
        ],
    );
    let key = format!("{CLUSTER}-held.db.gz");
    let mut child = command("store", &env, &[])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.unwrap();
            let _ = tx.send(line);
        }
    });
    // The whole PUT reached the server (the object exists); its answer is held.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !server.object_file(&key).exists() {
        assert!(std::time::Instant::now() < until, "the PUT never arrived");
        assert!(child.try_wait().unwrap().is_none(), "store ended early");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    // The answer is released only once the store said it waits for it: the
    // binary's own "stop requested" line comes first, and an answer released
    // then can race the store's decision (seen under load).
    let mut seen = Vec::new();
    loop {
        let line = lines
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!(
                    "the store never said it waits for the answer:\n{}",
                    seen.join("\n")
                )
            });
        let done = line.contains("waiting for the server's answer");
        seen.push(line);
        if done {
            break;
        }
    }
    proxy.release();
    let status = child.wait().unwrap();
    reader.join().unwrap();
    seen.extend(lines.try_iter());
    let stderr = seen.join("\n");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("waiting for the server's answer"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(server.object_file(&key)).unwrap(),
        std::fs::read(&snap).unwrap()
    );
}
