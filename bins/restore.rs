//! `restore`: fetch a backup, verify it, and write the raw snapshot and/or an
//! etcd member data dir.
#[path = "cli/mod.rs"]
mod cli;

use clap::Parser;
use snapjob::RestoreConfig;

/// Download $CLUSTER-$BACKUP_TO_RESTORE (or read --snapshot), verify its recorded
/// SHA-256 and etcd trailer, decompress gzip (detected by content), then write the
/// raw snapshot atomically to --output and/or restore an etcd member into --data-dir
/// (what `etcdutl snapshot restore` writes, without etcdutl).
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
    /// Restore from this local snapshot file instead of an object [env: SNAPSHOT_FILE]
    #[arg(long, value_name = "FILE")]
    snapshot: Option<String>,
    /// Build an etcd member data dir here; it must not exist or be empty [env: ETCD_DATA_DIR]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<String>,
    /// Member name (the pod name) [env: ETCD_NAME]
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// All members: name=peer-url,... [env: ETCD_INITIAL_CLUSTER]
    #[arg(long, value_name = "LIST")]
    initial_cluster: Option<String>,
    /// Cluster token (KKP: the cluster id) [env: ETCD_INITIAL_CLUSTER_TOKEN]
    #[arg(long, value_name = "TOKEN")]
    initial_cluster_token: Option<String>,
    /// This member's peer URLs, as in --initial-cluster [env: ETCD_INITIAL_ADVERTISE_PEER_URLS]
    #[arg(long, value_name = "URLS")]
    initial_advertise_peer_urls: Option<String>,
    /// WAL dir, if not <data-dir>/member/wal [env: ETCD_WAL_DIR]
    #[arg(long, value_name = "DIR")]
    wal_dir: Option<String>,
    /// Accept a snapshot without its SHA-256 trailer, e.g. a db copied from a data dir [env: SKIP_HASH_CHECK=true]
    #[arg(long)]
    skip_hash_check: bool,
    /// Write etcdctl 3.4's WAL variant instead of etcdutl 3.5's [env: ETCD_V34=true]
    #[arg(long)]
    v34: bool,
    /// Raise the restored store's revision by N (etcdutl 3.5.10+); needs --mark-compacted [env: BUMP_REVISION]
    #[arg(long, value_name = "N")]
    bump_revision: Option<String>,
    /// Restore the newest of this cluster's backups at or before this UTC time (RFC 3339) [env: RESTORE_BEFORE]
    #[arg(long, value_name = "TIME")]
    before: Option<String>,
    /// Mark the bumped revision compacted: watches from before it get "compacted" [env: MARK_COMPACTED=true]
    #[arg(long)]
    mark_compacted: bool,
    /// Fill in the membership for a known shape: kkp (per-member) or kube-dc (single member) [env: RESTORE_PRESET]
    #[arg(long, value_name = "PRESET")]
    preset: Option<String>,
    /// The etcd pod being restored, for --preset kkp [env: POD_NAME]
    #[arg(long, value_name = "POD")]
    pod: Option<String>,
    /// The cluster's namespace, for --preset kkp [env: NAMESPACE] [default: cluster-$CLUSTER]
    #[arg(long, value_name = "NS")]
    namespace: Option<String>,
    /// Number of etcd members, for --preset kkp [env: CLUSTER_SIZE] [default: 3]
    #[arg(long, value_name = "N")]
    cluster_size: Option<String>,
    /// Decrypt an encrypted (age) backup with the identities in this file; repeatable
    /// [env: DECRYPT_IDENTITY_FILE, comma-separated]
    #[arg(long = "identity", value_name = "FILE")]
    identities: Vec<String>,
    /// A kops etcd-manager backup store URL; --backup names a backup in it [env: BACKUP_STORE]
    #[arg(long, value_name = "URL")]
    backup_store: Option<String>,
    /// With --backup-store, etcd-manager-ctl's commands: list-backups, restore-backup NAME,
    /// list-commands, delete-command NAME
    #[arg(value_name = "COMMAND")]
    command: Vec<String>,
}

pub fn main() -> std::process::ExitCode {
    let args: Args = cli::parse();
    let env = cli::env_inputs();
    cli::run("restore", &env.clone(), |shutdown| async move {
        let mut flags = args.common.inputs();
        flags.backup_to_restore = args.backup;
        flags.output_file = args.output;
        flags.snapshot_file = args.snapshot;
        flags.etcd_data_dir = args.data_dir;
        flags.etcd_name = args.name;
        flags.etcd_initial_cluster = args.initial_cluster;
        flags.etcd_initial_cluster_token = args.initial_cluster_token;
        flags.etcd_initial_advertise_peer_urls = args.initial_advertise_peer_urls;
        flags.etcd_wal_dir = args.wal_dir;
        flags.skip_hash_check = args.skip_hash_check.then(|| "true".into());
        flags.etcd_v34 = args.v34.then(|| "true".into());
        flags.bump_revision = args.bump_revision;
        flags.restore_before = args.before;
        flags.mark_compacted = args.mark_compacted.then(|| "true".into());
        flags.restore_preset = args.preset;
        flags.pod_name = args.pod;
        flags.namespace = args.namespace;
        flags.cluster_size = args.cluster_size;
        flags.backup_store = args.backup_store;
        flags.decrypt_identity_file =
            (!args.identities.is_empty()).then(|| args.identities.join(","));
        let inputs = env.overlay(flags);
        if !args.command.is_empty() {
            let cfg = snapjob::CtlConfig::from_inputs(&inputs, args.command)?;
            let out = snapjob::ctl(&cfg, &shutdown).await?;
            if !out.is_empty() {
                println!("{out}");
            }
            return Ok(None);
        }
        let cfg = RestoreConfig::from_inputs(&inputs)?;
        snapjob::restore(&cfg, &shutdown).await.map(Some)
    })
}
