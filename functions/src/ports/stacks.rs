use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::error::AwsError;

/// A stack as CloudFormation reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackState {
    /// `StackStatus`, e.g. `CREATE_COMPLETE`.
    pub status: String,
    /// `StackStatusReason`, if any.
    pub reason: Option<String>,
    /// Output key to value.
    pub outputs: BTreeMap<String, String>,
    /// The stack's tags: whose it is (`Owner::check`).
    pub tags: BTreeMap<String, String>,
}

impl StackState {
    /// Still changing: poll again.
    pub fn in_progress(&self) -> bool {
        self.status.ends_with("_IN_PROGRESS")
    }

    /// Ended well: created or updated as asked.
    pub fn succeeded(&self) -> bool {
        matches!(self.status.as_str(), "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "IMPORT_COMPLETE")
    }
}

/// One stack parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    /// `ParameterKey`.
    pub key: String,
    /// `ParameterValue`.
    pub value: String,
}

/// Where CloudFormation reads a template from: inline up to 51,200 bytes, else from S3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateSource {
    /// `TemplateBody`.
    Body(String),
    /// `TemplateURL` of an object in the artifact bucket.
    Url(String),
}

/// CloudFormation stacks of one region.
#[async_trait]
pub trait Stacks: Send + Sync {
    /// The stack, `None` if it does not exist (or was deleted).
    async fn describe(&self, stack: &str) -> Result<Option<StackState>, AwsError>;
    /// Starts creating the stack, tagged with `tags`.
    async fn create(
        &self,
        stack: &str,
        template: &TemplateSource,
        parameters: &[Parameter],
        tags: &[(String, String)],
    ) -> Result<(), AwsError>;
    /// Starts updating the stack, its tags becoming `tags`; `Ok(false)` when CloudFormation says
    /// there is nothing to update.
    async fn update(
        &self,
        stack: &str,
        template: &TemplateSource,
        parameters: &[Parameter],
        tags: &[(String, String)],
    ) -> Result<bool, AwsError>;
    /// Starts deleting the stack; a missing stack is not an error.
    async fn delete(&self, stack: &str) -> Result<(), AwsError>;
    /// The reasons of the stack's failed resource events, newest first (for `StackFailed`).
    async fn failure_reasons(&self, stack: &str) -> Result<Vec<String>, AwsError>;
}
