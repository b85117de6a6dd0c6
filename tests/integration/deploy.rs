//! End to end against moto: the CLI's commands run in-process (`aliasflow::run`) with the
//! test's own moto account, on the real `deploy.asl.json` and the local engine.

use std::path::PathBuf;
use std::time::Duration;

use aliasflow::cli::Cli;
use aliasflow::App;
use clap::Parser;
use functions::ports::{History, LockOutcome};

use crate::support::moto;
use crate::support::workspace::Workspace;
use crate::support::world::{calls_of, calls_to as count, World};

/// function -> (version, recorded version, drift) of one stage, from `status --output json`.
async fn versions(world: &World, stage: &str) -> Vec<(String, String, String, bool)> {
    // `drift` is null when the alias is where its record says, else what is wrong.
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    let status = world.stage_status(stage).await;
    status
        .into_iter()
        .map(|(function, r)| (function, text(&r["version"]), text(&r["recorded_version"]), !r["drift"].is_null()))
        .collect()
}

#[tokio::test]
async fn two_stages_deploy_and_a_code_change_redeploys_one_function_without_cloudformation() {
    let world = World::new().await;
    world.ok(&["deploy"]).await;
    let dev = world.ok(&["deploy", "--stage", "dev"]).await;
    assert_eq!(dev["result"]["id"], 1, "{dev}");
    world.ok(&["deploy", "--stage", "prod"]).await;

    let before_dev = versions(&world, "dev").await;
    let before_prod = versions(&world, "prod").await;
    assert!(before_dev.iter().all(|(_, version, recorded, drift)| version == recorded && !drift), "{before_dev:?}");

    world.example.edit("functions/api/bootstrap", |text| format!("{text}\n# a code change\n"));
    let app = world.app();
    let redeploy = world.run_with(&app, &["deploy", "--stage", "dev"]).await.expect("code-only deploy");
    assert_eq!(
        count(&app, "CloudFormation"),
        0,
        "a code-only deploy makes no CloudFormation call: {:?}",
        app.calls.snapshot()
    );
    assert_eq!(redeploy.json["result"]["published"], 1, "{}", redeploy.json);

    let after_dev = versions(&world, "dev").await;
    for ((function, old, _, _), (_, new, recorded, drift)) in before_dev.iter().zip(&after_dev) {
        assert!(!drift && new == recorded, "{function}: {after_dev:?}");
        assert_eq!(function == "api", old != new, "only api changes: {before_dev:?} -> {after_dev:?}");
    }
    assert_eq!(versions(&world, "prod").await, before_prod, "prod is untouched");

    let history = world.ok(&["history", "--stage", "dev"]).await;
    let ids: Vec<u64> = history.as_array().expect("a list").iter().filter_map(|d| d["id"].as_u64()).collect();
    assert_eq!(ids, vec![2, 1], "newest first");
    let newest = &history[0];
    assert_eq!(newest["kind"], "deploy");
    assert_eq!(newest["status"], "succeeded");
    for record in newest["functions"].as_array().expect("functions") {
        for field in ["function_name", "alias", "version", "code_sha256"] {
            assert!(record[field].is_string(), "{field} in {record}");
        }
    }
}

#[tokio::test]
async fn a_deploy_with_nothing_changed_publishes_nothing_and_touches_no_stack() {
    let world = World::new().await;
    world.ok(&["deploy", "--stage", "dev"]).await;
    let app = world.app();
    let again = world.run_with(&app, &["deploy", "--stage", "dev"]).await.expect("second deploy");
    let calls = app.calls.snapshot();
    assert_eq!(calls_of(&app, "Lambda", "PublishVersion"), 0, "{calls:?}");
    assert_eq!(count(&app, "CloudFormation"), 0, "{calls:?}");
    assert_eq!(again.json["result"]["published"], 0);
}

#[tokio::test]
async fn a_locked_stage_is_refused_and_nothing_changes() {
    let world = World::new().await;
    world.ok(&["deploy", "--stage", "dev"]).await;
    let before = versions(&world, "dev").await;
    let history = world.history();
    let lease = Duration::from_secs(600);
    let taken = history.acquire("shop", "stage:dev", "someone-else", lease, chrono::Utc::now()).await.expect("acquire");
    assert!(matches!(taken, LockOutcome::Acquired(_)));

    world.example.edit("functions/api/bootstrap", |text| format!("{text}\n# another change\n"));
    let err = world.run(&["deploy", "--stage", "dev"]).await.expect_err("the stage is locked");
    assert_eq!(err.error_type(), "StageLocked", "{err}");
    assert!(err.to_string().contains("someone-else"), "the message names the holder: {err}");

    assert_eq!(versions(&world, "dev").await, before, "no alias moved");
    let rows = world.ok(&["history", "--stage", "dev"]).await;
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "a refusal records nothing: {rows}");
    let lock = history.lock("shop", "stage:dev").await.expect("lock").expect("still held");
    assert_eq!(lock.owner, "someone-else", "another holder's lock is never touched");

    let status = world.ok(&["status", "--stage", "dev"]).await;
    assert_eq!(status[0]["lock"]["holder"], "someone-else", "status shows the holder: {status}");
    world.ok(&["unlock", "--stage", "dev", "--lock-id", "someone-else"]).await;
    world.ok(&["deploy", "--stage", "dev"]).await;
}

#[tokio::test]
async fn a_missing_code_artifact_is_refused_before_any_aws_call() {
    let world = World::new().await;
    std::fs::remove_dir_all(world.example.path("functions/worker")).expect("remove the worker's code");
    let app = world.app();
    let err = world.run_with(&app, &["deploy", "--stage", "dev"]).await.expect_err("no code");
    let message = err.to_string();
    assert!(message.contains("functions.worker.code") && message.contains("functions/worker"), "{message}");
    assert!(app.calls.snapshot().is_empty(), "no AWS call: {:?}", app.calls.snapshot());
}

#[tokio::test]
async fn an_unknown_stage_has_no_history_and_status_says_so() {
    let world = World::new().await;
    let err = world.run(&["history", "--stage", "nope"]).await.expect_err("unknown stage");
    assert_eq!(err.error_type(), "StageUnknown", "{err}");
    assert!(err.to_string().contains("aliasflow deploy --stage nope"), "{err}");
}

#[tokio::test]
async fn commands_before_bootstrap_say_to_run_it() {
    let account = moto::account().await;
    let example = Workspace::example("shop");
    let manifest: PathBuf = example.path("aliasflow.yaml");
    let argv = ["aliasflow", "-f", manifest.to_str().unwrap_or_default(), "status"];
    let err =
        aliasflow::run(&Cli::parse_from(argv), &App::with_sdk(account.sdk.clone())).await.expect_err("no deployer");
    assert_eq!(err.error_type(), "NotBootstrapped", "{err}");
    assert!(err.to_string().contains("aliasflow bootstrap"), "{err}");
}

#[tokio::test]
async fn a_deploy_completes_with_a_quarter_of_all_aws_calls_throttled() {
    let (account, throttling) = moto::throttled_account(4).await;
    let world = World { account, example: Workspace::example("shop") };
    world.ok(&["bootstrap"]).await;
    let started = std::time::Instant::now();
    world.ok(&["deploy", "--stage", "dev"]).await;
    let first = started.elapsed();
    world.example.edit("functions/api/bootstrap", |text| format!("{text}\n# a code change\n"));
    let started = std::time::Instant::now();
    world.ok(&["deploy", "--stage", "dev"]).await;
    let second = started.elapsed();
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "figures: a quarter throttled: first deploy {:.1} s, code change {:.1} s; {} of {} requests throttled",
            first.as_secs_f64(),
            second.as_secs_f64(),
            throttling.throttled(),
            throttling.requests()
        );
    }
    assert!(throttling.throttled() * 6 >= throttling.requests(), "about one request in four was throttled");
    let rows = versions(&world, "dev").await;
    assert!(rows.iter().all(|(_, version, recorded, drift)| version == recorded && !drift), "{rows:?}");
    let history = world.ok(&["history", "--stage", "dev"]).await;
    assert!(history.as_array().is_some_and(|d| d.len() == 2 && d.iter().all(|d| d["status"] == "succeeded")));
}

#[tokio::test]
async fn the_service_stack_is_created_then_left_alone_then_updated_when_its_template_changes() {
    let world = World::new().await;
    assert_eq!(world.ok(&["deploy"]).await["result"]["operation"], "created");

    let app = world.app();
    let unchanged = world.run_with(&app, &["deploy"]).await.expect("no-op");
    assert_eq!(unchanged.json["result"]["operation"], "none");
    assert_eq!(count(&app, "CloudFormation"), 0, "an unchanged template makes no stack call");

    world.example.edit("aliasflow.yaml", |text| {
        text.replace(
            "resources:                         # service stack",
            "resources:\n  Logs:\n    Type: AWS::S3::Bucket\n  # service stack",
        )
    });
    let app = world.app();
    let updated = world.run_with(&app, &["deploy"]).await.expect("update");
    assert_eq!(updated.json["result"]["operation"], "updated", "{}", updated.json);
    assert_eq!(updated.json["stack_operations"], 1);
}

#[tokio::test]
async fn flipping_instance_per_stage_moves_the_function_between_stacks_and_keeps_its_history() {
    let world = World::new().await;
    world.ok(&["deploy", "--stage", "dev"]).await;
    world.example.edit("aliasflow.yaml", |text| {
        text.replace("      MODE: batch ", "      MODE: batch\n    instance_per_stage: true ")
    });
    world.ok(&["deploy", "--stage", "dev"]).await;
    let status = world.ok(&["status", "--stage", "dev"]).await;
    let worker = status.as_array().and_then(|rows| rows.iter().find(|r| r["function"] == "worker")).cloned();
    let worker = worker.expect("worker in status");
    assert_eq!(worker["function_name"], "shop-dev-worker", "{worker}");
    assert_eq!(worker["drift"], serde_json::Value::Null, "{worker}");
    let history = world.ok(&["history", "--stage", "dev"]).await;
    let names: Vec<&str> = history
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|d| {
            d["functions"].as_array()?.iter().find(|f| f["function"] == "worker")?["function_name"].as_str()
        })
        .collect();
    assert_eq!(names, ["shop-dev-worker", "shop-worker"], "one history under the manifest key, newest first");
}
