//! s3rver (npm `s3rver`, installed by scripts/test.sh under
//! `~/.cache/snapjob/s3rver`; `S3RVER` names its binary): a small Node S3 server
//! that checks SigV4 with its fixed key `S3RVER`/`S3RVER` and keeps objects as
//! files. It answers neither ListMultipartUploads nor AbortMultipartUpload, so
//! its incomplete uploads are seen on disk (`BUCKET/._S3rver_uploads/ID/`).
//! One server on 127.0.0.1 per test, under `timeout`, stopped on drop.

use std::process::{Child, Output, Stdio};

use super::{BUCKET, port, stop, under_timeout, wait_port};

pub const S3RVER_KEY: &str = "S3RVER";

pub struct S3rver {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

fn bin() -> String {
    std::env::var("S3RVER").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/snapjob/s3rver/node_modules/.bin/s3rver")
    })
}

impl S3rver {
    /// Starts s3rver with the suite's bucket; again on a new port if the first
    /// was taken before it bound.
    pub fn start() -> S3rver {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..3 {
            let port = port();
            let mut child = under_timeout(900)
                .arg(bin())
                .args(["-s", "-a", "127.0.0.1", "-p", &port.to_string()])
                .arg("-d")
                .arg(dir.path().join("data"))
                .args(["--configure-bucket", BUCKET])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start s3rver (run scripts/test.sh): {e}"));
            if (0..3).any(|_| wait_port(&mut child, port)) {
                return S3rver { port, dir, child };
            }
            stop(&mut child);
        }
        panic!("s3rver did not start");
    }

    /// The controller's environment for the Jobs, against this s3rver.
    pub fn job_env(&self) -> Vec<(String, String)> {
        super::s3_job_env(S3RVER_KEY, S3RVER_KEY, self.port)
    }

    /// s3cmd against this s3rver.
    pub fn s3cmd(&self, args: &[&str]) -> Output {
        super::s3cmd_in(self.dir.path(), S3RVER_KEY, S3RVER_KEY, self.port, args)
    }

    /// The incomplete multipart uploads on disk (their ids).
    pub fn uploads(&self) -> Vec<String> {
        let dir = self
            .dir
            .path()
            .join("data")
            .join(BUCKET)
            .join("._S3rver_uploads");
        match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl Drop for S3rver {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}
