//! `RecordRemoval` (remove): records the stage's last row, a deployment of kind `remove`, and
//! marks the stage removed, in one transaction, only while this execution holds the stage lock. Its earlier rows stay in the history, but a
//! removed stage holds no versions any more, so garbage collection may delete what only they
//! referenced. Safe to repeat: the same execution writing the same row again changes nothing.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::domain::history::{Deployment, DeploymentKind, DeploymentStatus, StageRecord, StageState};
use crate::error::StepError;
use crate::ports::Deps;
use crate::steps::record_deployment::{commit, Output};

/// What `RecordRemoval` reads of the state.
#[derive(Debug, Deserialize)]
pub struct Input {
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
    /// The id the removal row gets.
    pub deployment_id: u64,
}

/// Records the removal.
#[tracing::instrument(name = "RecordRemoval", skip_all, fields(stage = %input.stage, id = input.deployment_id))]
pub async fn run(input: Input, deps: &Deps) -> Result<Output, StepError> {
    let deployment = Deployment {
        service: input.service.clone(),
        stage: input.stage.clone(),
        id: input.deployment_id,
        kind: DeploymentKind::Remove,
        status: DeploymentStatus::Succeeded,
        time: deps.clock.now(),
        execution: input.owner.clone(),
        functions: BTreeMap::new(),
        rollback_to: None,
        stage_template_hash: None,
        origin: None,
        error: None,
    };
    let previous = input.stage_record.unwrap_or_else(|| StageRecord::new(&input.service, &input.stage, &input.region));
    let stage = StageRecord {
        state: StageState::Removed,
        active: None,
        next_id: previous.next_id.max(input.deployment_id + 1),
        template_hash: None,
        outputs: BTreeMap::new(),
        wiring_hash: None,
        ..previous
    };
    commit(&deployment, &stage, deps).await?;
    tracing::info!(id = deployment.id, "stage removed");
    Ok(Output {
        id: deployment.id,
        kind: DeploymentKind::Remove,
        status: DeploymentStatus::Succeeded,
        published: 0,
        unchanged: 0,
        pruned: Vec::new(),
        origin: None,
        recorded: true,
        warnings: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::FakeAws;
    use crate::ports::History;
    use crate::steps::fixtures::{deployed, record, REGION, SERVICE};

    #[tokio::test]
    async fn the_stage_is_marked_removed_with_a_removal_row_on_top_of_its_kept_history() {
        let aws = FakeAws::default();
        deployed(&aws, "dev", 1, None, &[("api", record("dev", "shop-api", "1", "a.zip"))]).await;
        let stage_record = aws.history.stage(SERVICE, "dev").await.unwrap();
        let input = || Input {
            owner: "exec-remove".into(),
            service: SERVICE.into(),
            stage: "dev".into(),
            region: REGION.into(),
            stage_record: stage_record.clone(),
            deployment_id: 2,
        };
        let lease = std::time::Duration::from_secs(60);
        aws.history.acquire(SERVICE, "stage:dev", "exec-remove", lease, chrono::Utc::now()).await.unwrap();
        run(input(), &aws.deps()).await.unwrap();
        run(input(), &aws.deps()).await.unwrap();
        let stage = aws.history.stage(SERVICE, "dev").await.unwrap().unwrap();
        assert_eq!((stage.state, stage.active, stage.next_id), (StageState::Removed, None, 3));
        let rows = aws.history.deployments(SERVICE, "dev", 10, None).await.unwrap().items;
        let kinds: Vec<DeploymentKind> = rows.iter().map(|d| d.kind).collect();
        assert_eq!(kinds, [DeploymentKind::Remove, DeploymentKind::Deploy]);
    }

    #[tokio::test]
    async fn without_the_lock_nothing_is_recorded() {
        let aws = FakeAws::default();
        deployed(&aws, "dev", 1, None, &[]).await;
        let stage_record = aws.history.stage(SERVICE, "dev").await.unwrap();
        let lease = std::time::Duration::from_secs(60);
        aws.history.acquire(SERVICE, "stage:dev", "exec-other", lease, chrono::Utc::now()).await.unwrap();
        let input = Input {
            owner: "exec-remove".into(),
            service: SERVICE.into(),
            stage: "dev".into(),
            region: REGION.into(),
            stage_record: stage_record.clone(),
            deployment_id: 2,
        };
        let err = run(input, &aws.deps()).await.unwrap_err();
        assert_eq!(err.error_type(), "LockLost");
        assert_eq!(aws.history.stage(SERVICE, "dev").await.unwrap(), stage_record);
        assert_eq!(aws.history.deployments(SERVICE, "dev", 10, None).await.unwrap().items.len(), 1);
    }
}
