//! A misbehaving HTTP proxy between the binaries and the S3 server, for fault
//! injection (loopback only, stops with the test). It reads each request's head,
//! tells the S3 operation apart, counts it, and either forwards it or applies the
//! first matching [`Rule`]: answer a status, reset mid-body, stall, forward and
//! then drop the response, or forward with one body byte altered. Each connection
//! carries one request (`Connection: close` is forced), so counting is exact. For
//! each forwarded request it records the `x-amz-content-sha256` header and the
//! SHA-256 of the body as the client sent it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The S3 operation of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    PutObject,
    CreateUpload,
    UploadPart,
    Complete,
    Abort,
    Get,
    Head,
    Delete,
    /// GetBucketLocation (`GET ?location`), asked once per run on a custom
    /// endpoint with no region given.
    Location,
    Other,
}

impl Op {
    /// Every operation, for rules that apply to all requests.
    pub const ALL: [Op; 10] = [
        Op::PutObject,
        Op::CreateUpload,
        Op::UploadPart,
        Op::Complete,
        Op::Abort,
        Op::Get,
        Op::Head,
        Op::Delete,
        Op::Location,
        Op::Other,
    ];
}

/// What to do to a matching request.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Answer this status with an S3 error body, without forwarding.
    Status(u16),
    /// Read this many body bytes, then close the connection.
    ResetAfter(usize),
    /// Never answer.
    Stall,
    /// Forward the request, wait for the whole answer, then close without it.
    DropResponse,
    /// Forward the request, wait for the whole answer, and hold it until
    /// [`Proxy::release`] is called; then send it.
    HoldResponse,
    /// Answer this status with an S3 error body carrying this error code,
    /// without forwarding.
    Error(u16, &'static str),
    /// Forward the request with the body byte at this offset flipped (XOR 1),
    /// and its answer: a body altered in flight.
    Corrupt(usize),
    /// Answer this status with this body (an S3 document), without forwarding.
    Answer(u16, &'static str),
    /// Forward the request, reading its body from the client at this many
    /// bytes per second (a slow link that keeps moving), and its answer.
    Throttle(u64),
}

/// A request the proxy forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub op: Op,
    /// Its `x-amz-content-sha256` header, if any.
    pub content_sha256: Option<String>,
    /// Hex SHA-256 of its body as the client sent it (before any alteration).
    pub body_sha256: String,
    pub body_len: usize,
    /// From the request's head to the last body byte read from the client.
    pub took: std::time::Duration,
}

/// Applies `fault` to the `first`-th (1-based) request of `op` and the `times - 1`
/// that follow it.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub op: Op,
    pub first: usize,
    pub times: usize,
    pub fault: Fault,
}

impl Rule {
    pub fn once(op: Op, nth: usize, fault: Fault) -> Rule {
        Rule {
            op,
            first: nth,
            times: 1,
            fault,
        }
    }
    /// `fault` on every request, whatever its operation.
    pub fn on_every_request(fault: Fault) -> Vec<Rule> {
        Op::ALL.iter().map(|&op| Rule::always(op, fault)).collect()
    }
    pub fn always(op: Op, fault: Fault) -> Rule {
        Rule {
            op,
            first: 1,
            times: usize::MAX,
            fault,
        }
    }
}

#[derive(Default)]
struct State {
    /// Set by [`Proxy::release`]: held answers go out.
    released: Option<Arc<tokio::sync::Notify>>,
    released_now: bool,
    counts: HashMap<Op, usize>,
    heads: Vec<String>,
    /// When each head arrived.
    arrivals: Vec<std::time::Instant>,
    seen: Vec<Seen>,
}

/// A running proxy on 127.0.0.1.
pub struct Proxy {
    pub port: u16,
    state: Arc<Mutex<State>>,
    _runtime: tokio::runtime::Runtime,
}

impl Proxy {
    pub fn start(upstream: u16, rules: Vec<Rule>) -> Proxy {
        Proxy::start_with(upstream, rules, false)
    }

    /// A proxy before fake-gcs-server, whose XML API (the reads) answers only
    /// requests addressed to its public host: GETs and HEADs are sent on with
    /// the server's own `Host`.
    pub fn start_for_gcs(upstream: u16, rules: Vec<Rule>) -> Proxy {
        Proxy::start_with(upstream, rules, true)
    }

    fn start_with(upstream: u16, rules: Vec<Rule>, reads_to_upstream_host: bool) -> Proxy {
        let runtime = super::background_runtime();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let rules = Arc::new(rules);
        runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (state, rules) = (shared.clone(), rules.clone());
                tokio::spawn(async move {
                    let host = reads_to_upstream_host.then_some(upstream);
                    let _ = handle(client, (upstream, host), state, rules).await;
                });
            }
        });
        Proxy {
            port,
            state,
            _runtime: runtime,
        }
    }

    /// Sends every held answer ([`Fault::HoldResponse`]), now and later.
    pub fn release(&self) {
        let notify = self
            .state
            .lock()
            .unwrap()
            .released
            .get_or_insert_with(Default::default)
            .clone();
        self.state.lock().unwrap().released_now = true;
        notify.notify_waiters();
    }

    /// How many requests of `op` arrived.
    pub fn count(&self, op: Op) -> usize {
        *self.state.lock().unwrap().counts.get(&op).unwrap_or(&0)
    }

    /// Waits (bounded by the tests' time limit) until `n` requests of `op`
    /// arrived, e.g. until a stalled part is surely in flight.
    pub fn wait_for(&self, op: Op, n: usize) {
        let until = std::time::Instant::now() + super::time_limit();
        while self.count(op) < n {
            assert!(
                std::time::Instant::now() < until,
                "request {n} of {op:?} never came"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Runs `bin` and sends it SIGTERM once request `n` of `op` arrived here (a
    /// request that stalls keeps the run in flight); how the run ended.
    pub fn terminated_at(
        &self,
        (op, n): (Op, usize),
        bin: &str,
        env: &[(String, String)],
        args: &[&str],
    ) -> super::Run {
        let child = super::command(bin, env, args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        self.wait_for(op, n);
        super::signal(&child, super::Signal::SIGTERM);
        super::Run::of(super::wait_within(child, bin))
    }

    /// The head (request line and headers) of every request that arrived, in order.
    pub fn heads(&self) -> Vec<String> {
        self.state.lock().unwrap().heads.clone()
    }

    /// The heads of the requests whose request line starts with one of `starts`
    /// (a method, or a method and a path), in order.
    pub fn heads_of(&self, starts: &[&str]) -> Vec<String> {
        self.heads()
            .into_iter()
            .filter(|h| {
                let line = h.lines().next().unwrap_or("");
                starts.iter().any(|s| line.starts_with(s))
            })
            .collect()
    }

    /// Each head with when it arrived, in order.
    pub fn heads_at(&self) -> Vec<(std::time::Instant, String)> {
        let st = self.state.lock().unwrap();
        st.arrivals
            .iter()
            .copied()
            .zip(st.heads.iter().cloned())
            .collect()
    }

    /// The forwarded requests of `op`, in the order they were read.
    pub fn seen(&self, op: Op) -> Vec<Seen> {
        let st = self.state.lock().unwrap();
        st.seen.iter().filter(|s| s.op == op).cloned().collect()
    }
}

/// A header's value in a request head (names compared case-insensitively).
pub fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

fn classify(method: &str, target: &str) -> Op {
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let has = |k: &str| {
        query
            .split('&')
            .any(|p| p == k || p.starts_with(&format!("{k}=")))
    };
    match method {
        "POST" if has("uploadId") => Op::Complete,
        "POST" if has("uploads") => Op::CreateUpload,
        "PUT" if has("partNumber") => Op::UploadPart,
        "PUT" => Op::PutObject,
        "DELETE" if has("uploadId") => Op::Abort,
        "DELETE" => Op::Delete,
        "GET" if has("location") => Op::Location,
        "GET" => Op::Get,
        "HEAD" => Op::Head,
        _ => Op::Other,
    }
}

async fn read_head(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    Ok(head)
}

async fn handle(
    mut client: TcpStream,
    (upstream, read_host): (u16, Option<u16>),
    state: Arc<Mutex<State>>,
    rules: Arc<Vec<Rule>>,
) -> std::io::Result<()> {
    let head = read_head(&mut client).await?;
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split(' ');
    let (method, target) = (
        request_line.next().unwrap_or(""),
        request_line.next().unwrap_or(""),
    );
    let op = classify(method, target);
    let mut body_len = 0usize;
    let mut content_sha256 = None;
    let mut rewritten = format!("{}\r\n", text.split("\r\n").next().unwrap_or(""));
    for line in lines.filter(|l| !l.is_empty()) {
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            body_len = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("x-amz-content-sha256:") {
            content_sha256 = line.split_once(':').map(|(_, v)| v.trim().to_string());
        }
        let reading = matches!(op, Op::Get | Op::Head);
        if let (Some(port), true, true) = (read_host, reading, lower.starts_with("host:")) {
            rewritten.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
        } else if !lower.starts_with("connection:") {
            rewritten.push_str(line);
            rewritten.push_str("\r\n");
        }
    }
    rewritten.push_str("Connection: close\r\n\r\n");
    let n = {
        let mut st = state.lock().unwrap();
        st.heads.push(text.clone());
        st.arrivals.push(std::time::Instant::now());
        let c = st.counts.entry(op).or_insert(0);
        *c += 1;
        *c
    };
    let fault = rules
        .iter()
        .find(|r| r.op == op && n >= r.first && n - r.first < r.times)
        .map(|r| r.fault);
    let fault = match fault {
        Some(Fault::Status(code)) => Some(Fault::Error(
            code,
            if code == 503 {
                "SlowDown"
            } else {
                "InternalError"
            },
        )),
        other => other,
    };
    match fault {
        Some(Fault::Status(_)) => unreachable!("mapped to Fault::Error above"),
        Some(fault @ (Fault::Error(..) | Fault::Answer(..))) => {
            let mut body = vec![0u8; body_len];
            client.read_exact(&mut body).await?;
            let (code, xml) = match fault {
                Fault::Answer(code, doc) => (code, doc.to_string()),
                Fault::Error(code, s3code) => (
                    code,
                    format!(
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{s3code}</Code><Message>injected</Message></Error>"
                    ),
                ),
                _ => unreachable!("matched above"),
            };
            let resp = format!(
                "HTTP/1.1 {code} Injected\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
                xml.len()
            );
            client.write_all(resp.as_bytes()).await?;
            client.shutdown().await
        }
        Some(Fault::ResetAfter(bytes)) => {
            let mut body = vec![0u8; bytes.min(body_len)];
            client.read_exact(&mut body).await?;
            client.set_zero_linger()?;
            drop(client);
            Ok(())
        }
        Some(Fault::Stall) => {
            let _held = client;
            std::future::pending::<()>().await;
            Ok(())
        }
        Some(Fault::HoldResponse) => {
            let mut up = TcpStream::connect(("127.0.0.1", upstream)).await?;
            up.write_all(rewritten.as_bytes()).await?;
            let mut body = vec![0u8; body_len];
            client.read_exact(&mut body).await?;
            up.write_all(&body).await?;
            let mut answer = Vec::new();
            up.read_to_end(&mut answer).await?;
            let notify = state
                .lock()
                .unwrap()
                .released
                .get_or_insert_with(Default::default)
                .clone();
            let waiting = notify.notified();
            if !state.lock().unwrap().released_now {
                waiting.await;
            }
            client.write_all(&answer).await?;
            client.shutdown().await
        }
        Some(Fault::DropResponse) => {
            let mut up = TcpStream::connect(("127.0.0.1", upstream)).await?;
            up.write_all(rewritten.as_bytes()).await?;
            let mut body = vec![0u8; body_len];
            client.read_exact(&mut body).await?;
            up.write_all(&body).await?;
            let mut answer = Vec::new();
            up.read_to_end(&mut answer).await?;
            client.set_zero_linger()?;
            drop(client);
            Ok(())
        }
        None | Some(Fault::Corrupt(_) | Fault::Throttle(_)) => {
            let started = std::time::Instant::now();
            let (flip, rate) = match fault {
                Some(Fault::Corrupt(at)) => (Some(at), None),
                Some(Fault::Throttle(rate)) => (None, Some(rate)),
                _ => (None, None),
            };
            let mut up = TcpStream::connect(("127.0.0.1", upstream)).await?;
            up.write_all(rewritten.as_bytes()).await?;
            let body_sha256 = forward_body(&mut client, &mut up, body_len, (flip, rate)).await?;
            state.lock().unwrap().seen.push(Seen {
                op,
                content_sha256,
                body_sha256,
                body_len,
                took: started.elapsed(),
            });
            tokio::io::copy(&mut up, &mut client).await?;
            client.shutdown().await
        }
    }
}

/// Copies `len` body bytes from `client` to `up`, flipping the byte at offset
/// `flip`, reading at most `rate` bytes per second; returns the hex SHA-256 of
/// the bytes as they came from the client.
async fn forward_body(
    client: &mut TcpStream,
    up: &mut TcpStream,
    len: usize,
    (flip, rate): (Option<usize>, Option<u64>),
) -> std::io::Result<String> {
    let mut hash = snapjob::base::digest::Sha256::new();
    let mut buf = vec![0u8; if rate.is_some() { 16 } else { 64 } * 1024];
    let mut at = 0;
    let start = tokio::time::Instant::now();
    while at < len {
        if let Some(rate) = rate {
            // Not before `at` bytes are due at `rate`.
            let due = std::time::Duration::from_secs_f64(at as f64 / rate as f64);
            tokio::time::sleep_until(start + due).await;
        }
        let want = buf.len().min(len - at);
        let n = client.read(&mut buf[..want]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        hash.update(&buf[..n]);
        if let Some(f) = flip.filter(|f| (at..at + n).contains(f)) {
            buf[f - at] ^= 1;
        }
        up.write_all(&buf[..n]).await?;
        at += n;
    }
    Ok(hex::encode(hash.finalize()))
}
