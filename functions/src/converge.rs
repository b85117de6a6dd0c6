//! Bringing a CloudFormation stack to a template: create, update or leave it, then wait until it
//! settles; or delete it. Shared by the steps that own a stack (`EnsureServiceStack`,
//! `EnsureStageStack`, `DeleteStack`).

use std::collections::BTreeMap;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::domain::naming::Owner;
use crate::domain::template;
use crate::error::{AwsError, StepError};
use crate::ports::{Artifacts, Parameter, Settings, StackState, Stacks, TemplateSource};
use crate::steps::state::StackResult;

/// CloudFormation's limit for an inline `TemplateBody`.
const MAX_TEMPLATE_BODY: usize = 51_200;

/// Longest pause between two polls of a stack.
const MAX_POLL: Duration = Duration::from_secs(10);

/// A stack and what it should be.
#[derive(Debug)]
pub struct Target<'a> {
    /// The stack name.
    pub stack: &'a str,
    /// The region (for a staged template's URL).
    pub region: &'a str,
    /// The template.
    pub template: &'a serde_json::Value,
    /// The parameter values.
    pub parameters: BTreeMap<String, String>,
    /// Who the stack belongs to: its tags on creation, and checked before any change.
    pub owner: &'a Owner,
}

impl Target<'_> {
    /// sha256 (hex) of the rendered template and the parameter values: equal hashes, equal stacks.
    pub fn hash(&self) -> String {
        let mut digest = Sha256::new();
        digest.update(template::render(self.template).as_bytes());
        for (key, value) in &self.parameters {
            digest.update(format!("\n{key}={value}").as_bytes());
        }
        hex::encode(digest.finalize())
    }
}

/// Where the adapters and limits come from.
#[derive(Clone, Copy)]
pub struct Tools<'a> {
    /// CloudFormation of the stack's region.
    pub stacks: &'a dyn Stacks,
    /// The artifact bucket, for templates over the inline limit.
    pub artifacts: &'a dyn Artifacts,
    /// Bucket name and polling.
    pub settings: &'a Settings,
}

impl std::fmt::Debug for Tools<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tools").field("settings", self.settings).finish_non_exhaustive()
    }
}

/// Brings the stack to `target` unless `recorded` (hash and outputs aliasflow last recorded)
/// says it already is; then makes no call at all.
pub async fn converge(
    tools: Tools<'_>,
    target: &Target<'_>,
    recorded: Option<(&str, &BTreeMap<String, String>)>,
) -> Result<StackResult, StepError> {
    let hash = target.hash();
    if let Some((recorded_hash, outputs)) = recorded {
        if recorded_hash == hash {
            return Ok(StackResult {
                hash,
                operation: "none".to_owned(),
                outputs: outputs.clone(),
                kept: BTreeMap::new(),
            });
        }
    }
    let mut current = settle(tools, target.stack).await?;
    if let Some(found) = &current {
        target.owner.check(&format!("stack {}", target.stack), &found.tags)?;
    }
    let source = source(tools, target, &hash).await?;
    let parameters: Vec<Parameter> =
        target.parameters.iter().map(|(key, value)| Parameter { key: key.clone(), value: value.clone() }).collect();
    let tags = target.owner.tags();
    if current.as_ref().is_some_and(|s| matches!(s.status.as_str(), "ROLLBACK_COMPLETE" | "CREATE_FAILED")) {
        // A stack whose creation failed can only be deleted; it holds nothing to keep.
        tracing::info!(stack = target.stack, "deleting a stack whose creation failed before creating it again");
        tools.stacks.delete(target.stack).await?;
        current = settle(tools, target.stack).await?;
    }
    let operation = if current.is_none() {
        tracing::info!(stack = target.stack, "creating stack");
        tools.stacks.create(target.stack, &source, &parameters, &tags).await?;
        "created"
    } else {
        tracing::info!(stack = target.stack, "updating stack");
        if tools.stacks.update(target.stack, &source, &parameters, &tags).await? {
            "updated"
        } else {
            "none"
        }
    };
    let state = settle(tools, target.stack).await?.ok_or_else(|| StepError::StackFailed {
        stack: target.stack.to_owned(),
        status: "DELETE_COMPLETE".to_owned(),
        reason: "the stack disappeared while it was being created".to_owned(),
    })?;
    if !state.succeeded() {
        return Err(failed(tools, target.stack, state).await);
    }
    tracing::info!(stack = target.stack, operation, "stack ready");
    Ok(StackResult { hash, operation: operation.to_owned(), outputs: state.outputs, kept: BTreeMap::new() })
}

/// Deletes the stack, if `owner`'s, and waits until it is gone. A missing stack is not an error:
/// `false` says there was none.
pub async fn remove(tools: Tools<'_>, stack: &str, owner: &Owner) -> Result<bool, StepError> {
    let Some(current) = settle(tools, stack).await? else {
        return Ok(false);
    };
    owner.check(&format!("stack {stack}"), &current.tags)?;
    tracing::info!(stack, status = %current.status, "deleting stack");
    tools.stacks.delete(stack).await?;
    match settle(tools, stack).await? {
        None => Ok(true),
        Some(state) => Err(failed(tools, stack, state).await),
    }
}

/// `StackFailed` with CloudFormation's reasons for the stack's state.
async fn failed(tools: Tools<'_>, stack: &str, state: StackState) -> StepError {
    let reasons = tools.stacks.failure_reasons(stack).await.unwrap_or_default();
    let reason = if reasons.is_empty() { state.reason.unwrap_or_default() } else { reasons.join("; ") };
    StepError::StackFailed { stack: stack.to_owned(), status: state.status, reason }
}

/// Inline when it fits, else staged in the artifact bucket under its hash.
async fn source(tools: Tools<'_>, target: &Target<'_>, hash: &str) -> Result<TemplateSource, StepError> {
    let body = template::render(target.template);
    Ok(staged(tools.artifacts, &tools.settings.bucket, target.region, body, hash).await?)
}

/// Where CloudFormation reads `body` from: inline up to its 51,200-byte limit for a
/// `TemplateBody`, else from the object `aliasflow/templates/<hash>.json` of `bucket` (in
/// `region`, the stack's: CloudFormation reads a `TemplateURL` in its own region), which this
/// puts there.
pub async fn staged(
    artifacts: &dyn Artifacts,
    bucket: &str,
    region: &str,
    body: String,
    hash: &str,
) -> Result<TemplateSource, AwsError> {
    if body.len() <= MAX_TEMPLATE_BODY {
        return Ok(TemplateSource::Body(body));
    }
    let key = format!("aliasflow/templates/{hash}.json");
    artifacts.put(&key, body.into_bytes()).await?;
    Ok(TemplateSource::Url(format!("https://{bucket}.s3.{region}.amazonaws.com/{key}")))
}

/// Polls the stack until it is no longer in progress, from `poll_interval` up with back-off.
async fn settle(tools: Tools<'_>, stack: &str) -> Result<Option<StackState>, StepError> {
    let started = std::time::Instant::now();
    let mut pause = tools.settings.poll_interval;
    loop {
        let state = tools.stacks.describe(stack).await?;
        match state {
            Some(ref s) if s.in_progress() => {
                if started.elapsed() >= tools.settings.stack_timeout {
                    return Err(StepError::StackFailed {
                        stack: stack.to_owned(),
                        status: s.status.clone(),
                        reason: format!(
                            "still in progress after {} s; look at its events in the CloudFormation console",
                            tools.settings.stack_timeout.as_secs()
                        ),
                    });
                }
                tracing::debug!(stack, status = %s.status, "waiting for stack");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).clamp(Duration::from_millis(1), MAX_POLL);
            }
            other => return Ok(other),
        }
    }
}
