//! `RecordDeployment`: writes the stage's new deployment and its stage record in one
//! transaction, only while this execution holds the stage lock (`LockLost` otherwise, writing
//! nothing), then prunes deployments beyond `retain`. The commit is the deployment: pruning
//! after it is best-effort, reported as warnings. A deploy that changed nothing writes no row
//! (it refreshes only the stage's `last_deployed_at`) and reports the active deployment. Safe to
//! repeat: the same execution writing the same deployment again changes nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::history::{
    prunable, same_functions, Deployment, DeploymentKind, DeploymentStatus, FunctionRecord, StageRecord, StageState,
};
use crate::domain::manifest::Manifest;
use crate::error::StepError;
use crate::ports::{Commit, Deps};
use crate::steps::acquire_lock::stage_lock;
use crate::steps::state::{FunctionPlan, Published, Source, StackResult};
use crate::steps::wire_stage;

/// What `RecordDeployment` reads of the state.
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
    /// The manifest (for `retain`).
    pub manifest: Manifest,
    /// The stage as last recorded.
    pub stage_record: Option<StageRecord>,
    /// The id this deployment gets.
    pub deployment_id: u64,
    /// The plan, with what each alias pointed at before (to tell a deploy that changed nothing).
    #[serde(default)]
    pub functions: Vec<FunctionPlan>,
    /// `EnsureStageStack`'s result, when the operation brought the stack.
    #[serde(default)]
    pub stage_stack: Option<StackResult>,
    /// `WireStage`'s result.
    #[serde(default)]
    pub wiring: Option<wire_stage::Output>,
    /// Where each alias points now.
    pub published: Vec<Published>,
    /// Rollback, reset and clone: the deployment the functions came from.
    #[serde(default)]
    pub source: Option<Source>,
}

/// The deployment as recorded.
#[derive(Debug, Serialize, Deserialize)]
pub struct Output {
    /// Its id; for a deploy that changed nothing, the active deployment's id (the stage's
    /// deployment now).
    pub id: u64,
    /// What it did.
    pub kind: DeploymentKind,
    /// `succeeded`.
    pub status: DeploymentStatus,
    /// Functions that got a new version.
    pub published: usize,
    /// Functions that kept or reused a version.
    pub unchanged: usize,
    /// Deployments pruned beyond `retain`.
    pub pruned: Vec<u64>,
    /// Rollback, reset and clone: where the functions came from, e.g. `prod#4`.
    #[serde(default)]
    pub origin: Option<String>,
    /// `false` for a deploy that changed nothing: no row was written, the stage stays at `id`.
    #[serde(default = "recorded_by_default")]
    pub recorded: bool,
    /// What went wrong after the commit (pruning), which the commit stands despite.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

fn recorded_by_default() -> bool {
    true
}

/// The deployment kind of an operation name.
pub fn kind(operation: &str) -> Result<DeploymentKind, StepError> {
    match operation {
        "deploy" => Ok(DeploymentKind::Deploy),
        "rollback" => Ok(DeploymentKind::Rollback),
        "reset" => Ok(DeploymentKind::Reset),
        "clone" => Ok(DeploymentKind::Clone),
        "remove" => Ok(DeploymentKind::Remove),
        other => Err(StepError::InputInvalid(format!("operation {other} records no deployment"))),
    }
}

/// The stage record after a deployment (succeeded or not) of this execution.
pub fn next_stage_record(
    previous: Option<&StageRecord>,
    service: &str,
    stage: &str,
    region: &str,
    deployment_id: u64,
    stage_stack: Option<&StackResult>,
) -> StageRecord {
    let mut record = previous
        .filter(|r| r.state == StageState::Active)
        .cloned()
        .unwrap_or_else(|| StageRecord::new(service, stage, region));
    record.next_id = record.next_id.max(previous.map_or(1, |r| r.next_id)).max(deployment_id + 1);
    record.region = region.to_owned();
    if let Some(stack) = stage_stack {
        record.template_hash = Some(stack.hash.clone());
        record.outputs = stack.outputs.clone();
    }
    record
}

/// Writes `deployment` and `stage` while this execution holds the stage lock, or `LockLost`.
pub async fn commit(deployment: &Deployment, stage: &StageRecord, deps: &Deps) -> Result<(), StepError> {
    match deps.history.record(deployment, stage, &stage_lock(&deployment.stage)).await? {
        Commit::Written => Ok(()),
        Commit::LockLost => {
            Err(StepError::LockLost { stage: deployment.stage.clone(), owner: deployment.execution.clone() })
        }
    }
}

/// Whether this execution already committed deployment `id` of the stage: a commit whose answer
/// was lost (the step timed out after it, and its retries failed) sends the execution to its
/// Catch, where nothing may move the aliases back or record the deployment as failed.
pub async fn committed(service: &str, stage: &str, id: u64, owner: &str, deps: &Deps) -> Result<bool, StepError> {
    let active =
        deps.history.stage(service, stage).await?.filter(|r| r.state == StageState::Active).and_then(|r| r.active);
    if active != Some(id) {
        return Ok(false);
    }
    let deployment = deps.history.deployment(service, stage, id).await?;
    Ok(deployment.is_some_and(|d| d.execution == owner && d.status == DeploymentStatus::Succeeded))
}

/// Records the deployment.
#[tracing::instrument(name = "RecordDeployment", skip_all, fields(stage = %input.stage, id = input.deployment_id))]
pub async fn run(input: Input, deps: &Deps) -> Result<Output, StepError> {
    let now = deps.clock.now();
    let kind = kind(&input.operation)?;
    let live = input.stage_record.as_ref().filter(|r| r.state == StageState::Active);
    let previous_active = live.and_then(|r| r.active);
    let functions: BTreeMap<_, _> = input.published.iter().map(|p| (p.name.clone(), p.record.clone())).collect();
    let deployment = Deployment {
        service: input.service.clone(),
        stage: input.stage.clone(),
        id: input.deployment_id,
        kind,
        status: DeploymentStatus::Succeeded,
        time: now,
        execution: input.owner.clone(),
        functions,
        // A rollback returns to where its target would have, so the next one walks further back.
        rollback_to: match (&input.source, kind) {
            (Some(source), DeploymentKind::Rollback) => source.rollback_to,
            _ => previous_active,
        },
        stage_template_hash: input
            .stage_stack
            .as_ref()
            .map(|s| s.hash.clone())
            .or_else(|| input.stage_record.as_ref().and_then(|r| r.template_hash.clone())),
        origin: input.source.as_ref().map(Source::origin),
        error: None,
    };
    let mut stage = next_stage_record(
        input.stage_record.as_ref(),
        &input.service,
        &input.stage,
        &input.region,
        input.deployment_id,
        input.stage_stack.as_ref(),
    );
    stage.last_deployed_at = Some(now);
    if let Some(wiring) = &input.wiring {
        stage.wiring_hash = Some(wiring.hash.clone());
    }
    let published = input.published.iter().filter(|p| p.new_version).count();
    let mut output = Output {
        id: deployment.id,
        kind,
        status: DeploymentStatus::Succeeded,
        published,
        unchanged: input.published.len() - published,
        pruned: Vec::new(),
        origin: deployment.origin.clone(),
        recorded: true,
        warnings: Vec::new(),
    };
    if let Some(active) = unchanged_from(&input, &deployment, deps).await? {
        // Nothing to roll back from: no row, so a rollback moves to different code. The stage
        // record still says when it was last deployed (`ttl` counts from there).
        stage.active = Some(active);
        stage.next_id = live.map_or(stage.next_id, |r| r.next_id);
        match deps.history.put_stage_held(&stage, &stage_lock(&input.stage), &input.owner).await? {
            Commit::Written => {}
            Commit::LockLost => return Err(StepError::LockLost { stage: input.stage, owner: input.owner }),
        }
        tracing::info!(active, "nothing changed: no deployment recorded");
        return Ok(Output { id: active, recorded: false, ..output });
    }
    stage.active = Some(input.deployment_id);
    commit(&deployment, &stage, deps).await?;
    // Committed: whatever fails from here on is a warning, never a failure of the deployment.
    match prune(&input, deps).await {
        Ok(pruned) => output.pruned = pruned,
        Err(e) => {
            tracing::warn!(error = %e, "pruning beyond retain failed; the next deployment prunes them");
            output.warnings.push(format!("pruning old deployments failed (the next deployment retries): {e}"));
        }
    }
    tracing::info!(id = deployment.id, pruned = ?output.pruned, "deployment recorded");
    Ok(output)
}

/// The active deployment's id when this deploy changes nothing: the same records for the same
/// functions, and the stage template and wiring as they were. Only a deploy qualifies: a
/// rollback, reset or clone says where the code came from even when it is the same.
async fn unchanged_from(input: &Input, deployment: &Deployment, deps: &Deps) -> Result<Option<u64>, StepError> {
    let Some(live) = input.stage_record.as_ref().filter(|r| r.state == StageState::Active) else { return Ok(None) };
    let Some(active) = live.active else { return Ok(None) };
    let same_stack = input.stage_stack.as_ref().is_none_or(|s| live.template_hash.as_ref() == Some(&s.hash));
    let same_wiring = input.wiring.as_ref().is_none_or(|w| live.wiring_hash.as_ref() == Some(&w.hash));
    // The plan knows what each alias pointed at: a changed function needs no read to tell.
    let previous: BTreeMap<String, FunctionRecord> =
        input.functions.iter().filter_map(|f| f.previous.clone().map(|p| (f.name.clone(), p))).collect();
    if deployment.kind != DeploymentKind::Deploy
        || !same_stack
        || !same_wiring
        || !same_functions(&previous, &deployment.functions)
    {
        return Ok(None);
    }
    // The active deployment may hold functions the plan no longer lists.
    let recorded = deps.history.deployment(&input.service, &input.stage, active).await?;
    Ok(recorded.filter(|d| d.same_code(deployment)).map(|_| active))
}

/// Deletes the stage's deployments beyond `retain` rollback targets (never the active one).
async fn prune(input: &Input, deps: &Deps) -> Result<Vec<u64>, StepError> {
    let retain = usize::try_from(input.manifest.retain).unwrap_or(usize::MAX);
    // Fewer rows than `retain` hold fewer targets than that: nothing to prune, nothing to read.
    if input.deployment_id <= u64::try_from(retain).unwrap_or(u64::MAX) {
        return Ok(Vec::new());
    }
    let mut rows = Vec::new();
    let mut start = None;
    loop {
        let page = deps.history.deployments(&input.service, &input.stage, 100, start).await?;
        rows.extend(page.items);
        match page.next {
            Some(next) => start = Some(next),
            None => break,
        }
    }
    let doomed = prunable(&rows, retain, Some(input.deployment_id));
    if !doomed.is_empty() {
        deps.history.delete_deployments(&input.service, &input.stage, &doomed).await?;
    }
    Ok(doomed)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::Utc;

    use super::*;
    use crate::fakes::FakeAws;
    use crate::ports::History;
    use crate::steps::fixtures::{deployed, manifest, record, REGION, SERVICE};
    use crate::steps::state::ArtifactRef;

    const OWNER: &str = "exec-new";

    /// A deploy of dev as deployment 2 that points `api` at `published` (the stage at
    /// deployment 1 had `api` at version 1).
    async fn arranged(published: FunctionRecord) -> (FakeAws, Input) {
        let aws = FakeAws::default();
        let before = record("dev", "shop-api", "1", "a.zip");
        deployed(&aws, "dev", 1, None, &[("api", before.clone())]).await;
        let stage_record = aws.history.stage(SERVICE, "dev").await.unwrap();
        let input = Input {
            operation: "deploy".into(),
            owner: OWNER.into(),
            service: SERVICE.into(),
            stage: "dev".into(),
            region: REGION.into(),
            manifest: manifest(),
            stage_record,
            deployment_id: 2,
            functions: vec![FunctionPlan {
                name: "api".into(),
                function_name: "shop-api".into(),
                region: REGION.into(),
                artifact: ArtifactRef {
                    key: published.artifact_key.clone(),
                    code_sha256: published.code_sha256.clone(),
                },
                previous: Some(before),
                known: Vec::new(),
            }],
            stage_stack: Some(StackResult { hash: "template-1".into(), ..StackResult::default() }),
            wiring: None,
            published: vec![Published { name: "api".into(), new_version: false, record: published }],
            source: None,
        };
        let lease = Duration::from_secs(60);
        aws.history.acquire(SERVICE, "stage:dev", OWNER, lease, Utc::now()).await.unwrap();
        (aws, input)
    }

    #[tokio::test]
    async fn a_lock_taken_by_another_owner_commits_nothing_and_fails_with_lock_lost() {
        let (aws, input) = arranged(record("dev", "shop-api", "2", "b.zip")).await;
        aws.history.tables.lock().unwrap().locks.insert(
            (SERVICE.into(), "stage:dev".into()),
            crate::domain::history::Lock { owner: "exec-other".into(), expires_at: Utc::now() },
        );
        let before = aws.history.snapshot();
        let err = run(input, &aws.deps()).await.unwrap_err();
        assert_eq!(err.error_type(), "LockLost");
        assert_eq!(aws.history.snapshot(), before, "nothing written");
    }

    #[tokio::test]
    async fn a_failed_prune_is_a_warning_and_the_commit_stands() {
        let (aws, mut input) = arranged(record("dev", "shop-api", "2", "b.zip")).await;
        input.manifest.retain = 1;
        aws.history.fail_next("delete_deployments", 1, "AccessDeniedException");
        let output = run(input, &aws.deps()).await.unwrap();
        assert_eq!((output.id, output.recorded), (2, true));
        assert_eq!(output.warnings.len(), 1, "{:?}", output.warnings);
        assert!(output.warnings[0].contains("AccessDeniedException"), "{:?}", output.warnings);
        let stage = aws.history.stage(SERVICE, "dev").await.unwrap().unwrap();
        assert_eq!(stage.active, Some(2));
        assert_eq!(
            aws.history.deployments(SERVICE, "dev", 10, None).await.unwrap().items.len(),
            2,
            "kept: pruned next time"
        );
    }

    #[tokio::test]
    async fn a_deploy_that_changes_nothing_records_no_row_and_refreshes_the_stage() {
        let (aws, input) = arranged(record("dev", "shop-api", "1", "a.zip")).await;
        let before = aws.history.stage(SERVICE, "dev").await.unwrap().unwrap();
        let output = run(input, &aws.deps()).await.unwrap();
        assert_eq!((output.id, output.recorded), (1, false));
        assert_eq!(aws.history.deployments(SERVICE, "dev", 10, None).await.unwrap().items.len(), 1);
        let stage = aws.history.stage(SERVICE, "dev").await.unwrap().unwrap();
        assert_eq!((stage.active, stage.next_id), (Some(1), before.next_id));
        assert!(stage.last_deployed_at > before.last_deployed_at, "ttl counts from this deploy");
    }

    #[tokio::test]
    async fn the_same_code_with_a_changed_stack_or_a_function_gone_is_recorded() {
        let (aws, mut input) = arranged(record("dev", "shop-api", "1", "a.zip")).await;
        input.stage_stack = Some(StackResult { hash: "template-2".into(), ..StackResult::default() });
        assert!(run(input, &aws.deps()).await.unwrap().recorded, "the stack changed");

        let aws = FakeAws::default();
        let api = record("dev", "shop-api", "1", "a.zip");
        let worker = record("dev", "shop-worker", "1", "w.zip");
        deployed(&aws, "dev", 1, None, &[("api", api.clone()), ("worker", worker)]).await;
        let (_, mut input) = arranged(api).await;
        input.stage_record = aws.history.stage(SERVICE, "dev").await.unwrap();
        aws.history.acquire(SERVICE, "stage:dev", OWNER, Duration::from_secs(60), Utc::now()).await.unwrap();
        let output = run(input, &aws.deps()).await.unwrap();
        assert!(output.recorded, "the manifest dropped worker: the stage's code changed");
    }
}
