//! `snapjob`: all the binaries in one file, for the container image (one static
//! binary instead of seven keeps it small). It runs as the program it is called as:
//! `store`, `delete`, `copy`, `restore`, `snapshot`, `verify`, `list` and `doctor` are links
//! to it.
// Each program includes the shared `cli` module itself (so each also builds alone);
// here that module is compiled once per program, which is intended.
#![allow(clippy::duplicate_mod)]

#[path = "copy.rs"]
mod copy;
#[path = "delete.rs"]
mod delete;
#[path = "doctor.rs"]
mod doctor;
#[path = "list.rs"]
mod list;
#[path = "restore.rs"]
mod restore;
#[path = "snapshot.rs"]
mod snapshot;
#[path = "store.rs"]
mod store;
#[path = "verify.rs"]
mod verify;

use std::process::ExitCode;

fn main() -> ExitCode {
    let called = std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    match called.as_str() {
        "store" => store::main(),
        "delete" => delete::main(),
        "copy" => copy::main(),
        "restore" => restore::main(),
        "snapshot" => snapshot::main(),
        "verify" => verify::main(),
        "list" => list::main(),
        "doctor" => doctor::main(),
        other => {
            eprintln!(
                "snapjob: called as {other:?}; run it as store, delete, copy, restore, snapshot, verify, list or doctor (links to this binary)"
            );
            ExitCode::from(64)
        }
    }
}
