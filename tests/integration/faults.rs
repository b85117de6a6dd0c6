//! The faults a deploy survives, on the in-memory fakes because moto cannot show them: a
//! permanent failure of one `UpdateAlias`, `PublishVersion` or stack operation, the process
//! killed at any moment, and every step run twice. The real `deploy.asl.json` runs on the local
//! engine (with an instant clock, so `Retry` back-off takes no time); only AWS is faked.

use std::collections::BTreeMap;
use std::sync::Arc;

use aliasflow::engine;
use base64::Engine as _;
use functions::domain::history::{Deployment, DeploymentStatus, Lock};
use functions::domain::manifest::Manifest;
use functions::domain::naming;
use functions::fakes::{FakeAws, FakeFunctions};
use functions::ports::History;
use functions::steps::state::ArtifactRef;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use statemachines::{Event, EventKind, Execution, ExecutionStatus, InstantClock};

const REGION: &str = "us-east-1";

/// The example service on fake AWS, with code the test can change.
pub(crate) struct FakeWorld {
    pub(crate) aws: FakeAws,
    pub(crate) manifest: Manifest,
    artifacts: BTreeMap<String, ArtifactRef>,
}

impl FakeWorld {
    pub(crate) async fn new() -> Self {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/shop/aliasflow.yaml");
        let manifest = Manifest::load(&path).expect("the example is valid");
        let mut world = Self { aws: FakeAws::default(), manifest, artifacts: BTreeMap::new() };
        let names: Vec<String> = world.manifest.functions.keys().cloned().collect();
        for name in names {
            world.set_code(&name, "v1").await;
        }
        world
    }

    pub(crate) fn lambda(&self) -> Arc<FakeFunctions> {
        self.aws.regions.fake_functions(REGION)
    }

    /// Gives `function` new code, as the CLI would upload it.
    pub(crate) async fn set_code(&mut self, function: &str, code: &str) {
        let digest = Sha256::digest(format!("{function}:{code}"));
        let key = naming::artifact_key(&self.manifest.service, &hex::encode(digest));
        let code_sha256 = base64::engine::general_purpose::STANDARD.encode(digest);
        self.aws.history.put_artifact(&self.manifest.service, &key, chrono::Utc::now()).await.expect("fake history");
        self.lambda().know_artifact(&key, &code_sha256);
        self.artifacts.insert(function.to_owned(), ArtifactRef { key, code_sha256 });
    }

    pub(crate) fn request(&self, stage: &str) -> Value {
        json!({ "stage": stage, "manifest": self.manifest, "artifacts": self.artifacts })
    }

    /// Runs `deploy.asl.json` to the end.
    pub(crate) async fn deploy(&self, stage: &str) -> (Execution, Vec<Event>) {
        self.run("deploy", self.request(stage)).await
    }

    /// Runs `rollback.asl.json` on `stage` to the end.
    async fn rollback(&self, stage: &str) -> Execution {
        self.run("rollback", json!({ "stage": stage, "manifest": self.manifest })).await.0
    }

    /// Runs the definition of `operation` on `request` to the end.
    async fn run(&self, operation: &str, request: Value) -> (Execution, Vec<Event>) {
        let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
        let clock = Arc::new(InstantClock::new());
        let execution = engine::run_local_with_clock(operation, REGION, request, self.aws.deps(), events, clock)
            .await
            .expect("the definition loads");
        let mut seen = Vec::new();
        while let Ok(event) = received.try_recv() {
            seen.push(event);
        }
        (execution, seen)
    }

    pub(crate) async fn deployed(&self, stage: &str) {
        let (execution, _) = self.deploy(stage).await;
        assert_eq!(execution.status, ExecutionStatus::Succeeded, "{:?}: {:?}", execution.error, execution.cause);
    }

    /// `(function, alias) -> version` of one stage.
    pub(crate) fn aliases(&self, stage: &str) -> BTreeMap<String, String> {
        self.lambda()
            .alias_snapshot()
            .into_iter()
            .filter(|((_, alias), _)| alias == stage)
            .map(|((function, _), version)| (function, version))
            .collect()
    }

    pub(crate) async fn history(&self, stage: &str) -> Vec<Deployment> {
        self.aws.history.deployments(&self.manifest.service, stage, 100, None).await.expect("fake history").items
    }

    pub(crate) async fn locked(&self, stage: &str) -> bool {
        let lock = self.aws.history.lock(&self.manifest.service, &format!("stage:{stage}")).await;
        lock.expect("fake history").is_some()
    }
}

#[tokio::test]
async fn a_second_deploy_with_nothing_changed_publishes_nothing_and_touches_no_stack() {
    let world = FakeWorld::new().await;
    world.deployed("dev").await;
    let publishes = world.lambda().calls("PublishVersion");
    let stacks = world.aws.regions.fake_stacks(REGION).total_calls();
    let (execution, _) = world.deploy("dev").await;
    assert_eq!(execution.status, ExecutionStatus::Succeeded, "{:?}", execution.cause);
    assert_eq!(world.lambda().calls("PublishVersion"), publishes);
    assert_eq!(world.aws.regions.fake_stacks(REGION).total_calls(), stacks, "not even a DescribeStacks");
    assert_eq!(world.history("dev").await.len(), 1, "no new deployment");
    let output = execution.output.unwrap_or_default();
    assert_eq!((output["id"].as_u64(), output["recorded"].as_bool()), (Some(1), Some(false)), "{output}");
}

/// A deploy that changes nothing records no row, so the rollback after it moves every alias to
/// the previous, different code, not to the same code again.
#[tokio::test]
async fn a_rollback_after_a_deploy_that_changed_nothing_moves_to_different_code() {
    let mut world = FakeWorld::new().await;
    world.deployed("dev").await;
    let first = world.aliases("dev");
    world.set_code("api", "v2").await;
    world.deployed("dev").await;
    let second = world.aliases("dev");
    assert_ne!(first, second);
    world.deployed("dev").await;
    assert_eq!(world.history("dev").await.len(), 2, "the third deploy changed nothing");

    let execution = world.rollback("dev").await;
    assert_eq!(execution.status, ExecutionStatus::Succeeded, "{:?}", execution.cause);
    assert_eq!(world.aliases("dev"), first, "back to the first code");
}

/// Another deploy commits between `Plan` and `AcquireLock`: the plan is stale. The execution
/// refuses with `StageChanged`, without the Catch path, writing nothing; the next deploy
/// plans anew and succeeds.
#[tokio::test]
async fn a_plan_made_stale_before_the_lock_is_refused_and_writes_nothing() {
    let mut world = FakeWorld::new().await;
    world.deployed("dev").await;
    world.set_code("api", "v2").await;
    world.aws.history.before_next("acquire", |t| {
        let key = ("shop".to_owned(), "dev".to_owned());
        let mut other = t.deployments[&("shop".to_owned(), "dev".to_owned(), 1)].clone();
        (other.id, other.execution, other.rollback_to) = (2, "exec-other".into(), Some(1));
        t.deployments.insert(("shop".into(), "dev".into(), 2), other);
        let stage = t.stages.get_mut(&key).expect("deployed");
        (stage.active, stage.next_id) = (Some(2), 3);
    });
    let before_aliases = world.aliases("dev");
    let (execution, events) = world.deploy("dev").await;
    assert_eq!(execution.error.as_deref(), Some("StageChanged"), "{:?}", execution.cause);
    assert_eq!(entered(&events), ["Plan", "StageGiven", "AcquireLock", "Refused"], "no Catch path but the refusal");
    assert_eq!(world.history("dev").await.len(), 2, "only the other deploy's row");
    assert!(!world.locked("dev").await, "the lock just taken is released");
    assert_eq!(world.aliases("dev"), before_aliases);

    world.deployed("dev").await;
    assert_eq!(world.history("dev").await[0].id, 3);
}

/// The lease expired and another execution took the lock before `RecordDeployment`: the commit
/// fails with `LockLost` in the same transaction, nothing is written, and no alias is moved
/// back (the new holder owns the stage and converges it); its lock is left alone.
#[tokio::test]
async fn a_lock_taken_by_another_before_the_commit_writes_nothing_and_restores_nothing() {
    let mut world = FakeWorld::new().await;
    world.deployed("dev").await;
    world.set_code("api", "v2").await;
    world.aws.history.before_next("record", |t| {
        let lock = Lock { owner: "exec-other".into(), expires_at: chrono::Utc::now() + chrono::Duration::minutes(30) };
        t.locks.insert(("shop".into(), "stage:dev".into()), lock);
    });
    let (execution, events) = world.deploy("dev").await;
    assert_eq!(execution.error.as_deref(), Some("LockLost"), "{:?}", execution.cause);
    let entered = entered(&events);
    for handler in ["RestoreAliases", "RecordFailure", "ReleaseLockAfterFailure"] {
        assert!(!entered.contains(&handler), "{handler} ran: {entered:?}");
    }
    assert_eq!(world.history("dev").await.len(), 1, "no row written");
    let lock = world.aws.history.lock("shop", "stage:dev").await.expect("fake").expect("held");
    assert_eq!(lock.owner, "exec-other");
    let aliases = world.aliases("dev");
    let recorded = &world.history("dev").await[0].functions["api"];
    assert_ne!(aliases["shop-api"], recorded.version, "api's alias was not moved back");
}

/// After the commit, a failed prune and a failed `ReleaseLock` are warnings: the execution
/// succeeds with the deployment's output, the row stays committed and the aliases new.
#[tokio::test]
async fn a_failed_prune_and_a_failed_release_after_the_commit_still_succeed() {
    let mut world = FakeWorld::new().await;
    world.manifest.retain = 1;
    world.deployed("dev").await;
    world.set_code("api", "v2").await;
    world.aws.history.fail_next("delete_deployments", 1, "AccessDeniedException");
    world.aws.history.fail_next("release stage:dev", 1, "AccessDeniedException");
    let (execution, events) = world.deploy("dev").await;
    assert_eq!(execution.status, ExecutionStatus::Succeeded, "{:?}: {:?}", execution.error, execution.cause);
    assert!(!entered(&events).contains(&"RestoreAliases"));
    let output = execution.output.unwrap_or_default();
    assert_eq!(output["id"].as_u64(), Some(2), "{output}");
    assert!(output["warnings"][0].as_str().is_some_and(|w| w.contains("AccessDeniedException")), "{output}");
    assert!(output["lock_not_released"]["Cause"].as_str().is_some_and(|c| c.contains("AccessDenied")), "{output}");
    let history = world.history("dev").await;
    assert_eq!((history[0].id, history[0].status, history.len()), (2, DeploymentStatus::Succeeded, 2));
    let recorded: BTreeMap<String, String> =
        history[0].functions.values().map(|f| (f.function_name.clone(), f.version.clone())).collect();
    assert_eq!(world.aliases("dev"), recorded, "the aliases stay new");
    // The lease was left to expire; released by hand here, the next deploy prunes what is due.
    let lock = world.aws.history.lock("shop", "stage:dev").await.expect("fake").expect("left");
    assert!(world.aws.history.release("shop", "stage:dev", &lock.owner).await.expect("fake"));
    world.set_code("api", "v3").await;
    world.deployed("dev").await;
    assert_eq!(world.history("dev").await.len(), 1, "retain 1: the late prune catches up");
}

/// `retain` counts rollback targets: ten failed deploys in a row push none out, and every
/// rollback target is still there to return to.
#[tokio::test]
async fn ten_failed_deploys_leave_every_rollback_target_in_place() {
    let mut world = FakeWorld::new().await;
    // Four: the rollbacks below are targets too, and the second must still find the first.
    world.manifest.retain = 4;
    world.deployed("dev").await;
    let first = world.aliases("dev");
    world.set_code("api", "v2").await;
    world.deployed("dev").await;
    let second = world.aliases("dev");
    world.set_code("api", "v3").await;
    world.lambda().fail("PublishVersion", "shop-api");
    for _ in 0..10 {
        let (execution, _) = world.deploy("dev").await;
        assert_eq!(execution.status, ExecutionStatus::Failed);
    }
    world.lambda().heal("PublishVersion", "shop-api");
    world.deployed("dev").await;
    let history = world.history("dev").await;
    assert_eq!(history.len(), 13, "three targets and the ten failures between them: nothing pruned");

    assert_eq!(world.rollback("dev").await.status, ExecutionStatus::Succeeded);
    assert_eq!(world.aliases("dev"), second);
    assert_eq!(world.rollback("dev").await.status, ExecutionStatus::Succeeded);
    assert_eq!(world.aliases("dev"), first, "the oldest target is still there");
}

fn entered(events: &[Event]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::StateEntered { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_permanent_update_alias_failure_after_other_aliases_moved_restores_them_all() {
    let mut world = FakeWorld::new().await;
    world.deployed("dev").await;
    let before = world.aliases("dev");
    world.set_code("api", "v2").await;
    world.set_code("worker", "v2").await;
    // `api` sorts before `worker`: its alias moves, then worker's fails for good.
    world.lambda().fail("UpdateAlias", "shop-worker");

    let (execution, _) = world.deploy("dev").await;
    assert_eq!(execution.status, ExecutionStatus::Failed);
    assert_eq!(execution.error.as_deref(), Some("AwsFailed"), "{:?}", execution.cause);
    assert!(world.lambda().calls("UpdateAlias") >= 2, "api's alias moved before worker's failed");
    assert_eq!(world.aliases("dev"), before, "every alias is back where it was");

    let history = world.history("dev").await;
    assert_eq!(history[0].status, DeploymentStatus::Failed);
    let error = history[0].error.clone().unwrap_or_default();
    assert!(error.contains("UpdateAlias") && error.contains("shop-worker"), "{error}");
    assert_eq!(history[1].status, DeploymentStatus::Succeeded, "the earlier deployment stays");
    assert!(!world.locked("dev").await, "the lock is released");

    world.lambda().heal("UpdateAlias", "shop-worker");
    world.deployed("dev").await;
    let after = world.aliases("dev");
    assert_ne!(after["shop-api"], before["shop-api"]);
    assert_ne!(after["shop-worker"], before["shop-worker"]);
}

#[tokio::test]
async fn a_permanent_publish_failure_moves_no_alias_and_is_recorded() {
    let mut world = FakeWorld::new().await;
    world.deployed("dev").await;
    let before = world.aliases("dev");
    world.set_code("api", "v2").await;
    world.lambda().fail("PublishVersion", "shop-api");

    let (execution, _) = world.deploy("dev").await;
    assert_eq!(execution.status, ExecutionStatus::Failed);
    assert_eq!(world.aliases("dev"), before);
    let history = world.history("dev").await;
    assert_eq!((history.len(), history[0].status), (2, DeploymentStatus::Failed));
    assert!(!world.locked("dev").await);
    let stage = world.aws.history.stage("shop", "dev").await.expect("fake").expect("recorded");
    assert_eq!(stage.active, Some(1), "the active deployment is still the first");
}

#[tokio::test]
async fn a_stage_stack_that_fails_records_the_failure_and_the_next_deploy_succeeds() {
    let world = FakeWorld::new().await;
    world.aws.regions.fake_stacks(REGION).fail_next("shop-qa");
    let (execution, _) = world.deploy("qa").await;
    assert_eq!(execution.error.as_deref(), Some("StackFailed"), "{:?}", execution.cause);
    assert!(execution.cause.unwrap_or_default().contains("shop-qa"));
    assert!(world.aliases("qa").is_empty(), "no alias of the new stage exists");
    let history = world.history("qa").await;
    assert_eq!((history.len(), history[0].status), (1, DeploymentStatus::Failed));
    assert!(!world.locked("qa").await);

    world.deployed("qa").await;
    assert_eq!(world.aliases("qa").len(), world.manifest.functions.len());
}

#[tokio::test]
async fn a_deploy_of_a_locked_stage_is_refused_without_the_catch_path() {
    let world = FakeWorld::new().await;
    world.deployed("dev").await;
    let lease = std::time::Duration::from_secs(60);
    world.aws.history.acquire("shop", "stage:dev", "someone", lease, chrono::Utc::now()).await.expect("fake");
    let (execution, events) = world.deploy("dev").await;
    assert_eq!(execution.error.as_deref(), Some("StageLocked"));
    let entered: Vec<&str> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::StateEntered { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(entered, ["Plan", "StageGiven", "AcquireLock", "Refused"], "no RestoreAliases, no RecordFailure");
    assert_eq!(world.history("dev").await.len(), 1, "nothing recorded");
    let lock = world.aws.history.lock("shop", "stage:dev").await.expect("fake").expect("held");
    assert_eq!(lock.owner, "someone");
}

#[tokio::test]
async fn every_step_is_safe_to_run_twice() {
    let mut world = FakeWorld::new().await;
    world.deployed("dev").await;
    world.set_code("api", "v2").await;
    let (execution, events) = world.deploy("dev").await;
    assert_eq!(execution.status, ExecutionStatus::Succeeded);
    let aliases = world.aliases("dev");
    let history = world.history("dev").await;

    // Step Functions retries a Task with the same input: replay every Task of the execution.
    let deps = world.aws.deps();
    let mut replayed = 0;
    for event in &events {
        if let EventKind::TaskScheduled { resource, input, .. } = &event.kind {
            let step = resource.rsplit(':').next().unwrap_or_default();
            let again = functions::steps::run(step, input.clone(), &deps).await;
            assert!(again.is_ok(), "{step} twice: {again:?}");
            replayed += 1;
        }
    }
    assert!(replayed >= 10, "every Task replayed ({replayed})");
    assert_eq!(world.aliases("dev"), aliases, "aliases unchanged by the replay");
    let replayed_history = world.history("dev").await;
    assert_eq!(replayed_history.len(), history.len(), "no deployment added or lost");
    assert_eq!(replayed_history[0].functions, history[0].functions);
    assert!(!world.locked("dev").await, "the replayed ReleaseLock released the replayed AcquireLock");
}

#[tokio::test]
async fn a_process_killed_at_any_moment_loses_no_history_and_the_next_deploy_succeeds() {
    // Count the events of one whole deploy, then kill a fresh one after each of them in turn.
    let probe = {
        let mut world = FakeWorld::new().await;
        world.deployed("dev").await;
        world.set_code("api", "v2").await;
        world.deploy("dev").await.1.len()
    };
    for kill_after in (1..probe).step_by(3) {
        let mut world = FakeWorld::new().await;
        world.deployed("dev").await;
        world.set_code("api", "v2").await;
        let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
        let clock = Arc::new(InstantClock::new());
        let run = engine::run_local_with_clock("deploy", REGION, world.request("dev"), world.aws.deps(), events, clock);
        tokio::select! {
            _ = run => {}
            () = async { for _ in 0..kill_after { if received.recv().await.is_none() { break; } } } => {}
        }
        // Killed. The history keeps the first deployment, and says what the aliases point at or
        // (for a deployment that finished recording) the new one.
        let history = world.history("dev").await;
        assert!(history.iter().any(|d| d.id == 1 && d.status == DeploymentStatus::Succeeded), "{kill_after}");
        // The operator breaks the dead execution's lock (or waits for its lease to expire).
        if let Some(lock) = world.aws.history.lock("shop", "stage:dev").await.expect("fake") {
            assert!(world.aws.history.release("shop", "stage:dev", &lock.owner).await.expect("fake"));
        }
        world.deployed("dev").await;
        let active = world.aws.history.stage("shop", "dev").await.expect("fake").and_then(|s| s.active);
        let newest = world.history("dev").await.into_iter().find(|d| Some(d.id) == active).expect("active");
        let recorded: BTreeMap<String, String> =
            newest.functions.values().map(|f| (f.function_name.clone(), f.version.clone())).collect();
        assert_eq!(world.aliases("dev"), recorded, "after a kill at event {kill_after}: aliases match the history");
    }
}
