//! The failure matrix (issue 12): for every Task state of every machine, that Task fails — before
//! its step ran, and after it ran (the answer lost, as when Lambda times out after the step's
//! work) — and, in a second pass, every failure handler after it fails too. After each run the
//! same invariants are checked: every alias of the stage all-old or all-new, exactly as the
//! history's active deployment records it (second pass: once the next command ran); the lock
//! free, or held by the dead execution until its lease expires; the next command succeeding.
//!
//! On the in-memory fakes, with the real definitions on the local engine: moto cannot fail one
//! Task on cue.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use aliasflow::engine;
use async_trait::async_trait;
use functions::domain::history::{DeploymentKind, DeploymentStatus, StageState};
use functions::ports::{Deps, History};
use functions::steps;
use serde_json::{json, Value};
use statemachines::{Engine, Execution, ExecutionStatus, InstantClock, TaskCall, TaskError, TaskHandler};

use crate::faults::FakeWorld;

const REGION: &str = "us-east-1";
const SERVICE: &str = "shop";

/// The steps that run after a failure: the second pass fails them too.
const HANDLERS: &[&str] = &["RestoreAliases", "RecordFailure", "ReleaseLockAfterFailure"];

/// When the chosen Task fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    /// Before its step ran: nothing of its work is done.
    Before,
    /// After its step ran: its work is done, its answer lost.
    After,
}

/// Runs the steps in-process, failing the first invocation of Task state `state`, and with
/// `handlers` every failure handler after that.
struct Faulty {
    deps: Deps,
    state: String,
    when: When,
    handlers: bool,
    tripped: AtomicBool,
    seen: Mutex<BTreeSet<String>>,
}

impl Faulty {
    fn injected(what: &str) -> TaskError {
        TaskError { error: "AwsFailed".to_owned(), cause: format!("injected failure of {what}") }
    }
}

#[async_trait]
impl TaskHandler for Faulty {
    async fn invoke(&self, resource: &str, input: Value) -> Result<Value, TaskError> {
        let step = resource.rsplit(':').next().unwrap_or_default();
        steps::run(step, input, &self.deps)
            .await
            .map_err(|e| TaskError { error: e.error_type().to_owned(), cause: e.to_string() })
    }

    async fn invoke_task(&self, call: TaskCall<'_>, input: Value) -> Result<Value, TaskError> {
        if self.handlers && self.tripped.load(Ordering::SeqCst) && HANDLERS.contains(&call.state) {
            return Err(Self::injected(call.state));
        }
        let first = self.seen.lock().unwrap_or_else(PoisonError::into_inner).insert(call.state.to_owned());
        if call.state == self.state && first {
            if self.when == When::After {
                // The step's work is done; the failure is only in its answer.
                drop(self.invoke(call.resource, input).await);
            }
            self.tripped.store(true, Ordering::SeqCst);
            return Err(Self::injected(call.state));
        }
        self.invoke(call.resource, input).await
    }
}

/// One machine of the matrix: how to bring the world to where it runs, and its input.
struct Case {
    operation: &'static str,
    stage: &'static str,
}

const CASES: &[Case] = &[
    Case { operation: "deploy", stage: "dev" },
    Case { operation: "rollback", stage: "dev" },
    Case { operation: "reset", stage: "dev" },
    Case { operation: "clone", stage: "pr-1" },
    Case { operation: "remove", stage: "dev" },
    Case { operation: "cleanup", stage: "pr-1" },
];

impl Case {
    /// dev deployed twice (v1, then v2 of api), prod once (v3 of api); for cleanup, pr-1 deployed
    /// long ago.
    async fn world(&self) -> FakeWorld {
        let mut world = FakeWorld::new().await;
        world.deployed("dev").await;
        world.set_code("api", "v2").await;
        world.deployed("dev").await;
        world.set_code("api", "v3").await;
        world.deployed("prod").await;
        if self.operation == "cleanup" {
            world.deployed("pr-1").await;
            let mut record = world.aws.history.stage(SERVICE, "pr-1").await.expect("fake").expect("deployed");
            record.last_deployed_at = Some(chrono::Utc::now() - chrono::Duration::days(30));
            world.aws.history.put_stage(&record).await.expect("fake");
        }
        if self.operation == "deploy" {
            world.set_code("worker", "v4").await;
        }
        world
    }

    fn input(&self, world: &FakeWorld) -> Value {
        let mut input = world.request(self.stage);
        let fields = input.as_object_mut().expect("an object");
        if self.operation != "deploy" {
            fields.remove("artifacts");
        }
        if matches!(self.operation, "reset" | "clone") {
            fields.insert("from".to_owned(), json!("prod"));
        }
        if self.operation == "cleanup" {
            fields.remove("stage");
        }
        input
    }

    /// Every Task state of the machine, Map iterations included.
    fn tasks(&self) -> Vec<String> {
        let (_, text) = engine::DEFINITIONS.iter().find(|(name, _)| *name == self.operation).expect("a definition");
        let definition: Value = serde_json::from_str(text).expect("JSON");
        let mut found = BTreeSet::new();
        collect_tasks(&definition["States"], &mut found);
        found.into_iter().collect()
    }
}

fn collect_tasks(states: &Value, found: &mut BTreeSet<String>) {
    for (name, state) in states.as_object().into_iter().flatten() {
        if state["Type"] == "Task" {
            found.insert(name.clone());
        }
        for inner in [&state["ItemProcessor"]["States"], &state["Iterator"]["States"]] {
            collect_tasks(inner, found);
        }
        for branch in state["Branches"].as_array().into_iter().flatten() {
            collect_tasks(&branch["States"], found);
        }
    }
}

async fn run(world: &FakeWorld, case: &Case, faulty: Option<Faulty>) -> Execution {
    let machine = Arc::new(engine::machine(case.operation, REGION).expect("the definition loads"));
    let handler: Arc<dyn TaskHandler> = match faulty {
        Some(faulty) => Arc::new(faulty),
        None => Arc::new(Faulty {
            deps: world.aws.deps(),
            state: String::new(),
            when: When::Before,
            handlers: false,
            tripped: AtomicBool::new(false),
            seen: Mutex::default(),
        }),
    };
    let engine = Engine::new(machine, handler)
        .with_names(case.operation, &uuid::Uuid::new_v4().to_string())
        .with_region_and_account(REGION, "000000000000")
        .with_clock(Arc::new(InstantClock::new()));
    engine.run(case.input(world)).await
}

/// What is wrong with the stage now: its aliases against its active deployment. A removal goes
/// forward only (a deleted stage stack takes its instances per stage, which no restore brings
/// back): one that failed midway leaves the stage live, with a failed `remove` as its newest row,
/// for the next `remove` to finish (and `status` to show meanwhile).
async fn misfits(world: &FakeWorld, operation: &str, stage: &str) -> Vec<String> {
    let aliases = world.aliases(stage);
    let record = world.aws.history.stage(SERVICE, stage).await.expect("fake");
    let live = record.filter(|r| r.state == StageState::Active);
    if matches!(operation, "remove" | "cleanup") && live.is_some() {
        let newest = world.history(stage).await.into_iter().next();
        if newest.is_some_and(|d| d.kind == DeploymentKind::Remove && d.status == DeploymentStatus::Failed) {
            return Vec::new();
        }
    }
    let wanted: BTreeMap<String, String> = match live.and_then(|r| r.active) {
        Some(id) => {
            let deployment = world.aws.history.deployment(SERVICE, stage, id).await.expect("fake");
            let Some(deployment) = deployment else { return vec![format!("active deployment {id} is missing")] };
            deployment.functions.values().map(|f| (f.function_name.clone(), f.version.clone())).collect()
        }
        None => BTreeMap::new(),
    };
    if aliases == wanted {
        Vec::new()
    } else {
        vec![format!("aliases {aliases:?}, history says {wanted:?}")]
    }
}

/// The lock is free, or held by a finished execution until its lease expires: then the operator
/// breaks it, as `aliasflow unlock` would.
async fn free_lock(world: &FakeWorld, stage: &str, strict: bool) -> Vec<String> {
    let name = format!("stage:{stage}");
    let Some(lock) = world.aws.history.lock(SERVICE, &name).await.expect("fake") else { return Vec::new() };
    world.aws.history.release(SERVICE, &name, &lock.owner).await.expect("fake");
    if strict {
        vec![format!("the lock is still held by {}", lock.owner)]
    } else {
        Vec::new()
    }
}

/// The next command after a failed one: the same operation where it still applies, else a deploy
/// of the stage; it must succeed and leave the stage converged.
async fn next_command(world: &FakeWorld, case: &Case) -> Vec<String> {
    let live =
        world.aws.history.stage(SERVICE, case.stage).await.expect("fake").filter(|r| r.state == StageState::Active);
    let next = match (case.operation, live.is_some()) {
        ("remove" | "cleanup", true) => Case { operation: case.operation, stage: case.stage },
        ("remove" | "cleanup", false) => return Vec::new(),
        _ => Case { operation: "deploy", stage: case.stage },
    };
    let execution = run(world, &next, None).await;
    if execution.status != ExecutionStatus::Succeeded {
        return vec![format!("the next {} failed: {:?}: {:?}", next.operation, execution.error, execution.cause)];
    }
    misfits(world, "deploy", case.stage)
        .await
        .into_iter()
        .map(|m| format!("after the next {}: {m}", next.operation))
        .collect()
}

async fn failure_matrix(handlers: bool) {
    let mut problems = Vec::new();
    let mut runs = 0;
    for case in CASES {
        for state in case.tasks() {
            for when in [When::Before, When::After] {
                let world = case.world().await;
                let faulty = Faulty {
                    deps: world.aws.deps(),
                    state: state.clone(),
                    when,
                    handlers,
                    tripped: AtomicBool::new(false),
                    seen: Mutex::default(),
                };
                let execution = run(&world, case, Some(faulty)).await;
                runs += 1;
                let label = format!("{} {state} {when:?}{}", case.operation, if handlers { " +handlers" } else { "" });
                let mut found = Vec::new();
                if !handlers {
                    found.extend(misfits(&world, case.operation, case.stage).await);
                }
                if state == "RecordDeployment" && when == When::After {
                    // Committed is committed: the answer was lost, not the deployment.
                    let newest = world.history(case.stage).await.into_iter().next();
                    if newest.is_none_or(|d| d.status != DeploymentStatus::Succeeded) {
                        found.push("the committed deployment was undone".to_owned());
                    }
                }
                found.extend(free_lock(&world, case.stage, !handlers && state != "ReleaseLock").await);
                found.extend(next_command(&world, case).await);
                problems.extend(found.into_iter().map(|p| format!("{label} ({:?}): {p}", execution.status)));
            }
        }
    }
    assert!(runs > 60, "every Task of every machine ran ({runs})");
    assert!(problems.is_empty(), "{} of {runs} runs broke an invariant:\n{}", problems.len(), problems.join("\n"));
}

#[tokio::test]
async fn every_task_of_every_machine_fails_and_the_stage_stays_consistent() {
    failure_matrix(false).await;
}

#[tokio::test]
async fn every_task_fails_with_its_failure_handlers_and_the_next_command_repairs_the_stage() {
    failure_matrix(true).await;
}
