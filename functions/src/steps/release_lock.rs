//! `ReleaseLock`: gives the stage's lease back. Releasing a lease this execution no longer holds
//! (already released, expired and taken, broken by `unlock`) changes nothing: safe to repeat.

use serde::{Deserialize, Serialize};

use crate::error::StepError;
use crate::ports::Deps;
use crate::steps::acquire_lock::stage_lock;

/// What `ReleaseLock` reads of the state.
#[derive(Debug, Deserialize)]
pub struct Input {
    /// The service.
    pub service: String,
    /// The stage.
    pub stage: String,
    /// The execution that took it.
    pub owner: String,
}

/// Whether the lease was still ours.
#[derive(Debug, Serialize)]
pub struct Output {
    /// `false`: somebody else holds it now, or nobody; it was left alone.
    pub released: bool,
}

/// Releases the lock if this execution holds it.
#[tracing::instrument(name = "ReleaseLock", skip_all, fields(stage = %input.stage))]
pub async fn run(input: Input, deps: &Deps) -> Result<Output, StepError> {
    let released = deps.history.release(&input.service, &stage_lock(&input.stage), &input.owner).await?;
    if !released {
        tracing::warn!(owner = %input.owner, "the stage lock was no longer held by this execution");
    }
    Ok(Output { released })
}
