//! `delete`: delete `s3://$BUCKET_NAME/$CLUSTER-$BACKUP_TO_DELETE`; absent is success.
#[path = "cli/mod.rs"]
mod cli;

use clap::Parser;
use snapjob::DeleteConfig;

/// Delete the backup $CLUSTER-$BACKUP_TO_DELETE. A missing object exits 0; a
/// missing bucket warns and exits 0 unless --strict (then 12).
#[derive(Debug, Parser)]
#[command(name = "delete", version)]
struct Args {
    #[command(flatten)]
    common: cli::Common,
    /// Backup name, the second half of the object key [env: BACKUP_TO_DELETE]
    #[arg(long, value_name = "NAME")]
    backup: Option<String>,
    /// Exit 12 when the bucket does not exist
    #[arg(long)]
    strict: bool,
    /// Then keep only the N newest backups under --prefix, deleting older ones (opt-in) [env: KEEP_LAST]
    #[arg(long, value_name = "N")]
    keep: Option<String>,
    /// Key prefix for --keep [env: RETENTION_PREFIX] [default: $CLUSTER-]
    #[arg(long, value_name = "PREFIX")]
    prefix: Option<String>,
}

pub fn main() -> std::process::ExitCode {
    let args: Args = cli::parse();
    let env = cli::env_inputs();
    cli::run("delete", &env.clone(), |shutdown| async move {
        let mut flags = args.common.inputs();
        flags.backup_to_delete = args.backup;
        flags.keep_last = args.keep;
        flags.retention_prefix = args.prefix;
        let cfg = DeleteConfig::from_inputs(&env.overlay(flags), args.strict)?;
        snapjob::delete(&cfg, &shutdown).await
    })
}
