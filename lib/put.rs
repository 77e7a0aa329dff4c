//! One streaming `PutObject` of a file, signed with AWS SigV4.
//!
//! object_store sends a PUT from memory, so above a part size it needs a
//! multipart upload, and every part it sends sits in memory while in flight. This
//! module sends a file as one PUT whose body is read from disk as it goes: a few
//! MiB of memory whatever the size, one request, and no multipart upload that a
//! crash could leave behind. On a server that re-reads a multipart object to
//! complete it (s3s-fs, `TEST-SERVERS.md`) one PUT is also the fastest way in.
//!
//! The object's SHA-256 goes in `x-amz-meta-sha256`, computed before the request
//! (S3 takes headers before the body). The payload itself is sent as
//! `UNSIGNED-PAYLOAD` unless `SIGNED_PAYLOAD=true`; since a single PUT's payload
//! hash *is* the object's SHA-256, signing it costs the client nothing, only the
//! server's check of it (README, "Payload signing").
//!
//! The last chunk of the body is held back until the caller's check (snapshot
//! verification, file unchanged) passes. A request that does not deliver all of
//! its `Content-Length` bytes creates no object, so a failed check, a signal or
//! the deadline leaves nothing at the key.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use crate::digest::Sha256;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::remote::{ClientTuning, S3Settings};
use crate::settings::Secret;

/// Bytes per read from the file; at most [`QUEUED`] + 2 of them are in memory.
const CHUNK: usize = 1 << 20;
/// Chunks read ahead of the socket.
const QUEUED: usize = 4;
/// S3's largest single PUT.
pub const MAX_SINGLE_PUT: u64 = 5 << 30;

/// Where and how to send PUTs: the object's URL and the signing material.
pub(crate) struct Target {
    client: reqwest::Client,
    url: reqwest::Url,
    host: String,
    region: String,
    access_key_id: Secret,
    secret_access_key: Secret,
    session_token: Option<Secret>,
    sign_payload: bool,
    max_retries: usize,
}

/// What the body waits for before its last chunk: `Ok` to send it, `Err` (a
/// reason) to stop the request.
pub(crate) type Gate = watch::Receiver<Option<std::result::Result<(), String>>>;
/// Run just before the last chunk goes out (after the gate): `Err` stops the request.
pub(crate) type LastCheck = Arc<dyn Fn() -> std::result::Result<(), String> + Send + Sync>;

impl Target {
    /// The object `key` (the STORAGE_URL prefix is added here) in `s3`'s bucket,
    /// in `region`.
    pub(crate) fn new(
        s3: &S3Settings,
        region: &str,
        key: &str,
        tuning: &ClientTuning,
    ) -> Result<Target> {
        let full_key = match &s3.prefix {
            Some(p) => format!("{}/{key}", p.trim_end_matches('/')),
            None => key.to_string(),
        };
        let path = uri_encode_path(&full_key);
        let raw = match &s3.endpoint {
            Some(endpoint) => format!("{}/{}/{path}", endpoint.trim_end_matches('/'), s3.bucket),
            // Virtual-hosted on AWS, except for dotted names the wildcard certificate
            // misses: as the object_store client is set up (remote.rs).
            None if !s3.bucket.contains('.') => {
                format!("https://{}.s3.{region}.amazonaws.com/{path}", s3.bucket)
            }
            None => format!("https://s3.{region}.amazonaws.com/{}/{path}", s3.bucket),
        };
        let url = reqwest::Url::parse(&raw)
            .map_err(|e| Error::Config(format!("object URL for key {key:?}: {e}")))?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => return Err(Error::Config(format!("object URL {raw} has no host"))),
        };
        let mut builder = reqwest::Client::builder()
            .connect_timeout(tuning.connect_timeout)
            .read_timeout(tuning.read_timeout)
            // One long body: HTTP/2's flow-control windows would only slow it.
            .http1_only()
            .no_proxy();
        if let Some((file, pem)) = &s3.ca_bundle {
            for cert in reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| Error::Config(format!("CA bundle {}: {e}", file.display())))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build().map_err(|e| {
            Error::Config(format!(
                "cannot build the HTTP client (no system CA certificates? give CA_BUNDLE): {e}"
            ))
        })?;
        Ok(Target {
            client,
            url,
            host,
            region: region.to_string(),
            access_key_id: s3.access_key_id.clone(),
            secret_access_key: s3.secret_access_key.clone(),
            session_token: s3.session_token.clone(),
            sign_payload: s3.sign_payload,
            max_retries: tuning.max_retries,
        })
    }

    /// Uploads the first `size` bytes of `file` with `sha256` recorded, retrying
    /// what a retry can fix. The caller bounds it in time (dropping it mid-body
    /// stores nothing).
    pub(crate) async fn put_file(
        &self,
        file: &std::path::Path,
        size: u64,
        sha256: &str,
        gate: &Gate,
        last: &LastCheck,
        progress: Duration,
    ) -> Result<()> {
        let mut attempt = 0;
        loop {
            let refusal = Arc::new(Mutex::new(None));
            let body = body(
                file.to_path_buf(),
                size,
                (gate.clone(), last.clone()),
                refusal.clone(),
                progress,
            );
            let sent = self.send(body, size, sha256).await;
            if let Some(reason) = refusal.lock().expect("not poisoned").take() {
                return Err(Error::Data(reason));
            }
            match sent {
                Ok(()) => return Ok(()),
                Err(e) if e.retryable && attempt < self.max_retries => {
                    let pause = Duration::from_millis(200 << attempt.min(6));
                    tracing::warn!(
                        attempt = attempt + 1,
                        error = %e.error,
                        retry_in_ms = pause.as_millis() as u64,
                        "the PUT failed; sending it again"
                    );
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
                Err(e) => {
                    return Err(Error::remote(
                        format!("upload to {}", self.url.path()),
                        e.error,
                    ));
                }
            }
        }
    }

    async fn send(&self, body: reqwest::Body, size: u64, sha256: &str) -> Result<(), Failure> {
        let (amz_date, date) = amz_dates(SystemTime::now());
        let payload = if self.sign_payload {
            sha256
        } else {
            "UNSIGNED-PAYLOAD"
        };
        let mut headers = vec![
            ("host", self.host.clone()),
            ("x-amz-content-sha256", payload.to_string()),
            ("x-amz-date", amz_date.clone()),
            ("x-amz-meta-sha256", sha256.to_string()),
        ];
        if let Some(token) = &self.session_token {
            headers.push(("x-amz-security-token", token.expose().to_string()));
        }
        let authorization = authorization(&Signing {
            method: "PUT",
            uri: self.url.path(),
            query: "",
            headers: &headers,
            payload,
            amz_date: &amz_date,
            date: &date,
            region: &self.region,
            access_key_id: self.access_key_id.expose(),
            secret_access_key: self.secret_access_key.expose(),
        });
        let mut request = self
            .client
            .put(self.url.clone())
            .header(reqwest::header::CONTENT_LENGTH, size)
            .header("authorization", authorization);
        for (name, value) in headers.iter().filter(|(n, _)| *n != "host") {
            request = request.header(*name, value);
        }
        let response = request.body(body).send().await.map_err(|e| Failure {
            retryable: true,
            error: object_store::Error::Generic {
                store: "S3",
                source: Box::new(e.without_url()),
            },
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        Err(Failure::from_response(status, &text, self.url.path()))
    }
}

/// A failed attempt, and whether another could succeed.
struct Failure {
    retryable: bool,
    error: object_store::Error,
}

impl Failure {
    fn from_response(status: reqwest::StatusCode, body: &str, path: &str) -> Failure {
        let code = xml_text(body, "Code").unwrap_or_default();
        let message = xml_text(body, "Message").unwrap_or_default();
        let source: Box<dyn std::error::Error + Send + Sync> =
            format!("status code: {} {code}: {message}", status.as_u16()).into();
        let path = path.to_string();
        let error = match status.as_u16() {
            401 => object_store::Error::Unauthenticated { path, source },
            403 => object_store::Error::PermissionDenied { path, source },
            404 => object_store::Error::NotFound { path, source },
            412 => object_store::Error::Precondition { path, source },
            _ => object_store::Error::Generic {
                store: "S3",
                source,
            },
        };
        Failure {
            retryable: status.is_server_error() || status.as_u16() == 429,
            error,
        }
    }
}

/// The text of the first `<tag>` element in an S3 error document.
fn xml_text(body: &str, tag: &str) -> Option<String> {
    let start = body.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = start + body[start..].find(&format!("</{tag}>"))?;
    Some(body[start..end].to_string())
}

/// The request body: the file's first `size` bytes read on a blocking thread,
/// `CHUNK` at a time, the last held back until `gate` opens. A closed gate or a
/// read error ends the body early, which aborts the request; the reason goes to
/// `refusal`.
fn body(
    path: PathBuf,
    size: u64,
    (gate, last): (Gate, LastCheck),
    refusal: Arc<Mutex<Option<String>>>,
    every: Duration,
) -> reqwest::Body {
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(QUEUED);
    tokio::task::spawn_blocking(move || read_chunks(&path, size, &tx));
    struct State {
        rx: mpsc::Receiver<std::io::Result<Bytes>>,
        gate: Gate,
        last: LastCheck,
        refusal: Arc<Mutex<Option<String>>>,
        sent: u64,
        size: u64,
        progress: Progress,
    }
    let state = State {
        rx,
        gate,
        last,
        refusal,
        sent: 0,
        size,
        progress: Progress::new("uploading", Some(size), every),
    };
    let stream = futures::stream::unfold(state, |mut s| async move {
        let chunk = match s.rx.recv().await? {
            Ok(chunk) => chunk,
            Err(e) => return Some((Err(e), s)),
        };
        let refused = |s: &State, why: String| {
            *s.refusal.lock().expect("not poisoned") = Some(why.clone());
            std::io::Error::other(why)
        };
        let early = s.gate.borrow().clone();
        if let Some(Err(why)) = early {
            let e = refused(&s, why);
            return Some((Err(e), s));
        }
        s.sent += chunk.len() as u64;
        if s.sent == s.size {
            let verdict = match s.gate.wait_for(Option::is_some).await {
                Ok(v) => v.clone().expect("waited for a verdict"),
                Err(_) => Err("the upload was stopped".to_string()),
            }
            .and_then(|()| (s.last)());
            if let Err(why) = verdict {
                let e = refused(&s, why);
                return Some((Err(e), s));
            }
        }
        s.progress.add(chunk.len() as u64);
        Some((Ok(chunk), s))
    });
    reqwest::Body::wrap_stream(stream)
}

fn read_chunks(path: &std::path::Path, size: u64, tx: &mpsc::Sender<std::io::Result<Bytes>>) {
    use std::io::Read;
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f.take(size),
        Err(e) => {
            let _ = tx.blocking_send(Err(e));
            return;
        }
    };
    let mut left = size;
    while left > 0 {
        let mut buf = Vec::with_capacity(CHUNK.min(left as usize));
        match (&mut file).take(CHUNK as u64).read_to_end(&mut buf) {
            Ok(0) => {
                let short = std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!(
                        "{} became shorter while it was being uploaded",
                        path.display()
                    ),
                );
                let _ = tx.blocking_send(Err(short));
                return;
            }
            Ok(n) => left -= n as u64,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        }
        if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
            return;
        }
    }
}

/// The inputs of a SigV4 signature.
struct Signing<'a> {
    method: &'a str,
    /// The URI-encoded path, as sent.
    uri: &'a str,
    /// The canonical query string (sorted, encoded); empty for none.
    query: &'a str,
    /// Lower-case header names, sorted, with their values.
    headers: &'a [(&'a str, String)],
    /// Hex SHA-256 of the payload, or `UNSIGNED-PAYLOAD`.
    payload: &'a str,
    amz_date: &'a str,
    date: &'a str,
    region: &'a str,
    access_key_id: &'a str,
    secret_access_key: &'a str,
}

/// The `Authorization` header value (AWS Signature Version 4, service `s3`).
fn authorization(s: &Signing<'_>) -> String {
    let signed_headers = s
        .headers
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(";");
    let canonical_headers: String = s
        .headers
        .iter()
        .map(|(n, v)| format!("{n}:{}\n", v.trim()))
        .collect();
    let canonical_request = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        s.method, s.uri, s.query, s.payload
    );
    let scope = format!("{}/{}/s3/aws4_request", s.date, s.region);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
        s.amz_date,
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let key = [s.date, s.region, "s3", "aws4_request"].iter().fold(
        format!("AWS4{}", s.secret_access_key).into_bytes(),
        |key, part| hmac(&key, part.as_bytes()),
    );
    let signature = hex::encode(hmac(&key, string_to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        s.access_key_id
    )
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    use aws_lc_rs::hmac;
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
        .as_ref()
        .to_vec()
}

/// SigV4's URI encoding of an object key: every byte but `A-Za-z0-9-_.~` and `/`
/// as `%XX`.
fn uri_encode_path(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `x-amz-date` (`YYYYMMDDTHHMMSSZ`) and the scope's date (`YYYYMMDD`), in UTC.
fn amz_dates(t: SystemTime) -> (String, String) {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let date = format!("{year:04}{month:02}{day:02}");
    let time = format!("{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60);
    (format!("{date}T{time}Z"), date)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_aws_documented_get_example() {
        // "Example: GET Object" of the S3 SigV4 documentation (header-based auth).
        let headers = [
            ("host", "examplebucket.s3.amazonaws.com".to_string()),
            ("range", "bytes=0-9".to_string()),
            (
                "x-amz-content-sha256",
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".to_string(),
            ),
            ("x-amz-date", "20130524T000000Z".to_string()),
        ];
        let auth = authorization(&Signing {
            method: "GET",
            uri: "/test.txt",
            query: "",
            headers: &headers,
            payload: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            amz_date: "20130524T000000Z",
            date: "20130524",
            region: "us-east-1",
            access_key_id: "AKIAIOSFODNN7EXAMPLE",
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        });
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn dates_in_utc() {
        let at = |s: u64| amz_dates(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), ("19700101T000000Z".into(), "19700101".into()));
        // 2013-05-24T00:00:00Z, 2000-02-29T23:59:59Z, 2026-11-23T17:20:46Z.
        assert_eq!(at(1_369_353_600).0, "20130524T000000Z");
        assert_eq!(at(951_868_799).0, "20000229T235959Z");
        assert_eq!(at(1_795_454_446).0, "20261123T172046Z");
    }

    #[test]
    fn keys_are_encoded_as_sigv4_wants() {
        assert_eq!(uri_encode_path("c-1/b 2+x=~._"), "c-1/b%202%2Bx%3D~._");
        assert_eq!(uri_encode_path("é"), "%C3%A9");
    }

    #[test]
    fn error_documents() {
        let body = "<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code>\
                    <Message>nope</Message></Error>";
        let f = Failure::from_response(reqwest::StatusCode::FORBIDDEN, body, "/b/k");
        assert!(!f.retryable);
        assert!(matches!(
            f.error,
            object_store::Error::PermissionDenied { .. }
        ));
        assert!(f.error.to_string().contains("SignatureDoesNotMatch: nope"));
        let f = Failure::from_response(reqwest::StatusCode::SERVICE_UNAVAILABLE, "", "/b/k");
        assert!(f.retryable);
    }
}
