//! Where bytes come from and go to: a live etcd's snapshot stream, the object
//! stores (S3 and local directories through object_store, S3 streaming uploads),
//! the object contract (metadata, read-back) and the multipart engine.

pub mod azure;
pub mod etcd;
pub mod gcs;
pub mod listing;
pub mod multipart;
pub mod object;
pub(crate) mod put;
pub mod remote;
pub mod s3_options;
pub mod stall;
