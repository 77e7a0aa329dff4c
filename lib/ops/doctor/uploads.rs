//! The checks of `doctor` on multipart uploads (ListMultipartUploads, abort)
//! and the cleanup of its prefix.

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};

use super::Status;
use super::steps::{Run, hint};
use crate::base::error::{Error, Result};

impl Run<'_> {
    /// Starts an upload, looks for it with ListMultipartUploads, aborts it.
    pub(super) async fn uploads(&mut self) {
        let path = self.at("aborted");
        let mut upload = match self
            .step("CreateMultipartUpload", self.client.put_multipart(&path))
            .await
        {
            Ok(u) => u,
            Err(e) => {
                self.report.failed("abort", e, "");
                return;
            }
        };
        self.wrote = true;
        let part = upload.put_part(PutPayload::from(Bytes::from_static(b"doctor")));
        if let Err(e) = self.step("UploadPart", part).await {
            self.report.failed("abort", e, "");
        }
        self.upload = Some(upload);
        let listed = self.pending().await;
        match &listed {
            Some(Ok(Some(p))) if p.iter().any(|k| k.ends_with("/aborted")) => self.report.ok(
                "list uploads",
                "ListMultipartUploads lists it; store sweeps its orphans",
            ),
            Some(Ok(Some(_))) => self.report.push(
                "list uploads",
                Status::Warn,
                "ListMultipartUploads does not list the pending upload",
            ),
            Some(Ok(None)) => self.report.push(
                "list uploads",
                Status::Warn,
                "ListMultipartUploads not implemented: store cannot sweep orphaned uploads \
                 (set a lifecycle rule that aborts incomplete uploads)",
            ),
            Some(Err(e)) => self.report.push("list uploads", Status::Warn, e.chain()),
            None => {
                let why = self.no_upload_listing();
                self.report.push("list uploads", Status::Skipped, why)
            }
        }
        let Some(mut upload) = self.upload.take() else {
            return;
        };
        match self.step("AbortMultipartUpload", upload.abort()).await {
            Ok(()) if self.target.is_some() => self.report.ok("abort", "aborted"),
            Ok(()) => self.after_abort(&path).await,
            Err(e) => {
                let h = hint(&e, "s3:AbortMultipartUpload");
                self.report.failed("abort", e, &h);
            }
        }
    }

    /// The keys of the pending uploads under the prefix; `None` when not S3,
    /// `Ok(None)` when the server does not implement the listing.
    async fn pending(&self) -> Option<Result<Option<Vec<String>>>> {
        let target = self.target.as_ref()?;
        let full = target.full_key().strip_suffix("object").unwrap_or_default();
        Some(
            target
                .pending_uploads(full)
                .await
                .map(|o| o.map(|v| v.into_iter().map(|p| p.key).collect())),
        )
    }

    /// Removes everything under the prefix, whatever happened before.
    pub(super) async fn cleanup(&mut self) {
        if let Some(mut upload) = self.upload.take() {
            let _ = upload.abort().await;
        }
        if !self.wrote {
            self.report.ok("cleanup", "nothing was written");
            return;
        }
        let prefix = ObjectPath::from(self.report.prefix.as_str());
        let wait = std::time::Duration::from_secs(30);
        let client = self.client.clone();
        let sweep = async {
            let found: Vec<_> = client.list(Some(&prefix)).try_collect().await?;
            for m in &found {
                match client.delete(&m.location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            let left: Vec<_> = client.list(Some(&prefix)).try_collect().await?;
            Ok(left
                .into_iter()
                .map(|m| m.location.to_string())
                .collect::<Vec<_>>())
        };
        let left = match tokio::time::timeout(wait, sweep).await {
            Ok(Ok(left)) => left,
            Ok(Err(e)) => {
                self.report
                    .failed("cleanup", Error::remote("cleaning up", e), "");
                return;
            }
            Err(_) => {
                let e = Error::Other(format!("cleaning up {}/ took over 30s", self.report.prefix));
                self.report.failed("cleanup", e, "");
                return;
            }
        };
        if let Some(target) = &self.target {
            let full = target.full_key().strip_suffix("object").unwrap_or_default();
            if let Ok(Some(pending)) = target.pending_uploads(full).await {
                for p in &pending {
                    let _ = target.abort_pending(p).await;
                }
            }
        }
        let mut left = left;
        left.extend(self.remove_local_prefix());
        if left.is_empty() {
            self.report.ok(
                "cleanup",
                format!("nothing left under {}/", self.report.prefix),
            );
        } else {
            let e = Error::Other(format!("left under the prefix: {}", left.join(", ")));
            self.report.failed("cleanup", e, "delete them by hand");
        }
    }
}
