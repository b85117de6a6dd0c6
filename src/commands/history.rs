//! `aliasflow history --stage S`: the stage's retained deployments, newest first.

use std::path::Path;

use functions::domain::history::{Deployment, DeploymentStatus, StageState};
use functions::error::StepError;
use serde_json::{json, Value};

use super::{deps, manifest_for_stage, CliError};
use crate::output::{table, Reply};
use crate::App;

/// Lists the deployments.
pub async fn run(file: &Path, stage: &str, app: &App) -> Result<Reply, CliError> {
    let manifest = manifest_for_stage(file, stage)?;
    let (deps, _) = deps(&manifest, app).await?;
    let record = deps.history.stage(&manifest.service, stage).await.map_err(|e| CliError::aws("history", e))?;
    if record.is_none() {
        let unknown = StepError::StageUnknown { service: manifest.service.clone(), stage: stage.to_owned() };
        return Err(CliError::step("history", unknown));
    }
    let mut deployments = Vec::new();
    let mut start = None;
    loop {
        let page = deps
            .history
            .deployments(&manifest.service, stage, 100, start)
            .await
            .map_err(|e| CliError::aws("history", e))?;
        deployments.extend(page.items);
        match page.next {
            Some(next) => start = Some(next),
            None => break,
        }
    }
    let removed = record.as_ref().is_some_and(|r| r.state == StageState::Removed);
    let active = record.and_then(|r| r.active);
    let json = Value::Array(deployments.iter().map(|d| to_json(d, active, removed)).collect());
    let rows: Vec<Vec<String>> = deployments
        .iter()
        .map(|d| {
            let versions: Vec<String> = d.functions.iter().map(|(name, f)| format!("{name}:{}", f.version)).collect();
            vec![
                format!("{}{}", d.id, if Some(d.id) == active { " *" } else { "" }),
                d.kind.as_str().to_owned(),
                status(d.status).to_owned(),
                d.time.format("%Y-%m-%d %H:%M:%S").to_string(),
                d.origin.clone().unwrap_or_default(),
                versions.join(" "),
                d.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let text = format!(
        "history of {} stage {stage} ({})\n{}",
        manifest.service,
        if removed { "removed: its deployments hold no versions" } else { "* active" },
        table(&["id", "kind", "status", "time", "origin", "versions", "error"], &rows)
    );
    Ok(Reply::new(json, text))
}

fn status(status: DeploymentStatus) -> &'static str {
    match status {
        DeploymentStatus::Succeeded => "succeeded",
        DeploymentStatus::Failed => "failed",
    }
}

/// One deployment as `--output json` shows it; `removed`: its stage was removed.
fn to_json(deployment: &Deployment, active: Option<u64>, removed: bool) -> Value {
    let functions: Vec<Value> = deployment
        .functions
        .iter()
        .map(|(name, f)| {
            json!({
                "function": name,
                "function_name": f.function_name,
                "alias": f.alias,
                "version": f.version,
                "code_sha256": f.code_sha256,
                "config_hash": f.config_hash,
                "artifact_key": f.artifact_key,
                "region": f.region,
            })
        })
        .collect();
    json!({
        "id": deployment.id,
        "kind": deployment.kind.as_str(),
        "status": status(deployment.status),
        "time": deployment.time.to_rfc3339(),
        "active": Some(deployment.id) == active,
        "removed": removed,
        "execution": deployment.execution,
        "origin": deployment.origin,
        "rollback_to": deployment.rollback_to,
        "error": deployment.error,
        "functions": functions,
    })
}
