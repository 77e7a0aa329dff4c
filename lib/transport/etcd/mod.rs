//! Taking a snapshot from a live etcd: the `Maintenance/Snapshot` gRPC call, a
//! server stream of `SnapshotResponse{header, remaining_bytes, blob, version}`.
//!
//! It is one call, so it is made directly with hyper over HTTP/2 (plain, or TLS with
//! the client certificate the controller's snapshot container uses) instead of
//! through a generated client: no protoc at build time, no tonic in the binary.
//! The stream ends with a message whose blob is the SHA-256 of the db, so the bytes
//! are exactly what `etcdctl snapshot save` writes (docs/ETCD-RESTORE.md §3).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

use crate::base::error::{Error, ErrorClass, Result};

mod frame;
pub mod hashkv;
mod tls;

pub(crate) use frame::varint;
use frame::{take_frame, take_message};
use tls::{CertificateAsked, NO_CERTIFICATE, tls_config};
pub mod to_file;

pub use hashkv::MemberHash;

/// Where and how to reach etcd.
#[derive(Debug, Clone)]
pub struct EtcdSource {
    /// Client URLs, tried in order: `http://host:port` or `https://host:port`.
    pub endpoints: Vec<String>,
    /// CA certificate(s) that sign the etcd server certificate (PEM).
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM), for etcd's client-cert-auth.
    pub cert_file: Option<PathBuf>,
    /// Client key (PEM).
    pub key_file: Option<PathBuf>,
    /// Limit for connecting and getting the first bytes from one endpoint.
    pub dial_timeout: Duration,
    /// Longest silence tolerated in the middle of the stream.
    pub stream_timeout: Duration,
}

/// The longest gRPC message taken from etcd: gRPC's default receive limit. etcd
/// sends the snapshot in 32 KiB blobs; a peer announcing more is not buffered.
const MAX_MESSAGE: usize = 4 * 1024 * 1024;

fn etcd_error(class: ErrorClass, message: String) -> Error {
    Error::Etcd { message, class }
}

/// An open snapshot stream.
pub struct SnapshotStream {
    /// The endpoint it came from.
    pub endpoint: String,
    body: Incoming,
    buf: BytesMut,
    pending: Option<Bytes>,
    idle: Duration,
    ended: bool,
    /// The member's answer to `HashKV` just before the snapshot, when it gave one.
    pub member_hash: Option<MemberHash>,
}

/// Opens the stream on the first endpoint that answers with data. Endpoints that
/// fail before sending any snapshot byte are skipped (and logged). Over the same
/// connection, just before the snapshot, the member is asked for its `HashKV`
/// ([`hashkv`]); its answer, when it gives one, is the stream's `member_hash`.
pub async fn open(src: &EtcdSource) -> Result<SnapshotStream> {
    let tls = tls_config(src)?;
    let mut last = None;
    for ep in &src.endpoints {
        match open_one(ep, src, tls.clone()).await {
            Ok(s) => return Ok(s),
            Err(e) => {
                tracing::warn!(endpoint = %ep, error = %e.chain(), "etcd endpoint failed; trying the next");
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| Error::Config("ETCD_ENDPOINTS is empty".into())))
}

/// Connects (within the dial timeout), asks for `HashKV` (within the stream
/// timeout: the member hashes its whole key space first), then opens the snapshot
/// stream (within the dial timeout again).
async fn open_one(
    ep: &str,
    src: &EtcdSource,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<SnapshotStream> {
    let no_data = || {
        etcd_error(
            ErrorClass::Temporary,
            format!(
                "etcd {ep}: no snapshot data within {}s",
                src.dial_timeout.as_secs()
            ),
        )
    };
    let mut conn = tokio::time::timeout(src.dial_timeout, connect(ep, tls))
        .await
        .map_err(|_| no_data())??;
    let member_hash = hashkv::ask(&mut conn.sender, ep, src.stream_timeout).await;
    tokio::time::timeout(src.dial_timeout, conn.snapshot(ep, src, member_hash))
        .await
        .map_err(|_| no_data())?
}

/// The TCP (and TLS) connection and the HTTP/2 handshake.
async fn connect(ep: &str, tls: Option<Arc<rustls::ClientConfig>>) -> Result<Conn> {
    let uri: http::Uri = ep
        .parse()
        .map_err(|e| Error::Config(format!("ETCD_ENDPOINTS: {ep:?} is not a URL: {e}")))?;
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_string();
    let port = uri.port_u16().unwrap_or(2379);
    let secure = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => {
            return Err(Error::Config(format!(
                "ETCD_ENDPOINTS: {ep:?} must start with http:// or https://"
            )));
        }
    };
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| {
            let class = if e.kind() == std::io::ErrorKind::ConnectionRefused {
                ErrorClass::ConnectionRefused
            } else {
                ErrorClass::Temporary
            };
            etcd_error(class, format!("etcd {ep}: cannot connect: {e}"))
        })?;
    let _ = tcp.set_nodelay(true);
    if secure {
        let tls = tls.ok_or_else(|| {
            Error::Config(format!(
                "ETCD_ENDPOINTS: {ep} is https; give --etcd-ca-file (ETCD_CA_FILE)"
            ))
        })?;
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| Error::Config(format!("ETCD_ENDPOINTS: {ep}: {e}")))?;
        // Without a client certificate, note whether the server asks for one.
        let asked = Arc::new(CertificateAsked::default());
        let tls = if tls.client_auth_cert_resolver.has_certs() {
            tls
        } else {
            let mut own = (*tls).clone();
            own.client_auth_cert_resolver = asked.clone();
            Arc::new(own)
        };
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| {
                let hint = if asked.0.load(std::sync::atomic::Ordering::Relaxed) {
                    NO_CERTIFICATE
                } else {
                    ""
                };
                etcd_error(
                    ErrorClass::Denied,
                    format!("etcd {ep}: TLS handshake failed{hint}: {e}"),
                )
            })?;
        let asked = asked.0.load(std::sync::atomic::Ordering::Relaxed);
        handshake(ep, stream, asked).await
    } else {
        handshake(ep, tcp, false).await
    }
}

/// An HTTP/2 connection to one endpoint.
struct Conn {
    sender: hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    connection: tokio::task::JoinHandle<std::result::Result<(), hyper::Error>>,
    /// The server asked for a client certificate in the TLS handshake and none
    /// was configured.
    asked_for_certificate: bool,
}

/// The HTTP/2 handshake over `io`.
async fn handshake<I>(ep: &str, io: I, asked_for_certificate: bool) -> Result<Conn>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .map_err(|e| broken(ep, asked_for_certificate, e))?;
    Ok(Conn {
        sender,
        connection: tokio::spawn(conn),
        asked_for_certificate,
    })
}

/// A failed connection's error. With TLS 1.3 a refused client certificate
/// arrives after the handshake "succeeded": as the server's alert on the first
/// read, or, when our first write meets the closed socket before we read the
/// alert, as a broken pipe or a reset. Either way it is a denial (77), not a
/// broken connection to retry later.
fn broken(ep: &str, asked_for_certificate: bool, e: hyper::Error) -> Error {
    let text = crate::base::error::chain_text(&e).replace(" | ", ": ");
    if asked_for_certificate {
        return etcd_error(
            ErrorClass::Denied,
            format!("etcd {ep}: the connection failed{NO_CERTIFICATE}: {text}"),
        );
    }
    let class = if text.contains("received fatal alert") {
        ErrorClass::Denied
    } else {
        ErrorClass::Temporary
    };
    etcd_error(class, format!("etcd {ep}: {text}"))
}

/// A gRPC request for `method` of etcd's `Maintenance` service with the
/// (already framed) message `body`.
fn grpc_request(
    ep: &str,
    method: &str,
    body: &'static [u8],
) -> Result<hyper::Request<Full<Bytes>>> {
    hyper::Request::post(format!("{ep}/etcdserverpb.Maintenance/{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from_static(body)))
        .map_err(|e| Error::Other(format!("building the etcd request: {e}")))
}

/// The response's body, once its headers said it is not a refusal.
fn accepted(ep: &str, response: hyper::Response<Incoming>) -> Result<Incoming> {
    let (parts, body) = response.into_parts();
    // A refusal can come as headers only ("trailers-only" response).
    if let Some(e) = grpc_failure(ep, &parts.headers) {
        return Err(e);
    }
    if parts.status != http::StatusCode::OK {
        return Err(etcd_error(
            ErrorClass::General,
            format!("etcd {ep}: HTTP {}", parts.status),
        ));
    }
    Ok(body)
}

impl Conn {
    /// Starts the snapshot stream and waits for its first bytes.
    async fn snapshot(
        mut self,
        ep: &str,
        src: &EtcdSource,
        member_hash: Option<MemberHash>,
    ) -> Result<SnapshotStream> {
        let request = grpc_request(ep, "Snapshot", &[0, 0, 0, 0, 0])?;
        let response = match self.sender.send_request(request).await {
            Ok(r) => r,
            Err(e) => {
                // The request only says "canceled" when the connection died; the
                // connection's own error says why (a TLS alert, a reset).
                let why = match tokio::time::timeout(Duration::from_secs(2), self.connection).await
                {
                    Ok(Ok(Err(died))) => died,
                    _ => e,
                };
                return Err(broken(ep, self.asked_for_certificate, why));
            }
        };
        let mut s = SnapshotStream {
            endpoint: ep.to_string(),
            body: accepted(ep, response)?,
            buf: BytesMut::new(),
            pending: None,
            idle: src.stream_timeout,
            ended: false,
            member_hash,
        };
        s.pending = s.read_chunk().await?;
        if s.pending.is_none() {
            return Err(etcd_error(
                ErrorClass::Data,
                format!("etcd {ep}: the snapshot stream was empty"),
            ));
        }
        Ok(s)
    }
}

/// The error a `grpc-status` other than 0 reports, if there is one.
fn grpc_failure(ep: &str, headers: &http::HeaderMap) -> Option<Error> {
    let status = headers.get("grpc-status")?.to_str().unwrap_or("?");
    (status != "0").then(|| {
        let msg = headers
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        etcd_error(
            grpc_class(status),
            format!("etcd {ep}: gRPC status {status}: {msg}"),
        )
    })
}

/// gRPC status codes: 16 UNAUTHENTICATED and 7 PERMISSION_DENIED are refusals;
/// 14 UNAVAILABLE and 4 DEADLINE_EXCEEDED may pass.
fn grpc_class(status: &str) -> ErrorClass {
    match status {
        "7" | "16" => ErrorClass::Denied,
        "4" | "14" => ErrorClass::Temporary,
        _ => ErrorClass::General,
    }
}

impl SnapshotStream {
    /// The next bytes of the snapshot (the final SHA-256 included), or `None` at
    /// the end of a complete stream. A cut or stalled stream is an error.
    pub async fn next(&mut self) -> Result<Option<Bytes>> {
        if let Some(p) = self.pending.take() {
            return Ok(Some(p));
        }
        self.read_chunk().await
    }

    async fn read_chunk(&mut self) -> Result<Option<Bytes>> {
        loop {
            if let Some(blob) = self.take_message()? {
                if blob.is_empty() {
                    continue;
                }
                return Ok(Some(blob));
            }
            if self.ended {
                return Ok(None);
            }
            let ep = &self.endpoint;
            let frame = tokio::time::timeout(self.idle, self.body.frame())
                .await
                .map_err(|_| {
                    etcd_error(
                        ErrorClass::Temporary,
                        format!(
                            "etcd {ep}: the snapshot stream stalled for {}s",
                            self.idle.as_secs()
                        ),
                    )
                })?;
            let frame = match frame {
                None => {
                    return Err(etcd_error(
                        ErrorClass::Temporary,
                        format!("etcd {ep}: the snapshot stream was cut before it ended"),
                    ));
                }
                Some(f) => f.map_err(|e| {
                    etcd_error(
                        ErrorClass::Temporary,
                        format!("etcd {ep}: the snapshot stream broke: {e}"),
                    )
                })?,
            };
            if let Some(trailers) = frame.trailers_ref() {
                if let Some(e) = grpc_failure(ep, trailers) {
                    return Err(e);
                }
                if !trailers.contains_key("grpc-status") {
                    return Err(etcd_error(
                        ErrorClass::General,
                        format!("etcd {ep}: the stream ended without a gRPC status"),
                    ));
                }
                if !self.buf.is_empty() {
                    return Err(etcd_error(
                        ErrorClass::Data,
                        format!("etcd {ep}: a partial message at the end"),
                    ));
                }
                self.ended = true;
            } else if let Ok(data) = frame.into_data() {
                self.buf.extend_from_slice(&data);
            }
        }
    }

    /// Takes one whole gRPC message from the buffer and returns its blob.
    fn take_message(&mut self) -> Result<Option<Bytes>> {
        take_message(&mut self.buf)
    }
}
