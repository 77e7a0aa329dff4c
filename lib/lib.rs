//! snapjob moves etcd snapshots between Kubernetes Job containers and object
//! storage, on the etcd backup controller's contract (`$BUCKET_NAME`,
//! `$CLUSTER-$BACKUP_TO_*`, sysexits-style exit codes).
//!
//! # Layout: six layers, dependencies point down only
//! ```text
//! base  <-  formats  <-  transport  <-  config  <-  ops  <-  report  <-  bins/
//! ```
//! - [`base`]: the error type and exit codes, shutdown and deadlines, raw settings
//!   (env via envy, secrets opaque), SHA-256, progress lines, time, file helpers
//!   (locked temporary files, atomic rename, fsync). Uses nothing of ours.
//! - [`formats`]: bytes with no network: the snapshot verifier, compression, age encryption, the
//!   stage pipeline (verify -> compress -> encrypt -> sink), kops etcd-manager's store layout,
//!   the etcd member data dir (bbolt, WAL, `.snap`).
//! - [`transport`]: where bytes come from and go to: a live etcd's snapshot
//!   stream, object stores (S3 and local directories through object_store; S3
//!   streaming uploads), the object contract (metadata, read-back), the multipart
//!   engine.
//! - [`config`]: each operation's typed, validated configuration from the inputs.
//! - [`ops`]: the operations, `store`, `snapshot`, `delete`, `copy`, `restore`,
//!   `verify`, `list`, `ctl`, `doctor`. An operation never imports another: what two share
//!   moves a layer down.
//! - [`report`]: the run's JSON summary (termination message) and Pushgateway
//!   metrics.
//!
//! `scripts/layers.sh` (run by the test command) fails on an upward import
//! between these folders, printing the line.
//!
//! # Where a change goes
//! - A new backend (Azure, GCS): `transport/<name>`, opened in
//!   `transport::remote` (the one place that builds clients).
//! - A new stage (encryption): its format in `formats/`, chained in
//!   `formats::pipeline`.
//! - A new check of snapshot bytes: `formats::snapshot`.
//! - A new env var: `base::settings`, then `config`.
//! - A new operation: `ops/<name>` and a thin binary in `bins/`.
//!
//! The library never reads the environment and never exits the process; the
//! binaries in `bins/` parse flags and env, install logging and signal handling,
//! call one operation and map its error class to the exit code.

pub mod base;
pub mod config;
pub mod formats;
pub mod ops;
pub mod report;
pub mod transport;

pub use base::cancel::{Deadline, Shutdown, ShutdownTrigger};
pub use base::error::{Error, ErrorClass, Result, StopReason};
pub use base::settings::{Inputs, Secret};
pub use config::{
    AbortIncomplete, CopyConfig, CopyWhat, CtlConfig, DeleteConfig, DoctorConfig, ListConfig,
    RestoreConfig, Retention, Scope, SnapshotConfig, StoreConfig, Transfer, VerifyConfig,
    VerifyFlags,
};
pub use ops::copy::{CopyReport, copy};
pub use ops::ctl::ctl;
pub use ops::delete::{DeleteOutcome, DeleteReport, PruneReport, delete};
pub use ops::doctor::{DoctorReport, doctor};
pub use ops::list::{ListReport, list};
pub use ops::restore::{RestoreReport, restore};
pub use ops::snapshot::{SnapshotReport, snapshot_to_file};
pub use ops::store::{StoreReport, store};
pub use ops::verify::{VerifyReport, verify};
pub use transport::remote::Remote;
