//! How every store's HTTP clients behave: retries, timeouts and the stall
//! limit, derived from the operation's deadline and `STALL_TIMEOUT`.

use std::time::Duration;

use crate::base::error::Result;
use crate::base::settings::Inputs;

/// HTTP behaviour of the client, derived from the operation's deadline.
#[derive(Debug, Clone)]
pub struct ClientTuning {
    /// Total time object_store may spend retrying one request.
    pub retry_timeout: Duration,
    /// Retries per request.
    pub max_retries: usize,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Longest silence of a connection (`STALL_TIMEOUT`): reading a response,
    /// or sending a body (judged by a stall watch, stall.rs).
    pub read_timeout: Duration,
}

impl ClientTuning {
    /// Retries bounded by the operation's own deadline (object_store's default of
    /// three minutes would outlive a 120 s Job); the default stall limit.
    pub fn for_deadline(deadline: Duration) -> Self {
        ClientTuning {
            retry_timeout: deadline.mul_f32(0.8),
            max_retries: 6,
            connect_timeout: Duration::from_secs(5),
            read_timeout: crate::transport::stall::DEFAULT_STALL,
        }
    }

    /// The same, with `stall` as the longest silence (`STALL_TIMEOUT`).
    pub fn with_stall(self, stall: Duration) -> Self {
        ClientTuning {
            read_timeout: stall,
            ..self
        }
    }
}

/// `STALL_TIMEOUT`: how long a connection may make no progress before the
/// request is sent again; 30 s by default.
pub(crate) fn stall_timeout(inputs: &Inputs) -> Result<Duration> {
    match inputs.stall_timeout.as_deref() {
        Some(raw) => crate::base::time::parse_duration(raw, "STALL_TIMEOUT"),
        None => Ok(crate::transport::stall::DEFAULT_STALL),
    }
}
