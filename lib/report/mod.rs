//! What a run reports beyond its logs: a one-line JSON summary for the pod's
//! termination message (what `kubectl describe` and the Job's status show), and
//! optional Prometheus metrics pushed to a Pushgateway.

use serde::Serialize;

use crate::base::error::{Error, ErrorClass};

mod push;

pub use push::{push_metrics, push_text, verify_metrics};

/// The termination message is cut by Kubernetes at 4096 bytes; stay below.
const TERMINATION_LIMIT: usize = 4096;

/// The outcome of one run.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Summary {
    /// `store`, `delete`, `restore`, `snapshot`.
    pub operation: String,
    /// `ok` or `error`.
    pub result: String,
    /// Object key or file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Bytes moved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// SHA-256 of the stored object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Wall time.
    pub seconds: f64,
    /// The process exit code.
    pub exit_code: u8,
    /// The error, one line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What to look at first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// What `delete`'s retention did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// What `copy` did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy: Option<Copy>,
}

/// What `copy` did, in the summary and the metrics.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Copy {
    /// The source URL.
    pub from: String,
    /// Objects (kops backups) copied.
    pub copied: usize,
    /// Already at the target with the same SHA-256.
    pub skipped: usize,
}

/// What retention did, in the summary and the metrics.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Retention {
    /// Backups of the cluster kept.
    pub kept: usize,
    /// Backups deleted (a dry run: to be deleted).
    pub deleted: usize,
    /// Backups the store refused to delete.
    pub skipped: usize,
    /// Bytes of the deleted backups.
    pub bytes_freed: u64,
    /// Nothing was deleted.
    pub dry_run: bool,
}

/// Reports implement this to fill in their part of the summary.
pub trait Outcome {
    /// Key, bytes and SHA-256 of a successful run.
    fn fill(&self, _summary: &mut Summary) {}
}

impl Outcome for () {}

impl Outcome for crate::ops::doctor::DoctorReport {}

impl<T: Outcome> Outcome for Option<T> {
    fn fill(&self, s: &mut Summary) {
        if let Some(t) = self {
            t.fill(s);
        }
    }
}

impl Outcome for crate::ops::store::StoreReport {
    fn fill(&self, s: &mut Summary) {
        s.key = Some(self.location.clone());
        s.bytes = Some(self.bytes);
        s.sha256 = Some(self.sha256.clone());
    }
}

impl Outcome for crate::ops::delete::DeleteReport {
    fn fill(&self, s: &mut Summary) {
        s.retention = self.retention.as_ref().map(|r| Retention {
            kept: r.kept,
            deleted: r.deleted,
            skipped: r.skipped,
            bytes_freed: r.bytes_freed,
            dry_run: r.dry_run,
        });
    }
}

impl Outcome for crate::ops::copy::CopyReport {
    fn fill(&self, s: &mut Summary) {
        s.key = Some(self.to.clone());
        s.bytes = Some(self.bytes);
        s.copy = Some(Copy {
            from: self.from.clone(),
            copied: self.copied,
            skipped: self.skipped,
        });
    }
}

impl Outcome for crate::ops::restore::RestoreReport {
    fn fill(&self, s: &mut Summary) {
        s.key = Some(self.source.clone());
        s.bytes = self.snapshot.as_ref().map(|i| i.input_bytes);
    }
}

impl Outcome for crate::ops::verify::VerifyReport {
    fn fill(&self, s: &mut Summary) {
        if let [one] = self.backups.as_slice() {
            s.key = Some(one.key.clone());
        }
        s.bytes = Some(self.backups.iter().map(|c| c.object_bytes).sum());
    }
}

impl Outcome for crate::ops::list::ListReport {
    fn fill(&self, s: &mut Summary) {
        s.bytes = Some(self.entries.iter().map(|e| e.size).sum());
    }
}

impl Outcome for crate::ops::snapshot::SnapshotReport {
    fn fill(&self, s: &mut Summary) {
        s.key = Some(self.file.display().to_string());
        s.bytes = Some(self.snapshot_bytes);
    }
}

/// What to check first, by error class.
pub fn hint(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::Config => {
            "a setting is missing or invalid: see the variable named in the error"
        }
        ErrorClass::Usage => "see --help",
        ErrorClass::NotFound => "check BUCKET_NAME and the backup name",
        ErrorClass::Denied => {
            "check ACCESS_KEY_ID/SECRET_ACCESS_KEY, CA_BUNDLE for TLS, and DECRYPT_IDENTITY_FILE for an encrypted backup"
        }
        ErrorClass::Data => {
            "the snapshot or object is corrupt: take a new backup; nothing was stored"
        }
        ErrorClass::LocalIo => "check the file and its volume mount",
        ErrorClass::Temporary => "timed out: the Job retries; raise DEADLINE if transfers are slow",
        ErrorClass::Unavailable => "the object store is throttling or failing: the Job retries",
        ErrorClass::ConnectionRefused => "nothing listens at ENDPOINT",
        ErrorClass::Internal => "a defect in snapjob: report it with this message",
        ErrorClass::Cancelled(_) => {
            "the Job was stopped (deadline or deletion); uploads were aborted"
        }
        _ => "see the error",
    }
}

impl Summary {
    /// The summary of a finished run.
    pub fn of<T: Outcome>(operation: &str, result: &Result<T, Error>, seconds: f64) -> Summary {
        let mut s = Summary {
            operation: operation.to_string(),
            seconds: (seconds * 1000.0).round() / 1000.0,
            ..Summary::default()
        };
        match result {
            Ok(report) => {
                s.result = "ok".into();
                report.fill(&mut s);
            }
            Err(e) => {
                s.result = "error".into();
                s.exit_code = e.exit_code();
                s.error = Some(e.chain());
                s.hint = Some(hint(e.class()).to_string());
            }
        }
        s
    }

    /// One JSON line of at most 4 KiB (the error is shortened if needed).
    pub fn to_line(&self) -> String {
        let mut s = self.clone();
        loop {
            let line = serde_json::to_string(&s).expect("plain struct");
            let Some(err) = s.error.as_mut().filter(|_| line.len() > TERMINATION_LIMIT) else {
                return line;
            };
            let keep = err.len().saturating_sub(line.len() - TERMINATION_LIMIT + 3);
            let cut = (0..=keep)
                .rev()
                .find(|i| err.is_char_boundary(*i))
                .unwrap_or(0);
            err.truncate(cut);
            err.push('…');
        }
    }

    /// Prometheus text for a Pushgateway: duration, bytes, exit code, and the
    /// last-success timestamp on success.
    pub fn metrics(&self, now_unix: u64) -> String {
        let mut out = String::new();
        let mut gauge = |name: &str, help: &str, v: String| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}\n"
            ));
        };
        gauge(
            "snapjob_duration_seconds",
            "Wall time of the last run.",
            self.seconds.to_string(),
        );
        gauge(
            "snapjob_bytes",
            "Bytes moved by the last run.",
            self.bytes.unwrap_or(0).to_string(),
        );
        gauge(
            "snapjob_exit_code",
            "Exit code of the last run.",
            self.exit_code.to_string(),
        );
        if let Some(r) = self.retention.as_ref().filter(|r| !r.dry_run) {
            gauge(
                "snapjob_retention_kept",
                "Backups of the cluster retention kept.",
                r.kept.to_string(),
            );
            gauge(
                "snapjob_retention_deleted",
                "Backups retention deleted.",
                r.deleted.to_string(),
            );
            gauge(
                "snapjob_retention_skipped",
                "Backups the store refused to delete (object lock, legal hold, policy).",
                r.skipped.to_string(),
            );
            gauge(
                "snapjob_retention_bytes_freed",
                "Bytes of the backups retention deleted.",
                r.bytes_freed.to_string(),
            );
        }
        if let Some(c) = &self.copy {
            gauge(
                "snapjob_copy_copied",
                "Backups copy copied.",
                c.copied.to_string(),
            );
            gauge(
                "snapjob_copy_skipped",
                "Backups copy found at the target already.",
                c.skipped.to_string(),
            );
        }
        if self.result == "ok" {
            gauge(
                "snapjob_last_success_timestamp_seconds",
                "When a run last succeeded.",
                now_unix.to_string(),
            );
        }
        out
    }
}

/// Writes the summary as the pod's termination message. Best effort: a missing
/// default path (not in a pod) is skipped silently, other failures are logged.
pub fn write_termination_log(path: &str, explicit: bool, summary: &Summary) {
    if !explicit && !std::path::Path::new(path).exists() {
        return;
    }
    if let Err(e) = std::fs::write(path, summary.to_line()) {
        tracing::warn!(path, error = %e, "cannot write the termination message");
    }
}

#[cfg(test)]
mod tests {
    use super::push::{base64url, label};
    use super::*;

    #[test]
    fn summaries_of_success_and_failure() {
        let ok: Result<(), Error> = Ok(());
        let s = Summary::of("delete", &ok, 1.23456);
        assert_eq!(
            s.to_line(),
            r#"{"operation":"delete","result":"ok","seconds":1.235,"exit_code":0}"#
        );
        let err: Result<(), Error> = Err(Error::Config("BUCKET_NAME is not set".into()));
        let s = Summary::of("store", &err, 0.0);
        assert_eq!(s.exit_code, 78);
        assert_eq!(s.error.as_deref(), Some("BUCKET_NAME is not set"));
        assert!(s.hint.unwrap().contains("variable"));
    }

    #[test]
    fn the_line_stays_under_4_kib() {
        let err: Result<(), Error> = Err(Error::Other("é".repeat(5000)));
        let line = Summary::of("store", &err, 0.0).to_line();
        assert!(line.len() <= 4096, "{}", line.len());
        // What must survive the cut: the run's identity and outcome, and as much
        // of the error as fits, cut at its end on a character boundary.
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["operation"], "store");
        assert_eq!(v["result"], "error");
        assert_eq!(v["exit_code"], 1);
        assert!(v["hint"].is_string());
        let kept = v["error"].as_str().unwrap();
        assert!(
            kept.len() > 3000,
            "most of the error is kept: {}",
            kept.len()
        );
        assert!(kept.trim_end_matches(['.', '…']).chars().all(|c| c == 'é'));
    }

    #[test]
    fn retention_is_summarised_and_measured_unless_a_dry_run() {
        use crate::ops::delete::{DeleteOutcome, DeleteReport, PruneReport};
        let mut report = DeleteReport {
            outcome: DeleteOutcome::Deleted,
            retention: Some(PruneReport {
                kept: 3,
                deleted: 2,
                skipped: 1,
                bytes_freed: 4096,
                dry_run: false,
            }),
        };
        let s = Summary::of("delete", &Ok::<_, Error>(report.clone()), 1.0);
        let v: serde_json::Value = serde_json::from_str(&s.to_line()).unwrap();
        assert_eq!(v["retention"]["deleted"], 2);
        assert_eq!(v["retention"]["bytes_freed"], 4096);
        let text = s.metrics(1);
        assert!(text.contains("snapjob_retention_deleted 2\n"), "{text}");
        assert!(text.contains("snapjob_retention_skipped 1\n"), "{text}");
        report.retention.as_mut().unwrap().dry_run = true;
        let s = Summary::of("delete", &Ok::<_, Error>(report), 1.0);
        assert!(!s.metrics(1).contains("snapjob_retention"));
    }

    #[test]
    fn metrics_and_labels() {
        let ok: Result<(), Error> = Ok(());
        let text = Summary::of("store", &ok, 2.0).metrics(1700000000);
        assert!(text.contains("snapjob_last_success_timestamp_seconds 1700000000\n"));
        assert!(text.contains("snapjob_exit_code 0\n"));
        let err: Result<(), Error> = Err(Error::Data("x".into()));
        assert!(
            !Summary::of("store", &err, 2.0)
                .metrics(1)
                .contains("last_success")
        );
        assert_eq!(label("cluster", "xyz123"), "cluster/xyz123");
        assert_eq!(label("cluster", "a/b"), "cluster@base64/YS9i");
        assert_eq!(base64url(b"hello?"), "aGVsbG8_");
    }
}
