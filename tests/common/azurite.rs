//! Azurite (Microsoft's Azure Storage emulator, from npm) on loopback, and the
//! Python azure-storage-blob SDK as a peer client on it.
//!
//! `scripts/test.sh` installs both under ~/.cache/snapjob/; `AZURITE_BLOB` and
//! `AZURE_PY` may point elsewhere. Azurite runs under `timeout` with its own
//! temporary workspace and is stopped on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use super::{CLUSTER, output_within, port, stop, under_timeout, wait_port};

/// Azurite's well-known development account and key (public, documented by Microsoft).
pub const ACCOUNT: &str = "devstoreaccount1";
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
pub const CONTAINER: &str = "etcd-backups";

/// scripts/test.sh's cache: `SNAPJOB_CACHE`, default ~/.cache/snapjob.
fn cache() -> PathBuf {
    std::env::var("SNAPJOB_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/snapjob"))
}

/// One Azurite blob service with one container.
pub struct Azurite {
    pub workspace: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

impl Azurite {
    pub fn start() -> Azurite {
        let bin = std::env::var("AZURITE_BLOB").unwrap_or_else(|_| {
            cache()
                .join("azurite/node_modules/.bin/azurite-blob")
                .display()
                .to_string()
        });
        let workspace = tempfile::tempdir().unwrap();
        let port = port();
        let mut child = under_timeout(900)
            .arg(&bin)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(workspace.path())
            .args(["--skipApiVersionCheck", "--disableTelemetry", "--silent"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {bin} (run scripts/test.sh to install it): {e}")
            });
        if !wait_port(&mut child, port) {
            stop(&mut child);
            panic!("{bin} did not listen on {port}");
        }
        let az = Azurite {
            workspace,
            port,
            child,
        };
        az.py(&["create", CONTAINER]);
        az
    }

    /// The connection string the SDKs take, to `port` (Azurite's, or a proxy's).
    pub fn connection_string_via(&self, port: u16) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};\
             BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
        )
    }

    pub fn connection_string(&self) -> String {
        self.connection_string_via(self.port)
    }

    /// A Job's environment: the container under `prefix`, the connection string.
    pub fn env(&self, prefix: &str) -> Vec<(String, String)> {
        vec![
            ("STORAGE_URL".into(), format!("az://{CONTAINER}/{prefix}")),
            (
                "AZURE_STORAGE_CONNECTION_STRING".into(),
                self.connection_string(),
            ),
            ("CLUSTER".into(), CLUSTER.into()),
        ]
    }

    /// Runs the Python SDK peer (tests/common/azure_peer.py); fails on error.
    pub fn py(&self, args: &[&str]) -> String {
        let out = self.py_output(args);
        assert!(
            out.status.success(),
            "azure_peer.py {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn py_output(&self, args: &[&str]) -> Output {
        let python = std::env::var("AZURE_PY")
            .unwrap_or_else(|_| cache().join("azure-venv/bin/python").display().to_string());
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/azure_peer.py");
        output_within(
            Command::new(python)
                .arg(script)
                .arg(self.connection_string())
                .args(args),
            "azure_peer.py",
        )
    }

    /// Committed blob names in the container.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .py(&["list", CONTAINER])
            .lines()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}
