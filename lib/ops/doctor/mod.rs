//! `doctor`: run once with a Job's environment against the real bucket, it says
//! line by line whether `store`, `restore` and `delete` will work there and,
//! where not, what to set: the credential source, region, addressing, TLS,
//! clock skew, the identity (STS GetCallerIdentity, informational), then
//! PUT/GET/HEAD with our metadata, a ranged GET, a multipart upload of two
//! 5 MiB parts, list, delete, abort and ListMultipartUploads. On `file://`,
//! `az://` and `gs://` the object checks run and the S3-only ones say SKIPPED
//! with why (backends.rs).
//!
//! It writes only under `snapjob-doctor-<random>/` (below the STORAGE_URL
//! prefix) and removes everything there at the end, also when a step failed.

mod backends;
mod steps;
mod uploads;

use crate::base::cancel::{Deadline, Shutdown};
use crate::base::error::Error;
use crate::config::DoctorConfig;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Works.
    Ok,
    /// Works, with a limit worth knowing (store/restore/delete still work).
    Warn,
    /// Does not work: store, restore or delete will fail.
    Failed,
    /// Not checked here (not configured, or not this kind of store).
    Skipped,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Line {
    /// What was checked, e.g. `put`.
    pub check: &'static str,
    /// The outcome.
    pub status: Status,
    /// What was found, or for a failure what to set.
    pub detail: String,
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = match self.status {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Failed => "FAILED",
            Status::Skipped => "SKIPPED",
        };
        if self.detail.is_empty() {
            write!(f, "{:<22} {status}", self.check)
        } else {
            write!(f, "{:<22} {status}: {}", self.check, self.detail)
        }
    }
}

/// What `doctor` found.
#[derive(Debug, Default)]
pub struct DoctorReport {
    /// The checks, in order.
    pub lines: Vec<Line>,
    /// The prefix it wrote under (removed again).
    pub prefix: String,
    /// The first failure, whose class is the exit code; `None`: the store works.
    pub failure: Option<Error>,
    /// For a store that is not S3, what a refusal asks to check (the checks'
    /// own hints name S3 actions).
    denied_hint: Option<&'static str>,
}

impl DoctorReport {
    fn push(&mut self, check: &'static str, status: Status, detail: impl Into<String>) {
        let line = Line {
            check,
            status,
            detail: detail.into(),
        };
        tracing::debug!(line = %line, "doctor");
        self.lines.push(line);
    }

    fn ok(&mut self, check: &'static str, detail: impl Into<String>) {
        self.push(check, Status::Ok, detail);
    }

    /// A failed check; the first failure decides the exit code.
    fn failed(&mut self, check: &'static str, error: Error, hint: &str) {
        let hint = match self.denied_hint {
            Some(h) if matches!(error.class(), crate::base::error::ErrorClass::Denied) => h,
            _ => hint,
        };
        let detail = if hint.is_empty() {
            error.chain()
        } else {
            format!("{} ({hint})", error.chain())
        };
        self.push(check, Status::Failed, detail);
        if self.failure.is_none() {
            self.failure = Some(error);
        }
    }
}

/// Runs every check. Never fails itself: each failure is a line, the first one
/// kept in [`DoctorReport::failure`].
#[tracing::instrument(name = "doctor", skip_all)]
pub async fn doctor(cfg: &DoctorConfig, shutdown: &Shutdown) -> DoctorReport {
    let deadline = Deadline::after(cfg.deadline);
    let mut report = DoctorReport {
        prefix: format!("snapjob-doctor-{}", random_suffix()),
        denied_hint: backends::denied_hint(&cfg.remote),
        ..DoctorReport::default()
    };
    steps::settings(cfg, &mut report);
    let key = format!("{}/object", report.prefix);
    let connected = cfg.remote.connect_put(&key, &deadline, shutdown).await;
    let (client, path, target) = match connected {
        Ok(c) => c,
        Err(e) => {
            if let crate::transport::remote::Remote::Local { root } = &cfg.remote {
                let hint = format!(
                    "STORAGE_URL: {} must be a directory this user can create and write",
                    root.display()
                );
                report.failed("store", e, &hint);
            } else {
                let hint = steps::hint(&e, "s3:ListBucket");
                report.failed("credentials", e, &hint);
            }
            return report;
        }
    };
    let mut run = steps::Run {
        cfg,
        client,
        path,
        target,
        deadline: &deadline,
        shutdown,
        report: &mut report,
        upload: None,
        wrote: false,
    };
    run.connection().await;
    run.identity().await;
    run.objects().await;
    run.uploads().await;
    // Where the other branch's SSE and CHECKSUM settings add their lines.
    run.configured_extras();
    run.other_extras();
    run.cleanup().await;
    report
}

/// Eight hex digits, from the clock and the process id.
fn random_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mixed =
        (nanos as u64 ^ (u64::from(std::process::id()) << 32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    format!("{:08x}", (mixed >> 32) as u32)
}
