//! `store`: upload an etcd snapshot to `s3://$BUCKET_NAME/$CLUSTER-$BACKUP_TO_CREATE`.
#[path = "cli/mod.rs"]
mod cli;

use clap::Parser;
use snapjob::StoreConfig;

/// Upload an etcd snapshot, verified, to $CLUSTER-$BACKUP_TO_CREATE.
/// Credentials come from the environment only (ACCESS_KEY_ID / SECRET_ACCESS_KEY, AWS_*).
#[derive(Debug, Parser)]
#[command(name = "store", version)]
struct Args {
    #[command(flatten)]
    common: cli::Common,
    /// Backup name, the second half of the object key [env: BACKUP_TO_CREATE]
    #[arg(long, value_name = "NAME")]
    backup: Option<String>,
    /// Snapshot file to upload, gzip or raw [env: SNAPSHOT_FILE] [default: /backup/snapshot.db.gz]
    #[arg(long, value_name = "FILE")]
    file: Option<String>,
    /// Multipart part size, e.g. 16MiB [env: PART_SIZE]
    #[arg(long, value_name = "SIZE")]
    part_size: Option<String>,
    /// Parts uploaded at once [env: CONCURRENCY]
    #[arg(long, value_name = "N")]
    concurrency: Option<String>,
    /// Files up to this size go to S3 in one streaming PUT; 0 means always multipart [env: SINGLE_PUT_MAX]
    #[arg(long, value_name = "SIZE")]
    single_put_max: Option<String>,
    /// Take the snapshot from etcd and stream it up, instead of --file [env: FROM_ETCD=true]
    #[arg(long)]
    from_etcd: bool,
    #[command(flatten)]
    etcd: cli::Etcd,
    /// Write a kops etcd-manager backup into this store URL (s3://bucket/.../backups/etcd/main) [env: BACKUP_STORE]
    #[arg(long, value_name = "URL")]
    backup_store: Option<String>,
    /// etcd version for the etcd-manager meta file, if the store has no cluster spec [env: ETCD_VERSION]
    #[arg(long, value_name = "VERSION")]
    etcd_version: Option<String>,
    /// Member count for the etcd-manager meta file [env: MEMBER_COUNT]
    #[arg(long, value_name = "N")]
    member_count: Option<String>,
    #[command(flatten)]
    encrypt: cli::Encrypt,
    /// With --backup-store: store encrypted although etcd-manager itself cannot restore it
    /// (snapjob's restore can) [env: FORCE_ENCRYPTED_ETCD_MANAGER=true]
    #[arg(long)]
    force_encrypted_etcd_manager: bool,
}

pub fn main() -> std::process::ExitCode {
    let args: Args = cli::parse();
    let env = cli::env_inputs();
    cli::run("store", &env.clone(), |shutdown| async move {
        let mut flags = args.common.inputs();
        flags.backup_to_create = args.backup;
        flags.snapshot_file = args.file;
        flags.part_size = args.part_size;
        flags.concurrency = args.concurrency;
        flags.single_put_max = args.single_put_max;
        flags.from_etcd = args.from_etcd.then(|| "true".into());
        args.etcd.apply(&mut flags);
        flags.backup_store = args.backup_store;
        flags.etcd_version = args.etcd_version;
        flags.member_count = args.member_count;
        args.encrypt.apply(&mut flags);
        flags.force_encrypted_etcd_manager =
            args.force_encrypted_etcd_manager.then(|| "true".into());
        let cfg = StoreConfig::from_inputs(&env.overlay(flags))?;
        snapjob::store(&cfg, &shutdown).await
    })
}
