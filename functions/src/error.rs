//! The errors a step can end with. Each has a stable PascalCase name, [`StepError::error_type`],
//! that the state machines' `Retry` and `Catch` match on: renaming one is a contract change.

use serde::{Deserialize, Serialize};

/// One failed AWS call, reported as `UpdateAlias on shop-api: ResourceConflictException: ...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{operation} on {resource}: {code}: {message}")]
pub struct AwsError {
    /// The AWS operation, e.g. `UpdateAlias`.
    pub operation: String,
    /// What it was called on: a function, stack, table or object.
    pub resource: String,
    /// AWS's error code, e.g. `ThrottlingException`; `Unreachable` when no answer came.
    pub code: String,
    /// AWS's message.
    pub message: String,
    /// Whether trying again later may succeed (throttling, timeouts, 5xx).
    pub transient: bool,
}

impl AwsError {
    /// An error made up by a fake port, as AWS would report it.
    pub fn fake(operation: &str, resource: &str, code: &str) -> Self {
        Self {
            operation: operation.to_owned(),
            resource: resource.to_owned(),
            code: code.to_owned(),
            message: "injected by a fake".to_owned(),
            transient: matches!(code, "ThrottlingException" | "TooManyRequestsException"),
        }
    }
}

/// Why a step failed. Bad input and a held lock are refusals: found before anything changes.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The execution input does not match the documented schema.
    #[error("the execution input is invalid: {0}")]
    InputInvalid(String),
    /// The manifest has problems; one per line.
    #[error("{0}")]
    ManifestInvalid(String),
    /// The account has no aliasflow deployer (history table or artifact bucket).
    #[error("{0}; run `aliasflow bootstrap` first")]
    NotBootstrapped(String),
    /// The stage has never been deployed (or was removed).
    #[error(
        "stage {stage} of service {service} does not exist; deploy it first with `aliasflow deploy --stage {stage}`"
    )]
    StageUnknown {
        /// The service.
        service: String,
        /// The stage asked for.
        stage: String,
    },
    /// Another execution holds the stage's lock.
    #[error("stage {stage} is locked by {holder} until {until}; wait for it, or break a stale lock with `aliasflow unlock --stage {stage} --lock-id {holder}`")]
    StageLocked {
        /// The stage.
        stage: String,
        /// The lock's owner (an execution id).
        holder: String,
        /// When the lease expires (RFC 3339).
        until: String,
    },
    /// Another stage is publishing this function; the state machine retries after a pause.
    #[error("function {function} is being published by {holder} until {until}")]
    PublishLocked {
        /// The physical function name.
        function: String,
        /// The lease's owner.
        holder: String,
        /// When the lease expires (RFC 3339).
        until: String,
    },
    /// The lock this execution took is no longer its own (expired and taken, or broken).
    #[error("the lock of stage {stage} is no longer held by {owner}")]
    LockLost {
        /// The stage.
        stage: String,
        /// This execution's owner id.
        owner: String,
    },
    /// A code artifact named by the input is not in the artifact bucket.
    #[error("the code of function {function} is missing: no object {key} in the artifact bucket; deploy again so the CLI uploads it")]
    ArtifactMissing {
        /// The function (manifest key).
        function: String,
        /// The artifact's key.
        key: String,
    },
    /// A CloudFormation stack ended in a failed state.
    #[error("stack {stack} ended in {status}: {reason}")]
    StackFailed {
        /// The stack name.
        stack: String,
        /// Its final status, e.g. `UPDATE_ROLLBACK_COMPLETE`.
        status: String,
        /// CloudFormation's failure reasons.
        reason: String,
    },
    /// A Lambda function update ended with `LastUpdateStatus: Failed`.
    #[error("function {function} update failed: {reason}")]
    FunctionUpdateFailed {
        /// The physical function name.
        function: String,
        /// Lambda's `LastUpdateStatusReason`.
        reason: String,
    },
    /// An operation that needs an earlier deployment, target or origin that is not there.
    #[error("{0}")]
    Conflict(String),
    /// A rollback found no earlier deployment to return to.
    #[error("stage {stage} has nothing to roll back to: {reason}")]
    NothingToRollBack {
        /// The stage.
        stage: String,
        /// Why, and what to do.
        reason: String,
    },
    /// `rollback --to` names no retained, succeeded deployment of the stage.
    #[error("deployment {id} of stage {stage} cannot be rolled back to: {reason}; `aliasflow history --stage {stage}` lists the deployments to choose from")]
    DeploymentUnknown {
        /// The stage.
        stage: String,
        /// The id asked for.
        id: u64,
        /// Why it cannot be the target.
        reason: String,
    },
    /// The stage exists where the operation creates it (clone), or stages remain where the
    /// operation needs none (removing the service).
    #[error("stage {stage} exists: {advice}")]
    StageExists {
        /// The stage.
        stage: String,
        /// What to do instead.
        advice: String,
    },
    /// The origin of a reset or clone is not a live stage of the service with a deployment.
    #[error("origin stage {origin} cannot be copied: {reason}")]
    OriginInvalid {
        /// The origin stage asked for.
        origin: String,
        /// Why, and what to do.
        reason: String,
    },
    /// A stack or function that exists under aliasflow's name but belongs to another service or
    /// stage, or was not made by aliasflow: it is left alone.
    #[error("{resource} is not this deployment's to change: {owner}; nothing was changed. {advice}")]
    NotOwned {
        /// The resource, e.g. `stack shop-dev` or `function shop-dev-api`.
        resource: String,
        /// Who owns it, as its tags say (or that it has none of aliasflow's).
        owner: String,
        /// What to do instead.
        advice: String,
    },
    /// The stage changed between `Plan` and `AcquireLock` (another execution deployed it): the
    /// plan is stale. A refusal: nothing was written; running the command again plans anew.
    #[error(
        "stage {stage} changed while this execution planned ({reason}); nothing was changed, run the command again"
    )]
    StageChanged {
        /// The stage.
        stage: String,
        /// What changed.
        reason: String,
    },
    /// Another execution of the service is changing the service stack; the state machine retries
    /// after a pause (two stages never update one stack at once).
    #[error("the service stack of {service} is being changed by {holder} until {until}")]
    ServiceLocked {
        /// The service.
        service: String,
        /// The lease's owner.
        holder: String,
        /// When the lease expires (RFC 3339).
        until: String,
    },
    /// A failed AWS call.
    #[error(transparent)]
    Aws(#[from] AwsError),
}

impl From<crate::domain::naming::NotOwned> for StepError {
    fn from(refused: crate::domain::naming::NotOwned) -> Self {
        let crate::domain::naming::NotOwned { resource, owner, advice } = refused;
        Self::NotOwned { resource, owner, advice }
    }
}

impl StepError {
    /// The name `Retry`/`Catch` match on, and `errorType` on Lambda.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::InputInvalid(_) => "InputInvalid",
            Self::ManifestInvalid(_) => "ManifestInvalid",
            Self::NotBootstrapped(_) => "NotBootstrapped",
            Self::StageUnknown { .. } => "StageUnknown",
            Self::StageLocked { .. } => "StageLocked",
            Self::PublishLocked { .. } => "PublishLocked",
            Self::LockLost { .. } => "LockLost",
            Self::ArtifactMissing { .. } => "ArtifactMissing",
            Self::StackFailed { .. } => "StackFailed",
            Self::FunctionUpdateFailed { .. } => "FunctionUpdateFailed",
            Self::Conflict(_) => "Conflict",
            Self::NothingToRollBack { .. } => "NothingToRollBack",
            Self::DeploymentUnknown { .. } => "DeploymentUnknown",
            Self::StageExists { .. } => "StageExists",
            Self::OriginInvalid { .. } => "OriginInvalid",
            Self::NotOwned { .. } => "NotOwned",
            Self::StageChanged { .. } => "StageChanged",
            Self::ServiceLocked { .. } => "ServiceLocked",
            Self::Aws(e) if e.transient => "AwsTransient",
            Self::Aws(_) => "AwsFailed",
        }
    }

    /// Every name [`error_type`](Self::error_type) can return: the state machines may match on
    /// these and on `States.*` only (checked by the definitions' lint test).
    pub const NAMES: &'static [&'static str] = &[
        "InputInvalid",
        "ManifestInvalid",
        "NotBootstrapped",
        "StageUnknown",
        "StageLocked",
        "PublishLocked",
        "LockLost",
        "ArtifactMissing",
        "StackFailed",
        "FunctionUpdateFailed",
        "Conflict",
        "NothingToRollBack",
        "DeploymentUnknown",
        "StageExists",
        "OriginInvalid",
        "NotOwned",
        "StageChanged",
        "ServiceLocked",
        "AwsTransient",
        "AwsFailed",
    ];
}
