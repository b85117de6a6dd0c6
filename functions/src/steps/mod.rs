//! One module per Task state of the state machines, each with one public `run(input, &Deps)`.
//! The state name (PascalCase) and the module (snake_case) are one name in two spellings; so
//! are the Lambda binary and the `<Name>Function` of `infra/`.

pub mod acquire_lock;
pub mod break_stale_locks;
pub mod collect_garbage;
pub mod delete_aliases;
pub mod delete_stack;
pub mod ensure_service_stack;
pub mod ensure_stage_stack;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod lease;
pub mod plan;
pub mod publish_version;
pub mod reapply_latest;
pub mod record_deployment;
pub mod record_failure;
pub mod record_removal;
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
    "ReapplyLatest",
    "DeleteAliases",
    "DeleteStack",
    "RecordRemoval",
    "CollectGarbage",
    "BreakStaleLocks",
];

/// The Lambda binary (and module) spelling of a state name: `PublishVersion` -> `publish_version`.
pub fn binary(step: &str) -> String {
    let mut out = String::new();
    for (i, c) in step.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

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
/// A step that runs under the stage lock keeps the lease alive while it runs
/// ([`lease::held_while`]): this is the one entry of both engines, so no step is left out.
pub async fn run(name: &str, input: Value, deps: &Deps) -> Result<Value, StepError> {
    if lease::UNDER_STAGE_LOCK.contains(&name) {
        let held = input.clone();
        return lease::held_while(&held, deps, dispatch(name, input, deps)).await;
    }
    dispatch(name, input, deps).await
}

/// The step `name` itself.
async fn dispatch(name: &str, input: Value, deps: &Deps) -> Result<Value, StepError> {
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
        "ReapplyLatest" => call!(reapply_latest, input, deps),
        "DeleteAliases" => call!(delete_aliases, input, deps),
        "DeleteStack" => call!(delete_stack, input, deps),
        "RecordRemoval" => call!(record_removal, input, deps),
        "CollectGarbage" => call!(collect_garbage, input, deps),
        "BreakStaleLocks" => call!(break_stale_locks, input, deps),
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

/// Errors the Lambda service raises for an invocation (not a step): the definitions retry them.
pub const LAMBDA_SERVICE_ERRORS: &[&str] = &[
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.ClientExecutionTimeoutException",
];

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::PathBuf;

    use super::*;

    fn definitions() -> Vec<(String, String)> {
        let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../statemachines");
        let mut found: Vec<(String, String)> = std::fs::read_dir(&folder)
            .expect("statemachines/ exists")
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.to_string_lossy().ends_with(".asl.json"))
            .map(|path| (path.display().to_string(), std::fs::read_to_string(&path).expect("readable")))
            .collect();
        found.sort();
        found
    }

    fn arn(step: &str) -> String {
        format!("arn:aws:lambda:us-east-1:000000000000:function:{step}")
    }

    #[test]
    fn every_definition_lints_clean_against_the_step_registry_and_error_names() {
        let substitutions: BTreeMap<String, String> =
            NAMES.iter().map(|name| (format!("{name}FunctionArn"), arn(name))).collect();
        let resources: BTreeSet<String> = NAMES.iter().map(|name| arn(name)).collect();
        let errors: BTreeSet<String> =
            StepError::NAMES.iter().chain(LAMBDA_SERVICE_ERRORS).map(|e| (*e).to_owned()).collect();
        let definitions = definitions();
        assert!(definitions.iter().any(|(path, _)| path.ends_with("deploy.asl.json")));
        let mut used = BTreeSet::new();
        for (path, text) in &definitions {
            let text = statemachines::substitute(text, &substitutions)
                .unwrap_or_else(|e| panic!("{path}: a Task names no registered step: {e}"));
            let findings = statemachines::lint(text.as_str(), &resources, &errors);
            assert!(findings.is_empty(), "{path}: {findings:#?}");
            let machine = statemachines::StateMachine::from_json(&text).expect("lints clean, so it loads");
            used.extend(machine.resources().into_keys());
        }
        let unused: Vec<&&str> = NAMES.iter().filter(|name| !used.contains(&arn(name))).collect();
        assert!(unused.is_empty(), "steps no definition calls: {unused:?}");
    }

    #[test]
    fn the_lint_catches_an_unknown_step_and_an_unknown_error_name() {
        let definition = r#"{"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:000000000000:function:Nope",
            "Retry": [{"ErrorEquals": ["NoSuchError"]}], "End": true}}}"#;
        let resources: BTreeSet<String> = NAMES.iter().map(|name| arn(name)).collect();
        let errors: BTreeSet<String> = StepError::NAMES.iter().map(|e| (*e).to_owned()).collect();
        assert_eq!(statemachines::lint(definition, &resources, &errors).len(), 2);
    }
}
