//! The operations, one folder or file each: `store`, `snapshot`, `delete`,
//! `copy`, `restore`, `verify`, `list` and `ctl` (etcd-manager-ctl's commands). An operation never imports
//! another; what two share lives a layer down.

pub mod copy;
pub mod ctl;
pub mod delete;
pub mod doctor;
pub mod list;
pub mod restore;
pub mod snapshot;
pub mod store;
pub mod verify;
