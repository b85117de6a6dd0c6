//! Locks that hold, against moto (issue 12): a plan made before another deploy committed is
//! refused once the lock is taken, and an execution whose lock was broken and taken by another
//! commits nothing. The steps run one by one, as Step Functions would run them, with the
//! other execution's work between them (the engine runs them back to back).

use aliasflow::commands::deps;
use functions::domain::manifest::Manifest;
use functions::ports::Deps;
use functions::steps;
use serde_json::{json, Value};

use crate::support::world::World;

/// A stage deployed twice, so it can be rolled back.
async fn deployed_twice() -> World {
    let world = World::new().await;
    world.ok(&["deploy", "--stage", "dev"]).await;
    world.example.edit("functions/api/bootstrap", |text| format!("{text}\n# a code change\n"));
    world.ok(&["deploy", "--stage", "dev"]).await;
    world
}

async fn moto_deps(world: &World) -> Deps {
    let manifest = Manifest::load(&world.example.path("aliasflow.yaml")).expect("the example is valid");
    deps(&manifest, &world.app()).await.expect("bootstrapped").0
}

/// `Plan` of a rollback of dev by `execution`: the state the later steps start from.
async fn planned_rollback(world: &World, execution: &str, deps: &Deps) -> Value {
    let manifest = Manifest::load(&world.example.path("aliasflow.yaml")).expect("the example is valid");
    let input = json!({
        "request": { "stage": "dev", "manifest": manifest },
        "execution": execution,
        "operation": "rollback",
    });
    steps::run("Plan", input, deps).await.expect("a rollback is planned")
}

#[tokio::test]
async fn a_plan_made_before_another_deploy_committed_is_refused_once_the_lock_is_taken() {
    let world = deployed_twice().await;
    let deps = moto_deps(&world).await;
    let state = planned_rollback(&world, "exec-stale", &deps).await;

    world.example.edit("functions/api/bootstrap", |text| format!("{text}\n# another change\n"));
    world.ok(&["deploy", "--stage", "dev"]).await;
    let rows = world.stage_history("dev").await.len();

    let err = steps::run("AcquireLock", state, &deps).await.expect_err("the plan is stale");
    assert_eq!(err.error_type(), "StageChanged", "{err}");
    assert!(err.to_string().contains("run the command again"), "{err}");
    assert!(world.status().await.iter().all(|r| r["lock"].is_null()), "the lock just taken is given back");
    assert_eq!(world.stage_history("dev").await.len(), rows, "nothing written");
    world.ok(&["rollback", "--stage", "dev"]).await;
}

#[tokio::test]
async fn an_execution_whose_lock_was_broken_and_taken_commits_nothing() {
    let world = deployed_twice().await;
    let deps = moto_deps(&world).await;
    let mut state = planned_rollback(&world, "exec-slow", &deps).await;
    state["lock"] = steps::run("AcquireLock", state.clone(), &deps).await.expect("the lock is free");
    let rows = world.stage_history("dev").await;

    // The operator breaks the lock (the execution looked dead), and another execution takes it.
    world.ok(&["unlock", "--stage", "dev", "--lock-id", "exec-slow"]).await;
    let lease = std::time::Duration::from_secs(600);
    let taken = deps.history.acquire("shop", "stage:dev", "exec-other", lease, chrono::Utc::now()).await;
    assert!(matches!(taken, Ok(functions::ports::LockOutcome::Acquired(_))), "{taken:?}");

    let err = steps::run("RecordDeployment", state, &deps).await.expect_err("the lock is another's");
    assert_eq!(err.error_type(), "LockLost", "{err}");
    let after: Vec<Value> = world.stage_history("dev").await.into_iter().filter(|d| d["kind"] != "unlock").collect();
    assert_eq!(after, rows, "no deployment committed");
    let lock = deps.history.lock("shop", "stage:dev").await.expect("readable").expect("held");
    assert_eq!(lock.owner, "exec-other", "the other execution's lock is left alone");
}
