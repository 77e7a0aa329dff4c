//! The object contract every store honours: the metadata a backup carries (its
//! SHA-256 and its cluster), and the read-back that confirms what is at a key.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{Attribute, Attributes, ObjectMeta, ObjectStore};

use crate::base::cancel::{Deadline, Shutdown};
use crate::base::error::{Error, Result};

/// The user-metadata name of the object's SHA-256 (`x-amz-meta-sha256` on S3).
pub const SHA256_METADATA: &str = "sha256";
/// The user-metadata name of the cluster a backup belongs to
/// (`x-amz-meta-snapjob-cluster`): what retention trusts, never the key prefix.
pub const CLUSTER_METADATA: &str = "snapjob-cluster";
/// The user-metadata names of the member's answer to `HashKV` at the snapshot's
/// revision (`x-amz-meta-snapjob-revision`, `-hashkv`, `-compact-revision`):
/// `verify` compares them with the hash it computes from the snapshot.
pub const REVISION_METADATA: &str = "snapjob-revision";
/// See [`REVISION_METADATA`].
pub const HASHKV_METADATA: &str = "snapjob-hashkv";
/// See [`REVISION_METADATA`].
pub const COMPACT_METADATA: &str = "snapjob-compact-revision";
/// The metadata a stored backup carries, where the store keeps metadata: its
/// SHA-256 (when known before the upload) and its cluster.
pub fn backup_attributes(
    sha256: Option<&str>,
    cluster: Option<&str>,
    keep_meta: bool,
) -> Attributes {
    let mut attrs = Attributes::new();
    if !keep_meta {
        return attrs;
    }
    if let Some(sum) = sha256 {
        attrs.insert(
            Attribute::Metadata(SHA256_METADATA.into()),
            sum.to_string().into(),
        );
    }
    if let Some(c) = cluster {
        attrs.insert(
            Attribute::Metadata(CLUSTER_METADATA.into()),
            c.to_string().into(),
        );
    }
    attrs
}

/// The objects under `prefix` whose metadata names `cluster` (what `store`
/// records), and how many objects were listed there. A key prefix alone cannot
/// tell `prod-` backups from `prod-eu-` ones, and an object someone else put
/// there is never a backup. `prefix`'s directory part must be an object path as
/// the keys have it (config checks it); `remote` names objects in errors.
pub async fn cluster_objects(
    client: &Arc<dyn ObjectStore>,
    remote: &crate::transport::remote::Remote,
    prefix: &str,
    cluster: &str,
) -> Result<(Vec<ObjectMeta>, usize)> {
    let (dir, start) = crate::transport::listing::prefix_dir(prefix)
        .map_err(|e| Error::Config(format!("RETENTION_PREFIX {prefix:?}: {e}")))?;
    let listed = crate::transport::listing::starting_with(client.as_ref(), dir.as_ref(), start)
        .await
        .map_err(|e| Error::remote(format!("listing {}", remote.describe(prefix)), e))?;
    let count = listed.len();
    let found = futures::stream::iter(listed)
        .map(|o| {
            let client = client.clone();
            async move {
                match belongs_to(client.as_ref(), &o.location, cluster).await {
                    Ok(yes) => Ok(yes.then_some(o)),
                    Err(e) => Err(Error::remote(
                        format!("reading {}", remote.describe(o.location.as_ref())),
                        e,
                    )),
                }
            }
        })
        .buffer_unordered(8)
        .try_filter_map(|o| async move { Ok(o) })
        .try_collect::<Vec<_>>()
        .await?;
    Ok((found, count))
}

/// The value of the user metadata `name` as `store` writes it, also under the
/// name with `_` for `-` (Azure's form: its metadata names cannot hold `-`).
pub fn metadata_value(attributes: &Attributes, name: &str) -> Option<String> {
    attributes
        .get(&Attribute::Metadata(name.to_string().into()))
        .or_else(|| attributes.get(&Attribute::Metadata(name.replace('-', "_").into())))
        .map(|v| v.as_ref().to_string())
}

/// Whether the object's metadata names `cluster` (an object gone meanwhile is not).
pub async fn belongs_to(
    client: &dyn ObjectStore,
    location: &ObjectPath,
    cluster: &str,
) -> object_store::Result<bool> {
    match crate::transport::remote::head(client, location).await {
        Ok(head) => {
            Ok(metadata_value(&head.attributes, CLUSTER_METADATA).as_deref() == Some(cluster))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The SHA-256 an object's metadata records, if any.
pub fn recorded_sha256(attributes: &Attributes) -> Option<String> {
    attributes
        .get(&Attribute::Metadata(SHA256_METADATA.into()))
        .map(|v| v.as_ref().to_string())
}

/// The metadata of an encrypted backup: the scheme and the recipients'
/// fingerprints (never a key), as (name, value) pairs; none for a plain one.
pub fn encryption_metadata(
    recipients: Option<&crate::formats::encrypt::Recipients>,
) -> Vec<(&'static str, String)> {
    use crate::formats::encrypt::{RECIPIENTS_METADATA, SCHEME, SCHEME_METADATA};
    match recipients {
        Some(r) => vec![
            (SCHEME_METADATA, SCHEME.to_string()),
            (RECIPIENTS_METADATA, r.fingerprints().join(",")),
        ],
        None => Vec::new(),
    }
}

/// The metadata recording a member's answer to `HashKV` (none when it gave none).
pub fn hashkv_metadata(
    answer: Option<&crate::transport::etcd::MemberHash>,
) -> Vec<(&'static str, String)> {
    match answer {
        Some(h) => vec![
            (REVISION_METADATA, h.revision.to_string()),
            (HASHKV_METADATA, h.hash.to_string()),
            (COMPACT_METADATA, h.compact_revision.to_string()),
        ],
        None => Vec::new(),
    }
}

/// The recorded `HashKV` metadata (either name form): revision, hash, compact revision.
pub fn recorded_hashkv(attributes: &Attributes) -> [Option<String>; 3] {
    [REVISION_METADATA, HASHKV_METADATA, COMPACT_METADATA]
        .map(|name| metadata_value(attributes, name))
}

/// `attrs` with `extra` metadata added (where the store keeps metadata).
pub fn with_metadata(
    mut attrs: Attributes,
    extra: &[(&'static str, String)],
    keep_meta: bool,
) -> Attributes {
    if keep_meta {
        for (name, value) in extra {
            attrs.insert(Attribute::Metadata((*name).into()), value.clone().into());
        }
    }
    attrs
}

/// Whether the object at `path` has `size` bytes and records `sha256`.
pub async fn stored_matches(
    client: &Arc<dyn ObjectStore>,
    path: &ObjectPath,
    size: u64,
    sha256: &str,
) -> bool {
    let lookup = tokio::time::timeout(
        std::time::Duration::from_secs(15),
        crate::transport::remote::head(client.as_ref(), path),
    )
    .await;
    match lookup {
        Ok(Ok(head)) => {
            head.meta.size == size
                && head
                    .attributes
                    .get(&Attribute::Metadata(SHA256_METADATA.into()))
                    .is_some_and(|v| v.as_ref() == sha256)
        }
        _ => false,
    }
}

/// Reads the stored object back: the size must match, and so must the recorded
/// digest when the store keeps metadata. A mismatching object is reported and
/// left alone: what we sent was verified before it became visible, so a
/// different object there is another writer's (a retried Job beside its
/// predecessor), and it may be a backup that writer already reported stored.
pub async fn confirm(
    client: &Arc<dyn ObjectStore>,
    path: &ObjectPath,
    location: &str,
    size: u64,
    sha256: Option<&str>,
    deadline: &Deadline,
) -> Result<()> {
    let head = deadline
        .run(&Shutdown::never(), "confirming the stored object", async {
            crate::transport::remote::head(client.as_ref(), path)
                .await
                .map_err(|e| Error::remote(format!("reading back {location}"), e))
        })
        .await?;
    let recorded = head
        .attributes
        .get(&Attribute::Metadata(SHA256_METADATA.into()))
        .map(|v| v.as_ref().to_string());
    let problem = if head.meta.size != size {
        Some(format!("has {} bytes, expected {size}", head.meta.size))
    } else {
        match (sha256, recorded.as_deref()) {
            (Some(want), Some(got)) if want != got => {
                Some(format!("records sha256 {got}, expected {want}"))
            }
            (Some(_), None) => Some("was stored without its sha256 metadata".to_string()),
            _ => None,
        }
    };
    match problem {
        None => Ok(()),
        Some(why) => Err(Error::Data(format!(
            "the object now at {location} {why}: another writer stored to the same key \
             after us; it was left as it is"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::{ObjectStoreExt, PutPayload};

    #[tokio::test]
    async fn a_foreign_object_at_the_key_is_reported_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let client: Arc<dyn ObjectStore> =
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        let path = ObjectPath::from("c-backup.db.gz");
        // Another writer's backup, 5 bytes, where we stored 7.
        client.put(&path, PutPayload::from("other")).await.unwrap();
        let deadline = Deadline::after(std::time::Duration::from_secs(10));
        let err = confirm(
            &client,
            &path,
            "file:///x/c-backup.db.gz",
            7,
            None,
            &deadline,
        )
        .await
        .unwrap_err();
        assert_eq!(err.exit_code(), 65);
        assert!(err.to_string().contains("left as it is"), "{err}");
        let kept = client.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(
            kept.as_ref(),
            b"other",
            "the other writer's object must stay"
        );
    }
}
