//! Step Functions executions, as `--engine aws` starts and follows them.

use async_trait::async_trait;

use crate::error::AwsError;

/// One event of an execution's history, as Step Functions reports it (only the details the CLI
/// shows or decides on).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryEntry {
    /// 1, 2, 3, ...
    pub id: i64,
    /// The event this one follows: how Map iterations are told apart.
    pub previous_id: i64,
    /// AWS's event type: `TaskStateEntered`, `LambdaFunctionSucceeded`, `MapIterationStarted`, ...
    pub event_type: String,
    /// A state's name (entered, exited), or the Map state's name (iterations).
    pub name: Option<String>,
    /// A Map iteration's index.
    pub index: Option<usize>,
    /// `MapStateStarted`: how many items.
    pub length: Option<usize>,
    /// The input (started, entered, scheduled) or output (exited, succeeded) text.
    pub data: Option<String>,
    /// Failed, timed out, aborted: the error name.
    pub error: Option<String>,
    /// Failed, timed out, aborted: the cause.
    pub cause: Option<String>,
    /// A Lambda Task's function ARN (scheduled).
    pub resource: Option<String>,
}

impl HistoryEntry {
    /// Whether the execution ended with this event.
    pub fn ends_execution(&self) -> bool {
        matches!(
            self.event_type.as_str(),
            "ExecutionSucceeded" | "ExecutionFailed" | "ExecutionAborted" | "ExecutionTimedOut"
        )
    }
}

/// Starts executions of the installed deployer's state machines and reads their histories.
#[async_trait]
pub trait Executions: Send + Sync {
    /// Starts an execution of `machine` named `name` with `input` (JSON text); its ARN.
    async fn start(&self, machine: &str, name: &str, input: &str) -> Result<String, AwsError>;
    /// The events of `execution` after event `after` (0: all), oldest first.
    async fn events_after(&self, execution: &str, after: i64) -> Result<Vec<HistoryEntry>, AwsError>;
}
