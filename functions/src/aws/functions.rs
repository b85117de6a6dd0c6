//! The Lambda adapter of [`Functions`]: code, configuration, versions, aliases and permissions,
//! always through the Lambda API (never through CloudFormation).
//!
//! Waiting follows DESIGN.md "Waiting for Lambda": the `LastUpdateStatus` of the update's own
//! response decides, and the function is polled only while it says `InProgress`, so a settled
//! update costs one call. Reads go through `GetFunction`, which answers configuration and tags in
//! one call and has a far higher request quota (100 per second) than `GetFunctionConfiguration`
//! (15 per second).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_lambda::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_lambda::operation::add_permission::AddPermissionError;
use aws_sdk_lambda::operation::create_alias::CreateAliasError;
use aws_sdk_lambda::operation::delete_alias::DeleteAliasError;
use aws_sdk_lambda::operation::delete_function::DeleteFunctionError;
use aws_sdk_lambda::operation::get_function::GetFunctionError;
use aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationError;
use aws_sdk_lambda::operation::get_policy::GetPolicyError;
use aws_sdk_lambda::operation::list_aliases::ListAliasesError;
use aws_sdk_lambda::operation::list_versions_by_function::ListVersionsByFunctionError;
use aws_sdk_lambda::operation::publish_version::PublishVersionError;
use aws_sdk_lambda::operation::update_alias::UpdateAliasError;
use aws_sdk_lambda::operation::update_function_code::UpdateFunctionCodeError;
use aws_sdk_lambda::operation::update_function_configuration::UpdateFunctionConfigurationError;
use aws_sdk_lambda::types::{Architecture, Environment, LastUpdateStatus, LoggingConfig, Runtime, State};
use aws_sdk_lambda::Client;
use aws_smithy_runtime_api::http::Response;

use crate::aws::aws_error;
use crate::domain::config::FunctionConfig;
use crate::error::AwsError;
use crate::ports::{AliasState, AliasTarget, Functions, Permission, Revision, UpdateStatus, VersionInfo};

/// The shortest pause between two polls after the first.
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// The longest pause between two polls of a function that is still updating.
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// How long an update may stay `InProgress` (or a new function `Pending`) before we give up.
const WAIT_LIMIT: Duration = Duration::from_secs(5 * 60);
/// How often a call refused with `ResourceConflictException` (another update still being
/// applied) is tried again after the function settled.
const CONFLICT_RETRIES: u32 = 5;
/// Lambda's own default log group prefix: a group there is not one aliasflow set.
const DEFAULT_LOG_GROUP_PREFIX: &str = "/aws/lambda/";

/// [`Functions`] on the Lambda API of one region.
#[derive(Debug, Clone)]
pub struct LambdaApi {
    client: Client,
    poll_interval: Duration,
}

/// The fields aliasflow reads of a function configuration. `GetFunctionConfiguration`,
/// `UpdateFunctionCode` and `UpdateFunctionConfiguration` answer with distinct types of the
/// same shape; `reported!` borrows them into this one.
struct Reported<'a> {
    name: Option<&'a str>,
    revision_id: Option<&'a str>,
    code_sha256: Option<&'a str>,
    state: Option<&'a State>,
    state_reason: Option<&'a str>,
    last_update_status: Option<&'a LastUpdateStatus>,
    last_update_reason: Option<&'a str>,
    runtime: Option<&'a Runtime>,
    architectures: &'a [Architecture],
    handler: Option<&'a str>,
    memory: Option<i32>,
    timeout: Option<i32>,
    description: Option<&'a str>,
    environment: Option<&'a std::collections::HashMap<String, String>>,
    log_group: Option<&'a str>,
}

/// Borrows a configuration-shaped response into [`Reported`].
macro_rules! reported {
    ($out:expr) => {{
        let out = &$out;
        Reported {
            name: out.function_name(),
            revision_id: out.revision_id(),
            code_sha256: out.code_sha256(),
            state: out.state(),
            state_reason: out.state_reason(),
            last_update_status: out.last_update_status(),
            last_update_reason: out.last_update_status_reason(),
            runtime: out.runtime(),
            architectures: out.architectures(),
            handler: out.handler(),
            memory: out.memory_size(),
            timeout: out.timeout(),
            description: out.description(),
            environment: out.environment().and_then(|e| e.variables()),
            log_group: out.logging_config().and_then(|l| l.log_group()),
        }
    }};
}

impl LambdaApi {
    /// The adapter over `client`, polling from 1 s up.
    pub fn new(client: Client) -> Self {
        Self { client, poll_interval: Duration::from_secs(1) }
    }

    /// Starts polling an updating function after `interval` instead of 1 s; the pause doubles up
    /// to 5 s.
    #[must_use]
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// `$LATEST` now, with the function's tags; `None` if the function is missing.
    async fn current(&self, function: &str) -> Result<Option<Revision>, AwsError> {
        match self.client.get_function().function_name(function).send().await {
            Ok(out) => Ok(Some(answered(&out, function))),
            Err(err) if service_error_is(&err, GetFunctionError::is_resource_not_found_exception) => Ok(None),
            Err(err) => Err(aws_error("GetFunction", function, &err)),
        }
    }

    /// Polls while `revision` is still being applied, with back-off, until it settles.
    async fn settle(&self, operation: &str, function: &str, mut revision: Revision) -> Result<Revision, AwsError> {
        let deadline = Instant::now() + WAIT_LIMIT;
        let mut pause = self.poll_interval;
        while revision.status == UpdateStatus::InProgress {
            if Instant::now() >= deadline {
                return Err(timeout(operation, function));
            }
            tokio::time::sleep(pause).await;
            // Doubling from a zero interval (tests) would poll without pause for minutes.
            pause = (pause * 2).clamp(MIN_POLL_INTERVAL, MAX_POLL_INTERVAL);
            revision = self.current(function).await?.ok_or_else(|| vanished(operation, function))?;
        }
        Ok(revision)
    }

    /// Sends `call` again while Lambda refuses it with `ResourceConflictException` (the function
    /// is still `Pending` after creation, or another update is being applied), waiting for the
    /// function to settle in between. Asking first would cost a call on every update; a conflict
    /// is rare.
    async fn retry_on_conflict<O, E, F, Fut>(
        &self,
        operation: &str,
        function: &str,
        is_conflict: fn(&E) -> bool,
        mut call: F,
    ) -> Result<O, AwsError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<O, SdkError<E, Response>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let mut attempt = 0;
        loop {
            match call().await {
                Err(err) if attempt < CONFLICT_RETRIES && err.as_service_error().is_some_and(is_conflict) => {
                    attempt += 1;
                    tracing::debug!(function, operation, attempt, "function busy, waiting for it to settle");
                    self.wait_until_idle(operation, function).await?;
                }
                Err(err) => return Err(aws_error(operation, function, &err)),
                Ok(out) => return Ok(out),
            }
        }
    }

    /// Pauses at least once, then until the function is neither `Pending` nor updating.
    async fn wait_until_idle(&self, operation: &str, function: &str) -> Result<(), AwsError> {
        tokio::time::sleep(self.poll_interval).await;
        let revision = self.current(function).await?.ok_or_else(|| vanished(operation, function))?;
        self.settle(operation, function, revision).await.map(drop)
    }

    /// Whether the policy of `function:alias` already holds statement `statement_id`.
    async fn has_statement(&self, function: &str, alias: &str, statement_id: &str) -> Result<bool, AwsError> {
        let out = match self.client.get_policy().function_name(function).qualifier(alias).send().await {
            Ok(out) => out,
            // No policy at all: certainly not this statement.
            Err(err) if service_error_is(&err, GetPolicyError::is_resource_not_found_exception) => return Ok(false),
            Err(err) => return Err(aws_error("GetPolicy", function, &err)),
        };
        let policy: serde_json::Value = out.policy().and_then(|p| serde_json::from_str(p).ok()).unwrap_or_default();
        let statements = policy.get("Statement").and_then(serde_json::Value::as_array);
        Ok(statements
            .is_some_and(|all| all.iter().any(|s| s.get("Sid").and_then(|v| v.as_str()) == Some(statement_id))))
    }
}

/// The revision a `GetFunction` answer reports, with the function's tags.
fn answered(out: &aws_sdk_lambda::operation::get_function::GetFunctionOutput, function: &str) -> Revision {
    let mut revision = match out.configuration() {
        Some(configuration) => reported!(configuration).revision(function),
        // Lambda always answers with a configuration; without one there is nothing to compare.
        None => Revision {
            revision_id: String::new(),
            code_sha256: String::new(),
            status: UpdateStatus::Successful,
            config: None,
            tags: BTreeMap::new(),
        },
    };
    revision.tags = tags(out);
    revision
}

/// The function's tags in a `GetFunction` answer.
fn tags(out: &aws_sdk_lambda::operation::get_function::GetFunctionOutput) -> BTreeMap<String, String> {
    out.tags().map(|tags| tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default()
}

impl Reported<'_> {
    fn revision(&self, function: &str) -> Revision {
        let status = match (self.state, self.last_update_status) {
            (Some(State::Failed), _) => {
                UpdateStatus::Failed(self.state_reason.unwrap_or("function creation failed").to_owned())
            }
            (_, Some(LastUpdateStatus::Failed)) => {
                UpdateStatus::Failed(self.last_update_reason.unwrap_or("update failed").to_owned())
            }
            // A function that is still being created refuses updates, so it counts as updating.
            (Some(State::Pending), _) | (_, Some(LastUpdateStatus::InProgress)) => UpdateStatus::InProgress,
            // Absent right after creation (moto too): nothing is being applied.
            _ => UpdateStatus::Successful,
        };
        let name = self.name.unwrap_or(function);
        let config = self.runtime.map(|runtime| FunctionConfig {
            runtime: runtime.as_str().to_owned(),
            // Lambda's default when none is reported.
            architecture: self.architectures.first().map_or("x86_64", Architecture::as_str).to_owned(),
            handler: self.handler.unwrap_or_default().to_owned(),
            memory: self.memory.and_then(|m| u32::try_from(m).ok()).unwrap_or(128),
            timeout: self.timeout.and_then(|t| u32::try_from(t).ok()).unwrap_or(3),
            description: self.description.filter(|d| !d.is_empty()).map(str::to_owned),
            environment: self
                .environment
                .map(|vars| vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<BTreeMap<_, _>>())
                .unwrap_or_default(),
            // Lambda's default group is what "not set by aliasflow" looks like from outside.
            log_group: self
                .log_group
                .filter(|group| group.strip_prefix(DEFAULT_LOG_GROUP_PREFIX) != Some(name))
                .map(str::to_owned),
        });
        Revision {
            // moto reports no RevisionId; AWS always does.
            revision_id: self.revision_id.unwrap_or_default().to_owned(),
            code_sha256: self.code_sha256.unwrap_or_default().to_owned(),
            status,
            config,
            tags: BTreeMap::new(),
        }
    }
}

fn timeout(operation: &str, function: &str) -> AwsError {
    AwsError {
        operation: operation.to_owned(),
        resource: function.to_owned(),
        code: "Timeout".to_owned(),
        message: format!("the function was still updating after {} s", WAIT_LIMIT.as_secs()),
        // Lambda may simply be slow: the next attempt of the step finds it settled.
        transient: true,
    }
}

fn vanished(operation: &str, function: &str) -> AwsError {
    AwsError {
        operation: operation.to_owned(),
        resource: function.to_owned(),
        code: "ResourceNotFoundException".to_owned(),
        message: "the function was deleted while aliasflow waited for its update".to_owned(),
        transient: false,
    }
}

/// Whether `err` is the service error `predicate` names (e.g. `is_resource_not_found_exception`).
fn service_error_is<E>(err: &SdkError<E, Response>, predicate: fn(&E) -> bool) -> bool {
    err.as_service_error().is_some_and(predicate)
}

#[async_trait]
impl Functions for LambdaApi {
    async fn latest(&self, function: &str) -> Result<Option<Revision>, AwsError> {
        self.current(function).await
    }

    async fn alias(&self, function: &str, alias: &str) -> Result<AliasState, AwsError> {
        match self.client.get_function().function_name(function).qualifier(alias).send().await {
            Ok(out) => {
                let configuration = out.configuration();
                Ok(AliasState::At {
                    version: configuration.and_then(|c| c.version()).unwrap_or_default().to_owned(),
                    code_sha256: configuration.and_then(|c| c.code_sha256()).unwrap_or_default().to_owned(),
                    tags: tags(&out),
                })
            }
            // Missing function or missing alias: Lambda answers both alike, so ask the function.
            Err(err) if service_error_is(&err, GetFunctionError::is_resource_not_found_exception) => {
                Ok(match self.current(function).await? {
                    Some(revision) => AliasState::AliasMissing { tags: revision.tags },
                    None => AliasState::FunctionMissing,
                })
            }
            Err(err) => Err(aws_error("GetFunction", function, &err)),
        }
    }

    async fn update_code(
        &self,
        function: &str,
        bucket: &str,
        key: &str,
        architecture: &str,
    ) -> Result<Revision, AwsError> {
        let request = self
            .client
            .update_function_code()
            .function_name(function)
            .s3_bucket(bucket)
            .s3_key(key)
            .architectures(Architecture::from(architecture));
        let out = self
            .retry_on_conflict(
                "UpdateFunctionCode",
                function,
                UpdateFunctionCodeError::is_resource_conflict_exception,
                || request.clone().send(),
            )
            .await?;
        let revision = reported!(out).revision(function);
        self.settle("UpdateFunctionCode", function, revision).await
    }

    async fn update_config(&self, function: &str, config: &FunctionConfig) -> Result<Revision, AwsError> {
        // The whole map every time: a variable removed from the manifest must go away.
        let environment = Environment::builder()
            .set_variables(Some(config.environment.iter().map(|(k, v)| (k.clone(), v.clone())).collect()))
            .build();
        let memory = i32::try_from(config.memory).unwrap_or(i32::MAX);
        let timeout = i32::try_from(config.timeout).unwrap_or(i32::MAX);
        let request = self
            .client
            .update_function_configuration()
            .function_name(function)
            .runtime(Runtime::from(config.runtime.as_str()))
            .handler(&config.handler)
            .memory_size(memory)
            .timeout(timeout)
            // An empty description clears one set before.
            .description(config.description.as_deref().unwrap_or_default())
            .environment(environment)
            // None leaves the group the stack declared.
            .set_logging_config(
                config.log_group.as_ref().map(|group| LoggingConfig::builder().log_group(group).build()),
            );
        let out = self
            .retry_on_conflict(
                "UpdateFunctionConfiguration",
                function,
                UpdateFunctionConfigurationError::is_resource_conflict_exception,
                || request.clone().send(),
            )
            .await?;
        let revision = reported!(out).revision(function);
        self.settle("UpdateFunctionConfiguration", function, revision).await
    }

    async fn config_of(&self, function: &str, version: &str) -> Result<Option<FunctionConfig>, AwsError> {
        let request = self.client.get_function_configuration().function_name(function).qualifier(version);
        match request.send().await {
            Ok(out) => Ok(reported!(out).revision(function).config),
            Err(err) if service_error_is(&err, GetFunctionConfigurationError::is_resource_not_found_exception) => {
                Ok(None)
            }
            Err(err) => Err(aws_error("GetFunctionConfiguration", function, &err)),
        }
    }

    async fn publish(
        &self,
        function: &str,
        code_sha256: &str,
        revision_id: &str,
        description: &str,
    ) -> Result<VersionInfo, AwsError> {
        let request = self
            .client
            .publish_version()
            .function_name(function)
            .code_sha256(code_sha256)
            // moto reports no RevisionId, so there is none to send back; AWS always has one.
            .set_revision_id((!revision_id.is_empty()).then(|| revision_id.to_owned()))
            .description(description);
        let out = self
            .retry_on_conflict("PublishVersion", function, PublishVersionError::is_resource_conflict_exception, || {
                request.clone().send()
            })
            .await?;
        Ok(VersionInfo {
            version: out.version().unwrap_or_default().to_owned(),
            code_sha256: out.code_sha256().unwrap_or_default().to_owned(),
        })
    }

    async fn point_alias(&self, function: &str, alias: &str, version: &str) -> Result<(), AwsError> {
        let update = self.client.update_alias().function_name(function).name(alias).function_version(version);
        match update.clone().send().await {
            Ok(_) => return Ok(()),
            Err(err) if service_error_is(&err, UpdateAliasError::is_resource_not_found_exception) => {}
            Err(err) => return Err(aws_error("UpdateAlias", function, &err)),
        }
        let create = self.client.create_alias().function_name(function).name(alias).function_version(version);
        match create.send().await {
            Ok(_) => Ok(()),
            // Created meanwhile by someone else (a retried step): point it where we want it.
            Err(err) if service_error_is(&err, CreateAliasError::is_resource_conflict_exception) => {
                update.send().await.map(drop).map_err(|e| aws_error("UpdateAlias", function, &e))
            }
            Err(err) => Err(aws_error("CreateAlias", function, &err)),
        }
    }

    async fn delete_alias(&self, function: &str, alias: &str) -> Result<(), AwsError> {
        match self.client.delete_alias().function_name(function).name(alias).send().await {
            Ok(_) => Ok(()),
            Err(err) if service_error_is(&err, DeleteAliasError::is_resource_not_found_exception) => Ok(()),
            Err(err) => Err(aws_error("DeleteAlias", function, &err)),
        }
    }

    async fn aliases(&self, function: &str) -> Result<Vec<AliasTarget>, AwsError> {
        let pages = self.client.list_aliases().function_name(function).into_paginator().items().send();
        match pages.try_collect().await {
            Ok(aliases) => Ok(aliases
                .iter()
                .map(|a| AliasTarget {
                    alias: a.name().unwrap_or_default().to_owned(),
                    version: a.function_version().unwrap_or_default().to_owned(),
                })
                .collect()),
            Err(err) if service_error_is(&err, ListAliasesError::is_resource_not_found_exception) => Ok(Vec::new()),
            Err(err) => Err(aws_error("ListAliases", function, &err)),
        }
    }

    async fn versions(&self, function: &str) -> Result<Vec<VersionInfo>, AwsError> {
        let pages = self.client.list_versions_by_function().function_name(function).into_paginator().items().send();
        match pages.try_collect().await {
            Ok(versions) => Ok(versions
                .iter()
                .filter_map(|v| {
                    let version = v.version().filter(|v| *v != "$LATEST")?;
                    Some(VersionInfo {
                        version: version.to_owned(),
                        code_sha256: v.code_sha256().unwrap_or_default().to_owned(),
                    })
                })
                .collect()),
            // Like `aliases`: a function that is gone has no versions left to collect.
            Err(err) if service_error_is(&err, ListVersionsByFunctionError::is_resource_not_found_exception) => {
                Ok(Vec::new())
            }
            Err(err) => Err(aws_error("ListVersionsByFunction", function, &err)),
        }
    }

    async fn delete_version(&self, function: &str, version: &str) -> Result<(), AwsError> {
        // DeleteFunction without a qualifier deletes the whole function: never send that.
        if version.is_empty() || version.eq_ignore_ascii_case("$LATEST") {
            return Err(AwsError {
                operation: "DeleteFunction".to_owned(),
                resource: function.to_owned(),
                code: "InvalidParameterValueException".to_owned(),
                message: format!("refusing to delete version {version:?}: only published versions can be deleted"),
                transient: false,
            });
        }
        match self.client.delete_function().function_name(function).qualifier(version).send().await {
            Ok(_) => Ok(()),
            Err(err) if service_error_is(&err, DeleteFunctionError::is_resource_not_found_exception) => Ok(()),
            Err(err) => Err(aws_error("DeleteFunction", function, &err)),
        }
    }

    async fn add_permission(&self, function: &str, alias: &str, permission: &Permission) -> Result<(), AwsError> {
        let request = self
            .client
            .add_permission()
            .function_name(function)
            .qualifier(alias)
            .statement_id(&permission.statement_id)
            .action("lambda:InvokeFunction")
            .principal(&permission.principal)
            .source_arn(&permission.source_arn);
        let mut attempt = 0;
        loop {
            let err = match request.clone().send().await {
                Ok(_) => return Ok(()),
                Err(err) if service_error_is(&err, AddPermissionError::is_resource_conflict_exception) => err,
                Err(err) => return Err(aws_error("AddPermission", function, &err)),
            };
            // ResourceConflictException means either "statement id already exists" or "an update
            // is in progress"; only the message tells them apart, so look at the policy instead.
            if self.has_statement(function, alias, &permission.statement_id).await? {
                return Ok(());
            }
            if attempt >= CONFLICT_RETRIES {
                return Err(aws_error("AddPermission", function, &err));
            }
            attempt += 1;
            self.wait_until_idle("AddPermission", function).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput;
    use aws_sdk_lambda::types::{EnvironmentResponse, LoggingConfig};

    use super::*;

    fn reported_by_lambda(
    ) -> aws_sdk_lambda::operation::get_function_configuration::builders::GetFunctionConfigurationOutputBuilder {
        GetFunctionConfigurationOutput::builder()
            .function_name("shop-api")
            .revision_id("r-1")
            .code_sha256("c2hh")
            .state(State::Active)
            .last_update_status(LastUpdateStatus::Successful)
            .runtime(Runtime::Providedal2023)
            .architectures(Architecture::Arm64)
            .handler("bootstrap")
            .memory_size(256)
            .timeout(10)
            .description("")
            .environment(EnvironmentResponse::builder().variables("MODE", "fast").build())
            .logging_config(LoggingConfig::builder().log_group("/aws/lambda/shop-api").build())
    }

    #[test]
    fn a_settled_function_maps_to_its_revision_and_configuration() {
        let out = reported_by_lambda().build();
        let revision = reported!(out).revision("shop-api");
        assert_eq!((revision.revision_id.as_str(), revision.code_sha256.as_str()), ("r-1", "c2hh"));
        assert_eq!(revision.status, UpdateStatus::Successful);
        let expected = FunctionConfig {
            runtime: "provided.al2023".into(),
            architecture: "arm64".into(),
            handler: "bootstrap".into(),
            memory: 256,
            timeout: 10,
            description: None,
            environment: BTreeMap::from([("MODE".into(), "fast".into())]),
            log_group: None,
        };
        assert_eq!(revision.config, Some(expected), "an empty description and Lambda's default group are unset");
    }

    #[test]
    fn a_log_group_other_than_lambdas_default_is_reported() {
        let logging = LoggingConfig::builder().log_group("/aliasflow/shop/dev/api").build();
        let out = reported_by_lambda().logging_config(logging).build();
        let config = reported!(out).revision("shop-api").config.unwrap();
        assert_eq!(config.log_group.as_deref(), Some("/aliasflow/shop/dev/api"));
    }

    #[test]
    fn an_update_in_progress_or_a_pending_function_is_still_updating() {
        let out = reported_by_lambda().last_update_status(LastUpdateStatus::InProgress).build();
        assert_eq!(reported!(out).revision("shop-api").status, UpdateStatus::InProgress);
        let out = reported_by_lambda().state(State::Pending).set_last_update_status(None).build();
        assert_eq!(reported!(out).revision("shop-api").status, UpdateStatus::InProgress);
    }

    #[test]
    fn a_failed_update_carries_lambdas_reason() {
        let out = reported_by_lambda()
            .last_update_status(LastUpdateStatus::Failed)
            .last_update_status_reason("handler not found")
            .build();
        assert_eq!(reported!(out).revision("shop-api").status, UpdateStatus::Failed("handler not found".into()));
    }

    #[test]
    fn a_function_without_a_runtime_has_no_configuration_aliasflow_manages() {
        let out = reported_by_lambda().set_runtime(None).build();
        assert_eq!(reported!(out).revision("shop-api").config, None);
    }
}
