//! An unsigned HEAD of the bucket for `doctor`: whether TLS to the endpoint is
//! trusted, the server's clock (`Date`) and the region it names for the bucket
//! (`x-amz-bucket-region`). Any status will do (403 without a signature is
//! expected): only the connection and the headers count.

use super::Target;

/// What the server's answer to an unsigned HEAD of the bucket said.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The scheme asked (`http` or `https`).
    pub scheme: String,
    /// The `Date` header, seconds since the epoch.
    pub date: Option<i64>,
    /// The `x-amz-bucket-region` header.
    pub bucket_region: Option<String>,
}

/// Why the probe failed: TLS (the certificate is not trusted) or anything else.
#[derive(Debug, Clone)]
pub enum ProbeFailure {
    /// The server's certificate was refused.
    Tls(String),
    /// Not reached.
    Unreachable(String),
}

impl Target {
    /// One unsigned HEAD of the bucket URL, tried once.
    pub(crate) async fn probe(&self) -> std::result::Result<Probe, ProbeFailure> {
        let answer = self.client.head(self.bucket_url.clone()).send().await;
        let response = answer.map_err(|e| {
            let text = crate::base::error::chain_joined(&e, ": ");
            let lower = text.to_ascii_lowercase();
            if lower.contains("certificate")
                || lower.contains("unknownissuer")
                || lower.contains("tls")
            {
                ProbeFailure::Tls(text)
            } else {
                ProbeFailure::Unreachable(text)
            }
        })?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Ok(Probe {
            scheme: self.bucket_url.scheme().to_string(),
            date: header("date").and_then(|d| {
                chrono::DateTime::parse_from_rfc2822(&d)
                    .ok()
                    .map(|t| t.timestamp())
            }),
            bucket_region: header("x-amz-bucket-region"),
        })
    }
}

impl Target {
    /// The region requests are signed for.
    pub(crate) fn region(&self) -> &str {
        &self.region
    }
}
