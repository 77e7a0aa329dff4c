//! `list`: the backups under a prefix, newest first, with what their metadata records.
#[path = "cli/mod.rs"]
mod cli;

use clap::Parser;
use snapjob::ListConfig;

/// List the backups under --prefix (default $CLUSTER-), newest first: key, size,
/// time, whether a SHA-256 is recorded, the cluster, and the member's revision and
/// HashKV when recorded. A table, or one JSON object per line with --json.
#[derive(Debug, Parser)]
#[command(name = "list", version)]
struct Args {
    #[command(flatten)]
    common: cli::Common,
    /// Key prefix [default: $CLUSTER-, else everything]
    #[arg(long, value_name = "PREFIX")]
    prefix: Option<String>,
    /// One JSON object per backup, per line
    #[arg(long)]
    json: bool,
}

pub fn main() -> std::process::ExitCode {
    let args: Args = cli::parse();
    let env = cli::env_inputs();
    cli::run("list", &env.clone(), |shutdown| async move {
        let cfg = ListConfig::from_inputs(&env.overlay(args.common.inputs()), args.prefix)?;
        let report = snapjob::list(&cfg, &shutdown).await?;
        if args.json {
            for e in &report.entries {
                if let Ok(line) = serde_json::to_string(e) {
                    println!("{line}");
                }
            }
        } else {
            println!(
                "{:<20}  {:>12}  {:<6}  {:>10}  {:>10}  KEY",
                "TIME", "SIZE", "SHA256", "REVISION", "HASHKV"
            );
            for e in &report.entries {
                println!(
                    "{:<20}  {:>12}  {:<6}  {:>10}  {:>10}  {}",
                    e.time,
                    e.size,
                    if e.sha256_recorded { "yes" } else { "no" },
                    e.revision.as_deref().unwrap_or("-"),
                    e.hash_kv.as_deref().unwrap_or("-"),
                    e.key
                );
            }
        }
        Ok(report)
    })
}
