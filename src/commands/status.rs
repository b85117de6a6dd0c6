//! `aliasflow status [--stage S]`: what every alias points at as Lambda reports it now, next to
//! what the history recorded, the drift between them per alias (`moved`, `missing`, `function
//! missing`, `stage stack not complete`), and who holds each stage's lock. One `GetFunction` per
//! alias (a second only for a missing alias) and one `DescribeStacks` per stage.

use std::path::Path;

use functions::domain::history::{FunctionRecord, StageRecord, StageState};
use functions::domain::naming;
use functions::error::StepError;
use functions::ports::AliasState;
use functions::steps::acquire_lock::stage_lock;
use serde_json::{json, Value};

use super::{deps, manifest, CliError};
use crate::output::{table, Reply};
use crate::App;

/// One function of one stage.
struct Row {
    stage: String,
    function: String,
    function_name: String,
    region: String,
    alias: AliasState,
    recorded: Option<FunctionRecord>,
    /// Whether the stage stack is `CREATE_COMPLETE` or `UPDATE_COMPLETE`.
    stack_complete: bool,
    lock: Value,
    deployment: Option<u64>,
}

impl Row {
    fn version(&self) -> Option<&str> {
        self.alias.version()
    }

    fn code_sha256(&self) -> Option<&str> {
        match &self.alias {
            AliasState::At { code_sha256, .. } => Some(code_sha256),
            AliasState::FunctionMissing | AliasState::AliasMissing { .. } => None,
        }
    }

    /// How the alias differs from the record, the alias's own drift first; `None`: in place.
    fn drift(&self) -> Option<&'static str> {
        let alias = match (&self.recorded, &self.alias) {
            (None, AliasState::At { .. }) => Some("moved"),
            (None, _) => None,
            (Some(_), AliasState::FunctionMissing) => Some("function missing"),
            (Some(_), AliasState::AliasMissing { .. }) => Some("missing"),
            (Some(recorded), AliasState::At { version, code_sha256, .. }) => {
                (*version != recorded.version || *code_sha256 != recorded.code_sha256).then_some("moved")
            }
        };
        alias.or_else(|| (!self.stack_complete).then_some("stage stack not complete"))
    }
}

/// Reports every live stage, or one.
pub async fn run(file: &Path, only: Option<&str>, app: &App) -> Result<Reply, CliError> {
    let manifest = manifest(file)?;
    let (deps, _) = deps(&manifest, app).await?;
    let service = manifest.service.clone();
    let aws = |e| CliError::aws("status", e);
    let stages: Vec<StageRecord> = match only {
        Some(stage) => {
            manifest.check_stage(stage).map_err(CliError::Manifest)?;
            let record = deps.history.stage(&service, stage).await.map_err(aws)?;
            let record = record.filter(|r| r.state == StageState::Active).ok_or_else(|| {
                let unknown = StepError::StageUnknown { service: service.clone(), stage: stage.to_owned() };
                CliError::step("status", unknown)
            })?;
            vec![record]
        }
        None => deps
            .history
            .stages(&service)
            .await
            .map_err(aws)?
            .into_iter()
            .filter(|r| r.state == StageState::Active)
            .collect(),
    };

    let mut rows = Vec::new();
    for record in &stages {
        let lock = match deps.history.lock(&service, &stage_lock(&record.stage)).await.map_err(aws)? {
            Some(lock) => json!({
                "holder": lock.owner,
                "expires_at": lock.expires_at.to_rfc3339(),
                "expired": lock.expires_at <= deps.clock.now(),
            }),
            None => Value::Null,
        };
        let stack = naming::stage_stack_name(&service, &record.stage).map_err(|e| CliError::Usage(e.to_string()))?;
        let stack = deps.regions.stacks(&record.region).describe(&stack).await.map_err(aws)?;
        let stack_complete = stack.is_some_and(|s| matches!(s.status.as_str(), "CREATE_COMPLETE" | "UPDATE_COMPLETE"));
        let recorded = match record.active {
            Some(id) => deps.history.deployment(&service, &record.stage, id).await.map_err(aws)?.map(|d| d.functions),
            None => None,
        }
        .unwrap_or_default();
        for name in manifest.functions.keys() {
            let per_stage = manifest.is_instance_per_stage(name, &record.stage);
            let recorded = recorded.get(name).cloned();
            let (function_name, region) = match &recorded {
                Some(r) => (r.function_name.clone(), r.region.clone()),
                None => (
                    naming::function_name(&service, per_stage.then_some(record.stage.as_str()), name)
                        .map_err(|e| CliError::Usage(e.to_string()))?,
                    if per_stage { record.region.clone() } else { manifest.region.clone() },
                ),
            };
            let alias = deps.regions.functions(&region).alias(&function_name, &record.stage).await.map_err(aws)?;
            rows.push(Row {
                stage: record.stage.clone(),
                function: name.clone(),
                function_name,
                region,
                alias,
                recorded,
                stack_complete,
                lock: lock.clone(),
                deployment: record.active,
            });
        }
    }
    Ok(reply(&service, &rows))
}

fn reply(service: &str, rows: &[Row]) -> Reply {
    let json = Value::Array(
        rows.iter()
            .map(|row| {
                json!({
                    "stage": row.stage,
                    "function": row.function,
                    "function_name": row.function_name,
                    "region": row.region,
                    "alias": row.stage,
                    "version": row.version(),
                    "code_sha256": row.code_sha256(),
                    "recorded_version": row.recorded.as_ref().map(|r| &r.version),
                    "recorded_code_sha256": row.recorded.as_ref().map(|r| &r.code_sha256),
                    "drift": row.drift(),
                    "deployment": row.deployment,
                    "lock": row.lock,
                })
            })
            .collect(),
    );
    let dash = || "-".to_owned();
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            vec![
                row.stage.clone(),
                row.function_name.clone(),
                row.version().map_or_else(dash, str::to_owned),
                row.code_sha256().map_or_else(dash, |sha| sha.chars().take(12).collect()),
                row.recorded.as_ref().map_or_else(dash, |r| r.version.clone()),
                row.drift().unwrap_or("ok").to_owned(),
                match row.lock.get("holder").and_then(Value::as_str) {
                    Some(holder) => {
                        format!("locked by {holder} until {}", row.lock["expires_at"].as_str().unwrap_or_default())
                    }
                    None => String::new(),
                },
            ]
        })
        .collect();
    let text = if rows.is_empty() {
        format!("service {service} has no live stage")
    } else {
        format!(
            "status of {service}\n{}",
            table(&["stage", "function", "version", "code", "recorded", "drift", "lock"], &table_rows)
        )
    };
    Reply::new(json, text)
}
