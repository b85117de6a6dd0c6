//! Shared functions outlive a manifest, end to end against moto: a deploy of one stage from a
//! manifest that drops a shared function (or makes it an instance per stage) keeps it while
//! another stage uses it, and the garbage collection of the removal of that stage takes it out
//! of the service stack. And two executions never change the service stack at once (its lease).

use std::collections::BTreeMap;
use std::sync::Arc;

use aliasflow::engine;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use functions::domain::manifest::Manifest;
use functions::domain::naming;
use functions::fakes::FakeAws;
use functions::ports::{History, LockOutcome};
use functions::steps::ensure_service_stack::SERVICE_LEASE;
use functions::steps::state::ArtifactRef;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use statemachines::{EventKind, ExecutionStatus, InstantClock};

use crate::support::moto::REGION;
use crate::support::world::World;

/// The example's `worker` function, as `examples/shop/aliasflow.yaml` writes it.
const WORKER: &str = "  worker:\n    code: functions/worker\n";

/// Rewrites the example's manifest as a branch would: `worker` changed by `change`, and one
/// deployment retained per stage, so dev's older deployments (which used `shop-worker`) stop
/// holding it once dev deploys the branch.
fn branch(world: &World, change: impl Fn(&str) -> String) {
    world.example.edit("aliasflow.yaml", |text| {
        assert!(text.contains(WORKER) && text.contains("retain: 10\n"), "the example changed: {text}");
        change(text).replace("retain: 10\n", "retain: 1\n")
    });
}

/// The service stack's template, as CloudFormation has it now.
async fn service_template(world: &World) -> String {
    let cloudformation = world.account.sdk.cloudformation(REGION);
    let out = cloudformation.get_template().stack_name("shop").send().await.expect("the service stack");
    out.template_body().unwrap_or_default().to_owned()
}

/// The version alias `alias` of `function` points at.
async fn alias_version(world: &World, function: &str, alias: &str) -> String {
    let out = world.lambda().get_alias().function_name(function).name(alias).send().await.expect("the alias");
    out.function_version().unwrap_or_default().to_owned()
}

async fn exists(world: &World, function: &str) -> bool {
    world.lambda().get_function().function_name(function).send().await.is_ok()
}

/// prod and dev deployed from the example; returns the version prod's worker alias points at.
async fn prod_and_dev(world: &World) -> String {
    world.ok(&["deploy", "--stage", "prod"]).await;
    world.ok(&["deploy", "--stage", "dev"]).await;
    let version = alias_version(world, "shop-worker", "prod").await;
    let recorded = &world.stage_status("prod").await["worker"]["recorded_version"];
    assert_eq!(recorded.as_str(), Some(version.as_str()), "prod's record");
    version
}

/// The deploy of dev from the branch: exit 0, and the report names worker kept for prod.
async fn deploy_dev_keeping_the_worker_for_prod(world: &World) {
    let reply = world.run(&["deploy", "--stage", "dev"]).await.unwrap_or_else(|e| panic!("deploy of dev: {e}"));
    let kept = reply.json["result"]["kept"]["worker"].as_array().cloned().unwrap_or_default();
    assert!(kept.contains(&Value::from("prod")), "{}", reply.json);
    let line = reply.json["kept"][0].as_str().unwrap_or_default();
    assert!(line.starts_with("kept worker (shop-worker): still used by stages ") && line.contains("prod"), "{line}");
    assert!(reply.text.contains(line), "the text says it too: {}", reply.text);
}

/// prod goes; its garbage collection takes `shop-worker` out of the service stack.
async fn remove_prod_collects_the_worker(world: &World) {
    let removed = world.ok(&["remove", "--stage", "prod"]).await;
    let garbage = &removed["result"]["garbage"];
    assert_eq!(garbage["removed_functions"], json!(["shop-worker"]), "{removed}");
    assert!(!exists(world, "shop-worker").await, "no stage uses it any more");
    let template = service_template(world).await;
    assert!(!template.contains("shop-worker"), "{template}");
    assert!(template.contains("shop-api"), "the rest stays: {template}");
}

#[tokio::test]
async fn a_function_a_dev_branch_drops_stays_for_prod_until_prod_is_removed() {
    let world = World::new().await;
    let version = prod_and_dev(&world).await;
    branch(&world, |text| {
        let start = text.find(WORKER).expect("worker");
        let end = text[start..].find("  thumbnailer:").expect("thumbnailer follows") + start;
        format!("{}{}", &text[..start], &text[end..])
    });
    deploy_dev_keeping_the_worker_for_prod(&world).await;
    assert!(exists(&world, "shop-worker").await);
    assert_eq!(alias_version(&world, "shop-worker", "prod").await, version, "prod still serves worker");
    assert!(service_template(&world).await.contains("shop-worker"));

    remove_prod_collects_the_worker(&world).await;
}

#[tokio::test]
async fn a_function_made_an_instance_per_stage_for_dev_stays_shared_for_prod_until_prod_is_removed() {
    let world = World::new().await;
    let version = prod_and_dev(&world).await;
    branch(&world, |text| text.replace(WORKER, &format!("{WORKER}    instance_per_stage: true\n")));
    deploy_dev_keeping_the_worker_for_prod(&world).await;
    assert!(exists(&world, "shop-dev-worker").await, "dev's own worker");
    assert_eq!(alias_version(&world, "shop-worker", "prod").await, version, "prod still serves the shared one");
    let dev = world.stage_status("dev").await;
    assert_eq!(dev["worker"]["function_name"], "shop-dev-worker", "{dev:?}");

    remove_prod_collects_the_worker(&world).await;
    assert!(exists(&world, "shop-dev-worker").await, "dev's own worker stays");
}

/// The time of the state machine's clock, for the steps too: a lease expires as the `Retry`
/// back-off of the definition advances it.
struct Simulated(Arc<InstantClock>);

impl functions::ports::Clock for Simulated {
    fn now(&self) -> DateTime<Utc> {
        statemachines::Clock::now(self.0.as_ref())
    }
}

/// On the fakes, since moto cannot hold a stack update open: another execution holds the
/// service lease for two more minutes (its stack update running); the real `deploy.asl.json`
/// retries `ServiceLocked` on that clock until the lease is free, and the deploy succeeds.
#[tokio::test]
async fn a_deploy_waits_for_the_service_lease_another_execution_holds_and_succeeds() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/shop/aliasflow.yaml");
    let manifest = Manifest::load(&path).expect("the example is valid");
    let aws = FakeAws::default();
    let mut artifacts = BTreeMap::new();
    for name in manifest.functions.keys() {
        let digest = Sha256::digest(name.as_bytes());
        let key = naming::artifact_key(&manifest.service, &hex::encode(digest));
        let code_sha256 = base64::engine::general_purpose::STANDARD.encode(digest);
        aws.history.put_artifact(&manifest.service, &key, Utc::now()).await.expect("fake history");
        aws.regions.fake_functions(REGION).know_artifact(&key, &code_sha256);
        artifacts.insert(name.clone(), ArtifactRef { key, code_sha256 });
    }
    let clock = Arc::new(InstantClock::new());
    let started = statemachines::Clock::now(clock.as_ref());
    let lease = std::time::Duration::from_secs(120);
    let held = aws.history.acquire("shop", SERVICE_LEASE, "exec-other", lease, started).await.expect("fake history");
    assert!(matches!(held, LockOutcome::Acquired(_)));

    let mut deps = aws.deps();
    deps.clock = Arc::new(Simulated(clock.clone()));
    let request = json!({ "stage": "prod", "manifest": manifest, "artifacts": artifacts });
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
    let execution = engine::run_local_with_clock("deploy", REGION, request, deps, events, clock.clone())
        .await
        .expect("the definition loads");
    assert_eq!(execution.status, ExecutionStatus::Succeeded, "{:?}: {:?}", execution.error, execution.cause);
    let mut locked = 0;
    while let Ok(event) = received.try_recv() {
        if matches!(&event.kind, EventKind::TaskFailed { error, .. } if error == "ServiceLocked") {
            locked += 1;
        }
    }
    assert!(locked > 1, "retried while the other execution held the lease: {locked}");
    let waited = statemachines::Clock::now(clock.as_ref()) - started;
    assert!(waited >= chrono::Duration::seconds(120), "until the lease was free: {waited}");
    assert!(aws.history.service("shop").await.expect("fake history").is_some(), "the stack is recorded");
    assert_eq!(aws.history.lock("shop", SERVICE_LEASE).await.expect("fake history"), None, "and the lease free");
}
