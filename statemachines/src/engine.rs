//! Running a state machine: the execution loop, the state types, Retry and Catch, Map and
//! Parallel concurrency, the context object and the event history.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::{BoxFuture, Either};
use futures::stream::{FuturesUnordered, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc::UnboundedSender;

use crate::clock::{Clock, SystemClock};
use crate::definition::{
    Effects, Kind, MapState, Parallel, ResourceKind, ResultPath, Retrier, Scope, Seconds, Source, State, StateMachine,
    Task, Tolerance, Transition, WaitFor,
};
use crate::error::names;
use crate::events::{Event, EventKind, StateType};
use crate::path::Path;
use crate::task::{TaskCall, TaskHandler};
use crate::template::{Env, EvalError, Template};
use crate::values::{compact, format_time, size_of, MAX_PAYLOAD_BYTES};

/// Runs executions of one state machine.
///
/// [`Engine::run`]'s future is `Send`, so executions can run inside `tokio::spawn`, and one engine
/// can run several executions at once. Map iterations (up to `MaxConcurrency`, all of them for 0)
/// and Parallel branches run concurrently as futures of the execution: handlers that await I/O
/// overlap; a CPU-bound handler should use `tokio::task::spawn_blocking` itself.
pub struct Engine {
    machine: Arc<StateMachine>,
    tasks: Arc<dyn TaskHandler>,
    clock: Arc<dyn Clock>,
    sink: Option<UnboundedSender<Event>>,
    state_machine_name: String,
    execution_name: Option<String>,
    region: String,
    account: String,
    history_limit: usize,
}

/// Step Functions' quota on a Standard execution's history: past it, the execution fails.
pub const HISTORY_LIMIT: usize = 25_000;

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("state_machine_name", &self.state_machine_name)
            .field("execution_name", &self.execution_name)
            .field("streams_events", &self.sink.is_some())
            .finish_non_exhaustive()
    }
}

/// How an execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecutionStatus {
    /// The execution reached a Succeed state or an `End`.
    Succeeded,
    /// The execution failed (a Fail state, an uncaught error, a timeout).
    Failed,
}

/// The outcome of one execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    /// Succeeded or failed.
    pub status: ExecutionStatus,
    /// The output, when the execution succeeded.
    pub output: Option<Value>,
    /// The error name, when the execution failed with one.
    pub error: Option<String>,
    /// The cause, when the execution failed with one.
    pub cause: Option<String>,
    /// State transitions: every state entered counts one, inside Map and Parallel too (what
    /// Step Functions bills).
    pub transitions: u64,
    /// The whole event history.
    pub events: Vec<Event>,
}

impl Engine {
    /// An engine that runs `machine`, calling `tasks` for its Task states, on the real clock.
    pub fn new(machine: Arc<StateMachine>, tasks: Arc<dyn TaskHandler>) -> Self {
        Self {
            machine,
            tasks,
            clock: Arc::new(SystemClock),
            sink: None,
            state_machine_name: "StateMachine".to_owned(),
            execution_name: None,
            region: "us-east-1".to_owned(),
            account: "123456789012".to_owned(),
            history_limit: HISTORY_LIMIT,
        }
    }

    /// Fails an execution whose history grows past `events` events (default [`HISTORY_LIMIT`],
    /// as Step Functions does), so a state machine that loops forever ends.
    #[must_use]
    pub fn with_history_limit(mut self, events: usize) -> Self {
        self.history_limit = events;
        self
    }

    /// Uses `clock` for Wait states, Retry back-off, timeouts and timestamps.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sends every event to `sink` as it happens (the full list is in [`Execution::events`] too).
    #[must_use]
    pub fn with_events(mut self, sink: UnboundedSender<Event>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// The state machine and execution names of the context object (`$$.StateMachine.Name`,
    /// `$$.Execution.Name`, and the ARNs built from them). The execution name defaults to a
    /// fresh UUID for each run.
    #[must_use]
    pub fn with_names(mut self, state_machine_name: &str, execution_name: &str) -> Self {
        state_machine_name.clone_into(&mut self.state_machine_name);
        self.execution_name = Some(execution_name.to_owned());
        self
    }

    /// The region and account of the ARNs in the context object (default `us-east-1`,
    /// `123456789012`). `$$.Execution.RoleArn` is `arn:aws:iam::ACCOUNT:role/<machine name>Role`.
    #[must_use]
    pub fn with_region_and_account(mut self, region: &str, account: &str) -> Self {
        region.clone_into(&mut self.region);
        account.clone_into(&mut self.account);
        self
    }

    /// Runs one execution on `input` to its end.
    pub async fn run(&self, input: Value) -> Execution {
        let execution_name = self.execution_name.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let arn = |kind: &str, rest: &str| format!("arn:aws:states:{}:{}:{kind}:{rest}", self.region, self.account);
        let start = self.clock.now();
        let run = Run {
            tasks: Arc::clone(&self.tasks),
            clock: Arc::clone(&self.clock),
            sink: self.sink.clone(),
            log: Mutex::new(Vec::new()),
            transitions: AtomicU64::new(0),
            history_limit: self.history_limit,
            context: json!({
                "Execution": {
                    "Id": arn("execution", &format!("{}:{execution_name}", self.state_machine_name)),
                    "Input": input.clone(),
                    "StartTime": format_time(start),
                    "Name": execution_name,
                    "RoleArn": format!("arn:aws:iam::{}:role/{}Role", self.account, self.state_machine_name),
                    "RedriveCount": 0
                },
                "StateMachine": {
                    "Id": arn("stateMachine", &self.state_machine_name),
                    "Name": self.state_machine_name
                }
            }),
        };
        run.emit(&[], EventKind::ExecutionStarted { input: input.clone() });
        let body = run_scope(&run, &self.machine.root, input, &[]);
        let result = match self.machine.timeout_seconds {
            None => body.await,
            Some(seconds) => {
                let timer = self.clock.timeout(Duration::from_secs(seconds));
                match futures::future::select(body, timer).await {
                    Either::Left((result, _)) => result,
                    Either::Right(_) => Err(Failure {
                        error: Some(names::TIMEOUT.to_owned()),
                        cause: Some(format!("The execution did not end within its TimeoutSeconds ({seconds} s)")),
                        terminal: true,
                    }),
                }
            }
        };
        let (status, output, error, cause) = match result {
            Ok(output) => {
                run.emit(&[], EventKind::ExecutionSucceeded { output: output.clone() });
                (ExecutionStatus::Succeeded, Some(output), None, None)
            }
            Err(f) => {
                run.emit(&[], EventKind::ExecutionFailed { error: f.error.clone(), cause: f.cause.clone() });
                (ExecutionStatus::Failed, None, f.error, f.cause)
            }
        };
        let events = std::mem::take(&mut *run.log.lock().unwrap_or_else(PoisonError::into_inner));
        Execution { status, output, error, cause, transitions: run.transitions.load(Ordering::Relaxed), events }
    }
}

/// The state of one execution, shared by its concurrent branches and iterations.
struct Run {
    tasks: Arc<dyn TaskHandler>,
    clock: Arc<dyn Clock>,
    sink: Option<UnboundedSender<Event>>,
    log: Mutex<Vec<Event>>,
    transitions: AtomicU64,
    history_limit: usize,
    /// The fixed part of the context object: `Execution` and `StateMachine`.
    context: Value,
}

impl Run {
    fn emit(&self, scope: &[(String, usize)], kind: EventKind) -> u64 {
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let id = log.len() as u64 + 1;
        let event = Event { id, timestamp: self.clock.now(), scope: scope.to_vec(), kind };
        if let Some(sink) = &self.sink {
            // A closed receiver only means nobody listens any more.
            let _ = sink.send(event.clone());
        }
        log.push(event);
        id
    }

    fn history_full(&self) -> bool {
        self.log.lock().unwrap_or_else(PoisonError::into_inner).len() >= self.history_limit
    }
}

/// Why a state, branch, iteration or execution failed.
#[derive(Debug, Clone)]
struct Failure {
    error: Option<String>,
    cause: Option<String>,
    /// `States.Runtime` and oversized state output: never retried nor caught.
    terminal: bool,
}

impl Failure {
    fn named(error: &str, cause: impl Into<String>) -> Self {
        Self { error: Some(error.to_owned()), cause: Some(cause.into()), terminal: error == names::RUNTIME }
    }

    /// `{"Error": ..., "Cause": ...}`, what a catcher passes on.
    fn as_output(&self) -> Value {
        let mut map = Map::new();
        if let Some(e) = &self.error {
            map.insert("Error".to_owned(), Value::String(e.clone()));
        }
        if let Some(c) = &self.cause {
            map.insert("Cause".to_owned(), Value::String(c.clone()));
        }
        Value::Object(map)
    }
}

enum Outcome {
    Next(usize, Value),
    End(Value),
    Failed(Failure),
}

/// One state being run: what its errors and context object need.
struct Here<'a> {
    run: &'a Run,
    state: &'a State,
    entered_id: u64,
    entered_time: DateTime<Utc>,
    scope: &'a [(String, usize)],
}

impl Here<'_> {
    /// A failure raised by the interpreter in this state, worded as AWS words it.
    fn fail(&self, error: &str, detail: &str) -> Failure {
        Failure::named(
            error,
            format!(
                "An error occurred while executing the state '{}' (entered at the event id #{}). {detail}",
                self.state.name, self.entered_id
            ),
        )
    }

    fn eval_failure(&self, e: &EvalError) -> Failure {
        self.fail(e.error, &e.detail)
    }

    /// The per-state part of the context object (`State`, and `Map` inside an `ItemSelector`);
    /// `Run::context` holds the rest.
    /// As recorded on AWS, `State.RetryCount` is there only for the states that retry.
    fn context(&self, retry_count: u64, map_item: Option<(usize, &Value)>) -> Value {
        let mut state = json!({
            "Name": self.state.name,
            "EnteredTime": format_time(self.entered_time)
        });
        let retries = matches!(self.state.kind, Kind::Task(_) | Kind::Parallel(_) | Kind::Map(_));
        if let (true, Value::Object(s)) = (retries, &mut state) {
            s.insert("RetryCount".to_owned(), json!(retry_count));
        }
        let mut context = json!({ "State": state });
        if let (Some((index, value)), Value::Object(map)) = (map_item, &mut context) {
            map.insert("Map".to_owned(), json!({"Item": {"Index": index, "Value": value}}));
        }
        context
    }

    /// Evaluates `template` with `$` = `input`.
    fn evaluate(&self, template: &Template, input: &Value, retry_count: u64) -> Result<Value, Failure> {
        let build = || self.context(retry_count, None);
        let env = Env::new(input, &self.run.context, &build);
        template.evaluate(&env).map_err(|e| self.eval_failure(&e))
    }

    /// Reads `path` from `input` (or the context object); a miss is a `States.Runtime` error.
    fn read(&self, path: &Path, input: &Value, retry_count: u64) -> Result<Value, Failure> {
        let build = || self.context(retry_count, None);
        let env = Env::new(input, &self.run.context, &build);
        env.resolve(path).map_err(|e| self.fail(names::RUNTIME, &format!("Invalid path '{}' : {e}", path.text())))
    }

    fn input_path(&self, raw: &Value) -> Result<Value, Failure> {
        match &self.state.input_path {
            None => Ok(Value::Object(Map::new())),
            Some(p) if p.is_root() => Ok(raw.clone()),
            Some(p) => self.read(p, raw, 0),
        }
    }

    fn output_path(&self, output: Value, retry_count: u64) -> Result<Value, Failure> {
        match &self.state.output_path {
            None => Ok(Value::Object(Map::new())),
            Some(p) if p.is_root() => Ok(output),
            Some(p) => self.read(p, &output, retry_count),
        }
    }

    fn result_path(&self, result_path: &ResultPath, raw: &Value, result: Value) -> Result<Value, Failure> {
        match result_path {
            ResultPath::Discard => Ok(raw.clone()),
            ResultPath::Path(p) if p.is_root() => Ok(result),
            ResultPath::Path(p) => p.set(raw.clone(), result).ok_or_else(|| {
                self.fail(
                    names::RESULT_PATH_MATCH_FAILURE,
                    &format!("Unable to apply ResultPath '{}' to input '{}'", p.text(), compact(raw)),
                )
            }),
        }
    }

    /// `ResultSelector`, `ResultPath` and `OutputPath` applied to a result.
    fn finish(&self, effects: &Effects, raw: &Value, result: Value, retry_count: u64) -> Result<Value, Failure> {
        let selected = match &effects.result_selector {
            Some(t) => self.evaluate(t, &result, retry_count)?,
            None => result,
        };
        let combined = self.result_path(&effects.result_path, raw, selected)?;
        self.output_path(combined, retry_count)
    }
}

fn transition(next: Transition, output: Value) -> Outcome {
    match next {
        Transition::Next(i) => Outcome::Next(i, output),
        Transition::End => Outcome::End(output),
    }
}

/// Runs the states of `scope` from its start; the scope's output, or why it failed.
fn run_scope<'a>(
    run: &'a Run,
    scope: &'a Scope,
    input: Value,
    chain: &'a [(String, usize)],
) -> BoxFuture<'a, Result<Value, Failure>> {
    Box::pin(async move {
        let mut index = scope.start;
        let mut input = input;
        loop {
            let Some(state) = scope.states.get(index) else {
                return Err(Failure::named(names::RUNTIME, "transition to a state that does not exist"));
            };
            if run.history_full() {
                return Err(Failure::named(
                    names::RUNTIME,
                    format!(
                        "The execution reached the limit of {} events in its history (entering state '{}')",
                        run.history_limit, state.name
                    ),
                ));
            }
            let state_type = StateType::from_name(state.type_name());
            let entered_time = run.clock.now();
            let entered_id =
                run.emit(chain, EventKind::StateEntered { name: state.name.clone(), state_type, input: input.clone() });
            run.transitions.fetch_add(1, Ordering::Relaxed);
            let here = Here { run, state, entered_id, entered_time, scope: chain };
            let (next, output) = match run_state(&here, input).await {
                Outcome::Next(next, output) => (Some(next), output),
                Outcome::End(output) => (None, output),
                Outcome::Failed(failure) => return Err(failure),
            };
            if size_of(&output) > MAX_PAYLOAD_BYTES {
                return Err(Failure {
                    error: Some(names::DATA_LIMIT_EXCEEDED.to_owned()),
                    cause: Some(format!(
                        "The state/task '{}' returned a result with a size exceeding the maximum number of bytes service limit.",
                        state.name
                    )),
                    terminal: true,
                });
            }
            run.emit(chain, EventKind::StateExited { name: state.name.clone(), state_type, output: output.clone() });
            match next {
                Some(n) => {
                    index = n;
                    input = output;
                }
                None => return Ok(output),
            }
        }
    })
}

async fn run_state(here: &Here<'_>, raw: Value) -> Outcome {
    match &here.state.kind {
        Kind::Pass { parameters, result, result_path, next } => {
            let outcome = (|| {
                let effective = here.input_path(&raw)?;
                let effective = match parameters {
                    Some(p) => here.evaluate(p, &effective, 0)?,
                    None => effective,
                };
                let produced = match result {
                    Some(r) => r.clone(),
                    None => effective,
                };
                let combined = here.result_path(result_path, &raw, produced)?;
                here.output_path(combined, 0)
            })();
            match outcome {
                Ok(output) => transition(*next, output),
                Err(f) => Outcome::Failed(f),
            }
        }
        Kind::Succeed => match here.input_path(&raw).and_then(|v| here.output_path(v, 0)) {
            Ok(output) => Outcome::End(output),
            Err(f) => Outcome::Failed(f),
        },
        Kind::Fail { error, cause } => {
            let read = |source: &Option<Source>, field: &str| -> Result<Option<String>, Failure> {
                let value = match source {
                    None => return Ok(None),
                    Some(Source::Literal(s)) => return Ok(Some(s.clone())),
                    Some(Source::Path(p)) => {
                        let build = || here.context(0, None);
                        let env = Env::new(&raw, &here.run.context, &build);
                        env.resolve(p).map_err(|_| here.eval_failure(&EvalError::path_not_found(p, field, &raw)))?
                    }
                    Some(Source::Intrinsic(call)) => {
                        let build = || here.context(0, None);
                        let env = Env::new(&raw, &here.run.context, &build);
                        call.evaluate(&env).map_err(|e| here.eval_failure(&e))?
                    }
                };
                Ok(Some(match value {
                    Value::String(s) => s,
                    other => compact(&other),
                }))
            };
            let failure = read(error, "ErrorPath")
                .and_then(|error| Ok(Failure { error, cause: read(cause, "CausePath")?, terminal: false }));
            Outcome::Failed(failure.unwrap_or_else(|f| f))
        }
        Kind::Choice { choices, default } => {
            let decided = (|| {
                let effective = here.input_path(&raw)?;
                let build = || here.context(0, None);
                let env = Env::new(&effective, &here.run.context, &build);
                let mut chosen = None;
                for (rule, next) in choices {
                    if rule.evaluate(&env).map_err(|e| here.eval_failure(&e))? {
                        chosen = Some(*next);
                        break;
                    }
                }
                drop(env);
                let Some(next) = chosen.or(*default) else {
                    return Err(
                        here.fail(names::NO_CHOICE_MATCHED, "No Choice rule matched and the state has no Default")
                    );
                };
                Ok((next, here.output_path(effective, 0)?))
            })();
            match decided {
                Ok((next, output)) => Outcome::Next(next, output),
                Err(f) => Outcome::Failed(f),
            }
        }
        Kind::Wait { wait, next } => {
            let effective = match here.input_path(&raw) {
                Ok(v) => v,
                Err(f) => return Outcome::Failed(f),
            };
            let delay = match wait_duration(here, wait, &effective) {
                Ok(d) => d,
                Err(f) => return Outcome::Failed(f),
            };
            here.run.clock.sleep(delay).await;
            match here.output_path(effective, 0) {
                Ok(output) => transition(*next, output),
                Err(f) => Outcome::Failed(f),
            }
        }
        Kind::Task(task) => with_retries(here, &task.effects, raw, Step::Task(task)).await,
        Kind::Parallel(parallel) => with_retries(here, &parallel.effects, raw, Step::Parallel(parallel)).await,
        Kind::Map(map) => with_retries(here, &map.effects, raw, Step::Map(map)).await,
    }
}

/// The longest wait Step Functions accepts, in seconds.
const MAX_WAIT_SECONDS: i64 = i32::MAX as i64;

fn wait_duration(here: &Here<'_>, wait: &WaitFor, input: &Value) -> Result<Duration, Failure> {
    let too_long = || here.fail(names::RUNTIME, "Wait state delay is too long.");
    let seconds = |s: i64| -> Result<Duration, Failure> {
        if s > MAX_WAIT_SECONDS {
            return Err(too_long());
        }
        Ok(Duration::from_secs(u64::try_from(s.max(0)).unwrap_or(0)))
    };
    let until = |t: DateTime<Utc>| -> Result<Duration, Failure> {
        let millis = (t - here.run.clock.now()).num_milliseconds().max(0);
        if millis / 1000 > MAX_WAIT_SECONDS {
            return Err(too_long());
        }
        Ok(Duration::from_millis(u64::try_from(millis).unwrap_or(0)))
    };
    match wait {
        WaitFor::Seconds(s) => seconds(i64::try_from(*s).unwrap_or(i64::MAX)),
        WaitFor::Timestamp(t) => until(t.with_timezone(&Utc)),
        WaitFor::SecondsPath(path) => {
            let value = read_parameter(here, path, input, "SecondsPath")?;
            // A number, or a string Java's Long.parseLong reads.
            let number = value.as_i64().or_else(|| value.as_str().and_then(|s| s.parse::<i64>().ok()));
            match number {
                Some(n) if n < 0 => Err(here.fail(
                    names::RUNTIME,
                    &format!(
                        "The SecondsPath parameter references a negative value: {} == {}",
                        path.text(),
                        plain(&value)
                    ),
                )),
                Some(n) => seconds(n),
                None => Err(here.fail(
                    names::RUNTIME,
                    &format!(
                        "The SecondsPath parameter cannot be parsed as a long value: {} == {}",
                        path.text(),
                        plain(&value)
                    ),
                )),
            }
        }
        WaitFor::TimestampPath(path) => {
            let value = read_parameter(here, path, input, "TimestampPath")?;
            match value.as_str().and_then(crate::values::parse_timestamp) {
                Some(t) => until(t.with_timezone(&Utc)),
                None => Err(here.fail(
                    names::RUNTIME,
                    &format!(
                        "The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: {} == {}",
                        path.text(),
                        plain(&value)
                    ),
                )),
            }
        }
    }
}

/// A string's text, or another value's JSON.
fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => compact(other),
    }
}

fn read_parameter(here: &Here<'_>, path: &Path, input: &Value, field: &str) -> Result<Value, Failure> {
    let build = || here.context(0, None);
    let env = Env::new(input, &here.run.context, &build);
    env.resolve(path).map_err(|_| {
        here.fail(names::RUNTIME, &format!("The {field} parameter does not reference an input value: {}", path.text()))
    })
}

#[derive(Clone, Copy)]
enum Step<'a> {
    Task(&'a Task),
    Parallel(&'a Parallel),
    Map(&'a MapState),
}

fn matches(errors: &[String], failure: &Failure) -> bool {
    if failure.terminal {
        return false;
    }
    errors.iter().any(|e| match e.as_str() {
        names::ALL => true,
        names::TASK_FAILED => failure.error.as_deref() != Some(names::TIMEOUT),
        name => failure.error.as_deref() == Some(name),
    })
}

/// The wait before retry number `attempt + 1` of `retrier`.
pub(crate) fn backoff(retrier: &Retrier, attempt: u64) -> Duration {
    let exponent = i32::try_from(attempt).unwrap_or(i32::MAX);
    #[allow(clippy::cast_precision_loss)]
    let mut seconds = retrier.interval_seconds as f64 * retrier.backoff_rate.powi(exponent);
    if let Some(max) = retrier.max_delay_seconds {
        #[allow(clippy::cast_precision_loss)]
        let max = max as f64;
        seconds = seconds.min(max);
    }
    if retrier.full_jitter {
        seconds *= rand::random::<f64>();
    }
    Duration::try_from_secs_f64(seconds).unwrap_or(Duration::from_secs(31_622_400))
}

/// Runs a Task, Parallel or Map state with its retriers and catchers.
async fn with_retries(here: &Here<'_>, effects: &Effects, raw: Value, step: Step<'_>) -> Outcome {
    let mut attempts = vec![0u64; effects.retry.len()];
    let mut retries = 0u64;
    loop {
        let result = match step {
            Step::Task(task) => run_task(here, task, &raw, retries).await,
            Step::Parallel(parallel) => run_parallel(here, parallel, &raw, retries).await,
            Step::Map(map) => run_map(here, map, &raw, retries).await,
        };
        let failure = match result {
            Ok(output) => return transition(effects.next, output),
            Err(f) => f,
        };
        if failure.terminal {
            return Outcome::Failed(failure);
        }
        if let Some(i) = effects.retry.iter().position(|r| matches(&r.errors, &failure)) {
            let retrier = &effects.retry[i];
            if attempts[i] < retrier.max_attempts {
                let delay = backoff(retrier, attempts[i]);
                attempts[i] += 1;
                retries += 1;
                here.run.clock.sleep(delay).await;
                continue;
            }
        }
        let state_failed = match step {
            Step::Task(_) => None,
            Step::Parallel(_) => {
                Some(EventKind::ParallelStateFailed { error: failure.error.clone(), cause: failure.cause.clone() })
            }
            Step::Map(_) => {
                Some(EventKind::MapStateFailed { error: failure.error.clone(), cause: failure.cause.clone() })
            }
        };
        if let Some(kind) = state_failed {
            here.run.emit(here.scope, kind);
        }
        if let Some(catcher) = effects.catch.iter().find(|c| matches(&c.errors, &failure)) {
            return match here.result_path(&catcher.result_path, &raw, failure.as_output()) {
                Ok(output) => Outcome::Next(catcher.next, output),
                Err(f) => Outcome::Failed(f),
            };
        }
        return Outcome::Failed(failure);
    }
}

async fn run_task(here: &Here<'_>, task: &Task, raw: &Value, retries: u64) -> Result<Value, Failure> {
    let effective = here.input_path(raw)?;
    let timeout = match &task.timeout {
        None => None,
        Some(Seconds::Fixed(s)) => Some(*s),
        Some(Seconds::Path(p)) => {
            let value = here.read(p, &effective, retries)?;
            match value.as_u64().filter(|n| *n > 0) {
                Some(n) => Some(n),
                None => {
                    return Err(here.fail(
                        names::RUNTIME,
                        &format!(
                        "The TimeoutSecondsPath field refers to value \"{}\" which is not a valid positive integer: {}",
                        plain(&value),
                        p.text()
                    ),
                    ))
                }
            }
        }
    };
    let task_input = match &task.effects.parameters {
        Some(p) => here.evaluate(p, &effective, retries)?,
        None => effective,
    };
    let resource = task.resource.clone();
    here.run.emit(here.scope, EventKind::TaskScheduled { resource: resource.clone(), input: task_input.clone() });
    here.run.emit(here.scope, EventKind::TaskStarted { resource: resource.clone() });
    let call = TaskCall { state: &here.state.name, resource: &task.resource, scope: here.scope, retry_count: retries };
    let invoke = here.run.tasks.invoke_task(call, task_input);
    let result = match timeout {
        None => Some(invoke.await),
        Some(seconds) => {
            let timer = here.run.clock.timeout(Duration::from_secs(seconds));
            match futures::future::select(invoke, timer).await {
                Either::Left((result, _)) => Some(result),
                Either::Right(_) => None,
            }
        }
    };
    let output = match result {
        None => {
            here.run
                .emit(here.scope, EventKind::TaskTimedOut { resource, error: names::TIMEOUT.to_owned(), cause: None });
            return Err(Failure { error: Some(names::TIMEOUT.to_owned()), cause: None, terminal: false });
        }
        Some(Err(e)) => {
            here.run
                .emit(here.scope, EventKind::TaskFailed { resource, error: e.error.clone(), cause: e.cause.clone() });
            return Err(Failure { error: Some(e.error), cause: Some(e.cause), terminal: false });
        }
        Some(Ok(output)) => output,
    };
    if size_of(&output) > MAX_PAYLOAD_BYTES {
        let subject = match task.resource_kind {
            ResourceKind::LambdaInvoke => "lambda",
            ResourceKind::LambdaFunction => task.resource.as_str(),
        };
        let cause = format!(
            "The state/task '{subject}' returned a result with a size exceeding the maximum number of bytes service limit."
        );
        here.run.emit(
            here.scope,
            EventKind::TaskFailed { resource, error: names::DATA_LIMIT_EXCEEDED.to_owned(), cause: cause.clone() },
        );
        return Err(Failure {
            error: Some(names::DATA_LIMIT_EXCEEDED.to_owned()),
            cause: Some(cause),
            terminal: false,
        });
    }
    here.run.emit(here.scope, EventKind::TaskSucceeded { resource, output: output.clone() });
    here.finish(&task.effects, raw, output, retries)
}

async fn run_parallel(here: &Here<'_>, parallel: &Parallel, raw: &Value, retries: u64) -> Result<Value, Failure> {
    let effective = here.input_path(raw)?;
    let branch_input = match &parallel.effects.parameters {
        Some(p) => here.evaluate(p, &effective, retries)?,
        None => effective,
    };
    here.run.emit(here.scope, EventKind::ParallelStateStarted { branches: parallel.branches.len() });
    let chains: Vec<Vec<(String, usize)>> = (0..parallel.branches.len())
        .map(|i| {
            let mut chain = here.scope.to_vec();
            chain.push((here.state.name.clone(), i));
            chain
        })
        .collect();
    let mut running: FuturesUnordered<_> = parallel
        .branches
        .iter()
        .zip(&chains)
        .enumerate()
        .map(|(i, (branch, chain))| {
            let input = branch_input.clone();
            async move { (i, run_scope(here.run, branch, input, chain).await) }
        })
        .collect();
    let mut results: Vec<Value> = vec![Value::Null; parallel.branches.len()];
    while let Some((i, result)) = running.next().await {
        match result {
            Ok(v) => {
                if let Some(slot) = results.get_mut(i) {
                    *slot = v;
                }
            }
            Err(f) => return Err(f),
        }
    }
    drop(running);
    here.run.emit(here.scope, EventKind::ParallelStateSucceeded);
    here.finish(&parallel.effects, raw, Value::Array(results), retries)
}

/// A value read by a `...Path` field of a Map state that must be a number.
fn map_number(
    here: &Here<'_>,
    field: &str,
    path: &Path,
    input: &Value,
    retries: u64,
    kind: &str,
) -> Result<Value, Failure> {
    let value = here.read(path, input, retries)?;
    let valid = match kind {
        "integer" => value.as_i64().is_some(),
        _ => value.is_number(),
    };
    if valid {
        Ok(value)
    } else {
        Err(here.fail(
            names::RUNTIME,
            &format!(
                "The {field} field refers to value \"{}\" which is not a valid {kind}: {}",
                plain(&value),
                path.text()
            ),
        ))
    }
}

async fn run_map(here: &Here<'_>, map: &MapState, raw: &Value, retries: u64) -> Result<Value, Failure> {
    let effective = here.input_path(raw)?;
    let items = here.read(&map.items_path, &effective, retries)?;
    let Value::Array(items) = items else {
        return Err(
            here.fail(names::RUNTIME, &format!("Reference path \"{}\" must point to array.", map.items_path.text()))
        );
    };
    here.run.emit(here.scope, EventKind::MapStateStarted { length: items.len() });
    let limit = match &map.max_concurrency {
        Seconds::Fixed(n) => *n,
        Seconds::Path(p) => {
            let v = map_number(here, "MaxConcurrencyPath", p, &effective, retries, "integer")?;
            match v.as_u64() {
                Some(n) => n,
                None => return Err(here.fail(names::RUNTIME, "MaxConcurrency cannot be negative.")),
            }
        }
    };
    let tolerated_count = match &map.tolerated_count {
        None => None,
        Some(Tolerance::Fixed(n)) => Some(*n),
        Some(Tolerance::Path(p)) => {
            let v = map_number(here, "ToleratedFailureCountPath", p, &effective, retries, "integer")?;
            match v.as_u64() {
                #[allow(clippy::cast_precision_loss)]
                Some(n) => Some(n as f64),
                None => return Err(here.fail(names::RUNTIME, "ToleratedFailureCount cannot be negative.")),
            }
        }
    };
    let tolerated_percentage = match &map.tolerated_percentage {
        None => None,
        Some(Tolerance::Fixed(n)) => Some(*n),
        Some(Tolerance::Path(p)) => {
            let v = map_number(here, "ToleratedFailurePercentagePath", p, &effective, retries, "float")?;
            match v.as_f64().filter(|n| (0.0..=100.0).contains(n)) {
                Some(n) => Some(n),
                None => return Err(here.fail(names::RUNTIME, "ToleratedFailurePercentage must be between 0 and 100.")),
            }
        }
    };
    let limit = if limit == 0 { items.len().max(1) } else { usize::try_from(limit).unwrap_or(usize::MAX) };
    let name = &here.state.name;
    let chains: Vec<Vec<(String, usize)>> = (0..items.len())
        .map(|i| {
            let mut chain = here.scope.to_vec();
            chain.push((name.clone(), i));
            chain
        })
        .collect();
    let tolerant = tolerated_count.is_some() || tolerated_percentage.is_some();
    let total = items.len();
    let mut results: Vec<Value> = vec![Value::Null; total];
    let mut pending = items.iter().zip(&chains).enumerate();
    let mut running = FuturesUnordered::new();
    let mut in_flight: BTreeSet<usize> = BTreeSet::new();
    let mut failed = 0usize;
    let mut fatal: Option<Failure> = None;
    loop {
        while running.len() < limit {
            let Some((index, (item, chain))) = pending.next() else {
                break;
            };
            in_flight.insert(index);
            running.push(map_iteration(here, map, &effective, index, item.clone(), chain, retries));
        }
        let Some((index, result)) = running.next().await else {
            break;
        };
        in_flight.remove(&index);
        match result {
            Ok(v) => {
                if let Some(slot) = results.get_mut(index) {
                    *slot = v;
                }
            }
            Err(f) if f.terminal || !tolerant => {
                fatal = Some(f);
                break;
            }
            Err(f) => {
                failed += 1;
                #[allow(clippy::cast_precision_loss)]
                let exceeded = tolerated_count.is_some_and(|n| failed as f64 > n)
                    || tolerated_percentage.is_some_and(|p| (failed as f64) * 100.0 / (total as f64) > p);
                if exceeded {
                    fatal = Some(Failure::named(
                        names::EXCEED_TOLERATED_FAILURE_THRESHOLD,
                        "The specified tolerated failure threshold was exceeded",
                    ));
                    break;
                }
                if let Some(slot) = results.get_mut(index) {
                    *slot = f.as_output();
                }
            }
        }
    }
    drop(running);
    if let Some(failure) = fatal {
        for index in in_flight {
            here.run.emit(here.scope, EventKind::MapIterationAborted { name: name.clone(), index });
        }
        return Err(failure);
    }
    here.run.emit(here.scope, EventKind::MapStateSucceeded);
    here.finish(&map.effects, raw, Value::Array(results), retries)
}

/// One Map iteration: its events, its `ItemSelector`, its states.
async fn map_iteration<'a>(
    here: &'a Here<'a>,
    map: &'a MapState,
    effective: &'a Value,
    index: usize,
    item: Value,
    chain: &'a [(String, usize)],
    retries: u64,
) -> (usize, Result<Value, Failure>) {
    let name = &here.state.name;
    here.run.emit(here.scope, EventKind::MapIterationStarted { name: name.clone(), index });
    let input = match &map.item_selector {
        None => Ok(item),
        Some(selector) => {
            let build = || here.context(retries, Some((index, &item)));
            let env = Env::new(effective, &here.run.context, &build);
            selector.evaluate(&env).map_err(|e| here.eval_failure(&e))
        }
    };
    let result = match input {
        Ok(input) => run_scope(here.run, &map.processor, input, chain).await,
        Err(f) => Err(f),
    };
    let kind = match &result {
        Ok(_) => EventKind::MapIterationSucceeded { name: name.clone(), index },
        Err(f) => {
            EventKind::MapIterationFailed { name: name.clone(), index, error: f.error.clone(), cause: f.cause.clone() }
        }
    };
    here.run.emit(here.scope, kind);
    (index, result)
}

#[cfg(test)]
mod tests;
