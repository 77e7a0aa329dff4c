//! Where the S3 credentials come from: static keys, a shared-file profile, or
//! object_store's provider for web identity, container credentials or instance
//! metadata.

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
    /// Static keys of a profile of the shared files (`AWS_PROFILE`).
    Profile(super::profile::ProfileKeys),
    /// No static keys: object_store's own provider for these settings (web
    /// identity, container credentials or instance metadata). None of the
    /// values is a secret (a token is read from its file by the provider).
    Provider {
        /// What the provider is, for the log.
        source: String,
        /// object_store's settings for it.
        config: Vec<(AmazonS3ConfigKey, String)>,
        /// Instance metadata at its default address, because nothing else was
        /// set: when it does not answer at once, the run has no credentials at
        /// all (78, naming what was tried) rather than a network failure.
        last_resort: bool,
    },
}

impl Credentials {
    /// Which source this is, for logs and `doctor` (never a secret).
    pub fn source(&self) -> String {
        match self {
            Credentials::Static { session_token, .. } => match session_token {
                Some(_) => "static keys with a session token".to_string(),
                None => "static keys".to_string(),
            },
            Credentials::Profile(keys) => keys.source.clone(),
            Credentials::Provider { source, .. } => source.clone(),
        }
    }
}

pub(super) fn access_key_var(inputs: &Inputs) -> &'static str {
    if inputs.access_key_id.is_some() {
        "ACCESS_KEY_ID"
    } else {
        "AWS_ACCESS_KEY_ID"
    }
}

/// The credentials the settings name, the first of the chain the AWS SDKs
/// use: static keys when either is given (then both must be); a profile of the
/// shared files; object_store's provider for web identity
/// (`AWS_WEB_IDENTITY_TOKEN_FILE` with `AWS_ROLE_ARN`), container credentials
/// (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`, or `..._FULL_URI` with
/// `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`) or instance metadata (IMDSv2,
/// unless `AWS_EC2_METADATA_DISABLED=true`). A source that is set but broken
/// (half given, a file unreadable) is a configuration error naming it, never
/// skipped for the next.
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
    if let Some(files) = profile_files(inputs) {
        let keys = super::profile::load(&files)?;
        let var = format!("AWS_PROFILE={}", files.profile);
        for (what, value) in [
            ("aws_access_key_id", Some(&keys.access_key_id)),
            ("aws_secret_access_key", Some(&keys.secret_access_key)),
            ("aws_session_token", keys.session_token.as_ref()),
        ] {
            if let Some(v) = value {
                header_safe(v.expose(), &format!("{var}: {what}"), true)?;
            }
        }
        return Ok(Credentials::Profile(keys));
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
    ) {
        (Some(file), Some(role), ..) => {
            // The provider reads the token at every renewal; an unreadable file
            // is a mistake of the Job's spec, found here rather than mid-upload.
            readable(file, "AWS_WEB_IDENTITY_TOKEN_FILE")?;
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
        (None, None, Some(uri), _) => (
            "container credentials (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI)".to_string(),
            vec![(Key::ContainerCredentialsRelativeUri, uri.clone())],
        ),
        (None, None, None, Some(uri)) => {
            let file = inputs
                .aws_container_authorization_token_file
                .as_ref()
                .ok_or_else(|| {
                    missing(
                        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                    )
                })?;
            http_url(uri, "AWS_CONTAINER_CREDENTIALS_FULL_URI")?;
            readable(file, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")?;
            (
                format!("container credentials (AWS_CONTAINER_CREDENTIALS_FULL_URI={uri})"),
                vec![
                    (Key::ContainerCredentialsFullUri, uri.clone()),
                    (Key::ContainerAuthorizationTokenFile, file.clone()),
                ],
            )
        }
        (None, None, None, None) => return instance_metadata(inputs),
    };
    config.retain(|(_, v)| !v.is_empty());
    Ok(Credentials::Provider {
        source,
        config,
        last_resort: false,
    })
}

/// The shared files, when any of `AWS_PROFILE`, `AWS_SHARED_CREDENTIALS_FILE`
/// or `AWS_CONFIG_FILE` is set (a Job has no `~/.aws` of its own, so the
/// default files alone do not make a source).
fn profile_files(inputs: &Inputs) -> Option<super::profile::ProfileFiles> {
    if inputs.aws_profile.is_none()
        && inputs.aws_shared_credentials_file.is_none()
        && inputs.aws_config_file.is_none()
    {
        return None;
    }
    let file = |explicit: &Option<String>, var: &'static str, default: &str| match explicit {
        Some(path) => Some((std::path::PathBuf::from(path), Some(var))),
        None => inputs
            .home
            .as_ref()
            .map(|home| (std::path::Path::new(home).join(".aws").join(default), None)),
    };
    Some(super::profile::ProfileFiles {
        profile: inputs
            .aws_profile
            .clone()
            .unwrap_or_else(|| "default".to_string()),
        credentials: file(
            &inputs.aws_shared_credentials_file,
            "AWS_SHARED_CREDENTIALS_FILE",
            "credentials",
        ),
        config: file(&inputs.aws_config_file, "AWS_CONFIG_FILE", "config"),
    })
}

/// The last source: EC2 instance metadata (IMDSv2), unless
/// `AWS_EC2_METADATA_DISABLED=true`. Without an endpoint given it is the
/// link-local default, tried briefly at connect time
/// ([`Credentials::Provider::last_resort`]).
fn instance_metadata(inputs: &Inputs) -> Result<Credentials> {
    let disabled = super::checks::parse_bool(
        inputs.aws_ec2_metadata_disabled.as_deref(),
        "AWS_EC2_METADATA_DISABLED",
    )?;
    if disabled {
        return Err(Error::Config(format!(
            "no S3 credentials: {TRIED}; instance metadata is off (AWS_EC2_METADATA_DISABLED=true)"
        )));
    }
    let given = [
        (
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            &inputs.aws_ec2_metadata_service_endpoint,
        ),
        ("AWS_METADATA_ENDPOINT", &inputs.aws_metadata_endpoint),
    ]
    .into_iter()
    .find_map(|(var, v)| v.as_ref().map(|v| (var, v)));
    let endpoint = match given {
        Some((var, v)) => {
            http_url(v, var)?;
            v.trim_end_matches('/').to_string()
        }
        None => DEFAULT_IMDS.to_string(),
    };
    Ok(Credentials::Provider {
        source: format!("instance metadata (IMDSv2 at {endpoint})"),
        config: vec![(AmazonS3ConfigKey::MetadataEndpoint, endpoint)],
        last_resort: given.is_none(),
    })
}

/// EC2's instance metadata service.
pub(crate) const DEFAULT_IMDS: &str = "http://169.254.169.254";

/// The sources before instance metadata, for the error when none yields.
pub(crate) const TRIED: &str = "tried ACCESS_KEY_ID/SECRET_ACCESS_KEY (and AWS_ACCESS_KEY_ID/\
     AWS_SECRET_ACCESS_KEY), AWS_PROFILE/AWS_SHARED_CREDENTIALS_FILE/AWS_CONFIG_FILE, \
     AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN, AWS_CONTAINER_CREDENTIALS_FULL_URI/\
     AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: none is set";

/// A token file the provider will read at every renewal must be readable now.
fn readable(file: &str, var: &str) -> Result<()> {
    // Read, not opened: a directory opens but does not read.
    std::fs::read(file)
        .map(drop)
        .map_err(|e| Error::Config(format!("{var}={file:?}: cannot read it: {e}")))
}

fn http_url(raw: &str, var: &str) -> Result<()> {
    match url::Url::parse(raw) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(()),
        _ => Err(Error::Config(format!(
            "{var}={:?} is not an http:// or https:// URL",
            redact_userinfo(raw)
        ))),
    }
}
