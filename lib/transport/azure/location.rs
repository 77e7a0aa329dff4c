//! The locations of an Azure container: `az://container/prefix` (also
//! `azure://`, kops' `azureblob://`) and
//! `https://ACCOUNT.blob.core.windows.net/container/prefix`, with Azure's naming
//! rules for accounts and containers.

use object_store::path::Path as ObjectPath;

use super::{AzureCredentials, AzureSettings};
use crate::base::error::{Error, Result};

/// The location part of a STORAGE_URL, when it is an Azure one: `Ok(None)` for
/// other schemes. Credentials are filled in by [`from_inputs`].
pub(crate) fn parse_url(raw: &str) -> Result<Option<AzureSettings>> {
    let bad = |why: &str| Error::Config(format!("STORAGE_URL={raw:?} is not valid: {why}"));
    let raw = raw.trim();
    let Some((scheme, rest)) = raw.split_once("://") else {
        return Ok(None);
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (account, container, prefix) = match scheme.to_ascii_lowercase().as_str() {
        "az" | "azure" | "azureblob" => match authority.split_once('@') {
            // az://container@account.blob.core.windows.net/prefix (object_store's form)
            Some((container, host)) => {
                let account = host
                    .strip_suffix(".blob.core.windows.net")
                    .ok_or_else(|| bad("the host is not ACCOUNT.blob.core.windows.net"))?;
                (Some(account.to_string()), container, path)
            }
            None => (None, authority, path),
        },
        "https" => {
            let Some(account) = authority.strip_suffix(".blob.core.windows.net") else {
                return Ok(None);
            };
            let (container, prefix) = path.split_once('/').unwrap_or((path, ""));
            (Some(account.to_string()), container, prefix)
        }
        _ => return Ok(None),
    };
    if container.is_empty() {
        return Err(bad("no container"));
    }
    validate_container(container).map_err(|why| bad(&why))?;
    if let Some(a) = &account {
        validate_account(a).map_err(|why| bad(&why))?;
    }
    let prefix = prefix.trim_matches('/');
    if let Err(e) = ObjectPath::parse(prefix) {
        return Err(bad(&format!(
            "the blob name prefix cannot be an object key: {e}"
        )));
    }
    Ok(Some(AzureSettings {
        account: account.unwrap_or_default(),
        container: container.to_string(),
        prefix: (!prefix.is_empty()).then(|| prefix.to_string()),
        endpoint: None,
        credentials: AzureCredentials::Provider {
            source: String::new(),
            config: Vec::new(),
        },
        ca_bundle: None,
        // Replaced by the settings' (from_inputs).
        stall: crate::transport::stall::DEFAULT_STALL,
    }))
}

/// Azure container names: 3-63 lowercase letters, digits and single hyphens.
pub(super) fn validate_container(c: &str) -> std::result::Result<(), String> {
    let ok = (3..=63).contains(&c.len())
        && c.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !c.starts_with('-')
        && !c.ends_with('-')
        && !c.contains("--");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "container {c:?} is not a valid Azure container name (3-63 lowercase letters, digits, single '-')"
        ))
    }
}

/// Storage account names: 3-24 lowercase letters and digits.
pub(super) fn validate_account(a: &str) -> std::result::Result<(), String> {
    let ok = (3..=24).contains(&a.len())
        && a.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "account {a:?} is not a valid storage account name (3-24 lowercase letters and digits)"
        ))
    }
}
