//! `RecordFailure` (the Catch path): records the failed deployment with its error, after
//! `RestoreAliases` put the aliases back, so the history says what happened and where every
//! alias points. The stage's active deployment stays what it was. It commits only while this
//! execution holds the stage lock (`LockLost` otherwise: the new holder owns the stage). Safe
//! to repeat.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::history::{Deployment, DeploymentKind, DeploymentStatus, StageRecord};
use crate::error::StepError;
use crate::ports::Deps;
use crate::steps::record_deployment::{commit, committed, kind, next_stage_record};
use crate::steps::restore_aliases;
use crate::steps::state::{FunctionPlan, Source, StackResult};

/// The error Step Functions caught (`ResultPath: $.error`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaughtError {
    /// The error name.
    #[serde(rename = "Error")]
    pub error: String,
    /// The cause.
    #[serde(rename = "Cause", default)]
    pub cause: String,
}

/// What `RecordFailure` reads of the state.
#[derive(Debug, Deserialize)]
pub struct Input {
    /// `deploy`, `rollback`, `reset` or `clone`.
    pub operation: String,
    /// The execution.
    pub owner: String,
    /// The service.
    pub service: String,
    /// The stage.
    pub stage: String,
    /// The stage's region.
    pub region: String,
    /// The stage as last recorded.
    pub stage_record: Option<StageRecord>,
    /// The id this deployment gets.
    pub deployment_id: u64,
    /// The plan, with what each alias pointed at before.
    #[serde(default)]
    pub functions: Vec<FunctionPlan>,
    /// `EnsureStageStack`'s result, if it got that far: the stack did change.
    #[serde(default)]
    pub stage_stack: Option<StackResult>,
    /// What failed.
    pub error: CaughtError,
    /// `RestoreAliases`' result, if it ran.
    #[serde(default)]
    pub restore: Option<restore_aliases::Output>,
    /// `RestoreAliases`' own failure, if it failed.
    #[serde(default)]
    pub restore_error: Option<CaughtError>,
    /// Rollback, reset and clone: the deployment the functions were to come from.
    #[serde(default)]
    pub source: Option<Source>,
}

/// The failed deployment as recorded.
#[derive(Debug, Serialize, Deserialize)]
pub struct Output {
    /// Its id.
    pub id: u64,
}

/// Records the failure.
#[tracing::instrument(name = "RecordFailure", skip_all, fields(stage = %input.stage, id = input.deployment_id))]
pub async fn run(input: Input, deps: &Deps) -> Result<Output, StepError> {
    if committed(&input.service, &input.stage, input.deployment_id, &input.owner, deps).await? {
        tracing::warn!(id = input.deployment_id, "the deployment was committed before the failure: nothing to record");
        return Ok(Output { id: input.deployment_id });
    }
    let mut error = format!("{}: {}", input.error.error, input.error.cause);
    if let Some(restore) = input.restore.as_ref().filter(|r| !r.failed.is_empty()) {
        error.push_str(&format!("; aliases not restored: {}", restore.failed.join(", ")));
    }
    if let Some(restore_error) = &input.restore_error {
        error.push_str(&format!("; restoring aliases failed: {}: {}", restore_error.error, restore_error.cause));
    }
    let kind = kind(&input.operation)?;
    // After the restore the aliases point where the active deployment recorded them. Not after
    // a remove: the aliases it deleted stay deleted (nothing restores them), so the row claims
    // no function; the stage stays live at its active deployment, `status` shows the missing
    // aliases and the next `remove` finishes.
    let functions: BTreeMap<_, _> = match kind {
        DeploymentKind::Remove => BTreeMap::new(),
        _ => input.functions.iter().filter_map(|f| f.previous.clone().map(|p| (f.name.clone(), p))).collect(),
    };
    let deployment = Deployment {
        service: input.service.clone(),
        stage: input.stage.clone(),
        id: input.deployment_id,
        kind,
        status: DeploymentStatus::Failed,
        time: deps.clock.now(),
        execution: input.owner.clone(),
        functions,
        rollback_to: None,
        stage_template_hash: input.stage_stack.as_ref().map(|s| s.hash.clone()),
        origin: input.source.as_ref().map(Source::origin),
        error: Some(error),
    };
    let mut stage = next_stage_record(
        input.stage_record.as_ref(),
        &input.service,
        &input.stage,
        &input.region,
        input.deployment_id,
        input.stage_stack.as_ref(),
    );
    if input.stage_stack.is_none() {
        // Plan's hash may be stale: a stack change that failed midway cleared the stored one
        // (so the next deploy converges the stack), and writing Plan's back would undo that.
        let stored = deps.history.stage(&input.service, &input.stage).await?;
        stage.template_hash = stored.and_then(|r| r.template_hash);
    }
    commit(&deployment, &stage, deps).await?;
    tracing::warn!(id = deployment.id, error = deployment.error.as_deref().unwrap_or_default(), "failure recorded");
    Ok(Output { id: deployment.id })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::Utc;

    use super::*;
    use crate::domain::history::DeploymentKind;
    use crate::fakes::FakeAws;
    use crate::ports::History;
    use crate::steps::fixtures::{deployed, record, REGION, SERVICE};
    use crate::steps::state::ArtifactRef;

    const OWNER: &str = "exec-failing";

    async fn arranged(operation: &str) -> (FakeAws, Input) {
        let aws = FakeAws::default();
        let api = record("dev", "shop-api", "1", "a.zip");
        deployed(&aws, "dev", 1, None, &[("api", api.clone())]).await;
        let stage_record = aws.history.stage(SERVICE, "dev").await.unwrap();
        aws.history.acquire(SERVICE, "stage:dev", OWNER, Duration::from_secs(60), Utc::now()).await.unwrap();
        let input = Input {
            operation: operation.into(),
            owner: OWNER.into(),
            service: SERVICE.into(),
            stage: "dev".into(),
            region: REGION.into(),
            stage_record,
            deployment_id: 2,
            functions: vec![FunctionPlan {
                name: "api".into(),
                function_name: "shop-api".into(),
                region: REGION.into(),
                artifact: ArtifactRef { key: "a.zip".into(), code_sha256: "sha-of-a.zip".into() },
                previous: Some(api),
                known: Vec::new(),
            }],
            stage_stack: None,
            error: CaughtError { error: "AwsFailed".into(), cause: "DeleteStack on shop-dev: boom".into() },
            restore: None,
            restore_error: None,
            source: None,
        };
        (aws, input)
    }

    #[tokio::test]
    async fn a_failed_remove_claims_no_alias_back_and_the_stage_stays_live() {
        let (aws, input) = arranged("remove").await;
        run(input, &aws.deps()).await.unwrap();
        let row = aws.history.deployment(SERVICE, "dev", 2).await.unwrap().unwrap();
        assert_eq!((row.kind, row.status), (DeploymentKind::Remove, DeploymentStatus::Failed));
        assert!(row.functions.is_empty(), "the deleted aliases are not back: {:?}", row.functions);
        let stage = aws.history.stage(SERVICE, "dev").await.unwrap().unwrap();
        assert_eq!((stage.state, stage.active), (crate::domain::history::StageState::Active, Some(1)));
    }

    #[tokio::test]
    async fn a_failure_keeps_the_stored_template_hash_not_the_plans() {
        let (aws, input) = arranged("deploy").await;
        // EnsureStageStack cleared the stored hash before it changed the stack, then failed.
        let mut stored = aws.history.stage(SERVICE, "dev").await.unwrap().unwrap();
        stored.template_hash = None;
        aws.history.put_stage(&stored).await.unwrap();
        run(input, &aws.deps()).await.unwrap();
        let stage = aws.history.stage(SERVICE, "dev").await.unwrap().unwrap();
        assert_eq!(stage.template_hash, None, "the next deploy converges the stack");
        let row = aws.history.deployment(SERVICE, "dev", 2).await.unwrap().unwrap();
        assert_eq!(row.functions.len(), 1, "a deploy's restored aliases are recorded");
    }

    #[tokio::test]
    async fn without_the_lock_nothing_is_recorded() {
        let (aws, input) = arranged("deploy").await;
        assert!(aws.history.release(SERVICE, "stage:dev", OWNER).await.unwrap());
        let before = aws.history.snapshot();
        assert_eq!(run(input, &aws.deps()).await.unwrap_err().error_type(), "LockLost");
        assert_eq!(aws.history.snapshot(), before);
    }
}
