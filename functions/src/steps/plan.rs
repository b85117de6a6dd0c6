//! `Plan`: validates the execution input and reads everything a deploy decides on, so that bad
//! input is refused before any lock is taken or anything changes. Reads only: safe to repeat.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::history::{FunctionRecord, StageState, VersionRecord};
use crate::domain::manifest::Manifest;
use crate::domain::naming;
use crate::error::{AwsError, StepError};
use crate::lifecycle;
use crate::ports::Deps;
use crate::steps::state::{ArtifactRef, FunctionPlan, Plan};

/// The execution input of `deploy.asl.json`, as the CLI, CI or a person in the console sends it
/// (documented in `statemachines/input.schema.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The stage to deploy; absent: the service stack only.
    #[serde(default)]
    pub stage: Option<String>,
    /// The manifest, inline.
    #[serde(default)]
    pub manifest: Option<serde_json::Value>,
    /// Or the artifact bucket key of the manifest (as JSON), for manifests too large to inline.
    #[serde(default)]
    pub manifest_key: Option<String>,
    /// Per function (manifest key): its uploaded code.
    #[serde(default)]
    pub artifacts: BTreeMap<String, ArtifactRef>,
    /// Rollback: the id of the deployment to return to; absent: the one before the active one.
    #[serde(default)]
    pub to: Option<u64>,
    /// Reset and clone: the stage whose active code and configuration to copy.
    #[serde(default)]
    pub from: Option<String>,
}

/// `Plan`'s input: the request and the execution's id.
#[derive(Debug, Deserialize)]
pub struct Input {
    /// The execution input.
    pub request: serde_json::Value,
    /// `$$.Execution.Id`: owner of the locks this execution takes.
    pub execution: String,
    /// The operation the state machine performs.
    pub operation: String,
}

/// Turns "the history table does not exist" into the advice to bootstrap.
pub fn not_bootstrapped(error: AwsError) -> StepError {
    if error.code == "ResourceNotFoundException" {
        StepError::NotBootstrapped(format!(
            "the history table {} does not exist in this account and region",
            crate::aws::TABLE
        ))
    } else {
        StepError::Aws(error)
    }
}

/// Where a person typing an execution input finds what it may hold.
const SCHEMA_HINT: &str = "statemachines/input.schema.json documents the input of each state machine";

/// The fields each operation takes beside the manifest, and those of them it needs
/// (`statemachines/input.schema.json` says the same; a test keeps them in step).
const FIELDS: &[(&str, &[&str], &[&str])] = &[
    ("deploy", &["stage", "artifacts"], &[]),
    ("rollback", &["stage", "to"], &["stage"]),
    ("reset", &["stage", "from"], &["stage", "from"]),
    ("clone", &["stage", "from"], &["stage", "from"]),
    ("remove", &["stage"], &[]),
    ("cleanup", &[], &[]),
];

/// Refuses a field `operation` does not take, or the lack of one it needs: a hand-typed input
/// (`to` on a reset) must not be silently ignored.
fn check_fields(operation: &str, request: &serde_json::Value) -> Result<(), StepError> {
    let Some((_, takes, needs)) = FIELDS.iter().find(|(name, _, _)| *name == operation) else {
        return Err(StepError::InputInvalid(format!("no state machine performs the operation {operation}")));
    };
    let fields = request.as_object().ok_or_else(|| {
        StepError::InputInvalid(format!("execution input: expected a JSON object, got {request}; {SCHEMA_HINT}"))
    })?;
    for name in fields.keys() {
        let general = ["manifest", "manifest_key"].contains(&name.as_str());
        let other = FIELDS.iter().any(|(_, t, _)| t.contains(&name.as_str()));
        if !general && other && !takes.contains(&name.as_str()) {
            return Err(StepError::InputInvalid(format!(
                "execution input: {operation} takes no field `{name}`; {SCHEMA_HINT}"
            )));
        }
    }
    if let Some(missing) = needs.iter().find(|n| !fields.contains_key(**n)) {
        return Err(StepError::InputInvalid(format!(
            "execution input: {operation} needs the field `{missing}`; {SCHEMA_HINT}"
        )));
    }
    Ok(())
}

/// Reads the manifest named by the request and validates it as a user-written one would be.
pub async fn manifest(request: &Request, deps: &Deps) -> Result<Manifest, StepError> {
    let (text, origin) = match (&request.manifest, &request.manifest_key) {
        (Some(inline), None) => (inline.to_string(), "execution input field manifest".to_owned()),
        (None, Some(key)) => {
            let bytes = deps.artifacts.get(key).await?.ok_or_else(|| {
                StepError::InputInvalid(format!("manifest_key {key}: no such object in the artifact bucket"))
            })?;
            let text = String::from_utf8(bytes)
                .map_err(|_| StepError::InputInvalid(format!("manifest_key {key}: the object is not UTF-8 JSON")))?;
            (text, format!("s3://{}/{key}", deps.settings.bucket))
        }
        _ => return Err(StepError::InputInvalid("give exactly one of manifest and manifest_key".to_owned())),
    };
    // JSON is YAML: the manifest parser validates it field by field, with the same messages.
    Manifest::parse(&text, &origin).map_err(|errors| StepError::ManifestInvalid(errors.to_string()))
}

/// Validates the input and reads the service's and stage's records.
#[tracing::instrument(name = "Plan", skip_all, fields(operation = %input.operation))]
pub async fn run(input: Input, deps: &Deps) -> Result<Plan, StepError> {
    check_fields(&input.operation, &input.request)?;
    let request: Request = serde_json::from_value(input.request)
        .map_err(|e| StepError::InputInvalid(format!("execution input: {e}; {SCHEMA_HINT}")))?;
    let manifest = manifest(&request, deps).await?;
    let service = manifest.service.clone();
    let service_record = deps.history.service(&service).await.map_err(not_bootstrapped)?;

    let Some(stage) = request.stage.clone() else {
        let expired = lifecycle::without_stage(&input.operation, &manifest, deps).await?;
        return Ok(Plan {
            operation: input.operation,
            owner: input.execution,
            service,
            stage: None,
            home_region: manifest.region.clone(),
            region: manifest.region.clone(),
            manifest,
            service_record,
            stage_record: None,
            deployment_id: 0,
            functions: Vec::new(),
            source: None,
            published: None,
            expired,
        });
    };
    manifest.check_stage(&stage).map_err(|errors| StepError::ManifestInvalid(errors.to_string()))?;
    let settings = manifest.stage_settings(&stage);
    let stage_record = deps.history.stage(&service, &stage).await?;
    let live = stage_record.as_ref().filter(|r| r.state == StageState::Active);
    let active = match live.and_then(|r| r.active) {
        Some(id) => deps.history.deployment(&service, &stage, id).await?,
        None => None,
    };
    let now = lifecycle::StageNow { service: &service, stage: &stage, live, active: active.as_ref() };
    let start = lifecycle::with_stage(&input.operation, &request, &manifest, now, deps).await?;
    let functions = match start.functions {
        Some(functions) => functions,
        None => {
            let previous: BTreeMap<String, FunctionRecord> = active.map(|d| d.functions).unwrap_or_default();
            let artifacts = start.artifacts.as_ref().unwrap_or(&request.artifacts);
            plan_functions(&manifest, &stage, &settings.region, artifacts, &previous, deps).await?
        }
    };

    Ok(Plan {
        operation: input.operation,
        owner: input.execution,
        service,
        home_region: manifest.region.clone(),
        region: start.region.unwrap_or(settings.region),
        deployment_id: stage_record.as_ref().map_or(1, |r| r.next_id),
        stage: Some(stage),
        manifest,
        service_record,
        stage_record,
        functions,
        source: start.source,
        published: start.published,
        expired: Vec::new(),
    })
}

/// What happens to each function of the manifest, with its code from `artifacts`.
async fn plan_functions(
    manifest: &Manifest,
    stage: &str,
    stage_region: &str,
    artifacts: &BTreeMap<String, ArtifactRef>,
    previous: &BTreeMap<String, FunctionRecord>,
    deps: &Deps,
) -> Result<Vec<FunctionPlan>, StepError> {
    let service = &manifest.service;
    let uploaded = deps.history.artifacts(service).await?;
    let mut catalogue: BTreeMap<(String, String), Vec<VersionRecord>> = BTreeMap::new();
    for version in deps.history.versions(service).await? {
        catalogue.entry((version.region.clone(), version.function_name.clone())).or_default().push(version);
    }

    let mut functions = Vec::with_capacity(manifest.functions.len());
    for name in manifest.functions.keys() {
        let artifact = artifacts
            .get(name)
            .cloned()
            .ok_or_else(|| StepError::InputInvalid(format!("artifacts.{name}: no code given for function {name}")))?;
        if !uploaded.contains(&artifact.key) {
            return Err(StepError::ArtifactMissing { function: name.clone(), key: artifact.key });
        }
        let per_stage = manifest.is_instance_per_stage(name, stage);
        let function_name = naming::function_name(service, per_stage.then_some(stage), name)
            .map_err(|e| StepError::ManifestInvalid(e.to_string()))?;
        let region = if per_stage { stage_region.to_owned() } else { manifest.region.clone() };
        // A function that moved between stacks (instance_per_stage flipped) starts afresh on
        // its new physical function; its history stays under the same manifest key.
        let previous = previous.get(name).filter(|p| p.function_name == function_name && p.region == region).cloned();
        // Only versions of this very code can be reused; the rest would only swell the state
        // every later state carries (Step Functions caps it at 256 KiB).
        let known: Vec<VersionRecord> = catalogue
            .remove(&(region.clone(), function_name.clone()))
            .unwrap_or_default()
            .into_iter()
            .filter(|v| v.code_sha256 == artifact.code_sha256)
            .collect();
        functions.push(FunctionPlan { name: name.clone(), function_name, region, artifact, previous, known });
    }
    Ok(functions)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::{json, Value};

    use super::*;

    fn schema() -> Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../statemachines/input.schema.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn the_input_schema_lists_exactly_the_fields_plan_reads() {
        let schema = schema();
        let documented: BTreeSet<String> =
            schema["$defs"]["input"]["properties"].as_object().unwrap().keys().cloned().collect();
        let full = Request {
            stage: Some("dev".into()),
            manifest: Some(json!({})),
            manifest_key: Some("shop/manifests/latest.json".into()),
            artifacts: BTreeMap::from([(
                "api".to_owned(),
                ArtifactRef { key: "shop/artifacts/a.zip".into(), code_sha256: "x".into() },
            )]),
            to: Some(1),
            from: Some("prod".into()),
        };
        let read: BTreeSet<String> = serde_json::to_value(full).unwrap().as_object().unwrap().keys().cloned().collect();
        assert_eq!(documented, read);
        for example in schema["examples"].as_array().unwrap() {
            serde_json::from_value::<Request>(example.clone()).unwrap();
        }
    }

    #[test]
    fn the_input_schema_gives_each_machine_the_fields_plan_lets_it_take() {
        let schema = schema();
        let all: BTreeSet<&str> = FIELDS.iter().flat_map(|(_, takes, _)| takes.iter().copied()).collect();
        for (operation, takes, needs) in FIELDS {
            let rules = &schema["$defs"][*operation];
            assert_eq!(rules["$ref"], "#/$defs/input", "{operation}");
            let refused: BTreeSet<&str> = rules["properties"]
                .as_object()
                .map(|p| p.iter().filter(|(_, v)| **v == Value::Bool(false)).map(|(k, _)| k.as_str()).collect())
                .unwrap_or_default();
            let not_taken: BTreeSet<&str> = all.iter().copied().filter(|f| !takes.contains(f)).collect();
            assert_eq!(refused, not_taken, "{operation}: fields refused");
            let required: BTreeSet<&str> =
                rules["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            assert_eq!(required, needs.iter().copied().collect(), "{operation}: fields needed");
        }
    }

    #[test]
    fn a_hand_typed_input_with_a_typo_or_a_field_of_another_operation_is_refused_by_name() {
        let typo = json!({ "stgae": "prod", "manifest_key": "shop/manifests/latest.json" });
        let err = check_fields("rollback", &typo).unwrap_err();
        assert!(err.to_string().contains("needs the field `stage`"), "{err}");
        let err = serde_json::from_value::<Request>(typo).unwrap_err();
        assert!(err.to_string().contains("stgae"), "{err}");
        let misplaced = json!({ "stage": "dev", "to": 3, "from": "prod", "manifest_key": "k" });
        let err = check_fields("reset", &misplaced).unwrap_err();
        assert_eq!(err.error_type(), "InputInvalid");
        assert!(err.to_string().contains("reset takes no field `to`"), "{err}");
        assert!(err.to_string().contains("input.schema.json"), "{err}");
        assert!(check_fields("rollback", &json!({ "stage": "prod", "to": 3, "manifest_key": "k" })).is_ok());
        assert!(check_fields("cleanup", &json!([])).is_err());
    }
}
