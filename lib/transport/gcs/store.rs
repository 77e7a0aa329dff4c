//! object_store's GCS client with single-request writes through the JSON API.

use std::sync::Arc;

use futures::FutureExt;
use futures::stream::BoxStream;
use object_store::{
    Attribute, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

use super::client::{GcsClient, generic};
use super::resumable::Chunked;
use object_store::path::Path as ObjectPath;

/// object_store's GCS client, but for single-request writes, which go through
/// the JSON API (as the Google SDKs send them) rather than the XML API's PUT:
/// the same service, and what GCS emulators implement. Everything else is
/// object_store's.
#[derive(Clone)]
pub(super) struct GcsStore(pub(super) GcsClient);

impl std::fmt::Debug for GcsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GcsStore({})", self.0.settings.bucket)
    }
}

impl std::fmt::Display for GcsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GoogleCloudStorage({})", self.0.settings.bucket)
    }
}

#[async_trait::async_trait]
impl ObjectStore for GcsStore {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let result = self.0.simple_upload(location.as_ref(), payload, opts).await;
        match result {
            Err(object_store::Error::Precondition { path, source }) => {
                Err(object_store::Error::AlreadyExists { path, source })
            }
            other => other,
        }
    }

    /// A resumable session (JSON API), not the XML multipart upload: parts are
    /// cut into 256 KiB-aligned chunks sent strictly in order, each part's
    /// request after the previous one's; the tail is held back for `complete`,
    /// so nothing is visible before it.
    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let meta: Vec<(String, String)> = opts
            .attributes
            .iter()
            .filter_map(|(k, v)| match k {
                Attribute::Metadata(k) => Some((k.to_string(), v.to_string())),
                _ => None,
            })
            .collect();
        let meta: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let session = self
            .0
            .start_session(location.as_ref(), None, &meta, false)
            .await
            .map_err(|e| generic(e.to_string()))?;
        Ok(Box::new(Chunked {
            session: Arc::new(session),
            held: Vec::new(),
            offset: 0,
            previous: futures::future::ready(Ok(())).boxed().shared(),
        }))
    }

    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.0.store.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        self.0.store.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.0.store.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> object_store::Result<ListResult> {
        self.0.store.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.0.store.copy_opts(from, to, options).await
    }
}
