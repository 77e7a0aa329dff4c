//! `delete`: delete `s3://$BUCKET_NAME/$CLUSTER-$BACKUP_TO_DELETE`; absent is success.
#[path = "cli/mod.rs"]
mod cli;

use clap::Parser;
use snapjob::DeleteConfig;

/// Delete the backup $CLUSTER-$BACKUP_TO_DELETE. A missing object exits 0; a
/// missing bucket warns and exits 0 unless --strict (then 12). With a retention
/// rule (--keep*), then delete what no rule keeps of this cluster's backups
/// (restic's rules; the newest is always kept); a backup the store refuses to
/// delete is skipped with a warning, or exits 77 with --strict.
#[derive(Debug, Parser)]
#[command(name = "delete", version)]
struct Args {
    #[command(flatten)]
    common: cli::Common,
    /// Backup name, the second half of the object key [env: BACKUP_TO_DELETE]
    #[arg(long, value_name = "NAME")]
    backup: Option<String>,
    /// Exit 12 when the bucket does not exist; 77 when the store refused to delete a backup retention chose
    #[arg(long)]
    strict: bool,
    /// Retention (opt-in): keep the N newest of this cluster's backups [env: KEEP_LAST]
    #[arg(long, visible_alias = "keep-last", value_name = "N")]
    keep: Option<String>,
    /// Keep the newest backup of each of the last N hours that hold one [env: KEEP_HOURLY]
    #[arg(long, value_name = "N")]
    keep_hourly: Option<String>,
    /// ... of each of the last N days [env: KEEP_DAILY]
    #[arg(long, value_name = "N")]
    keep_daily: Option<String>,
    /// ... of each of the last N ISO weeks [env: KEEP_WEEKLY]
    #[arg(long, value_name = "N")]
    keep_weekly: Option<String>,
    /// ... of each of the last N months [env: KEEP_MONTHLY]
    #[arg(long, value_name = "N")]
    keep_monthly: Option<String>,
    /// ... of each of the last N years [env: KEEP_YEARLY]
    #[arg(long, value_name = "N")]
    keep_yearly: Option<String>,
    /// Keep every backup within this span of the newest, e.g. 7d or 1y6m [env: KEEP_WITHIN]
    #[arg(long, value_name = "SPAN")]
    keep_within: Option<String>,
    /// UTC offset the periods are taken in, e.g. +02:00 [env: RETENTION_TIMEZONE] [default: UTC]
    #[arg(long, value_name = "OFFSET")]
    timezone: Option<String>,
    /// Print the retention plan and delete nothing [env: DRY_RUN]
    #[arg(long)]
    dry_run: bool,
    /// A kops etcd-manager backup store (s3://, file://): --backup is then a backup
    /// name, and retention applies to the store's backups [env: BACKUP_STORE]
    #[arg(long, value_name = "URL")]
    backup_store: Option<String>,
    /// Key prefix retention lists, and --abort-incomplete sweeps [env: RETENTION_PREFIX] [default: $CLUSTER-]
    #[arg(long, value_name = "PREFIX")]
    prefix: Option<String>,
    /// Abort the incomplete multipart uploads under the prefix (left by killed store runs) [env: ABORT_INCOMPLETE]
    #[arg(long)]
    abort_incomplete: bool,
    /// With --abort-incomplete: only those initiated at least this long ago, e.g. 24h, 0s [env: ABORT_OLDER_THAN] [default: 24h]
    #[arg(long, value_name = "AGE")]
    older_than: Option<String>,
}

pub fn main() -> std::process::ExitCode {
    let args: Args = cli::parse();
    let env = cli::env_inputs();
    cli::run("delete", &env.clone(), |shutdown| async move {
        let mut flags = args.common.inputs();
        flags.backup_to_delete = args.backup;
        flags.keep_last = args.keep;
        flags.keep_hourly = args.keep_hourly;
        flags.keep_daily = args.keep_daily;
        flags.keep_weekly = args.keep_weekly;
        flags.keep_monthly = args.keep_monthly;
        flags.keep_yearly = args.keep_yearly;
        flags.keep_within = args.keep_within;
        flags.retention_timezone = args.timezone;
        flags.dry_run = args.dry_run.then(|| "true".to_string());
        flags.retention_prefix = args.prefix;
        flags.abort_incomplete = args.abort_incomplete.then(|| "true".to_string());
        flags.abort_older_than = args.older_than;
        flags.backup_store = args.backup_store;
        let cfg = DeleteConfig::from_inputs(&env.overlay(flags), args.strict)?;
        snapjob::delete(&cfg, &shutdown).await
    })
}
