//! `verify`: a restore drill. Re-reads stored backups and proves each restorable,
//! writing nothing but its report.
#[path = "cli/mod.rs"]
mod cli;

use clap::Parser;
use snapjob::{VerifyConfig, VerifyFlags};

/// Download each selected backup (one at a time, to a temporary file that is
/// removed), check its size and recorded SHA-256, inflate it, check its etcd
/// trailer, check its bbolt db as `bbolt check` does and compute etcd's HashKV
/// from it. One JSON line per backup on stdout, then a summary line. Exit 0 when
/// every backup passed, 65 when one is corrupt.
#[derive(Debug, Parser)]
#[command(name = "verify", version)]
struct Args {
    #[command(flatten)]
    common: cli::Common,
    /// Verify the newest N backups of $CLUSTER under --prefix (by the metadata store records)
    #[arg(long, value_name = "N")]
    latest: Option<String>,
    /// Verify every object under --prefix
    #[arg(long)]
    all: bool,
    /// Key prefix for --latest and --all [default: $CLUSTER-]
    #[arg(long, value_name = "PREFIX")]
    prefix: Option<String>,
    /// Where each snapshot is downloaded while it is checked [default: $TMPDIR or /tmp]
    #[arg(long, value_name = "DIR")]
    temp_dir: Option<String>,
    /// Also build an etcd member data dir from each backup with our restore (in the temp
    /// dir, removed after) and check it the same way
    #[arg(long)]
    restore_test: bool,
}

pub fn main() -> std::process::ExitCode {
    let args: Args = cli::parse();
    let env = cli::env_inputs();
    cli::run("verify", &env.clone(), |shutdown| async move {
        let inputs = env.overlay(args.common.inputs());
        let flags = VerifyFlags {
            latest: args.latest,
            all: args.all,
            prefix: args.prefix,
            temp_dir: args.temp_dir,
            restore_test: args.restore_test,
        };
        let cfg = VerifyConfig::from_inputs(&inputs, &flags)?;
        let report = snapjob::verify(&cfg, &shutdown, &mut |checked| {
            if let Ok(line) = serde_json::to_string(checked) {
                println!("{line}");
            }
        })
        .await?;
        let passed = report.backups.iter().filter(|c| c.passed()).count();
        println!(
            "{}",
            serde_json::json!({
                "summary": "verify",
                "backups": report.backups.len(),
                "passed": passed,
                "failed": report.backups.len() - passed,
                "seconds": (report.seconds * 1000.0).round() / 1000.0,
            })
        );
        if let Some(url) = &inputs.pushgateway_url {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let body = snapjob::report::verify_metrics(&report, now);
            let cluster = inputs.cluster.as_deref().unwrap_or("");
            if let Err(e) = snapjob::report::push_text(url, cluster, "verify", body).await {
                tracing::warn!(error = %e, "pushing metrics failed; the run's result stands");
            }
        }
        report.outcome().map(|()| report)
    })
}
