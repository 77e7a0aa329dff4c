//! snapjob moves etcd snapshots between Kubernetes Job containers and
//! S3-compatible object storage, on the etcd backup controller's contract
//! (`$BUCKET_NAME`, `$CLUSTER-$BACKUP_TO_*`, sysexits-style exit codes).
//!
//! # Layout
//! - [`settings`]: raw settings (env vars via envy, flags), secrets kept opaque.
//! - [`config`]: typed, validated configuration of each operation; object keys.
//! - [`remote`]: where objects live (S3 or a local directory) and the client for it.
//! - [`snapshot`]: streaming verification of a snapshot (gzip, bbolt magic, etcd
//!   SHA-256 trailer), with an optional hash of the input bytes.
//! - `upload` (private): `store`'s hash pass, the verification beside the upload,
//!   and object_store's multipart engine (local stores, `--from-etcd`).
//! - `put` (private): streaming uploads to S3 (one PUT, or parts read from the
//!   file as they are sent), signed with our own SigV4, bodies unsigned by default.
//! - [`digest`]: SHA-256 (aws-lc-rs).
//! - [`etcd`]: the snapshot stream of a live etcd (Maintenance/Snapshot over HTTP/2).
//! - [`etcd_manager`]: kops etcd-manager backup stores (etcd-manager-ctl's commands).
//! - [`live`]: a live etcd's snapshot streamed to a file or to a multipart upload.
//! - [`store`], [`delete`], [`restore`]: the three operations, one function each.
//! - [`datadir`]: a snapshot into an etcd member data dir (pure-Rust `etcdutl
//!   snapshot restore`): membership, bbolt rewrite, WAL, `.snap`.
//! - [`report`]: the run's JSON summary (termination message) and Pushgateway metrics.
//! - [`progress`]: progress lines for long transfers.
//! - [`cancel`]: shutdown signalling and deadlines passed into the operations.
//! - [`error`]: the one error type, its classes and the exit-code table.
//!
//! The library never reads the environment and never exits the process; the
//! binaries in `bins/` parse flags and env, install logging and signal handling,
//! call one operation and map its error class to the exit code.

mod atomic;
pub mod cancel;
pub mod config;
pub mod datadir;
pub mod delete;
pub mod digest;
pub mod error;
pub mod etcd;
pub mod etcd_manager;
mod landing;
pub mod live;
pub mod progress;
mod put;
pub mod remote;
pub mod report;
pub mod restore;
pub mod settings;
pub mod snapshot;
pub mod store;
mod upload;

pub use cancel::{Deadline, Shutdown, ShutdownTrigger, StopReason};
pub use config::{
    CtlConfig, DeleteConfig, RestoreConfig, Retention, SnapshotConfig, StoreConfig, Transfer,
};
pub use delete::{DeleteOutcome, delete};
pub use error::{Error, ErrorClass, Result};
pub use remote::Remote;
pub use restore::{RestoreReport, restore};
pub use settings::{Inputs, Secret};
pub use store::{StoreReport, store};
