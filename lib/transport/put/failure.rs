//! A failed request attempt (`Failure`): whether another could succeed, and
//! the object_store error it maps to, from the transport error or the S3 error
//! document.

use object_store::aws::AwsCredential;

/// object_store's signer panics on a key id or token that cannot be a header
/// value; ours are checked when configured (`remote::header_safe`), but a
/// provider's come from a server: refuse them here, without showing them.
pub(super) fn usable(credential: &AwsCredential) -> Result<(), Failure> {
    let visible = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic());
    if visible(&credential.key_id) && credential.token.as_deref().is_none_or(visible) {
        return Ok(());
    }
    Err(Failure::local(
        "the credential provider gave a key id or session token that cannot be sent in a header"
            .to_string(),
    ))
}

/// A failed attempt, and whether another could succeed.
pub(super) struct Failure {
    pub(super) retryable: bool,
    pub(super) error: object_store::Error,
}

impl Failure {
    /// A request that could not be made; another try would fail the same way.
    pub(super) fn local(reason: String) -> Failure {
        Failure {
            retryable: false,
            error: object_store::Error::Generic {
                store: "S3",
                source: reason.into(),
            },
        }
    }

    pub(super) fn transport(e: reqwest::Error) -> Failure {
        // TLS spoken to a plain-HTTP endpoint fails the same way every time.
        let retryable = !crate::base::error::plain_http_answer(&crate::base::error::chain_text(&e));
        Failure {
            retryable,
            error: object_store::Error::Generic {
                store: "S3",
                source: Box::new(e.without_url()),
            },
        }
    }

    /// The connection made no progress for the stall limit: another try may.
    pub(super) fn stalled(stalled: crate::transport::stall::Stalled) -> Failure {
        Failure {
            retryable: true,
            error: object_store::Error::Generic {
                store: "S3",
                source: Box::new(stalled),
            },
        }
    }

    pub(super) fn from_response(status: reqwest::StatusCode, body: &str, path: &str) -> Failure {
        let code = xml_text(body, "Code").unwrap_or_default();
        let message = xml_text(body, "Message").unwrap_or_default();
        // A skewed clock's answer carries both times, which the error names.
        let times: String = ["RequestTime", "ServerTime"]
            .iter()
            .filter(|_| code == "RequestTimeTooSkewed")
            .chain(["Region"].iter().filter(|_| {
                status.as_u16() == 301
                    || matches!(
                        code.as_str(),
                        "AuthorizationHeaderMalformed" | "PermanentRedirect"
                    )
            }))
            .filter_map(|tag| xml_text(body, tag).map(|v| format!(" <{tag}>{v}</{tag}>")))
            .collect();
        let source: Box<dyn std::error::Error + Send + Sync> =
            format!("status code: {} {code}: {message}{times}", status.as_u16()).into();
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
pub(super) fn xml_text(body: &str, tag: &str) -> Option<String> {
    let start = body.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = start + body[start..].find(&format!("</{tag}>"))?;
    Some(body[start..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provider_credential_that_cannot_be_a_header_is_refused_unshown() {
        let credential = |key_id: &str, token: Option<&str>| AwsCredential {
            key_id: key_id.to_string(),
            secret_key: "secret".to_string(),
            token: token.map(str::to_string),
        };
        assert!(usable(&credential("ASIAEXAMPLE", Some("FwoGZXIvYXdz+/=="))).is_ok());
        assert!(usable(&credential("ASIAEXAMPLE", None)).is_ok());
        for bad in [
            credential("ASIAEXAMPLE", Some("token\n")),
            credential("ASIA EXAMPLE", None),
            credential("", None),
        ] {
            let Err(f) = usable(&bad) else {
                panic!("accepted")
            };
            assert!(!f.retryable);
            assert!(!f.error.to_string().contains("token\n"), "{}", f.error);
        }
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
