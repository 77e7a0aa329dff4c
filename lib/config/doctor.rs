//! Configuration of `doctor`: where the bucket is, as the Job's settings say.

use std::time::Duration;

use crate::base::error::Result;
use crate::base::settings::Inputs;
use crate::transport::remote::Remote;

/// Configuration of `doctor`.
#[derive(Debug, Clone)]
pub struct DoctorConfig {
    /// The store checked.
    pub remote: Remote,
    /// Internal time budget of all checks but the cleanup.
    pub deadline: Duration,
}

impl DoctorConfig {
    /// Validates the inputs of `doctor`: those of the store only.
    pub fn from_inputs(i: &Inputs) -> Result<Self> {
        Ok(DoctorConfig {
            remote: Remote::from_inputs(i)?,
            deadline: super::deadline(i, Duration::from_secs(110))?,
        })
    }
}
