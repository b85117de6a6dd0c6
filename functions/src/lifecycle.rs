//! What the lifecycle operations decide in `Plan`, before anything changes: the deployment a
//! rollback returns to, the origin a reset or clone copies, what a remove takes away, and the
//! stages cleanup removes. Reads only, so every refusal here leaves the stage as it was.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::domain::history::{Deployment, DeploymentKind, DeploymentStatus, FunctionRecord, StageRecord, StageState};
use crate::domain::manifest::Manifest;
use crate::error::StepError;
use crate::ports::Deps;
use crate::steps::ensure_stage_stack::template_key;
use crate::steps::plan::Request;
use crate::steps::state::{ArtifactRef, FunctionPlan, Published, Source};

/// What an operation on one stage starts from, beside what every operation reads.
#[derive(Debug, Default)]
pub struct Start {
    /// The deployment the functions come from (rollback, reset, clone).
    pub source: Option<Source>,
    /// The functions, when they come from the history rather than the manifest (rollback,
    /// remove).
    pub functions: Option<Vec<FunctionPlan>>,
    /// Where the aliases go without publishing (rollback).
    pub published: Option<Vec<Published>>,
    /// Each function's code, when it is another stage's (reset, clone).
    pub artifacts: Option<BTreeMap<String, ArtifactRef>>,
    /// The stage's region, when it is the recorded one rather than the manifest's (remove: the
    /// stack is where it was made, even if the manifest moved the stage since).
    pub region: Option<String>,
}

/// The stage's deployment history as `Plan` read it.
#[derive(Debug, Clone, Copy)]
pub struct StageNow<'a> {
    /// The service.
    pub service: &'a str,
    /// The stage.
    pub stage: &'a str,
    /// Its record, if the stage is live.
    pub live: Option<&'a StageRecord>,
    /// Its active deployment, if it has one.
    pub active: Option<&'a Deployment>,
}

impl StageNow<'_> {
    /// The live record, or `StageUnknown`.
    fn live(&self) -> Result<&StageRecord, StepError> {
        self.live
            .ok_or_else(|| StepError::StageUnknown { service: self.service.to_owned(), stage: self.stage.to_owned() })
    }
}

/// Decides what `operation` does to the stage, or refuses.
pub async fn with_stage(
    operation: &str,
    request: &Request,
    manifest: &Manifest,
    now: StageNow<'_>,
    deps: &Deps,
) -> Result<Start, StepError> {
    match operation {
        "deploy" => Ok(Start::default()),
        "rollback" => rollback(request.to, now.live()?, now, deps).await,
        "reset" => {
            now.live()?;
            copy(operation, request, manifest, now, deps).await
        }
        "clone" => match now.live {
            Some(live) => Err(StepError::StageExists {
                stage: now.stage.to_owned(),
                advice: format!(
                    "it is live (deployment {}); to give it another stage's code use `aliasflow reset --stage {} --from <stage>`, or remove it first with `aliasflow remove --stage {}`",
                    live.active.map_or_else(|| "none".to_owned(), |id| id.to_string()),
                    now.stage,
                    now.stage
                ),
            }),
            None => copy(operation, request, manifest, now, deps).await,
        },
        "remove" => {
            let live = now.live()?;
            let functions = now.active.map(|active| {
                active.functions.iter().map(|(name, record)| plan_of(name, record, Some(record))).collect()
            });
            let region = Some(live.region.clone());
            Ok(Start { functions: Some(functions.unwrap_or_default()), region, ..Start::default() })
        }
        other => Err(StepError::InputInvalid(format!("operation {other} takes no stage"))),
    }
}

/// Decides what `operation` does without a stage: nothing to decide for a deploy, the live
/// stages that keep the service stack from being removed, or the stages cleanup removes.
pub async fn without_stage(operation: &str, manifest: &Manifest, deps: &Deps) -> Result<Vec<String>, StepError> {
    match operation {
        "deploy" => Ok(Vec::new()),
        "remove" => {
            let live = live_stages(&manifest.service, deps).await?;
            match live.first() {
                None => Ok(Vec::new()),
                Some(first) => Err(StepError::StageExists {
                    stage: first.stage.clone(),
                    advice: format!(
                        "the service stack is removed only after every stage ({}); `aliasflow remove` without --stage removes them all first",
                        live.iter().map(|r| r.stage.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                }),
            }
        }
        "cleanup" => expired(manifest, deps).await,
        other => Err(StepError::InputInvalid(format!("{other} needs a stage"))),
    }
}

async fn live_stages(service: &str, deps: &Deps) -> Result<Vec<StageRecord>, StepError> {
    let stages = deps.history.stages(service).await?;
    Ok(stages.into_iter().filter(|r| r.state == StageState::Active).collect())
}

/// A function's plan from a recorded version: its code is the record's.
fn plan_of(name: &str, record: &FunctionRecord, previous: Option<&FunctionRecord>) -> FunctionPlan {
    FunctionPlan {
        name: name.to_owned(),
        function_name: record.function_name.clone(),
        region: record.region.clone(),
        artifact: ArtifactRef { key: record.artifact_key.clone(), code_sha256: record.code_sha256.clone() },
        previous: previous.cloned(),
        known: Vec::new(),
    }
}

/// Rollback: the target's records are where the aliases go.
async fn rollback(to: Option<u64>, live: &StageRecord, now: StageNow<'_>, deps: &Deps) -> Result<Start, StepError> {
    let stage = now.stage;
    let nothing = |reason: String| StepError::NothingToRollBack { stage: stage.to_owned(), reason };
    let active = now.active.ok_or_else(|| nothing("it has no succeeded deployment yet".to_owned()))?;
    let target = match to {
        Some(id) => chosen(id, active, now, deps).await?,
        None => {
            // Walk back past deployments that are the active one over again (its code and its
            // stage stack: a rollback to it, a redeploy from before no-change deploys wrote no
            // row): a rollback always changes something. A stack change alone is a change.
            let mut from = active.clone();
            loop {
                let id = from.rollback_to.ok_or_else(|| {
                    if from.id == active.id {
                        nothing(format!("its active deployment {} has no deployment before it", active.id))
                    } else {
                        nothing(format!(
                            "every deployment before the active deployment {} down to {} runs the same code on the same stage stack",
                            active.id, from.id
                        ))
                    }
                })?;
                let target = deps.history.deployment(now.service, stage, id).await?.ok_or_else(|| {
                    nothing(format!(
                        "deployment {id}, the one before deployment {}, is no longer retained (manifest `retain`)",
                        from.id
                    ))
                })?;
                if !target.same_code(active) || target.stage_template_hash != active.stage_template_hash {
                    break target;
                }
                from = target;
            }
        }
    };
    let restore_stack = target.stage_template_hash.clone().filter(|hash| live.template_hash.as_ref() != Some(hash));
    if let Some(hash) = &restore_stack {
        let key = template_key(now.service, hash);
        if !deps.artifacts.exists(&key).await? {
            return Err(StepError::Conflict(format!(
                "the stage stack of deployment {} differs from the stack now, and its template is not kept (s3://{}/{key}); deploy stage {stage} instead",
                target.id, deps.settings.bucket
            )));
        }
    }
    let at_stage = |record: &FunctionRecord| FunctionRecord { alias: stage.to_owned(), ..record.clone() };
    let mut published: Vec<Published> = target
        .functions
        .iter()
        .map(|(name, record)| Published { name: name.clone(), new_version: false, record: at_stage(record) })
        .collect();
    // A function the target did not have keeps its alias, and the record says where it points.
    published.extend(
        active
            .functions
            .iter()
            .filter(|(name, _)| !target.functions.contains_key(*name))
            .map(|(name, record)| Published { name: name.clone(), new_version: false, record: at_stage(record) }),
    );
    let functions = published
        .iter()
        .map(|p| {
            let same_function =
                |a: &&FunctionRecord| a.function_name == p.record.function_name && a.region == p.record.region;
            plan_of(&p.name, &p.record, active.functions.get(&p.name).filter(same_function))
        })
        .collect();
    let source =
        Source { stage: stage.to_owned(), deployment: target.id, rollback_to: target.rollback_to, restore_stack };
    Ok(Start { source: Some(source), functions: Some(functions), published: Some(published), ..Start::default() })
}

/// `rollback --to ID`: a retained, succeeded deployment of this stage whose versions all exist.
async fn chosen(id: u64, active: &Deployment, now: StageNow<'_>, deps: &Deps) -> Result<Deployment, StepError> {
    let (service, stage) = (now.service, now.stage);
    let refuse = |reason: String| StepError::DeploymentUnknown { stage: stage.to_owned(), id, reason };
    if id == active.id {
        return Err(refuse("it is the active deployment already".to_owned()));
    }
    let Some(target) = deps.history.deployment(service, stage, id).await? else {
        let mut elsewhere = Vec::new();
        for other in deps.history.stages(service).await?.iter().filter(|r| r.stage != stage) {
            if deps.history.deployment(service, &other.stage, id).await?.is_some() {
                elsewhere.push(other.stage.clone());
            }
        }
        let mut reason = format!("stage {stage} has no retained deployment {id}");
        if !elsewhere.is_empty() {
            reason.push_str(&format!(
                " (ids count per stage: {id} is a deployment of stage {}, and a stage rolls back only to its own)",
                elsewhere.join(", ")
            ));
        }
        return Err(refuse(reason));
    };
    if target.status != DeploymentStatus::Succeeded {
        return Err(refuse("it failed".to_owned()));
    }
    if matches!(target.kind, DeploymentKind::Remove | DeploymentKind::Unlock) {
        return Err(refuse(format!("it is a {} record, not a deployment", target.kind.as_str())));
    }
    // Garbage collection deletes versions only of deployments from before a removal of the
    // stage; the catalogue says which still exist.
    let catalogue: BTreeSet<(String, String, String)> =
        deps.history.versions(service).await?.into_iter().map(|v| (v.region, v.function_name, v.version)).collect();
    let gone = target
        .functions
        .iter()
        .find(|(_, r)| !catalogue.contains(&(r.region.clone(), r.function_name.clone(), r.version.clone())));
    if let Some((name, record)) = gone {
        return Err(refuse(format!(
            "version {} of {} that it points {name} at no longer exists (garbage collected)",
            record.version, record.function_name
        )));
    }
    Ok(target)
}

/// Reset and clone: every function's code is the origin's active code.
async fn copy(
    operation: &str,
    request: &Request,
    manifest: &Manifest,
    now: StageNow<'_>,
    deps: &Deps,
) -> Result<Start, StepError> {
    let service = now.service;
    let origin = request
        .from
        .as_deref()
        .ok_or_else(|| StepError::InputInvalid(format!("{operation} needs `from`: the stage whose code to copy")))?;
    let invalid = |reason: String| StepError::OriginInvalid { origin: origin.to_owned(), reason };
    if origin == now.stage {
        return Err(invalid("a stage cannot be copied onto itself".to_owned()));
    }
    let deploy_first = format!("deploy it first with `aliasflow deploy --stage {origin}`");
    let record = deps.history.stage(service, origin).await?.filter(|r| r.state == StageState::Active);
    let record = record.ok_or_else(|| {
        invalid(format!("service {service} has no live stage {origin} (never deployed, or removed); {deploy_first}"))
    })?;
    let id = record.active.ok_or_else(|| invalid(format!("it has no succeeded deployment; {deploy_first}")))?;
    let deployment =
        deps.history.deployment(service, origin, id).await?.ok_or_else(|| {
            invalid(format!("its active deployment {id} is missing from the history; {deploy_first}"))
        })?;
    let mut artifacts = BTreeMap::new();
    for name in manifest.functions.keys() {
        let record = deployment.functions.get(name).ok_or_else(|| {
            invalid(format!(
                "its deployment {id} has no function {name}, which the manifest has; deploy {origin} first so it has every function"
            ))
        })?;
        artifacts.insert(
            name.clone(),
            ArtifactRef { key: record.artifact_key.clone(), code_sha256: record.code_sha256.clone() },
        );
    }
    let source = Source { stage: origin.to_owned(), deployment: id, rollback_to: None, restore_stack: None };
    Ok(Start { source: Some(source), artifacts: Some(artifacts), ..Start::default() })
}

/// The live stages whose `ttl` has passed since their last deploy (or, never deployed well,
/// since their newest attempt).
async fn expired(manifest: &Manifest, deps: &Deps) -> Result<Vec<String>, StepError> {
    let service = &manifest.service;
    let now = deps.clock.now();
    let mut expired = Vec::new();
    for record in live_stages(service, deps).await? {
        let Some(ttl) = manifest.stage_settings(&record.stage).ttl else { continue };
        let last = match record.last_deployed_at {
            Some(time) => Some(time),
            None => deps.history.deployments(service, &record.stage, 1, None).await?.items.first().map(|d| d.time),
        };
        let ttl = chrono::Duration::seconds(i64::try_from(ttl.seconds).unwrap_or(i64::MAX));
        let ends = last.map(|time| time.checked_add_signed(ttl).unwrap_or(DateTime::<Utc>::MAX_UTC));
        if ends.is_none_or(|ends| ends <= now) {
            expired.push(record.stage);
        }
    }
    Ok(expired)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::domain::history::{Deployment, StageState};
    use crate::fakes::FakeAws;
    use crate::ports::{Artifacts, History};
    use crate::steps::ensure_stage_stack::template_key;
    use crate::steps::fixtures::{deployed, manifest, record, SERVICE};
    use crate::steps::plan::{run, Input};
    use crate::steps::state::Plan;

    async fn plan(aws: &FakeAws, operation: &str, request: serde_json::Value) -> Result<Plan, crate::error::StepError> {
        let mut request = request;
        request["manifest"] = serde_json::to_value(manifest()).unwrap();
        run(Input { request, execution: "exec-1".into(), operation: operation.into() }, &aws.deps()).await
    }

    /// Deployments 1, 2, 3 of `stage`, each with api version = id and worker version 1.
    async fn deploys(aws: &FakeAws, stage: &str, count: u64) -> Vec<Deployment> {
        let mut all = Vec::new();
        for id in 1..=count {
            let functions = [
                ("api", record(stage, "shop-api", &id.to_string(), &format!("shop/artifacts/api-{id}.zip"))),
                ("thumbnailer", record(stage, &format!("shop-{stage}-thumbnailer"), "1", "shop/artifacts/t.zip")),
                ("worker", record(stage, "shop-worker", "1", "shop/artifacts/w.zip")),
            ];
            for (_, record) in &functions {
                aws.history.put_artifact(SERVICE, &record.artifact_key, chrono::Utc::now()).await.unwrap();
            }
            all.push(deployed(aws, stage, id, (id > 1).then(|| id - 1), &functions).await);
        }
        all
    }

    #[tokio::test]
    async fn a_rollback_returns_to_the_deployment_before_the_active_one_and_carries_its_rollback_to() {
        let aws = FakeAws::default();
        let dev = deploys(&aws, "dev", 3).await;
        let plan = plan(&aws, "rollback", json!({ "stage": "dev" })).await.unwrap();
        let source = plan.source.unwrap();
        assert_eq!((source.deployment, source.rollback_to, source.restore_stack), (2, Some(1), None));
        assert_eq!(plan.deployment_id, 4);
        let published = plan.published.unwrap();
        let to: Vec<(&str, &str)> = published.iter().map(|p| (p.name.as_str(), p.record.version.as_str())).collect();
        assert_eq!(to, [("api", "2"), ("thumbnailer", "1"), ("worker", "1")]);
        assert!(published.iter().all(|p| !p.new_version && p.record == dev[1].functions[&p.name]));
        let api = plan.functions.iter().find(|f| f.name == "api").unwrap();
        assert_eq!(api.previous.as_ref().map(|p| p.version.as_str()), Some("3"), "what the alias points at now");
    }

    #[tokio::test]
    async fn a_rollback_walks_past_deployments_that_run_the_active_code() {
        let aws = FakeAws::default();
        let dev = deploys(&aws, "dev", 2).await;
        // Deployment 3 redeployed deployment 2's code (say, a stack change only).
        let mut same = dev[1].clone();
        (same.id, same.rollback_to, same.execution) = (3, Some(2), "exec-dev-3".into());
        let stage = aws.history.stage(SERVICE, "dev").await.unwrap().unwrap();
        let stage = crate::domain::history::StageRecord { active: Some(3), next_id: 4, ..stage };
        crate::steps::fixtures::commit_held(&aws, &same, &stage).await;
        let planned = plan(&aws, "rollback", json!({ "stage": "dev" })).await.unwrap();
        assert_eq!(planned.source.unwrap().deployment, 1, "not 2: it runs the code of 3");

        let aws = FakeAws::default();
        let dev = deploys(&aws, "dev", 1).await;
        let mut same = dev[0].clone();
        (same.id, same.rollback_to, same.execution) = (2, Some(1), "exec-dev-2".into());
        let stage = aws.history.stage(SERVICE, "dev").await.unwrap().unwrap();
        let stage = crate::domain::history::StageRecord { active: Some(2), next_id: 3, ..stage };
        crate::steps::fixtures::commit_held(&aws, &same, &stage).await;
        let err = plan(&aws, "rollback", json!({ "stage": "dev" })).await.unwrap_err();
        assert_eq!(err.error_type(), "NothingToRollBack");
        assert!(err.to_string().contains("same code"), "{err}");
    }

    #[tokio::test]
    async fn a_rollback_across_a_stack_change_restores_the_kept_template_and_refuses_without_it() {
        let aws = FakeAws::default();
        let mut dev = deploys(&aws, "dev", 2).await;
        dev[0].stage_template_hash = Some("template-0".into());
        let stage = aws.history.stage(SERVICE, "dev").await.unwrap().unwrap();
        crate::steps::fixtures::commit_held(&aws, &dev[0], &stage).await;
        let err = plan(&aws, "rollback", json!({ "stage": "dev" })).await.unwrap_err();
        assert_eq!(err.error_type(), "Conflict");
        assert!(err.to_string().contains("deploy stage dev instead"), "{err}");
        aws.artifacts.put(&template_key(SERVICE, "template-0"), b"{}".to_vec()).await.unwrap();
        let plan = plan(&aws, "rollback", json!({ "stage": "dev" })).await.unwrap();
        assert_eq!(plan.source.unwrap().restore_stack.as_deref(), Some("template-0"));
    }

    #[tokio::test]
    async fn rollback_to_an_id_of_another_stage_names_that_stage_and_nothing_before_the_first_is_refused() {
        let aws = FakeAws::default();
        deploys(&aws, "dev", 1).await;
        deploys(&aws, "prod", 2).await;
        let err = plan(&aws, "rollback", json!({ "stage": "dev", "to": 2 })).await.unwrap_err();
        assert_eq!(err.error_type(), "DeploymentUnknown");
        assert!(err.to_string().contains("deployment of stage prod"), "{err}");
        let err = plan(&aws, "rollback", json!({ "stage": "dev" })).await.unwrap_err();
        assert_eq!(err.error_type(), "NothingToRollBack");
        let err = plan(&aws, "rollback", json!({ "stage": "qa" })).await.unwrap_err();
        assert_eq!(err.error_type(), "StageUnknown");
    }

    #[tokio::test]
    async fn a_reset_takes_the_origins_code_for_every_function_and_records_where_it_came_from() {
        let aws = FakeAws::default();
        deploys(&aws, "dev", 1).await;
        deploys(&aws, "prod", 2).await;
        let plan = plan(&aws, "reset", json!({ "stage": "dev", "from": "prod" })).await.unwrap();
        assert_eq!(plan.source.map(|s| s.origin()).as_deref(), Some("prod#2"));
        let api = plan.functions.iter().find(|f| f.name == "api").unwrap();
        assert_eq!(api.artifact.key, "shop/artifacts/api-2.zip");
        let thumbnailer = plan.functions.iter().find(|f| f.name == "thumbnailer").unwrap();
        assert_eq!(thumbnailer.function_name, "shop-dev-thumbnailer", "dev's own instance gets prod's code");
        assert!(plan.published.is_none(), "PublishVersions decides");
    }

    #[tokio::test]
    async fn a_reset_from_itself_an_unknown_origin_or_one_missing_a_function_is_refused() {
        let aws = FakeAws::default();
        deploys(&aws, "dev", 1).await;
        let refused = |request: serde_json::Value| {
            let aws = aws.clone();
            async move { plan(&aws, "reset", request).await.unwrap_err() }
        };
        let err = refused(json!({ "stage": "dev", "from": "dev" })).await;
        assert_eq!(err.error_type(), "OriginInvalid");
        let err = refused(json!({ "stage": "dev", "from": "prod" })).await;
        assert!(err.to_string().contains("aliasflow deploy --stage prod"), "{err}");
        let err = refused(json!({ "stage": "dev" })).await;
        assert_eq!(err.error_type(), "InputInvalid");
        let api = record("prod", "shop-api", "1", "shop/artifacts/api-1.zip");
        deployed(&aws, "prod", 1, None, &[("api", api)]).await;
        let err = refused(json!({ "stage": "dev", "from": "prod" })).await;
        assert!(err.to_string().contains("no function thumbnailer"), "{err}");
    }

    #[tokio::test]
    async fn a_clone_onto_a_live_stage_is_refused_with_the_advice_to_reset() {
        let aws = FakeAws::default();
        deploys(&aws, "dev", 1).await;
        deploys(&aws, "prod", 1).await;
        let err = plan(&aws, "clone", json!({ "stage": "dev", "from": "prod" })).await.unwrap_err();
        assert_eq!(err.error_type(), "StageExists");
        assert!(err.to_string().contains("aliasflow reset --stage dev --from <stage>"), "{err}");
        let plan = plan(&aws, "clone", json!({ "stage": "feature", "from": "prod" })).await.unwrap();
        assert_eq!(plan.deployment_id, 1);
    }

    #[tokio::test]
    async fn cleanup_finds_the_live_stages_whose_ttl_passed_since_their_last_deploy() {
        let aws = FakeAws::default();
        for stage in ["dev", "pr-1", "pr-2", "pr-3"] {
            deploys(&aws, stage, 1).await;
        }
        for (stage, age_days, state) in
            [("dev", 30, StageState::Active), ("pr-1", 8, StageState::Active), ("pr-3", 8, StageState::Removed)]
        {
            let mut record = aws.history.stage(SERVICE, stage).await.unwrap().unwrap();
            record.last_deployed_at = Some(chrono::Utc::now() - chrono::Duration::days(age_days));
            record.state = state;
            aws.history.put_stage(&record).await.unwrap();
        }
        let plan = plan(&aws, "cleanup", json!({})).await.unwrap();
        assert_eq!(plan.expired, ["pr-1"], "dev has no ttl, pr-2 is fresh, pr-3 is gone");
    }

    #[tokio::test]
    async fn a_remove_goes_where_the_stage_was_made_and_takes_what_its_active_deployment_recorded() {
        let aws = FakeAws::default();
        deploys(&aws, "dev", 1).await;
        let mut record = aws.history.stage(SERVICE, "dev").await.unwrap().unwrap();
        record.region = "eu-west-1".into();
        aws.history.put_stage(&record).await.unwrap();
        let plan = plan(&aws, "remove", json!({ "stage": "dev" })).await.unwrap();
        assert_eq!((plan.region.as_str(), plan.deployment_id), ("eu-west-1", 2));
        let names: Vec<&str> = plan.functions.iter().map(|f| f.function_name.as_str()).collect();
        assert_eq!(names, ["shop-api", "shop-dev-thumbnailer", "shop-worker"]);
    }

    #[tokio::test]
    async fn the_service_stack_is_not_removed_while_a_stage_is_live() {
        let aws = FakeAws::default();
        deploys(&aws, "dev", 1).await;
        let err = plan(&aws, "remove", json!({})).await.unwrap_err();
        assert_eq!(err.error_type(), "StageExists");
        assert!(err.to_string().contains("(dev)"), "{err}");
    }
}
