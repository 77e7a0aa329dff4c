//! The checks of `doctor`, in the order they run.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{
    MultipartUpload, ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload,
};

use super::{DoctorReport, Status};
use crate::base::cancel::{Deadline, Shutdown};
use crate::base::error::{Error, ErrorClass, Result};
use crate::config::DoctorConfig;
use crate::transport::object::SHA256_METADATA;
use crate::transport::put::{ProbeFailure, Target};
use crate::transport::remote::Remote;

/// A part of the multipart check: S3's smallest part but the last.
const PART: usize = 5 << 20;
/// Clock skew S3 refuses (RequestTimeTooSkewed), and where a warning starts.
const SKEW_REFUSED: i64 = 15 * 60;
const SKEW_WARN: i64 = 60;

/// What to grant or set, for a failure of `action`.
pub(super) fn hint(e: &Error, action: &str) -> String {
    match e.class() {
        ErrorClass::Denied => format!(
            "check the credentials; their policy must allow {action} on the bucket and prefix"
        ),
        _ if e.is_missing_bucket() => "BUCKET_NAME: the bucket does not exist".into(),
        _ => String::new(),
    }
}

/// The lines known from the settings alone.
pub(super) fn settings(cfg: &DoctorConfig, report: &mut DoctorReport) {
    match &cfg.remote {
        Remote::S3(s) => {
            report.ok(
                "endpoint",
                s.endpoint.clone().unwrap_or_else(|| "AWS S3".into()),
            );
            let virtual_hosted = s
                .options
                .addressing
                .virtual_hosted(s.endpoint.as_deref(), &s.bucket);
            report.ok(
                "addressing",
                if virtual_hosted {
                    "virtual-hosted"
                } else {
                    "path-style"
                },
            );
        }
        other => report.ok("store", other.describe("")),
    }
}

/// The checks after connecting, sharing the client and the prefix.
pub(super) struct Run<'a> {
    pub(super) cfg: &'a DoctorConfig,
    pub(super) client: Arc<dyn ObjectStore>,
    /// `<prefix>/object`.
    pub(super) path: ObjectPath,
    pub(super) target: Option<Target>,
    pub(super) deadline: &'a Deadline,
    pub(super) shutdown: &'a Shutdown,
    pub(super) report: &'a mut DoctorReport,
    /// The upload the abort check started, until aborted.
    pub(super) upload: Option<Box<dyn MultipartUpload>>,
    /// Whether anything was created under the prefix (else there is nothing to clean).
    pub(super) wrote: bool,
}

impl Run<'_> {
    pub(super) fn at(&self, name: &str) -> ObjectPath {
        ObjectPath::from(format!("{}/{name}", self.report.prefix))
    }

    /// Runs `fut` within the deadline, its object_store error named `what`.
    pub(super) async fn step<T>(
        &self,
        what: &str,
        fut: impl Future<Output = object_store::Result<T>>,
    ) -> Result<T> {
        let what = what.to_string();
        self.deadline
            .run(self.shutdown, "doctor", async move {
                fut.await.map_err(|e| Error::remote(what, e))
            })
            .await
    }

    /// Credentials, TLS, clock skew and region.
    pub(super) async fn connection(&mut self) {
        let Remote::S3(s) = &self.cfg.remote else {
            self.other_connection();
            return;
        };
        let how = match s.credentials {
            crate::transport::remote::Credentials::Provider { .. } => "first credentials obtained",
            _ => "given; the requests below show whether they are accepted",
        };
        self.report
            .ok("credentials", format!("{} ({how})", s.credentials.source()));
        let Some(target) = &self.target else { return };
        let probe = match target.probe().await {
            Ok(p) => p,
            Err(ProbeFailure::Tls(why)) => {
                let e = Error::Denied(format!(
                    "the endpoint's TLS certificate is not trusted: {why}"
                ));
                self.report.failed(
                    "tls",
                    e,
                    "set CA_BUNDLE to a PEM file of the CA that signed it",
                );
                return;
            }
            Err(ProbeFailure::Unreachable(why)) => {
                let e = Error::Other(format!("the endpoint is not reachable: {why}"));
                self.report
                    .failed("endpoint", e, "check ENDPOINT and the network");
                return;
            }
        };
        if probe.scheme == "https" {
            let roots = match &s.ca_bundle {
                Some((file, _)) => format!("system roots and CA_BUNDLE {}", file.display()),
                None => "system roots".into(),
            };
            self.report.ok("tls", format!("trusted ({roots})"));
        } else {
            self.report.push(
                "tls",
                Status::Warn,
                "plain HTTP (INSECURE=true): requests and data are not encrypted",
            );
        }
        match probe.date {
            None => self
                .report
                .push("clock skew", Status::Skipped, "the server sent no Date"),
            Some(server) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or_default();
                let skew = now - server;
                let detail = format!("{skew:+}s against the server's Date");
                if skew.abs() > SKEW_REFUSED {
                    let e = Error::Config(format!("this clock is {detail}"));
                    self.report.failed(
                        "clock skew",
                        e,
                        "S3 refuses signatures 15 minutes off; fix the node's clock (NTP)",
                    );
                } else if skew.abs() > SKEW_WARN {
                    self.report.push("clock skew", Status::Warn, detail);
                } else {
                    self.report.ok("clock skew", detail);
                }
            }
        }
        let region = target.region().to_string();
        match probe.bucket_region {
            Some(theirs) if theirs != region => {
                let e = Error::Config(format!(
                    "requests are signed for {region} but the bucket is in {theirs}"
                ));
                self.report
                    .failed("region", e, &format!("set REGION={theirs}"));
            }
            Some(_) => self.report.ok("region", format!("{region} (the bucket's)")),
            None => self.report.ok("region", region),
        }
    }

    /// PUT with our metadata, GET, HEAD, ranged GET, multipart, list, delete.
    pub(super) async fn objects(&mut self) {
        let data: Vec<u8> = (0..64 * 1024u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let sha = hex::encode(crate::base::digest::Sha256::digest(&data));
        let attributes = self
            .cfg
            .remote
            .backup_attributes(Some(&sha), Some("snapjob-doctor"), &[]);
        let opts = PutOptions {
            attributes: attributes.clone(),
            ..PutOptions::default()
        };
        let put = self.client.put_opts(&self.path, data.clone().into(), opts);
        if let Err(e) = self.step("PUT", put).await {
            let h = hint(&e, "s3:PutObject");
            self.report.failed("put", e, &h);
            return;
        }
        self.wrote = true;
        self.report.ok(
            "put",
            if self.cfg.remote.keeps_metadata() {
                "64 KiB with our metadata"
            } else {
                "64 KiB (file:// records no metadata)"
            },
        );
        match self.step("GET", self.client.get(&self.path)).await {
            Ok(got) => match self.step("GET", got.bytes()).await {
                Ok(body) if body[..] == data[..] => self.report.ok("get", "the bytes put"),
                Ok(body) => self.report.failed(
                    "get",
                    Error::Data(format!("GET gave {} bytes, not the 65536 put", body.len())),
                    "",
                ),
                Err(e) => self.report.failed("get", e, ""),
            },
            Err(e) => {
                let h = hint(&e, "s3:GetObject");
                self.report.failed("get", e, &h);
            }
        }
        let head = crate::transport::remote::head(self.client.as_ref(), &self.path);
        match self.step("HEAD", head).await {
            Ok(found) => {
                let kept = found.attributes.iter().any(|(k, v)| {
                    matches!(k, object_store::Attribute::Metadata(n) if n == SHA256_METADATA)
                        && v.as_ref() == sha
                });
                if kept {
                    self.report.ok("head + metadata", "our metadata kept");
                } else if !self.cfg.remote.keeps_metadata() {
                    self.report.ok(
                        "head + metadata",
                        "file:// keeps no metadata (no recorded SHA-256 to check against)",
                    );
                } else {
                    self.report.push(
                        "head + metadata",
                        Status::Warn,
                        "user metadata dropped: restore and verify cannot check the recorded SHA-256",
                    );
                }
            }
            Err(e) => self.report.failed("head + metadata", e, ""),
        }
        let range = self.client.get_range(&self.path, 1000..3000);
        match self.step("ranged GET", range).await {
            Ok(b) if b[..] == data[1000..3000] => self.report.ok("ranged get", "bytes 1000-2999"),
            Ok(b) => self.report.failed(
                "ranged get",
                Error::Data(format!("a GET of 2000 bytes gave {}", b.len())),
                "",
            ),
            Err(e) => self.report.failed("ranged get", e, ""),
        }
        self.multipart(attributes).await;
        self.list_and_delete().await;
    }

    async fn multipart(&mut self, attributes: object_store::Attributes) {
        let path = self.at("multipart");
        let opts = PutMultipartOptions {
            attributes,
            ..PutMultipartOptions::default()
        };
        // On S3 the upload `store --from-etcd` and `copy` make, which carries
        // SSE-C's key through CompleteMultipartUpload (transport/put/parts.rs).
        let target = match self.target.as_ref().map(|t| t.at(path.as_ref())) {
            Some(Ok(t)) => Some(t),
            Some(Err(e)) => return self.report.failed("multipart", e, ""),
            None => None,
        };
        let start = async {
            match &target {
                Some(t) => t.start_upload(opts).await,
                None => self.client.put_multipart_opts(&path, opts).await,
            }
        };
        let mut upload = match self.step("CreateMultipartUpload", start).await {
            Ok(u) => u,
            Err(e) => {
                let h = hint(&e, "s3:PutObject");
                self.report.failed("multipart", e, &h);
                return;
            }
        };
        self.wrote = true;
        let part = Bytes::from(vec![7u8; PART]);
        let mut result = Ok(());
        for _ in 0..2 {
            result = self
                .step(
                    "UploadPart",
                    upload.put_part(PutPayload::from(part.clone())),
                )
                .await;
            if result.is_err() {
                break;
            }
        }
        let result = match result {
            Ok(()) => {
                self.step("CompleteMultipartUpload", upload.complete())
                    .await
            }
            Err(e) => {
                let _ = upload.abort().await;
                Err(e)
            }
        };
        match result {
            Ok(_) => match self.step("HEAD", self.client.head(&path)).await {
                Ok(m) if m.size == 2 * PART as u64 => {
                    self.report.ok("multipart", "two 5 MiB parts")
                }
                Ok(m) => self.report.failed(
                    "multipart",
                    Error::Data(format!("the object has {} bytes, not 10 MiB", m.size)),
                    "",
                ),
                Err(e) => self.report.failed("multipart", e, ""),
            },
            Err(e) => {
                let h = hint(&e, "s3:PutObject");
                self.report.failed("multipart", e, &h);
            }
        }
    }

    async fn list_and_delete(&mut self) {
        let prefix = ObjectPath::from(self.report.prefix.as_str());
        let listed = self.step(
            "LIST",
            self.client.list(Some(&prefix)).try_collect::<Vec<_>>(),
        );
        match listed.await {
            Ok(found) if found.iter().any(|m| m.location == self.path) => self.report.ok(
                "list",
                format!("{} object(s) under the prefix", found.len()),
            ),
            Ok(_) => self.report.failed(
                "list",
                Error::Data("the listing misses the object just put".into()),
                "",
            ),
            Err(e) => {
                let h = hint(&e, "s3:ListBucket");
                self.report.failed("list", e, &h);
            }
        }
        match self.step("DELETE", self.client.delete(&self.path)).await {
            Ok(()) => match self.client.head(&self.path).await {
                Err(object_store::Error::NotFound { .. }) => self.report.ok("delete", "gone"),
                Ok(_) => self.report.failed(
                    "delete",
                    Error::Data("the object is still there after DELETE".into()),
                    "",
                ),
                Err(e) => self.report.failed("delete", Error::remote("HEAD", e), ""),
            },
            Err(e) => {
                let h = hint(&e, "s3:DeleteObject");
                self.report.failed("delete", e, &h);
            }
        }
    }

    /// Lines for settings that change what is sent (SSE, CHECKSUM): the
    /// checks above ran with them, so their lines say whether the server took
    /// them; these say what was sent.
    pub(super) fn configured_extras(&mut self) {
        use crate::transport::s3_options::{ChecksumMode, Sse};
        let Remote::S3(s) = &self.cfg.remote else {
            return;
        };
        let sent = "sent with the PUT, parts, GET and HEAD above";
        match s.options.checksum {
            ChecksumMode::Off => {
                self.report
                    .push("checksum", Status::Skipped, "CHECKSUM is unset: none sent")
            }
            ChecksumMode::Sha256 => self.report.ok(
                "checksum",
                "CHECKSUM=sha256: x-amz-checksum-sha256 sent with the PUT and each part above",
            ),
        }
        let sse = match &s.options.sse {
            Sse::None => {
                self.report.push(
                    "sse",
                    Status::Skipped,
                    "SSE is unset: the bucket's default encryption applies",
                );
                return;
            }
            Sse::S3 => format!("SSE=AES256 {sent}"),
            Sse::Kms { key_id, .. } => match key_id {
                Some(id) => format!("SSE=aws:kms with SSE_KMS_KEY_ID={id} {sent}"),
                None => format!("SSE=aws:kms with the account's default key {sent}"),
            },
            Sse::Customer { from, .. } => format!("SSE-C with the key of {from} {sent}"),
        };
        self.report.ok("sse", sse);
    }
}
