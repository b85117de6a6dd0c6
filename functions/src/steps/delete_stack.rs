//! `DeleteStack` (remove): deletes the stage stack (`<service>-<stage>`, the stage's region),
//! which takes its resources, instance-per-stage functions and per-stage log groups with it; or,
//! without a stage, the service stack, after which the service record is forgotten. Waits until
//! the stack is gone. Safe to repeat: a stack already gone is not an error.

use serde::{Deserialize, Serialize};

use crate::converge::{remove, Tools};
use crate::domain::manifest::Manifest;
use crate::domain::naming;
use crate::error::StepError;
use crate::ports::Deps;

/// What `DeleteStack` reads of the state.
#[derive(Debug, Deserialize)]
pub struct Input {
    /// The manifest.
    pub manifest: Manifest,
    /// The stage whose stack to delete; absent: the service stack.
    #[serde(default)]
    pub stage: Option<String>,
    /// The stage's region (the home region without a stage).
    pub region: String,
}

/// The stack deleted.
#[derive(Debug, Serialize, Deserialize)]
pub struct Output {
    /// Its name.
    pub stack: String,
    /// `false`: there was no such stack.
    pub deleted: bool,
}

/// Deletes the stack and waits for it.
#[tracing::instrument(name = "DeleteStack", skip_all, fields(stage = ?input.stage))]
pub async fn run(input: Input, deps: &Deps) -> Result<Output, StepError> {
    let service = &input.manifest.service;
    let stack = match &input.stage {
        Some(stage) => naming::stage_stack_name(service, stage),
        None => naming::service_stack_name(service),
    }
    .map_err(|e| StepError::ManifestInvalid(e.to_string()))?;
    let stacks = deps.regions.stacks(&input.region);
    let tools = Tools { stacks: stacks.as_ref(), artifacts: deps.artifacts.as_ref(), settings: &deps.settings };
    let deleted = remove(tools, &stack).await?;
    if input.stage.is_none() {
        deps.history.delete_service(service).await?;
    }
    tracing::info!(%stack, deleted, "stack gone");
    Ok(Output { stack, deleted })
}
