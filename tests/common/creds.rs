//! A small credential endpoint of our own on 127.0.0.1 (plain HTTP, as the real
//! ones are): EKS Pod Identity / container credentials (`GET` with the
//! `Authorization` token from the token file) and EC2 instance metadata
//! (IMDSv2: `PUT /latest/api/token`, then `GET`s carrying that token). It checks
//! the token it is given, answers 401 without it, and hands out the credentials
//! `issue` makes for the n-th fetch (1-based), recording each fetch.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One set of temporary credentials and how long it is valid from when it is handed out.
#[derive(Debug, Clone)]
pub struct Issued {
    pub key_id: String,
    pub secret: String,
    pub token: String,
    pub valid_for: Duration,
}

/// A fetch the endpoint answered with credentials.
#[derive(Debug, Clone)]
pub struct Fetch {
    pub issued: Issued,
    /// When the credentials stop being valid.
    pub expires: Instant,
}

/// What the endpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `GET` with `Authorization: <token>`.
    Container,
    /// IMDSv2.
    Imds,
}

type Issue = dyn Fn(usize) -> Issued + Send + Sync;

pub struct CredentialEndpoint {
    pub port: u16,
    fetches: Arc<Mutex<Vec<Fetch>>>,
    requests: Arc<Mutex<Vec<String>>>,
    _runtime: tokio::runtime::Runtime,
}

/// The role name IMDS reports.
pub const ROLE: &str = "snapjob-node-role";
/// The IMDSv2 session token it hands out.
pub const IMDS_TOKEN: &str = "imds-session-AQAEAKtGhWYbOBzCxzTkRyQ";

impl CredentialEndpoint {
    /// `auth` is the token a container request must carry (ignored for IMDS).
    /// `status` other than 200 is answered to every request, for error paths.
    pub fn start(
        kind: Kind,
        auth: &str,
        status: u16,
        issue: impl Fn(usize) -> Issued + Send + Sync + 'static,
    ) -> CredentialEndpoint {
        let runtime = super::background_runtime();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let port = listener.local_addr().unwrap().port();
        let fetches = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let issue: Arc<Issue> = Arc::new(issue);
        let (f, r, auth) = (fetches.clone(), requests.clone(), auth.to_string());
        runtime.spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let (f, r, auth, issue) = (f.clone(), r.clone(), auth.clone(), issue.clone());
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tcp.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&got).to_string();
                    r.lock().unwrap().push(head.clone());
                    let (code, body) = answer(kind, &head, &auth, status, &f, &*issue);
                    let response = format!(
                        "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tcp.write_all(response.as_bytes()).await;
                    let _ = tcp.shutdown().await;
                });
            }
        });
        CredentialEndpoint {
            port,
            fetches,
            requests,
            _runtime: runtime,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every answered fetch of credentials, in order.
    pub fn fetches(&self) -> Vec<Fetch> {
        self.fetches.lock().unwrap().clone()
    }

    /// The head of every request, in order.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn answer(
    kind: Kind,
    head: &str,
    auth: &str,
    status: u16,
    fetches: &Mutex<Vec<Fetch>>,
    issue: &Issue,
) -> (u16, String) {
    if status != 200 {
        return (status, "{\"message\":\"refused by the test\"}".into());
    }
    let line = head.lines().next().unwrap_or_default();
    let path = line.split_whitespace().nth(1).unwrap_or_default();
    let creds_path = "/latest/meta-data/iam/security-credentials/";
    match kind {
        Kind::Container => {
            if header(head, "authorization") != Some(auth) {
                return (401, "{\"message\":\"bad or missing token\"}".into());
            }
        }
        Kind::Imds => {
            if line.starts_with("PUT ") && path == "/latest/api/token" {
                if header(head, "x-aws-ec2-metadata-token-ttl-seconds").is_none() {
                    return (400, String::new());
                }
                return (200, IMDS_TOKEN.into());
            }
            if header(head, "x-aws-ec2-metadata-token") != Some(IMDS_TOKEN) {
                return (401, String::new());
            }
            if path == creds_path {
                return (200, ROLE.into());
            }
            if path != format!("{creds_path}{ROLE}") {
                return (404, String::new());
            }
        }
    }
    let mut all = fetches.lock().unwrap();
    let issued = issue(all.len() + 1);
    let expiration = chrono_like(SystemTime::now() + issued.valid_for);
    all.push(Fetch {
        expires: Instant::now() + issued.valid_for,
        issued: issued.clone(),
    });
    (
        200,
        format!(
            "{{\"Code\":\"Success\",\"Type\":\"AWS-HMAC\",\"AccessKeyId\":\"{}\",\
             \"SecretAccessKey\":\"{}\",\"Token\":\"{}\",\"Expiration\":\"{expiration}\"}}",
            issued.key_id, issued.secret, issued.token
        ),
    )
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-29T23:59:01.250Z`.
fn chrono_like(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}
