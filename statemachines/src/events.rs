//! The execution's event history, numbered as Step Functions numbers it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One entry of an execution's history.
///
/// `id`s increase by one from 1 (`ExecutionStarted`) in the order Step Functions would number the
/// same history, so "entered at the event id #N" in error causes matches AWS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// 1, 2, 3, ... in emission order.
    pub id: u64,
    /// The clock's time when the event happened.
    pub timestamp: DateTime<Utc>,
    /// Where the event happened: for each enclosing Map or Parallel state (outermost first), its
    /// name and the Map item index or Parallel branch index. Empty at the top level.
    pub scope: Vec<(String, usize)>,
    /// What happened.
    pub kind: EventKind,
}

/// A state's `Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum StateType {
    Pass,
    Task,
    Choice,
    Wait,
    Succeed,
    Fail,
    Parallel,
    Map,
}

impl StateType {
    /// The type named `name` (`Task`, `Map`, ...); anything else reads as `Pass`.
    pub fn from_name(name: &str) -> Self {
        match name {
            "Task" => Self::Task,
            "Choice" => Self::Choice,
            "Wait" => Self::Wait,
            "Succeed" => Self::Succeed,
            "Fail" => Self::Fail,
            "Parallel" => Self::Parallel,
            "Map" => Self::Map,
            _ => Self::Pass,
        }
    }

    /// `Pass`, `Task`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "Pass",
            Self::Task => "Task",
            Self::Choice => "Choice",
            Self::Wait => "Wait",
            Self::Succeed => "Succeed",
            Self::Fail => "Fail",
            Self::Parallel => "Parallel",
            Self::Map => "Map",
        }
    }
}

/// What happened, with its details. Serialized with a `type` tag (`{"type": "StateEntered", ...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum EventKind {
    /// The execution started with this input.
    ExecutionStarted {
        /// The execution input.
        input: Value,
    },
    /// The execution ended successfully.
    ExecutionSucceeded {
        /// The execution output.
        output: Value,
    },
    /// The execution failed (also on an execution timeout, with `States.Timeout`).
    ExecutionFailed {
        /// The error name, if any.
        error: Option<String>,
        /// The cause, if any.
        cause: Option<String>,
    },
    /// A state was entered (counts as one state transition).
    StateEntered {
        /// The state's name.
        name: String,
        /// The state's type.
        state_type: StateType,
        /// The state's raw input.
        input: Value,
    },
    /// A state ended and passed this output on (also after a Catch, with the catcher's output).
    StateExited {
        /// The state's name.
        name: String,
        /// The state's type.
        state_type: StateType,
        /// The state's output.
        output: Value,
    },
    /// A Task's resource is about to be invoked (once per attempt).
    TaskScheduled {
        /// The Task's `Resource`.
        resource: String,
        /// What the handler receives.
        input: Value,
    },
    /// The handler was called.
    TaskStarted {
        /// The Task's `Resource`.
        resource: String,
    },
    /// The handler returned a result.
    TaskSucceeded {
        /// The Task's `Resource`.
        resource: String,
        /// The handler's result, before `ResultSelector`/`ResultPath`/`OutputPath`.
        output: Value,
    },
    /// The handler failed (or its result was too large).
    TaskFailed {
        /// The Task's `Resource`.
        resource: String,
        /// The error name.
        error: String,
        /// The cause.
        cause: String,
    },
    /// The handler did not finish within the Task's `TimeoutSeconds`.
    TaskTimedOut {
        /// The Task's `Resource`.
        resource: String,
        /// `States.Timeout`.
        error: String,
        /// The cause, if any.
        cause: Option<String>,
    },
    /// A Map state started its iterations (once per attempt).
    MapStateStarted {
        /// The number of items.
        length: usize,
    },
    /// One Map iteration started.
    MapIterationStarted {
        /// The Map state's name.
        name: String,
        /// The item index.
        index: usize,
    },
    /// One Map iteration succeeded.
    MapIterationSucceeded {
        /// The Map state's name.
        name: String,
        /// The item index.
        index: usize,
    },
    /// One Map iteration failed.
    MapIterationFailed {
        /// The Map state's name.
        name: String,
        /// The item index.
        index: usize,
        /// The iteration's error name, if any.
        error: Option<String>,
        /// The iteration's cause, if any.
        cause: Option<String>,
    },
    /// One Map iteration was stopped because another one failed.
    MapIterationAborted {
        /// The Map state's name.
        name: String,
        /// The item index.
        index: usize,
    },
    /// Every Map iteration succeeded (or the failures were tolerated).
    MapStateSucceeded,
    /// The Map state failed (after its last retry).
    MapStateFailed {
        /// The error name, if any.
        error: Option<String>,
        /// The cause, if any.
        cause: Option<String>,
    },
    /// A Parallel state started its branches (once per attempt).
    ParallelStateStarted {
        /// The number of branches.
        branches: usize,
    },
    /// Every branch succeeded.
    ParallelStateSucceeded,
    /// The Parallel state failed (after its last retry).
    ParallelStateFailed {
        /// The error name, if any.
        error: Option<String>,
        /// The cause, if any.
        cause: Option<String>,
    },
}

impl EventKind {
    /// The Step Functions history event type this event stands for (`PassStateEntered`,
    /// `LambdaFunctionScheduled`, `MapIterationStarted`, ...).
    pub fn aws_type(&self) -> String {
        let lambda = |resource: &str| resource.contains(":lambda:") && resource.contains(":function:");
        match self {
            Self::StateEntered { state_type, .. } => format!("{}StateEntered", state_type.as_str()),
            Self::StateExited { state_type, .. } => format!("{}StateExited", state_type.as_str()),
            Self::TaskScheduled { resource, .. } if lambda(resource) => "LambdaFunctionScheduled".to_owned(),
            Self::TaskStarted { resource } if lambda(resource) => "LambdaFunctionStarted".to_owned(),
            Self::TaskSucceeded { resource, .. } if lambda(resource) => "LambdaFunctionSucceeded".to_owned(),
            Self::TaskFailed { resource, .. } if lambda(resource) => "LambdaFunctionFailed".to_owned(),
            Self::TaskTimedOut { resource, .. } if lambda(resource) => "LambdaFunctionTimedOut".to_owned(),
            other => {
                let json = serde_json::to_value(other).unwrap_or(Value::Null);
                json.get("type").and_then(Value::as_str).unwrap_or_default().to_owned()
            }
        }
    }
}
