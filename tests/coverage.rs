//! The coverage the README promises (issue 21): every exit code of its table is
//! produced here by each binary that can return it where no other test does;
//! every variable of its environment table that no other test sets is set here and
//! its effect observed; and the secret is absent from every output, signalled
//! children and the Pushgateway body included.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::proxy::{Fault, Op, Proxy, Rule};
use common::tls::{Ca, TlsFront};
use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn requests(proxy: &Proxy) -> usize {
    Op::ALL.iter().map(|&op| proxy.count(op)).sum()
}

/// Stores the small fixture as `$CLUSTER-$backup` with the real `store`.
fn stored(server: &S3Server, backup: &str) {
    let env = with(
        &server.job_env(),
        &[
            ("BACKUP_TO_CREATE", backup),
            (
                "SNAPSHOT_FILE",
                fixture("etcd-3.4-small.db.gz").to_str().unwrap(),
            ),
        ],
    );
    run("store", &env, &[]).assert_code(0);
}

/// The Job environment of `bin` for backup `backup` on `server`; `out` is
/// restore's output file.
fn job(server: &S3Server, bin: &str, backup: &str, out: &Path) -> Vec<(String, String)> {
    let file = fixture("etcd-3.4-small.db.gz");
    let pairs: Vec<(&str, &str)> = match bin {
        "store" => vec![
            ("BACKUP_TO_CREATE", backup),
            ("SNAPSHOT_FILE", file.to_str().unwrap()),
        ],
        "delete" => vec![("BACKUP_TO_DELETE", backup)],
        "restore" => vec![
            ("BACKUP_TO_RESTORE", backup),
            ("OUTPUT_FILE", out.to_str().unwrap()),
        ],
        other => panic!("no S3 job for {other}"),
    };
    with(&server.job_env(), &pairs)
}

/// Waits for a spawned child and checks its output like `common::run` does.
fn finish(child: Child) -> Run {
    Run::of(child.wait_with_output().unwrap())
}

/// Polls `ready` (a condition, not a timer) while `child` runs.
fn wait_until(child: &mut Child, what: &str, ready: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < until, "{what}: not reached");
        assert!(
            child.try_wait().unwrap().is_none(),
            "{what}: the child ended early"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn signal(child: &Child, sig: Signal) {
    kill(Pid::from_raw(child.id() as i32), sig).unwrap();
}

/// A TCP listener on loopback that accepts connections and never answers.
struct Silent {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

fn silent() -> Silent {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    Silent { port, accepted }
}

/// A TCP proxy on loopback to `upstream` that passes `pass` bytes of the answers,
/// then holds the connection open without passing more: a stream stalled mid-way.
fn stall_after(upstream: u16, pass: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    return;
                };
                let (mut from_client, mut to_up) =
                    (client.try_clone().unwrap(), up.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from_client, &mut to_up);
                });
                let (mut from_up, mut to_client) = (up, client);
                let mut sent = 0;
                let mut buf = vec![0u8; 16 * 1024];
                while sent < pass {
                    let n = match from_up.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n.min(pass - sent),
                    };
                    if to_client.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    sent += n;
                }
                // Hold both sides open, passing nothing more.
                let _held = (from_up, to_client);
                loop {
                    std::thread::park();
                }
            });
        }
    });
    port
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Whether some file under `dir` contains `needle`.
fn tree_contains(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let p = e.unwrap().path();
        if p.is_dir() {
            tree_contains(&p, needle)
        } else {
            std::fs::read(&p)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle)
        }
    })
}

/// A one-member etcd 3.4 on loopback holding `big` values of 64 KiB.
fn live_etcd(dir: &Path, big: usize) -> Etcd {
    let ctl = etcd34("etcdctl");
    let e = Etcd::fresh(&etcd34("etcd"), "src", &dir.join("src-data"), "src-token");
    wait_healthy(&ctl, &e.client_url);
    let value = "v".repeat(64 * 1024);
    for i in 0..big {
        etcdctl(&ctl, &e.client_url, &["put", &format!("/big/{i}"), &value]);
    }
    e
}

// ---------------------------------------------------------------------------
// Exit codes, per binary.
// ---------------------------------------------------------------------------

/// 1 ("any other failure"): an S3 error answer that is none of the classified
/// kinds (400 InvalidRequest), and an etcd endpoint that answers HTTP/2 but is not
/// etcd (here: the S3 server, which answers the gRPC call with HTTP 400).
#[test]
fn exit_1_for_any_other_failure() {
    let server = S3Server::start();
    stored(&server, "one.db.gz");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.db");
    for bin in ["store", "delete", "restore"] {
        let proxy = Proxy::start(
            server.port,
            Rule::on_every_request(Fault::Error(400, "InvalidRequest")),
        );
        let backup = if bin == "store" {
            "new.db.gz"
        } else {
            "one.db.gz"
        };
        let env = with(
            &job(&server, bin, backup, &out),
            &[("ENDPOINT", &format!("127.0.0.1:{}", proxy.port))],
        );
        let r = run(bin, &env, &[]);
        r.assert_code(1);
        assert_eq!(r.error_lines().len(), 1, "{bin}: {}", r.stderr);
        // The status is named (a HEAD's answer has no body to name the code).
        assert!(
            r.error_lines()[0].contains("status code: 400"),
            "{bin}: the cause is named: {}",
            r.stderr
        );
        // store first lists its key's stale uploads (tried once, a warning).
        let sent = if bin == "store" { 2 } else { 1 };
        // The bucket's region is asked once (GetBucketLocation) before: its
        // refusal changes nothing.
        assert_eq!(proxy.count(Op::Location), 1, "{bin}");
        assert_eq!(requests(&proxy) - 1, sent, "{bin}: a 400 is not retried");
    }
    assert!(server.object_file(&format!("{CLUSTER}-one.db.gz")).exists());
    assert!(!server.object_file(&format!("{CLUSTER}-new.db.gz")).exists());
    assert!(!out.exists());

    let not_etcd = format!("http://127.0.0.1:{}", server.port);
    let snap = dir.path().join("snap.db.gz");
    let store_env = with(
        &job(&server, "store", "live.db.gz", &out),
        &[("ETCD_ENDPOINTS", &not_etcd)],
    );
    for (bin, env, args) in [
        (
            "snapshot",
            vec![("ETCD_ENDPOINTS".to_string(), not_etcd.clone())],
            vec!["--file", snap.to_str().unwrap()],
        ),
        ("store", store_env, vec!["--from-etcd"]),
    ] {
        let r = run(bin, &env, &args);
        r.assert_code(1);
        assert!(
            r.error_lines()[0].contains("HTTP 400"),
            "{bin}: {}",
            r.stderr
        );
    }
    assert!(!snap.exists());
    assert!(
        !server
            .object_file(&format!("{CLUSTER}-live.db.gz"))
            .exists()
    );
}

/// 15: the service answers 503 SlowDown to every request, after retries
/// (store: tests/faults.rs).
#[test]
fn exit_15_when_the_service_stays_unavailable() {
    let server = S3Server::start();
    stored(&server, "busy.db.gz");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.db");
    for bin in ["delete", "restore"] {
        let proxy = Proxy::start(server.port, Rule::on_every_request(Fault::Status(503)));
        let env = with(
            &job(&server, bin, "busy.db.gz", &out),
            &[
                ("ENDPOINT", &format!("127.0.0.1:{}", proxy.port)),
                ("DEADLINE", "60s"),
            ],
        );
        let r = run(bin, &env, &[]);
        r.assert_code(15);
        assert!(
            r.error_lines()[0].contains("service unavailable"),
            "{bin}: {}",
            r.stderr
        );
        assert!(requests(&proxy) > 1, "{bin}: retried");
    }
    assert!(
        server
            .object_file(&format!("{CLUSTER}-busy.db.gz"))
            .exists()
    );
    assert_eq!(files_in(dir.path()), Vec::<String>::new());
}

/// 77: credentials refused, or the server's certificate not trusted: S3 for
/// delete and restore (store: tests/store.rs, tests/tls.rs), etcd's TLS for
/// snapshot and store --from-etcd.
#[test]
fn exit_77_when_access_is_denied() {
    let server = S3Server::start();
    stored(&server, "kept.db.gz");
    let ca = Ca::new("snapjob test CA");
    let front = TlsFront::start(server.port, &ca);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.db");
    let wrong = "wrong-secret-wrong-secret";
    for bin in ["delete", "restore"] {
        let base = job(&server, bin, "kept.db.gz", &out);
        let cases = [
            (
                "wrong secret",
                with(&base, &[("SECRET_ACCESS_KEY", wrong)]),
                "access denied",
            ),
            (
                "untrusted certificate",
                with(
                    &without(&base, &["INSECURE"]),
                    &[("ENDPOINT", &format!("https://127.0.0.1:{}", front.port))],
                ),
                "certificate is not trusted",
            ),
        ];
        for (case, env, says) in cases {
            let r = run(bin, &env, &[]);
            r.assert_code(77);
            assert!(
                r.error_lines()[0].contains(says),
                "{bin}, {case}: {}",
                r.stderr
            );
            assert!(!r.all().contains(wrong), "{bin}, {case}: secret printed");
        }
    }
    assert!(
        server
            .object_file(&format!("{CLUSTER}-kept.db.gz"))
            .exists()
    );
    assert!(!out.exists());

    // etcd behind a certificate that the given CA does not vouch for.
    let other = write_file(
        dir.path(),
        "other-ca.pem",
        Ca::new("some other CA").pem.as_bytes(),
    );
    let etcd_env = [
        (
            "ETCD_ENDPOINTS",
            format!("https://127.0.0.1:{}", front.port),
        ),
        ("ETCD_CA_FILE", other.to_str().unwrap().to_string()),
    ];
    let etcd_env: Vec<(&str, &str)> = etcd_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let snap = dir.path().join("snap.db.gz");
    for (bin, env, args) in [
        (
            "snapshot",
            with(&[], &etcd_env),
            vec!["--file", snap.to_str().unwrap()],
        ),
        (
            "store",
            with(&job(&server, "store", "live.db.gz", &out), &etcd_env),
            vec!["--from-etcd"],
        ),
    ] {
        let r = run(bin, &env, &args);
        r.assert_code(77);
        assert!(
            r.error_lines()[0].contains("TLS handshake failed"),
            "{bin}: {}",
            r.stderr
        );
    }
    assert!(!snap.exists());
}

/// 111: nothing listens at the endpoint (store: tests/store.rs).
#[test]
fn exit_111_when_the_connection_is_refused() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.db");
    let closed = closed_port();
    for bin in ["delete", "restore"] {
        let env = with(
            &job(&server, bin, "x.db.gz", &out),
            &[("ENDPOINT", &format!("127.0.0.1:{closed}"))],
        );
        let r = run(bin, &env, &[]);
        r.assert_code(111);
        assert!(
            r.error_lines()[0].contains("connection refused"),
            "{bin}: {}",
            r.stderr
        );
    }
    let endpoint = format!("http://127.0.0.1:{closed}");
    let snap = dir.path().join("snap.db.gz");
    for (bin, env, args) in [
        (
            "snapshot",
            vec![("ETCD_ENDPOINTS".to_string(), endpoint.clone())],
            vec!["--file", snap.to_str().unwrap()],
        ),
        (
            "store",
            with(
                &job(&server, "store", "live.db.gz", &out),
                &[("ETCD_ENDPOINTS", &endpoint)],
            ),
            vec!["--from-etcd"],
        ),
    ] {
        let r = run(bin, &env, &args);
        r.assert_code(111);
        assert!(
            r.error_lines()[0].contains("cannot connect"),
            "{bin}: {}",
            r.stderr
        );
    }
    assert!(!out.exists() && !snap.exists());
}

/// Whether process `pid` has a handler installed for `sig` (SigCgt in
/// /proc/<pid>/status).
fn catches(pid: u32, sig: Signal) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (sig as i32 - 1)) != 0)
}

/// The binaries a signal can stop mid-request (store's own: tests/store.rs).
const SIGNALLED: [&str; 4] = ["delete", "restore", "snapshot", "store --from-etcd"];

/// Runs `what` (one of [`SIGNALLED`]) with its first request stalled (an S3
/// request behind the proxy, or the etcd connection to a silent listener), and
/// sends `sig` once that request arrived and, when `after_handler`, once the
/// binary catches `sig`. Returns the run and the files left beside its output.
fn signalled(
    server: &S3Server,
    what: &str,
    sig: Signal,
    after_handler: bool,
) -> (Run, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.db");
    let proxy = Proxy::start(server.port, Rule::on_every_request(Fault::Stall));
    let etcd = silent();
    let etcd_env = [
        ("ETCD_ENDPOINTS", format!("http://127.0.0.1:{}", etcd.port)),
        ("ETCD_DIAL_TIMEOUT", "600s".to_string()),
    ];
    let etcd_env: Vec<(&str, &str)> = etcd_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (bin, env, args) = match what {
        "delete" | "restore" => (
            what,
            with(
                &job(server, what, "sig.db.gz", &out),
                &[("ENDPOINT", &format!("127.0.0.1:{}", proxy.port))],
            ),
            vec![],
        ),
        "snapshot" => (
            "snapshot",
            with(&[], &etcd_env),
            vec!["--file", out.to_str().unwrap()],
        ),
        "store --from-etcd" => (
            "store",
            with(&job(server, "store", "sig-live.db.gz", &out), &etcd_env),
            vec!["--from-etcd"],
        ),
        other => panic!("{other}"),
    };
    let mut child = command(bin, &env, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_until(&mut child, what, || {
        requests(&proxy) + etcd.accepted.load(Ordering::SeqCst) > 0
            && (!after_handler || catches(pid, sig))
    });
    signal(&child, sig);
    let r = finish(child);
    (r, files_in(dir.path()))
}

/// 143 / 130: SIGTERM / SIGINT while a request stalls (store: tests/store.rs):
/// S3 requests for delete and restore, the etcd connection for snapshot and
/// store --from-etcd.
#[test]
fn exit_143_and_130_when_signalled_mid_request() {
    let server = S3Server::start();
    stored(&server, "sig.db.gz");
    for (sig, code, name) in [
        (Signal::SIGTERM, 143, "SIGTERM"),
        (Signal::SIGINT, 130, "SIGINT"),
    ] {
        for what in SIGNALLED {
            let (r, left) = signalled(&server, what, sig, true);
            assert_eq!(r.code, code, "{what}, {name}: {}", r.all());
            assert!(
                r.error_lines()[0].contains(&format!("stopped by {name}")),
                "{what}: {}",
                r.stderr
            );
            assert_eq!(left, Vec::<String>::new(), "{what}: nothing left");
        }
    }
    assert!(server.object_file(&format!("{CLUSTER}-sig.db.gz")).exists());
    assert!(
        !server
            .object_file(&format!("{CLUSTER}-sig-live.db.gz"))
            .exists()
    );
    assert!(server.leftover_uploads().is_empty());
}

/// The same, with the signal sent as soon as the first request arrived, without
/// waiting for the binary to say it catches signals: the handlers must be in
/// place before the first request (they once were installed by a task spawned
/// beside the operation, and a signal in that window killed the process with no
/// 143, no error line, no termination message and no cleanup). A probe: a pass
/// does not prove the window closed (before the fix, 4 of 5 runs of 200 signals
/// caught it).
#[test]
fn a_signal_right_after_the_first_request_still_exits_143() {
    let server = S3Server::start();
    stored(&server, "sig.db.gz");
    let mut killed = Vec::new();
    for round in 0..50 {
        for what in SIGNALLED {
            let (r, _) = signalled(&server, what, Signal::SIGTERM, false);
            if r.code != 143 {
                killed.push(format!(
                    "round {round}, {what}: exit {} {:?}",
                    r.code, r.stderr
                ));
            }
        }
    }
    assert!(killed.is_empty(), "{killed:#?}");
}

/// A named case of a table: binary, environment, arguments.
type Case<'a> = (&'a str, &'a str, Vec<(String, String)>, Vec<&'a str>);

/// 74 "output not writable": a path under a regular file (running as root, a
/// read-only directory would not refuse anything). snapshot: in
/// `a_live_etcd_honours_compress_level_and_the_stream_timeout`.
#[test]
fn exit_74_when_the_output_is_not_writable() {
    let server = S3Server::start();
    stored(&server, "out.db.gz");
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "a-file", b"not a directory");
    let under = file.join("sub");
    let under_s = under.to_str().unwrap();
    let snapshot = fixture("etcd-3.4-small.db.gz");
    let member = [
        "--name",
        "m0",
        "--initial-cluster",
        "m0=http://127.0.0.1:2380",
        "--initial-cluster-token",
        "t",
        "--initial-advertise-peer-urls",
        "http://127.0.0.1:2380",
    ];
    let local = [("SNAPSHOT_FILE", snapshot.to_str().unwrap())];
    let mut data_dir_args = vec!["--data-dir", under_s];
    data_dir_args.extend(member);
    let file_url = format!("file://{under_s}");
    let cases: Vec<Case> = vec![
        (
            "restore --output, from S3",
            "restore",
            job(&server, "restore", "out.db.gz", &under.join("out.db")),
            vec![],
        ),
        (
            "restore --output, from a local snapshot",
            "restore",
            with(&[], &local),
            vec!["--output", under_s],
        ),
        (
            "restore --data-dir",
            "restore",
            with(&[], &local),
            data_dir_args,
        ),
        (
            "store to a file:// directory",
            "store",
            with(
                &[],
                &[
                    ("STORAGE_URL", &file_url),
                    ("CLUSTER", CLUSTER),
                    ("BACKUP_TO_CREATE", "x.db.gz"),
                    ("SNAPSHOT_FILE", snapshot.to_str().unwrap()),
                ],
            ),
            vec![],
        ),
        (
            "delete in a file:// directory",
            "delete",
            with(
                &[],
                &[
                    ("STORAGE_URL", &file_url),
                    ("CLUSTER", CLUSTER),
                    ("BACKUP_TO_DELETE", "x.db.gz"),
                ],
            ),
            vec![],
        ),
    ];
    for (case, bin, env, args) in cases {
        let r = run(bin, &env, &args);
        r.assert_code(74);
        assert!(
            r.error_lines()[0].contains(file.to_str().unwrap()),
            "{case}: the path is named: {}",
            r.stderr
        );
    }
    assert_eq!(files_in(dir.path()), ["a-file"]);
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");
}

// ---------------------------------------------------------------------------
// The secret in the Pushgateway body.
// ---------------------------------------------------------------------------

#[test]
fn the_pushgateway_body_never_holds_the_secret() {
    let server = S3Server::start();
    let (port, pushes) = http_receiver();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.db");
    let url = format!("http://127.0.0.1:{port}");
    let cases = [
        ("store", "p.db.gz", vec![], 0),
        (
            "delete",
            "p.db.gz",
            vec![("SECRET_ACCESS_KEY", "wrong-secret")],
            77,
        ),
        ("restore", "never-stored.db.gz", vec![], 12),
    ];
    for (bin, backup, extra, code) in cases {
        let env = with(
            &with(&job(&server, bin, backup, &out), &extra),
            &[("PUSHGATEWAY_URL", &url)],
        );
        run(bin, &env, &[]).assert_code(code);
        let (method, path, body) = pushes.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(method, "POST");
        assert_eq!(
            path,
            format!("/metrics/job/snapjob/cluster/{CLUSTER}/operation/{bin}")
        );
        assert!(
            body.contains(&format!("snapjob_exit_code {code}\n")),
            "{bin}: {body}"
        );
        assert!(!body.contains(SECRET_KEY), "{bin}: {body}");
        assert!(!body.contains("wrong-secret"), "{bin}: {body}");
    }
}

// ---------------------------------------------------------------------------
// Variables of the environment table.
// ---------------------------------------------------------------------------

/// AWS_SESSION_TOKEN is sent as `x-amz-security-token` on every request (s3s-fs
/// does not check it) and never printed.
#[test]
fn aws_session_token_is_sent_and_never_printed() {
    let server = S3Server::start();
    let proxy = Proxy::start(server.port, vec![]);
    let token = "FwoGZXIvYXdzEXAMPLE-session-token-do-not-print";
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.db");
    for bin in ["store", "restore", "delete"] {
        let env = with(
            &job(&server, bin, "token.db.gz", &out),
            &[
                ("ENDPOINT", &format!("127.0.0.1:{}", proxy.port)),
                ("AWS_SESSION_TOKEN", token),
                ("LOG_LEVEL", "trace"),
            ],
        );
        let r = run(bin, &env, &[]);
        r.assert_code(0);
        assert!(!r.all().contains(token), "{bin}: the token was printed");
    }
    let heads = proxy.heads();
    assert!(heads.len() >= 3, "{heads:?}");
    for head in &heads {
        assert!(
            head.to_ascii_lowercase().contains(&format!(
                "x-amz-security-token: {}",
                token.to_ascii_lowercase()
            )),
            "{head}"
        );
    }
    assert!(
        !server
            .object_file(&format!("{CLUSTER}-token.db.gz"))
            .exists()
    );
}

/// Issue 14's "done when": with no static keys, credentials that only
/// object_store's provider can produce, a web identity token exchanged at an STS
/// (a local one, over TLS as object_store requires, trusted through CA_BUNDLE),
/// sign our streaming uploads. s3s-fs checks signatures against its one key pair
/// and ignores session tokens, so the STS grants that pair with a session token,
/// and the proof is the token on every request that reached the server: the
/// single PUT, the multipart parts and their control calls. The objects are the
/// file's bytes, and neither token is printed.
#[test]
fn web_identity_credentials_sign_the_streaming_uploads() {
    use common::tls::Sts;
    let server = S3Server::start();
    let proxy = Proxy::start(server.port, vec![]);
    let ca = Ca::new("snapjob test STS CA");
    let session_token = "IQoJb3JpZ2luX2VjEXAMPLE-sts-session-token-do-not-print";
    let sts = Sts::start(&ca, (ACCESS_KEY, SECRET_KEY, session_token));
    let dir = tempfile::tempdir().unwrap();
    let ca_file = write_file(dir.path(), "ca.pem", ca.pem.as_bytes());
    let web_token = "eyJhbGciOiJSUzI1NiJ9.web-identity-do-not-print";
    let token_file = write_file(dir.path(), "token", web_token.as_bytes());
    let gz = gzip(&synthetic_snapshot(3000, 7));
    let file = write_file(dir.path(), "snapshot.db.gz", &gz);
    let role = "arn:aws:iam::123456789012:role/etcd-backup";
    for (name, single_put_max) in [("sts-single.db.gz", "1GiB"), ("sts-parts.db.gz", "0")] {
        let env = with(
            &without(&server.job_env(), &["ACCESS_KEY_ID", "SECRET_ACCESS_KEY"]),
            &[
                ("ENDPOINT", &format!("127.0.0.1:{}", proxy.port)),
                ("BACKUP_TO_CREATE", name),
                ("SNAPSHOT_FILE", file.to_str().unwrap()),
                ("PART_SIZE", "5MiB"),
                ("SINGLE_PUT_MAX", single_put_max),
                ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.to_str().unwrap()),
                ("AWS_ROLE_ARN", role),
                (
                    "AWS_ENDPOINT_URL_STS",
                    &format!("https://127.0.0.1:{}", sts.port),
                ),
                ("CA_BUNDLE", ca_file.to_str().unwrap()),
                ("LOG_LEVEL", "trace"),
            ],
        );
        let r = run("store", &env, &[]);
        r.assert_code(0);
        let all = r.all();
        assert!(
            !all.contains(session_token),
            "{name}: the session token was printed"
        );
        assert!(
            !all.contains(web_token),
            "{name}: the web identity token was printed"
        );
        assert!(
            all.contains("web identity"),
            "{name}: the source is logged: {all}"
        );
        let stored = std::fs::read(server.object_file(&format!("{CLUSTER}-{name}"))).unwrap();
        assert!(stored == gz, "{name}: stored bytes differ");
    }
    // The provider asked the STS, with the token from the file, for the role.
    let asked = sts.requests();
    assert!(!asked.is_empty(), "the STS was never asked");
    for request in &asked {
        assert!(request.contains("AssumeRoleWithWebIdentity"), "{request}");
        assert!(request.contains(web_token), "{request}");
        assert!(request.contains("etcd-backup"), "{request}");
    }
    assert_eq!(proxy.count(Op::PutObject), 1);
    assert_eq!(proxy.count(Op::UploadPart), 3);
    let heads = proxy.heads();
    let streaming = heads.iter().filter(|h| h.starts_with("PUT ")).count();
    assert_eq!(streaming, 4, "{heads:?}");
    for head in &heads {
        let head = head.to_ascii_lowercase();
        assert!(
            head.contains(&format!(
                "x-amz-security-token: {}",
                session_token.to_ascii_lowercase()
            )),
            "{head}"
        );
        assert!(
            head.contains(&format!("credential={}/", ACCESS_KEY.to_ascii_lowercase())),
            "{head}"
        );
    }
}

/// AWS_ENDPOINT_URL_S3 is the endpoint when ENDPOINT is not set; it wins over
/// AWS_ENDPOINT_URL, and ENDPOINT wins over it.
#[test]
fn aws_endpoint_url_s3_round_trips() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.db");
    let dead = format!("http://127.0.0.1:{}", closed_port());
    for bin in ["store", "restore", "delete"] {
        let env = with(
            &without(&job(&server, bin, "alt.db.gz", &out), &["ENDPOINT"]),
            &[
                ("AWS_ENDPOINT_URL_S3", &server.endpoint()),
                ("AWS_ENDPOINT_URL", &dead),
            ],
        );
        run(bin, &env, &[]).assert_code(0);
        if bin == "store" {
            assert!(server.object_file(&format!("{CLUSTER}-alt.db.gz")).exists());
        }
    }
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(fixture("etcd-3.4-small.db")).unwrap()
    );
    assert!(!server.object_file(&format!("{CLUSTER}-alt.db.gz")).exists());

    // ENDPOINT first: a dead AWS_ENDPOINT_URL_S3 beside it is not used, and
    // alone it is (connection refused).
    let env = with(
        &job(&server, "store", "first.db.gz", &out),
        &[("AWS_ENDPOINT_URL_S3", &dead)],
    );
    run("store", &env, &[]).assert_code(0);
    let r = run("store", &without(&env, &["ENDPOINT"]), &[]);
    r.assert_code(111);
}

/// REGION, else AWS_DEFAULT_REGION, is the region of the SigV4 credential scope
/// (s3s-fs accepts any region; the scope is read off the requests).
#[test]
fn region_and_aws_default_region_set_the_signature_scope() {
    let server = S3Server::start();
    let cases = [
        (vec![("REGION", "eu-west-3")], "eu-west-3"),
        (vec![("AWS_DEFAULT_REGION", "ap-south-2")], "ap-south-2"),
        (
            vec![
                ("REGION", "eu-west-3"),
                ("AWS_DEFAULT_REGION", "ap-south-2"),
            ],
            "eu-west-3",
        ),
        (vec![], "us-east-1"),
    ];
    for (vars, want) in cases {
        let proxy = Proxy::start(server.port, vec![]);
        let env = with(
            &with(
                &job(&server, "store", "region.db.gz", Path::new("/")),
                &vars,
            ),
            &[("ENDPOINT", &format!("127.0.0.1:{}", proxy.port))],
        );
        run("store", &env, &[]).assert_code(0);
        let heads = proxy.heads();
        assert!(!heads.is_empty());
        for head in heads {
            let auth = head
                .lines()
                .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))
                .unwrap_or_else(|| panic!("unsigned request: {head}"));
            assert!(
                auth.contains(&format!("/{want}/s3/aws4_request")),
                "{vars:?}: {auth}"
            );
        }
    }
}

/// STORAGE_URL=s3://bucket/prefix instead of BUCKET_NAME: store, restore and
/// delete round trip under the prefix, taken literally as the key's beginning:
/// characters object_store's `Path::from` would percent-escape, and those a URL
/// would decode or cut at (`%41`, `?`, `#`), are the same bytes in the key that
/// store writes, restore reads and delete removes.
#[test]
fn storage_url_s3_round_trips_under_its_prefix() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.db");
    for prefix in [
        "team/etcd",
        "~etcd",
        "odd/~ %41 # | * ? [ ] { } ^ \\ \" < > `/x",
    ] {
        let url = format!("s3://{BUCKET}/{prefix}");
        let key = format!("{prefix}/{CLUSTER}-url.db.gz");
        for bin in ["store", "restore", "delete"] {
            let env = with(
                &without(&job(&server, bin, "url.db.gz", &out), &["BUCKET_NAME"]),
                &[("STORAGE_URL", &url)],
            );
            let _ = std::fs::remove_file(&out);
            run(bin, &env, &[]).assert_code(0);
            if bin == "store" {
                assert_eq!(
                    std::fs::read(server.object_file(&key)).unwrap(),
                    std::fs::read(fixture("etcd-3.4-small.db.gz")).unwrap(),
                    "{prefix}"
                );
                assert!(!server.object_file(&format!("{CLUSTER}-url.db.gz")).exists());
            }
            if bin == "restore" {
                assert_eq!(
                    std::fs::read(&out).unwrap(),
                    std::fs::read(fixture("etcd-3.4-small.db")).unwrap(),
                    "{prefix}"
                );
            }
        }
        assert!(!server.object_file(&key).exists(), "{prefix}");
    }
}

/// ETCD_WAL_DIR with restore --data-dir: the WAL goes there (the same bytes as in
/// the data dir without it), and etcd boots from the pair.
#[test]
fn etcd_wal_dir_puts_the_wal_there() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = fixture("etcd-3.4-small.db");
    let peer = format!("http://127.0.0.1:{}", port());
    let cluster = format!("m0={peer}");
    let member =
        |data_dir: &Path| from_snapshot(&snapshot, member_flags(data_dir, &peer, "wal-token"));
    let (data, wal, plain) = (
        dir.path().join("data"),
        dir.path().join("wal"),
        dir.path().join("plain"),
    );
    run(
        "restore",
        &with(&[], &[("ETCD_WAL_DIR", wal.to_str().unwrap())]),
        &strs(&member(&data)),
    )
    .assert_code(0);
    run("restore", &[], &strs(&member(&plain))).assert_code(0);

    let segment = "0000000000000000-0000000000000000.wal";
    assert!(!data.join("member/wal").exists(), "no WAL in the data dir");
    assert!(data.join("member/snap/db").exists());
    assert!(
        std::fs::read(wal.join(segment)).unwrap()
            == std::fs::read(plain.join("member/wal").join(segment)).unwrap(),
        "the WAL in ETCD_WAL_DIR is the one the data dir would hold"
    );

    let etcd = Etcd::boot_with(
        &etcd34("etcd"),
        "m0",
        &data,
        port(),
        &peer,
        &cluster,
        "wal-token",
        "http",
        &["--wal-dir".to_string(), wal.to_str().unwrap().to_string()],
    );
    wait_healthy(&etcd34("etcdctl"), &etcd.client_url);
}

/// NAMESPACE and CLUSTER_SIZE shape the kkp preset's membership: a real restore
/// writes the peers they name; a pod outside CLUSTER_SIZE is refused (64); a bad
/// CLUSTER_SIZE is a named configuration error (78).
#[test]
fn namespace_and_cluster_size_shape_the_kkp_membership() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = fixture("etcd-3.4-small.db.gz");
    let base = |data: &Path| {
        with(
            &[],
            &[
                ("RESTORE_PRESET", "kkp"),
                ("CLUSTER", CLUSTER),
                ("SNAPSHOT_FILE", snapshot.to_str().unwrap()),
                ("ETCD_DATA_DIR", data.to_str().unwrap()),
            ],
        )
    };
    let peer = |pod: &str, ns: &str| format!("https://{pod}.etcd.{ns}.svc.cluster.local:2381");

    let five = dir.path().join("five");
    let env = with(
        &base(&five),
        &[
            ("POD_NAME", "etcd-4"),
            ("NAMESPACE", "my-ns"),
            ("CLUSTER_SIZE", "5"),
        ],
    );
    run("restore", &env, &[]).assert_code(0);
    for n in 0..5 {
        let url = peer(&format!("etcd-{n}"), "my-ns");
        assert!(tree_contains(&five, url.as_bytes()), "{url} is a member");
    }
    assert!(!tree_contains(&five, peer("etcd-5", "my-ns").as_bytes()));
    assert!(!tree_contains(&five, b"cluster-xyz123abc"));

    // Without them: cluster-$CLUSTER and three members.
    let three = dir.path().join("three");
    run(
        "restore",
        &with(&base(&three), &[("POD_NAME", "etcd-2")]),
        &[],
    )
    .assert_code(0);
    let ns = format!("cluster-{CLUSTER}");
    assert!(tree_contains(&three, peer("etcd-2", &ns).as_bytes()));
    assert!(!tree_contains(&three, peer("etcd-3", &ns).as_bytes()));

    let refused = dir.path().join("refused");
    let r = run(
        "restore",
        &with(
            &base(&refused),
            &[("POD_NAME", "etcd-4"), ("CLUSTER_SIZE", "3")],
        ),
        &[],
    );
    r.assert_code(64);
    assert!(r.error_lines()[0].contains("etcd-4"), "{}", r.stderr);
    let r = run(
        "restore",
        &with(
            &base(&refused),
            &[("POD_NAME", "etcd-0"), ("CLUSTER_SIZE", "ten")],
        ),
        &[],
    );
    r.assert_code(78);
    assert!(r.error_lines()[0].contains("CLUSTER_SIZE"), "{}", r.stderr);
    assert!(!refused.exists());
}

/// RETENTION_PREFIX narrows delete --keep to the backups under it.
#[test]
fn retention_prefix_narrows_keep() {
    let server = S3Server::start();
    let prod = with(&server.job_env(), &[("CLUSTER", "prod")]);
    let backups = [
        ("daily-1", 1),
        ("daily-2", 2),
        ("daily-3", 3),
        ("weekly-1", 10),
        ("weekly-2", 20),
    ];
    for (backup, hours) in backups {
        let env = with(
            &prod,
            &[
                ("BACKUP_TO_CREATE", backup),
                (
                    "SNAPSHOT_FILE",
                    fixture("etcd-3.4-small.db.gz").to_str().unwrap(),
                ),
            ],
        );
        run("store", &env, &[]).assert_code(0);
        server.age(&format!("prod-{backup}"), hours);
    }
    let exists = |b: &str| server.object_file(&format!("prod-{b}")).exists();
    let env = with(
        &prod,
        &[("KEEP_LAST", "1"), ("RETENTION_PREFIX", "prod-daily-")],
    );
    let r = run("delete", &env, &[]);
    r.assert_code(0);
    assert!(exists("daily-1"), "{}", r.stderr);
    assert!(!exists("daily-2") && !exists("daily-3"), "{}", r.stderr);
    assert!(
        exists("weekly-1") && exists("weekly-2"),
        "outside the prefix: {}",
        r.stderr
    );
    // Without it, $CLUSTER- covers the weekly ones too.
    run("delete", &with(&prod, &[("KEEP_LAST", "1")]), &[]).assert_code(0);
    assert!(exists("daily-1") && !exists("weekly-1") && !exists("weekly-2"));
}

/// RUST_LOG=debug yields debug lines (LOG_LEVEL, when set, wins).
#[test]
fn rust_log_debug_yields_debug_lines() {
    let server = S3Server::start();
    let env = job(&server, "store", "log.db.gz", Path::new("/"));
    let debug = |r: &Run| r.stderr.lines().any(|l| l.contains("\"level\":\"DEBUG\""));
    let r = run("store", &with(&env, &[("RUST_LOG", "debug")]), &[]);
    r.assert_code(0);
    assert!(debug(&r), "{}", r.stderr);
    let r = run("store", &env, &[]);
    r.assert_code(0);
    assert!(!debug(&r), "{}", r.stderr);
    let r = run(
        "store",
        &with(&env, &[("RUST_LOG", "debug"), ("LOG_LEVEL", "info")]),
        &[],
    );
    r.assert_code(0);
    assert!(!debug(&r), "{}", r.stderr);
}

/// ETCD_DIAL_TIMEOUT bounds the wait for an endpoint's first bytes: an endpoint
/// that accepts and never answers fails with 75, named with that timeout.
#[test]
fn etcd_dial_timeout_ends_a_silent_endpoint_with_75() {
    let server = S3Server::start();
    let etcd = silent();
    let env = with(
        &job(&server, "store", "dial.db.gz", Path::new("/")),
        &[
            ("ETCD_ENDPOINTS", &format!("http://127.0.0.1:{}", etcd.port)),
            ("ETCD_DIAL_TIMEOUT", "1s"),
        ],
    );
    let r = run("store", &env, &["--from-etcd"]);
    r.assert_code(75);
    assert!(
        r.error_lines()[0].contains("no snapshot data within 1s"),
        "{}",
        r.stderr
    );
    assert!(
        !server
            .object_file(&format!("{CLUSTER}-dial.db.gz"))
            .exists()
    );
    assert!(server.leftover_uploads().is_empty());
}

/// Against a real etcd 3.4: COMPRESS_LEVEL sets the gzip level of `snapshot`
/// (the gzip header's XFL byte says which, and the sizes differ);
/// ETCD_STREAM_TIMEOUT ends a stream that stalls mid-way with 75 (store
/// --from-etcd); `snapshot` exits 74 when its file cannot be written.
#[test]
fn a_live_etcd_honours_compress_level_and_the_stream_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = live_etcd(dir.path(), 8);
    let endpoint = [("ETCD_ENDPOINTS", etcd.client_url.as_str())];

    let mut sizes = Vec::new();
    for (level, xfl) in [("1", 4u8), ("9", 2u8)] {
        let file = dir.path().join(format!("level-{level}.db.gz"));
        run(
            "snapshot",
            &with(&[], &[endpoint[0], ("COMPRESS_LEVEL", level)]),
            &["--file", file.to_str().unwrap()],
        )
        .assert_code(0);
        let gz = std::fs::read(&file).unwrap();
        assert_eq!(&gz[..2], b"\x1f\x8b");
        assert_eq!(gz[8], xfl, "COMPRESS_LEVEL={level}: gzip XFL");
        sizes.push(gz.len());
        let out = dir.path().join(format!("level-{level}.db"));
        run(
            "restore",
            &[],
            &[
                "--snapshot",
                file.to_str().unwrap(),
                "--output",
                out.to_str().unwrap(),
            ],
        )
        .assert_code(0);
    }
    assert!(sizes[1] < sizes[0], "level 9 is smaller: {sizes:?}");
    let r = run(
        "snapshot",
        &with(&[], &[endpoint[0], ("COMPRESS_LEVEL", "10")]),
        &["--file", dir.path().join("x.db.gz").to_str().unwrap()],
    );
    r.assert_code(78);
    assert!(
        r.error_lines()[0].contains("COMPRESS_LEVEL"),
        "{}",
        r.stderr
    );

    // A path under a regular file cannot be written.
    let file = write_file(dir.path(), "a-file", b"x");
    let r = run(
        "snapshot",
        &with(&[], &endpoint),
        &["--file", file.join("snap.db.gz").to_str().unwrap()],
    );
    r.assert_code(74);
    assert!(
        r.error_lines()[0].contains(file.to_str().unwrap()),
        "{}",
        r.stderr
    );

    // The stream passes 128 KiB (four of etcd's 32 KiB messages), then stalls.
    let server = S3Server::start();
    let stalled = stall_after(
        etcd.client_url.rsplit(':').next().unwrap().parse().unwrap(),
        128 << 10,
    );
    let env = with(
        &job(&server, "store", "stall.db.gz", Path::new("/")),
        &[
            ("ETCD_ENDPOINTS", &format!("http://127.0.0.1:{stalled}")),
            ("ETCD_DIAL_TIMEOUT", "60s"),
            ("ETCD_STREAM_TIMEOUT", "1s"),
        ],
    );
    let r = run("store", &env, &["--from-etcd"]);
    r.assert_code(75);
    assert!(
        r.error_lines()[0].contains("stalled for 1s"),
        "{}",
        r.stderr
    );
    assert!(
        !server
            .object_file(&format!("{CLUSTER}-stall.db.gz"))
            .exists()
    );
    assert!(server.leftover_uploads().is_empty());
}

/// An `ENDPOINT` under amazonaws.com that is not the public regional endpoint (a
/// VPC interface endpoint, FIPS, dual-stack) is the host requests go to. None of
/// these names resolves here, so the run goes through an HTTP proxy on loopback
/// (object_store's client honours `http_proxy`/`https_proxy`) that records each
/// request line: a plain-HTTP request names its absolute URL, an HTTPS one the
/// host it CONNECTs to. No REGION is given: it is taken from the host.
#[test]
fn an_amazonaws_endpoint_keeps_its_host() {
    for host in [
        "bucket.vpce-0a1b2c3d-4e5f.s3.us-east-1.vpce.amazonaws.com",
        "s3-fips.us-east-2.amazonaws.com",
        "s3.dualstack.eu-west-1.amazonaws.com",
    ] {
        let (port, seen) = http_receiver();
        let proxy = format!("http://127.0.0.1:{port}");
        let env: Vec<(String, String)> = [
            ("ACCESS_KEY_ID", ACCESS_KEY),
            ("SECRET_ACCESS_KEY", SECRET_KEY),
            ("BUCKET_NAME", BUCKET),
            ("ENDPOINT", &format!("http://{host}")),
            ("CLUSTER", CLUSTER),
            ("BACKUP_TO_DELETE", "b.db.gz"),
            ("http_proxy", &proxy),
            ("https_proxy", &proxy),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        // The receiver's empty 200s are not S3 answers; only the requests matter.
        let run = run("delete", &env, &[]);
        let (method, target, _) = seen
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("no request for {host}: {}", run.all()));
        assert!(
            target.starts_with(&format!("http://{host}/{BUCKET}/")),
            "{host}: the first request was {method} {target}"
        );
        while let Ok((method, target, _)) = seen.try_recv() {
            assert!(
                target.starts_with(&format!("http://{host}/")),
                "{host}: a later request was {method} {target}"
            );
        }
    }
}
