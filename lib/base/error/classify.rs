//! Which [`ErrorClass`] a failure is: typed first (I/O kinds, rustls, object_store's
//! `HttpError::kind()`), then the S3 `<Code>` and the HTTP status, and the text
//! only where nothing typed exists.

use std::error::Error as StdError;

use super::{ErrorClass, chain_text};

/// Derives the class and a short reason from an object_store error, from what is
/// typed first: its variant, then the source chain (I/O error kinds, the TLS
/// error, object_store's `HttpError::kind()`), then the S3 error code and HTTP
/// status the server answered. Text is matched only where nothing typed exists.
pub(super) fn classify(e: &object_store::Error) -> (ErrorClass, &'static str) {
    use object_store::Error as E;
    match e {
        E::NotFound { .. } => return (ErrorClass::NotFound, "not found"),
        E::PermissionDenied { .. } => return (ErrorClass::Denied, "access denied"),
        E::Unauthenticated { .. } => return (ErrorClass::Denied, "not authenticated"),
        E::Precondition { .. } | E::AlreadyExists { .. } => {
            return (
                ErrorClass::Temporary,
                "another writer changed or created the object first; nothing of theirs was overwritten",
            );
        }
        _ => {}
    }
    let mut http_kind = None;
    let mut source: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(found) = classify_typed(s) {
            return found;
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            // An io::Error's source() skips the error it wraps: look at it here.
            if let Some(found) = io.get_ref().and_then(|inner| classify_typed(inner)) {
                return found;
            }
        }
        if let Some(h) = s.downcast_ref::<object_store::client::HttpError>() {
            http_kind.get_or_insert(h.kind());
        }
        source = s.source();
    }
    let text = chain_text(e);
    if let Some(found) = sse_c_refusal(&text) {
        return found;
    }
    if text.contains(CARRIED_CHECKSUM) {
        return (
            ErrorClass::Config,
            "the server refused a request that carried x-amz-checksum-sha256: it may not \
             implement flexible checksums; unset CHECKSUM",
        );
    }
    if let Some(found) = s3_code(&text).and_then(classify_s3_code) {
        return found;
    }
    if let Some(found) = http_status(&text).and_then(classify_status) {
        return found;
    }
    use object_store::client::HttpErrorKind as K;
    match http_kind {
        Some(K::Timeout) => (ErrorClass::Temporary, "timed out, after retries"),
        // A refused certificate is a connect error too (on a listing, the TLS
        // error is not in the typed chain): no retry changes it.
        Some(K::Connect) if !plain_http_answer(&text) && !untrusted_certificate(&text) => (
            ErrorClass::Temporary,
            "cannot reach the endpoint, after retries",
        ),
        _ => classify_text(&text),
    }
}

/// The class of one typed error in a source chain, if its type says it.
pub(super) fn classify_typed(e: &(dyn StdError + 'static)) -> Option<(ErrorClass, &'static str)> {
    use tokio_rustls::rustls::Error as Tls;
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        return match io.kind() {
            std::io::ErrorKind::ConnectionRefused => {
                Some((ErrorClass::ConnectionRefused, "connection refused"))
            }
            std::io::ErrorKind::TimedOut => Some((ErrorClass::Temporary, "timed out")),
            _ => None,
        };
    }
    match e.downcast_ref::<Tls>()? {
        Tls::InvalidCertificate(_) => Some((
            ErrorClass::Denied,
            "the server's TLS certificate is not trusted (check CA_BUNDLE)",
        )),
        Tls::InvalidMessage(tokio_rustls::rustls::InvalidMessage::InvalidContentType) => Some((
            ErrorClass::Config,
            "the endpoint answered plain HTTP: set INSECURE=true or use http:// in ENDPOINT",
        )),
        _ => None,
    }
}

/// The S3 error code in a response body the error carries (`<Code>...</Code>`).
/// Or, from the streaming upload's errors, `status code: 400 CODE: message`.
pub(super) fn s3_code(text: &str) -> Option<&str> {
    if let Some(start) = text.find("<Code>").map(|i| i + "<Code>".len()) {
        let len = text[start..].find("</Code>")?;
        return Some(&text[start..start + len]);
    }
    let after = &text[text.find("status code: ")? + "status code: ".len()..];
    let code = after.get(4..)?.split(':').next()?;
    (!code.is_empty() && code.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(code)
}

/// The class of an S3 error code; `None` for codes that say nothing more than
/// their HTTP status.
pub(super) fn classify_s3_code(code: &str) -> Option<(ErrorClass, &'static str)> {
    Some(match code {
        "AccessDenied"
        | "SignatureDoesNotMatch"
        | "InvalidAccessKeyId"
        | "InvalidToken"
        | "ExpiredToken"
        | "TokenRefreshRequired"
        | "AllAccessDisabled"
        | "AccountProblem" => (
            ErrorClass::Denied,
            "access denied (check ACCESS_KEY_ID and SECRET_ACCESS_KEY)",
        ),
        "NoSuchBucket" => (ErrorClass::NotFound, "the bucket does not exist"),
        // Azure Blob Storage's codes.
        "AuthenticationFailed"
        | "AuthorizationFailure"
        | "AuthorizationPermissionMismatch"
        | "InsufficientAccountPermissions" => (
            ErrorClass::Denied,
            "access denied (check the AZURE_STORAGE_* credentials)",
        ),
        "ContainerNotFound" => (ErrorClass::NotFound, "the container does not exist"),
        "ServerBusy" | "OperationTimedOut" => (
            ErrorClass::Unavailable,
            "service unavailable or throttling, after retries",
        ),
        "SlowDown" | "ServiceUnavailable" | "RequestLimitExceeded" | "Throttling" => (
            ErrorClass::Unavailable,
            "service unavailable or throttling, after retries",
        ),
        "InternalError" => (ErrorClass::Unavailable, "server error, after retries"),
        "BadDigest" | "InvalidDigest" | "XAmzContentSHA256Mismatch" => (
            ErrorClass::Data,
            "the server found that the body does not match its checksum (the bytes changed on \
             the way, or the server computes CHECKSUM=sha256 differently)",
        ),
        "RequestTimeout" => (ErrorClass::Temporary, "the server gave up on the request"),
        _ => return None,
    })
}

/// Marks the error of a request with a flexible checksum that the server
/// refused as a bad request (400) or not implemented (501).
pub(crate) const CARRIED_CHECKSUM: &str = "the request carried CHECKSUM=sha256's header";

/// A read refused for its SSE-C key, as garage and AWS word it (both answer
/// 400 InvalidRequest; AWS answers a wrong key with 403, "access denied").
pub(super) fn sse_c_refusal(text: &str) -> Option<(ErrorClass, &'static str)> {
    let has = |needle: &str| text.contains(needle);
    if has("Object is encrypted") || has("stored using a form of Server Side Encryption") {
        Some((
            ErrorClass::Config,
            "the object is encrypted with a customer key (SSE-C): give that key in \
             SSE_CUSTOMER_KEY or SSE_CUSTOMER_KEY_FILE",
        ))
    } else if has("Invalid encryption key") || has("could not decrypt object metadata") {
        Some((
            ErrorClass::Denied,
            "the server refused the SSE-C key: it is not the key the object was stored with \
             (SSE_CUSTOMER_KEY / SSE_CUSTOMER_KEY_FILE)",
        ))
    } else if has("Trying to decrypt a plaintext object")
        || has("encryption parameters are not applicable")
    {
        Some((
            ErrorClass::Config,
            "the object is not encrypted with a customer key, but SSE_CUSTOMER_KEY (or its \
             file) is set: unset it to read this object",
        ))
    } else {
        None
    }
}

/// A request signed for another region than the bucket's: S3 and garage
/// name the right one in the answer (`<Region>`); the error says to set it.
/// (The region is not followed: one run, one region, as configured.)
pub(super) fn wrong_region(text: &str) -> Option<String> {
    let code = s3_code(text)?;
    if !matches!(
        code,
        "AuthorizationHeaderMalformed" | "PermanentRedirect" | "IllegalLocationConstraintException"
    ) {
        return None;
    }
    let start = text.find("<Region>")? + "<Region>".len();
    let len = text[start..].find("</Region>")?;
    let region = text[start..start + len].trim();
    (!region.is_empty() && region.bytes().all(|b| b.is_ascii_graphic())).then(|| {
        format!("the bucket is in region {region:?}, not the one requests were signed for ({code}): set REGION={region}")
    })
}

/// `RequestTimeTooSkewed`: this machine's clock is too far from the server's
/// (S3 allows 15 minutes). Retrying cannot help: one error, naming the skew
/// when the answer carries both times (`<RequestTime>`, `<ServerTime>`).
pub(super) fn clock_skew(text: &str) -> Option<String> {
    if !text.contains("RequestTimeTooSkewed") {
        return None;
    }
    let element = |tag: &str| {
        let start = text.find(&format!("<{tag}>"))? + tag.len() + 2;
        let len = text[start..].find(&format!("</{tag}>"))?;
        Some(text[start..start + len].trim().to_string())
    };
    let parse = |t: &str| -> Option<i64> {
        chrono::DateTime::parse_from_rfc3339(t)
            .map(|d| d.timestamp())
            .or_else(|_| {
                chrono::NaiveDateTime::parse_from_str(t, "%Y%m%dT%H%M%SZ")
                    .map(|d| d.and_utc().timestamp())
            })
            .ok()
    };
    let fix = "set the node's clock right (NTP) and run again";
    let (ours, theirs) = match (element("RequestTime"), element("ServerTime")) {
        (Some(r), Some(s)) => (r, s),
        _ => {
            return Some(format!(
                "this machine's clock differs from the server's by more than it allows \
                 (RequestTimeTooSkewed; S3 allows 15 minutes): {fix}"
            ));
        }
    };
    let shown = match (parse(&ours), parse(&theirs)) {
        (Some(a), Some(b)) => {
            let d = (a - b).unsigned_abs();
            let side = if a > b { "ahead of" } else { "behind" };
            format!(
                "this machine's clock is {}h{:02}m{:02}s {side} the server's",
                d / 3600,
                d / 60 % 60,
                d % 60
            )
        }
        _ => "this machine's clock differs from the server's".to_string(),
    };
    Some(format!(
        "{shown} (request time {ours}, server time {theirs}; RequestTimeTooSkewed, S3 allows \
         15 minutes): {fix}"
    ))
}

/// The HTTP status object_store reports ("status code: 503 ...").
pub(super) fn http_status(text: &str) -> Option<u16> {
    let start = text.find("status code: ")? + "status code: ".len();
    text.get(start..start + 3)?.parse().ok()
}

pub(super) fn classify_status(status: u16) -> Option<(ErrorClass, &'static str)> {
    match status {
        429 | 503 => Some((
            ErrorClass::Unavailable,
            "service unavailable or throttling, after retries",
        )),
        500..=599 => Some((ErrorClass::Unavailable, "server error, after retries")),
        401 | 403 => Some((ErrorClass::Denied, "access denied")),
        _ => None,
    }
}

/// Whether a TLS handshake was answered in plain HTTP (rustls reads the HTTP
/// status line as a record of an invalid content type): the endpoint needs
/// `http://` or `INSECURE=true`, which no retry changes.
pub(crate) fn plain_http_answer(text: &str) -> bool {
    text.contains("InvalidContentType")
}

/// Whether the text says the server's certificate was refused.
pub(super) fn untrusted_certificate(text: &str) -> bool {
    text.contains("invalid peer certificate")
        || text.contains("UnknownIssuer")
        || text.contains("InvalidCertificate")
}

/// The text part of [`classify`], for what carries no type: kept apart so it can
/// be tested on real messages.
pub(super) fn classify_text(text: &str) -> (ErrorClass, &'static str) {
    let has = |needle: &str| text.contains(needle);
    if plain_http_answer(text) {
        (
            ErrorClass::Config,
            "the endpoint answered plain HTTP: set INSECURE=true or use http:// in ENDPOINT",
        )
    } else if has("certificate") || has("UnknownIssuer") || has("InvalidCertificate") {
        (
            ErrorClass::Denied,
            "the server's TLS certificate is not trusted (check CA_BUNDLE)",
        )
    } else if has("SignatureDoesNotMatch") || has("InvalidAccessKeyId") || has("AccessDenied") {
        (
            ErrorClass::Denied,
            "access denied (check ACCESS_KEY_ID and SECRET_ACCESS_KEY)",
        )
    } else if has("NoSuchBucket") {
        (ErrorClass::NotFound, "the bucket does not exist")
    } else if has("SlowDown") || has("status code: 503") || has("status code: 429") {
        (
            ErrorClass::Unavailable,
            "service unavailable or throttling, after retries",
        )
    } else if has("status code: 5") || has("InternalError") {
        (ErrorClass::Unavailable, "server error, after retries")
    } else if has("Connection refused") || has("connection refused") {
        (ErrorClass::ConnectionRefused, "connection refused")
    } else if has("timed out") || has("Timeout") || has("timeout") {
        (ErrorClass::Temporary, "timed out, after retries")
    } else if has("dns error") || has("error trying to connect") || has("connection") {
        (
            ErrorClass::Temporary,
            "cannot reach the endpoint, after retries",
        )
    } else {
        (ErrorClass::General, "request failed")
    }
}
