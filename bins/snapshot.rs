//! `snapshot`: a live etcd's snapshot to a local file, atomically: what the
//! controller's init container (`etcd-launcher snapshot`) does, without Go.
#[path = "cli/mod.rs"]
mod cli;

use clap::Parser;
use snapjob::SnapshotConfig;

/// Stream a snapshot from etcd to --file (gzip by default), verify etcd's SHA-256
/// trailer, and move it into place only when it is complete.
#[derive(Debug, Parser)]
#[command(name = "snapshot", version)]
struct Args {
    /// Where to write the snapshot [env: SNAPSHOT_FILE] [default: /backup/snapshot.db.gz]
    #[arg(long, value_name = "FILE")]
    file: Option<String>,
    /// Internal time budget, e.g. 110s [env: DEADLINE]
    #[arg(long, value_name = "DURATION")]
    deadline: Option<String>,
    #[command(flatten)]
    etcd: cli::Etcd,
    #[command(flatten)]
    encrypt: cli::Encrypt,
}

pub fn main() -> std::process::ExitCode {
    let args: Args = cli::parse();
    let env = cli::env_inputs();
    cli::run("snapshot", &env.clone(), |shutdown| async move {
        let mut flags = snapjob::Inputs::default();
        flags.snapshot_file = args.file;
        flags.deadline = args.deadline;
        args.etcd.apply(&mut flags);
        args.encrypt.apply(&mut flags);
        let cfg = SnapshotConfig::from_inputs(&env.overlay(flags))?;
        snapjob::snapshot_to_file(&cfg, &shutdown).await
    })
}
