//! The CloudFormation adapter of [`Stacks`]. It starts operations and reports states; waiting
//! for a stack to settle is the caller's (a step polls [`Stacks::describe`]).

use async_trait::async_trait;
use aws_sdk_cloudformation::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudformation::types::{Capability, ResourceStatus, Tag};
use aws_sdk_cloudformation::Client;
use aws_smithy_runtime_api::http::Response;

use crate::aws::aws_error;
use crate::error::AwsError;
use crate::ports::{Parameter, StackState, Stacks, TemplateSource};

/// [`Stacks`] on the CloudFormation API of one region.
#[derive(Debug, Clone)]
pub struct CloudFormationApi {
    client: Client,
}

impl CloudFormationApi {
    /// The adapter over `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

/// Whether `err` means the stack does not exist. CloudFormation has no NotFound error: a missing
/// stack is a `ValidationError`. Other `ValidationError`s of these calls are about a malformed
/// stack name, so a well-formed name (or a stack ARN) makes the code alone conclusive, and the
/// message is never read.
fn says_absent<E: ProvideErrorMetadata>(err: &SdkError<E, Response>, stack: &str) -> bool {
    let code = err.as_service_error().and_then(ProvideErrorMetadata::code);
    code == Some("ValidationError") && (stack.starts_with("arn:") || is_stack_name(stack))
}

/// CloudFormation's rule for stack names.
fn is_stack_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 128
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Whether `err` is CloudFormation's answer to an update that changes nothing.
fn says_no_updates<E: ProvideErrorMetadata>(err: &SdkError<E, Response>) -> bool {
    // The one case where the message is the only signal: CloudFormation reports an unchanged
    // stack as a ValidationError like any malformed request, and names it only in the text.
    err.as_service_error().is_some_and(|e| {
        e.code() == Some("ValidationError") && e.message().is_some_and(|m| m.contains("No updates are to be performed"))
    })
}

fn parameters(parameters: &[Parameter]) -> Vec<aws_sdk_cloudformation::types::Parameter> {
    parameters
        .iter()
        .map(|p| {
            aws_sdk_cloudformation::types::Parameter::builder().parameter_key(&p.key).parameter_value(&p.value).build()
        })
        .collect()
}

fn capabilities() -> Vec<Capability> {
    // aliasflow's stacks create the functions' execution role (with a name, where the manifest
    // gives one).
    vec![Capability::CapabilityIam, Capability::CapabilityNamedIam]
}

fn tags(tags: &[(String, String)]) -> Vec<Tag> {
    tags.iter().map(|(key, value)| Tag::builder().key(key).value(value).build()).collect()
}

fn split(template: &TemplateSource) -> (Option<String>, Option<String>) {
    match template {
        TemplateSource::Body(body) => (Some(body.clone()), None),
        TemplateSource::Url(url) => (None, Some(url.clone())),
    }
}

#[async_trait]
impl Stacks for CloudFormationApi {
    async fn describe(&self, stack: &str) -> Result<Option<StackState>, AwsError> {
        let out = match self.client.describe_stacks().stack_name(stack).send().await {
            Ok(out) => out,
            Err(err) if says_absent(&err, stack) => return Ok(None),
            Err(err) => return Err(aws_error("DescribeStacks", stack, &err)),
        };
        let Some(found) = out.stacks().first() else {
            return Ok(None);
        };
        let status = found.stack_status().map(|s| s.as_str().to_owned()).unwrap_or_default();
        // Only a stack ARN finds a deleted stack; for aliasflow it is gone all the same.
        if status == "DELETE_COMPLETE" {
            return Ok(None);
        }
        Ok(Some(StackState {
            status,
            reason: found.stack_status_reason().map(str::to_owned),
            outputs: found
                .outputs()
                .iter()
                .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value().unwrap_or_default().to_owned())))
                .collect(),
            tags: found
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned())))
                .collect(),
        }))
    }

    async fn create(
        &self,
        stack: &str,
        template: &TemplateSource,
        parameters_: &[Parameter],
        tags_: &[(String, String)],
    ) -> Result<(), AwsError> {
        let (body, url) = split(template);
        self.client
            .create_stack()
            .stack_name(stack)
            .set_template_body(body)
            .set_template_url(url)
            .set_parameters(Some(parameters(parameters_)))
            .set_capabilities(Some(capabilities()))
            .set_tags(Some(tags(tags_)))
            .send()
            .await
            .map(drop)
            .map_err(|err| aws_error("CreateStack", stack, &err))
    }

    async fn update(
        &self,
        stack: &str,
        template: &TemplateSource,
        parameters_: &[Parameter],
        tags_: &[(String, String)],
    ) -> Result<bool, AwsError> {
        let (body, url) = split(template);
        let sent = self
            .client
            .update_stack()
            .stack_name(stack)
            .set_template_body(body)
            .set_template_url(url)
            .set_parameters(Some(parameters(parameters_)))
            .set_capabilities(Some(capabilities()))
            .set_tags(Some(tags(tags_)))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(true),
            Err(err) if says_no_updates(&err) => Ok(false),
            Err(err) => Err(aws_error("UpdateStack", stack, &err)),
        }
    }

    async fn delete(&self, stack: &str) -> Result<(), AwsError> {
        match self.client.delete_stack().stack_name(stack).send().await {
            Ok(_) => Ok(()),
            Err(err) if says_absent(&err, stack) => Ok(()),
            Err(err) => Err(aws_error("DeleteStack", stack, &err)),
        }
    }

    async fn failure_reasons(&self, stack: &str) -> Result<Vec<String>, AwsError> {
        // The first page holds the newest events, which is where the failure that ended the last
        // operation is.
        let out = match self.client.describe_stack_events().stack_name(stack).send().await {
            Ok(out) => out,
            Err(err) if says_absent(&err, stack) => return Ok(Vec::new()),
            Err(err) => return Err(aws_error("DescribeStackEvents", stack, &err)),
        };
        let failed = |status: &ResourceStatus| status.as_str().ends_with("_FAILED");
        let mut events: Vec<_> =
            out.stack_events().iter().filter(|e| e.resource_status().is_some_and(failed)).collect();
        // CloudFormation lists newest first already; sorting keeps that true whatever the order.
        events.sort_by(|a, b| b.timestamp().cmp(&a.timestamp()));
        Ok(events
            .iter()
            .map(|e| {
                let id = e.logical_resource_id().unwrap_or("?");
                let reason = e.resource_status_reason().unwrap_or("no reason given");
                format!("{id}: {reason}")
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_names_follow_cloudformations_rule() {
        assert!(is_stack_name("shop-pr-7"));
        assert!(!is_stack_name("7shop"));
        assert!(!is_stack_name("shop_dev"));
        assert!(!is_stack_name(""));
        assert!(!is_stack_name(&"s".repeat(129)));
    }
}
