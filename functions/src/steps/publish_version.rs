//! `PublishVersion` (the item of the `PublishVersions` Map): gives one function a version with
//! the stage's code and configuration. A version that already has both (published for another
//! stage, or by an earlier run of this step) is reused without a Lambda call, once its catalogue
//! record is marked used now; otherwise the function's publish lease is taken, so no other stage
//! changes its `$LATEST` meanwhile, `$LATEST` gets the code and configuration, and
//! `PublishVersion` is called guarded by `CodeSha256` and `RevisionId`. Safe to repeat: a repeat
//! finds `$LATEST` already right and Lambda hands back the version it published.

use serde::Deserialize;

use crate::domain::config::{self, Bindings, FunctionConfig};
use crate::domain::history::{FunctionRecord, VersionRecord};
use crate::domain::manifest::Manifest;
use crate::domain::naming::{self, Owner};
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
    // What the stage's alias points at already needs no mark: the active deployment references
    // it, and that stays retained while this execution holds the stage lock, so no collection
    // takes it (one write fewer per unchanged function).
    if let Some(previous) = function.previous.as_ref() {
        if previous.code_sha256 == function.artifact.code_sha256 && previous.config_hash == config_hash {
            tracing::info!(version = %previous.version, "unchanged: the stage's version");
            return Ok(record(&previous.version, false));
        }
    }
    let reusable = function
        .known
        .iter()
        .filter(|v| v.code_sha256 == function.artifact.code_sha256 && v.config_hash == config_hash)
        .filter_map(|v| v.version.parse::<u64>().ok().map(|n| (n, v)))
        .max_by_key(|(n, _)| *n);
    if let Some((_, known)) = reusable {
        // Plan read the catalogue without a lock; garbage collection may have taken the version
        // since. Marking it used is also the check: collection deletes a record only if nobody
        // marked it after collection read it, and the version only after its record, so a record
        // still there to mark is a version that stays (for the grace period, and after that for
        // the deployment that references it).
        let touched = VersionRecord { used_at: deps.clock.now(), ..known.clone() };
        if deps.history.touch_version(&input.service, &touched).await? {
            tracing::info!(version = %known.version, "unchanged: reusing version");
            return Ok(record(&known.version, false));
        }
        tracing::warn!(version = %known.version, "garbage collection took the version meanwhile: publishing again");
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
        used_at: deps.clock.now(),
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
    let owner = naming::function_owner(&input.service, &input.stage, &function.name, name);
    let (revision, _) = apply(lambda.as_ref(), function, config, &owner, deps).await?;
    let description = format!("aliasflow {} {}", input.stage, &function.artifact.code_sha256);
    let version = lambda.publish(name, &revision.code_sha256, &revision.revision_id, &description).await?;
    Ok(version.version)
}

/// Brings `$LATEST` of the planned function to its artifact and `config`, calling only for what
/// differs, once its tags say it is `owner`'s; returns `$LATEST` after that, and whether
/// anything changed.
pub(crate) async fn apply(
    lambda: &dyn Functions,
    function: &FunctionPlan,
    config: &FunctionConfig,
    owner: &Owner,
    deps: &Deps,
) -> Result<(Revision, bool), StepError> {
    let name = function.function_name.as_str();
    let latest = lambda.latest(name).await?.ok_or_else(|| {
        StepError::Conflict(format!(
            "function {name} does not exist in {}; its stack should have created it: deploy again, or look at the stack's events",
            function.region
        ))
    })?;
    owner.check(&format!("function {name}"), &latest.tags)?;
    let mut revision = latest.clone();
    let mut changed = false;
    let architecture_changed = latest.config.as_ref().is_none_or(|c| c.architecture != config.architecture);
    if latest.code_sha256 != function.artifact.code_sha256 || architecture_changed {
        revision =
            lambda.update_code(name, &deps.settings.bucket, &function.artifact.key, &config.architecture).await?;
        settled(name, &revision)?;
        changed = true;
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
        changed = true;
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

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::fakes::FakeAws;
    use crate::ports::History;
    use crate::steps::fixtures::{manifest, REGION, SERVICE};
    use crate::steps::state::ArtifactRef;

    const KEY: &str = "shop/artifacts/worker.zip";
    const SHA: &str = "d29ya2Vy";

    /// The worker (no stage binding: its versions serve every stage) with code `KEY`, as `Plan`
    /// plans it when the catalogue holds `known`.
    fn input(known: Vec<VersionRecord>) -> Input {
        Input {
            function: FunctionPlan {
                name: "worker".into(),
                function_name: "shop-worker".into(),
                region: REGION.into(),
                artifact: ArtifactRef { key: KEY.into(), code_sha256: SHA.into() },
                previous: None,
                known,
            },
            service: SERVICE.into(),
            stage: "dev".into(),
            owner: "exec-dev".into(),
            manifest: manifest(),
            service_stack: StackResult::default(),
            stage_stack: StackResult::default(),
        }
    }

    /// Version 1 of the worker with `KEY` and the worker's configuration, catalogued long ago,
    /// as a `Plan` reading the catalogue would carry it.
    async fn catalogued_worker(aws: &FakeAws) -> VersionRecord {
        let bindings =
            Bindings { stage: "dev", service_outputs: &Default::default(), stage_outputs: &Default::default() };
        let config = config::resolve(&manifest(), "worker", bindings).unwrap();
        let version = VersionRecord {
            function_name: "shop-worker".into(),
            region: REGION.into(),
            version: "1".into(),
            code_sha256: SHA.into(),
            config_hash: config.hash(),
            artifact_key: KEY.into(),
            used_at: DateTime::default(),
        };
        aws.history.put_version(SERVICE, &version).await.unwrap();
        version
    }

    #[tokio::test]
    async fn a_reused_version_is_marked_used_so_garbage_collection_keeps_it() {
        let aws = FakeAws::default();
        let known = catalogued_worker(&aws).await;
        let before = Utc::now();
        let published = run(input(vec![known]), &aws.deps()).await.unwrap();
        assert_eq!((published.record.version.as_str(), published.new_version), ("1", false));
        let stored = aws.history.versions(SERVICE).await.unwrap();
        assert!(stored[0].used_at >= before, "marked used now: {stored:?}");
        assert_eq!(aws.regions.fake_functions(REGION).total_calls(), 0, "reused without a Lambda call");
    }

    #[tokio::test]
    async fn a_version_garbage_collection_took_after_plan_is_published_again_not_reused() {
        let aws = FakeAws::default();
        let known = catalogued_worker(&aws).await;
        // Collected between Plan and this step: record and version gone.
        aws.history.delete_version(SERVICE, &known).await.unwrap();
        let lambda = aws.regions.fake_functions(REGION);
        lambda.create_owned("shop-worker", &Owner::service(SERVICE));
        lambda.know_artifact(KEY, SHA);
        let before = Utc::now();
        let published = run(input(vec![known]), &aws.deps()).await.unwrap();
        assert!(published.new_version, "{published:?}");
        assert_eq!(lambda.calls("PublishVersion"), 1);
        let stored = aws.history.versions(SERVICE).await.unwrap();
        assert_eq!(stored.len(), 1, "{stored:?}");
        assert_eq!(stored[0].version, published.record.version);
        assert!(stored[0].used_at >= before, "catalogued as used now: {stored:?}");
    }

    #[tokio::test]
    async fn a_function_without_aliasflows_tags_is_refused_before_any_change() {
        let aws = FakeAws::default();
        let lambda = aws.regions.fake_functions(REGION);
        // Made by hand under the name the manifest gives the worker: no aliasflow tags.
        lambda.create_function("shop-worker");
        let before = lambda.peek("shop-worker");
        let err = run(input(Vec::new()), &aws.deps()).await.unwrap_err();
        assert_eq!(err.error_type(), "NotOwned");
        assert!(err.to_string().contains("function shop-worker") && err.to_string().contains("no aliasflow"), "{err}");
        assert_eq!(lambda.peek("shop-worker"), before);
        assert_eq!(lambda.calls("UpdateFunctionCode") + lambda.calls("PublishVersion"), 0);
        assert!(aws.history.versions(SERVICE).await.unwrap().is_empty(), "nothing catalogued");
    }

    #[tokio::test]
    async fn a_function_of_a_stage_is_not_a_shared_functions_to_change() {
        let aws = FakeAws::default();
        let lambda = aws.regions.fake_functions(REGION);
        lambda.create_owned("shop-worker", &Owner::stage(SERVICE, "dev"));
        let err = run(input(Vec::new()), &aws.deps()).await.unwrap_err();
        assert_eq!(err.error_type(), "NotOwned");
        assert!(err.to_string().contains("stage dev of service shop"), "{err}");
        assert_eq!(lambda.calls("UpdateFunctionCode"), 0);
    }

    #[tokio::test]
    async fn the_version_the_stage_already_has_is_kept_without_any_call() {
        let aws = FakeAws::default();
        let known = catalogued_worker(&aws).await;
        let mut unchanged = input(vec![known.clone()]);
        unchanged.function.previous = Some(FunctionRecord {
            function_name: "shop-worker".into(),
            region: REGION.into(),
            alias: "dev".into(),
            version: "1".into(),
            code_sha256: SHA.into(),
            config_hash: known.config_hash.clone(),
            artifact_key: KEY.into(),
        });
        let published = run(unchanged, &aws.deps()).await.unwrap();
        assert_eq!((published.record.version.as_str(), published.new_version), ("1", false));
        let stored = aws.history.versions(SERVICE).await.unwrap();
        assert_eq!(stored[0].used_at, DateTime::<Utc>::default(), "not marked: the stage's deployment holds it");
        assert_eq!(aws.regions.fake_functions(REGION).total_calls(), 0);
    }
}
