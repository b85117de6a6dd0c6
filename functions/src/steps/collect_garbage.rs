//! `CollectGarbage` (remove, cleanup): deletes the versions and stored objects nothing needs any
//! more.
//!
//! - A version aliasflow published goes when no retained deployment of a live stage references
//!   it and no alias points at it. Lambda's `ListAliases` decides the second, so an alias made
//!   outside aliasflow keeps its version too; such a version is reported, never deleted.
//! - A code artifact (`<service>/artifacts/...`) goes when no retained deployment of a live
//!   stage and no version left in the catalogue references it and no deploy uploaded or used it
//!   within the grace period, [`Settings::garbage_grace`](crate::ports::Settings::garbage_grace);
//!   a kept stage template (`<service>/templates/...`) when no live
//!   stage was brought to it by a retained deployment.
//! - A record of an artifact the bucket no longer has is forgotten whatever its age: a deploy
//!   must not rely on it.
//! - A shared function the service stack keeps although the manifest dropped it goes, with its
//!   service log group, once no retained deployment of a live stage uses it: the stack is brought
//!   back to the manifest by `EnsureServiceStack`'s own code, under its service lease.
//!
//! While another execution holds any lease of the service (a stage lock, a new stage's too, or
//! a publish lease) nothing is collected: a deploy may be between publishing a version and
//! pointing an alias at it. Safe to repeat: what is gone already is not an error.
//!
//! What a deploy uses before it holds a lock is protected by the mark. The CLI uploads and
//! marks its artifacts before the execution starts: the grace period covers a mark made before
//! this step read the records, and a mark made after makes the conditional delete of the
//! record fail (the artifact is kept). `Plan` picks catalogued versions to reuse before the
//! lock too, but `PublishVersion` marks each under the stage lock before relying on it: a mark
//! made before the catalogue read is covered by that lock (or by the deployment recorded when
//! it was released), one made after makes the conditional delete fail. Records are deleted before what they name, so a
//! deploy that finds a record gone uploads or publishes again instead of relying on it. What
//! remains is described at `collect_versions` and `collect_objects` below.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::history::{ArtifactRecord, Deployment, StageRecord, StageState, VersionRecord};
use crate::domain::manifest::Manifest;
use crate::domain::template;
use crate::error::StepError;
use crate::ports::Deps;
use crate::steps::ensure_service_stack;
use crate::steps::ensure_stage_stack::template_key;

/// What `CollectGarbage` reads of the state.
#[derive(Debug, Deserialize)]
pub struct Input {
    /// The service.
    pub service: String,
    /// The execution: its own leases do not stop the collection.
    pub owner: String,
    /// The manifest the service stack is brought back to when it keeps a function no live stage
    /// uses any more; without it the stack is left as it is.
    #[serde(default)]
    pub manifest: Option<Manifest>,
}

/// What was collected, and what was not.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Output {
    /// `function:version` of each version deleted.
    pub deleted_versions: Vec<String>,
    /// `function:version (alias a, b)` of each version no deployment needs but an alias uses.
    pub kept_versions: Vec<String>,
    /// Keys of the objects deleted from the artifact bucket.
    pub deleted_objects: Vec<String>,
    /// `function:version` and artifact keys nothing references but a deploy used within the
    /// grace period: collected by a later run.
    #[serde(default)]
    pub kept_recent: Vec<String>,
    /// `function:version` and artifact keys a deploy used while this collection ran (after it
    /// read them): kept.
    #[serde(default)]
    pub kept_in_use: Vec<String>,
    /// `function:version` of catalogue entries whose version Lambda no longer has, and artifact
    /// keys whose object the bucket no longer has: their records are forgotten.
    #[serde(default)]
    pub forgotten: Vec<String>,
    /// Why nothing was collected, if so.
    pub skipped: Option<String>,
    /// Shared functions taken out of the service stack (physical names): the manifest dropped
    /// them and no live stage uses them any more.
    #[serde(default)]
    pub removed_functions: Vec<String>,
}

/// What the retained deployments of the live stages reference.
#[derive(Debug, Default)]
struct Referenced {
    /// (region, function, version).
    versions: BTreeSet<(String, String, String)>,
    /// Artifact keys.
    artifacts: BTreeSet<String>,
    /// Stage template hashes.
    templates: BTreeSet<String>,
}

impl Referenced {
    fn add(&mut self, deployment: &Deployment) {
        for record in deployment.functions.values() {
            let version = (record.region.clone(), record.function_name.clone(), record.version.clone());
            self.versions.insert(version);
            self.artifacts.insert(record.artifact_key.clone());
        }
        self.templates.extend(deployment.stage_template_hash.clone());
    }

    fn holds(&self, version: &VersionRecord) -> bool {
        self.versions.contains(&(version.region.clone(), version.function_name.clone(), version.version.clone()))
    }

    fn uses_function(&self, region: &str, function: &str) -> bool {
        self.versions.iter().any(|(r, f, _)| r == region && f == function)
    }
}

/// Whether a record last used at `used_at` is still within the grace period at `now`.
#[derive(Debug, Clone, Copy)]
struct Grace {
    now: DateTime<Utc>,
    period: chrono::Duration,
}

impl Grace {
    fn covers(self, used_at: DateTime<Utc>) -> bool {
        self.now.signed_duration_since(used_at) < self.period
    }
}

/// What one function's unreferenced versions came to.
#[derive(Debug, Default)]
struct Versions {
    deleted: Vec<VersionRecord>,
    /// With the aliases that hold each.
    aliased: Vec<(VersionRecord, String)>,
    in_use: Vec<VersionRecord>,
}

/// What happened to one object of the bucket.
#[derive(Debug)]
enum Collected {
    Deleted(String),
    Recent(String),
    InUse(String),
    Forgotten(String),
}

/// Collects the garbage.
#[tracing::instrument(name = "CollectGarbage", skip_all, fields(service = %input.service))]
pub async fn run(input: Input, deps: &Deps) -> Result<Output, StepError> {
    let service = input.service.as_str();
    let now = deps.clock.now();
    // The catalogue is read before the leases, not after, so that a version a deploy marks under
    // its stage lock is safe even when the mark looks older than the grace period (a step whose
    // clock is behind this one's): marked before this read, the deploy's lock is seen below (or
    // the deploy is over); marked after it, the conditional delete fails. Read the other way
    // round, a deploy that took its lock and marked a version between the two reads would rely
    // on the clocks alone.
    let catalogue = deps.history.versions(service).await?;
    if let Some(reason) = busy(service, &input.owner, now, deps).await? {
        tracing::info!(%reason, "garbage collection skipped");
        return Ok(Output { skipped: Some(reason), ..Output::default() });
    }
    let stages = deps.history.stages(service).await?;
    let live: Vec<&StageRecord> = stages.iter().filter(|r| r.state == StageState::Active).collect();
    let referenced = referenced(service, &live, deps).await?;
    let unused = match &input.manifest {
        Some(manifest) => unused_functions(manifest, &referenced, deps).await?,
        None => BTreeMap::new(),
    };
    let grace =
        Grace { now, period: chrono::Duration::from_std(deps.settings.garbage_grace).unwrap_or(chrono::Duration::MAX) };

    let mut unreferenced: BTreeMap<(String, String), Vec<VersionRecord>> = BTreeMap::new();
    let mut remaining: Vec<VersionRecord> = Vec::new();
    for version in catalogue {
        if referenced.holds(&version) {
            remaining.push(version);
        } else {
            unreferenced.entry((version.region.clone(), version.function_name.clone())).or_default().push(version);
        }
    }
    let mut output = Output::default();
    let results = super::bounded(unreferenced.into_iter().collect(), deps.settings.parallelism, |(key, versions)| {
        collect_versions(service, key, versions, deps)
    })
    .await;
    let name = |v: &VersionRecord| format!("{}:{}", v.function_name, v.version);
    for result in results {
        let versions = result?;
        output.deleted_versions.extend(versions.deleted.iter().map(name));
        output.kept_in_use.extend(versions.in_use.iter().map(name));
        remaining.extend(versions.in_use);
        for (version, aliases) in versions.aliased {
            output.kept_versions.push(format!("{} (alias {aliases})", name(&version)));
            remaining.push(version);
        }
    }

    let mut needed = referenced.artifacts;
    needed.extend(remaining.iter().map(|v| v.artifact_key.clone()));
    let kept_templates: BTreeSet<String> =
        referenced.templates.iter().map(|hash| template_key(service, hash)).collect();
    for collected in collect_objects(service, &needed, &kept_templates, grace, deps).await? {
        match collected {
            Collected::Deleted(key) => output.deleted_objects.push(key),
            Collected::Recent(key) => output.kept_recent.push(key),
            Collected::InUse(key) => output.kept_in_use.push(key),
            Collected::Forgotten(key) => output.forgotten.push(key),
        }
    }

    if let Some(manifest) = input.manifest.as_ref().filter(|_| !unused.is_empty()) {
        output.removed_functions = remove_functions(manifest, &input.owner, unused, deps).await?;
    }

    for list in [
        &mut output.deleted_versions,
        &mut output.kept_versions,
        &mut output.deleted_objects,
        &mut output.kept_recent,
        &mut output.kept_in_use,
        &mut output.forgotten,
    ] {
        list.sort();
    }
    tracing::info!(
        versions = output.deleted_versions.len(),
        objects = output.deleted_objects.len(),
        kept = ?output.kept_versions,
        recent = output.kept_recent.len(),
        in_use = ?output.kept_in_use,
        forgotten = ?output.forgotten,
        "garbage collected"
    );
    Ok(output)
}

/// Another execution's unexpired lease of the service, as a sentence: any stage's lock (a new
/// stage has its lock before its record) or a function's publish lease.
async fn busy(service: &str, owner: &str, now: DateTime<Utc>, deps: &Deps) -> Result<Option<String>, StepError> {
    let held: Vec<String> = deps
        .history
        .locks(service)
        .await?
        .into_iter()
        .filter(|(_, lock)| lock.owner != owner && lock.expires_at > now)
        .map(|(name, lock)| format!("lease {name} is held by {} until {}", lock.owner, lock.expires_at.to_rfc3339()))
        .collect();
    if held.is_empty() {
        return Ok(None);
    }
    Ok(Some(format!("{}, which may be publishing or pointing aliases; collected on the next run", held.join("; "))))
}

/// The shared functions the service stack keeps although `manifest` dropped them, that no live
/// stage uses: manifest key to physical name.
async fn unused_functions(
    manifest: &Manifest,
    referenced: &Referenced,
    deps: &Deps,
) -> Result<BTreeMap<String, String>, StepError> {
    let Some(record) = deps.history.service(&manifest.service).await? else { return Ok(BTreeMap::new()) };
    Ok(template::dropped_functions(&record.functions, manifest)
        .into_iter()
        .filter(|(_, definition)| !referenced.uses_function(&manifest.region, &definition.function_name))
        .map(|(name, definition)| (name, definition.function_name))
        .collect())
}

/// Brings the service stack back to the manifest plus what live stages still use, taking the
/// `unused` functions out; returns their physical names. Another execution changing the stack
/// meanwhile leaves them for the next run.
async fn remove_functions(
    manifest: &Manifest,
    owner: &str,
    unused: BTreeMap<String, String>,
    deps: &Deps,
) -> Result<Vec<String>, StepError> {
    match ensure_service_stack::ensure(manifest, owner, deps).await {
        Ok(result) => {
            let removed: Vec<String> =
                unused.into_iter().filter(|(name, _)| !result.kept.contains_key(name)).map(|(_, f)| f).collect();
            tracing::info!(functions = ?removed, "no live stage uses them: taken out of the service stack");
            Ok(removed)
        }
        Err(StepError::ServiceLocked { holder, .. }) => {
            tracing::info!(%holder, functions = ?unused, "the service stack is being changed: collected on the next run");
            Ok(Vec::new())
        }
        Err(error) => Err(error),
    }
}

/// Everything the retained deployments of the live stages reference.
async fn referenced(service: &str, live: &[&StageRecord], deps: &Deps) -> Result<Referenced, StepError> {
    let mut referenced = Referenced::default();
    for record in live {
        referenced.templates.extend(record.template_hash.clone());
        let mut start = None;
        loop {
            let page = deps.history.deployments(service, &record.stage, 100, start).await?;
            page.items.iter().for_each(|d| referenced.add(d));
            match page.next {
                Some(next) => start = Some(next),
                None => break,
            }
        }
    }
    Ok(referenced)
}

/// Deletes the unreferenced versions of one function that no alias points at and no deploy
/// used within the grace period, and forgets those Lambda no longer has.
///
/// Per version: the record goes first, conditional on its `used_at` being what the catalogue
/// read said, then the version, then the record again. A deploy that marked the version after
/// the read keeps it (the first delete fails); one that marks it after the first delete finds
/// no record and publishes instead of reusing. The second delete is for a deploy that did that
/// while the version still existed: Lambda hands back the existing version when `$LATEST` has
/// not changed since it was published, so that deploy may record this very number.
///
/// What remains: such a deploy whose publish lands before the version is deleted and whose
/// record lands after the second delete names a version that is gone; that deploy fails at
/// `SwitchAliases` (its aliases are restored), and the next collection drops the record (the
/// delete of a version Lambda no longer has succeeds). And if Lambda refuses to delete the version
/// after its record went (an alias made outside aliasflow in that instant, or an error), the
/// version stays in Lambda but no longer in the catalogue: no deploy reuses it, and no later
/// collection sees it (this role may not write the record back).
async fn collect_versions(
    service: &str,
    (region, function): (String, String),
    versions: Vec<VersionRecord>,
    deps: &Deps,
) -> Result<Versions, StepError> {
    let lambda = deps.regions.functions(&region);
    let mut outcome = Versions::default();
    let aliases = lambda.aliases(&function).await?;
    for version in versions {
        let holders: Vec<&str> =
            aliases.iter().filter(|a| a.version == version.version).map(|a| a.alias.as_str()).collect();
        if !holders.is_empty() {
            tracing::warn!(%function, version = %version.version, aliases = ?holders, "no deployment needs it, but an alias does: kept");
            outcome.aliased.push((version, holders.join(", ")));
            continue;
        }
        if !deps.history.delete_version_if_unchanged(service, &version).await? {
            tracing::info!(%function, version = %version.version, "a deploy used it meanwhile: kept");
            outcome.in_use.push(version);
            continue;
        }
        match lambda.delete_version(&function, &version.version).await {
            Ok(()) => {}
            // An alias was pointed at it after the listing: Lambda refuses, and so it stays.
            Err(error) if error.code == "ResourceConflictException" => {
                let version_ = version.version.as_str();
                tracing::warn!(%function, version = version_, "an alias was made meanwhile: kept, no longer catalogued");
                outcome.aliased.push((version, "created meanwhile".to_owned()));
                continue;
            }
            Err(error) => {
                let version_ = version.version.as_str();
                tracing::error!(%function, version = version_, %error, "record gone, version not: delete it by hand");
                return Err(error.into());
            }
        }
        deps.history.delete_version(service, &version).await?;
        tracing::info!(%function, version = %version.version, "version deleted");
        outcome.deleted.push(version);
    }
    Ok(outcome)
}

/// Deletes the objects of the bucket nothing needs: artifacts not in `needed` and not used
/// within the grace period, stage templates not in `kept_templates`; forgets the records of
/// artifacts the bucket no longer has.
///
/// The records are read on both sides of the bucket listing. The CLI records an artifact only
/// after uploading it, so a record read before the listing names an object that the listing
/// shows unless it is gone; and an object listed with no record after it is an orphan or an
/// upload whose record has not landed yet. Per artifact the record goes first (conditional,
/// as for versions), then the object, then the record again.
///
/// What remains: an upload whose record lands after the second read while its object was
/// listed is taken for an orphan and deleted. If that record lands before the second record
/// delete, the delete undoes it; otherwise it names an object that is gone until the next
/// collection forgets it. The same holds for a deploy that found a record gone and uploads the
/// object again while this deletes it. Either way only that deploy fails (or `Plan` refuses it
/// with `ArtifactMissing`), and the next one uploads again.
async fn collect_objects(
    service: &str,
    needed: &BTreeSet<String>,
    kept_templates: &BTreeSet<String>,
    grace: Grace,
    deps: &Deps,
) -> Result<Vec<Collected>, StepError> {
    let before: BTreeSet<String> = deps.history.artifacts(service).await?.into_iter().collect();
    let objects = deps.artifacts.list(&format!("{service}/artifacts/")).await?;
    let listed: BTreeSet<String> = objects.iter().map(|o| o.key.clone()).collect();
    let records = deps.history.artifact_records(service).await?;

    enum Work {
        Forget(String),
        Record(ArtifactRecord),
        Orphan(String),
        Template(String),
    }
    let mut work = Vec::new();
    let mut collected = Vec::new();
    let mut recorded = BTreeSet::new();
    for record in records {
        recorded.insert(record.key.clone());
        if !listed.contains(&record.key) && before.contains(&record.key) {
            work.push(Work::Forget(record.key));
        } else if needed.contains(&record.key) {
            continue;
        } else if grace.covers(record.used_at) {
            collected.push(Collected::Recent(record.key));
        } else {
            work.push(Work::Record(record));
        }
    }
    // An object without a record is an orphan, or an upload whose record is still on its way
    // (the CLI uploads, then records): one written within the grace period stays.
    for object in objects.into_iter().filter(|o| !recorded.contains(&o.key) && !needed.contains(&o.key)) {
        if grace.covers(object.modified) {
            collected.push(Collected::Recent(object.key));
        } else {
            work.push(Work::Orphan(object.key));
        }
    }
    let templates = deps.artifacts.list(&format!("{service}/templates/")).await?;
    work.extend(templates.into_iter().map(|o| o.key).filter(|k| !kept_templates.contains(k)).map(Work::Template));

    let results = super::bounded(work, deps.settings.parallelism, |work| async move {
        let key = match work {
            Work::Forget(key) => {
                deps.history.delete_artifact(service, &key).await?;
                tracing::info!(%key, "the bucket no longer has it: forgotten");
                return Ok::<_, StepError>(Collected::Forgotten(key));
            }
            Work::Template(key) => {
                deps.artifacts.delete(&key).await?;
                return Ok(Collected::Deleted(key));
            }
            Work::Record(record) => {
                if !deps.history.delete_artifact_if_unchanged(service, &record).await? {
                    tracing::info!(key = %record.key, "a deploy used it meanwhile: kept");
                    return Ok(Collected::InUse(record.key));
                }
                record.key
            }
            Work::Orphan(key) => key,
        };
        deps.artifacts.delete(&key).await?;
        // A deploy that found no record meanwhile may have uploaded it again and recorded it;
        // with no record, the next deploy uploads again instead of trusting a deleted object.
        deps.history.delete_artifact(service, &key).await?;
        Ok(Collected::Deleted(key))
    })
    .await;
    for result in results {
        collected.push(result?);
    }
    Ok(collected)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::Utc;

    use super::*;
    use crate::domain::history::StageState;
    use crate::fakes::FakeAws;
    use crate::ports::{Artifacts, Functions, History};
    use crate::steps::fixtures::{catalogued, deployed, publish, record, REGION, SERVICE};

    fn input() -> Input {
        Input { service: SERVICE.into(), owner: "exec-gc".into(), manifest: None }
    }

    /// Longer ago than the grace period.
    fn long_ago() -> DateTime<Utc> {
        Utc::now() - chrono::Duration::hours(2)
    }

    /// Within the grace period.
    fn lately() -> DateTime<Utc> {
        Utc::now() - chrono::Duration::minutes(10)
    }

    /// dev points shop-api at version 1 (code a.zip); version 2 (b.zip) is in the catalogue only.
    /// Everything was last used long ago.
    async fn dev_and_an_orphan(aws: &FakeAws) -> (String, String) {
        let lambda = aws.regions.fake_functions(REGION);
        let kept = publish(&lambda, "shop-api", "shop/artifacts/a.zip").await;
        lambda.point_alias("shop-api", "dev", &kept).await.unwrap();
        deployed(aws, "dev", 1, None, &[("api", record("dev", "shop-api", &kept, "shop/artifacts/a.zip"))]).await;
        let orphan = publish(&lambda, "shop-api", "shop/artifacts/b.zip").await;
        aws.history
            .put_version(SERVICE, &catalogued(&record("x", "shop-api", &orphan, "shop/artifacts/b.zip")))
            .await
            .unwrap();
        for key in ["shop/artifacts/a.zip", "shop/artifacts/b.zip"] {
            aws.artifacts.put(key, b"zip".to_vec()).await.unwrap();
            aws.history.put_artifact(SERVICE, key, long_ago()).await.unwrap();
        }
        (kept, orphan)
    }

    /// Marks the orphan of [`dev_and_an_orphan`] and its artifact used at `at`.
    async fn use_the_orphan(aws: &FakeAws, orphan: &str, at: DateTime<Utc>) {
        let version =
            VersionRecord { used_at: at, ..catalogued(&record("x", "shop-api", orphan, "shop/artifacts/b.zip")) };
        aws.history.put_version(SERVICE, &version).await.unwrap();
        aws.history.put_artifact(SERVICE, "shop/artifacts/b.zip", at).await.unwrap();
    }

    fn catalogue(aws: &FakeAws) -> Vec<String> {
        aws.history.snapshot().versions.values().map(|v| format!("{}:{}", v.function_name, v.version)).collect()
    }

    async fn lambda_versions(aws: &FakeAws) -> Vec<String> {
        let versions = aws.regions.fake_functions(REGION).versions("shop-api").await.unwrap();
        versions.into_iter().map(|v| v.version).collect()
    }

    #[tokio::test]
    async fn an_orphaned_version_and_its_artifact_are_deleted_and_forgotten_and_what_dev_uses_stays() {
        let aws = FakeAws::default();
        let (kept, orphan) = dev_and_an_orphan(&aws).await;
        let output = run(input(), &aws.deps()).await.unwrap();
        assert_eq!(output.deleted_versions, [format!("shop-api:{orphan}")]);
        assert_eq!(output.deleted_objects, ["shop/artifacts/b.zip"]);
        assert_eq!(lambda_versions(&aws).await, [kept.as_str()]);
        assert_eq!(catalogue(&aws), [format!("shop-api:{kept}")]);
        assert_eq!(aws.artifacts.keys(), ["shop/artifacts/a.zip"]);
        assert_eq!(aws.history.artifacts(SERVICE).await.unwrap(), ["shop/artifacts/a.zip"]);
    }

    #[tokio::test]
    async fn an_object_without_a_record_goes_only_once_older_than_the_grace_period() {
        let aws = FakeAws::default();
        dev_and_an_orphan(&aws).await;
        // Uploaded by a CLI that has not recorded it yet, and one left by a CLI that died long ago.
        aws.artifacts.put("shop/artifacts/uploading.zip", b"zip".to_vec()).await.unwrap();
        aws.artifacts.objects.lock().unwrap().insert("shop/artifacts/abandoned.zip".into(), b"zip".to_vec());
        let output = run(input(), &aws.deps()).await.unwrap();
        assert!(output.kept_recent.contains(&"shop/artifacts/uploading.zip".to_owned()), "{output:?}");
        assert!(output.deleted_objects.contains(&"shop/artifacts/abandoned.zip".to_owned()), "{output:?}");
        assert!(aws.artifacts.keys().contains(&"shop/artifacts/uploading.zip".to_owned()));
    }

    #[tokio::test]
    async fn a_version_an_alias_uses_is_never_deleted_even_when_no_deployment_needs_it() {
        let aws = FakeAws::default();
        let (_, orphan) = dev_and_an_orphan(&aws).await;
        // An alias made outside aliasflow.
        aws.regions.fake_functions(REGION).point_alias("shop-api", "hotfix", &orphan).await.unwrap();
        let output = run(input(), &aws.deps()).await.unwrap();
        assert!(output.deleted_versions.is_empty(), "{output:?}");
        assert_eq!(output.kept_versions, [format!("shop-api:{orphan} (alias hotfix)")]);
        assert!(catalogue(&aws).contains(&format!("shop-api:{orphan}")), "still known, for the next run");
        assert!(output.deleted_objects.is_empty(), "its artifact stays with it: {output:?}");
    }

    #[tokio::test]
    async fn the_deployments_of_a_removed_stage_hold_no_versions() {
        let aws = FakeAws::default();
        let (kept, _) = dev_and_an_orphan(&aws).await;
        let lambda = aws.regions.fake_functions(REGION);
        let old = publish(&lambda, "shop-api", "shop/artifacts/c.zip").await;
        deployed(&aws, "pr-1", 1, None, &[("api", record("pr-1", "shop-api", &old, "shop/artifacts/c.zip"))]).await;
        let mut pr = aws.history.stage(SERVICE, "pr-1").await.unwrap().unwrap();
        pr.state = StageState::Removed;
        aws.history.put_stage(&pr).await.unwrap();
        let output = run(input(), &aws.deps()).await.unwrap();
        assert!(output.deleted_versions.contains(&format!("shop-api:{old}")), "{output:?}");
        assert!(!output.deleted_versions.contains(&format!("shop-api:{kept}")), "{output:?}");
        assert_eq!(aws.history.deployments(SERVICE, "pr-1", 10, None).await.unwrap().items.len(), 1, "history kept");
    }

    #[tokio::test]
    async fn nothing_is_collected_while_another_execution_holds_a_stage_lock() {
        let aws = FakeAws::default();
        let (_, orphan) = dev_and_an_orphan(&aws).await;
        let now = Utc::now();
        aws.history.acquire(SERVICE, "stage:dev", "exec-deploy", Duration::from_secs(60), now).await.unwrap();
        let output = run(input(), &aws.deps()).await.unwrap();
        assert!(output.skipped.as_deref().is_some_and(|s| s.contains("exec-deploy")), "{output:?}");
        assert!(catalogue(&aws).contains(&format!("shop-api:{orphan}")));
        // Its own lock does not stop it.
        let output = run(Input { owner: "exec-deploy".into(), ..input() }, &aws.deps()).await.unwrap();
        assert_eq!(output.deleted_versions, [format!("shop-api:{orphan}")]);
    }

    #[tokio::test]
    async fn the_lock_of_a_new_stage_with_no_record_yet_stops_the_collection() {
        let aws = FakeAws::default();
        let (_, orphan) = dev_and_an_orphan(&aws).await;
        // A first deploy of pr-9: locked, no stage record until RecordDeployment.
        aws.history.acquire(SERVICE, "stage:pr-9", "exec-first", Duration::from_secs(60), Utc::now()).await.unwrap();
        assert!(aws.history.stage(SERVICE, "pr-9").await.unwrap().is_none());
        let output = run(input(), &aws.deps()).await.unwrap();
        let reason = output.skipped.as_deref().unwrap_or_default();
        assert!(reason.contains("stage:pr-9") && reason.contains("exec-first"), "names lease and holder: {output:?}");
        assert!(output.deleted_versions.is_empty() && output.deleted_objects.is_empty(), "{output:?}");
        assert!(catalogue(&aws).contains(&format!("shop-api:{orphan}")));
        assert!(lambda_versions(&aws).await.contains(&orphan));
    }

    #[tokio::test]
    async fn a_publish_lease_stops_the_collection_and_an_expired_one_does_not() {
        let aws = FakeAws::default();
        let (_, orphan) = dev_and_an_orphan(&aws).await;
        let lease = Duration::from_secs(60);
        let name = "publish:us-east-1/shop-api";
        aws.history.acquire(SERVICE, name, "exec-publish", lease, Utc::now()).await.unwrap();
        let output = run(input(), &aws.deps()).await.unwrap();
        let reason = output.skipped.as_deref().unwrap_or_default();
        assert!(reason.contains(name) && reason.contains("exec-publish"), "{output:?}");
        assert!(lambda_versions(&aws).await.contains(&orphan));

        // The holder died two minutes ago: its lease is over.
        let died = Utc::now() - chrono::Duration::minutes(3);
        aws.history.release(SERVICE, name, "exec-publish").await.unwrap();
        aws.history.acquire(SERVICE, name, "exec-dead", lease, died).await.unwrap();
        let output = run(input(), &aws.deps()).await.unwrap();
        assert_eq!(output.skipped, None);
        assert_eq!(output.deleted_versions, [format!("shop-api:{orphan}")]);
    }

    #[tokio::test]
    async fn an_artifact_used_within_the_grace_period_is_kept_but_a_version_needs_a_lock_or_a_reference() {
        let aws = FakeAws::default();
        let (_, orphan) = dev_and_an_orphan(&aws).await;
        use_the_orphan(&aws, &orphan, lately()).await;
        // Uploaded by a deploy that has not published yet: no version references it.
        aws.artifacts.put("shop/artifacts/c.zip", b"zip".to_vec()).await.unwrap();
        aws.history.put_artifact(SERVICE, "shop/artifacts/c.zip", lately()).await.unwrap();
        let output = run(input(), &aws.deps()).await.unwrap();
        assert_eq!(output.deleted_versions, [format!("shop-api:{orphan}")], "no lease, no reference: {output:?}");
        assert!(output.deleted_objects.is_empty(), "{output:?}");
        assert_eq!(output.kept_recent, ["shop/artifacts/b.zip", "shop/artifacts/c.zip"]);
        assert!(!lambda_versions(&aws).await.contains(&orphan));
        let all = ["shop/artifacts/a.zip", "shop/artifacts/b.zip", "shop/artifacts/c.zip"];
        assert_eq!(aws.artifacts.keys(), all);
        assert_eq!(aws.history.artifacts(SERVICE).await.unwrap(), all);
    }

    #[tokio::test]
    async fn what_was_used_longer_ago_than_the_grace_period_is_deleted() {
        let aws = FakeAws::default();
        let (_, orphan) = dev_and_an_orphan(&aws).await;
        let deps = aws.deps();
        let grace = chrono::Duration::from_std(deps.settings.garbage_grace).unwrap();
        use_the_orphan(&aws, &orphan, Utc::now() - grace - chrono::Duration::minutes(1)).await;
        let output = run(input(), &deps).await.unwrap();
        assert_eq!(output.deleted_versions, [format!("shop-api:{orphan}")]);
        assert_eq!(output.deleted_objects, ["shop/artifacts/b.zip"]);
        assert!(output.kept_recent.is_empty(), "{output:?}");
        assert!(!lambda_versions(&aws).await.contains(&orphan));
    }

    #[tokio::test]
    async fn a_version_a_deploy_marks_after_the_collection_read_it_is_kept() {
        let aws = FakeAws::default();
        let (_, orphan) = dev_and_an_orphan(&aws).await;
        // PublishVersion of another deploy reuses the orphan between the catalogue read and the
        // delete.
        let key = ("shop".to_owned(), REGION.to_owned(), "shop-api".to_owned(), format!("{orphan:0>10}"));
        aws.history.before_next("delete_version_if_unchanged", move |t| {
            t.versions.get_mut(&key).expect("the orphan is catalogued").used_at = Utc::now();
        });
        let output = run(input(), &aws.deps()).await.unwrap();
        assert!(output.deleted_versions.is_empty(), "{output:?}");
        assert_eq!(output.kept_in_use, [format!("shop-api:{orphan}")]);
        assert!(lambda_versions(&aws).await.contains(&orphan), "the version stays in Lambda");
        assert!(catalogue(&aws).contains(&format!("shop-api:{orphan}")), "and in the catalogue");
        assert!(output.deleted_objects.is_empty(), "its artifact stays with it: {output:?}");
    }

    #[tokio::test]
    async fn an_artifact_a_deploy_marks_after_the_collection_read_it_is_kept() {
        let aws = FakeAws::default();
        dev_and_an_orphan(&aws).await;
        aws.artifacts.put("shop/artifacts/c.zip", b"zip".to_vec()).await.unwrap();
        aws.history.put_artifact(SERVICE, "shop/artifacts/c.zip", long_ago()).await.unwrap();
        // The CLI of another deploy marks c.zip between the records' read and the delete.
        aws.history.before_next("delete_artifact_if_unchanged", |t| {
            t.artifacts.insert((SERVICE.to_owned(), "shop/artifacts/c.zip".to_owned()), Utc::now());
        });
        let output = run(input(), &aws.deps()).await.unwrap();
        assert!(output.kept_in_use.contains(&"shop/artifacts/c.zip".to_owned()), "{output:?}");
        assert!(!output.deleted_objects.contains(&"shop/artifacts/c.zip".to_owned()), "{output:?}");
        assert!(aws.artifacts.keys().contains(&"shop/artifacts/c.zip".to_owned()));
        assert!(aws.history.artifacts(SERVICE).await.unwrap().contains(&"shop/artifacts/c.zip".to_owned()));
    }

    #[tokio::test]
    async fn a_catalogue_entry_of_a_version_lambda_no_longer_has_is_dropped() {
        let aws = FakeAws::default();
        let (_, orphan) = dev_and_an_orphan(&aws).await;
        use_the_orphan(&aws, &orphan, lately()).await;
        // The version went with its function, or was deleted by hand.
        aws.regions.fake_functions(REGION).delete_version("shop-api", &orphan).await.unwrap();
        let output = run(input(), &aws.deps()).await.unwrap();
        assert_eq!(output.deleted_versions, [format!("shop-api:{orphan}")]);
        assert!(!catalogue(&aws).contains(&format!("shop-api:{orphan}")), "no deploy may reuse it");
        assert_eq!(output.kept_recent, ["shop/artifacts/b.zip"], "its artifact was used lately: {output:?}");
    }

    #[tokio::test]
    async fn a_record_of_an_object_the_bucket_no_longer_has_is_forgotten_so_the_next_deploy_uploads_it() {
        let aws = FakeAws::default();
        dev_and_an_orphan(&aws).await;
        aws.history.put_artifact(SERVICE, "shop/artifacts/a.zip", lately()).await.unwrap();
        aws.artifacts.delete("shop/artifacts/a.zip").await.unwrap();
        let output = run(input(), &aws.deps()).await.unwrap();
        assert_eq!(output.forgotten, ["shop/artifacts/a.zip"], "needed by dev and recent, but gone: {output:?}");
        assert!(!aws.history.artifacts(SERVICE).await.unwrap().contains(&"shop/artifacts/a.zip".to_owned()));
    }

    /// The service stack as the full example made it; `shop-worker` is then dropped by the
    /// manifest and used by prod's deployment only.
    async fn worker_kept_for_prod(aws: &FakeAws) -> crate::domain::manifest::Manifest {
        let deps = aws.deps();
        ensure_service_stack::ensure(&crate::steps::fixtures::manifest(), "exec-first", &deps).await.unwrap();
        let worker = publish(&aws.regions.fake_functions(REGION), "shop-worker", "shop/artifacts/w.zip").await;
        deployed(aws, "prod", 1, None, &[("worker", record("prod", "shop-worker", &worker, "shop/artifacts/w.zip"))])
            .await;
        let mut without_worker = crate::steps::fixtures::manifest();
        without_worker.functions.remove("worker");
        let kept = ensure_service_stack::ensure(&without_worker, "exec-dev", &deps).await.unwrap();
        assert_eq!(kept.kept["worker"], ["prod"]);
        without_worker
    }

    #[tokio::test]
    async fn a_kept_function_goes_with_its_log_group_once_no_live_stage_uses_it() {
        let aws = FakeAws::default();
        let manifest = worker_kept_for_prod(&aws).await;
        let with_manifest = || Input { manifest: Some(manifest.clone()), ..input() };
        let output = run(with_manifest(), &aws.deps()).await.unwrap();
        assert!(output.removed_functions.is_empty(), "prod uses it: {output:?}");
        assert!(aws.regions.fake_functions(REGION).exists("shop-worker"));

        let mut prod = aws.history.stage(SERVICE, "prod").await.unwrap().unwrap();
        prod.state = StageState::Removed;
        aws.history.put_stage(&prod).await.unwrap();
        let output = run(with_manifest(), &aws.deps()).await.unwrap();
        assert_eq!(output.removed_functions, ["shop-worker"]);
        assert!(!aws.regions.fake_functions(REGION).exists("shop-worker"));
        let template = aws.regions.fake_stacks(REGION).last_template(SERVICE).unwrap();
        assert!(!template.contains("shop-worker"), "function and log group are gone: {template}");
        let recorded = aws.history.service(SERVICE).await.unwrap().unwrap();
        assert!(!recorded.functions.contains_key("worker"));
        assert_eq!(aws.history.lock(SERVICE, ensure_service_stack::SERVICE_LEASE).await.unwrap(), None);
        assert!(run(with_manifest(), &aws.deps()).await.unwrap().removed_functions.is_empty(), "once");
    }

    #[tokio::test]
    async fn without_a_manifest_the_service_stack_is_left_as_it_is() {
        let aws = FakeAws::default();
        worker_kept_for_prod(&aws).await;
        let mut prod = aws.history.stage(SERVICE, "prod").await.unwrap().unwrap();
        prod.state = StageState::Removed;
        aws.history.put_stage(&prod).await.unwrap();
        let updates = aws.regions.fake_stacks(REGION).calls("UpdateStack");
        let output = run(input(), &aws.deps()).await.unwrap();
        assert!(output.removed_functions.is_empty());
        assert_eq!(aws.regions.fake_stacks(REGION).calls("UpdateStack"), updates);
    }

    #[tokio::test]
    async fn collecting_twice_is_harmless() {
        let aws = FakeAws::default();
        dev_and_an_orphan(&aws).await;
        run(input(), &aws.deps()).await.unwrap();
        let again = run(input(), &aws.deps()).await.unwrap();
        assert!(again.deleted_versions.is_empty() && again.deleted_objects.is_empty(), "{again:?}");
    }
}
