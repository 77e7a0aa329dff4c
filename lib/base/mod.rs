//! The bottom layer: what every other layer uses and that uses nothing of ours.
//! The error type and its exit codes, shutdown and deadlines, raw settings, SHA-256,
//! progress lines, time formatting and the file-system helpers (locked temporary
//! files, atomic renames, fsync).

pub mod buffers;
pub mod cancel;
pub mod digest;
pub mod error;
pub mod fs;
pub mod pool;
pub mod progress;
pub mod settings;
pub mod space;
pub mod time;
