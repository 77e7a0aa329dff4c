//! `doctor`: run once with a Job's environment, it checks the store line by line
//! (credentials, TLS, clock, region, identity, PUT/GET/HEAD, ranged GET, multipart, list,
//! delete, abort, ListMultipartUploads) and says what to set where one fails.
#[path = "cli/mod.rs"]
mod cli;

use clap::Parser;
use snapjob::DoctorConfig;

/// Check that store, restore and delete will work against the configured store,
/// with the Job's environment. Writes only under snapjob-doctor-<random>/ and
/// removes it. One line per check on stdout: OK, WARN, FAILED (with what to
/// set) or SKIPPED. Exit 0 when nothing failed but the informational identity
/// line (STS GetCallerIdentity); else the exit code of the first failure (77
/// denied, 78 configuration, ...). Also for file://, az:// and gs:// stores.
#[derive(Debug, Parser)]
#[command(name = "doctor", version)]
struct Args {
    #[command(flatten)]
    common: cli::Common,
}

pub fn main() -> std::process::ExitCode {
    let args: Args = cli::parse();
    let env = cli::env_inputs();
    cli::run("doctor", &env.clone(), |shutdown| async move {
        let cfg = DoctorConfig::from_inputs(&env.overlay(args.common.inputs()))?;
        let mut report = snapjob::doctor(&cfg, &shutdown).await;
        println!(
            "snapjob doctor: {}",
            cfg.remote.describe(&format!("{}/", report.prefix))
        );
        for line in &report.lines {
            println!("{line}");
        }
        match report.failure.take() {
            Some(e) => Err(e),
            None => Ok(report),
        }
    })
}
