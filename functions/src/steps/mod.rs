//! One module per Task state of the state machines, each with one public `run(input, &Deps)`.
//! The state name (PascalCase) and the module (snake_case) are one name in two spellings; so
//! are the Lambda binary and the `<Name>Function` of `infra/`.

pub mod acquire_lock;
pub mod ensure_service_stack;
pub mod ensure_stage_stack;
pub mod plan;
pub mod publish_version;
pub mod record_deployment;
pub mod record_failure;
pub mod release_lock;
pub mod restore_aliases;
pub mod state;
pub mod switch_aliases;
pub mod wire_stage;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::StepError;
use crate::ports::Deps;

/// Every step, by state name: what the definitions' Task states may call.
pub const NAMES: &[&str] = &[
    "Plan",
    "AcquireLock",
    "EnsureServiceStack",
    "EnsureStageStack",
    "PublishVersion",
    "SwitchAliases",
    "WireStage",
    "RecordDeployment",
    "ReleaseLock",
    "RestoreAliases",
    "RecordFailure",
];

/// Runs step `name` on a JSON input, as a Task state (or a Lambda invocation) does.
pub async fn run(name: &str, input: Value, deps: &Deps) -> Result<Value, StepError> {
    match name {
        "Plan" => call(input, deps, plan::run).await,
        "AcquireLock" => call(input, deps, acquire_lock::run).await,
        "EnsureServiceStack" => call(input, deps, ensure_service_stack::run).await,
        "EnsureStageStack" => call(input, deps, ensure_stage_stack::run).await,
        "PublishVersion" => call(input, deps, publish_version::run).await,
        "SwitchAliases" => call(input, deps, switch_aliases::run).await,
        "WireStage" => call(input, deps, wire_stage::run).await,
        "RecordDeployment" => call(input, deps, record_deployment::run).await,
        "ReleaseLock" => call(input, deps, release_lock::run).await,
        "RestoreAliases" => call(input, deps, restore_aliases::run).await,
        "RecordFailure" => call(input, deps, record_failure::run).await,
        other => Err(StepError::InputInvalid(format!("no step is named {other}"))),
    }
}

async fn call<'d, I, O, F, Fut>(input: Value, deps: &'d Deps, step: F) -> Result<Value, StepError>
where
    I: DeserializeOwned,
    O: Serialize,
    F: FnOnce(I, &'d Deps) -> Fut,
    Fut: std::future::Future<Output = Result<O, StepError>>,
{
    let input: I = serde_json::from_value(input).map_err(|e| StepError::InputInvalid(e.to_string()))?;
    let output = step(input, deps).await?;
    serde_json::to_value(output).map_err(|e| StepError::InputInvalid(format!("the step's output is not JSON: {e}")))
}
