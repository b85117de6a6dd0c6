//! The lifecycle after deploy, end to end against moto: rollback, reset, clone, remove and
//! cleanup, each through the CLI in-process on its real state machine and the local engine.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration as Span, Utc};
use functions::domain::history::VersionRecord;
use functions::ports::{History, LockOutcome};
use serde_json::Value;

use crate::support::moto::REGION;
use crate::support::world::{calls_of, calls_to, World};

/// Gives function `name` of the example new code.
fn change(world: &World, name: &str, mark: &str) {
    world.example.edit(&format!("functions/{name}/bootstrap"), |text| format!("{text}\n# {mark}\n"));
}

/// The field of every record of a stage's status: function -> value.
fn column(status: &BTreeMap<String, Value>, field: &str) -> BTreeMap<String, String> {
    status.iter().map(|(f, r)| (f.clone(), r[field].as_str().unwrap_or("-").to_owned())).collect()
}

/// Everything a refused command must leave as it was: every alias and each stage's history.
async fn snapshot(world: &World, stages: &[&str]) -> (Vec<Value>, Vec<Vec<Value>>) {
    let mut histories = Vec::new();
    for stage in stages {
        histories.push(world.stage_history(stage).await);
    }
    (world.status().await, histories)
}

async fn stack_exists(world: &World, stack: &str) -> bool {
    let described = world.account.sdk.cloudformation(REGION).describe_stacks().stack_name(stack).send().await;
    described.is_ok_and(|out| {
        out.stacks().iter().any(|s| s.stack_status().is_some_and(|status| status.as_str() != "DELETE_COMPLETE"))
    })
}

/// Published versions of a function, as Lambda lists them.
async fn versions(world: &World, function: &str) -> Vec<String> {
    let listed = world.lambda().list_versions_by_function().function_name(function).send().await;
    let listed = listed.map(|out| out.versions().iter().filter_map(|v| v.version().map(str::to_owned)).collect());
    listed.unwrap_or_default()
}

/// The code sha256 of `$LATEST`.
async fn latest_code(world: &World, function: &str) -> String {
    let out = world.lambda().get_function_configuration().function_name(function).send().await.expect("function");
    out.code_sha256().unwrap_or_default().to_owned()
}

/// Moves every mark of use of the service's versions and artifacts `by` into the past, as if the
/// deploys that made them were that long ago: garbage collection keeps what was used within its
/// grace period.
async fn age(world: &World, by: Span) {
    let history = world.history();
    for version in history.versions("shop").await.expect("versions") {
        let aged = VersionRecord { used_at: version.used_at - by, ..version };
        history.put_version("shop", &aged).await.expect("put version");
    }
    for artifact in history.artifact_records("shop").await.expect("artifacts") {
        history.put_artifact("shop", &artifact.key, artifact.used_at - by).await.expect("put artifact");
    }
}

#[tokio::test]
async fn rollback_moves_every_alias_back_and_a_second_rollback_walks_further_back() {
    let world = World::new().await;
    world.ok(&["deploy", "--stage", "dev"]).await;
    let first = world.stage_status("dev").await;
    change(&world, "api", "api 2");
    world.ok(&["deploy", "--stage", "dev"]).await;
    let second = world.stage_status("dev").await;
    change(&world, "api", "api 3");
    change(&world, "thumbnailer", "thumbnailer 3");
    world.ok(&["deploy", "--stage", "dev"]).await;
    assert_ne!(column(&world.stage_status("dev").await, "version"), column(&second, "version"));

    let app = world.app();
    let rollback = world.run_with(&app, &["rollback", "--stage", "dev"]).await.expect("rollback");
    assert_eq!(rollback.json["result"]["id"], 4, "{}", rollback.json);
    assert_eq!(calls_of(&app, "Lambda", "PublishVersion"), 0, "{:?}", app.calls.snapshot());
    assert_eq!(calls_to(&app, "CloudFormation"), 0, "the stack is unchanged: {:?}", app.calls.snapshot());
    let now = world.stage_status("dev").await;
    assert_eq!(column(&now, "version"), column(&second, "version"), "every alias is back at deployment 2");
    assert!(now.values().all(|r| r["drift"].is_null()), "{now:?}");
    // Callers of the instance-per-stage function run `$LATEST`, which has its code back too.
    assert_eq!(latest_code(&world, "shop-dev-thumbnailer").await, column(&second, "code_sha256")["thumbnailer"]);

    let history = world.stage_history("dev").await;
    assert_eq!((history[0]["kind"].as_str(), history[0]["status"].as_str()), (Some("rollback"), Some("succeeded")));
    assert_eq!(history[0]["origin"], "dev#2");
    assert_eq!(history[0]["rollback_to"], 1, "the target's own rollback_to: {}", history[0]);

    world.ok(&["rollback", "--stage", "dev"]).await;
    assert_eq!(column(&world.stage_status("dev").await, "version"), column(&first, "version"), "back at deployment 1");
    let history = world.stage_history("dev").await;
    assert_eq!((history[0]["id"].as_u64(), history[0]["origin"].as_str()), (Some(5), Some("dev#1")));

    let before = snapshot(&world, &["dev"]).await;
    let err = world.refused(&["rollback", "--stage", "dev"]).await;
    assert_eq!(err.error_type(), "NothingToRollBack", "{err}");
    assert!(err.to_string().contains("stage dev"), "{err}");
    assert_eq!(snapshot(&world, &["dev"]).await, before, "a refusal changes nothing");
}

#[tokio::test]
async fn rollback_to_an_id_goes_there_and_ids_it_cannot_go_to_are_refused() {
    let world = World::new().await;
    world.ok(&["deploy", "--stage", "dev"]).await;
    let first = column(&world.stage_status("dev").await, "version");
    world.ok(&["deploy", "--stage", "prod"]).await;
    for mark in ["api 2", "api 3"] {
        change(&world, "api", mark);
        world.ok(&["deploy", "--stage", "dev"]).await;
    }

    let before = snapshot(&world, &["dev", "prod"]).await;
    for (args, needle) in [
        (["rollback", "--stage", "dev", "--to", "3"], "active deployment already"),
        (["rollback", "--stage", "dev", "--to", "9"], "no retained deployment 9"),
        (["rollback", "--stage", "prod", "--to", "3"], "deployment of stage dev"),
    ] {
        let err = world.refused(&args).await;
        assert_eq!(err.error_type(), "DeploymentUnknown", "{err}");
        assert!(err.to_string().contains(needle), "{needle}: {err}");
        assert!(err.to_string().contains("aliasflow history"), "says what to do: {err}");
    }
    assert_eq!(snapshot(&world, &["dev", "prod"]).await, before, "refusals change nothing");

    world.ok(&["rollback", "--stage", "dev", "--to", "1"]).await;
    assert_eq!(column(&world.stage_status("dev").await, "version"), first);
    let newest = &world.stage_history("dev").await[0];
    assert_eq!((newest["kind"].as_str(), newest["origin"].as_str()), (Some("rollback"), Some("dev#1")));
    assert!(newest["rollback_to"].is_null(), "deployment 1 had nothing before it: {newest}");
}

#[tokio::test]
async fn a_rollback_across_a_stage_stack_change_brings_the_stack_back() {
    let world = World::new().await;
    world.ok(&["deploy", "--stage", "dev"]).await;
    world.example.edit("aliasflow.yaml", |text| {
        text.replace("stage_resources:", "stage_resources:\n  Notices:\n    Type: AWS::SNS::Topic")
    });
    world.ok(&["deploy", "--stage", "dev"]).await;
    let template = |world: &World| {
        let client = world.account.sdk.cloudformation(REGION);
        async move {
            let out = client.get_template().stack_name("shop-dev").send().await.expect("template");
            out.template_body().unwrap_or_default().to_owned()
        }
    };
    assert!(template(&world).await.contains("Notices"));

    let app = world.app();
    world.run_with(&app, &["rollback", "--stage", "dev"]).await.expect("rollback");
    assert_eq!(calls_of(&app, "CloudFormation", "UpdateStack"), 1, "{:?}", app.calls.snapshot());
    assert!(!template(&world).await.contains("Notices"), "the stack is back at deployment 1's template");
    let status = world.stage_status("dev").await;
    assert!(status.values().all(|r| r["drift"].is_null()), "{status:?}");
}

#[tokio::test]
async fn reset_gives_dev_prods_code_sharing_versions_and_republishing_stage_bound_ones() {
    let world = World::new().await;
    world.ok(&["deploy", "--stage", "prod"]).await;
    change(&world, "api", "api 2");
    change(&world, "thumbnailer", "thumbnailer 2");
    world.ok(&["deploy", "--stage", "dev"]).await;
    let prod = world.stage_status("prod").await;
    let dev = world.stage_status("dev").await;
    assert_ne!(column(&dev, "code_sha256")["api"], column(&prod, "code_sha256")["api"]);

    let reset = world.ok(&["reset", "--stage", "dev", "--from", "prod"]).await;
    assert_eq!(reset["result"]["origin"], "prod#1", "{reset}");
    let after = world.stage_status("dev").await;
    let (versions, codes) = (column(&after, "version"), column(&after, "code_sha256"));
    assert_eq!(codes, column(&prod, "code_sha256"), "dev runs prod's code: {after:?}");
    assert_eq!(versions["worker"], column(&prod, "version")["worker"], "no stage binding: prod's version itself");
    let api = &versions["api"];
    assert!(api != &column(&prod, "version")["api"] && api != &column(&dev, "version")["api"], "a new api version");
    assert!(after.values().all(|r| r["drift"].is_null()), "{after:?}");

    // The republished api version keeps dev's own stage resources.
    let config = world.lambda().get_function_configuration().function_name("shop-api").qualifier(api).send().await;
    let environment = config.expect("api version").environment().and_then(|e| e.variables()).cloned();
    let orders = environment.unwrap_or_default().get("ORDERS_TABLE").cloned().unwrap_or_default();
    assert!(orders.contains("dev"), "ORDERS_TABLE is dev's table: {orders}");
    assert_eq!(latest_code(&world, "shop-dev-thumbnailer").await, column(&prod, "code_sha256")["thumbnailer"]);

    let newest = &world.stage_history("dev").await[0];
    assert_eq!((newest["kind"].as_str(), newest["origin"].as_str()), (Some("reset"), Some("prod#1")));
    assert_eq!(newest["rollback_to"], 1, "a rollback returns to dev's own deployment before the reset");
}

#[tokio::test]
async fn clone_creates_the_stage_with_prods_versions_and_refuses_an_existing_stage() {
    let world = World::new().await;
    world.ok(&["deploy", "--stage", "prod"]).await;
    let prod = world.stage_status("prod").await;

    world.ok(&["clone", "--stage", "feature", "--from", "prod"]).await;
    assert!(stack_exists(&world, "shop-feature").await, "the stage stack is created");
    let feature = world.stage_status("feature").await;
    assert_eq!(column(&feature, "code_sha256"), column(&prod, "code_sha256"));
    assert_eq!(column(&feature, "version")["worker"], column(&prod, "version")["worker"]);
    assert_ne!(column(&feature, "version")["api"], column(&prod, "version")["api"], "api binds to the stage");
    let history = world.stage_history("feature").await;
    assert_eq!(history.len(), 1);
    assert_eq!((history[0]["kind"].as_str(), history[0]["origin"].as_str()), (Some("clone"), Some("prod#1")));

    let before = snapshot(&world, &["feature", "prod"]).await;
    let err = world.refused(&["clone", "--stage", "feature", "--from", "prod"]).await;
    assert_eq!(err.error_type(), "StageExists", "{err}");
    assert!(err.to_string().contains("aliasflow reset --stage feature"), "says to use reset: {err}");
    assert_eq!(snapshot(&world, &["feature", "prod"]).await, before, "a refusal changes nothing");
}

#[tokio::test]
async fn removing_a_stage_deletes_its_stack_and_aliases_keeps_its_history_and_collects_only_orphans() {
    let world = World::new().await;
    world.ok(&["deploy", "--stage", "prod"]).await;
    world.ok(&["clone", "--stage", "feature", "--from", "prod"]).await;
    change(&world, "api", "api 2");
    world.ok(&["deploy", "--stage", "feature"]).await;
    let prod = column(&world.stage_status("prod").await, "version");
    let feature = column(&world.stage_status("feature").await, "version");
    // Deployment 1 of feature had its own api version too; someone points an alias of their own
    // at it, outside aliasflow.
    let cloned = world.stage_history("feature").await[1]["functions"][0]["version"].as_str().map(str::to_owned);
    let cloned = cloned.expect("the clone's api version");
    world
        .lambda()
        .create_alias()
        .function_name("shop-api")
        .name("hotfix")
        .function_version(&cloned)
        .send()
        .await
        .expect("alias");
    // An hour and more later: nothing is within the grace period any more.
    age(&world, Span::hours(2)).await;

    let removed = world.ok(&["remove", "--stage", "feature"]).await;
    let garbage = &removed["result"]["garbage"];
    assert!(!stack_exists(&world, "shop-feature").await, "the stage stack is gone");
    for function in ["shop-api", "shop-worker"] {
        let aliases = world.lambda().list_aliases().function_name(function).send().await.expect("aliases");
        assert!(aliases.aliases().iter().all(|a| a.name() != Some("feature")), "{function}: {aliases:?}");
    }
    let thumbnailer = world.lambda().get_function().function_name("shop-feature-thumbnailer").send().await;
    assert!(thumbnailer.is_err(), "the instance-per-stage function went with the stack");
    assert!(world.stage_status("feature").await.is_empty(), "status no longer lists it");

    let history = world.stage_history("feature").await;
    let kinds: Vec<&str> = history.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, ["remove", "deploy", "clone"], "history kept, the removal on top");
    assert!(history.iter().all(|d| d["removed"] == true), "marked removed: {history:?}");

    let api_versions = versions(&world, "shop-api").await;
    assert!(!api_versions.contains(&feature["api"]), "feature's own api version is deleted: {garbage}");
    assert!(api_versions.contains(&prod["api"]), "prod's api version stays");
    assert!(api_versions.contains(&cloned), "an alias still uses it: kept");
    assert!(versions(&world, "shop-worker").await.contains(&prod["worker"]), "the shared worker version stays");
    let kept = garbage["kept_versions"].to_string();
    assert!(kept.contains(&format!("shop-api:{cloned} (alias hotfix)")), "reported: {garbage}");
    let status = world.stage_status("prod").await;
    assert!(status.values().all(|r| r["drift"].is_null()), "prod is untouched: {status:?}");
}

#[tokio::test]
async fn removing_a_stage_that_is_being_deployed_is_refused_and_changes_nothing() {
    let world = World::new().await;
    world.ok(&["deploy", "--stage", "dev"]).await;
    let history = world.history();
    let lease = std::time::Duration::from_secs(600);
    let taken = history.acquire("shop", "stage:dev", "a-deploy", lease, Utc::now()).await.expect("acquire");
    assert!(matches!(taken, LockOutcome::Acquired(_)));

    let before = snapshot(&world, &["dev"]).await;
    let err = world.refused(&["remove", "--stage", "dev"]).await;
    assert_eq!(err.error_type(), "StageLocked", "{err}");
    assert!(err.to_string().contains("a-deploy"), "{err}");
    assert_eq!(snapshot(&world, &["dev"]).await, before);
    assert!(stack_exists(&world, "shop-dev").await);
    let lock = history.lock("shop", "stage:dev").await.expect("lock").expect("still held");
    assert_eq!(lock.owner, "a-deploy", "another holder's lock is never touched");
}

#[tokio::test]
async fn unknown_stages_and_origins_are_refused_with_clear_errors_and_nothing_changes() {
    let world = World::new().await;
    world.ok(&["deploy", "--stage", "dev"]).await;
    let before = snapshot(&world, &["dev"]).await;
    let cases: [(&[&str], &str, &str); 6] = [
        (&["rollback", "--stage", "nope"], "StageUnknown", "aliasflow deploy --stage nope"),
        (&["remove", "--stage", "nope"], "StageUnknown", "stage nope"),
        (&["reset", "--stage", "nope", "--from", "dev"], "StageUnknown", "stage nope"),
        (&["reset", "--stage", "dev", "--from", "nope"], "OriginInvalid", "aliasflow deploy --stage nope"),
        (&["clone", "--stage", "feature", "--from", "nope"], "OriginInvalid", "no live stage nope"),
        (&["rollback", "--stage", "dev"], "NothingToRollBack", "no deployment before it"),
    ];
    for (args, kind, needle) in cases {
        let err = world.refused(args).await;
        assert_eq!(err.error_type(), kind, "{args:?}: {err}");
        assert!(err.to_string().contains(needle), "{args:?}: {err}");
    }
    assert_eq!(snapshot(&world, &["dev"]).await, before, "refusals change nothing");
    assert!(!stack_exists(&world, "shop-feature").await);
    let err = world.refused(&["history", "--stage", "feature"]).await;
    assert_eq!(err.error_type(), "StageUnknown", "no history was written for feature: {err}");
}

#[tokio::test]
async fn cleanup_removes_expired_stages_and_breaks_stale_locks_on_record() {
    let world = World::new().await;
    world.ok(&["deploy", "--stage", "dev"]).await;
    world.ok(&["clone", "--stage", "pr-7", "--from", "dev"]).await;
    world.ok(&["clone", "--stage", "pr-8", "--from", "dev"]).await;
    let history = world.history();
    // pr-7 was last deployed eight days ago (its ttl is 7d); pr-8 just now.
    let mut pr7 = history.stage("shop", "pr-7").await.expect("read").expect("pr-7");
    pr7.last_deployed_at = Some(Utc::now() - Span::days(8));
    history.put_stage(&pr7).await.expect("write");
    // The execution deploying dev died an hour ago, with its lock.
    let lease = std::time::Duration::from_secs(60);
    history.acquire("shop", "stage:dev", "dead-deploy", lease, Utc::now() - Span::hours(1)).await.expect("lock");

    let cleanup = world.ok(&["cleanup"]).await;
    let result = &cleanup["result"];
    assert_eq!(result["stages"].as_array().map(Vec::len), Some(1), "{cleanup}");
    assert_eq!(
        (result["stages"][0]["stage"].as_str(), result["stages"][0]["removed"].as_bool()),
        (Some("pr-7"), Some(true))
    );
    assert!(!stack_exists(&world, "shop-pr-7").await);
    assert!(stack_exists(&world, "shop-pr-8").await, "pr-8 has not expired");
    let live: Vec<String> =
        world.status().await.iter().filter_map(|r| r["stage"].as_str().map(str::to_owned)).collect();
    assert!(live.contains(&"pr-8".to_owned()) && !live.contains(&"pr-7".to_owned()), "{live:?}");

    assert!(history.lock("shop", "stage:dev").await.expect("lock").is_none(), "the stale lock is broken");
    let newest = &world.stage_history("dev").await[0];
    assert_eq!((newest["kind"].as_str(), newest["status"].as_str()), (Some("unlock"), Some("failed")));
    assert!(newest["error"].as_str().unwrap_or_default().contains("dead-deploy"), "{newest}");
    world.ok(&["deploy", "--stage", "dev"]).await;
}

#[tokio::test]
async fn remove_without_a_stage_removes_every_stage_then_the_service_stack() {
    let world = World::new().await;
    world.ok(&["deploy", "--stage", "dev"]).await;
    world.ok(&["deploy", "--stage", "prod"]).await;
    let removed = world.run(&["remove"]).await.expect("remove everything");
    assert_eq!(removed.json["result"]["stages"].as_array().map(Vec::len), Some(2), "{}", removed.json);
    for stack in ["shop", "shop-dev", "shop-prod"] {
        assert!(!stack_exists(&world, stack).await, "{stack} is gone");
    }
    assert!(world.history().service("shop").await.expect("read").is_none(), "the service is forgotten");
    assert!(world.status().await.is_empty());
    for stage in ["dev", "prod"] {
        let history = world.stage_history(stage).await;
        assert_eq!(history[0]["kind"], "remove", "{stage}: history kept: {history:?}");
    }
    let versions = world.history().versions("shop").await.expect("read");
    assert!(versions.is_empty(), "no version is left in the catalogue: {versions:?}");
}

#[tokio::test]
async fn a_rollback_that_fails_midway_puts_every_alias_back_records_the_failure_and_releases_the_lock() {
    let world = World::new().await;
    world.ok(&["deploy", "--stage", "dev"]).await;
    let first = column(&world.stage_status("dev").await, "version");
    change(&world, "api", "api 2");
    change(&world, "worker", "worker 2");
    world.ok(&["deploy", "--stage", "dev"]).await;
    let second = column(&world.stage_status("dev").await, "version");
    // Someone deletes worker's first version behind aliasflow's back: its alias cannot go there.
    let deleted =
        world.lambda().delete_function().function_name("shop-worker").qualifier(&first["worker"]).send().await;
    deleted.expect("delete the version");

    let err = world.refused(&["rollback", "--stage", "dev"]).await;
    assert_eq!(err.error_type(), "AwsFailed", "{err}");
    assert!(err.to_string().contains("shop-worker"), "names the function: {err}");
    let now = world.stage_status("dev").await;
    assert_eq!(column(&now, "version"), second, "every alias is back where it was");
    assert!(now.values().all(|r| r["drift"].is_null()), "{now:?}");
    let newest = &world.stage_history("dev").await[0];
    assert_eq!((newest["kind"].as_str(), newest["status"].as_str()), (Some("rollback"), Some("failed")));
    assert_eq!(newest["origin"], "dev#1");
    assert!(world.history().lock("shop", "stage:dev").await.expect("lock").is_none(), "the lock is released");
    world.ok(&["deploy", "--stage", "dev"]).await;
}

#[tokio::test]
async fn the_history_lists_every_lease_of_a_service_and_a_new_stages_lock_stops_garbage_collection() {
    let world = World::new().await;
    world.ok(&["deploy", "--stage", "dev"]).await;
    let history = world.history();
    let lease = std::time::Duration::from_secs(600);
    let now = Utc::now();
    // A first deploy of pr-9 (no stage record yet) and a publish lease of another execution.
    history.acquire("shop", "stage:pr-9", "first-deploy", lease, now).await.expect("stage lock");
    history.acquire("shop", "publish:us-east-1/shop-api", "publisher", lease, now).await.expect("publish lease");
    history.acquire("other", "stage:dev", "elsewhere", lease, now).await.expect("another service's lock");
    assert!(history.stage("shop", "pr-9").await.expect("read").is_none());

    let locks = history.locks("shop").await.expect("locks");
    let held: Vec<(&str, &str)> = locks.iter().map(|(name, lock)| (name.as_str(), lock.owner.as_str())).collect();
    assert_eq!(held, [("publish:us-east-1/shop-api", "publisher"), ("stage:pr-9", "first-deploy")]);
    let until = (now + Span::minutes(10)).timestamp_millis();
    assert!(locks.iter().all(|(_, lock)| lock.expires_at.timestamp_millis() == until), "{locks:?}");

    let cleanup = world.ok(&["cleanup"]).await;
    let skipped = cleanup["result"]["garbage"]["skipped"].as_str().unwrap_or_default().to_owned();
    for needle in ["stage:pr-9", "first-deploy", "publish:us-east-1/shop-api", "publisher"] {
        assert!(skipped.contains(needle), "{needle}: {cleanup}");
    }
}

#[tokio::test]
async fn the_history_deletes_a_record_only_if_no_deploy_marked_it_used_after_it_was_read() {
    let world = World::new().await;
    let history = world.history();
    let long_ago = Utc::now() - Span::hours(3);
    let key = "shop/artifacts/a.zip";
    history.put_artifact("shop", key, long_ago).await.expect("put");
    let read = history.artifact_records("shop").await.expect("read").remove(0);
    assert_eq!((read.key.as_str(), read.used_at.timestamp_millis()), (key, long_ago.timestamp_millis()));
    assert!(history.touch_artifact("shop", key, Utc::now()).await.expect("touch"));
    assert!(!history.delete_artifact_if_unchanged("shop", &read).await.expect("refused"), "marked since the read");
    assert_eq!(history.artifacts("shop").await.expect("keys"), [key]);
    let read = history.artifact_records("shop").await.expect("read").remove(0);
    assert!(history.delete_artifact_if_unchanged("shop", &read).await.expect("delete"));
    assert!(!history.touch_artifact("shop", key, Utc::now()).await.expect("touch"), "nothing left to mark");
    assert!(history.artifacts("shop").await.expect("keys").is_empty(), "and marking did not bring it back");
    // A record read as used at the epoch (as one written before `used_at` reads) goes as such.
    history.put_artifact("shop", key, DateTime::default()).await.expect("put");
    let read = history.artifact_records("shop").await.expect("read").remove(0);
    assert!(history.delete_artifact_if_unchanged("shop", &read).await.expect("delete"));

    let version = VersionRecord {
        function_name: "shop-api".into(),
        region: REGION.into(),
        version: "7".into(),
        code_sha256: "c2hh".into(),
        config_hash: "ab".repeat(32),
        artifact_key: key.into(),
        used_at: long_ago,
    };
    history.put_version("shop", &version).await.expect("put");
    let read = history.versions("shop").await.expect("read").remove(0);
    assert_eq!(read, version);
    let marked = VersionRecord { used_at: Utc::now(), ..version.clone() };
    assert!(history.touch_version("shop", &marked).await.expect("touch"));
    assert!(!history.delete_version_if_unchanged("shop", &read).await.expect("refused"), "marked since the read");
    let read = history.versions("shop").await.expect("read").remove(0);
    assert_eq!(read, marked);
    assert!(history.delete_version_if_unchanged("shop", &read).await.expect("delete"));
    assert!(!history.touch_version("shop", &marked).await.expect("touch"), "nothing left to mark");
    assert!(history.versions("shop").await.expect("read").is_empty());
}

#[tokio::test]
async fn removing_a_stage_right_after_its_deploy_deletes_its_versions_and_keeps_its_artifacts_for_the_grace_period() {
    let world = World::new().await;
    world.ok(&["deploy", "--stage", "prod"]).await;
    change(&world, "api", "feature api");
    world.ok(&["deploy", "--stage", "feature"]).await;
    let feature = column(&world.stage_status("feature").await, "version");

    let removed = world.ok(&["remove", "--stage", "feature"]).await;
    let garbage = &removed["result"]["garbage"];
    assert!(!versions(&world, "shop-api").await.contains(&feature["api"]), "its own version goes: {garbage}");
    let recent = garbage["kept_recent"].to_string();
    assert!(recent.contains("shop/artifacts/"), "its code stays for a while, reported: {garbage}");
    let deleted = garbage["deleted_objects"].as_array().cloned().unwrap_or_default();
    assert!(deleted.iter().all(|key| !key.as_str().unwrap_or_default().contains("/artifacts/")), "{garbage}");
}

#[tokio::test]
async fn a_redeploy_of_code_whose_artifact_garbage_collection_deleted_uploads_it_again() {
    let world = World::new().await;
    world.ok(&["deploy", "--stage", "prod"]).await;
    let history = world.history();
    let before: BTreeSet<String> = history.artifacts("shop").await.expect("keys").into_iter().collect();
    change(&world, "api", "feature api");
    world.ok(&["deploy", "--stage", "feature"]).await;
    let code = column(&world.stage_status("feature").await, "code_sha256")["api"].clone();
    let after: BTreeSet<String> = history.artifacts("shop").await.expect("keys").into_iter().collect();
    let key = after.difference(&before).next().cloned().expect("feature's api artifact");

    // feature goes an hour after its deploy: its api artifact goes with it, record and object.
    age(&world, Span::hours(2)).await;
    let removed = world.ok(&["remove", "--stage", "feature"]).await;
    assert!(removed["result"]["garbage"]["deleted_objects"].to_string().contains(&key), "{removed}");
    assert!(!history.artifacts("shop").await.expect("keys").contains(&key), "record deleted");
    let bucket = history.deployer().await.expect("read").expect("bootstrapped").bucket;
    let s3 = world.account.sdk.s3(REGION);
    assert!(s3.head_object().bucket(&bucket).key(&key).send().await.is_err(), "object deleted");

    // The same code again: the CLI finds no record to mark, so it uploads the zip again.
    world.ok(&["deploy", "--stage", "feature"]).await;
    let status = world.stage_status("feature").await;
    assert_eq!(column(&status, "code_sha256")["api"], code);
    assert!(status.values().all(|r| r["drift"].is_null()), "{status:?}");
    s3.head_object().bucket(&bucket).key(&key).send().await.expect("uploaded again");
    let record = history.artifact_records("shop").await.expect("read").into_iter().find(|a| a.key == key);
    let used = record.expect("recorded again").used_at;
    assert!(Utc::now() - used < Span::minutes(10), "marked used by this deploy: {used}");
}
