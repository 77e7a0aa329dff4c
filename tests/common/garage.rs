//! garage, the most faithful S3 server of docs/TEST-SERVERS.md here: it checks SigV4,
//! verifies per-part checksums and, unlike s3s-fs, answers ListMultipartUploads,
//! so leftover uploads are checked through the S3 API itself (with s3cmd).
//! One node on 127.0.0.1, configured and started per test, stopped on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use super::{BUCKET, SECRET_KEY, output_within, port, stop, under_timeout, wait_port};

/// garage wants `GK` + 24 hex digits; the secret is the suite's.
pub const GARAGE_KEY: &str = "GK5a6e61706a6f62746573740a";

pub struct Garage {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

fn bin() -> String {
    std::env::var("GARAGE").unwrap_or_else(|_| "garage".into())
}

impl Garage {
    /// Starts a node and sets up its layout, key and bucket. A node that exits
    /// before both its RPC and S3 ports accept connections (a port taken in the
    /// meantime) is started again on new ports.
    pub fn start() -> Garage {
        Garage::start_in("us-east-1")
    }

    /// Like [`Garage::start`], the node answering as region `region`.
    pub fn start_in(region: &str) -> Garage {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..3 {
            if let Some((child, port)) = Garage::try_start(&dir, region) {
                return Garage { dir, port, child }.set_up();
            }
        }
        panic!(
            "garage did not start; its log:\n{}",
            std::fs::read_to_string(dir.path().join("garage.log")).unwrap_or_default()
        );
    }

    fn try_start(dir: &tempfile::TempDir, region: &str) -> Option<(Child, u16)> {
        let (s3, rpc) = (port(), port());
        let cfg = dir.path().join("garage.toml");
        let secret: String = (0..64)
            .map(|i| b"0123456789abcdef"[(i * 7 + 3) % 16] as char)
            .collect();
        let _ = std::fs::remove_dir_all(dir.path().join("meta"));
        let _ = std::fs::remove_dir_all(dir.path().join("data"));
        std::fs::write(
            &cfg,
            format!(
                "metadata_dir = \"{d}/meta\"\ndata_dir = \"{d}/data\"\ndb_engine = \"sqlite\"\n\
                 replication_factor = 1\nrpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{secret}\"\n\n\
                 [s3_api]\ns3_region = \"{region}\"\napi_bind_addr = \"127.0.0.1:{s3}\"\n",
                d = dir.path().display()
            ),
        )
        .unwrap();
        let mut child = under_timeout(900)
            .arg(bin())
            .arg("-c")
            .arg(&cfg)
            .arg("server")
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("garage.log")).unwrap(),
            ))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start garage (run scripts/test.sh): {e}"));
        if wait_port(&mut child, rpc) && wait_port(&mut child, s3) {
            return Some((child, s3));
        }
        stop(&mut child);
        None
    }

    /// The layout, the suite's key and the bucket.
    fn set_up(self) -> Garage {
        let g = self;
        let status = g.cli(&["status"]);
        let node = String::from_utf8_lossy(&status.stdout)
            .lines()
            .find_map(|l| {
                let id = l.split_whitespace().next()?;
                (id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit()))
                    .then(|| id.to_string())
            })
            .expect("garage status shows the node id");
        g.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        g.cli(&["layout", "apply", "--version", "1"]);
        g.cli(&["key", "import", "--yes", "-n", "ci", GARAGE_KEY, SECRET_KEY]);
        g.cli(&["bucket", "create", BUCKET]);
        g.cli(&[
            "bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", "ci",
        ]);
        g
    }

    /// Runs the garage CLI against this node; panics on failure.
    fn cli(&self, args: &[&str]) -> Output {
        let out = output_within(
            Command::new(bin())
                .arg("-c")
                .arg(self.dir.path().join("garage.toml"))
                .args(args),
            "garage",
        );
        assert!(
            out.status.success(),
            "garage {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The controller's environment for the Jobs, against this garage.
    pub fn job_env(&self) -> Vec<(String, String)> {
        super::s3_job_env(GARAGE_KEY, SECRET_KEY, self.port)
    }

    /// s3cmd against this garage (keys in a config file, not on its command line).
    pub fn s3cmd(&self, args: &[&str]) -> Output {
        super::s3cmd_in(self.dir.path(), GARAGE_KEY, SECRET_KEY, self.port, args)
    }

    /// In-progress multipart uploads, from ListMultipartUploads (`s3cmd multipart`).
    pub fn uploads(&self) -> Vec<String> {
        let out = self.s3cmd(&["multipart", &format!("s3://{BUCKET}")]);
        assert!(
            out.status.success(),
            "s3cmd multipart: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // "s3://bucket/", a header "Initiated<TAB>Path<TAB>Id", then one row per upload.
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.split('\t').count() == 3 && !l.starts_with("Initiated"))
            .map(str::to_string)
            .collect()
    }

    /// The object's bytes, through s3cmd, or None when the bucket's listing (which
    /// must succeed) does not hold the key. Any failure of s3cmd (auth, server
    /// down, bad config, missing bucket) fails the test: it says nothing about the
    /// object. (`s3cmd get` cannot tell: a missing key and a missing bucket both
    /// give "Parameter problem", exit 64.)
    pub fn object(&self, key: &str) -> Option<Vec<u8>> {
        let url = format!("s3://{BUCKET}/{key}");
        let listed = self.s3cmd(&["ls", &url]);
        assert!(
            listed.status.success(),
            "s3cmd ls {url} ({:?}): {}",
            listed.status.code(),
            String::from_utf8_lossy(&listed.stderr)
        );
        // "DATE TIME SIZE s3://bucket/key" per object under the prefix.
        let present = String::from_utf8_lossy(&listed.stdout)
            .lines()
            .any(|l| l.split_whitespace().last() == Some(url.as_str()));
        if !present {
            return None;
        }
        let out_file: PathBuf = self.dir.path().join("got");
        let _ = std::fs::remove_file(&out_file);
        let out = self.s3cmd(&["get", "--force", &url, out_file.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "s3cmd get {url} ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        Some(std::fs::read(&out_file).unwrap())
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}
