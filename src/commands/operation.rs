//! Running one workflow, in this process or on AWS Step Functions, and reporting it: what every command that changes
//! the service shares (deploy, rollback, reset, clone, remove, cleanup).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use functions::artifact::Package;
use functions::aws::{Sdk, StepFunctionsApi};
use functions::domain::history::DeployerRecord;
use functions::domain::manifest::Manifest;
use functions::domain::naming;
use functions::error::StepError;
use functions::ports::Deps;
use serde_json::{json, Map, Value};

use super::{deps, manifest, manifest_for_stage, CliError};
use crate::cli::{EngineKind, Global};
use crate::output::{table, Reply};
use crate::progress::Progress;
use crate::{engine, remote, App};

/// Where an operation runs, and the deployer it runs with.
#[derive(Debug, Clone)]
pub struct Target {
    /// The deployer's ports in the home region (the CLI's own uploads and reads).
    pub deps: Deps,
    deployer: DeployerRecord,
    engine: EngineKind,
    sdk: Sdk,
    poll: Duration,
}

/// The deployer in the manifest's home region, checked to be installed for `--engine`.
pub async fn target(manifest: &Manifest, global: &Global, app: &App) -> Result<Target, CliError> {
    let (deps, deployer) = deps(manifest, app).await?;
    if global.engine == EngineKind::Aws && deployer.engine != "aws" {
        return Err(CliError::step(
            "bootstrap check",
            StepError::NotBootstrapped(format!(
                "--engine aws runs on the installed deployer's state machines, and {} has only the local engine's table and bucket: run `aliasflow bootstrap --engine aws` (or use --engine local)",
                manifest.region
            )),
        ));
    }
    let poll = app.poll_interval.unwrap_or(REMOTE_POLL);
    Ok(Target { deps, deployer, engine: global.engine, sdk: app.sdk().await, poll })
}

/// How often `--engine aws` reads the execution's new events.
const REMOTE_POLL: Duration = Duration::from_secs(2);

/// The manifest as the execution input carries it.
pub fn manifest_json(manifest: &Manifest) -> Result<Value, CliError> {
    serde_json::to_value(manifest).map_err(|e| CliError::Usage(e.to_string()))
}

/// Runs `operation` on `request` where `target` says, with progress on stderr. Returns the
/// execution's output and its state transitions; a failed execution is an error naming the
/// state that failed.
pub async fn execute(
    operation: &str,
    manifest: &Manifest,
    request: Value,
    target: Target,
) -> Result<(Value, u64), CliError> {
    let stage = request.get("stage").and_then(Value::as_str).map(str::to_owned);
    let history = target.deps.history.clone();
    let (progress, events) = Progress::start(false);
    let execution = match target.engine {
        EngineKind::Local => engine::run_local(operation, &manifest.region, request, target.deps, events)
            .await
            .map_err(|e| CliError::Usage(e.to_string()))?,
        EngineKind::Aws => {
            let machine = target.deployer.state_machines.get(operation).ok_or_else(|| {
                CliError::Usage(format!(
                    "the deployer installed in {} has no {operation} state machine: run `aliasflow bootstrap --engine aws` to upgrade it",
                    manifest.region
                ))
            })?;
            let input = remote_input(manifest, request, &target.deps).await?;
            let executions = StepFunctionsApi::new(target.sdk.sfn(&manifest.region));
            let name = remote::execution_name(operation, stage.as_deref());
            remote::run(&executions, machine, &name, &input, events, target.poll)
                .await
                .map_err(|e| CliError::aws(operation, e))?
        }
    };
    let seen = progress.finish().await;
    if let (Some(error), Some(stage)) = (&execution.error, &stage) {
        release_after_terminal_error(&execution, error, &manifest.service, stage, history.as_ref()).await;
    }
    let kept = kept_functions(&execution);
    match execution.output.filter(|_| execution.error.is_none()) {
        Some(mut output) => {
            if let (Some(kept), Some(fields)) = (kept, output.as_object_mut()) {
                fields.entry("kept").or_insert(kept);
            }
            Ok((output, execution.transitions))
        }
        None => Err(CliError::Execution {
            operation: operation.to_owned(),
            state: seen.state_of(execution.error.as_deref().unwrap_or_default()).unwrap_or_else(|| "?".to_owned()),
            error: execution.error.unwrap_or_default(),
            cause: execution.cause.unwrap_or_default(),
        }),
    }
}

/// The execution input for Step Functions: the manifest goes to the artifact bucket, by content
/// and as the service's latest, and the input names it (`manifest_key`), so the input stays
/// small and a console user can start the same execution again.
async fn remote_input(manifest: &Manifest, mut request: Value, deps: &Deps) -> Result<Value, CliError> {
    let Some(inline) = request.as_object_mut().and_then(|r| r.remove("manifest")) else { return Ok(request) };
    let bytes = serde_json::to_vec(&inline).map_err(|e| CliError::Usage(e.to_string()))?;
    let key = naming::manifest_key(&manifest.service, &Package::from_bytes(bytes.clone()).sha256_hex);
    let latest = naming::latest_manifest_key(&manifest.service);
    let upload = |key: String, bytes: Vec<u8>| async move {
        deps.artifacts.put(&key, bytes).await.map_err(|e| CliError::aws("manifest upload", e))
    };
    upload(key.clone(), bytes.clone()).await?;
    upload(latest, bytes).await?;
    request["manifest_key"] = Value::String(key);
    Ok(request)
}

/// What `EnsureServiceStack` kept in the service stack for live stages (its result's `kept`:
/// manifest key to stages), when it kept anything: the execution's output carries it only where
/// the definition passes the stack's result on, so it is read from the state's exit.
fn kept_functions(execution: &statemachines::Execution) -> Option<Value> {
    execution.events.iter().rev().find_map(|event| match &event.kind {
        statemachines::EventKind::StateExited { name, output, .. } if name == "EnsureServiceStack" => output
            .pointer("/service_stack/kept")
            .filter(|kept| kept.as_object().is_some_and(|k| !k.is_empty()))
            .cloned(),
        _ => None,
    })
}

/// One line per function the service stack kept for live stages (an execution output's `kept`):
/// `kept worker (shop-worker): still used by stages prod`.
pub fn kept_lines(service: &str, output: &Value) -> Vec<String> {
    let Some(kept) = output.get("kept").and_then(Value::as_object) else { return Vec::new() };
    kept.iter()
        .map(|(name, stages)| {
            let stages: Vec<&str> = stages.as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let function = naming::function_name_unchecked(service, None, name);
            format!("kept {name} ({function}): still used by stages {}", stages.join(", "))
        })
        .collect()
}

/// A `States.*` runtime error (a state's data over 256 KiB, a path that does not resolve) ends
/// an execution without the Catch path, so `ReleaseLock` never ran: release the stage lock this
/// execution took (its owner is `Plan`'s output), rather than leave it held until it expires.
async fn release_after_terminal_error(
    execution: &statemachines::Execution,
    error: &str,
    service: &str,
    stage: &str,
    history: &dyn functions::ports::History,
) {
    if !error.starts_with("States.") {
        return;
    }
    let owner = execution.events.iter().find_map(|event| match &event.kind {
        statemachines::EventKind::TaskSucceeded { output, .. } => output.get("owner").and_then(Value::as_str),
        _ => None,
    });
    let Some(owner) = owner else { return };
    let lock = functions::steps::acquire_lock::stage_lock(stage);
    match history.release(service, &lock, owner).await {
        Ok(true) => tracing::warn!(%stage, %owner, "released the stage lock after a terminal {error}"),
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(%stage, %owner, error = %e, "could not release the stage lock; it expires with its lease");
        }
    }
}

/// What a command cost: AWS API calls, stack operations, state transitions and time.
#[derive(Debug, Clone, PartialEq)]
pub struct Cost {
    /// API calls by AWS service.
    pub calls: BTreeMap<String, u64>,
    /// CloudFormation create, update and delete calls.
    pub stack_operations: u64,
    /// State transitions of the executions.
    pub transitions: u64,
    /// Seconds since the command started.
    pub seconds: f64,
}

impl Cost {
    /// The cost so far of a command that started at `started`.
    pub fn of(app: &App, transitions: u64, started: Instant) -> Self {
        let stack_operations = app
            .calls
            .snapshot()
            .iter()
            .filter(|((service, op), _)| {
                service == "CloudFormation" && matches!(op.as_str(), "CreateStack" | "UpdateStack" | "DeleteStack")
            })
            .map(|(_, count)| count.calls)
            .sum();
        Self { calls: app.calls.by_service(), stack_operations, transitions, seconds: started.elapsed().as_secs_f64() }
    }

    /// `CloudFormation 2, DynamoDB 9, Lambda 12`.
    pub fn calls_text(&self) -> String {
        self.calls.iter().map(|(service, n)| format!("{service} {n}")).collect::<Vec<_>>().join(", ")
    }

    /// The rows a command's text summary ends with.
    pub fn rows(&self) -> Vec<Vec<String>> {
        vec![
            vec!["stack operations".to_owned(), self.stack_operations.to_string()],
            vec!["API calls".to_owned(), self.calls_text()],
            vec!["state transitions".to_owned(), self.transitions.to_string()],
            vec!["time".to_owned(), format!("{:.1} s", self.seconds)],
        ]
    }

    /// Adds the cost's fields to a command's JSON reply.
    pub fn add_to(&self, json: &mut Map<String, Value>) {
        json.insert("api_calls".to_owned(), json!(self.calls));
        json.insert("stack_operations".to_owned(), json!(self.stack_operations));
        json.insert("state_transitions".to_owned(), json!(self.transitions));
        json.insert("seconds".to_owned(), json!((self.seconds * 1000.0).round() / 1000.0));
    }
}

/// A field of an execution's output as text (`-` when absent).
pub fn field(output: &Value, pointer: &str) -> String {
    match output.pointer(pointer) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => "-".to_owned(),
        Some(other) => other.to_string(),
    }
}

/// What every operation does first: loads the manifest (checking the stage against it), notes
/// the time, and finds the deployer.
pub async fn begin(
    file: &std::path::Path,
    stage: Option<&str>,
    global: &Global,
    app: &App,
) -> Result<(Manifest, Target, Instant), CliError> {
    let manifest = match stage {
        Some(stage) => manifest_for_stage(file, stage)?,
        None => manifest(file)?,
    };
    let started = Instant::now();
    let target = target(&manifest, global, app).await?;
    Ok((manifest, target, started))
}

/// A command's JSON reply: the service, the stage, the execution's `result`, the functions the
/// service stack kept for live stages (as sentences, if any), and the cost.
pub fn report(service: &str, stage: Option<&str>, result: Value, cost: &Cost) -> Map<String, Value> {
    let mut json = Map::new();
    json.insert("service".to_owned(), json!(service));
    json.insert("stage".to_owned(), json!(stage));
    let kept = kept_lines(service, &result);
    if !kept.is_empty() {
        json.insert("kept".to_owned(), json!(kept));
    }
    json.insert("result".to_owned(), result);
    cost.add_to(&mut json);
    json
}

/// Runs `operation` on one stage: the execution input is the stage, the manifest and `extra`'s
/// fields. Returns the manifest, the execution's output and what it cost.
pub async fn on_stage(
    file: &std::path::Path,
    operation: &str,
    stage: &str,
    extra: Value,
    global: &Global,
    app: &App,
) -> Result<(Manifest, Value, Cost), CliError> {
    let (manifest, target, started) = begin(file, Some(stage), global, app).await?;
    let mut request = json!({ "stage": stage, "manifest": manifest_json(&manifest)? });
    if let (Some(request), Value::Object(extra)) = (request.as_object_mut(), extra) {
        request.extend(extra);
    }
    let (output, transitions) = execute(operation, &manifest, request, target).await?;
    Ok((manifest, output, Cost::of(app, transitions, started)))
}

/// The reply of an operation that records a deployment (`RecordDeployment`'s output): the
/// headline, then the deployment, where its code came from, and what it cost.
pub fn deployment_reply(manifest: &Manifest, stage: &str, headline: &str, output: &Value, cost: &Cost) -> Reply {
    let json = report(&manifest.service, Some(stage), output.clone(), cost);
    let mut rows = vec![vec!["deployment".to_owned(), field(output, "/id")]];
    if output.get("origin").is_some_and(|o| !o.is_null()) {
        rows.push(vec!["from".to_owned(), field(output, "/origin")]);
    }
    rows.push(vec!["functions published".to_owned(), field(output, "/published")]);
    rows.push(vec!["functions unchanged".to_owned(), field(output, "/unchanged")]);
    rows.extend(cost.rows());
    let kept: String = kept_lines(&manifest.service, output).iter().map(|line| format!("{line}\n")).collect();
    Reply::new(Value::Object(json), format!("{headline}\n{kept}{}", table(&["", ""], &rows)))
}

/// Reset and clone: runs `operation` on `stage` with `from`'s active code; `headline` says what
/// happened given the service and the origin (`prod#4`).
pub async fn copy(
    file: &std::path::Path,
    operation: &str,
    stage: &str,
    from: &str,
    global: &Global,
    app: &App,
    headline: impl FnOnce(&str, &str) -> String,
) -> Result<Reply, CliError> {
    let (manifest, output, cost) = on_stage(file, operation, stage, json!({ "from": from }), global, app).await?;
    let headline = headline(&manifest.service, &field(&output, "/origin"));
    Ok(deployment_reply(&manifest, stage, &headline, &output, &cost))
}
