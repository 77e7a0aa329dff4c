//! The first temporary credentials of a provider, asked for while the client is
//! built: a source that is set but gives nothing (an STS that refuses the
//! token, a container endpoint that refuses its token) fails the run before
//! any snapshot byte is read, with its class (77 refused, 78 misconfigured),
//! instead of on the first request. object_store's provider caches them and
//! renews them on its own before they expire, so every later request is signed
//! with what is current.

use std::time::Duration;

use object_store::aws::AmazonS3;

use super::credentials::{DEFAULT_IMDS, TRIED};
use crate::base::error::{Error, Result};

/// How long the default instance metadata address may take to answer when it
/// is only asked because nothing else was set (the AWS SDKs allow one second
/// per attempt).
const LAST_RESORT_WAIT: Duration = Duration::from_secs(3);

/// Fetches the first credentials of `store`'s provider. For the implicit
/// instance metadata (`last_resort`), no answer, or no role, means the run has
/// no credentials at all: a configuration error naming what was tried.
pub(super) async fn first_credentials(
    store: &AmazonS3,
    source: &str,
    last_resort: bool,
) -> Result<()> {
    let provider = store.credentials().clone();
    let fetch = provider.get_credential();
    if !last_resort {
        return fetch
            .await
            .map(drop)
            .map_err(|e| Error::remote(format!("getting S3 credentials from {source}"), e));
    }
    let why = match tokio::time::timeout(LAST_RESORT_WAIT, fetch).await {
        Ok(Ok(_)) => return Ok(()),
        Ok(Err(e)) => Error::remote("asking it", e).chain(),
        Err(_) => format!("no answer within {}s", LAST_RESORT_WAIT.as_secs()),
    };
    Err(Error::Config(format!(
        "no S3 credentials: {TRIED}; instance metadata at {DEFAULT_IMDS} gave none ({why}); \
         set one of them (in a pod on EC2, IMDSv2 needs a hop limit of 2; \
         AWS_EC2_METADATA_DISABLED=true skips it)"
    )))
}
