//! The one public error type, its classes, and the class → exit-code table.
//!
//! Every failure the library reports is an [`Error`]. Each error knows its
//! [`ErrorClass`], and [`ErrorClass::exit_code`] is the only place where classes
//! become process exit codes (the sysexits-style numbers s3cmd used, which
//! operators' scripts already test; see the README's exit-code table).

use std::error::Error as StdError;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

mod classify;

pub(crate) use classify::{CARRIED_CHECKSUM, plain_http_answer};
use classify::{classify, clock_skew, wrong_region};

/// Why the process was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// SIGINT (Ctrl-C): exit code 130.
    Interrupt,
    /// SIGTERM (Kubernetes' Job deadline or pod deletion): exit code 143.
    Terminate,
}

/// What kind of failure an [`Error`] is; decides the exit code and whether a retry
/// by the Job could help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorClass {
    /// Anything not covered below.
    General,
    /// The object (or its bucket) does not exist.
    NotFound,
    /// The service answered 503/SlowDown or 5xx until the retries ran out.
    Unavailable,
    /// A bad command-line flag.
    Usage,
    /// Corrupt, empty, truncated or mismatching snapshot or checksum.
    Data,
    /// Reading or writing a local file failed.
    LocalIo,
    /// Timeouts or an exceeded deadline: trying again later may work.
    Temporary,
    /// Credentials refused, or the server's certificate is not trusted.
    Denied,
    /// A missing or invalid setting (environment variable or file).
    Config,
    /// The endpoint refused the TCP connection.
    ConnectionRefused,
    /// Stopped by a signal before finishing.
    Cancelled(StopReason),
    /// A defect in snapjob itself (a caught panic): never a user's mistake.
    Internal,
}

impl ErrorClass {
    /// The process exit code for this class (docs/CONTRACT.md's table).
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorClass::General => 1,
            ErrorClass::NotFound => 12,
            ErrorClass::Unavailable => 15,
            ErrorClass::Usage => 64,
            ErrorClass::Data => 65,
            ErrorClass::LocalIo => 74,
            ErrorClass::Temporary => 75,
            ErrorClass::Denied => 77,
            ErrorClass::Config => 78,
            ErrorClass::Internal => 70,
            ErrorClass::ConnectionRefused => 111,
            ErrorClass::Cancelled(StopReason::Interrupt) => 130,
            ErrorClass::Cancelled(StopReason::Terminate) => 143,
        }
    }
}

/// The error every library call returns. Its `Display` is one line that names the
/// variable, file or object at fault; [`Error::chain`] adds the causes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is missing or invalid; the message names the variable.
    #[error("{0}")]
    Config(String),
    /// A command-line flag is wrong.
    #[error("{0}")]
    Usage(String),
    /// The snapshot or the object's bytes are not what they must be.
    #[error("{0}")]
    Data(String),
    /// A local file could not be read or written.
    #[error("{path}: {action}")]
    LocalIo {
        /// The file or directory.
        path: PathBuf,
        /// What was being done, e.g. "cannot open snapshot file".
        action: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The object store failed; `class` was derived from the response.
    #[error("{what}: {reason}")]
    Remote {
        /// The operation and object, e.g. "upload of s3://b/k".
        what: String,
        /// A short human reason ("access denied", "connection refused", ...).
        reason: String,
        /// The exit-code class.
        class: ErrorClass,
        /// The store's error, with the HTTP details.
        #[source]
        source: object_store::Error,
    },
    /// The object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The store refused what was asked, found after other work went on (a
    /// deletion retention chose), or a key we hold does not open what we were
    /// given (an encrypted backup none of the identities can decrypt): exit 77.
    #[error("{0}")]
    Denied(String),
    /// Taking a snapshot from etcd failed; `class` says how.
    #[error("{message}")]
    Etcd {
        /// What happened, naming the endpoint.
        message: String,
        /// The exit-code class.
        class: ErrorClass,
    },
    /// The operation's internal deadline ran out.
    #[error("deadline of {}s exceeded while {what} (set DEADLINE to change it)", .limit.as_secs())]
    Deadline {
        /// What was in progress.
        what: String,
        /// The configured deadline.
        limit: Duration,
    },
    /// A signal asked the process to stop.
    #[error("stopped by {0} before finishing")]
    Cancelled(StopReason),
    /// Anything else, with context.
    #[error("{0}")]
    Other(String),
    /// A defect in snapjob (a panic, caught by the binary): exit 70.
    #[error("internal error (a bug in snapjob, please report it): {0}")]
    Internal(String),
    /// A failure after which something of ours remains on the server (an upload
    /// that could not be aborted): the message says what; the class is the
    /// failure's own.
    #[error("{error}; {left}")]
    LeftBehind {
        /// The failure.
        error: Box<Error>,
        /// What remains, e.g. the multipart upload's id and key.
        left: String,
    },
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The class of this error (see [`ErrorClass::exit_code`]).
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Config(_) => ErrorClass::Config,
            Error::Usage(_) => ErrorClass::Usage,
            Error::Data(_) => ErrorClass::Data,
            Error::LocalIo { .. } => ErrorClass::LocalIo,
            Error::Remote { class, .. } => *class,
            Error::NotFound(_) => ErrorClass::NotFound,
            Error::Denied(_) => ErrorClass::Denied,
            Error::Etcd { class, .. } => *class,
            Error::Deadline { .. } => ErrorClass::Temporary,
            Error::Cancelled(reason) => ErrorClass::Cancelled(*reason),
            Error::Other(_) => ErrorClass::General,
            Error::Internal(_) => ErrorClass::Internal,
            Error::LeftBehind { error, .. } => error.class(),
        }
    }

    /// Shorthand for the exit code of this error's class.
    pub fn exit_code(&self) -> u8 {
        self.class().exit_code()
    }

    /// A local I/O error on `path` while doing `action`.
    pub fn io(path: impl Into<PathBuf>, action: impl Into<String>, source: std::io::Error) -> Self {
        Error::LocalIo {
            path: path.into(),
            action: action.into(),
            source,
        }
    }

    /// Wraps an object-store error for operation `what`, classifying it.
    pub fn remote(what: impl Into<String>, source: object_store::Error) -> Self {
        let text = chain_text(&source);
        let (class, reason) = match clock_skew(&text).or_else(|| wrong_region(&text)) {
            Some(why) => (ErrorClass::Config, why),
            None => {
                let (class, reason) = classify(&source);
                (class, reason.to_string())
            }
        };
        Error::Remote {
            what: what.into(),
            reason,
            class,
            source,
        }
    }

    /// The whole chain on one line: `message: cause: cause`, with repeated texts
    /// dropped (object_store repeats its sources inside its own messages).
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut source = self.source();
        while let Some(e) = source {
            let text = e.to_string();
            if !text.is_empty() && !out.contains(&text) {
                out.push_str(": ");
                out.push_str(&text);
            }
            source = e.source();
        }
        out.replace(['\n', '\r'], " ")
    }

    /// Names where a data error was found (`"<source>: <error>"`); other errors
    /// pass through unchanged.
    pub fn about(self, source: impl fmt::Display) -> Error {
        match self {
            Error::Data(m) => Error::Data(format!("{source}: {m}")),
            other => other,
        }
    }

    /// This error, saying that `left` (when some) remains on the server.
    pub fn leaving(self, left: Option<String>) -> Error {
        match left {
            Some(left) => Error::LeftBehind {
                error: Box::new(self),
                left,
            },
            None => self,
        }
    }

    /// True when the store said the bucket itself does not exist.
    pub fn is_missing_bucket(&self) -> bool {
        matches!(self, Error::Remote { source, .. } if chain_text(source).contains("NoSuchBucket"))
    }
}

/// Every message in the source chain of `e`, joined.
pub(crate) fn chain_text(e: &(dyn StdError + 'static)) -> String {
    chain_joined(e, " | ")
}

/// Every message in the source chain of `e`, joined by `sep` (`": "` for a
/// one-line error text).
pub(crate) fn chain_joined(e: &(dyn StdError + 'static), sep: &str) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(sep);
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopReason::Interrupt => "SIGINT",
            StopReason::Terminate => "SIGTERM",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::classify::{classify_text, http_status, s3_code};
    use super::*;

    #[test]
    fn clock_skew_is_one_configuration_error_naming_the_skew() {
        let body = "<Error><Code>RequestTimeTooSkewed</Code><Message>The difference between \
                    the request time and the current time is too large.</Message>\
                    <RequestTime>20260101T000000Z</RequestTime>\
                    <ServerTime>2026-01-01T01:20:05Z</ServerTime></Error>";
        let e = Error::remote(
            "upload of s3://b/k",
            object_store::Error::PermissionDenied {
                path: "k".into(),
                source: format!("Client error with status 403: {body}").into(),
            },
        );
        assert_eq!(e.exit_code(), 78);
        let text = e.to_string();
        assert!(text.contains("1h20m05s behind the server's"), "{text}");
        assert!(text.contains("NTP"), "{text}");
        let bare = Error::remote(
            "head",
            object_store::Error::Generic {
                store: "S3",
                source: "status code: 403 RequestTimeTooSkewed: too large".into(),
            },
        );
        assert_eq!(bare.exit_code(), 78);
        assert!(bare.to_string().contains("15 minutes"), "{bare}");
    }

    #[test]
    fn exit_codes_follow_the_contract_table() {
        let table = [
            (ErrorClass::General, 1),
            (ErrorClass::NotFound, 12),
            (ErrorClass::Unavailable, 15),
            (ErrorClass::Usage, 64),
            (ErrorClass::Data, 65),
            (ErrorClass::LocalIo, 74),
            (ErrorClass::Temporary, 75),
            (ErrorClass::Denied, 77),
            (ErrorClass::Config, 78),
            (ErrorClass::Internal, 70),
            (ErrorClass::ConnectionRefused, 111),
            (ErrorClass::Cancelled(StopReason::Interrupt), 130),
            (ErrorClass::Cancelled(StopReason::Terminate), 143),
        ];
        for (class, code) in table {
            assert_eq!(class.exit_code(), code, "{class:?}");
        }
    }

    #[test]
    fn variants_map_to_their_classes() {
        assert_eq!(Error::Config("x".into()).exit_code(), 78);
        assert_eq!(Error::Usage("x".into()).exit_code(), 64);
        assert_eq!(Error::Data("x".into()).exit_code(), 65);
        assert_eq!(Error::NotFound("x".into()).exit_code(), 12);
        let io = Error::io("/f", "read", std::io::Error::other("boom"));
        assert_eq!(io.exit_code(), 74);
        let deadline = Error::Deadline {
            what: "uploading".into(),
            limit: Duration::from_secs(3),
        };
        assert_eq!(deadline.exit_code(), 75);
        assert_eq!(Error::Cancelled(StopReason::Terminate).exit_code(), 143);
    }

    #[test]
    fn object_store_variants_are_classified() {
        let nf = object_store::Error::NotFound {
            path: "k".into(),
            source: "404".into(),
        };
        assert_eq!(Error::remote("get", nf).exit_code(), 12);
        let denied = object_store::Error::PermissionDenied {
            path: "k".into(),
            source: "403".into(),
        };
        assert_eq!(Error::remote("put", denied).exit_code(), 77);
        let refused = object_store::Error::Generic {
            store: "S3",
            source: Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        };
        assert_eq!(Error::remote("put", refused).exit_code(), 111);
    }

    #[test]
    fn texts_from_the_http_layer_are_classified() {
        let cases = [
            (
                "Server returned non-2xx status code: 503 Service Unavailable: <Code>SlowDown</Code>",
                15,
            ),
            (
                "Server returned non-2xx status code: 500 Internal Server Error",
                15,
            ),
            ("<Code>NoSuchBucket</Code>", 12),
            ("<Code>SignatureDoesNotMatch</Code>", 77),
            ("invalid peer certificate: UnknownIssuer", 77),
            (
                "error sending request: client error (Connect): received corrupt message of type InvalidContentType",
                78,
            ),
            ("operation timed out", 75),
            ("dns error: failed to lookup address information", 75),
            ("something else entirely", 1),
        ];
        for (text, code) in cases {
            assert_eq!(classify_text(text).0.exit_code(), code, "{text}");
        }
    }

    #[test]
    fn s3_codes_and_statuses_are_read_from_the_answer() {
        let body = "Server returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\"?>\
                    <Error><Code>ExpiredToken</Code><Message>x</Message></Error>";
        assert_eq!(s3_code(body), Some("ExpiredToken"));
        assert_eq!(http_status(body), Some(403));
        let e = object_store::Error::Generic {
            store: "S3",
            source: body.into(),
        };
        assert_eq!(Error::remote("put", e).exit_code(), 77);
        // A code that says no more than its status falls back to the status.
        let e = object_store::Error::Generic {
            store: "S3",
            source: "status code: 502 Bad Gateway: <Code>BadGateway</Code>".into(),
        };
        assert_eq!(Error::remote("put", e).exit_code(), 15);
        // Azure Blob Storage's codes, in the same <Code> element.
        for (code, want) in [
            ("AuthenticationFailed", 77),
            ("AuthorizationPermissionMismatch", 77),
            ("ContainerNotFound", 12),
            ("ServerBusy", 15),
        ] {
            let e = object_store::Error::Generic {
                store: "MicrosoftAzure",
                source: format!("<Error><Code>{code}</Code></Error>").into(),
            };
            assert_eq!(Error::remote("put", e).exit_code(), want, "{code}");
        }
        assert_eq!(s3_code("no code here <Code>open"), None);
        assert_eq!(http_status("status code: 5"), None);
    }

    #[test]
    fn typed_tls_errors_are_classified_by_their_type() {
        use tokio_rustls::rustls;
        let untrusted = std::io::Error::other(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ));
        let e = object_store::Error::Generic {
            store: "S3",
            source: Box::new(untrusted),
        };
        assert_eq!(Error::remote("put", e).exit_code(), 77);
        let plain = std::io::Error::other(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType,
        ));
        let e = object_store::Error::Generic {
            store: "S3",
            source: Box::new(plain),
        };
        assert_eq!(Error::remote("put", e).exit_code(), 78);
    }

    #[test]
    fn what_is_left_behind_is_said_and_keeps_the_class() {
        let e = Error::Cancelled(StopReason::Terminate).leaving(Some(
            "multipart upload u-1 of s3://b/k could not be aborted".into(),
        ));
        assert_eq!(e.exit_code(), 143);
        assert_eq!(
            e.chain(),
            "stopped by SIGTERM before finishing; multipart upload u-1 of s3://b/k could not be aborted"
        );
        assert_eq!(Error::Data("x".into()).leaving(None).to_string(), "x");
    }

    #[test]
    fn chain_is_one_line_without_repeats() {
        let e = Error::io(
            "/backup/snapshot.db.gz",
            "cannot open snapshot file",
            std::io::Error::new(std::io::ErrorKind::NotFound, "No such file\nor directory"),
        );
        let line = e.chain();
        assert_eq!(
            line,
            "/backup/snapshot.db.gz: cannot open snapshot file: No such file or directory"
        );
    }
}
