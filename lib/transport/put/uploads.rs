//! Incomplete multipart uploads: listed with ListMultipartUploads (object_store
//! has no call for it) and aborted, on put.rs's request path (the same signing,
//! retries and errors). A SIGKILLed or OOM-killed `store` leaves its upload's
//! parts on the server, billed and invisible to a listing of objects; `store`
//! aborts its own key's before it starts, `delete --abort-incomplete` a prefix's.

use std::time::{Duration, SystemTime};

use reqwest::Method;
use serde::Deserialize;

use super::{Failure, Target, UNSIGNED, uri_encode, uri_encode_path};
use crate::base::error::{Error, Result};

/// One incomplete multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pending {
    /// Its key in the bucket (STORAGE_URL prefix included).
    pub(crate) key: String,
    pub(crate) upload_id: String,
    /// When the server says it was initiated.
    pub(crate) initiated: SystemTime,
}

/// What a sweep found and did.
#[derive(Debug, Default)]
pub(crate) struct Sweep {
    /// Uploads that matched (in a dry run: that would be aborted).
    pub(crate) matched: usize,
    /// Aborted, or gone by the time of the abort.
    pub(crate) aborted: usize,
    /// Aborts that failed: the first error, and how many.
    pub(crate) failed: Option<(Error, usize)>,
}

/// One page of a ListMultipartUploads answer.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Page {
    #[serde(default, rename = "Upload")]
    uploads: Vec<Entry>,
    #[serde(default)]
    is_truncated: bool,
    #[serde(default)]
    next_key_marker: Option<String>,
    #[serde(default)]
    next_upload_id_marker: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    key: String,
    upload_id: String,
    initiated: String,
}

/// The uploads of one page, and the markers of the next when it is truncated.
/// The next page's (key marker, upload id marker).
type Markers = Option<(String, String)>;

fn parse_page(xml: &str) -> std::result::Result<(Vec<Pending>, Markers), String> {
    let page: Page = quick_xml::de::from_str(xml).map_err(|e| e.to_string())?;
    let mut pending = Vec::with_capacity(page.uploads.len());
    for e in page.uploads {
        let at = chrono::DateTime::parse_from_rfc3339(e.initiated.trim())
            .map_err(|err| format!("upload {} Initiated {:?}: {err}", e.upload_id, e.initiated))?;
        let secs = at.timestamp();
        let initiated = if secs >= 0 {
            SystemTime::UNIX_EPOCH
                + Duration::new(secs as u64, at.timestamp_subsec_nanos().min(999_999_999))
        } else {
            SystemTime::UNIX_EPOCH
        };
        pending.push(Pending {
            key: e.key,
            upload_id: e.upload_id,
            initiated,
        });
    }
    let next = match (
        page.is_truncated,
        page.next_key_marker.filter(|m| !m.is_empty()),
    ) {
        (true, Some(key)) => Some((key, page.next_upload_id_marker.unwrap_or_default())),
        _ => None,
    };
    Ok((pending, next))
}

/// A server without ListMultipartUploads (s3s-fs: 501 NotImplemented).
fn unimplemented(f: &Failure) -> bool {
    let text = f.error.to_string();
    text.contains("status code: 501") || text.contains("NotImplemented")
}

/// Pages read at most: 1000 uploads each.
const MAX_PAGES: usize = 1000;

impl Target {
    /// The key (or, for `delete`, the prefix) this target was made for, under
    /// the STORAGE_URL prefix.
    pub(crate) fn full_key(&self) -> &str {
        &self.key
    }

    /// The same target whose requests are tried once: `store`'s sweep is
    /// housekeeping, and an unreachable server must not cost its retries twice.
    pub(crate) fn single_try(&self) -> Target {
        Target {
            max_retries: 0,
            ..self.clone()
        }
    }

    /// The incomplete uploads whose keys start with `prefix` (under the
    /// STORAGE_URL prefix); `None` when the server does not implement the listing.
    pub(crate) async fn pending_uploads(&self, prefix: &str) -> Result<Option<Vec<Pending>>> {
        let lister = Target {
            url: self.bucket_url.clone(),
            location: format!(
                "{}(incomplete uploads under {prefix:?})",
                self.bucket_location()
            ),
            ..self.clone()
        };
        let mut all = Vec::new();
        let mut marker: Option<(String, String)> = None;
        for _ in 0..MAX_PAGES {
            let mut query = format!("uploads&prefix={}", uri_encode(prefix));
            if let Some((key, id)) = &marker {
                query.push_str(&format!("&key-marker={}", uri_encode(key)));
                if !id.is_empty() {
                    query.push_str(&format!("&upload-id-marker={}", uri_encode(id)));
                }
            }
            let answer = lister
                .retrying("ListMultipartUploads", || {
                    let call = lister.call(
                        Method::GET,
                        &query,
                        None,
                        (reqwest::Body::from(""), 0, UNSIGNED),
                    );
                    async move {
                        call.await.map_err(|mut f| {
                            if unimplemented(&f) {
                                f.retryable = false;
                            }
                            f
                        })
                    }
                })
                .await;
            let xml = match answer {
                Ok(xml) => xml,
                Err(f) if unimplemented(&f) => return Ok(None),
                Err(f) => return Err(lister.remote_error("listing", f)),
            };
            let (page, next) = parse_page(&xml).map_err(|e| {
                Error::Other(format!(
                    "the ListMultipartUploads answer for {} is not understood: {e}",
                    lister.location
                ))
            })?;
            all.extend(page.into_iter().filter(|p| p.key.starts_with(prefix)));
            if next.is_none() || next == marker {
                return Ok(Some(all));
            }
            marker = next;
        }
        Ok(Some(all))
    }

    /// Aborts `p`; `Ok(false)` when it was gone already.
    pub(crate) async fn abort_pending(&self, p: &Pending) -> Result<bool> {
        let mut url = self.bucket_url.clone();
        url.set_path(&format!(
            "{}{}",
            url.path(),
            uri_encode_path(&p.key).trim_start_matches('/')
        ));
        let one = Target {
            url,
            location: format!("{}{}", self.bucket_location(), p.key),
            ..self.clone()
        };
        let query = format!("uploadId={}", uri_encode(&p.upload_id));
        let sent = one
            .retrying("AbortMultipartUpload", || {
                one.call(
                    Method::DELETE,
                    &query,
                    None,
                    (reqwest::Body::from(""), 0, UNSIGNED),
                )
            })
            .await;
        match sent {
            Ok(_) => Ok(true),
            Err(Failure {
                error: object_store::Error::NotFound { .. },
                ..
            }) => Ok(false),
            Err(f) => Err(one.remote_error(
                &format!("aborting the multipart upload {} of", p.upload_id),
                f,
            )),
        }
    }

    /// Lists the incomplete uploads under this target's key, aborts those
    /// `select` picks (in a dry run only logs them), one log line each. `None`
    /// when the server cannot list them.
    pub(crate) async fn sweep(
        &self,
        select: impl Fn(&Pending) -> bool,
        dry_run: bool,
    ) -> Result<Option<Sweep>> {
        let Some(found) = self.pending_uploads(&self.key).await? else {
            return Ok(None);
        };
        let mut sweep = Sweep::default();
        for p in found.iter().filter(|p| select(p)) {
            sweep.matched += 1;
            let initiated = rfc3339(p.initiated);
            if dry_run {
                tracing::info!(
                    key = %p.key,
                    upload_id = %p.upload_id,
                    %initiated,
                    "dry run: would abort this incomplete multipart upload"
                );
                continue;
            }
            match self.abort_pending(p).await {
                Ok(existed) => {
                    sweep.aborted += 1;
                    tracing::info!(
                        key = %p.key,
                        upload_id = %p.upload_id,
                        %initiated,
                        "{}",
                        if existed {
                            "aborted an incomplete multipart upload"
                        } else {
                            "an incomplete multipart upload was gone by the time of its abort"
                        }
                    );
                }
                Err(e) => {
                    tracing::warn!(
                        key = %p.key,
                        upload_id = %p.upload_id,
                        error = %e.chain(),
                        "cannot abort an incomplete multipart upload"
                    );
                    sweep.failed = Some(match sweep.failed.take() {
                        None => (e, 1),
                        Some((first, n)) => (first, n + 1),
                    });
                }
            }
        }
        Ok(Some(sweep))
    }

    /// `s3://bucket/`, for messages.
    pub(super) fn bucket_location(&self) -> String {
        let end = self.location.len() - self.key.len();
        self.location[..end].to_string()
    }
}

fn rfc3339(t: SystemTime) -> String {
    crate::base::time::rfc3339(
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_page_is_read_with_its_next_markers() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>b</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>
  <NextKeyMarker>c-b&amp;2</NextKeyMarker><NextUploadIdMarker>id2</NextUploadIdMarker>
  <Prefix>c-</Prefix><MaxUploads>1000</MaxUploads><IsTruncated>true</IsTruncated>
  <Upload><Key>c-a</Key><UploadId>id1</UploadId>
    <Initiator><ID>x</ID></Initiator><StorageClass>STANDARD</StorageClass>
    <Initiated>2026-11-29T21:50:10.500Z</Initiated></Upload>
  <Upload><Key>c-b&amp;2</Key><UploadId>id2</UploadId>
    <Initiated>2026-11-29T21:50:11Z</Initiated></Upload>
</ListMultipartUploadsResult>"#;
        let (pending, next) = parse_page(xml).unwrap();
        assert_eq!(pending.len(), 2);
        assert_eq!(pending[1].key, "c-b&2");
        assert_eq!(pending[0].upload_id, "id1");
        assert_eq!(
            pending[0]
                .initiated
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
            1_795_989_010_500
        );
        assert_eq!(next, Some(("c-b&2".to_string(), "id2".to_string())));
    }

    #[test]
    fn an_empty_last_page_has_no_uploads_and_no_next() {
        let xml = "<ListMultipartUploadsResult><Bucket>b</Bucket>\
                   <IsTruncated>false</IsTruncated></ListMultipartUploadsResult>";
        assert_eq!(parse_page(xml).unwrap(), (Vec::new(), None));
        assert!(
            parse_page(
                "<ListMultipartUploadsResult><Upload><Key>k</Key>\
             <UploadId>i</UploadId><Initiated>yesterday</Initiated></Upload>\
             </ListMultipartUploadsResult>"
            )
            .is_err()
        );
    }
}
