//! Where the S3 credentials come from: static keys, or object_store's provider
//! for web identity, container credentials or instance metadata.

use object_store::aws::AmazonS3ConfigKey;

use super::checks::{header_safe, redact_userinfo};
use crate::base::error::{Error, Result};
use crate::base::settings::{Inputs, Secret};

/// The source of the S3 credentials. Either way object_store's credential
/// provider hands them out, per request: temporary ones are renewed before they
/// expire, also in the middle of a long upload.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// `ACCESS_KEY_ID`/`SECRET_ACCESS_KEY` (or the `AWS_*` names), with
    /// `AWS_SESSION_TOKEN` for temporary ones.
    Static {
        /// Access key id.
        access_key_id: Secret,
        /// Secret access key.
        secret_access_key: Secret,
        /// Session token for temporary credentials.
        session_token: Option<Secret>,
    },
    /// No static keys: object_store's own provider for these settings (web
    /// identity, container credentials or instance metadata). None of the
    /// values is a secret (a token is read from its file by the provider).
    Provider {
        /// What the provider is, for the log.
        source: String,
        /// object_store's settings for it.
        config: Vec<(AmazonS3ConfigKey, String)>,
    },
}

pub(super) fn access_key_var(inputs: &Inputs) -> &'static str {
    if inputs.access_key_id.is_some() {
        "ACCESS_KEY_ID"
    } else {
        "AWS_ACCESS_KEY_ID"
    }
}

/// The credentials the settings name: static keys when either is given (then
/// both must be), else object_store's provider for web identity
/// (`AWS_WEB_IDENTITY_TOKEN_FILE` with `AWS_ROLE_ARN`), container credentials
/// (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`, or `..._FULL_URI` with
/// `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`) or instance metadata
/// (`AWS_METADATA_ENDPOINT`). With none of these it is a configuration error
/// naming `ACCESS_KEY_ID`, as when no other source existed.
pub(super) fn credentials(inputs: &Inputs) -> Result<Credentials> {
    let access_key_id = inputs
        .access_key_id
        .clone()
        .or_else(|| inputs.aws_access_key_id.clone());
    let secret_access_key = inputs
        .secret_access_key
        .clone()
        .or_else(|| inputs.aws_secret_access_key.clone());
    if access_key_id.is_some() || secret_access_key.is_some() {
        let access_key_id = access_key_id.ok_or_else(|| {
            Error::Config("ACCESS_KEY_ID is not set (nor AWS_ACCESS_KEY_ID)".into())
        })?;
        let secret_access_key = secret_access_key.ok_or_else(|| {
            Error::Config("SECRET_ACCESS_KEY is not set (nor AWS_SECRET_ACCESS_KEY)".into())
        })?;
        header_safe(access_key_id.expose(), access_key_var(inputs), true)?;
        header_safe(
            secret_access_key.expose(),
            if inputs.secret_access_key.is_some() {
                "SECRET_ACCESS_KEY"
            } else {
                "AWS_SECRET_ACCESS_KEY"
            },
            true,
        )?;
        if let Some(token) = &inputs.aws_session_token {
            header_safe(token.expose(), "AWS_SESSION_TOKEN", true)?;
        }
        return Ok(Credentials::Static {
            access_key_id,
            secret_access_key,
            session_token: inputs.aws_session_token.clone(),
        });
    }
    use AmazonS3ConfigKey as Key;
    let missing = |var: &str, with: &str| {
        Error::Config(format!(
            "{var} is not set but {with} is; give both (or ACCESS_KEY_ID/SECRET_ACCESS_KEY)"
        ))
    };
    let (source, mut config) = match (
        &inputs.aws_web_identity_token_file,
        &inputs.aws_role_arn,
        &inputs.aws_container_credentials_relative_uri,
        &inputs.aws_container_credentials_full_uri,
        &inputs.aws_metadata_endpoint,
    ) {
        (Some(file), Some(role), ..) => {
            // The provider reads the token at every renewal; an unreadable file
            // is a mistake of the Job's spec, found here rather than mid-upload.
            std::fs::metadata(file).map_err(|e| {
                Error::Config(format!(
                    "AWS_WEB_IDENTITY_TOKEN_FILE={file:?}: cannot read it: {e}"
                ))
            })?;
            let mut config = vec![
                (Key::WebIdentityTokenFile, file.clone()),
                (Key::RoleArn, role.clone()),
            ];
            if let Some(name) = &inputs.aws_role_session_name {
                config.push((Key::RoleSessionName, name.clone()));
            }
            if let Some(sts) = &inputs.aws_endpoint_url_sts {
                // object_store asks STS over HTTPS only.
                let url = url::Url::parse(sts).ok().filter(|u| u.scheme() == "https");
                if url.is_none() {
                    let shown = redact_userinfo(sts);
                    return Err(Error::Config(format!(
                        "AWS_ENDPOINT_URL_STS={shown:?} is not an https:// URL"
                    )));
                }
                config.push((Key::StsEndpoint, sts.clone()));
            }
            (format!("web identity (role {role})"), config)
        }
        (Some(_), None, ..) => return Err(missing("AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")),
        (None, Some(_), ..) => return Err(missing("AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN")),
        (None, None, Some(uri), ..) => (
            "container credentials (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI)".to_string(),
            vec![(Key::ContainerCredentialsRelativeUri, uri.clone())],
        ),
        (None, None, None, Some(uri), _) => {
            let file = inputs
                .aws_container_authorization_token_file
                .as_ref()
                .ok_or_else(|| {
                    missing(
                        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                    )
                })?;
            (
                "EKS Pod Identity (AWS_CONTAINER_CREDENTIALS_FULL_URI)".to_string(),
                vec![
                    (Key::ContainerCredentialsFullUri, uri.clone()),
                    (Key::ContainerAuthorizationTokenFile, file.clone()),
                ],
            )
        }
        (None, None, None, None, Some(endpoint)) => (
            format!("instance metadata ({endpoint})"),
            vec![(Key::MetadataEndpoint, endpoint.clone())],
        ),
        (None, None, None, None, None) => {
            return Err(Error::Config(
                "ACCESS_KEY_ID is not set (nor AWS_ACCESS_KEY_ID, nor another credential \
                 source: AWS_WEB_IDENTITY_TOKEN_FILE, AWS_CONTAINER_CREDENTIALS_*, \
                 AWS_METADATA_ENDPOINT)"
                    .into(),
            ));
        }
    };
    config.retain(|(_, v)| !v.is_empty());
    Ok(Credentials::Provider { source, config })
}
