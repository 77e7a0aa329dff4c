//! `restore`: download a backup, verify it and write the raw etcd snapshot.
#[path = "cli/mod.rs"]
mod cli;

use clap::Parser;
use snapjob::RestoreConfig;

/// Download $CLUSTER-$BACKUP_TO_RESTORE, verify its recorded SHA-256 and etcd
/// trailer, decompress gzip (detected by content) and write the raw snapshot
/// atomically to --output.
#[derive(Debug, Parser)]
#[command(name = "restore", version)]
struct Args {
    #[command(flatten)]
    common: cli::Common,
    /// Backup name, the second half of the object key [env: BACKUP_TO_RESTORE]
    #[arg(long, value_name = "NAME")]
    backup: Option<String>,
    /// Where to write the raw snapshot [env: OUTPUT_FILE]
    #[arg(long, short, value_name = "FILE")]
    output: Option<String>,
}

fn main() -> std::process::ExitCode {
    let args: Args = cli::parse();
    cli::run(|shutdown| async move {
        let mut flags = args.common.inputs();
        flags.backup_to_restore = args.backup;
        flags.output_file = args.output;
        let cfg = RestoreConfig::from_inputs(&cli::env_inputs().overlay(flags))?;
        snapjob::restore(&cfg, &shutdown).await
    })
}
