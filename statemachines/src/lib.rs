//! aliasflow's local Amazon States Language interpreter: it runs the same `*.asl.json` state
//! machines Step Functions runs in production, in-process, with Task states calling Rust handlers.
//! It implements the JSONPath query language as AWS documents (and behaves), and refuses at load
//! time what it does not run (JSONata, variables, Activities, `.sync`/`.waitForTaskToken`,
//! Distributed Map) instead of running it wrongly. It is not a Step Functions client.
//!
//! ```
//! use std::sync::Arc;
//! use serde_json::{json, Value};
//! use statemachines::{Engine, ExecutionStatus, FunctionRouter, InstantClock, StateMachine};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let machine = StateMachine::from_json(r#"{"StartAt": "Greet", "States": {"Greet": {
//!     "Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:greet",
//!     "ResultPath": "$.greeting", "End": true}}}"#)?;
//! let tasks = FunctionRouter::new().function("greet", |input: Value| async move {
//!     Ok(json!(format!("hello {}", input["name"].as_str().unwrap_or("?"))))
//! });
//! let engine = Engine::new(Arc::new(machine), Arc::new(tasks)).with_clock(Arc::new(InstantClock::new()));
//! let execution = engine.run(json!({"name": "ada"})).await;
//! assert_eq!(execution.status, ExecutionStatus::Succeeded);
//! assert_eq!(execution.output, Some(json!({"name": "ada", "greeting": "hello ada"})));
//! # Ok::<(), statemachines::DefinitionError>(())
//! # }).unwrap();
//! ```
//!
//! - **Loading**: [`substitute`] applies `DefinitionSubstitutions`; [`StateMachine::from_json`]
//!   validates as `CreateStateMachine` does and names the state and field of every problem
//!   (`/States/RunJob/Resource`); [`lint`] adds the project's own checks.
//! - **Running**: [`Engine`] calls a [`TaskHandler`] for each Task (direct Lambda function ARNs and
//!   `arn:aws:states:::lambda:invoke`; [`FunctionRouter`] serves both from named functions), waits on a
//!   [`Clock`] ([`InstantClock`] in tests), and records the history as [`Event`]s, numbered as
//!   Step Functions numbers them, streamed while the execution runs.
//! - **Fidelity**: `tests/asl-cases/` holds executions recorded on AWS; `tests/conformance.rs`
//!   runs them all. Where AWS's behaviour was not recorded (some error causes), the
//!   interpreter's choice is documented beside the code that makes it.
#![warn(missing_docs)]

mod choice;
mod clock;
mod definition;
mod engine;
mod error;
mod events;
mod intrinsics;
mod lint;
mod path;
mod substitute;
mod task;
mod template;
mod values;

pub use clock::{Clock, InstantClock, SystemClock};
pub use definition::StateMachine;
pub use engine::{Engine, Execution, ExecutionStatus, HISTORY_LIMIT};
pub use error::{names, DefinitionError, Problem, SubstitutionError, TaskError};
pub use events::{Event, EventKind, StateType};
pub use lint::{lint, Finding, FindingKind, Lintable};
pub use substitute::substitute;
pub use task::{lambda_invoke_result, lambda_target, FunctionRouter, TaskCall, TaskHandler};
