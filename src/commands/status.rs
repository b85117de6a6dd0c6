//! `aliasflow status [--stage S]`: what every alias points at as Lambda reports it now, next to
//! what the history recorded (drift), and who holds each stage's lock.

use std::collections::BTreeMap;
use std::path::Path;

use functions::domain::history::{FunctionRecord, StageRecord, StageState};
use functions::domain::naming;
use functions::error::StepError;
use functions::ports::{AliasTarget, Deps, VersionInfo};
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
    version: Option<String>,
    code_sha256: Option<String>,
    recorded: Option<FunctionRecord>,
    lock: Value,
    deployment: Option<u64>,
}

impl Row {
    fn drift(&self) -> bool {
        match &self.recorded {
            Some(recorded) => {
                self.version.as_deref() != Some(recorded.version.as_str())
                    || self.code_sha256.as_deref() != Some(recorded.code_sha256.as_str())
            }
            None => self.version.is_some(),
        }
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

    let mut lambda = Cache::default();
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
            let (aliases, versions) = lambda.get(&deps, &region, &function_name).await.map_err(aws)?;
            let version = aliases.iter().find(|a| a.alias == record.stage).map(|a| a.version.clone());
            let code_sha256 = version
                .as_ref()
                .and_then(|v| versions.iter().find(|info| &info.version == v))
                .map(|info| info.code_sha256.clone());
            rows.push(Row {
                stage: record.stage.clone(),
                function: name.clone(),
                function_name,
                region,
                version,
                code_sha256,
                recorded,
                lock: lock.clone(),
                deployment: record.active,
            });
        }
    }
    Ok(reply(&service, &rows))
}

/// Aliases and versions per physical function, read once for all stages.
#[derive(Default)]
struct Cache {
    seen: BTreeMap<(String, String), (Vec<AliasTarget>, Vec<VersionInfo>)>,
}

impl Cache {
    async fn get(
        &mut self,
        deps: &Deps,
        region: &str,
        function: &str,
    ) -> Result<&(Vec<AliasTarget>, Vec<VersionInfo>), functions::error::AwsError> {
        let key = (region.to_owned(), function.to_owned());
        if !self.seen.contains_key(&key) {
            let lambda = deps.regions.functions(region);
            let aliases = lambda.aliases(function).await?;
            let versions = lambda.versions(function).await?;
            self.seen.insert(key.clone(), (aliases, versions));
        }
        Ok(&self.seen[&key])
    }
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
                    "version": row.version,
                    "code_sha256": row.code_sha256,
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
                row.version.clone().unwrap_or_else(dash),
                row.code_sha256.as_deref().map_or_else(dash, |sha| sha.chars().take(12).collect()),
                row.recorded.as_ref().map_or_else(dash, |r| r.version.clone()),
                if row.drift() { "DRIFT".to_owned() } else { "ok".to_owned() },
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
