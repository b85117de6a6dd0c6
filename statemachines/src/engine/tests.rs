//! Engine behaviour that the JSON cases cannot show: real concurrency, the event stream, timeouts,
//! size limits, `Send`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeZone as _;
use futures::future::BoxFuture;
use serde_json::{json, Value};

use super::*;
use crate::clock::InstantClock;
use crate::error::TaskError;
use crate::task::{FunctionRouter, TaskHandler};

const FN: &str = "arn:aws:lambda:us-east-1:111111111111:function:work";

/// Counts the calls in flight and remembers the most seen at once; each call yields a few times
/// so that others can start.
#[derive(Default)]
struct Counting {
    now: AtomicUsize,
    most: AtomicUsize,
    calls: AtomicUsize,
}

#[async_trait::async_trait]
impl TaskHandler for Counting {
    async fn invoke(&self, _resource: &str, input: Value) -> Result<Value, TaskError> {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        self.calls.fetch_add(1, Ordering::SeqCst);
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        self.now.fetch_sub(1, Ordering::SeqCst);
        Ok(input)
    }
}

#[allow(clippy::needless_pass_by_value)]
fn machine(definition: Value) -> Arc<StateMachine> {
    Arc::new(StateMachine::from_value(&definition).unwrap())
}

fn map_of_tasks(max_concurrency: u64) -> Arc<StateMachine> {
    machine(json!({"StartAt": "M", "States": {"M": {"Type": "Map", "MaxConcurrency": max_concurrency, "End": true,
        "ItemProcessor": {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": FN, "End": true}}}}}}))
}

fn engine(machine: Arc<StateMachine>, tasks: Arc<dyn TaskHandler>) -> Engine {
    Engine::new(machine, tasks).with_clock(Arc::new(InstantClock::new()))
}

#[tokio::test]
async fn map_iterations_run_concurrently_up_to_max_concurrency() {
    let items: Vec<u64> = (0..10).collect();
    for (bound, expected_most) in [(1, 1), (3, 3), (0, 10), (25, 10)] {
        let tasks = Arc::new(Counting::default());
        let execution = engine(map_of_tasks(bound), tasks.clone()).run(json!(items)).await;
        assert_eq!(execution.status, ExecutionStatus::Succeeded, "{execution:?}");
        assert_eq!(execution.output, Some(json!(items)));
        assert_eq!(tasks.calls.load(Ordering::SeqCst), 10);
        assert_eq!(tasks.most.load(Ordering::SeqCst), expected_most, "MaxConcurrency {bound}");
        assert_eq!(execution.transitions, 11);
    }
}

#[tokio::test]
async fn parallel_branches_run_at_the_same_time() {
    // State names are unique across the whole machine, branches included.
    let branch = |name: &str| json!({"StartAt": name, "States": {name: {"Type": "Task", "Resource": FN, "End": true}}});
    let m = machine(json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true,
        "Branches": [branch("A"), branch("B"), branch("C")]}}}));
    let tasks = Arc::new(Counting::default());
    let execution = engine(m, tasks.clone()).run(json!(1)).await;
    assert_eq!(execution.output, Some(json!([1, 1, 1])));
    assert_eq!(tasks.most.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn events_stream_in_order_and_carry_their_scope() {
    let m = machine(json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true, "Branches": [
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}},
        {"StartAt": "M", "States": {"M": {"Type": "Map", "MaxConcurrency": 1, "End": true,
            "ItemProcessor": {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": FN, "End": true}}}}}}]}}}));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let execution = engine(m, Arc::new(Counting::default())).with_events(tx).run(json!(["x", "y"])).await;
    let mut streamed = Vec::new();
    while let Ok(event) = rx.try_recv() {
        streamed.push(event);
    }
    assert_eq!(streamed, execution.events);
    let ids: Vec<u64> = streamed.iter().map(|e| e.id).collect();
    assert_eq!(ids, (1..=streamed.len() as u64).collect::<Vec<_>>());
    let task_scopes: Vec<&Vec<(String, usize)>> =
        streamed.iter().filter(|e| matches!(&e.kind, EventKind::TaskScheduled { .. })).map(|e| &e.scope).collect();
    assert_eq!(
        task_scopes,
        vec![&vec![("P".to_owned(), 1), ("M".to_owned(), 0)], &vec![("P".to_owned(), 1), ("M".to_owned(), 1)]]
    );
    let iteration_scopes: Vec<&Vec<(String, usize)>> = streamed
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::MapIterationStarted { .. }))
        .map(|e| &e.scope)
        .collect();
    assert_eq!(iteration_scopes, vec![&vec![("P".to_owned(), 1)]; 2]);
    assert!(streamed.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
    let json = serde_json::to_value(&streamed[1]).unwrap();
    assert_eq!(json["kind"]["type"], "StateEntered");
    assert_eq!(json["kind"]["state_type"], "Parallel");
}

#[tokio::test]
async fn the_run_future_is_send_and_runs_in_tokio_spawn() {
    fn assert_send<T: Send>(t: T) -> T {
        t
    }
    let e = Arc::new(engine(map_of_tasks(2), Arc::new(Counting::default())));
    let handle = tokio::spawn(assert_send(async move { e.run(json!([1, 2, 3])).await }));
    let execution = handle.await.unwrap();
    assert_eq!(execution.output, Some(json!([1, 2, 3])));
}

/// A clock whose timeouts expire at once, to show Task and execution timeouts.
struct ExpiringClock;

impl Clock for ExpiringClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
    fn sleep(&self, _duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(futures::future::ready(()))
    }
    fn timeout(&self, _duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(futures::future::ready(()))
    }
}

struct Never;

#[async_trait::async_trait]
impl TaskHandler for Never {
    async fn invoke(&self, _resource: &str, _input: Value) -> Result<Value, TaskError> {
        futures::future::pending().await
    }
}

#[tokio::test]
async fn a_task_past_its_timeout_fails_with_states_timeout() {
    let m = machine(json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": FN, "TimeoutSeconds": 5, "Next": "Done",
              "Catch": [{"ErrorEquals": ["States.TaskFailed"], "Next": "Wrong"}, {"ErrorEquals": ["States.Timeout"], "Next": "Done"}]},
        "Wrong": {"Type": "Fail"},
        "Done": {"Type": "Pass", "End": true}}}));
    let execution = Engine::new(m, Arc::new(Never)).with_clock(Arc::new(ExpiringClock)).run(json!({})).await;
    assert_eq!(execution.output, Some(json!({"Error": "States.Timeout"})));
    let types: Vec<String> = execution.events.iter().map(|e| e.kind.aws_type()).collect();
    assert!(types.contains(&"LambdaFunctionTimedOut".to_owned()), "{types:?}");
}

#[tokio::test]
async fn an_execution_past_its_timeout_fails() {
    let m = machine(
        json!({"TimeoutSeconds": 60, "StartAt": "T", "States": {"T": {"Type": "Task", "Resource": FN, "End": true}}}),
    );
    let execution = Engine::new(m, Arc::new(Never)).with_clock(Arc::new(ExpiringClock)).run(json!({})).await;
    assert_eq!(execution.status, ExecutionStatus::Failed);
    assert_eq!(execution.error.as_deref(), Some("States.Timeout"));
}

#[tokio::test]
async fn timeouts_never_fire_on_the_instant_clock() {
    let m = machine(
        json!({"TimeoutSeconds": 1, "StartAt": "T", "States": {"T": {"Type": "Task", "Resource": FN, "TimeoutSeconds": 1, "End": true}}}),
    );
    let execution = engine(m, Arc::new(Counting::default())).run(json!(7)).await;
    assert_eq!(execution.output, Some(json!(7)));
}

#[tokio::test]
async fn a_task_result_over_256_kib_fails_the_task_and_can_be_caught() {
    let big = "x".repeat(300 * 1024);
    let tasks = FunctionRouter::new().function("work", move |_| {
        let big = big.clone();
        async move { Ok(json!(big)) }
    });
    let m = machine(json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": FN, "End": true, "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "C"}]},
        "C": {"Type": "Pass", "End": true}}}));
    let execution = engine(m, Arc::new(tasks)).run(json!({})).await;
    assert_eq!(
        execution.output,
        Some(json!({"Error": "States.DataLimitExceeded", "Cause": format!(
            "The state/task '{FN}' returned a result with a size exceeding the maximum number of bytes service limit.")}))
    );
}

#[tokio::test]
async fn a_loop_that_never_ends_stops_at_the_history_limit() {
    let m = machine(
        json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Next": "A"}}}),
    );
    let execution = engine(m, Arc::new(Counting::default())).with_history_limit(100).run(json!({})).await;
    assert_eq!(execution.status, ExecutionStatus::Failed);
    assert_eq!(execution.error.as_deref(), Some("States.Runtime"));
    assert!(execution.events.len() <= 102);
}

#[tokio::test]
async fn a_wait_until_a_future_timestamp_sleeps_until_then() {
    let start = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
    let clock = Arc::new(InstantClock::starting_at(start));
    let m = machine(
        json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Timestamp": "2030-01-01T01:00:00+01:00", "Next": "V"},
        "V": {"Type": "Wait", "TimestampPath": "$.at", "End": true}}}),
    );
    let execution = Engine::new(m, Arc::new(Counting::default()))
        .with_clock(clock.clone())
        .run(json!({"at": "2030-01-01T00:00:30.500Z"}))
        .await;
    assert_eq!(execution.status, ExecutionStatus::Succeeded);
    assert_eq!(clock.sleeps(), vec![Duration::ZERO, Duration::from_millis(30_500)]);
}

#[tokio::test]
async fn lambda_invoke_gets_the_parameters_and_returns_the_integration_result() {
    let tasks = FunctionRouter::new()
        .function("plan", |payload: Value| async move { Ok(json!({"planned": payload["stage"]})) });
    let m = machine(
        json!({"StartAt": "Plan", "States": {"Plan": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "arn:aws:lambda:us-east-1:111111111111:function:plan:live", "Payload.$": "$"},
        "ResultSelector": {"plan.$": "$.Payload", "code.$": "$.StatusCode"}, "ResultPath": "$.result", "End": true}}}),
    );
    let execution = engine(m, Arc::new(tasks)).run(json!({"stage": "prod"})).await;
    assert_eq!(execution.output, Some(json!({"stage": "prod", "result": {"plan": {"planned": "prod"}, "code": 200}})));
}

#[tokio::test]
async fn an_unknown_function_fails_as_lambda_does() {
    let m = machine(json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": FN, "End": true}}}));
    let execution = engine(m, Arc::new(FunctionRouter::new())).run(json!({})).await;
    assert_eq!(execution.error.as_deref(), Some("Lambda.ResourceNotFoundException"));
}

#[test]
fn backoff_grows_by_the_rate_up_to_the_maximum() {
    let retrier = Retrier {
        errors: vec![],
        interval_seconds: 3,
        max_attempts: 5,
        backoff_rate: 1.5,
        max_delay_seconds: Some(5),
        full_jitter: false,
    };
    let delays: Vec<Duration> = (0..4).map(|n| backoff(&retrier, n)).collect();
    assert_eq!(
        delays,
        vec![Duration::from_secs(3), Duration::from_millis(4500), Duration::from_secs(5), Duration::from_secs(5)]
    );
    let jittered = Retrier { full_jitter: true, ..retrier };
    assert!((0..50).all(|n| backoff(&jittered, n % 3) <= Duration::from_secs(5)));
}
