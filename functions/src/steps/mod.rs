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

use futures::StreamExt;
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

/// Deserializes the input, runs the step, serializes the output. A macro, not a generic
/// function: a generic over `async fn(I, &Deps)` loses the borrow's lifetime, and the futures of
/// the Lambda runtime and the local engine must stay `Send` for any borrow.
macro_rules! call {
    ($step:ident, $input:expr, $deps:expr) => {{
        let input = serde_json::from_value($input).map_err(|e| StepError::InputInvalid(e.to_string()))?;
        let output = $step::run(input, $deps).await?;
        serde_json::to_value(output).map_err(|e| StepError::InputInvalid(format!("the step's output is not JSON: {e}")))
    }};
}

/// Runs step `name` on a JSON input, as a Task state (or a Lambda invocation) does.
pub async fn run(name: &str, input: Value, deps: &Deps) -> Result<Value, StepError> {
    match name {
        "Plan" => call!(plan, input, deps),
        "AcquireLock" => call!(acquire_lock, input, deps),
        "EnsureServiceStack" => call!(ensure_service_stack, input, deps),
        "EnsureStageStack" => call!(ensure_stage_stack, input, deps),
        "PublishVersion" => call!(publish_version, input, deps),
        "SwitchAliases" => call!(switch_aliases, input, deps),
        "WireStage" => call!(wire_stage, input, deps),
        "RecordDeployment" => call!(record_deployment, input, deps),
        "ReleaseLock" => call!(release_lock, input, deps),
        "RestoreAliases" => call!(restore_aliases, input, deps),
        "RecordFailure" => call!(record_failure, input, deps),
        other => Err(StepError::InputInvalid(format!("no step is named {other}"))),
    }
}

/// Runs `work` on every item, at most `limit` at once, and returns the results in completion
/// order. Items are owned: closures over borrowed items make futures that are `Send` only for
/// one lifetime, which the engine and the Lambda runtime cannot accept.
pub(crate) async fn bounded<T, O, F, Fut>(items: Vec<T>, limit: usize, work: F) -> Vec<O>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = O>,
{
    futures::stream::iter(items).map(work).buffer_unordered(limit.max(1)).collect().await
}
