//! `aliasflow deploy [--stage S]`: packages and uploads the code, then runs `deploy.asl.json`
//! and follows it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use functions::artifact::{self, Package};
use functions::domain::manifest::Manifest;
use functions::domain::naming;
use functions::ports::Deps;
use functions::steps::state::ArtifactRef;
use futures::{StreamExt, TryStreamExt};
use serde_json::{json, Value};

use super::{deps, manifest, manifest_for_stage, CliError};
use crate::cli::{EngineKind, Global};
use crate::output::{table, Reply};
use crate::progress::Progress;
use crate::{engine, App};

/// Deploys the service stack, or the stage.
pub async fn run(file: &Path, stage: Option<&str>, global: &Global, app: &App) -> Result<Reply, CliError> {
    if global.engine == EngineKind::Aws {
        return Err(CliError::Usage(
            "deploy --engine aws needs the installed deployer, which this version cannot install yet; use --engine local".to_owned(),
        ));
    }
    let manifest = match stage {
        Some(stage) => manifest_for_stage(file, stage)?,
        None => manifest(file)?,
    };
    // Packaging first: a missing artifact is refused before any AWS call.
    let packages = match stage {
        Some(_) => package(&manifest, file)?,
        None => BTreeMap::new(),
    };
    let started = Instant::now();
    let (deps, _) = deps(&manifest, app).await?;
    let artifacts = upload(&manifest, &packages, &deps).await?;
    let request = json!({
        "stage": stage,
        "manifest": serde_json::to_value(&manifest).map_err(|e| CliError::Usage(e.to_string()))?,
        "artifacts": artifacts,
    });

    let (progress, events) = Progress::start(false);
    let execution = engine::run_local("deploy", &manifest.region, request, deps, events)
        .await
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let transitions = execution.transitions;
    let seen = progress.finish().await;
    let Some(output) = execution.output.filter(|_| execution.error.is_none()) else {
        return Err(CliError::Execution {
            operation: "deploy".to_owned(),
            state: seen.state_of(execution.error.as_deref().unwrap_or_default()).unwrap_or_else(|| "?".to_owned()),
            error: execution.error.unwrap_or_default(),
            cause: execution.cause.unwrap_or_default(),
        });
    };
    Ok(summary(&manifest, stage, &output, transitions, started, app))
}

/// Packages every function's code (zips directories reproducibly).
fn package(manifest: &Manifest, file: &Path) -> Result<BTreeMap<String, Package>, CliError> {
    let folder = file.parent().unwrap_or_else(|| Path::new("."));
    let mut packages = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, spec) in &manifest.functions {
        match artifact::package(&folder.join(&spec.code)) {
            Ok(package) => {
                packages.insert(name.clone(), package);
            }
            Err(e) => problems.push(format!("{}: functions.{name}.code: {e}", file.display())),
        }
    }
    if problems.is_empty() {
        Ok(packages)
    } else {
        Err(CliError::Usage(problems.join("\n")))
    }
}

/// Uploads the artifacts the history does not know yet: one S3 request per changed artifact.
async fn upload(
    manifest: &Manifest,
    packages: &BTreeMap<String, Package>,
    deps: &Deps,
) -> Result<BTreeMap<String, ArtifactRef>, CliError> {
    let known = deps.history.artifacts(&manifest.service).await.map_err(|e| CliError::aws("upload", e))?;
    let mut refs = BTreeMap::new();
    let mut missing: BTreeMap<String, &Package> = BTreeMap::new();
    for (name, package) in packages {
        let key = naming::artifact_key(&manifest.service, &package.sha256_hex);
        if !known.contains(&key) {
            missing.insert(key.clone(), package);
        }
        refs.insert(name.clone(), ArtifactRef { key, code_sha256: package.sha256_base64.clone() });
    }
    futures::stream::iter(missing)
        .map(|(key, package)| async move {
            deps.artifacts.put(&key, package.bytes.clone()).await?;
            deps.history.put_artifact(&manifest.service, &key).await?;
            tracing::info!(%key, "artifact uploaded");
            Ok::<_, functions::error::AwsError>(())
        })
        .buffer_unordered(deps.settings.parallelism)
        .try_collect::<Vec<()>>()
        .await
        .map_err(|e| CliError::aws("upload", e))?;
    Ok(refs)
}

/// What the deployment did, with the API calls it took.
fn summary(
    manifest: &Manifest,
    stage: Option<&str>,
    output: &Value,
    transitions: u64,
    started: Instant,
    app: &App,
) -> Reply {
    let calls = app.calls.by_service();
    let stack_operations: u64 = app
        .calls
        .snapshot()
        .iter()
        .filter(|((service, op), _)| {
            service == "CloudFormation" && matches!(op.as_str(), "CreateStack" | "UpdateStack" | "DeleteStack")
        })
        .map(|(_, count)| count.calls)
        .sum();
    let seconds = started.elapsed().as_secs_f64();
    let mut json = json!({
        "service": manifest.service,
        "stage": stage,
        "result": output,
        "api_calls": calls,
        "stack_operations": stack_operations,
        "state_transitions": transitions,
        "seconds": (seconds * 1000.0).round() / 1000.0,
    });
    let calls_text = calls.iter().map(|(service, n)| format!("{service} {n}")).collect::<Vec<_>>().join(", ");
    let text = match stage {
        Some(stage) => {
            let field = |key: &str| output.get(key).map(Value::to_string).unwrap_or_default();
            let rows = vec![
                vec!["deployment".to_owned(), field("id")],
                vec!["functions published".to_owned(), field("published")],
                vec!["functions unchanged".to_owned(), field("unchanged")],
                vec!["stack operations".to_owned(), stack_operations.to_string()],
                vec!["API calls".to_owned(), calls_text],
                vec!["state transitions".to_owned(), transitions.to_string()],
                vec!["time".to_owned(), format!("{seconds:.1} s")],
            ];
            format!("deployed {} to stage {stage}\n{}", manifest.service, table(&["", ""], &rows))
        }
        None => {
            let operation = output.get("operation").and_then(Value::as_str).unwrap_or("none");
            if let Some(object) = json.as_object_mut() {
                object.insert("stack".to_owned(), json!(manifest.service));
            }
            format!(
                "service stack {} ready ({operation}); {stack_operations} stack operation(s), API calls: {calls_text}, {transitions} state transitions, {seconds:.1} s",
                manifest.service
            )
        }
    };
    Reply::new(json, text)
}
