//! `copy`: copy backups from one store to another (a second site), streamed and
//! verified on the way.
#[path = "cli/mod.rs"]
mod cli;

use clap::Parser;
use snapjob::CopyConfig;

/// Copy backups from --from to --to, streamed, each verified (recorded SHA-256,
/// snapshot trailer) before it becomes visible at the target; what the target
/// holds with the same SHA-256 is skipped. The target's credentials are the usual
/// variables (ACCESS_KEY_ID, SECRET_ACCESS_KEY, ENDPOINT, REGION, INSECURE,
/// CA_BUNDLE); the source's are their SOURCE_ twins, else the target's.
#[derive(Debug, Parser)]
#[command(name = "copy", version)]
struct Args {
    /// Source: s3://bucket[/prefix] or file:///dir [env: COPY_FROM]
    #[arg(long, value_name = "URL")]
    from: Option<String>,
    /// Target: s3://bucket[/prefix] or file:///dir [env: COPY_TO]
    #[arg(long, value_name = "URL")]
    to: Option<String>,
    /// Copy this key (under --from; the same key under --to); with --etcd-manager a backup name [env: OBJECT_KEY]
    #[arg(long, value_name = "KEY", conflicts_with = "all")]
    key: Option<String>,
    /// Copy every backup of --cluster (objects whose metadata names it), or of the kops store [env: COPY_ALL=true]
    #[arg(long)]
    all: bool,
    /// Cluster whose backups --all copies [env: CLUSTER]
    #[arg(long, value_name = "NAME")]
    cluster: Option<String>,
    /// Key prefix --all lists [env: RETENTION_PREFIX] [default: $CLUSTER-]
    #[arg(long, value_name = "PREFIX")]
    prefix: Option<String>,
    /// Both URLs are kops etcd-manager backup stores: each backup's data, then its meta file
    #[arg(long)]
    etcd_manager: bool,
    /// Multipart part size at the target, e.g. 16MiB [env: PART_SIZE]
    #[arg(long, value_name = "SIZE")]
    part_size: Option<String>,
    /// Parts uploaded at once [env: CONCURRENCY]
    #[arg(long, value_name = "N")]
    concurrency: Option<String>,
    /// Internal time budget for the whole run, e.g. 1h [env: DEADLINE] [default: 1h]
    #[arg(long, value_name = "DURATION")]
    deadline: Option<String>,
}

pub fn main() -> std::process::ExitCode {
    let args: Args = cli::parse();
    let env = cli::env_inputs();
    cli::run("copy", &env.clone(), |shutdown| async move {
        let mut flags = snapjob::Inputs::default();
        flags.copy_from = args.from;
        flags.copy_to = args.to;
        flags.object_key = args.key;
        flags.copy_all = args.all.then(|| "true".into());
        flags.cluster = args.cluster;
        flags.retention_prefix = args.prefix;
        flags.part_size = args.part_size;
        flags.concurrency = args.concurrency;
        flags.deadline = args.deadline;
        let cfg = CopyConfig::from_inputs(&env.overlay(flags), args.etcd_manager)?;
        snapjob::copy(&cfg, &shutdown).await
    })
}
