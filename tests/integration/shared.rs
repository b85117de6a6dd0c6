//! Shared functions outlive a manifest, end to end against moto: a deploy of one stage from a
//! manifest that drops a shared function (or makes it an instance per stage) keeps it while
//! another stage uses it, and the garbage collection of the removal of that stage takes it out
//! of the service stack.

use serde_json::Value;

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
    assert_eq!(garbage["removed_functions"], serde_json::json!(["shop-worker"]), "{removed}");
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
