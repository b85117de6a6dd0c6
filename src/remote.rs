//! Running the state machines on AWS Step Functions (`--engine aws`): start an execution of the
//! installed deployer and follow its history, turning Step Functions' events into the local
//! engine's, so progress and results read the same either way.
#![allow(clippy::print_stderr)]

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use functions::error::AwsError;
use functions::ports::{Executions, HistoryEntry};
use serde_json::Value;
use statemachines::{Event, EventKind, Execution, ExecutionStatus, StateType};
use tokio::sync::mpsc::UnboundedSender;

/// A name for an execution: `<operation>-<stage>-<UTC time>-<random>`, within Step Functions'
/// 80 characters of letters, digits, `-` and `_`, so the console lists what each one did.
pub fn execution_name(operation: &str, stage: Option<&str>) -> String {
    let clean = |text: &str| -> String {
        text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect()
    };
    let time = Utc::now().format("%Y%m%dT%H%M%SZ");
    let random = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let mut head = clean(operation);
    if let Some(stage) = stage {
        head = format!("{head}-{}", clean(stage));
    }
    let tail = format!("-{time}-{random}");
    head.truncate(80 - tail.len());
    head + &tail
}

/// Starts `machine` with `input` and follows it to its end, streaming its events to `events`;
/// polls every `poll`. Returns the execution as the local engine would.
pub async fn run(
    executions: &dyn Executions,
    machine: &str,
    name: &str,
    input: &Value,
    events: UnboundedSender<Event>,
    poll: Duration,
) -> Result<Execution, AwsError> {
    let arn = executions.start(machine, name, &input.to_string()).await?;
    eprintln!("execution {arn}");
    let mut follower = Follower::default();
    let mut after = 0;
    loop {
        for entry in executions.events_after(&arn, after).await? {
            after = after.max(entry.id);
            let Some(event) = follower.event(&entry) else { continue };
            // The display may have gone; the execution goes on regardless.
            let _ = events.send(event.clone());
            follower.seen.push(event);
            if entry.ends_execution() {
                return Ok(follower.finish());
            }
        }
        tokio::time::sleep(poll).await;
    }
}

/// Step Functions' events turned into the local engine's, with each event's Map scope worked out
/// from the event it follows (`previousEventId`).
#[derive(Debug, Default)]
pub struct Follower {
    /// Event id -> the scope of the events that follow it.
    scopes: HashMap<i64, Vec<(String, usize)>>,
    /// Scope key -> the function of the last Lambda Task scheduled there.
    resources: HashMap<String, String>,
    /// The events so far.
    pub seen: Vec<Event>,
}

impl Follower {
    /// The local engine's event for `entry`, or `None` for a kind the CLI does not show.
    pub fn event(&mut self, entry: &HistoryEntry) -> Option<Event> {
        let mut scope = self.scopes.get(&entry.previous_id).cloned().unwrap_or_default();
        let iteration = entry.name.clone().zip(entry.index);
        let ends_iteration =
            matches!(entry.event_type.as_str(), "MapIterationSucceeded" | "MapIterationFailed" | "MapIterationAborted");
        if ends_iteration && scope.last().map(|(n, i)| (n.clone(), *i)) == iteration {
            scope.pop();
        }
        let following = match (&entry.event_type[..], &iteration) {
            ("MapIterationStarted", Some(iteration)) => [scope.clone(), vec![iteration.clone()]].concat(),
            _ => scope.clone(),
        };
        self.scopes.insert(entry.id, following);
        let key = format!("{scope:?}");
        let kind = self.kind(entry, &key)?;
        Some(Event { id: u64::try_from(entry.id).unwrap_or_default(), timestamp: Utc::now(), scope, kind })
    }

    fn kind(&mut self, entry: &HistoryEntry, scope: &str) -> Option<EventKind> {
        let data = || parse(entry.data.as_deref());
        let name = || entry.name.clone().unwrap_or_default();
        let error = || entry.error.clone().unwrap_or_default();
        let cause = || entry.cause.clone().unwrap_or_default();
        let resource = self.resources.get(scope).cloned().unwrap_or_default();
        let event_type = entry.event_type.as_str();
        if let Some(state_type) = event_type.strip_suffix("StateEntered") {
            let state_type = StateType::from_name(state_type);
            return Some(EventKind::StateEntered { name: name(), state_type, input: data() });
        }
        if let Some(state_type) = event_type.strip_suffix("StateExited") {
            let state_type = StateType::from_name(state_type);
            return Some(EventKind::StateExited { name: name(), state_type, output: data() });
        }
        Some(match event_type {
            "ExecutionStarted" => EventKind::ExecutionStarted { input: data() },
            "ExecutionSucceeded" => EventKind::ExecutionSucceeded { output: data() },
            "ExecutionFailed" | "ExecutionAborted" | "ExecutionTimedOut" => {
                EventKind::ExecutionFailed { error: entry.error.clone(), cause: entry.cause.clone() }
            }
            "LambdaFunctionScheduled" => {
                let resource = entry.resource.clone().unwrap_or_default();
                self.resources.insert(scope.to_owned(), resource.clone());
                EventKind::TaskScheduled { resource, input: data() }
            }
            "LambdaFunctionStarted" => EventKind::TaskStarted { resource },
            "LambdaFunctionSucceeded" => EventKind::TaskSucceeded { resource, output: data() },
            "LambdaFunctionFailed" | "LambdaFunctionScheduleFailed" | "LambdaFunctionStartFailed" => {
                EventKind::TaskFailed { resource, error: error(), cause: cause() }
            }
            "LambdaFunctionTimedOut" => {
                EventKind::TaskTimedOut { resource, error: error(), cause: entry.cause.clone() }
            }
            "MapStateStarted" => EventKind::MapStateStarted { length: entry.length.unwrap_or_default() },
            "MapStateSucceeded" => EventKind::MapStateSucceeded,
            "MapStateFailed" => EventKind::MapStateFailed { error: entry.error.clone(), cause: entry.cause.clone() },
            "MapIterationStarted" => EventKind::MapIterationStarted { name: name(), index: entry.index? },
            "MapIterationSucceeded" => EventKind::MapIterationSucceeded { name: name(), index: entry.index? },
            "MapIterationAborted" => EventKind::MapIterationAborted { name: name(), index: entry.index? },
            "MapIterationFailed" => EventKind::MapIterationFailed {
                name: name(),
                index: entry.index?,
                error: entry.error.clone(),
                cause: entry.cause.clone(),
            },
            _ => return None,
        })
    }

    /// The execution as the events tell it; call once its last event was seen.
    pub fn finish(self) -> Execution {
        let transitions = self.seen.iter().filter(|e| matches!(e.kind, EventKind::StateEntered { .. })).count() as u64;
        let (status, output, error, cause) = match self.seen.last().map(|e| &e.kind) {
            Some(EventKind::ExecutionSucceeded { output }) => {
                (ExecutionStatus::Succeeded, Some(output.clone()), None, None)
            }
            Some(EventKind::ExecutionFailed { error, cause }) => {
                // Aborted and timed-out executions may carry no error name; the CLI needs one.
                let error = error.clone().or_else(|| Some("ExecutionFailed".to_owned()));
                (ExecutionStatus::Failed, None, error, cause.clone())
            }
            _ => (ExecutionStatus::Failed, None, Some("ExecutionFailed".to_owned()), None),
        };
        Execution { status, output, error, cause, transitions, events: self.seen }
    }
}

/// A JSON text as a value; text that is not JSON (or absent) as a string (null).
fn parse(text: Option<&str>) -> Value {
    match text {
        Some(text) => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned())),
        None => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use functions::fakes::FakeExecutions;
    use serde_json::json;

    use super::*;

    fn entry(id: i64, previous_id: i64, event_type: &str) -> HistoryEntry {
        HistoryEntry { id, previous_id, event_type: event_type.to_owned(), ..HistoryEntry::default() }
    }

    fn named(mut e: HistoryEntry, name: &str) -> HistoryEntry {
        e.name = Some(name.to_owned());
        e
    }

    fn iteration(e: HistoryEntry, index: usize) -> HistoryEntry {
        let mut e = named(e, "PublishVersions");
        e.index = Some(index);
        e
    }

    fn with_data(mut e: HistoryEntry, data: &str) -> HistoryEntry {
        e.data = Some(data.to_owned());
        e
    }

    /// A Map of two iterations whose Task events interleave, as Step Functions records them.
    fn publish_history() -> Vec<HistoryEntry> {
        let mut started = entry(3, 2, "MapStateStarted");
        started.length = Some(2);
        vec![
            with_data(entry(1, 0, "ExecutionStarted"), r#"{"stage":"dev"}"#),
            named(entry(2, 1, "MapStateEntered"), "PublishVersions"),
            started,
            iteration(entry(4, 3, "MapIterationStarted"), 0),
            iteration(entry(5, 3, "MapIterationStarted"), 1),
            named(entry(6, 4, "TaskStateEntered"), "PublishVersion"),
            named(entry(7, 5, "TaskStateEntered"), "PublishVersion"),
            {
                let mut e = entry(8, 6, "LambdaFunctionScheduled");
                e.resource = Some("arn:aws:lambda:us-east-1:1:function:aliasflow-PublishVersion".to_owned());
                e
            },
            with_data(entry(9, 8, "LambdaFunctionSucceeded"), r#"{"name":"api","version":"3"}"#),
            named(entry(10, 9, "TaskStateExited"), "PublishVersion"),
            iteration(entry(11, 10, "MapIterationSucceeded"), 0),
            named(entry(12, 7, "TaskStateExited"), "PublishVersion"),
            iteration(entry(13, 12, "MapIterationSucceeded"), 1),
            entry(14, 13, "MapStateSucceeded"),
            named(entry(15, 14, "MapStateExited"), "PublishVersions"),
            with_data(entry(16, 15, "ExecutionSucceeded"), r#"{"id":4}"#),
        ]
    }

    #[test]
    fn map_iterations_get_their_scope_from_the_events_they_follow() {
        let mut follower = Follower::default();
        let events: Vec<Event> = publish_history().iter().filter_map(|e| follower.event(e)).collect();
        let scope = |id: u64| events.iter().find(|e| e.id == id).map(|e| e.scope.clone()).unwrap();
        let inside = |i: usize| vec![("PublishVersions".to_owned(), i)];
        assert_eq!(scope(2), vec![]);
        assert_eq!(scope(4), vec![], "an iteration starts in the Map's scope");
        assert_eq!(scope(6), inside(0));
        assert_eq!(scope(7), inside(1));
        assert_eq!(scope(9), inside(0));
        assert_eq!(scope(12), inside(1));
        assert_eq!(scope(11), vec![], "an iteration ends in the Map's scope");
        assert_eq!(scope(15), vec![]);
        let succeeded = events.iter().find(|e| e.id == 9).unwrap();
        assert_eq!(
            succeeded.kind,
            EventKind::TaskSucceeded {
                resource: "arn:aws:lambda:us-east-1:1:function:aliasflow-PublishVersion".to_owned(),
                output: json!({"name": "api", "version": "3"})
            }
        );
        follower.seen = events;
        let execution = follower.finish();
        assert_eq!(execution.status, ExecutionStatus::Succeeded);
        assert_eq!(execution.output, Some(json!({"id": 4})));
        assert_eq!(execution.transitions, 3, "the Map and its two Tasks entered, as AWS bills");
    }

    #[test]
    fn a_failed_execution_keeps_the_error_and_the_state_that_raised_it() {
        let mut follower = Follower::default();
        let mut failed = named(entry(3, 2, "LambdaFunctionFailed"), "x");
        failed.error = Some("StageLocked".to_owned());
        failed.cause = Some("stage dev is locked by exec-1".to_owned());
        let mut end = entry(4, 3, "ExecutionFailed");
        end.error = Some("StageLocked".to_owned());
        for e in [entry(1, 0, "ExecutionStarted"), named(entry(2, 1, "TaskStateEntered"), "AcquireLock"), failed, end] {
            if let Some(event) = follower.event(&e) {
                follower.seen.push(event);
            }
        }
        assert!(matches!(&follower.seen[2].kind, EventKind::TaskFailed { error, .. } if error == "StageLocked"));
        let execution = follower.finish();
        assert_eq!(execution.status, ExecutionStatus::Failed);
        assert_eq!(execution.error.as_deref(), Some("StageLocked"));
    }

    #[test]
    fn an_aborted_execution_without_an_error_name_still_fails_with_one() {
        let mut follower = Follower::default();
        for e in [entry(1, 0, "ExecutionStarted"), entry(2, 1, "ExecutionAborted")] {
            let event = follower.event(&e).unwrap();
            follower.seen.push(event);
        }
        assert_eq!(follower.finish().error.as_deref(), Some("ExecutionFailed"));
    }

    #[tokio::test]
    async fn run_follows_a_failing_execution_over_several_polls_and_reports_each_event_once() {
        let mut failed = entry(4, 3, "LambdaFunctionFailed");
        failed.error = Some("StageLocked".to_owned());
        let mut end = entry(5, 4, "ExecutionFailed");
        end.error = Some("StageLocked".to_owned());
        end.cause = Some("stage dev is locked".to_owned());
        let script = FakeExecutions::scripted(vec![
            vec![entry(1, 0, "ExecutionStarted"), named(entry(2, 1, "TaskStateEntered"), "Plan")],
            vec![],
            vec![named(entry(3, 2, "TaskStateEntered"), "AcquireLock"), failed],
            vec![end],
        ]);
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
        let input = json!({ "stage": "dev", "manifest_key": "shop/manifests/a.json" });
        let execution = run(&script, "arn:machine", "deploy-dev", &input, sender, Duration::ZERO).await.unwrap();
        assert_eq!(execution.status, ExecutionStatus::Failed);
        assert_eq!(execution.error.as_deref(), Some("StageLocked"));
        assert_eq!(execution.cause.as_deref(), Some("stage dev is locked"));
        let mut ids = Vec::new();
        while let Ok(event) = receiver.try_recv() {
            ids.push(event.id);
        }
        assert_eq!(ids, [1, 2, 3, 4, 5]);
        assert_eq!(script.started(), [("arn:machine".to_owned(), "deploy-dev".to_owned(), input.to_string())]);
    }

    #[test]
    fn execution_names_are_valid_and_say_what_ran() {
        let name = execution_name("deploy", Some("pr-7"));
        assert!(name.starts_with("deploy-pr-7-"), "{name}");
        let long = execution_name("deploy", Some(&"x".repeat(200)));
        assert!(long.len() <= 80, "{}", long.len());
        assert!(long.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_ne!(execution_name("deploy", None), execution_name("deploy", None));
    }
}
