//! `PublishVersion` (the item of the `PublishVersions` Map): gives one function a version with
//! the stage's code and configuration. A version that already has both (published for another
//! stage, or by an earlier run of this step) is reused without a call; otherwise the function's
//! publish lease is taken, so no other stage changes its `$LATEST` meanwhile, `$LATEST` gets the
//! code and configuration, and `PublishVersion` is called guarded by `CodeSha256` and
//! `RevisionId`. Safe to repeat: a repeat finds `$LATEST` already right and Lambda hands back
//! the version it published.

use serde::Deserialize;

use crate::domain::config::{self, Bindings, FunctionConfig};
use crate::domain::history::{FunctionRecord, VersionRecord};
use crate::domain::manifest::Manifest;
use crate::error::StepError;
use crate::ports::{Deps, Functions, LockOutcome, Revision, UpdateStatus};
use crate::steps::state::{FunctionPlan, Published, StackResult};

/// What one Map item carries (the definition's `ItemSelector`).
#[derive(Debug, Deserialize)]
pub struct Input {
    /// The function's plan.
    pub function: FunctionPlan,
    /// The service.
    pub service: String,
    /// The stage (the alias name).
    pub stage: String,
    /// The execution: owner of the publish lease.
    pub owner: String,
    /// The manifest.
    pub manifest: Manifest,
    /// `EnsureServiceStack`'s result.
    pub service_stack: StackResult,
    /// `EnsureStageStack`'s result.
    pub stage_stack: StackResult,
}

/// The lease name of a function's `$LATEST`.
pub fn publish_lock(region: &str, function_name: &str) -> String {
    format!("publish:{region}/{function_name}")
}

/// Resolves the configuration, then reuses or publishes a version.
#[tracing::instrument(name = "PublishVersion", skip_all, fields(function = %input.function.function_name))]
pub async fn run(input: Input, deps: &Deps) -> Result<Published, StepError> {
    let function = &input.function;
    let bindings = Bindings {
        stage: &input.stage,
        service_outputs: &input.service_stack.outputs,
        stage_outputs: &input.stage_stack.outputs,
    };
    let config = config::resolve(&input.manifest, &function.name, bindings).map_err(StepError::ManifestInvalid)?;
    let config_hash = config.hash();
    let record = |version: &str, new_version: bool| Published {
        name: function.name.clone(),
        new_version,
        record: FunctionRecord {
            function_name: function.function_name.clone(),
            region: function.region.clone(),
            alias: input.stage.clone(),
            version: version.to_owned(),
            code_sha256: function.artifact.code_sha256.clone(),
            config_hash: config_hash.clone(),
            artifact_key: function.artifact.key.clone(),
        },
    };
    let reusable = function
        .known
        .iter()
        .filter(|v| v.code_sha256 == function.artifact.code_sha256 && v.config_hash == config_hash)
        .filter_map(|v| v.version.parse::<u64>().ok().map(|n| (n, v)))
        .max_by_key(|(n, _)| *n);
    if let Some((_, known)) = reusable {
        tracing::info!(version = %known.version, "unchanged: reusing version");
        return Ok(record(&known.version, false));
    }

    let lease = publish_lock(&function.region, &function.function_name);
    let now = deps.clock.now();
    match deps.history.acquire(&input.service, &lease, &input.owner, deps.settings.publish_lease, now).await? {
        LockOutcome::Acquired(_) => {}
        LockOutcome::Held(lock) => {
            return Err(StepError::PublishLocked {
                function: function.function_name.clone(),
                holder: lock.owner,
                until: lock.expires_at.to_rfc3339(),
            });
        }
    }
    let published = publish(&input, &config, deps).await;
    // The lease expires by itself if this fails too; releasing early lets the other stage go on.
    if let Err(error) = deps.history.release(&input.service, &lease, &input.owner).await {
        tracing::warn!(%error, "could not release the publish lease; it will expire");
    }
    let version = published?;
    let version_record = VersionRecord {
        function_name: function.function_name.clone(),
        region: function.region.clone(),
        version: version.clone(),
        code_sha256: function.artifact.code_sha256.clone(),
        config_hash: config_hash.clone(),
        artifact_key: function.artifact.key.clone(),
    };
    deps.history.put_version(&input.service, &version_record).await?;
    tracing::info!(%version, "published");
    Ok(record(&version, true))
}

/// Under the lease: `$LATEST` gets the code and configuration, then a guarded publish.
async fn publish(input: &Input, config: &FunctionConfig, deps: &Deps) -> Result<String, StepError> {
    let function = &input.function;
    let name = function.function_name.as_str();
    let lambda = deps.regions.functions(&function.region);
    let (revision, _) = apply(lambda.as_ref(), function, config, deps).await?;
    let description = format!("aliasflow {} {}", input.stage, &function.artifact.code_sha256);
    let version = lambda.publish(name, &revision.code_sha256, &revision.revision_id, &description).await?;
    Ok(version.version)
}

/// Brings `$LATEST` of the planned function to its artifact and `config`, calling only for what
/// differs; returns `$LATEST` after that, and whether anything changed.
pub(crate) async fn apply(
    lambda: &dyn Functions,
    function: &FunctionPlan,
    config: &FunctionConfig,
    deps: &Deps,
) -> Result<(Revision, bool), StepError> {
    let name = function.function_name.as_str();
    let latest = lambda.latest(name).await?.ok_or_else(|| {
        StepError::Conflict(format!(
            "function {name} does not exist in {}; its stack should have created it: deploy again, or look at the stack's events",
            function.region
        ))
    })?;
    let mut revision = latest.clone();
    let architecture_changed = latest.config.as_ref().is_none_or(|c| c.architecture != config.architecture);
    if latest.code_sha256 != function.artifact.code_sha256 || architecture_changed {
        revision =
            lambda.update_code(name, &deps.settings.bucket, &function.artifact.key, &config.architecture).await?;
        settled(name, &revision)?;
    }
    // The architecture is set with the code above; UpdateFunctionConfiguration cannot change it,
    // so it must not make this call forever (moto even ignores it and reports x86_64).
    let same_config = latest
        .config
        .as_ref()
        .is_some_and(|c| FunctionConfig { architecture: config.architecture.clone(), ..c.clone() } == *config);
    if !same_config {
        revision = lambda.update_config(name, config).await?;
        settled(name, &revision)?;
    }
    if revision.code_sha256 != function.artifact.code_sha256 {
        return Err(StepError::FunctionUpdateFailed {
            function: name.to_owned(),
            reason: format!(
                "$LATEST has code {} after the update, not {} (artifact {}): the artifact in the bucket is not what the CLI uploaded",
                revision.code_sha256, function.artifact.code_sha256, function.artifact.key
            ),
        });
    }
    let changed = revision != latest;
    Ok((revision, changed))
}

fn settled(function: &str, revision: &Revision) -> Result<(), StepError> {
    match &revision.status {
        UpdateStatus::Failed(reason) => {
            Err(StepError::FunctionUpdateFailed { function: function.to_owned(), reason: reason.clone() })
        }
        UpdateStatus::Successful | UpdateStatus::InProgress => Ok(()),
    }
}
