//! What `doctor` says where a store is not S3 (`file://`, `az://`, `gs://`),
//! and the identity line (STS GetCallerIdentity) where it is.
//!
//! The identity line is informational: a FAILED one does not set the exit
//! code, which follows the requests to the bucket (a server or role that
//! refuses or lacks STS can still hold the backups; README, "doctor").

use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;

use super::Status;
use super::steps::Run;
use crate::base::error::Error;
use crate::transport::put::{IdentityFailure, StsEndpoint, sts_endpoint};
use crate::transport::remote::Remote;

/// What a refusal asks to check on a store that is not S3.
pub(super) fn denied_hint(remote: &Remote) -> Option<&'static str> {
    match remote {
        Remote::S3(_) => None,
        Remote::Azure(_) => Some(
            "check AZURE_STORAGE_CONNECTION_STRING, the account key, SAS token or identity; \
             they must allow reading, writing, listing and deleting blobs in the container",
        ),
        Remote::Gcs(_) => Some(
            "check GOOGLE_APPLICATION_CREDENTIALS or the workload's service account; it needs \
             storage.objects.create, get, list and delete on the bucket",
        ),
        Remote::Local { .. } => {
            Some("STORAGE_URL: the directory's permissions must let this user write there")
        }
    }
}

impl Run<'_> {
    /// The connection lines of a store that is not S3: its credential source,
    /// and why the S3-only checks are skipped.
    pub(super) fn other_connection(&mut self) {
        let (credentials, why) = match &self.cfg.remote {
            Remote::S3(_) => return,
            Remote::Local { .. } => (None, "file:// has no server"),
            Remote::Azure(a) => (
                Some(format!(
                    "{} for account {} (the requests below show whether it is accepted)",
                    a.credentials.source(),
                    a.account
                )),
                "S3 only; on Azure an untrusted certificate or a skewed clock fails the requests below",
            ),
            Remote::Gcs(g) => (
                Some(format!(
                    "{} (the requests below show whether they are accepted)",
                    g.credentials.source()
                )),
                "S3 only; on GCS an untrusted certificate or a skewed clock fails the requests below",
            ),
        };
        match credentials {
            Some(c) => self.report.ok("credentials", c),
            None => self.report.push(
                "credentials",
                Status::Skipped,
                "file:// needs none (the directory's permissions apply)",
            ),
        }
        for check in ["tls", "clock skew", "region"] {
            self.report.push(check, Status::Skipped, why);
        }
    }

    /// Who the S3 credentials are: STS GetCallerIdentity with the same
    /// credentials. Never sets the exit code.
    pub(super) async fn identity(&mut self) {
        let Remote::S3(s) = &self.cfg.remote else {
            let why = match &self.cfg.remote {
                Remote::Local { .. } => "file:// has no principal",
                _ => {
                    "asked of AWS STS for S3 only; the requests below show whether the credentials work"
                }
            };
            self.report.push("identity", Status::Skipped, why);
            return;
        };
        let Some(target) = &self.target else { return };
        let sts = match sts_endpoint(
            self.cfg.sts_endpoint.as_deref(),
            s.endpoint.as_deref(),
            target.region(),
        ) {
            StsEndpoint::Skip(why) => {
                self.report.push("identity", Status::Skipped, why);
                return;
            }
            StsEndpoint::Ask(url) => url,
        };
        let asked = async { Ok(target.caller_identity(&sts).await) };
        let detail = match self.deadline.run(self.shutdown, "doctor", asked).await {
            Ok(Ok(id)) => {
                let line = format!("{} (account {})", id.arn, id.account);
                self.report.ok("identity", line);
                return;
            }
            Ok(Err(IdentityFailure::Refused(why))) => format!(
                "{sts}: {why} (the credentials are not valid there: check the source named \
                 above, e.g. ACCESS_KEY_ID, SECRET_ACCESS_KEY, AWS_SESSION_TOKEN; informational, \
                 the S3 checks decide the exit code)"
            ),
            Ok(Err(IdentityFailure::Unreachable(why))) => format!(
                "{sts}: {why} (set AWS_ENDPOINT_URL_STS to an STS endpoint this pod reaches; \
                 informational, the S3 checks decide the exit code)"
            ),
            Err(e) => format!("{sts}: {}", e.chain()),
        };
        self.report.push("identity", Status::Failed, detail);
    }

    /// The `checksum` and `sse` lines of a store that is not S3.
    pub(super) fn other_extras(&mut self) {
        if matches!(self.cfg.remote, Remote::S3(_)) {
            return;
        }
        let why = "S3 only (CHECKSUM and SSE are not read for this store)";
        self.report.push("checksum", Status::Skipped, why);
        self.report.push("sse", Status::Skipped, why);
    }

    /// Why ListMultipartUploads does not apply to this store.
    pub(super) fn no_upload_listing(&self) -> &'static str {
        match self.cfg.remote {
            Remote::Azure(_) => {
                "Azure lists no pending uploads: blocks never committed are no blob, \
                 and the service discards them after a week"
            }
            Remote::Gcs(_) => {
                "GCS lists no resumable sessions: one never finished makes no object \
                 and expires after a week"
            }
            _ => "file:// stages an upload in a file beside the key, removed on abort",
        }
    }

    /// After the abort of the upload to `path`: nothing is at the key, and on
    /// `file://` no staging file is left beside it.
    pub(super) async fn after_abort(&mut self, path: &ObjectPath) {
        let failed = |l: &super::Line| l.check == "abort" && l.status == Status::Failed;
        if self.report.lines.iter().any(failed) {
            // The part was refused: that line says why.
            return;
        }
        match self.client.head(path).await {
            Err(object_store::Error::NotFound { .. }) => {}
            Ok(_) => {
                let e = Error::Data("an object is at the key of the aborted upload".into());
                self.report.failed("abort", e, "");
                return;
            }
            Err(e) => {
                self.report.failed("abort", Error::remote("HEAD", e), "");
                return;
            }
        }
        let detail = match &self.cfg.remote {
            Remote::Local { root } => {
                let dir = root.join(&self.report.prefix);
                let staged: Vec<String> = std::fs::read_dir(&dir)
                    .map(|d| {
                        d.flatten()
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .filter(|n| n.starts_with("aborted#"))
                            .collect()
                    })
                    .unwrap_or_default();
                if !staged.is_empty() {
                    let e = Error::Data(format!(
                        "staging files left after the abort: {}",
                        staged.join(", ")
                    ));
                    self.report.failed("abort", e, "");
                    return;
                }
                "aborted: nothing at the key, no staging file left"
            }
            Remote::Azure(_) => {
                "nothing at the key (Azure has no abort: the uncommitted block is discarded by the service)"
            }
            _ => "aborted: nothing at the key",
        };
        self.report.ok("abort", detail);
    }

    /// On `file://`, removes the prefix's directory (object deletes leave the
    /// emptied directories); what could not be removed, for the cleanup line.
    pub(super) fn remove_local_prefix(&self) -> Vec<String> {
        let Remote::Local { root } = &self.cfg.remote else {
            return Vec::new();
        };
        let dir = root.join(&self.report.prefix);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Vec::new(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => vec![format!("{} ({e})", dir.display())],
        }
    }
}
