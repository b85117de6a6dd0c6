//! `RecordDeployment`: writes the stage's new deployment and its stage record in one
//! transaction, then prunes deployments beyond `retain`. Safe to repeat: the same execution
//! writing the same deployment again changes nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::history::{Deployment, DeploymentKind, DeploymentStatus, StageRecord, StageState};
use crate::domain::manifest::Manifest;
use crate::error::StepError;
use crate::ports::Deps;
use crate::steps::state::{Published, Source, StackResult};
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
    /// Its id.
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

/// Records the deployment.
#[tracing::instrument(name = "RecordDeployment", skip_all, fields(stage = %input.stage, id = input.deployment_id))]
pub async fn run(input: Input, deps: &Deps) -> Result<Output, StepError> {
    let now = deps.clock.now();
    let kind = kind(&input.operation)?;
    let previous_active = input.stage_record.as_ref().filter(|r| r.state == StageState::Active).and_then(|r| r.active);
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
    stage.active = Some(input.deployment_id);
    stage.last_deployed_at = Some(now);
    if let Some(wiring) = &input.wiring {
        stage.wiring_hash = Some(wiring.hash.clone());
    }
    deps.history.record(&deployment, &stage).await?;
    let pruned = prune(&input, deps).await?;
    tracing::info!(id = deployment.id, ?pruned, "deployment recorded");
    let published = input.published.iter().filter(|p| p.new_version).count();
    Ok(Output {
        id: deployment.id,
        kind,
        status: DeploymentStatus::Succeeded,
        published,
        unchanged: input.published.len() - published,
        pruned,
        origin: deployment.origin,
    })
}

/// Deletes the stage's deployments beyond the newest `retain` (never the active one).
async fn prune(input: &Input, deps: &Deps) -> Result<Vec<u64>, StepError> {
    let retain = usize::try_from(input.manifest.retain).unwrap_or(usize::MAX);
    if input.deployment_id <= u64::try_from(retain).unwrap_or(u64::MAX) {
        return Ok(Vec::new());
    }
    let mut seen = 0usize;
    let mut doomed = Vec::new();
    let mut start = None;
    loop {
        let page = deps.history.deployments(&input.service, &input.stage, 100, start).await?;
        for deployment in page.items {
            seen += 1;
            if seen > retain && deployment.id != input.deployment_id {
                doomed.push(deployment.id);
            }
        }
        match page.next {
            Some(next) => start = Some(next),
            None => break,
        }
    }
    if !doomed.is_empty() {
        deps.history.delete_deployments(&input.service, &input.stage, &doomed).await?;
    }
    Ok(doomed)
}
