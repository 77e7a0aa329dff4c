//! Prometheus text and the Pushgateway: `verify`'s gauges, and the POST of a
//! run's metrics to its group (`job/snapjob/cluster/<c>/operation/<op>`).

use std::time::Duration;

use super::Summary;

/// A Prometheus label value, quoted.
pub(super) fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `verify`'s gauges: how many backups were checked and failed, when all last
/// passed, and per backup (label `key`): passed, when it was verified, its
/// revision, HashKV and live keys.
pub fn verify_metrics(report: &crate::ops::verify::VerifyReport, now_unix: u64) -> String {
    let mut out = String::new();
    let gauge = |out: &mut String, name: &str, help: &str, rows: Vec<(String, String)>| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for (labels, v) in rows {
            out.push_str(&format!("{name}{labels} {v}\n"));
        }
    };
    let failed = report.backups.iter().filter(|c| !c.passed()).count();
    gauge(
        &mut out,
        "snapjob_verify_backups",
        "Backups the last verify run checked.",
        vec![(String::new(), report.backups.len().to_string())],
    );
    gauge(
        &mut out,
        "snapjob_verify_failed",
        "Backups the last verify run found corrupt.",
        vec![(String::new(), failed.to_string())],
    );
    if failed == 0 {
        gauge(
            &mut out,
            "snapjob_verify_last_success_timestamp_seconds",
            "When every backup a verify run checked last passed.",
            vec![(String::new(), now_unix.to_string())],
        );
    }
    let per = |f: &dyn Fn(&crate::ops::verify::Checked) -> Option<String>| {
        report
            .backups
            .iter()
            .filter_map(|c| Some((format!("{{key=\"{}\"}}", label_value(&c.key)), f(c)?)))
            .collect::<Vec<_>>()
    };
    gauge(
        &mut out,
        "snapjob_verify_passed",
        "1 if the backup passed its last verification, else 0.",
        per(&|c| Some(u8::from(c.passed()).to_string())),
    );
    gauge(
        &mut out,
        "snapjob_verify_timestamp_seconds",
        "When the backup was last verified.",
        per(&|_| Some(now_unix.to_string())),
    );
    gauge(
        &mut out,
        "snapjob_verify_revision",
        "The etcd revision the backup holds.",
        per(&|c| c.facts.as_ref().map(|f| f.revision.to_string())),
    );
    gauge(
        &mut out,
        "snapjob_verify_hashkv",
        "etcd's HashKV of the backup at its revision.",
        per(&|c| c.facts.as_ref().map(|f| f.hash_kv.to_string())),
    );
    gauge(
        &mut out,
        "snapjob_verify_keys",
        "Live keys in the backup at its revision.",
        per(&|c| c.facts.as_ref().map(|f| f.keys.to_string())),
    );
    out
}

/// A Pushgateway URL path element: plain when safe, else `label@base64/value`.
pub(super) fn label(name: &str, value: &str) -> String {
    let safe = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if safe {
        format!("{name}/{value}")
    } else {
        format!("{name}@base64/{}", base64url(value.as_bytes()))
    }
}

pub(super) fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    if out.is_empty() { "=".into() } else { out }
}

/// POSTs the metrics (POST keeps the last-success timestamp of earlier runs when
/// this one failed) to `<url>/metrics/job/snapjob/cluster/<c>/operation/<op>`.
pub async fn push_metrics(
    url: &str,
    cluster: &str,
    summary: &Summary,
    now_unix: u64,
) -> Result<(), String> {
    push_text(url, cluster, &summary.operation, summary.metrics(now_unix)).await
}

/// POSTs Prometheus text to the group of `cluster` and `operation`.
pub async fn push_text(
    url: &str,
    cluster: &str,
    operation: &str,
    body: String,
) -> Result<(), String> {
    let target = format!(
        "{}/metrics/job/snapjob/{}/{}",
        url.trim_end_matches('/'),
        label("cluster", cluster),
        label("operation", operation)
    );
    // Credentials in the URL (`https://user:pw@host`) are never shown.
    let shown = crate::transport::remote::redact_userinfo(&target);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .post(&target)
        .header("content-type", "text/plain; version=0.0.4")
        .body(body)
        .send()
        .await
        .map_err(|e| {
            let e = e.without_url();
            format!(
                "POST {shown}: {}",
                crate::base::error::chain_text(&e).replace(" | ", ": ")
            )
        })?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!(
            "POST {shown}: the Pushgateway answered {}",
            response.status()
        ))
    }
}
