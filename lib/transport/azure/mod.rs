//! Azure Blob Storage: the `az://`, `azure://`, `azureblob://` (kops) and
//! `https://ACCOUNT.blob.core.windows.net/` locations, their credentials, and
//! object_store's `MicrosoftAzure` client for them.
//!
//! Uploads go through object_store's multipart upload, which on Azure stages
//! blocks (Put Block) and makes the blob visible only with the block list
//! (Put Block List), sent once the snapshot verified (ops/store/generic.rs).
//! Blocks never committed are not a blob: the service discards them after a
//! week, so an aborted upload leaves nothing at the key.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::base::error::{Error, Result};
use crate::base::settings::{Inputs, Secret};
use crate::transport::remote::{ClientTuning, header_safe, load_ca_bundle, parse_bool};

mod location;

pub(crate) use location::parse_url;
use location::validate_account;

/// Azurite's well-known development account (public, documented by Microsoft).
const EMULATOR_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known development key (public, documented by Microsoft).
const EMULATOR_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Everything needed to talk to one Azure Blob container.
#[derive(Debug, Clone)]
pub struct AzureSettings {
    /// The storage account.
    pub account: String,
    /// The container.
    pub container: String,
    /// Optional blob name prefix from the URL.
    pub prefix: Option<String>,
    /// The account's blob endpoint; `None` is `https://ACCOUNT.blob.core.windows.net`.
    pub endpoint: Option<String>,
    /// Where the credentials come from.
    pub credentials: AzureCredentials,
    /// Extra trusted CA certificates (PEM), and the file they came from.
    pub ca_bundle: Option<(PathBuf, Vec<u8>)>,
    /// How long a request may make no progress (`STALL_TIMEOUT`).
    pub stall: std::time::Duration,
}

/// The source of the Azure credentials.
#[derive(Debug, Clone)]
pub enum AzureCredentials {
    /// The account's shared key.
    Key(Secret),
    /// A shared access signature.
    Sas(Secret),
    /// object_store's token provider (workload identity, managed identity).
    Provider {
        /// What the provider is, for the log.
        source: String,
        /// object_store's settings for it (none is a secret).
        config: Vec<(AzureConfigKey, String)>,
    },
}

impl AzureCredentials {
    /// Which source this is, for `doctor` (never the secret).
    pub fn source(&self) -> String {
        match self {
            AzureCredentials::Key(_) => "account key".into(),
            AzureCredentials::Sas(_) => "SAS token".into(),
            AzureCredentials::Provider { source, .. } => source.clone(),
        }
    }
}

/// A connection string's fields (`Key=Value;...`; values may hold `=`).
fn connection_string(raw: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for part in raw.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| {
            Error::Config(
                "AZURE_STORAGE_CONNECTION_STRING is not a connection string \
                 (Key=Value pairs separated by ';')"
                    .into(),
            )
        })?;
        out.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    Ok(out)
}

/// An endpoint URL given in a setting: http(s), no query; the trailing `/` dropped.
fn endpoint_url(raw: &str, var: &str) -> Result<String> {
    let url = url::Url::parse(raw.trim()).ok().filter(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host_str().is_some()
            && u.query().is_none()
            && u.username().is_empty()
    });
    match url {
        Some(_) => Ok(raw.trim().trim_end_matches('/').to_string()),
        None => Err(Error::Config(format!(
            "{var} is not an http(s) URL without query or user info"
        ))),
    }
}

/// The account a blob endpoint names: its host's first label when the host is
/// `ACCOUNT.blob.…`, else its first path segment (Azurite's path style).
fn account_of_endpoint(endpoint: &str) -> Option<String> {
    let url = url::Url::parse(endpoint).ok()?;
    let host = url.host_str()?;
    match host.split_once(".blob.") {
        Some((account, _)) => Some(account.to_string()),
        None => url
            .path_segments()?
            .find(|s| !s.is_empty())
            .map(str::to_string),
    }
}

/// Completes the URL's location with the account, endpoint and credentials the
/// settings give, in this order: a connection string, the emulator, the
/// account key, a SAS token, workload identity, else managed identity.
pub(crate) fn from_inputs(mut s: AzureSettings, i: &Inputs) -> Result<AzureSettings> {
    let mut account = i.azure_storage_account_name.clone();
    let mut endpoint = match &i.azure_storage_endpoint {
        Some(e) => Some(endpoint_url(e, "AZURE_STORAGE_ENDPOINT")?),
        None => None,
    };
    let mut credentials = None;
    if let Some(cs) = &i.azure_storage_connection_string {
        let fields = connection_string(cs.expose())?;
        let get = |k: &str| {
            fields
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        if get("usedevelopmentstorage").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            account = Some(EMULATOR_ACCOUNT.into());
            endpoint = Some(format!("http://127.0.0.1:10000/{EMULATOR_ACCOUNT}"));
            credentials = Some(AzureCredentials::Key(Secret::new(EMULATOR_KEY)));
        } else {
            account = get("accountname").or(account);
            if let Some(e) = get("blobendpoint") {
                let e = endpoint_url(&e, "AZURE_STORAGE_CONNECTION_STRING's BlobEndpoint")?;
                // A SAS connection string may name no account: the endpoint does
                // (`ACCOUNT.blob.…`, or the path of an emulator's `host:port/ACCOUNT`).
                account = account.or_else(|| account_of_endpoint(&e));
                endpoint = Some(e);
            } else if let Some(a) = &account {
                let proto = get("defaultendpointsprotocol").unwrap_or_else(|| "https".into());
                let suffix = get("endpointsuffix").unwrap_or_else(|| "core.windows.net".into());
                endpoint = Some(format!("{proto}://{a}.blob.{suffix}"));
            }
            credentials = match (get("accountkey"), get("sharedaccesssignature")) {
                (Some(k), _) => Some(AzureCredentials::Key(Secret::new(k))),
                (None, Some(sas)) => Some(AzureCredentials::Sas(Secret::new(sas))),
                (None, None) => None,
            };
        }
    } else if parse_bool(
        i.azure_storage_use_emulator.as_deref(),
        "AZURE_STORAGE_USE_EMULATOR",
    )? {
        let base = match &i.azurite_blob_storage_url {
            Some(u) => endpoint_url(u, "AZURITE_BLOB_STORAGE_URL")?,
            None => "http://127.0.0.1:10000".into(),
        };
        account = Some(account.unwrap_or_else(|| EMULATOR_ACCOUNT.into()));
        endpoint = Some(format!("{base}/{}", account.as_deref().unwrap_or_default()));
        if i.azure_storage_account_key.is_none() && i.azure_storage_sas_token.is_none() {
            credentials = Some(AzureCredentials::Key(Secret::new(EMULATOR_KEY)));
        }
    }
    match (&account, s.account.is_empty()) {
        (Some(a), false) if *a != s.account => {
            return Err(Error::Config(format!(
                "STORAGE_URL names account {:?} but the credentials are for {a:?}; set one",
                s.account
            )));
        }
        (Some(a), true) => s.account = a.clone(),
        _ => {}
    }
    if s.account.is_empty() {
        return Err(Error::Config(
            "AZURE_STORAGE_ACCOUNT_NAME is not set (nor in STORAGE_URL, \
             AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_USE_EMULATOR)"
                .into(),
        ));
    }
    validate_account(&s.account).map_err(|why| Error::Config(format!("Azure: {why}")))?;
    let credentials = match credentials {
        Some(c) => c,
        None => provider_or_key(i)?,
    };
    match &credentials {
        AzureCredentials::Key(k) => header_safe(k.expose(), "AZURE_STORAGE_ACCOUNT_KEY", true)?,
        AzureCredentials::Sas(t) => header_safe(t.expose(), "AZURE_STORAGE_SAS_TOKEN", true)?,
        AzureCredentials::Provider { .. } => {}
    }
    s.endpoint = endpoint;
    s.credentials = credentials;
    s.ca_bundle = load_ca_bundle(i.ca_bundle.as_deref())?;
    s.stall = crate::transport::remote::stall_timeout(i)?;
    Ok(s)
}

fn provider_or_key(i: &Inputs) -> Result<AzureCredentials> {
    if let Some(k) = &i.azure_storage_account_key {
        return Ok(AzureCredentials::Key(k.clone()));
    }
    if let Some(t) = &i.azure_storage_sas_token {
        return Ok(AzureCredentials::Sas(t.clone()));
    }
    use AzureConfigKey as Key;
    let mut config = Vec::new();
    if let Some(id) = &i.azure_client_id {
        config.push((Key::ClientId, id.clone()));
    }
    if let Some(file) = &i.azure_federated_token_file {
        std::fs::metadata(file).map_err(|e| {
            Error::Config(format!(
                "AZURE_FEDERATED_TOKEN_FILE={file:?}: cannot read it: {e}"
            ))
        })?;
        let (Some(_), Some(tenant)) = (&i.azure_client_id, &i.azure_tenant_id) else {
            return Err(Error::Config(
                "AZURE_FEDERATED_TOKEN_FILE is set but AZURE_CLIENT_ID or AZURE_TENANT_ID \
                 is not; workload identity needs all three"
                    .into(),
            ));
        };
        config.push((Key::FederatedTokenFile, file.clone()));
        config.push((Key::AuthorityId, tenant.clone()));
        if let Some(host) = &i.azure_authority_host {
            config.push((
                Key::AuthorityHost,
                endpoint_url(host, "AZURE_AUTHORITY_HOST")?,
            ));
        }
        config.push((Key::CredentialType, "workload_identity".into()));
        return Ok(AzureCredentials::Provider {
            source: "workload identity (AZURE_FEDERATED_TOKEN_FILE)".into(),
            config,
        });
    }
    if let Some(e) = &i.azure_msi_endpoint {
        config.push((Key::MsiEndpoint, endpoint_url(e, "AZURE_MSI_ENDPOINT")?));
    }
    config.push((Key::CredentialType, "managed_identity".into()));
    Ok(AzureCredentials::Provider {
        source: "managed identity (no AZURE_STORAGE_ACCOUNT_KEY, SAS token or connection string)"
            .into(),
        config,
    })
}

impl AzureSettings {
    /// `az://container/prefix/key`, for messages and logs.
    pub fn describe(&self, key: &str) -> String {
        match &self.prefix {
            Some(p) => format!("az://{}/{p}/{key}", self.container),
            None => format!("az://{}/{key}", self.container),
        }
    }

    /// Builds the client under the URL's prefix.
    pub(crate) fn open(&self, tuning: &ClientTuning) -> Result<Arc<dyn ObjectStore>> {
        let http = self
            .endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"));
        let mut options = ClientOptions::new()
            .with_connect_timeout(tuning.connect_timeout)
            .with_read_timeout(tuning.read_timeout)
            .with_timeout_disabled()
            .with_allow_http(http);
        if let Some((path, pem)) = &self.ca_bundle {
            for cert in object_store::Certificate::from_pem_bundle(pem)
                .map_err(|e| Error::Config(format!("CA bundle {}: {e}", path.display())))?
            {
                options = options.with_root_certificate(cert);
            }
        }
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: tuning.max_retries,
            retry_timeout: tuning.retry_timeout,
        };
        let mut builder = MicrosoftAzureBuilder::new()
            .with_account(&self.account)
            .with_container_name(&self.container)
            .with_retry(retry)
            .with_client_options(options)
            // Index tags are not used, and Azurite does not support them.
            .with_config(AzureConfigKey::DisableTagging, "true");
        if let Some(e) = &self.endpoint {
            builder = builder.with_endpoint(e.clone());
        }
        let source = match &self.credentials {
            AzureCredentials::Key(k) => {
                builder = builder.with_access_key(k.expose());
                "account key".to_string()
            }
            AzureCredentials::Sas(t) => {
                builder = builder.with_config(AzureConfigKey::SasKey, t.expose());
                "SAS token".to_string()
            }
            AzureCredentials::Provider { source, config } => {
                for (k, v) in config {
                    builder = builder.with_config(*k, v);
                }
                source.clone()
            }
        };
        let store = builder.build().map_err(|e| {
            Error::Config(format!(
                "invalid Azure settings for container {}: {e}",
                self.container
            ))
        })?;
        tracing::info!(credentials = %source, account = %self.account, "Azure credentials");
        Ok(match &self.prefix {
            Some(p) => Arc::new(PrefixStore::new(
                store,
                ObjectPath::parse(p)
                    .map_err(|e| Error::Config(format!("STORAGE_URL prefix: {e}")))?,
            )),
            None => Arc::new(store),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(pairs: &[(&str, &str)]) -> Inputs {
        Inputs::from_env_vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn url_forms_name_container_prefix_and_account() {
        for url in [
            "az://backups/etcd/prod",
            "azure://backups/etcd/prod/",
            "azureblob://backups/etcd/prod",
        ] {
            let s = parse_url(url).unwrap().unwrap();
            assert_eq!(
                (s.container.as_str(), s.prefix.as_deref()),
                ("backups", Some("etcd/prod"))
            );
            assert_eq!(s.account, "");
        }
        let s = parse_url("https://acct1.blob.core.windows.net/backups/p")
            .unwrap()
            .unwrap();
        assert_eq!(
            (s.account.as_str(), s.container.as_str()),
            ("acct1", "backups")
        );
        assert_eq!(s.prefix.as_deref(), Some("p"));
        let s = parse_url("az://backups@acct1.blob.core.windows.net")
            .unwrap()
            .unwrap();
        assert_eq!((s.account.as_str(), s.prefix), ("acct1", None));
        assert!(parse_url("https://minio.example/b").unwrap().is_none());
        assert!(parse_url("s3://b/p").unwrap().is_none());
        for bad in ["az://", "az://UPPER/p", "az://a/p", "az://ok-name/a/../b"] {
            let e = parse_url(bad).unwrap_err().to_string();
            assert!(e.contains("STORAGE_URL"), "{bad}: {e}");
        }
    }

    #[test]
    fn credentials_come_from_the_first_source_given() {
        let loc = || parse_url("az://backups").unwrap().unwrap();
        let cs = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;\
                  BlobEndpoint=http://127.0.0.1:1234/devstoreaccount1;";
        let s = from_inputs(loc(), &inputs(&[("AZURE_STORAGE_CONNECTION_STRING", cs)])).unwrap();
        assert_eq!(s.account, "devstoreaccount1");
        assert_eq!(
            s.endpoint.as_deref(),
            Some("http://127.0.0.1:1234/devstoreaccount1")
        );
        assert!(matches!(s.credentials, AzureCredentials::Key(ref k) if k.expose() == "a2V5"));

        let s = from_inputs(
            loc(),
            &inputs(&[
                ("AZURE_STORAGE_USE_EMULATOR", "true"),
                ("AZURITE_BLOB_STORAGE_URL", "http://127.0.0.1:9/"),
            ]),
        )
        .unwrap();
        assert_eq!(
            s.endpoint.as_deref(),
            Some("http://127.0.0.1:9/devstoreaccount1")
        );

        let s = from_inputs(
            loc(),
            &inputs(&[
                ("AZURE_STORAGE_ACCOUNT_NAME", "acct1"),
                ("AZURE_STORAGE_SAS_TOKEN", "sv=1&sig=x"),
            ]),
        )
        .unwrap();
        assert!(matches!(s.credentials, AzureCredentials::Sas(_)));
        assert_eq!(s.endpoint, None);

        let s = from_inputs(loc(), &inputs(&[("AZURE_STORAGE_ACCOUNT_NAME", "acct1")])).unwrap();
        assert!(
            matches!(s.credentials, AzureCredentials::Provider { ref source, .. } if source.contains("managed identity"))
        );

        let e = from_inputs(loc(), &inputs(&[])).unwrap_err().to_string();
        assert!(e.contains("AZURE_STORAGE_ACCOUNT_NAME"), "{e}");
        let e = from_inputs(
            loc(),
            &inputs(&[
                ("AZURE_STORAGE_ACCOUNT_NAME", "acct1"),
                ("AZURE_STORAGE_ACCOUNT_KEY", "secretkey\n"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("AZURE_STORAGE_ACCOUNT_KEY") && !e.contains("secretkey"),
            "{e}"
        );
        let e = from_inputs(
            loc(),
            &inputs(&[
                ("AZURE_STORAGE_ACCOUNT_NAME", "acct1"),
                ("AZURE_FEDERATED_TOKEN_FILE", "/dev/null"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("AZURE_TENANT_ID"), "{e}");
    }
}
