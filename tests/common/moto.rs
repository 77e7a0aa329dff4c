//! moto in server mode (PyPI `moto[server]`, installed by scripts/test.sh into a
//! venv; `MOTO_SERVER` names its `moto_server`): like AWS, it keeps a key's
//! pending multipart uploads and lists them (ListMultipartUploads), which neither
//! s3s-fs (501) nor garage (drops them once a new version completes) shows.
//! It does not check SigV4, so the harness talks to it with plain requests.
//! One server on 127.0.0.1 per test, under `timeout`, stopped on drop.

use std::process::{Child, Stdio};
use std::time::Duration;

use super::{ACCESS_KEY, BUCKET, SECRET_KEY, port, stop, under_timeout, wait_port};

pub struct Moto {
    pub port: u16,
    child: Child,
    log: tempfile::NamedTempFile,
}

fn bin() -> String {
    std::env::var("MOTO_SERVER").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/snapjob/moto-venv/bin/moto_server")
    })
}

/// moto picks the service from the credential scope of the Authorization
/// header; it checks no signature.
const AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIASNAPJOBTEST/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00";

impl Moto {
    /// Starts moto and creates the suite's bucket. A server that exits before
    /// its port accepts connections (the port taken meanwhile) is started again.
    pub fn start() -> Moto {
        let log = tempfile::NamedTempFile::new().unwrap();
        for _ in 0..3 {
            let port = port();
            let mut child = under_timeout(900)
                .arg(bin())
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(log.reopen().unwrap()))
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start moto_server (run scripts/test.sh): {e}"));
            // moto takes a second or two to import before it listens.
            if wait_port_long(&mut child, port) {
                let m = Moto { port, child, log };
                let (status, body) = m.request("PUT", &format!("/{BUCKET}"), "");
                assert!(status < 300, "creating the bucket on moto: {status} {body}");
                return m;
            }
            stop(&mut child);
        }
        panic!(
            "moto_server did not start; its log:\n{}",
            std::fs::read_to_string(log.path()).unwrap_or_default()
        );
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The controller's environment for the Jobs, against this moto.
    pub fn job_env(&self) -> Vec<(String, String)> {
        super::s3_job_env(ACCESS_KEY, SECRET_KEY, self.port)
    }

    /// One plain request; its status and body.
    pub fn request(&self, method: &str, path_and_query: &str, body: &str) -> (u16, String) {
        let url = format!("{}{path_and_query}", self.endpoint());
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let body = body.to_string();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let client = reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap();
            let r = client
                .request(method, url)
                .header("authorization", AUTH)
                .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
                .body(body)
                .send()
                .await
                .expect("moto answers");
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        })
    }

    /// The headers of a HEAD of `key` (names lower-case), or None when there
    /// is no object.
    pub fn head(&self, key: &str) -> Option<Vec<(String, String)>> {
        let url = format!("{}/{BUCKET}/{key}", self.endpoint());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let r = reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap()
                .head(url)
                .header("authorization", AUTH)
                .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
                .send()
                .await
                .expect("moto answers");
            match r.status().as_u16() {
                404 => None,
                200 => Some(
                    r.headers()
                        .iter()
                        .map(|(k, v)| {
                            (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())
                        })
                        .collect(),
                ),
                other => panic!("HEAD {key} on moto: {other}"),
            }
        })
    }

    /// Every key in the bucket, sorted (ListObjectsV2, one page).
    pub fn keys(&self) -> Vec<String> {
        let (status, xml) = self.request("GET", &format!("/{BUCKET}?list-type=2"), "");
        assert_eq!(status, 200, "ListObjectsV2 on moto: {xml}");
        let mut keys: Vec<String> = xml
            .split("<Contents>")
            .skip(1)
            .map(|c| between(c, "Key"))
            .collect();
        keys.sort();
        keys
    }

    /// The pending multipart uploads in the bucket, from ListMultipartUploads:
    /// (key, upload id).
    pub fn uploads(&self) -> Vec<(String, String)> {
        let (status, xml) = self.request("GET", &format!("/{BUCKET}?uploads"), "");
        assert_eq!(status, 200, "ListMultipartUploads on moto: {xml}");
        xml.split("<Upload>")
            .skip(1)
            .map(|u| (between(u, "Key"), between(u, "UploadId")))
            .collect()
    }

    /// Starts a multipart upload of `key` (left pending); its id.
    pub fn create_upload(&self, key: &str) -> String {
        let (status, xml) = self.request("POST", &format!("/{BUCKET}/{key}?uploads"), "");
        assert_eq!(status, 200, "CreateMultipartUpload on moto: {xml}");
        between(&xml, "UploadId")
    }

    /// The object's bytes, or None when there is none at the key.
    pub fn object(&self, key: &str) -> Option<Vec<u8>> {
        let url = format!("{}/{BUCKET}/{key}", self.endpoint());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let r = reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap()
                .get(url)
                .header("authorization", AUTH)
                .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
                .send()
                .await
                .expect("moto answers");
            match r.status().as_u16() {
                404 => None,
                200 => Some(r.bytes().await.unwrap().to_vec()),
                other => panic!("GET {key} on moto: {other}"),
            }
        })
    }
}

/// The text of the first `<tag>` element.
fn between(xml: &str, tag: &str) -> String {
    let start = xml
        .find(&format!("<{tag}>"))
        .unwrap_or_else(|| panic!("no <{tag}> in {xml}"))
        + tag.len()
        + 2;
    let end = start + xml[start..].find(&format!("</{tag}>")).unwrap();
    xml[start..end].to_string()
}

/// [`wait_port`] a few times over: moto imports for a second or two first.
fn wait_port_long(child: &mut Child, port: u16) -> bool {
    (0..3).any(|_| wait_port(child, port))
}

impl Drop for Moto {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}
