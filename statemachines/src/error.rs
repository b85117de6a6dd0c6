//! The crate's error types and the Step Functions error names.

use serde::{Deserialize, Serialize};

/// The predefined error names (`States.*`), as Step Functions reports them and as `Retry` and
/// `Catch` match them.
pub mod names {
    /// Matches any error name (except the terminal `States.Runtime`).
    pub const ALL: &str = "States.ALL";
    /// A state's input, output or a task result exceeded 256 KiB.
    pub const DATA_LIMIT_EXCEEDED: &str = "States.DataLimitExceeded";
    /// A Task ran longer than its `TimeoutSeconds`, or the execution longer than its own.
    pub const TIMEOUT: &str = "States.Timeout";
    /// A Task's heartbeat timed out.
    pub const HEARTBEAT_TIMEOUT: &str = "States.HeartbeatTimeout";
    /// A Task failed; in `ErrorEquals`, matches any error but `States.Timeout`.
    pub const TASK_FAILED: &str = "States.TaskFailed";
    /// Insufficient privileges.
    pub const PERMISSIONS: &str = "States.Permissions";
    /// `ResultPath` could not be applied to the state's input.
    pub const RESULT_PATH_MATCH_FAILURE: &str = "States.ResultPathMatchFailure";
    /// A `.$` field of `Parameters` could not be resolved.
    pub const PARAMETER_PATH_FAILURE: &str = "States.ParameterPathFailure";
    /// A branch of a Parallel state failed.
    pub const BRANCH_FAILED: &str = "States.BranchFailed";
    /// A Choice state matched no rule and has no `Default`.
    pub const NO_CHOICE_MATCHED: &str = "States.NoChoiceMatched";
    /// An intrinsic function failed.
    pub const INTRINSIC_FAILURE: &str = "States.IntrinsicFailure";
    /// A Map state had more failed items than it tolerates.
    pub const EXCEED_TOLERATED_FAILURE_THRESHOLD: &str = "States.ExceedToleratedFailureThreshold";
    /// A Distributed Map's item reader failed.
    pub const ITEM_READER_FAILED: &str = "States.ItemReaderFailed";
    /// A Distributed Map's result writer failed.
    pub const RESULT_WRITER_FAILED: &str = "States.ResultWriterFailed";
    /// A JSONata expression failed.
    pub const QUERY_EVALUATION_ERROR: &str = "States.QueryEvaluationError";
    /// The execution failed on something it could not process; never retried or caught.
    pub const RUNTIME: &str = "States.Runtime";

    /// Every predefined name.
    pub const ALL_NAMES: &[&str] = &[
        ALL,
        DATA_LIMIT_EXCEEDED,
        TIMEOUT,
        HEARTBEAT_TIMEOUT,
        TASK_FAILED,
        PERMISSIONS,
        RESULT_PATH_MATCH_FAILURE,
        PARAMETER_PATH_FAILURE,
        BRANCH_FAILED,
        NO_CHOICE_MATCHED,
        INTRINSIC_FAILURE,
        EXCEED_TOLERATED_FAILURE_THRESHOLD,
        ITEM_READER_FAILED,
        RESULT_WRITER_FAILED,
        QUERY_EVALUATION_ERROR,
        RUNTIME,
    ];
}

/// One thing wrong with a definition: what, and where (a JSON pointer such as
/// `/States/WaitUntil/Timestamp`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Step Functions' validation code: `SCHEMA_VALIDATION_FAILED`, `MISSING_TRANSITION_TARGET`, ...
    pub code: String,
    /// What is wrong.
    pub message: String,
    /// Where: a JSON pointer into the definition.
    pub location: String,
    /// The state the problem is in, if it is in one (the innermost, for nested states).
    pub state: Option<String>,
    /// The field the problem is in, if any (`Timestamp`, `Resource`, ...).
    pub field: Option<String>,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} at {}", self.code, self.message, self.location)
    }
}

/// A definition Step Functions would refuse, or that this interpreter does not run.
///
/// Displays as AWS words it: `Invalid State Machine Definition: 'SCHEMA_VALIDATION_FAILED: ...
/// at /States/WaitUntil/Timestamp'`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefinitionError {
    /// Every problem found (at least one).
    pub problems: Vec<Problem>,
}

impl std::fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.problems.iter().map(ToString::to_string).collect();
        write!(f, "Invalid State Machine Definition: '{}'", parts.join(", "))
    }
}

impl std::error::Error for DefinitionError {}

/// A failed Task invocation: the error name `Retry`/`Catch` match on, and its cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{error}: {cause}")]
pub struct TaskError {
    /// The error name (`StageLocked`, `Lambda.ResourceNotFoundException`, ...).
    pub error: String,
    /// The cause, passed through unchanged.
    pub cause: String,
}

impl TaskError {
    /// A task error with this name and cause.
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        Self { error: error.into(), cause: cause.into() }
    }
}

/// A `${Name}` in a definition that `DefinitionSubstitutions` gives no value for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no value for the definition substitution{} {}", if .missing.len() == 1 { "" } else { "s" }, .missing.iter().map(|m| format!("${{{m}}}")).collect::<Vec<_>>().join(", "))]
pub struct SubstitutionError {
    /// The names without a value, in order of first use.
    pub missing: Vec<String>,
}
