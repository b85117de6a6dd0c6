//! `CollectGarbage` (remove, cleanup): deletes the versions and stored objects nothing needs any
//! more.
//!
//! - A version aliasflow published goes when no retained deployment of a live stage references
//!   it and no alias points at it. Lambda's `ListAliases` decides the second, so an alias made
//!   outside aliasflow keeps its version too; such a version is reported, never deleted.
//! - A code artifact (`<service>/artifacts/...`) goes when no retained deployment of a live
//!   stage and no version left in the catalogue references it; a kept stage template
//!   (`<service>/templates/...`) when no live stage was brought to it by a retained deployment.
//!
//! While another execution holds a live stage's lock nothing is collected: a deploy may be
//! between publishing a version and pointing an alias at it. Safe to repeat: what is gone
//! already is not an error.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::domain::history::{Deployment, StageRecord, StageState, VersionRecord};
use crate::error::StepError;
use crate::ports::Deps;
use crate::steps::acquire_lock::stage_lock;
use crate::steps::ensure_stage_stack::template_key;

/// What `CollectGarbage` reads of the state.
#[derive(Debug, Deserialize)]
pub struct Input {
    /// The service.
    pub service: String,
    /// The execution: its own stage lock does not stop the collection.
    pub owner: String,
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
    /// Why nothing was collected, if so.
    pub skipped: Option<String>,
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
}

/// Collects the garbage.
#[tracing::instrument(name = "CollectGarbage", skip_all, fields(service = %input.service))]
pub async fn run(input: Input, deps: &Deps) -> Result<Output, StepError> {
    let service = input.service.as_str();
    let stages = deps.history.stages(service).await?;
    let live: Vec<&StageRecord> = stages.iter().filter(|r| r.state == StageState::Active).collect();
    if let Some(reason) = busy(service, &input.owner, &live, deps).await? {
        tracing::info!(%reason, "garbage collection skipped");
        return Ok(Output { skipped: Some(reason), ..Output::default() });
    }
    let referenced = referenced(service, &live, deps).await?;

    let catalogue = deps.history.versions(service).await?;
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
    for result in results {
        let (deleted, kept) = result?;
        output.deleted_versions.extend(deleted.iter().map(|v| format!("{}:{}", v.function_name, v.version)));
        for (version, aliases) in kept {
            output.kept_versions.push(format!("{}:{} (alias {aliases})", version.function_name, version.version));
            remaining.push(version);
        }
    }

    let mut needed = referenced.artifacts;
    needed.extend(remaining.iter().map(|v| v.artifact_key.clone()));
    let mut objects: BTreeSet<String> = deps.history.artifacts(service).await?.into_iter().collect();
    objects.extend(deps.artifacts.list(&format!("{service}/artifacts/")).await?);
    let mut doomed: Vec<(String, bool)> =
        objects.into_iter().filter(|k| !needed.contains(k)).map(|k| (k, true)).collect();
    let templates = deps.artifacts.list(&format!("{service}/templates/")).await?;
    let kept_templates: BTreeSet<String> =
        referenced.templates.iter().map(|hash| template_key(service, hash)).collect();
    doomed.extend(templates.into_iter().filter(|k| !kept_templates.contains(k)).map(|k| (k, false)));
    let results = super::bounded(doomed, deps.settings.parallelism, |(key, artifact)| async move {
        deps.artifacts.delete(&key).await?;
        if artifact {
            deps.history.delete_artifact(service, &key).await?;
        }
        Ok::<_, StepError>(key)
    })
    .await;
    output.deleted_objects = results.into_iter().collect::<Result<_, _>>()?;

    output.deleted_versions.sort();
    output.kept_versions.sort();
    output.deleted_objects.sort();
    tracing::info!(
        versions = output.deleted_versions.len(),
        objects = output.deleted_objects.len(),
        kept = ?output.kept_versions,
        "garbage collected"
    );
    Ok(output)
}

/// Another execution's unexpired lock on a live stage, as a sentence.
async fn busy(service: &str, owner: &str, live: &[&StageRecord], deps: &Deps) -> Result<Option<String>, StepError> {
    let now = deps.clock.now();
    for record in live {
        if let Some(lock) = deps.history.lock(service, &stage_lock(&record.stage)).await? {
            if lock.owner != owner && lock.expires_at > now {
                return Ok(Some(format!(
                    "stage {} is locked by {} until {}, which may be publishing; collected on the next run",
                    record.stage,
                    lock.owner,
                    lock.expires_at.to_rfc3339()
                )));
            }
        }
    }
    Ok(None)
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

/// Deletes the unreferenced versions of one function that no alias points at; returns those
/// deleted, and those kept with the aliases that hold them.
async fn collect_versions(
    service: &str,
    (region, function): (String, String),
    versions: Vec<VersionRecord>,
    deps: &Deps,
) -> Result<(Vec<VersionRecord>, Vec<(VersionRecord, String)>), StepError> {
    let lambda = deps.regions.functions(&region);
    let aliases = lambda.aliases(&function).await?;
    let mut deleted = Vec::new();
    let mut kept = Vec::new();
    for version in versions {
        let holders: Vec<&str> =
            aliases.iter().filter(|a| a.version == version.version).map(|a| a.alias.as_str()).collect();
        if !holders.is_empty() {
            tracing::warn!(%function, version = %version.version, aliases = ?holders, "no deployment needs it, but an alias does: kept");
            kept.push((version, holders.join(", ")));
            continue;
        }
        match lambda.delete_version(&function, &version.version).await {
            Ok(()) => {}
            // An alias was pointed at it after the listing: Lambda refuses, and so it stays.
            Err(error) if error.code == "ResourceConflictException" => {
                kept.push((version, "created meanwhile".to_owned()));
                continue;
            }
            Err(error) => return Err(error.into()),
        }
        deps.history.delete_version(service, &version).await?;
        tracing::info!(%function, version = %version.version, "version deleted");
        deleted.push(version);
    }
    Ok((deleted, kept))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::history::StageState;
    use crate::fakes::FakeAws;
    use crate::ports::{Artifacts, Functions, History};
    use crate::steps::fixtures::{catalogued, deployed, publish, record, REGION, SERVICE};

    fn input() -> Input {
        Input { service: SERVICE.into(), owner: "exec-gc".into() }
    }

    /// dev points shop-api at version 1 (code a.zip); version 2 (b.zip) is in the catalogue only.
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
            aws.history.put_artifact(SERVICE, key).await.unwrap();
        }
        (kept, orphan)
    }

    fn catalogue(aws: &FakeAws) -> Vec<String> {
        aws.history.snapshot().versions.values().map(|v| format!("{}:{}", v.function_name, v.version)).collect()
    }

    #[tokio::test]
    async fn an_orphaned_version_and_its_artifact_are_deleted_and_forgotten_and_what_dev_uses_stays() {
        let aws = FakeAws::default();
        let (kept, orphan) = dev_and_an_orphan(&aws).await;
        let output = run(input(), &aws.deps()).await.unwrap();
        assert_eq!(output.deleted_versions, [format!("shop-api:{orphan}")]);
        assert_eq!(output.deleted_objects, ["shop/artifacts/b.zip"]);
        let versions = aws.regions.fake_functions(REGION).versions("shop-api").await.unwrap();
        assert_eq!(versions.iter().map(|v| v.version.as_str()).collect::<Vec<_>>(), [kept.as_str()]);
        assert_eq!(catalogue(&aws), [format!("shop-api:{kept}")]);
        assert_eq!(aws.artifacts.keys(), ["shop/artifacts/a.zip"]);
        assert_eq!(aws.history.artifacts(SERVICE).await.unwrap(), ["shop/artifacts/a.zip"]);
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
        let now = chrono::Utc::now();
        aws.history.acquire(SERVICE, "stage:dev", "exec-deploy", Duration::from_secs(60), now).await.unwrap();
        let output = run(input(), &aws.deps()).await.unwrap();
        assert!(output.skipped.as_deref().is_some_and(|s| s.contains("exec-deploy")), "{output:?}");
        assert!(catalogue(&aws).contains(&format!("shop-api:{orphan}")));
        // Its own lock does not stop it.
        let output = run(Input { owner: "exec-deploy".into(), ..input() }, &aws.deps()).await.unwrap();
        assert_eq!(output.deleted_versions, [format!("shop-api:{orphan}")]);
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
