//! The steps as AWS Lambda functions (feature `lambda`): what every binary in `src/bin/` shares,
//! so each binary is one call, [`main`], naming its state.
//!
//! A handler is the same [`steps::run`] the local engine calls, behind the Lambda runtime: logs
//! are JSON lines with the request id (the runtime's subscriber follows `AWS_LAMBDA_LOG_FORMAT`
//! and `AWS_LAMBDA_LOG_LEVEL`, which `infra/deployer.json` sets through `LoggingConfig`), the
//! SDK clients are built once per process, and a [`StepError`] reaches Step Functions as a
//! [`Diagnostic`] whose `errorType` is [`StepError::error_type`], the name the definitions'
//! `Retry` and `Catch` match on.
//!
//! The deployer's names come from environment variables that `infra/deployer.json` sets:
//! [`TABLE_VAR`], [`BUCKET_VAR`] and optionally [`PLACEHOLDER_KEY_VAR`]; the home region is the
//! function's own (`AWS_REGION`, which Lambda sets).

use std::sync::Arc;
use std::time::Duration;

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::Value;

use crate::aws::{AwsRegions, DynamoHistory, S3Artifacts, Sdk};
use crate::error::StepError;
use crate::ports::{Deps, Settings, SystemClock, PLACEHOLDER_KEY};
use crate::steps;

/// The history table's name.
pub const TABLE_VAR: &str = "ALIASFLOW_TABLE";

/// The artifact bucket's name.
pub const BUCKET_VAR: &str = "ALIASFLOW_BUCKET";

/// The key of the placeholder code zip in the artifact bucket; [`PLACEHOLDER_KEY`] when unset.
pub const PLACEHOLDER_KEY_VAR: &str = "ALIASFLOW_PLACEHOLDER_KEY";

/// How long a stack step waits for CloudFormation before giving up with `StackFailed`: under
/// the stack steps' Lambda timeout (900 s, the most Lambda allows), so the step reports the
/// stack's state itself instead of being cut off as `States.Timeout`.
pub const STACK_TIMEOUT: Duration = Duration::from_secs(840);

impl From<StepError> for Diagnostic {
    /// `errorType` is the stable name the state machines match on; `errorMessage` the one line
    /// the CLI shows.
    fn from(error: StepError) -> Self {
        Diagnostic { error_type: error.error_type().to_owned(), error_message: error.to_string() }
    }
}

/// Why a handler cannot start: a deployment problem of the deployer itself, never of the input.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// An environment variable `infra/deployer.json` sets is missing or empty.
    #[error("environment variable {0} is not set; the deployer's functions get it from infra/deployer.json")]
    MissingVariable(&'static str),
    /// The SDK settings name no region (Lambda sets `AWS_REGION`).
    #[error("no AWS region: AWS_REGION is not set")]
    NoRegion,
    /// The binary names a state that is not in [`steps::NAMES`].
    #[error("no step is named {0}")]
    UnknownStep(String),
}

/// The deployer's names, as the function's environment gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    /// The history table.
    pub table: String,
    /// The artifact bucket.
    pub bucket: String,
    /// The placeholder code zip's key in the bucket.
    pub placeholder_key: String,
}

impl Environment {
    /// Reads the variables through `var` (the process environment in [`deps_from_env`]; a map in
    /// tests, which must not change the process's environment while other tests run).
    ///
    /// ```
    /// use functions::lambda::Environment;
    /// let vars = |name: &str| match name {
    ///     "ALIASFLOW_TABLE" => Some("aliasflow-history".to_owned()),
    ///     "ALIASFLOW_BUCKET" => Some("aliasflow-artifacts-1-us-east-1".to_owned()),
    ///     _ => None,
    /// };
    /// let env = Environment::from_vars(vars)?;
    /// assert_eq!(env.placeholder_key, "aliasflow/placeholder.zip");
    /// # Ok::<(), functions::lambda::StartError>(())
    /// ```
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, StartError> {
        let required =
            |name: &'static str| var(name).filter(|v| !v.is_empty()).ok_or(StartError::MissingVariable(name));
        Ok(Self {
            table: required(TABLE_VAR)?,
            bucket: required(BUCKET_VAR)?,
            placeholder_key: var(PLACEHOLDER_KEY_VAR)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| PLACEHOLDER_KEY.to_owned()),
        })
    }

    /// The ports on AWS in `home_region`, with the Lambda-sized stack timeout.
    pub fn deps(&self, sdk: &Sdk, home_region: &str) -> Deps {
        let mut settings = Settings::new(&self.bucket);
        settings.placeholder_key.clone_from(&self.placeholder_key);
        settings.stack_timeout = STACK_TIMEOUT;
        Deps {
            history: Arc::new(DynamoHistory::new(sdk.dynamodb(home_region), &self.table)),
            artifacts: Arc::new(S3Artifacts::new(sdk.s3(home_region), &self.bucket)),
            regions: Arc::new(AwsRegions::new(sdk.clone())),
            clock: Arc::new(SystemClock),
            settings,
        }
    }
}

/// The ports a handler uses, from the process environment: the deployer's names (see
/// [`Environment`]) in the function's own region.
pub fn deps_from_env(sdk: &Sdk) -> Result<Deps, StartError> {
    let environment = Environment::from_vars(|name| std::env::var(name).ok())?;
    let region = sdk.region().ok_or(StartError::NoRegion)?;
    Ok(environment.deps(sdk, &region))
}

/// One invocation: the step `step` on the event's payload. The binaries and the tests call this
/// same function, so what the tests feed in is what Lambda feeds in.
pub async fn handle(step: &'static str, event: LambdaEvent<Value>, deps: &Deps) -> Result<Value, StepError> {
    let result = steps::run(step, event.payload, deps).await;
    if let Err(error) = &result {
        // The runtime logs the error too, but only its Debug text: this line carries the
        // `error_type` the state machines match on as a field to filter the JSON logs by.
        tracing::error!(step, error_type = error.error_type(), %error, "step failed");
    }
    result
}

/// Serves `step` until Lambda stops the process: logs, clients once, then [`handle`] per event.
pub async fn serve(step: &'static str) -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let started = async {
        if !steps::NAMES.contains(&step) {
            return Err(StartError::UnknownStep(step.to_owned()));
        }
        deps_from_env(&Sdk::from_env().await)
    };
    let deps = match started.await {
        Ok(deps) => deps,
        Err(error) => {
            // Lambda reports only the exit; the log line says why.
            tracing::error!(step, %error, "cannot start");
            return Err(error.into());
        }
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| handle(step, event, deps))).await
}

/// The whole `main` of a step's binary: a single-threaded runtime (a step's concurrency is
/// async I/O, and one thread starts fastest) serving `step`.
pub fn main(step: &'static str) -> Result<(), lambda_runtime::Error> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(serve(step))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::Utc;
    use lambda_runtime::Context;
    use serde_json::json;

    use super::*;
    use crate::fakes::FakeAws;
    use crate::ports::History;

    /// A Lambda event as the runtime builds it from a `/next` response.
    fn event(payload: Value) -> LambdaEvent<Value> {
        let mut context = Context::default();
        context.request_id = "8476a536-e9f4-11e8-9739-2dfe598c3fcd".to_owned();
        context.invoked_function_arn =
            "arn:aws:lambda:us-east-1:123456789012:function:aliasflow-AcquireLock".to_owned();
        context.deadline = u64::try_from(Utc::now().timestamp_millis()).unwrap() + 60_000;
        LambdaEvent::new(payload, context)
    }

    /// `AcquireLock`'s input for a new stage (Plan found no record), as the state carries it.
    fn lock_input(owner: &str) -> Value {
        json!({ "service": "shop", "stage": "dev", "owner": owner, "stage_record": null, "deployment_id": 1 })
    }

    #[tokio::test]
    async fn a_lambda_event_runs_its_step_and_returns_the_steps_output() {
        let fakes = FakeAws::default();
        let deps = fakes.deps();
        let output = handle("AcquireLock", event(lock_input("exec-1")), &deps).await.unwrap();
        assert_eq!(output["owner"], "exec-1", "{output}");
        let held = fakes.history.lock("shop", &steps::acquire_lock::stage_lock("dev")).await.unwrap().unwrap();
        assert_eq!(held.owner, "exec-1");
        // Taking it again as the same owner renews it: the step's own output, nothing added.
        let again = handle("AcquireLock", event(lock_input("exec-1")), &deps).await.unwrap();
        assert_eq!(again["owner"], output["owner"]);
    }

    #[tokio::test]
    async fn a_step_error_reaches_step_functions_as_its_stable_error_type() {
        let deps = FakeAws::default().deps();
        handle("AcquireLock", event(lock_input("exec-1")), &deps).await.unwrap();
        let error = handle("AcquireLock", event(lock_input("exec-2")), &deps).await.unwrap_err();
        let diagnostic = Diagnostic::from(error);
        assert_eq!(diagnostic.error_type, "StageLocked");
        assert!(diagnostic.error_message.contains("locked by exec-1"), "{}", diagnostic.error_message);
        // The wire format Lambda sends on to Step Functions: `Error` is this `errorType`.
        let wire = serde_json::to_value(&diagnostic).unwrap();
        assert_eq!(wire["errorType"], "StageLocked");
    }

    #[tokio::test]
    async fn an_event_that_is_not_the_steps_input_is_input_invalid() {
        let deps = FakeAws::default().deps();
        let error = handle("AcquireLock", event(json!({ "stage": 7 })), &deps).await.unwrap_err();
        assert_eq!(Diagnostic::from(error).error_type, "InputInvalid");
    }

    #[tokio::test]
    async fn an_aws_failure_keeps_its_transient_or_permanent_name() {
        let fakes = FakeAws::default();
        fakes.history.fail_next("acquire", 1, "ThrottlingException");
        let error = handle("AcquireLock", event(lock_input("exec-1")), &fakes.deps()).await.unwrap_err();
        assert_eq!(Diagnostic::from(error).error_type, "AwsTransient");
    }

    #[test]
    fn every_step_has_a_binary_that_serves_it_and_a_cargo_target() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        for name in steps::NAMES {
            let snake = crate::steps::binary(name);
            let path = root.join(format!("src/bin/{snake}.rs"));
            let source = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("{name}: no {}", path.display()));
            assert!(source.contains(&format!("functions::lambda::main(\"{name}\")")), "{}", path.display());
            let target = format!(
                "[[bin]]\nname = \"{snake}\"\npath = \"src/bin/{snake}.rs\"\nrequired-features = [\"lambda\"]\n"
            );
            assert!(manifest.contains(&target), "functions/Cargo.toml lacks {target}");
        }
        let binaries = std::fs::read_dir(root.join("src/bin")).unwrap().count();
        assert_eq!(binaries, steps::NAMES.len(), "a binary in src/bin/ serves no step");
    }

    #[test]
    fn the_environment_names_the_table_and_bucket_and_defaults_the_placeholder() {
        let vars: BTreeMap<&str, &str> =
            [(TABLE_VAR, "aliasflow-history"), (BUCKET_VAR, "b"), (PLACEHOLDER_KEY_VAR, "")].into();
        let env = Environment::from_vars(|name| vars.get(name).map(|v| (*v).to_owned())).unwrap();
        assert_eq!(
            env,
            Environment {
                table: "aliasflow-history".into(),
                bucket: "b".into(),
                placeholder_key: PLACEHOLDER_KEY.into()
            }
        );
        let missing = Environment::from_vars(|name| (name == TABLE_VAR).then(|| "t".to_owned())).unwrap_err();
        assert!(missing.to_string().contains(BUCKET_VAR), "{missing}");
    }

    #[test]
    fn the_deployer_template_sets_the_variables_the_handlers_read() {
        assert_eq!((TABLE_VAR, BUCKET_VAR), (crate::infra::TABLE_VAR, crate::infra::BUCKET_VAR));
    }
}
