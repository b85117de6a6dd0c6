//! Conformance: runs every recorded case (`tests/asl-cases/`, or the folder named by
//! `ASL_CASES_DIR`) and the project's own cases (`tests/own-cases/`) on the InstantClock, answers
//! Task states from the case, and compares with what the case expects (see the README of each
//! folder). Prints one line per failing case and a total; fails if any case fails.

// The report of failing cases is the point of this harness.
#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;
use statemachines::{Engine, ExecutionStatus, InstantClock, StateMachine, TaskCall, TaskError, TaskHandler};

/// Answers Task states from a case's `task_results`.
#[derive(Default)]
struct Recorded {
    entries: Mutex<HashMap<String, Vec<(Value, bool)>>>,
    problems: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl TaskHandler for Recorded {
    async fn invoke(&self, resource: &str, _input: Value) -> Result<Value, TaskError> {
        Err(TaskError::new("Harness", format!("{resource}: the harness needs the state name")))
    }

    async fn invoke_task(&self, call: TaskCall<'_>, input: Value) -> Result<Value, TaskError> {
        let picked = {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            entries.get_mut(call.state).and_then(|list| {
                let by_input = list.iter().any(|(e, _)| e.get("input").is_some());
                let slot = list
                    .iter_mut()
                    .find(|(e, used)| !used && (!by_input || e.get("input").is_some_and(|i| json_eq(i, &input))))?;
                slot.1 = true;
                Some(slot.0.clone())
            })
        };
        let Some(entry) = picked else {
            let problem = format!("no task result fits state {} with input {input}", call.state);
            self.problems.lock().unwrap_or_else(PoisonError::into_inner).push(problem.clone());
            return Err(TaskError::new("Harness.NoTaskResult", problem));
        };
        if let Some(output) = entry.get("output") {
            return Ok(output.clone());
        }
        let text = |k: &str| entry.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
        Err(TaskError::new(text("error"), text("cause")))
    }
}

fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 300 {
        format!("{}...", text.chars().take(300).collect::<String>())
    } else {
        text
    }
}

/// Runs one case; `Err` says how the outcome differs from the expected one.
async fn run_case(case: &Value) -> Result<(), String> {
    let expected = &case["expected"];
    let status = expected["status"].as_str().unwrap_or_default();
    let parsed = StateMachine::from_value(&case["definition"]);
    if status == "INVALID_DEFINITION" {
        return match parsed {
            Ok(_) => Err("expected INVALID_DEFINITION, got a valid definition".to_owned()),
            Err(e) => {
                let message = e.to_string();
                let missing: Vec<&str> = expected["message_contains"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .filter(|part| !message.contains(part))
                    .collect();
                if missing.is_empty() {
                    Ok(())
                } else {
                    Err(format!("the refusal does not mention {missing:?}: {message}"))
                }
            }
        };
    }
    let machine = parsed.map_err(|e| format!("expected {status}, got a refused definition: {e}"))?;
    let handler = Arc::new(Recorded::default());
    if let Some(Value::Object(results)) = case.get("task_results") {
        let mut entries = handler.entries.lock().unwrap_or_else(PoisonError::into_inner);
        for (state, list) in results {
            let list = list.as_array().cloned().unwrap_or_default();
            entries.insert(state.clone(), list.into_iter().map(|e| (e, false)).collect());
        }
    }
    let clock = Arc::new(InstantClock::new());
    let engine = Engine::new(Arc::new(machine), handler.clone())
        .with_clock(clock.clone())
        .with_names("ConformanceMachine", case["name"].as_str().unwrap_or("case"));
    let execution = engine.run(case["input"].clone()).await;
    let mut diffs = Vec::new();
    let harness_problems = handler.problems.lock().unwrap_or_else(PoisonError::into_inner).clone();
    diffs.extend(harness_problems);
    let got_status = match execution.status {
        ExecutionStatus::Succeeded => "SUCCEEDED",
        ExecutionStatus::Failed => "FAILED",
    };
    if got_status != status {
        diffs.push(format!(
            "expected {status}, got {got_status} (output {}, error {:?}, cause {:?})",
            execution.output.as_ref().map(short).unwrap_or_default(),
            execution.error,
            execution.cause
        ));
    } else if status == "SUCCEEDED" {
        let got = execution.output.clone().unwrap_or(Value::Null);
        if !json_eq(&got, &expected["output"]) {
            diffs.push(format!("expected output {}, got {}", short(&expected["output"]), short(&got)));
        }
    } else {
        for (key, got) in [("error", &execution.error), ("cause", &execution.cause)] {
            let want = expected.get(key).and_then(Value::as_str);
            if want != got.as_deref() {
                diffs.push(format!("expected {key} {want:?}, got {got:?}"));
            }
        }
    }
    if let Some(Value::Array(names)) = case.get("states_entered") {
        let want: Vec<&str> = names.iter().filter_map(Value::as_str).collect();
        let got: Vec<&str> = execution
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                statemachines::EventKind::StateEntered { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        if want != got {
            diffs.push(format!("expected states entered {want:?}, got {got:?}"));
        }
    }
    if let Some(n) = expected.get("transitions").and_then(Value::as_u64) {
        if n != execution.transitions {
            diffs.push(format!("expected {n} transitions, got {}", execution.transitions));
        }
    }
    if let Some(Value::Array(sleeps)) = expected.get("sleeps") {
        let want: Vec<Duration> = sleeps.iter().filter_map(Value::as_f64).map(Duration::from_secs_f64).collect();
        let got = clock.sleeps();
        if want != got {
            diffs.push(format!("expected sleeps {want:?}, got {got:?}"));
        }
    }
    if let Some(Value::Array(events)) = expected.get("events") {
        let want: Vec<&str> = events.iter().filter_map(Value::as_str).collect();
        let got: Vec<String> = execution.events.iter().map(|e| e.kind.aws_type()).collect();
        if want != got {
            diffs.push(format!("expected events {want:?}, got {got:?}"));
        }
    }
    let ids_ok = execution.events.iter().enumerate().all(|(i, e)| e.id == i as u64 + 1);
    if !ids_ok {
        diffs.push("event ids are not 1, 2, 3, ...".to_owned());
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("; "))
    }
}

fn case_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

async fn run_folder(dir: &Path) {
    let files = case_files(dir);
    assert!(!files.is_empty(), "no cases in {}", dir.display());
    let mut failures = 0usize;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let case: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let name = case["name"].as_str().unwrap_or("?").to_owned();
        if let Err(diff) = run_case(&case).await {
            failures += 1;
            println!("FAIL {name}: {diff}");
        }
    }
    println!("{}: {} of {} cases pass, {failures} fail", dir.display(), files.len() - failures, files.len());
    assert_eq!(failures, 0, "{failures} of {} cases in {} fail", files.len(), dir.display());
}

#[tokio::test]
async fn every_recorded_aws_case_passes() {
    let dir = std::env::var_os("ASL_CASES_DIR")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/asl-cases"), PathBuf::from);
    run_folder(&dir).await;
}

#[tokio::test]
async fn every_own_case_passes() {
    run_folder(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/own-cases")).await;
}

/// Answers every Task with its input.
struct Echo;

#[async_trait::async_trait]
impl TaskHandler for Echo {
    async fn invoke(&self, _resource: &str, input: Value) -> Result<Value, TaskError> {
        Ok(input)
    }
}

/// Every definition of both folders, with each field of each top-level state removed or replaced
/// by odd values: loading must refuse or accept without panicking, and what loads must run to an
/// end without panicking.
#[tokio::test]
async fn odd_definitions_and_inputs_never_panic() {
    use futures::FutureExt as _;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let odd = [
        Value::Null,
        serde_json::json!(0),
        serde_json::json!(-1),
        serde_json::json!(1.5),
        serde_json::json!(""),
        serde_json::json!("$"),
        serde_json::json!("$.x["),
        serde_json::json!("$.a[?(@.b > 1)]"),
        serde_json::json!("States.Format("),
        serde_json::json!([]),
        serde_json::json!({}),
        serde_json::json!(true),
        serde_json::json!({"x.$": "$$.Map.Item.Index"}),
    ];
    let mut variants = 0usize;
    for file in case_files(&root.join("asl-cases")).into_iter().chain(case_files(&root.join("own-cases"))) {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let Ok(case) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let definition = &case["definition"];
        let Some(states) = definition["States"].as_object() else {
            continue;
        };
        for (state, body) in states {
            let Some(fields) = body.as_object() else {
                continue;
            };
            for field in fields.keys() {
                let mut changed: Vec<Value> = Vec::new();
                let mut removed = definition.clone();
                removed["States"][state].as_object_mut().map(|m| m.shift_remove(field));
                changed.push(removed);
                for value in &odd {
                    let mut replaced = definition.clone();
                    replaced["States"][state][field] = value.clone();
                    changed.push(replaced);
                }
                for variant in changed {
                    variants += 1;
                    let loaded = std::panic::catch_unwind(|| StateMachine::from_value(&variant));
                    let Ok(loaded) = loaded else {
                        panic!("{}: loading panicked on {variant}", file.display());
                    };
                    let Ok(machine) = loaded else { continue };
                    for input in [case["input"].clone(), Value::Null, serde_json::json!({"x": [1, "a"]})] {
                        let engine = Engine::new(Arc::new(machine.clone()), Arc::new(Echo))
                            .with_clock(Arc::new(InstantClock::new()))
                            .with_history_limit(300);
                        let ran = std::panic::AssertUnwindSafe(engine.run(input.clone())).catch_unwind().await;
                        assert!(ran.is_ok(), "{}: running panicked on {variant} with input {input}", file.display());
                    }
                }
            }
        }
    }
    println!("{variants} odd definitions loaded or refused without a panic");
}
