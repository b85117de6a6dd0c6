use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::domain::config::FunctionConfig;
use crate::error::AwsError;

/// Lambda's `LastUpdateStatus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateStatus {
    /// The update is done.
    Successful,
    /// Still being applied: poll.
    InProgress,
    /// It failed, with Lambda's reason.
    Failed(String),
}

/// `$LATEST` after an update: what `PublishVersion` must be guarded with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// `RevisionId`.
    pub revision_id: String,
    /// `CodeSha256` (base64).
    pub code_sha256: String,
    /// `LastUpdateStatus`.
    pub status: UpdateStatus,
    /// The configuration `$LATEST` has now, as far as aliasflow sets it.
    pub config: Option<FunctionConfig>,
    /// The function's tags, whose it is ([`Owner::check`](crate::domain::naming::Owner::check)),
    /// where the call reports them (`GetFunction`); empty after an update, whose answer has none.
    pub tags: BTreeMap<String, String>,
}

/// Where one alias of a function points, as one `GetFunction` on the alias reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AliasState {
    /// There is no such function.
    FunctionMissing,
    /// The function exists (with these tags) but has no such alias.
    AliasMissing {
        /// The function's tags.
        tags: BTreeMap<String, String>,
    },
    /// The alias points at `version`.
    At {
        /// The version the alias points at.
        version: String,
        /// That version's `CodeSha256` (base64).
        code_sha256: String,
        /// The function's tags.
        tags: BTreeMap<String, String>,
    },
}

impl AliasState {
    /// The function's tags; `None` when the function is missing.
    pub fn tags(&self) -> Option<&BTreeMap<String, String>> {
        match self {
            Self::FunctionMissing => None,
            Self::AliasMissing { tags } | Self::At { tags, .. } => Some(tags),
        }
    }

    /// The version the alias points at, if it exists.
    pub fn version(&self) -> Option<&str> {
        match self {
            Self::At { version, .. } => Some(version),
            Self::FunctionMissing | Self::AliasMissing { .. } => None,
        }
    }
}

/// What an alias points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasTarget {
    /// The alias name.
    pub alias: String,
    /// The version it points at.
    pub version: String,
}

/// One published version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    /// The version number.
    pub version: String,
    /// Its `CodeSha256` (base64).
    pub code_sha256: String,
}

/// A resource-based policy statement on a function alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    /// The statement id (stable, so adding it twice is a no-op).
    pub statement_id: String,
    /// Who may invoke, e.g. `apigateway.amazonaws.com`.
    pub principal: String,
    /// The caller's ARN pattern.
    pub source_arn: String,
}

/// Lambda functions of one region: code, configuration, versions and aliases.
#[async_trait]
pub trait Functions: Send + Sync {
    /// `$LATEST` as it is now, with the function's tags; `None` if the function does not exist.
    async fn latest(&self, function: &str) -> Result<Option<Revision>, AwsError>;
    /// Where `alias` of `function` points, with the function's tags: one call when the alias
    /// exists, a second only to tell a missing alias from a missing function.
    async fn alias(&self, function: &str, alias: &str) -> Result<AliasState, AwsError>;
    /// Points `$LATEST` at the zip `bucket`/`key`.
    async fn update_code(
        &self,
        function: &str,
        bucket: &str,
        key: &str,
        architecture: &str,
    ) -> Result<Revision, AwsError>;
    /// Applies `config` to `$LATEST`.
    async fn update_config(&self, function: &str, config: &FunctionConfig) -> Result<Revision, AwsError>;
    /// The configuration of a published `version`, as far as aliasflow sets it; `None` if the
    /// function or the version does not exist.
    async fn config_of(&self, function: &str, version: &str) -> Result<Option<FunctionConfig>, AwsError>;
    /// Publishes `$LATEST`, guarded: Lambda refuses if `$LATEST` is no longer this code and revision.
    async fn publish(
        &self,
        function: &str,
        code_sha256: &str,
        revision_id: &str,
        description: &str,
    ) -> Result<VersionInfo, AwsError>;
    /// Points `alias` at `version`, creating the alias if it is missing.
    async fn point_alias(&self, function: &str, alias: &str, version: &str) -> Result<(), AwsError>;
    /// Deletes `alias`; a missing alias or function is not an error.
    async fn delete_alias(&self, function: &str, alias: &str) -> Result<(), AwsError>;
    /// Every alias of `function` (empty if the function does not exist).
    async fn aliases(&self, function: &str) -> Result<Vec<AliasTarget>, AwsError>;
    /// Every published version of `function` (not `$LATEST`).
    async fn versions(&self, function: &str) -> Result<Vec<VersionInfo>, AwsError>;
    /// Deletes a version; a missing one is not an error.
    async fn delete_version(&self, function: &str, version: &str) -> Result<(), AwsError>;
    /// Adds `permission` on `function:alias`; one that is already there is not an error.
    async fn add_permission(&self, function: &str, alias: &str, permission: &Permission) -> Result<(), AwsError>;
}
