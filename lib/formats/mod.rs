//! Bytes and their shapes, with no network: the snapshot verifier (gzip, bbolt
//! magic, etcd's SHA-256 trailer), compression, age encryption, the stage pipeline that chains them,
//! kops etcd-manager's backup-store layout, and the etcd member data dir
//! (bbolt, WAL, `.snap`).

pub mod compress;
pub mod datadir;
pub mod encrypt;
pub mod etcd_manager;
pub mod etcddb;
pub mod gzip_members;
pub mod pipeline;
pub mod retention;
pub mod snapshot;
