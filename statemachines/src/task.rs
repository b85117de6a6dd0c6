//! What Task states call: the [`TaskHandler`] trait, and helpers for Lambda-shaped handlers.
//!
//! A Task's `Resource` is one of two forms, and the handler sees each as AWS does:
//!
//! - a Lambda function ARN (`arn:aws:lambda:REGION:ACCOUNT:function:NAME`): the handler receives
//!   the state's effective input (after `InputPath` and `Parameters`) and returns the function's
//!   result;
//! - the Lambda integration `arn:aws:states:::lambda:invoke`: the handler receives the evaluated
//!   `Parameters` as they are (`{"FunctionName": ..., "Payload": ...}`) and returns the whole
//!   integration result, `{"Payload": <function result>, "StatusCode": 200, ...}`. A handler that
//!   has a plain function result wraps it with [`lambda_invoke_result`]; [`FunctionRouter`]
//!   does both forms for a set of named async functions.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::{json, Value};

use crate::error::TaskError;

/// Runs the Task states of an execution.
#[async_trait::async_trait]
pub trait TaskHandler: Send + Sync {
    /// `resource`: the Task's Resource as written (after substitution); `input`: the effective
    /// input (for `arn:aws:states:::lambda:invoke`, the evaluated `Parameters`).
    async fn invoke(&self, resource: &str, input: Value) -> Result<Value, TaskError>;

    /// What the engine calls: [`TaskHandler::invoke`] unless a handler wants to know more about
    /// the call (which state, where, which retry).
    async fn invoke_task(&self, call: TaskCall<'_>, input: Value) -> Result<Value, TaskError> {
        self.invoke(call.resource, input).await
    }
}

/// Where a Task invocation comes from.
#[derive(Debug, Clone, Copy)]
pub struct TaskCall<'a> {
    /// The Task state's name.
    pub state: &'a str,
    /// The Task's `Resource`.
    pub resource: &'a str,
    /// The enclosing Map iterations and Parallel branches, outermost first (see [`crate::Event`]).
    pub scope: &'a [(String, usize)],
    /// `$$.State.RetryCount`: 0 on the first attempt.
    pub retry_count: u64,
}

/// Wraps a Lambda function's result as `arn:aws:states:::lambda:invoke` returns it:
///
/// ```
/// use serde_json::json;
/// let result = statemachines::lambda_invoke_result(json!({"switched": 3}));
/// assert_eq!(result["Payload"], json!({"switched": 3}));
/// assert_eq!(result["StatusCode"], json!(200));
/// assert_eq!(result["ExecutedVersion"], json!("$LATEST"));
/// ```
pub fn lambda_invoke_result(payload: Value) -> Value {
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut result = json!({
        "ExecutedVersion": "$LATEST",
        "SdkHttpMetadata": {
            "AllHttpHeaders": {
                "X-Amz-Executed-Version": ["$LATEST"],
                "x-amzn-Remapped-Content-Length": ["0"],
                "Connection": ["keep-alive"],
                "x-amzn-RequestId": [request_id],
                "Content-Type": ["application/json"]
            },
            "HttpHeaders": {
                "Connection": "keep-alive",
                "Content-Type": "application/json",
                "X-Amz-Executed-Version": "$LATEST",
                "x-amzn-Remapped-Content-Length": "0",
                "x-amzn-RequestId": request_id
            },
            "HttpStatusCode": 200
        },
        "SdkResponseMetadata": {"RequestId": request_id},
        "StatusCode": 200
    });
    if let Value::Object(map) = &mut result {
        map.insert("Payload".to_owned(), payload);
    }
    result
}

/// Which Lambda function a Task calls and with what payload, for either resource form:
/// `(function name, payload)`. The name is the bare function name, whether the ARN or the
/// `FunctionName` parameter gives a name, a `name:alias`, a partial or a full ARN. A string
/// `Payload` of the integration is JSON text, as AWS reads it.
///
/// ```
/// use serde_json::json;
/// use statemachines::lambda_target;
/// let direct = lambda_target("arn:aws:lambda:eu-west-1:123456789012:function:plan", &json!({"a": 1}));
/// assert_eq!(direct, Some(("plan".to_owned(), json!({"a": 1}))));
/// let params = json!({"FunctionName": "arn:aws:lambda:eu-west-1:123456789012:function:plan:live", "Payload": {"a": 1}});
/// let integration = lambda_target("arn:aws:states:::lambda:invoke", &params);
/// assert_eq!(integration, Some(("plan".to_owned(), json!({"a": 1}))));
/// ```
pub fn lambda_target(resource: &str, input: &Value) -> Option<(String, Value)> {
    if resource.ends_with(":states:::lambda:invoke") {
        let name = function_name(input.get("FunctionName")?.as_str()?)?;
        let payload = match input.get("Payload") {
            None => Value::Null,
            Some(Value::String(text)) => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone())),
            Some(other) => other.clone(),
        };
        return Some((name, payload));
    }
    if resource.contains(":lambda:") && resource.contains(":function:") {
        return Some((function_name(resource)?, input.clone()));
    }
    None
}

fn function_name(text: &str) -> Option<String> {
    let name = match text.split_once(":function:") {
        Some((_, rest)) => rest.split(':').next()?,
        None => text.split(':').next()?,
    };
    (!name.is_empty()).then(|| name.to_owned())
}

type Function = Arc<dyn Fn(Value) -> BoxFuture<'static, Result<Value, TaskError>> + Send + Sync>;

/// A [`TaskHandler`] that routes both Lambda resource forms to async functions by function name:
/// a direct function ARN gets the function's result, `lambda:invoke` gets it wrapped by
/// [`lambda_invoke_result`]. An unknown function fails with `Lambda.ResourceNotFoundException`.
///
/// ```
/// use serde_json::{json, Value};
/// use statemachines::{FunctionRouter, TaskError, TaskHandler};
/// let router = FunctionRouter::new().function("double", |v: Value| async move {
///     Ok::<_, TaskError>(json!(v.as_i64().unwrap_or(0) * 2))
/// });
/// let out = futures::executor::block_on(router.invoke("arn:aws:lambda:us-east-1:1:function:double", json!(21)));
/// assert_eq!(out, Ok(json!(42)));
/// ```
#[derive(Clone, Default)]
pub struct FunctionRouter {
    functions: HashMap<String, Function>,
}

impl std::fmt::Debug for FunctionRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.functions.keys().collect();
        names.sort();
        f.debug_struct("FunctionRouter").field("functions", &names).finish()
    }
}

impl FunctionRouter {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the function `name`.
    #[must_use]
    pub fn function<F, Fut>(mut self, name: &str, f: F) -> Self
    where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, TaskError>> + Send + 'static,
    {
        self.functions.insert(name.to_owned(), Arc::new(move |v| Box::pin(f(v))));
        self
    }
}

#[async_trait::async_trait]
impl TaskHandler for FunctionRouter {
    async fn invoke(&self, resource: &str, input: Value) -> Result<Value, TaskError> {
        let Some((name, payload)) = lambda_target(resource, &input) else {
            return Err(TaskError::new(
                "States.TaskFailed",
                format!("Resource '{resource}' does not name a Lambda function"),
            ));
        };
        let Some(function) = self.functions.get(&name) else {
            return Err(TaskError::new("Lambda.ResourceNotFoundException", format!("Function not found: {name}")));
        };
        let result = function(payload).await?;
        if resource.ends_with(":states:::lambda:invoke") {
            Ok(lambda_invoke_result(result))
        } else {
            Ok(result)
        }
    }
}
