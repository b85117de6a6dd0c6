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

use super::operation::{deployment_reply, execute, kept_lines, manifest_json, report, target, Cost};
use super::{manifest, manifest_for_stage, CliError};
use crate::cli::Global;
use crate::output::Reply;
use crate::App;

/// Deploys the service stack, or the stage.
pub async fn run(file: &Path, stage: Option<&str>, global: &Global, app: &App) -> Result<Reply, CliError> {
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
    let target = target(&manifest, global, app).await?;
    let artifacts = upload(&manifest, &packages, &target.deps).await?;
    let request = json!({
        "stage": stage,
        "manifest": manifest_json(&manifest)?,
        "artifacts": artifacts,
    });
    let (output, transitions) = execute("deploy", &manifest, request, target).await?;
    Ok(summary(&manifest, stage, &output, &Cost::of(app, transitions, started)))
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

/// Uploads the artifacts the history does not know (any more): one S3 request per changed
/// artifact. Every artifact the deploy uses, known ones too, is marked used now first: garbage
/// collection keeps what a deploy used within its grace period, and the execution will need
/// these objects until `PublishVersions` is done, long after this and before any lock protects
/// them. A record that is not there to mark (never uploaded, or collected since the last deploy)
/// is what makes the upload: collection deletes the record before the object, and only if
/// nobody marked it since it read it.
async fn upload(
    manifest: &Manifest,
    packages: &BTreeMap<String, Package>,
    deps: &Deps,
) -> Result<BTreeMap<String, ArtifactRef>, CliError> {
    let service = manifest.service.as_str();
    let mut refs = BTreeMap::new();
    // Functions with the same code share one key: marked and uploaded once.
    let mut used: BTreeMap<String, &Package> = BTreeMap::new();
    for (name, package) in packages {
        let key = naming::artifact_key(service, &package.sha256_hex);
        used.insert(key.clone(), package);
        refs.insert(name.clone(), ArtifactRef { key, code_sha256: package.sha256_base64.clone() });
    }
    futures::stream::iter(used)
        .map(|(key, package)| async move {
            if deps.history.touch_artifact(service, &key, deps.clock.now()).await? {
                return Ok(());
            }
            // Object first, record second: a record always names an object that was uploaded.
            deps.artifacts.put(&key, package.bytes.clone()).await?;
            deps.history.put_artifact(service, &key, deps.clock.now()).await?;
            tracing::info!(%key, "artifact uploaded");
            Ok::<_, functions::error::AwsError>(())
        })
        .buffer_unordered(deps.settings.parallelism)
        .try_collect::<Vec<()>>()
        .await
        .map_err(|e| CliError::aws("upload", e))?;
    Ok(refs)
}

/// What the deployment did, with what it cost.
fn summary(manifest: &Manifest, stage: Option<&str>, output: &Value, cost: &Cost) -> Reply {
    let Some(stage) = stage else {
        let mut json = report(&manifest.service, None, output.clone(), cost);
        json.insert("stack".to_owned(), json!(manifest.service));
        let operation = output.get("operation").and_then(Value::as_str).unwrap_or("none");
        let kept: String = kept_lines(&manifest.service, output).iter().map(|line| format!("\n{line}")).collect();
        let text = format!(
            "service stack {} ready ({operation}); {} stack operation(s), API calls: {}, {} state transitions, {:.1} s{kept}",
            manifest.service,
            cost.stack_operations,
            cost.calls_text(),
            cost.transitions,
            cost.seconds
        );
        return Reply::new(Value::Object(json), text);
    };
    deployment_reply(manifest, stage, &format!("deployed {} to stage {stage}", manifest.service), output, cost)
}
