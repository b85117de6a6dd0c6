//! Interpreter throughput, in state transitions per second (what Step Functions bills):
//! (a) a 1,000-item Map with MaxConcurrency 10 whose item is a Task answered at once,
//! (b) a chain of 1,000 Pass states.
//!
//! `cargo run --release -p statemachines --example bench`

// A benchmark prints its figures.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use statemachines::{Engine, ExecutionStatus, StateMachine, TaskError, TaskHandler};

/// Answers every Task at once with its input.
struct Instant0;

#[async_trait::async_trait]
impl TaskHandler for Instant0 {
    async fn invoke(&self, _resource: &str, input: Value) -> Result<Value, TaskError> {
        Ok(input)
    }
}

fn map_of_tasks() -> (StateMachine, Value) {
    let definition = json!({"StartAt": "PublishVersions", "States": {"PublishVersions": {
        "Type": "Map", "ItemsPath": "$.functions", "MaxConcurrency": 10, "ResultPath": "$.published", "End": true,
        "ItemSelector": {"function.$": "$$.Map.Item.Value", "stage.$": "$.stage"},
        "ItemProcessor": {"StartAt": "PublishVersion", "States": {"PublishVersion": {
            "Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:publish_version",
            "ResultSelector": {"version.$": "$.function"}, "End": true}}}}}});
    let functions: Vec<Value> = (0..1000).map(|i| json!(format!("fn-{i}"))).collect();
    (machine(&definition), json!({"stage": "prod", "functions": functions}))
}

fn chain_of_passes() -> (StateMachine, Value) {
    let mut states = Map::new();
    for i in 0..1000 {
        let mut state = json!({"Type": "Pass", "ResultPath": "$.last", "Result": i});
        state["Next"] = if i == 999 { Value::Null } else { json!(format!("S{}", i + 1)) };
        if i == 999 {
            state.as_object_mut().map(|m| m.remove("Next"));
            state["End"] = json!(true);
        }
        states.insert(format!("S{i}"), state);
    }
    (machine(&json!({"StartAt": "S0", "States": states})), json!({"stage": "prod"}))
}

fn machine(definition: &Value) -> StateMachine {
    match StateMachine::from_value(definition) {
        Ok(m) => m,
        Err(e) => panic!("the benchmark's definition is invalid: {e}"),
    }
}

async fn measure(name: &str, (machine, input): (StateMachine, Value)) {
    let engine = Engine::new(Arc::new(machine), Arc::new(Instant0));
    let mut best = Duration::MAX;
    let mut total = Duration::ZERO;
    let mut transitions = 0;
    const RUNS: u32 = 20;
    for _ in 0..RUNS {
        let started = Instant::now();
        let execution = engine.run(input.clone()).await;
        let took = started.elapsed();
        assert_eq!(execution.status, ExecutionStatus::Succeeded, "{:?}", execution.error);
        transitions = execution.transitions;
        best = best.min(took);
        total += took;
    }
    let mean = total / RUNS;
    #[allow(clippy::cast_precision_loss)]
    let rate = |d: Duration| transitions as f64 / d.as_secs_f64();
    println!(
        "{name}: {transitions} transitions per execution; best {best:.2?} ({:.0} transitions/s), mean {mean:.2?} ({:.0} transitions/s) over {RUNS} runs",
        rate(best),
        rate(mean)
    );
}

#[tokio::main]
async fn main() {
    measure("(a) 1,000-item Map, MaxConcurrency 10, Task per item", map_of_tasks()).await;
    measure("(b) chain of 1,000 Pass states", chain_of_passes()).await;
}
