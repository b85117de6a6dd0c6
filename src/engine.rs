//! Running the state machines: in this process on aliasflow's ASL interpreter (`--engine
//! local`), with each Task state calling its step directly.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use functions::ports::Deps;
use functions::steps;
use serde_json::Value;
use statemachines::{Clock, Engine, Event, Execution, StateMachine, SystemClock, TaskError, TaskHandler};
use tokio::sync::mpsc::UnboundedSender;

/// The state machine definitions, by operation.
pub const DEFINITIONS: &[(&str, &str)] = &[
    ("deploy", include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/statemachines/deploy.asl.json"))),
    ("rollback", include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/statemachines/rollback.asl.json"))),
    ("reset", include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/statemachines/reset.asl.json"))),
    ("clone", include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/statemachines/clone.asl.json"))),
    ("remove", include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/statemachines/remove.asl.json"))),
    ("cleanup", include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/statemachines/cleanup.asl.json"))),
];

/// The account id in the local stand-in function ARNs; nothing is invoked through them.
const LOCAL_ACCOUNT: &str = "000000000000";

/// `DefinitionSubstitutions` for a local run: `${<Step>FunctionArn}` names the step itself.
pub fn local_substitutions(region: &str) -> BTreeMap<String, String> {
    steps::NAMES
        .iter()
        .map(|name| (format!("{name}FunctionArn"), format!("arn:aws:lambda:{region}:{LOCAL_ACCOUNT}:function:{name}")))
        .collect()
}

/// The step a Task resource names: the function name of a local stand-in ARN.
fn step_name(resource: &str) -> &str {
    resource.rsplit_once(":function:").map_or(resource, |(_, name)| name)
}

/// Task states answered by the step handlers in this process.
#[derive(Debug)]
pub struct LocalSteps {
    deps: Deps,
}

#[async_trait]
impl TaskHandler for LocalSteps {
    async fn invoke(&self, resource: &str, input: Value) -> Result<Value, TaskError> {
        steps::run(step_name(resource), input, &self.deps)
            .await
            .map_err(|e| TaskError { error: e.error_type().to_owned(), cause: e.to_string() })
    }
}

/// Errors loading a definition: a bug in aliasflow, never the user's input.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No definition for the operation.
    #[error("no state machine for operation {0}")]
    UnknownOperation(String),
    /// The definition does not load.
    #[error("state machine {operation}: {message}")]
    Definition {
        /// The operation.
        operation: String,
        /// Why.
        message: String,
    },
}

/// Loads the definition of `operation` with the local substitutions.
pub fn machine(operation: &str, region: &str) -> Result<StateMachine, EngineError> {
    let text = DEFINITIONS
        .iter()
        .find(|(name, _)| *name == operation)
        .map(|(_, text)| *text)
        .ok_or_else(|| EngineError::UnknownOperation(operation.to_owned()))?;
    let definition = |message: String| EngineError::Definition { operation: operation.to_owned(), message };
    let text = statemachines::substitute(text, &local_substitutions(region)).map_err(|e| definition(e.to_string()))?;
    StateMachine::from_json(&text).map_err(|e| definition(e.to_string()))
}

/// Runs `operation` on `input` in this process, streaming its events to `events`; waits and
/// retry pauses take real time.
pub async fn run_local(
    operation: &str,
    region: &str,
    input: Value,
    deps: Deps,
    events: UnboundedSender<Event>,
) -> Result<Execution, EngineError> {
    run_local_with_clock(operation, region, input, deps, events, Arc::new(SystemClock)).await
}

/// [`run_local`] with the engine's clock given (tests: [`statemachines::InstantClock`], so
/// `Retry` back-off takes no time).
pub async fn run_local_with_clock(
    operation: &str,
    region: &str,
    input: Value,
    deps: Deps,
    events: UnboundedSender<Event>,
    clock: Arc<dyn Clock>,
) -> Result<Execution, EngineError> {
    let machine = Arc::new(machine(operation, region)?);
    let execution_name = uuid::Uuid::new_v4().to_string();
    let engine = Engine::new(machine, Arc::new(LocalSteps { deps }))
        .with_names(operation, &execution_name)
        .with_region_and_account(region, LOCAL_ACCOUNT)
        .with_clock(clock)
        .with_events(events);
    Ok(engine.run(input).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_definition_on_disk_is_one_the_local_engine_runs() {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("statemachines");
        let mut on_disk: Vec<String> = std::fs::read_dir(folder)
            .unwrap()
            .filter_map(|entry| entry.unwrap().file_name().to_str()?.strip_suffix(".asl.json").map(str::to_owned))
            .collect();
        on_disk.sort();
        let mut known: Vec<String> = DEFINITIONS.iter().map(|(name, _)| (*name).to_owned()).collect();
        known.sort();
        assert_eq!(on_disk, known);
        for operation in &known {
            machine(operation, "us-east-1").unwrap();
        }
    }
}
