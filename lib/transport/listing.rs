//! Finding backups under a key prefix: newest first, each with its user
//! metadata, optionally only those whose metadata names a cluster (what `store`
//! records in `x-amz-meta-snapjob-cluster`; a prefix alone cannot tell `prod-`
//! backups from `prod-eu-` ones).

use std::collections::HashMap;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{Attribute, ObjectMeta, ObjectStore};

use crate::transport::object::CLUSTER_METADATA;

/// One object found, with its user metadata (empty where the store keeps none).
#[derive(Debug, Clone)]
pub struct Listed {
    /// Key, size, time, ETag.
    pub meta: ObjectMeta,
    /// User metadata, by name (`sha256`, `snapjob-cluster`, ...).
    pub metadata: HashMap<String, String>,
}

/// `prefix` split into the directory to list and the start of the names in it.
/// object_store lists by path segment: list the prefix's directory and compare
/// the last segment as a string. `parse`, not `from`: the directory as the keys
/// have it (`from` would escape a `~` and list another directory).
pub(crate) fn prefix_dir(
    prefix: &str,
) -> std::result::Result<(Option<ObjectPath>, &str), object_store::path::Error> {
    Ok(match prefix.rsplit_once('/') {
        Some((d, s)) => (Some(ObjectPath::parse(d)?), s),
        None => (None, prefix),
    })
}

/// The objects directly in `dir` whose name starts with `start`, as listed.
pub(crate) async fn starting_with(
    client: &dyn ObjectStore,
    dir: Option<&ObjectPath>,
    start: &str,
) -> object_store::Result<Vec<ObjectMeta>> {
    let listing = client.list_with_delimiter(dir).await?;
    Ok(listing
        .objects
        .into_iter()
        .filter(|o| o.location.filename().is_some_and(|f| f.starts_with(start)))
        .collect())
}

/// The objects whose key starts with `prefix`, newest first (ties by key,
/// descending); with `cluster`, only those whose metadata names it. Metadata is
/// read (one HEAD each, 8 at once) only when `heads` or `cluster` asks for it. An
/// object gone between the listing and its HEAD is left out.
pub async fn backups(
    client: &dyn ObjectStore,
    prefix: &str,
    cluster: Option<&str>,
    heads: bool,
) -> object_store::Result<Vec<Listed>> {
    let (dir, start) =
        prefix_dir(prefix).map_err(|source| object_store::Error::InvalidPath { source })?;
    let listed = starting_with(client, dir.as_ref(), start)
        .await?
        .into_iter();
    let mut found: Vec<Listed> = if heads || cluster.is_some() {
        futures::stream::iter(listed)
            .map(|meta| async move {
                match crate::transport::remote::head(client, &meta.location).await {
                    Ok(got) => {
                        let metadata = got
                            .attributes
                            .iter()
                            .filter_map(|(k, v)| match k {
                                // Azure's names hold `_` where store's hold `-`.
                                Attribute::Metadata(name) => {
                                    Some((name.replace('_', "-"), v.to_string()))
                                }
                                _ => None,
                            })
                            .collect();
                        Ok(Some(Listed { meta, metadata }))
                    }
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(8)
            .try_filter_map(|l| async move { Ok(l) })
            .try_collect()
            .await?
    } else {
        listed
            .map(|meta| Listed {
                meta,
                metadata: HashMap::new(),
            })
            .collect()
    };
    if let Some(c) = cluster {
        found.retain(|l| l.metadata.get(CLUSTER_METADATA).is_some_and(|v| v == c));
    }
    found.sort_by(|a, b| {
        b.meta
            .last_modified
            .cmp(&a.meta.last_modified)
            .then_with(|| b.meta.location.cmp(&a.meta.location))
    });
    Ok(found)
}
