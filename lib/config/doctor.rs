//! Configuration of `doctor`: where the bucket is, as the Job's settings say.

use std::time::Duration;

use crate::base::error::{Error, Result};
use crate::base::settings::Inputs;
use crate::transport::remote::{Remote, redact_userinfo};

/// Configuration of `doctor`.
#[derive(Debug, Clone)]
pub struct DoctorConfig {
    /// The store checked.
    pub remote: Remote,
    /// Internal time budget of all checks but the cleanup.
    pub deadline: Duration,
    /// `AWS_ENDPOINT_URL_STS`: where the identity check asks GetCallerIdentity
    /// (http or https; by default AWS' regional STS endpoint, and none for a
    /// custom S3 endpoint).
    pub sts_endpoint: Option<String>,
}

impl DoctorConfig {
    /// Validates the inputs of `doctor`: those of the store, and the STS endpoint.
    pub fn from_inputs(i: &Inputs) -> Result<Self> {
        let sts_endpoint = match &i.aws_endpoint_url_sts {
            Some(raw) => {
                let url = url::Url::parse(raw.trim()).ok().filter(|u| {
                    matches!(u.scheme(), "http" | "https")
                        && u.host_str().is_some()
                        && u.username().is_empty()
                        && u.password().is_none()
                });
                if url.is_none() {
                    return Err(Error::Config(format!(
                        "AWS_ENDPOINT_URL_STS={:?} is not an http(s):// URL without credentials",
                        redact_userinfo(raw)
                    )));
                }
                Some(raw.trim().to_string())
            }
            None => None,
        };
        Ok(DoctorConfig {
            remote: Remote::from_inputs(i)?,
            deadline: super::deadline(i, Duration::from_secs(110))?,
            sts_endpoint,
        })
    }
}
