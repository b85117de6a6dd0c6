//! Parsing a definition into typed states, with the validation Step Functions does at
//! `CreateStateMachine`, and the refusal of everything this interpreter does not run.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Value};

use crate::choice::{parse_rule, Rule};
use crate::error::{names, DefinitionError, Problem};
use crate::intrinsics::Intrinsic;
use crate::path::Path;
use crate::template::{escape_pointer, Template};
use crate::values::parse_timestamp;

/// A parsed and validated state machine definition (Amazon States Language, JSONPath).
///
/// ```
/// use statemachines::StateMachine;
/// let machine = StateMachine::from_json(r#"{"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}"#)?;
/// assert_eq!(machine.state_names(), vec!["A"]);
/// # Ok::<(), statemachines::DefinitionError>(())
/// ```
#[derive(Debug, Clone)]
pub struct StateMachine {
    pub(crate) comment: Option<String>,
    pub(crate) timeout_seconds: Option<u64>,
    pub(crate) root: Scope,
}

/// The states of the machine, of a Parallel branch or of a Map's item processor.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    pub(crate) start: usize,
    pub(crate) states: Vec<State>,
}

#[derive(Debug, Clone)]
pub(crate) struct State {
    pub(crate) name: String,
    /// `None`: `"InputPath": null` (the input becomes `{}`).
    pub(crate) input_path: Option<Path>,
    /// `None`: `"OutputPath": null` (the output becomes `{}`).
    pub(crate) output_path: Option<Path>,
    pub(crate) kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Transition {
    Next(usize),
    End,
}

#[derive(Debug, Clone)]
pub(crate) enum ResultPath {
    Discard,
    Path(Path),
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Pass { parameters: Option<Template>, result: Option<Value>, result_path: ResultPath, next: Transition },
    Task(Box<Task>),
    Choice { choices: Vec<(Rule, usize)>, default: Option<usize> },
    Wait { wait: WaitFor, next: Transition },
    Succeed,
    Fail { error: Option<Source>, cause: Option<Source> },
    Parallel(Box<Parallel>),
    Map(Box<MapState>),
}

/// Where a Fail state's error or cause comes from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    Literal(String),
    Path(Path),
    Intrinsic(Intrinsic),
}

#[derive(Debug, Clone)]
pub(crate) enum WaitFor {
    Seconds(u64),
    SecondsPath(Path),
    Timestamp(DateTime<FixedOffset>),
    TimestampPath(Path),
}

/// The effects shared by Task, Parallel and Map: result handling, retries and catchers.
#[derive(Debug, Clone)]
pub(crate) struct Effects {
    pub(crate) parameters: Option<Template>,
    pub(crate) result_selector: Option<Template>,
    pub(crate) result_path: ResultPath,
    pub(crate) retry: Vec<Retrier>,
    pub(crate) catch: Vec<Catcher>,
    pub(crate) next: Transition,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ResourceKind {
    /// `arn:aws:lambda:REGION:ACCOUNT:function:NAME`: input and output are the function's own.
    LambdaFunction,
    /// `arn:aws:states:::lambda:invoke`: input is `Parameters`, output the integration result.
    LambdaInvoke,
}

#[derive(Debug, Clone)]
pub(crate) struct Task {
    pub(crate) resource: String,
    pub(crate) resource_kind: ResourceKind,
    pub(crate) timeout: Option<Seconds>,
    pub(crate) effects: Effects,
}

#[derive(Debug, Clone)]
pub(crate) enum Seconds {
    Fixed(u64),
    Path(Path),
}

#[derive(Debug, Clone)]
pub(crate) struct Parallel {
    pub(crate) branches: Vec<Scope>,
    pub(crate) effects: Effects,
}

#[derive(Debug, Clone)]
pub(crate) enum Tolerance {
    Fixed(f64),
    Path(Path),
}

#[derive(Debug, Clone)]
pub(crate) struct MapState {
    pub(crate) processor: Scope,
    pub(crate) items_path: Path,
    pub(crate) item_selector: Option<Template>,
    pub(crate) max_concurrency: Seconds,
    pub(crate) tolerated_count: Option<Tolerance>,
    pub(crate) tolerated_percentage: Option<Tolerance>,
    pub(crate) effects: Effects,
}

#[derive(Debug, Clone)]
pub(crate) struct Retrier {
    pub(crate) errors: Vec<String>,
    pub(crate) interval_seconds: u64,
    pub(crate) max_attempts: u64,
    pub(crate) backoff_rate: f64,
    pub(crate) max_delay_seconds: Option<u64>,
    pub(crate) full_jitter: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Catcher {
    pub(crate) errors: Vec<String>,
    pub(crate) result_path: ResultPath,
    pub(crate) next: usize,
}

impl State {
    /// The state's `Type` as written.
    pub(crate) fn type_name(&self) -> &'static str {
        match &self.kind {
            Kind::Pass { .. } => "Pass",
            Kind::Task(_) => "Task",
            Kind::Choice { .. } => "Choice",
            Kind::Wait { .. } => "Wait",
            Kind::Succeed => "Succeed",
            Kind::Fail { .. } => "Fail",
            Kind::Parallel(_) => "Parallel",
            Kind::Map(_) => "Map",
        }
    }

    /// Every state index this state can move to.
    pub(crate) fn successors(&self) -> Vec<usize> {
        let mut out = Vec::new();
        let effects = |e: &Effects, out: &mut Vec<usize>| {
            if let Transition::Next(n) = e.next {
                out.push(n);
            }
            out.extend(e.catch.iter().map(|c| c.next));
        };
        match &self.kind {
            Kind::Pass { next, .. } | Kind::Wait { next, .. } => {
                if let Transition::Next(n) = next {
                    out.push(*n);
                }
            }
            Kind::Task(t) => effects(&t.effects, &mut out),
            Kind::Parallel(p) => effects(&p.effects, &mut out),
            Kind::Map(m) => effects(&m.effects, &mut out),
            Kind::Choice { choices, default } => {
                out.extend(choices.iter().map(|(_, n)| *n));
                out.extend(default.iter().copied());
            }
            Kind::Succeed | Kind::Fail { .. } => {}
        }
        out
    }
}

impl StateMachine {
    /// Parses and validates a definition given as JSON text (after `DefinitionSubstitutions`;
    /// see [`crate::substitute`]).
    pub fn from_json(text: &str) -> Result<Self, DefinitionError> {
        let value: Value = serde_json::from_str(text).map_err(|e| DefinitionError {
            problems: vec![Problem {
                code: "INVALID_JSON_DESCRIPTION".to_owned(),
                message: format!("the definition is not valid JSON: {e}"),
                location: "/".to_owned(),
                state: None,
                field: None,
            }],
        })?;
        Self::from_value(&value)
    }

    /// Parses and validates a definition given as a JSON value.
    pub fn from_value(value: &Value) -> Result<Self, DefinitionError> {
        let mut checker = Checker::default();
        let machine = parse_machine(value, &mut checker);
        match machine {
            Some(m) if checker.problems.is_empty() => Ok(m),
            _ => {
                if checker.problems.is_empty() {
                    checker.schema("", None, "The definition is not valid");
                }
                Err(DefinitionError { problems: checker.problems })
            }
        }
    }

    /// The definition's top-level `Comment`.
    pub fn comment(&self) -> Option<&str> {
        self.comment.as_deref()
    }

    /// The names of the top-level states, in definition order.
    pub fn state_names(&self) -> Vec<&str> {
        self.root.states.iter().map(|s| s.name.as_str()).collect()
    }

    /// Every Task `Resource`, with the names of the states that use it (nested states included).
    pub fn resources(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        self.root.visit(&mut |state| {
            if let Kind::Task(task) = &state.kind {
                out.entry(task.resource.clone()).or_default().push(state.name.clone());
            }
        });
        out
    }
}

impl Scope {
    /// Calls `f` on every state of this scope and of the scopes nested in it.
    pub(crate) fn visit<'a>(&'a self, f: &mut dyn FnMut(&'a State)) {
        for state in &self.states {
            f(state);
            match &state.kind {
                Kind::Parallel(p) => {
                    for branch in &p.branches {
                        branch.visit(f);
                    }
                }
                Kind::Map(m) => m.processor.visit(f),
                _ => {}
            }
        }
    }
}

/// Collects problems while parsing.
#[derive(Debug, Default)]
pub(crate) struct Checker {
    pub(crate) problems: Vec<Problem>,
    state: Option<String>,
    /// Every state name seen, with its location (names are unique across the whole machine).
    seen: HashMap<String, String>,
}

impl Checker {
    pub(crate) fn problem(&mut self, code: &str, pointer: &str, field: Option<&str>, message: &str) {
        self.problems.push(Problem {
            code: code.to_owned(),
            message: message.to_owned(),
            location: if pointer.is_empty() { "/".to_owned() } else { pointer.to_owned() },
            state: self.state.clone(),
            field: field.map(str::to_owned),
        });
    }

    pub(crate) fn schema(&mut self, pointer: &str, field: Option<&str>, message: &str) {
        self.problem("SCHEMA_VALIDATION_FAILED", pointer, field, message);
    }

    fn unsupported(&mut self, pointer: &str, field: Option<&str>, message: &str) {
        self.problem("UNSUPPORTED_BY_LOCAL_INTERPRETER", pointer, field, message);
    }
}

const TOP_FIELDS: &[&str] = &["Comment", "StartAt", "States", "Version", "TimeoutSeconds", "QueryLanguage"];

const SCOPE_FIELDS: &[&str] = &["Comment", "StartAt", "States"];

fn parse_machine(value: &Value, checker: &mut Checker) -> Option<StateMachine> {
    let Value::Object(map) = value else {
        checker.schema("", None, "The definition must be a JSON object");
        return None;
    };
    for key in map.keys() {
        if !TOP_FIELDS.contains(&key.as_str()) {
            checker.schema(
                &format!("/{}", escape_pointer(key)),
                Some(key),
                &format!("These fields are not allowed: {key}"),
            );
        }
    }
    check_query_language(map, "", checker);
    if let Some(v) = map.get("Version") {
        if v.as_str() != Some("1.0") {
            checker.schema("/Version", Some("Version"), "Version must be \"1.0\"");
        }
    }
    let comment = optional_string(map, "Comment", "", checker);
    let timeout_seconds = map.get("TimeoutSeconds").and_then(|v| {
        let n = positive_integer(v);
        if n.is_none() {
            checker.schema("/TimeoutSeconds", Some("TimeoutSeconds"), "TimeoutSeconds must be a positive integer");
        }
        n
    });
    let root = parse_scope(map, "", checker)?;
    Some(StateMachine { comment, timeout_seconds, root })
}

fn check_query_language(map: &Map<String, Value>, pointer: &str, checker: &mut Checker) {
    match map.get("QueryLanguage") {
        None => {}
        Some(Value::String(s)) if s == "JSONPath" => {}
        Some(Value::String(s)) if s == "JSONata" => checker.unsupported(
            &format!("{pointer}/QueryLanguage"),
            Some("QueryLanguage"),
            "JSONata is not supported by the local interpreter; use JSONPath",
        ),
        Some(_) => checker.schema(
            &format!("{pointer}/QueryLanguage"),
            Some("QueryLanguage"),
            "QueryLanguage must be \"JSONPath\" or \"JSONata\"",
        ),
    }
}

/// Parses `StartAt` and `States` of `map` (the machine, a branch or an item processor).
fn parse_scope(map: &Map<String, Value>, pointer: &str, checker: &mut Checker) -> Option<Scope> {
    let states_pointer = format!("{pointer}/States");
    let Some(Value::Object(states)) = map.get("States") else {
        checker.schema(pointer, Some("States"), "Field 'States' is required and must be an object");
        return None;
    };
    if states.is_empty() {
        checker.schema(&states_pointer, Some("States"), "Field 'States' must contain at least one state");
        return None;
    }
    let index: HashMap<&str, usize> = states.keys().enumerate().map(|(i, k)| (k.as_str(), i)).collect();
    let start = match map.get("StartAt") {
        Some(Value::String(s)) => match index.get(s.as_str()) {
            Some(i) => Some(*i),
            None => {
                checker.problem(
                    "MISSING_TRANSITION_TARGET",
                    &format!("{pointer}/StartAt"),
                    Some("StartAt"),
                    &format!("Missing 'StartAt' target: {s}"),
                );
                None
            }
        },
        _ => {
            checker.schema(pointer, Some("StartAt"), "Field 'StartAt' is required and must be a string");
            None
        }
    };
    let outer_state = checker.state.clone();
    let mut parsed = Vec::with_capacity(states.len());
    for (name, value) in states {
        let state_pointer = format!("{states_pointer}/{}", escape_pointer(name));
        checker.state = Some(name.clone());
        if name.chars().count() > 80 {
            checker.schema(&state_pointer, None, "State names must be at most 80 characters long");
        }
        if let Some(previous) = checker.seen.insert(name.clone(), state_pointer.clone()) {
            checker.problem(
                "DUPLICATE_STATE_NAME",
                &state_pointer,
                None,
                &format!("Duplicate State name: {name} (also at {previous})"),
            );
        }
        let state = parse_state(name, value, &state_pointer, &index, checker);
        checker.state = outer_state.clone();
        if let Some(s) = state {
            parsed.push(s);
        }
    }
    if parsed.len() != states.len() {
        return None;
    }
    Some(Scope { start: start?, states: parsed })
}

struct Fields<'a> {
    map: &'a Map<String, Value>,
    pointer: &'a str,
    index: &'a HashMap<&'a str, usize>,
}

impl Fields<'_> {
    fn at(&self, key: &str) -> String {
        format!("{}/{key}", self.pointer)
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key)
    }

    fn target(&self, key: &str, name: &str, checker: &mut Checker) -> Option<usize> {
        let found = self.index.get(name).copied();
        if found.is_none() {
            checker.problem(
                "MISSING_TRANSITION_TARGET",
                &self.at(key),
                Some(key),
                &format!("Missing '{key}' target: {name}"),
            );
        }
        found
    }

    /// `Next` or `End: true`, exactly one.
    fn transition(&self, checker: &mut Checker) -> Option<Transition> {
        match (self.get("Next"), self.get("End")) {
            (Some(Value::String(n)), None) => self.target("Next", n, checker).map(Transition::Next),
            (None, Some(Value::Bool(true))) => Some(Transition::End),
            (Some(_), Some(_)) => {
                checker.schema(self.pointer, Some("Next"), "A state cannot have both 'Next' and 'End'");
                None
            }
            (None, Some(_)) => {
                checker.schema(&self.at("End"), Some("End"), "End must be true");
                None
            }
            (Some(_), None) => {
                checker.schema(&self.at("Next"), Some("Next"), "Next must be a string");
                None
            }
            (None, None) => {
                checker.schema(self.pointer, Some("Next"), "A non-terminal state needs either 'Next' or 'End': true");
                None
            }
        }
    }

    /// `InputPath`/`OutputPath`: absent means `$`, `null` means discard.
    fn io_path(&self, key: &str, checker: &mut Checker) -> Option<Option<Path>> {
        match self.get(key) {
            None => Some(Some(root_path())),
            Some(Value::Null) => Some(None),
            Some(Value::String(s)) => match Path::parse(s) {
                Ok(p) => Some(Some(p)),
                Err(e) => {
                    checker.schema(&self.at(key), Some(key), &format!("{key} is not a valid JSONPath: {e}"));
                    None
                }
            },
            Some(_) => {
                checker.schema(&self.at(key), Some(key), &format!("{key} must be a string or null"));
                None
            }
        }
    }

    fn result_path(&self, checker: &mut Checker) -> Option<ResultPath> {
        parse_result_path(self.get("ResultPath"), &self.at("ResultPath"), checker)
    }

    fn reference_path(&self, key: &str, checker: &mut Checker) -> Option<Path> {
        let Some(Value::String(s)) = self.get(key) else {
            checker.schema(&self.at(key), Some(key), &format!("{key} must be a string"));
            return None;
        };
        match Path::parse(s) {
            Ok(p) if p.is_reference() => Some(p),
            Ok(_) => {
                checker.schema(
                    &self.at(key),
                    Some(key),
                    &format!("{key} must be a reference path (only '.name' and '[index]' steps): {s}"),
                );
                None
            }
            Err(e) => {
                checker.schema(&self.at(key), Some(key), &format!("{key} is not a valid JSONPath: {e}"));
                None
            }
        }
    }

    fn template(&self, key: &str, checker: &mut Checker) -> Option<Option<Template>> {
        let Some(value) = self.get(key) else {
            return Some(None);
        };
        match Template::compile(value) {
            Ok(t) => Some(Some(t)),
            Err((pointer, message)) => {
                checker.schema(&format!("{}{pointer}", self.at(key)), Some(key), &message);
                None
            }
        }
    }

    fn effects(&self, checker: &mut Checker) -> Option<Effects> {
        let parameters = self.template("Parameters", checker);
        let result_selector = self.template("ResultSelector", checker);
        let result_path = self.result_path(checker);
        let retry = self.retriers(checker);
        let catch = self.catchers(checker);
        let next = self.transition(checker);
        Some(Effects {
            parameters: parameters?,
            result_selector: result_selector?,
            result_path: result_path?,
            retry: retry?,
            catch: catch?,
            next: next?,
        })
    }

    fn error_equals(
        &self,
        value: &Map<String, Value>,
        pointer: &str,
        last: bool,
        checker: &mut Checker,
    ) -> Option<Vec<String>> {
        let at = format!("{pointer}/ErrorEquals");
        let Some(Value::Array(items)) = value.get("ErrorEquals") else {
            checker.schema(pointer, Some("ErrorEquals"), "ErrorEquals is required and must be an array of strings");
            return None;
        };
        if items.is_empty() {
            checker.schema(&at, Some("ErrorEquals"), "ErrorEquals must not be empty");
            return None;
        }
        let mut errors = Vec::with_capacity(items.len());
        for item in items {
            let Value::String(s) = item else {
                checker.schema(&at, Some("ErrorEquals"), "ErrorEquals must contain only strings");
                return None;
            };
            errors.push(s.clone());
        }
        if errors.iter().any(|e| e == names::ALL) {
            if errors.len() > 1 {
                checker.schema(&at, Some("ErrorEquals"), "States.ALL must appear alone in ErrorEquals");
                return None;
            }
            if !last {
                checker.schema(&at, Some("ErrorEquals"), "States.ALL must appear in the last retrier or catcher");
                return None;
            }
        }
        Some(errors)
    }

    fn retriers(&self, checker: &mut Checker) -> Option<Vec<Retrier>> {
        let Some(value) = self.get("Retry") else {
            return Some(Vec::new());
        };
        let at = self.at("Retry");
        let Value::Array(items) = value else {
            checker.schema(&at, Some("Retry"), "Retry must be an array");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let pointer = format!("{at}/{i}");
            let Value::Object(map) = item else {
                checker.schema(&pointer, Some("Retry"), "A retrier must be an object");
                ok = false;
                continue;
            };
            for key in map.keys() {
                if !matches!(
                    key.as_str(),
                    "ErrorEquals"
                        | "IntervalSeconds"
                        | "MaxAttempts"
                        | "BackoffRate"
                        | "MaxDelaySeconds"
                        | "JitterStrategy"
                        | "Comment"
                ) {
                    checker.schema(
                        &format!("{pointer}/{key}"),
                        Some("Retry"),
                        &format!("Field '{key}' is not supported in a retrier"),
                    );
                    ok = false;
                }
            }
            let errors = self.error_equals(map, &pointer, i + 1 == items.len(), checker);
            let mut int_field = |key: &str, default: u64, min: u64, max: u64| -> Option<u64> {
                match map.get(key) {
                    None => Some(default),
                    Some(v) => match v.as_u64().filter(|n| (min..=max).contains(n)) {
                        Some(n) => Some(n),
                        None => {
                            checker.schema(
                                &format!("{pointer}/{key}"),
                                Some(key),
                                &format!("{key} must be an integer from {min} to {max}"),
                            );
                            None
                        }
                    },
                }
            };
            let interval_seconds = int_field("IntervalSeconds", 1, 1, 99_999_999);
            let max_attempts = int_field("MaxAttempts", 3, 0, 99_999_999);
            let max_delay_seconds = match map.get("MaxDelaySeconds") {
                None => Some(None),
                Some(_) => int_field("MaxDelaySeconds", 0, 1, 31_622_400).map(Some),
            };
            let backoff_rate = match map.get("BackoffRate") {
                None => Some(2.0),
                Some(v) => match v.as_f64().filter(|r| *r >= 1.0) {
                    Some(r) => Some(r),
                    None => {
                        checker.schema(
                            &format!("{pointer}/BackoffRate"),
                            Some("BackoffRate"),
                            "BackoffRate must be a number of at least 1.0",
                        );
                        None
                    }
                },
            };
            let full_jitter = match map.get("JitterStrategy") {
                None => Some(false),
                Some(Value::String(s)) if s == "FULL" => Some(true),
                Some(Value::String(s)) if s == "NONE" => Some(false),
                Some(_) => {
                    checker.schema(
                        &format!("{pointer}/JitterStrategy"),
                        Some("JitterStrategy"),
                        "JitterStrategy must be \"FULL\" or \"NONE\"",
                    );
                    None
                }
            };
            match (errors, interval_seconds, max_attempts, max_delay_seconds, backoff_rate, full_jitter) {
                (
                    Some(errors),
                    Some(interval_seconds),
                    Some(max_attempts),
                    Some(max_delay_seconds),
                    Some(backoff_rate),
                    Some(full_jitter),
                ) => {
                    out.push(Retrier {
                        errors,
                        interval_seconds,
                        max_attempts,
                        backoff_rate,
                        max_delay_seconds,
                        full_jitter,
                    });
                }
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn catchers(&self, checker: &mut Checker) -> Option<Vec<Catcher>> {
        let Some(value) = self.get("Catch") else {
            return Some(Vec::new());
        };
        let at = self.at("Catch");
        let Value::Array(items) = value else {
            checker.schema(&at, Some("Catch"), "Catch must be an array");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let pointer = format!("{at}/{i}");
            let Value::Object(map) = item else {
                checker.schema(&pointer, Some("Catch"), "A catcher must be an object");
                ok = false;
                continue;
            };
            for key in map.keys() {
                match key.as_str() {
                    "ErrorEquals" | "Next" | "ResultPath" | "Comment" => {}
                    "Assign" | "Output" => {
                        checker.unsupported(
                            &format!("{pointer}/{key}"),
                            Some(key),
                            &format!("Field '{key}' (variables, JSONata) is not supported by the local interpreter"),
                        );
                        ok = false;
                    }
                    _ => {
                        checker.schema(
                            &format!("{pointer}/{key}"),
                            Some("Catch"),
                            &format!("Field '{key}' is not supported in a catcher"),
                        );
                        ok = false;
                    }
                }
            }
            let errors = self.error_equals(map, &pointer, i + 1 == items.len(), checker);
            let next = match map.get("Next") {
                Some(Value::String(n)) => {
                    let found = self.index.get(n.as_str()).copied();
                    if found.is_none() {
                        checker.problem(
                            "MISSING_TRANSITION_TARGET",
                            &format!("{pointer}/Next"),
                            Some("Next"),
                            &format!("Missing 'Next' target: {n}"),
                        );
                    }
                    found
                }
                _ => {
                    checker.schema(&pointer, Some("Next"), "A catcher needs a 'Next' state name");
                    None
                }
            };
            let result_path = parse_result_path(map.get("ResultPath"), &format!("{pointer}/ResultPath"), checker);
            match (errors, next, result_path) {
                (Some(errors), Some(next), Some(result_path)) => out.push(Catcher { errors, result_path, next }),
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }
}

pub(crate) fn root_path() -> Path {
    Path::root()
}

fn parse_result_path(value: Option<&Value>, pointer: &str, checker: &mut Checker) -> Option<ResultPath> {
    match value {
        None => Some(ResultPath::Path(root_path())),
        Some(Value::Null) => Some(ResultPath::Discard),
        Some(Value::String(s)) => match Path::parse(s) {
            Ok(p) if p.is_reference() && !p.is_context() => Some(ResultPath::Path(p)),
            Ok(_) => {
                checker.schema(
                    pointer,
                    Some("ResultPath"),
                    &format!("ResultPath must be a reference path into the state's data: {s}"),
                );
                None
            }
            Err(e) => {
                checker.schema(pointer, Some("ResultPath"), &format!("ResultPath is not a valid JSONPath: {e}"));
                None
            }
        },
        Some(_) => {
            checker.schema(pointer, Some("ResultPath"), "ResultPath must be a string or null");
            None
        }
    }
}

fn positive_integer(value: &Value) -> Option<u64> {
    value.as_u64().filter(|n| *n > 0)
}

fn optional_string(map: &Map<String, Value>, key: &str, pointer: &str, checker: &mut Checker) -> Option<String> {
    match map.get(key) {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            checker.schema(&format!("{pointer}/{key}"), Some(key), &format!("{key} must be a string"));
            None
        }
    }
}

const COMMON: &[&str] = &["Type", "Comment", "QueryLanguage"];
const IO: &[&str] = &["InputPath", "OutputPath"];
const FLOW: &[&str] = &["Next", "End"];
const EFFECTS: &[&str] = &["Parameters", "ResultSelector", "ResultPath", "Retry", "Catch"];

fn allowed_fields(type_name: &str) -> Option<Vec<&'static str>> {
    let specific: &[&str] = match type_name {
        "Pass" => &["InputPath", "OutputPath", "Next", "End", "Parameters", "Result", "ResultPath"],
        "Task" => &["Resource", "TimeoutSeconds", "TimeoutSecondsPath", "HeartbeatSeconds", "HeartbeatSecondsPath"],
        "Choice" => &["InputPath", "OutputPath", "Choices", "Default"],
        "Wait" => &["InputPath", "OutputPath", "Next", "End", "Seconds", "SecondsPath", "Timestamp", "TimestampPath"],
        "Succeed" => &["InputPath", "OutputPath"],
        "Fail" => &["Error", "ErrorPath", "Cause", "CausePath"],
        "Parallel" => &["Branches"],
        "Map" => &[
            "Iterator",
            "ItemProcessor",
            "ItemsPath",
            "ItemSelector",
            "MaxConcurrency",
            "MaxConcurrencyPath",
            "ToleratedFailurePercentage",
            "ToleratedFailurePercentagePath",
            "ToleratedFailureCount",
            "ToleratedFailureCountPath",
            "Label",
        ],
        _ => return None,
    };
    let mut out: Vec<&'static str> = COMMON.to_vec();
    out.extend_from_slice(specific);
    if matches!(type_name, "Task" | "Parallel" | "Map") {
        out.extend_from_slice(IO);
        out.extend_from_slice(FLOW);
        out.extend_from_slice(EFFECTS);
    }
    Some(out)
}

fn unsupported_field(key: &str) -> Option<&'static str> {
    Some(match key {
        "Assign" => "variables (Assign) are not supported by the local interpreter",
        "Arguments" | "Output" => "JSONata fields (Arguments, Output) are not supported by the local interpreter",
        "Credentials" => "cross-account Credentials are not supported by the local interpreter",
        "ItemReader" | "ItemBatcher" | "ResultWriter" => {
            "Distributed Map fields (ItemReader, ItemBatcher, ResultWriter) are not supported by the local interpreter"
        }
        _ => return None,
    })
}

fn parse_state(
    name: &str,
    value: &Value,
    pointer: &str,
    index: &HashMap<&str, usize>,
    checker: &mut Checker,
) -> Option<State> {
    let Value::Object(map) = value else {
        checker.schema(pointer, None, "A state must be an object");
        return None;
    };
    let Some(Value::String(type_name)) = map.get("Type") else {
        checker.schema(pointer, Some("Type"), "Field 'Type' is required and must be a string");
        return None;
    };
    let Some(allowed) = allowed_fields(type_name) else {
        checker.schema(&format!("{pointer}/Type"), Some("Type"), &format!("Unknown state type: {type_name}"));
        return None;
    };
    let mut fields_ok = true;
    for key in map.keys() {
        if allowed.contains(&key.as_str()) {
            continue;
        }
        fields_ok = false;
        let at = format!("{pointer}/{}", escape_pointer(key));
        match unsupported_field(key) {
            Some(why) => checker.unsupported(&at, Some(key), &format!("Field '{key}': {why}")),
            None => checker.schema(&at, Some(key), &format!("Field '{key}' is not supported by a {type_name} state")),
        }
    }
    check_query_language(map, pointer, checker);
    let fields = Fields { map, pointer, index };
    let (input_path, output_path) = if type_name == "Fail" {
        (Some(Some(root_path())), Some(Some(root_path())))
    } else {
        (fields.io_path("InputPath", checker), fields.io_path("OutputPath", checker))
    };
    let kind = match type_name.as_str() {
        "Pass" => parse_pass(&fields, checker),
        "Task" => parse_task(&fields, checker),
        "Choice" => parse_choice(&fields, checker),
        "Wait" => parse_wait(&fields, checker),
        "Succeed" => Some(Kind::Succeed),
        "Fail" => parse_fail(&fields, checker),
        "Parallel" => parse_parallel(&fields, checker),
        _ => parse_map(&fields, checker),
    };
    if !fields_ok {
        return None;
    }
    Some(State { name: name.to_owned(), input_path: input_path?, output_path: output_path?, kind: kind? })
}

fn parse_pass(f: &Fields<'_>, checker: &mut Checker) -> Option<Kind> {
    let parameters = f.template("Parameters", checker);
    let result_path = f.result_path(checker);
    let next = f.transition(checker);
    Some(Kind::Pass {
        parameters: parameters?,
        result: f.get("Result").cloned(),
        result_path: result_path?,
        next: next?,
    })
}

fn classify_resource(resource: &str) -> Result<ResourceKind, (bool, String)> {
    let parts: Vec<&str> = resource.split(':').collect();
    let is_arn = parts.first() == Some(&"arn") && parts.len() >= 6;
    let service = parts.get(2).copied().unwrap_or_default();
    if resource.contains("${") {
        return Err((false, format!("Resource '{resource}' still holds a ${{...}} placeholder: apply the DefinitionSubstitutions first (statemachines::substitute)")));
    }
    if is_arn && service == "states" {
        let rest = parts[5..].join(":");
        if parts[3].is_empty() && parts[4].is_empty() {
            if rest == "lambda:invoke" {
                return Ok(ResourceKind::LambdaInvoke);
            }
            for suffix in [".sync", ".sync:2", ".waitForTaskToken"] {
                if rest.ends_with(suffix) {
                    let pattern = suffix.trim_end_matches(":2");
                    return Err((true, format!("Resource '{resource}' uses the '{pattern}' integration pattern, which the local interpreter does not run")));
                }
            }
            return Err((true, format!("Resource '{resource}' is a service integration the local interpreter does not run (only arn:aws:states:::lambda:invoke and Lambda function ARNs)")));
        }
        if parts[5] == "activity" {
            return Err((
                true,
                format!("Resource '{resource}' is an Activity, which the local interpreter does not run"),
            ));
        }
    }
    if is_arn
        && service == "lambda"
        && parts[5] == "function"
        && parts.len() >= 7
        && parts.len() <= 8
        && !parts[6].is_empty()
    {
        return Ok(ResourceKind::LambdaFunction);
    }
    Err((false, format!("Resource '{resource}' is not a Lambda function ARN (arn:aws:lambda:REGION:ACCOUNT:function:NAME) or arn:aws:states:::lambda:invoke")))
}

fn parse_task(f: &Fields<'_>, checker: &mut Checker) -> Option<Kind> {
    let resource = match f.get("Resource") {
        Some(Value::String(r)) => Some(r.clone()),
        _ => {
            checker.schema(f.pointer, Some("Resource"), "Field 'Resource' is required and must be a string");
            None
        }
    };
    let resource_kind = resource.as_deref().and_then(|r| match classify_resource(r) {
        Ok(kind) => Some(kind),
        Err((unsupported, message)) => {
            if unsupported {
                checker.unsupported(&f.at("Resource"), Some("Resource"), &message);
            } else {
                checker.schema(&f.at("Resource"), Some("Resource"), &message);
            }
            None
        }
    });
    let timeout = match (f.get("TimeoutSeconds"), f.get("TimeoutSecondsPath")) {
        (None, None) => Some(None),
        (Some(v), None) => match positive_integer(v).filter(|n| *n <= 99_999_999) {
            Some(n) => Some(Some(Seconds::Fixed(n))),
            None => {
                checker.schema(
                    &f.at("TimeoutSeconds"),
                    Some("TimeoutSeconds"),
                    "TimeoutSeconds must be a positive integer",
                );
                None
            }
        },
        (None, Some(_)) => f.reference_path("TimeoutSecondsPath", checker).map(|p| Some(Seconds::Path(p))),
        (Some(_), Some(_)) => {
            checker.schema(
                f.pointer,
                Some("TimeoutSeconds"),
                "TimeoutSeconds and TimeoutSecondsPath cannot both be given",
            );
            None
        }
    };
    // Heartbeats matter to callbacks and activities only, which this interpreter refuses; the
    // fields are validated and otherwise ignored.
    if let Some(v) = f.get("HeartbeatSeconds") {
        match (positive_integer(v), f.get("TimeoutSeconds").and_then(Value::as_u64)) {
            (None, _) => checker.schema(
                &f.at("HeartbeatSeconds"),
                Some("HeartbeatSeconds"),
                "HeartbeatSeconds must be a positive integer",
            ),
            (Some(h), Some(t)) if h >= t => checker.schema(
                &f.at("HeartbeatSeconds"),
                Some("HeartbeatSeconds"),
                "HeartbeatSeconds must be smaller than TimeoutSeconds",
            ),
            _ => {}
        }
    }
    if f.get("HeartbeatSecondsPath").is_some() {
        let _ = f.reference_path("HeartbeatSecondsPath", checker);
    }
    let effects = f.effects(checker);
    if resource_kind == Some(ResourceKind::LambdaInvoke) {
        let has_function = match f.get("Parameters") {
            Some(Value::Object(p)) => p.contains_key("FunctionName") || p.contains_key("FunctionName.$"),
            _ => false,
        };
        if !has_function {
            checker.schema(
                &f.at("Parameters"),
                Some("Parameters"),
                "The field 'FunctionName' is required but was missing (arn:aws:states:::lambda:invoke needs Parameters with FunctionName)",
            );
            return None;
        }
    }
    Some(Kind::Task(Box::new(Task {
        resource: resource?,
        resource_kind: resource_kind?,
        timeout: timeout?,
        effects: effects?,
    })))
}

fn parse_choice(f: &Fields<'_>, checker: &mut Checker) -> Option<Kind> {
    let default = match f.get("Default") {
        None => Some(None),
        Some(Value::String(d)) => f.target("Default", d, checker).map(Some),
        Some(_) => {
            checker.schema(&f.at("Default"), Some("Default"), "Default must be a string");
            None
        }
    };
    let Some(Value::Array(items)) = f.get("Choices") else {
        checker.schema(f.pointer, Some("Choices"), "Field 'Choices' is required and must be an array");
        return None;
    };
    if items.is_empty() {
        checker.schema(&f.at("Choices"), Some("Choices"), "Choices must contain at least one rule");
        return None;
    }
    let mut choices = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let pointer = format!("{}/{i}", f.at("Choices"));
        if let Some((rule, Some(next))) = parse_rule(item, &pointer, true, checker) {
            let found = f.index.get(next.as_str()).copied();
            match found {
                Some(n) => choices.push((rule, n)),
                None => checker.problem(
                    "MISSING_TRANSITION_TARGET",
                    &format!("{pointer}/Next"),
                    Some("Next"),
                    &format!("Missing 'Next' target: {next}"),
                ),
            }
        }
    }
    if choices.len() != items.len() {
        return None;
    }
    Some(Kind::Choice { choices, default: default? })
}

fn parse_wait(f: &Fields<'_>, checker: &mut Checker) -> Option<Kind> {
    let given: Vec<&str> =
        ["Seconds", "SecondsPath", "Timestamp", "TimestampPath"].into_iter().filter(|k| f.get(k).is_some()).collect();
    let next = f.transition(checker);
    if given.len() != 1 {
        checker.schema(
            f.pointer,
            given.first().copied(),
            "A Wait state needs exactly one of Seconds, SecondsPath, Timestamp or TimestampPath",
        );
        return None;
    }
    let wait = match given[0] {
        "Seconds" => match f.get("Seconds").and_then(Value::as_u64).filter(|n| *n <= 99_999_999) {
            Some(n) => Some(WaitFor::Seconds(n)),
            None => {
                checker.schema(&f.at("Seconds"), Some("Seconds"), "Seconds must be a non-negative integer");
                None
            }
        },
        "Timestamp" => match f.get("Timestamp").and_then(Value::as_str).and_then(parse_timestamp) {
            Some(t) => Some(WaitFor::Timestamp(t)),
            None => {
                checker.schema(&f.at("Timestamp"), Some("Timestamp"), "String does not match RFC3339 timestamp");
                None
            }
        },
        "SecondsPath" => f.reference_path("SecondsPath", checker).map(WaitFor::SecondsPath),
        _ => f.reference_path("TimestampPath", checker).map(WaitFor::TimestampPath),
    };
    Some(Kind::Wait { wait: wait?, next: next? })
}

fn parse_fail(f: &Fields<'_>, checker: &mut Checker) -> Option<Kind> {
    let mut source = |literal: &str, path: &str| -> Option<Option<Source>> {
        match (f.get(literal), f.get(path)) {
            (None, None) => Some(None),
            (Some(Value::String(s)), None) => Some(Some(Source::Literal(s.clone()))),
            (Some(_), None) => {
                checker.schema(&f.at(literal), Some(literal), &format!("{literal} must be a string"));
                None
            }
            (None, Some(Value::String(s))) => {
                let parsed = if s.starts_with("States.") {
                    Intrinsic::parse(s).map(Source::Intrinsic)
                } else {
                    Path::parse(s).map(Source::Path)
                };
                match parsed {
                    Ok(src) => Some(Some(src)),
                    Err(e) => {
                        checker.schema(
                            &f.at(path),
                            Some(path),
                            &format!("{path} must be a valid JSONPath or intrinsic function call: {e}"),
                        );
                        None
                    }
                }
            }
            (None, Some(_)) => {
                checker.schema(&f.at(path), Some(path), &format!("{path} must be a string"));
                None
            }
            (Some(_), Some(_)) => {
                checker.schema(f.pointer, Some(path), &format!("{literal} and {path} cannot both be given"));
                None
            }
        }
    };
    let error = source("Error", "ErrorPath");
    let cause = source("Cause", "CausePath");
    Some(Kind::Fail { error: error?, cause: cause? })
}

fn parse_parallel(f: &Fields<'_>, checker: &mut Checker) -> Option<Kind> {
    let effects = f.effects(checker);
    let Some(Value::Array(items)) = f.get("Branches") else {
        checker.schema(f.pointer, Some("Branches"), "Field 'Branches' is required and must be an array");
        return None;
    };
    if items.is_empty() {
        checker.schema(&f.at("Branches"), Some("Branches"), "Branches must contain at least one branch");
        return None;
    }
    let mut branches = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let pointer = format!("{}/{i}", f.at("Branches"));
        let Value::Object(map) = item else {
            checker.schema(&pointer, Some("Branches"), "A branch must be an object");
            continue;
        };
        for key in map.keys() {
            if !SCOPE_FIELDS.contains(&key.as_str()) {
                checker.schema(
                    &format!("{pointer}/{key}"),
                    Some(key),
                    &format!("Field '{key}' is not supported in a branch"),
                );
            }
        }
        if let Some(scope) = parse_scope(map, &pointer, checker) {
            branches.push(scope);
        }
    }
    if branches.len() != items.len() {
        return None;
    }
    Some(Kind::Parallel(Box::new(Parallel { branches, effects: effects? })))
}

fn parse_map(f: &Fields<'_>, checker: &mut Checker) -> Option<Kind> {
    let mut effects = f.effects(checker);
    let (processor_key, processor) = match (f.get("ItemProcessor"), f.get("Iterator")) {
        (Some(p), None) => ("ItemProcessor", p),
        (None, Some(p)) => ("Iterator", p),
        (Some(_), Some(_)) => {
            checker.schema(f.pointer, Some("ItemProcessor"), "A Map state cannot have both ItemProcessor and Iterator");
            return None;
        }
        (None, None) => {
            checker.schema(
                f.pointer,
                Some("ItemProcessor"),
                "A Map state needs an ItemProcessor (or the legacy Iterator)",
            );
            return None;
        }
    };
    let processor_pointer = f.at(processor_key);
    let Value::Object(processor_map) = processor else {
        checker.schema(&processor_pointer, Some(processor_key), &format!("{processor_key} must be an object"));
        return None;
    };
    for key in processor_map.keys() {
        if !SCOPE_FIELDS.contains(&key.as_str()) && key != "ProcessorConfig" {
            checker.schema(
                &format!("{processor_pointer}/{key}"),
                Some(key),
                &format!("Field '{key}' is not supported in {processor_key}"),
            );
        }
    }
    if let Some(config) = processor_map.get("ProcessorConfig") {
        let at = format!("{processor_pointer}/ProcessorConfig");
        match config {
            Value::Object(c) => {
                for (key, value) in c {
                    match (key.as_str(), value) {
                        ("Mode", Value::String(m)) if m == "INLINE" => {}
                        ("Mode", Value::String(m)) if m == "DISTRIBUTED" => checker.unsupported(
                            &format!("{at}/Mode"),
                            Some("ProcessorConfig"),
                            "Distributed Map (Mode DISTRIBUTED) is not supported by the local interpreter; use INLINE",
                        ),
                        ("ExecutionType", _) => checker.unsupported(
                            &format!("{at}/ExecutionType"),
                            Some("ProcessorConfig"),
                            "ExecutionType belongs to Distributed Map, which the local interpreter does not run",
                        ),
                        _ => checker.schema(
                            &format!("{at}/{key}"),
                            Some("ProcessorConfig"),
                            &format!("Invalid ProcessorConfig field '{key}'"),
                        ),
                    }
                }
            }
            _ => checker.schema(&at, Some("ProcessorConfig"), "ProcessorConfig must be an object"),
        }
    }
    let scope = parse_scope(processor_map, &processor_pointer, checker);
    let items_path = match f.get("ItemsPath") {
        None => Some(root_path()),
        Some(_) => f.reference_path("ItemsPath", checker),
    };
    let item_selector = match (f.get("ItemSelector"), effects.as_mut().and_then(|e| e.parameters.take())) {
        (Some(_), Some(_)) => {
            checker.schema(f.pointer, Some("ItemSelector"), "A Map state cannot have both ItemSelector and Parameters");
            None
        }
        (Some(_), None) => f.template("ItemSelector", checker),
        (None, parameters) => Some(parameters),
    };
    let max_concurrency = match (f.get("MaxConcurrency"), f.get("MaxConcurrencyPath")) {
        (None, None) => Some(Seconds::Fixed(0)),
        (Some(v), None) => match v.as_u64() {
            Some(n) => Some(Seconds::Fixed(n)),
            None => {
                checker.schema(
                    &f.at("MaxConcurrency"),
                    Some("MaxConcurrency"),
                    "MaxConcurrency must be a non-negative integer",
                );
                None
            }
        },
        (None, Some(_)) => f.reference_path("MaxConcurrencyPath", checker).map(Seconds::Path),
        (Some(_), Some(_)) => {
            checker.schema(
                f.pointer,
                Some("MaxConcurrency"),
                "MaxConcurrency and MaxConcurrencyPath cannot both be given",
            );
            None
        }
    };
    let mut tolerance = |key: &str, max: f64, integer: bool| -> Option<Option<Tolerance>> {
        let path_key = format!("{key}Path");
        match (f.get(key), f.get(&path_key)) {
            (None, None) => Some(None),
            (Some(v), None) => {
                let n = v.as_f64().filter(|n| (0.0..=max).contains(n) && (!integer || v.is_u64()));
                match n {
                    Some(n) => Some(Some(Tolerance::Fixed(n))),
                    None => {
                        let what = if integer { "a non-negative integer" } else { "a number from 0 to 100" };
                        checker.schema(&f.at(key), Some(key), &format!("{key} must be {what}"));
                        None
                    }
                }
            }
            (None, Some(_)) => f.reference_path(&path_key, checker).map(|p| Some(Tolerance::Path(p))),
            (Some(_), Some(_)) => {
                checker.schema(f.pointer, Some(key), &format!("{key} and {path_key} cannot both be given"));
                None
            }
        }
    };
    let tolerated_count = tolerance("ToleratedFailureCount", f64::MAX, true);
    let tolerated_percentage = tolerance("ToleratedFailurePercentage", 100.0, false);
    Some(Kind::Map(Box::new(MapState {
        processor: scope?,
        items_path: items_path?,
        item_selector: item_selector?,
        max_concurrency: max_concurrency?,
        tolerated_count: tolerated_count?,
        tolerated_percentage: tolerated_percentage?,
        effects: effects?,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[allow(clippy::needless_pass_by_value)]
    fn problems(definition: Value) -> Vec<Problem> {
        StateMachine::from_value(&definition).unwrap_err().problems
    }

    #[test]
    fn a_minimal_machine_parses() {
        let m =
            StateMachine::from_value(&json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}})).unwrap();
        assert_eq!(m.state_names(), vec!["A"]);
    }

    #[test]
    fn missing_targets_name_the_state_and_field() {
        let p = problems(json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}}}));
        assert_eq!(p[0].code, "MISSING_TRANSITION_TARGET");
        assert_eq!(p[0].state.as_deref(), Some("A"));
        assert_eq!(p[0].field.as_deref(), Some("Next"));
        assert_eq!(p[0].location, "/States/A/Next");
    }

    #[test]
    fn unsupported_features_are_refused_with_the_state_name() {
        let cases = [
            json!({"StartAt": "A", "QueryLanguage": "JSONata", "States": {"A": {"Type": "Pass", "End": true}}}),
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Assign": {"x": 1}, "End": true}}}),
            json!({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken", "End": true}}}),
            json!({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "arn:aws:states:us-east-1:1:activity:x", "End": true}}}),
            json!({"StartAt": "A", "States": {"A": {"Type": "Map", "ItemReader": {}, "ItemProcessor": {"StartAt": "B", "States": {"B": {"Type": "Succeed"}}}, "End": true}}}),
        ];
        for case in cases {
            let p = problems(case.clone());
            assert!(p.iter().any(|p| p.code == "UNSUPPORTED_BY_LOCAL_INTERPRETER"), "{case}: {p:?}");
        }
    }

    #[test]
    fn states_all_must_be_alone_and_last() {
        let p = problems(
            json!({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:f",
            "Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}], "End": true}}}),
        );
        assert!(p[0].message.contains("last"), "{p:?}");
    }
}
