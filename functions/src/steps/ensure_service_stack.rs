//! `EnsureServiceStack`: brings the service stack (`<service>`, home region) to the manifest's
//! service template: function definitions, service log groups, alias-independent resources and
//! the REST API. Shared functions the stack defines that the manifest dropped (or made instances
//! per stage) stay while a live stage's active or retained deployment uses them.
//!
//! One execution changes the stack at a time: it holds the service lease around reading the
//! record and converging, and a second gets `ServiceLocked`, which the definitions retry. Skipped
//! without a stack call when the recorded template hash is the target's. Safe to repeat: an
//! up-to-date stack is left alone, and a run that died mid-update left the record's hash
//! unknown, so the next one converges the stack.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::converge::{converge, Target, Tools};
use crate::domain::history::{ServiceRecord, StageState};
use crate::domain::manifest::Manifest;
use crate::domain::{naming, template};
use crate::error::StepError;
use crate::ports::{Deps, LockOutcome};
use crate::steps::state::StackResult;

/// The name of the service stack's lease in the history.
pub const SERVICE_LEASE: &str = "service-stack";

/// What `EnsureServiceStack` reads of the state.
#[derive(Debug, Deserialize)]
pub struct Input {
    /// The manifest.
    pub manifest: Manifest,
    /// The execution: owner of the service lease.
    pub owner: String,
}

/// The service template's parameter values: where the placeholder code is, for the parameters
/// the template declares (CloudFormation refuses undeclared ones).
pub fn parameters(template: &serde_json::Value, deps: &Deps) -> BTreeMap<String, String> {
    let declared = template::parameter_names(template);
    [("ArtifactBucket", &deps.settings.bucket), ("PlaceholderKey", &deps.settings.placeholder_key)]
        .into_iter()
        .filter(|(key, _)| declared.iter().any(|d| d == key))
        .map(|(key, value)| (key.to_owned(), value.clone()))
        .collect()
}

/// Creates or updates the service stack and records it.
#[tracing::instrument(name = "EnsureServiceStack", skip_all, fields(service = %input.manifest.service))]
pub async fn run(input: Input, deps: &Deps) -> Result<StackResult, StepError> {
    ensure(&input.manifest, &input.owner, deps).await
}

/// Brings the service stack to `manifest` plus the shared functions live stages still use, under
/// the service lease of `owner`; `ServiceLocked` while another execution holds it. Garbage
/// collection calls it too, to drop what no stage uses any more.
pub async fn ensure(manifest: &Manifest, owner: &str, deps: &Deps) -> Result<StackResult, StepError> {
    let service = manifest.service.as_str();
    let now = deps.clock.now();
    match deps.history.acquire(service, SERVICE_LEASE, owner, deps.settings.service_lease, now).await? {
        LockOutcome::Acquired(_) => {}
        LockOutcome::Held(lock) => {
            return Err(StepError::ServiceLocked {
                service: service.to_owned(),
                holder: lock.owner,
                until: lock.expires_at.to_rfc3339(),
            });
        }
    }
    let result = converge_service(manifest, deps).await;
    // The lease expires by itself if this fails; releasing early lets the other stage go on.
    if let Err(error) = deps.history.release(service, SERVICE_LEASE, owner).await {
        tracing::warn!(%error, "could not release the service lease; it will expire");
    }
    result
}

/// The stages whose active or retained deployments use each function of the home region:
/// physical function name to stage names. Live stages only: a removed stage holds nothing.
pub async fn users(manifest: &Manifest, deps: &Deps) -> Result<BTreeMap<String, BTreeSet<String>>, StepError> {
    let service = manifest.service.as_str();
    let mut users: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let stages = deps.history.stages(service).await?;
    for stage in stages.iter().filter(|s| s.state == StageState::Active) {
        let mut start = None;
        loop {
            let page = deps.history.deployments(service, &stage.stage, 100, start).await?;
            for record in page.items.iter().flat_map(|d| d.functions.values()) {
                if record.region == manifest.region {
                    users.entry(record.function_name.clone()).or_default().insert(stage.stage.clone());
                }
            }
            match page.next {
                Some(next) => start = Some(next),
                None => break,
            }
        }
    }
    Ok(users)
}

/// The work under the lease: the record as it is now, the kept functions, the stack.
async fn converge_service(manifest: &Manifest, deps: &Deps) -> Result<StackResult, StepError> {
    let stack = naming::service_stack_name(&manifest.service).map_err(|e| StepError::ManifestInvalid(e.to_string()))?;
    // Plan's copy may be stale: another stage may have changed the stack since.
    let recorded = deps.history.service(&manifest.service).await?;
    let dropped = recorded.as_ref().map(|r| template::dropped_functions(&r.functions, manifest)).unwrap_or_default();
    // Only a manifest that drops a function costs the reads of the stages' deployments.
    let kept = if dropped.is_empty() {
        BTreeMap::new()
    } else {
        template::kept_functions(&dropped, &users(manifest, deps).await?)
    };
    let kept_definitions: BTreeMap<_, _> = kept.iter().map(|(name, (d, _))| (name.clone(), d.clone())).collect();
    let template = template::service_template(manifest, &kept_definitions);
    let mut functions = template::shared_functions(manifest);
    functions.extend(kept_definitions);
    let target = Target {
        stack: &stack,
        region: &manifest.region,
        template: &template,
        parameters: parameters(&template, deps),
        owner: &naming::Owner::service(&manifest.service),
    };
    let hash = target.hash();
    if let Some(record) = recorded.as_ref().filter(|r| r.template_hash != hash) {
        // A run that dies during the update leaves an unknown hash, so the next one converges the
        // stack instead of trusting the record; and every function the stack may still define.
        let mut pending = record.clone();
        pending.template_hash = String::new();
        pending.functions.extend(functions.clone());
        deps.history.put_service(&pending).await?;
    }
    let stacks = deps.regions.stacks(&manifest.region);
    let tools = Tools { stacks: stacks.as_ref(), artifacts: deps.artifacts.as_ref(), settings: &deps.settings };
    let result = converge(tools, &target, recorded.as_ref().map(|r| (r.template_hash.as_str(), &r.outputs))).await?;
    let record = ServiceRecord {
        service: manifest.service.clone(),
        region: manifest.region.clone(),
        template_hash: result.hash.clone(),
        outputs: result.outputs.clone(),
        updated_at: match (&recorded, result.operation.as_str()) {
            (Some(r), "none") => r.updated_at,
            _ => deps.clock.now(),
        },
        functions,
    };
    let same = |r: &ServiceRecord| r.template_hash == record.template_hash && r.functions == record.functions;
    if !recorded.as_ref().is_some_and(same) {
        deps.history.put_service(&record).await?;
    }
    for (name, (definition, stages)) in &kept {
        tracing::info!(function = %name, function_name = %definition.function_name, ?stages, "kept: live stages use it");
    }
    Ok(StackResult { kept: kept.into_iter().map(|(name, (_, stages))| (name, stages)).collect(), ..result })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::Utc;

    use super::*;
    use crate::fakes::FakeAws;
    use crate::ports::History;
    use crate::steps::fixtures::{deployed, manifest, record, REGION, SERVICE};

    fn input(manifest: Manifest, owner: &str) -> Input {
        Input { manifest, owner: owner.into() }
    }

    fn without_worker() -> Manifest {
        let mut m = manifest();
        m.functions.remove("worker");
        m
    }

    fn template_of(aws: &FakeAws) -> serde_json::Value {
        let text = aws.regions.fake_stacks(REGION).last_template(SERVICE).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// The stack as the full manifest made it, and prod's deployment using `shop-worker`.
    async fn prod_uses_the_worker(aws: &FakeAws) {
        run(input(manifest(), "exec-prod-1"), &aws.deps()).await.unwrap();
        let worker = record("prod", "shop-worker", "1", "shop/artifacts/w.zip");
        deployed(aws, "prod", 1, None, &[("worker", worker)]).await;
    }

    #[tokio::test]
    async fn the_record_knows_the_shared_functions_of_the_stack() {
        let aws = FakeAws::default();
        run(input(manifest(), "exec-1"), &aws.deps()).await.unwrap();
        let recorded = aws.history.service(SERVICE).await.unwrap().unwrap();
        assert_eq!(recorded.functions.keys().collect::<Vec<_>>(), ["api", "worker"], "thumbnailer is per stage");
        assert_eq!(recorded.functions["worker"].function_name, "shop-worker");
        assert!(recorded.functions["worker"].service_log_group);
        assert_eq!(aws.history.lock(SERVICE, SERVICE_LEASE).await.unwrap(), None, "the lease is released");
    }

    #[tokio::test]
    async fn a_dropped_function_a_live_stage_uses_stays_in_the_stack_with_its_log_group() {
        let aws = FakeAws::default();
        prod_uses_the_worker(&aws).await;
        let result = run(input(without_worker(), "exec-dev-2"), &aws.deps()).await.unwrap();
        assert_eq!(result.kept, BTreeMap::from([("worker".to_owned(), vec!["prod".to_owned()])]));
        assert_eq!(result.operation, "none", "the stack already is the manifest plus the worker");
        assert!(aws.regions.fake_functions(REGION).exists("shop-worker"));
        let recorded = aws.history.service(SERVICE).await.unwrap().unwrap();
        assert!(recorded.functions.contains_key("worker"), "still recorded, for the collection");
    }

    #[tokio::test]
    async fn a_function_made_an_instance_per_stage_stays_shared_while_a_stage_uses_it() {
        let aws = FakeAws::default();
        prod_uses_the_worker(&aws).await;
        let mut per_stage = manifest();
        per_stage.functions.get_mut("worker").unwrap().instance_per_stage = true;
        let result = run(input(per_stage, "exec-dev-2"), &aws.deps()).await.unwrap();
        assert_eq!(result.kept["worker"], ["prod"]);
        let template = template_of(&aws);
        assert_eq!(template["Resources"]["WorkerFunction"]["Properties"]["FunctionName"], "shop-worker");
        assert!(aws.regions.fake_functions(REGION).exists("shop-worker"));
    }

    #[tokio::test]
    async fn a_dropped_function_no_live_stage_uses_leaves_the_stack() {
        let aws = FakeAws::default();
        prod_uses_the_worker(&aws).await;
        let mut prod = aws.history.stage(SERVICE, "prod").await.unwrap().unwrap();
        prod.state = StageState::Removed;
        aws.history.put_stage(&prod).await.unwrap();
        let result = run(input(without_worker(), "exec-dev-2"), &aws.deps()).await.unwrap();
        assert!(result.kept.is_empty(), "{result:?}");
        assert_eq!(result.operation, "updated");
        assert!(template_of(&aws)["Resources"].get("WorkerFunction").is_none());
        assert!(template_of(&aws)["Resources"].get("WorkerLogGroup").is_none(), "its log group goes with it");
        assert!(!aws.regions.fake_functions(REGION).exists("shop-worker"));
        let recorded = aws.history.service(SERVICE).await.unwrap().unwrap();
        assert_eq!(recorded.functions.keys().collect::<Vec<_>>(), ["api"]);
    }

    #[tokio::test]
    async fn a_manifest_that_drops_nothing_reads_no_stage() {
        let aws = FakeAws::default();
        prod_uses_the_worker(&aws).await;
        let before = (aws.history.calls("stages"), aws.history.calls("deployments"));
        let result = run(input(manifest(), "exec-dev-2"), &aws.deps()).await.unwrap();
        assert_eq!(result.operation, "none");
        assert_eq!((aws.history.calls("stages"), aws.history.calls("deployments")), before);
    }

    #[tokio::test]
    async fn a_second_execution_gets_service_locked_while_the_first_holds_the_lease() {
        let aws = FakeAws::default();
        let lease = Duration::from_secs(60);
        aws.history.acquire(SERVICE, SERVICE_LEASE, "exec-first", lease, Utc::now()).await.unwrap();
        let error = run(input(manifest(), "exec-second"), &aws.deps()).await.unwrap_err();
        assert_eq!(error.error_type(), "ServiceLocked");
        assert!(error.to_string().contains("exec-first"), "{error}");
        assert_eq!(aws.regions.fake_stacks(REGION).total_calls(), 0, "no stack call");
        assert_eq!(aws.history.service(SERVICE).await.unwrap(), None, "nothing recorded");
        assert_eq!(aws.history.lock(SERVICE, SERVICE_LEASE).await.unwrap().unwrap().owner, "exec-first");

        // The holder's own retry goes on, and its release lets the second one through.
        run(input(manifest(), "exec-first"), &aws.deps()).await.unwrap();
        run(input(manifest(), "exec-second"), &aws.deps()).await.unwrap();
    }

    #[test]
    fn every_definition_retries_service_locked_long_enough_to_outwait_a_stack_update() {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../statemachines");
        let mut tasks = 0;
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if !path.to_string_lossy().ends_with(".asl.json") {
                continue;
            }
            let definition: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let states = definition["States"].as_object().unwrap();
            for (name, state) in states.iter().filter(|(_, s)| s["Resource"] == "${EnsureServiceStackFunctionArn}") {
                tasks += 1;
                let retries = state["Retry"].as_array().unwrap();
                let retry = retries
                    .iter()
                    .find(|r| r["ErrorEquals"].as_array().unwrap().iter().any(|e| e == "ServiceLocked"))
                    .unwrap_or_else(|| panic!("{}: {name} does not retry ServiceLocked", path.display()));
                let (interval, backoff) =
                    (retry["IntervalSeconds"].as_f64().unwrap(), retry["BackoffRate"].as_f64().unwrap());
                let max_delay = retry["MaxDelaySeconds"].as_f64().unwrap();
                let attempts = retry["MaxAttempts"].as_u64().unwrap();
                let waited: f64 = (0..attempts).map(|n| (interval * backoff.powi(n as i32)).min(max_delay)).sum();
                assert!(waited >= 15.0 * 60.0, "{}: {name} waits {waited} s at most", path.display());
                assert!(retry.get("JitterStrategy").is_none(), "full jitter would halve the wait");
            }
        }
        assert_eq!(tasks, 4, "deploy (twice), reset and clone");
    }

    #[tokio::test]
    async fn a_run_that_dies_during_the_update_makes_the_next_one_converge_the_stack() {
        let aws = FakeAws::default();
        prod_uses_the_worker(&aws).await;
        let mut prod = aws.history.stage(SERVICE, "prod").await.unwrap().unwrap();
        prod.state = StageState::Removed;
        aws.history.put_stage(&prod).await.unwrap();
        let stacks = aws.regions.fake_stacks(REGION);
        stacks.fail_next(SERVICE);
        let error = run(input(without_worker(), "exec-dev-2"), &aws.deps()).await.unwrap_err();
        assert_eq!(error.error_type(), "StackFailed");
        let recorded = aws.history.service(SERVICE).await.unwrap().unwrap();
        assert_eq!(recorded.template_hash, "", "unknown: the stack may be either");
        assert!(recorded.functions.contains_key("worker"), "what the stack may still define");

        let updates = stacks.calls("UpdateStack");
        run(input(without_worker(), "exec-dev-3"), &aws.deps()).await.unwrap();
        assert_eq!(stacks.calls("UpdateStack"), updates + 1);
        let recorded = aws.history.service(SERVICE).await.unwrap().unwrap();
        assert_ne!(recorded.template_hash, "");
        assert_eq!(recorded.functions.keys().collect::<Vec<_>>(), ["api"]);
        assert!(!aws.regions.fake_functions(REGION).exists("shop-worker"));
    }
}
