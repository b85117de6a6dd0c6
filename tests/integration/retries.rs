//! Retry in one layer (DESIGN.md "Retries in one layer"): aliasflow's own SDK retry policy, as
//! the CLI and the step handlers load it, against faults injected in front of moto (which never
//! throttles nor fails): a permanent 500 ends the run quickly with the stage as it was; a
//! quarter of all calls throttled still deploys. The elapsed times are printed for the figures,
//! never asserted.

use std::time::Instant;

use crate::support::moto;
use crate::support::workspace::Workspace;
use crate::support::world::{calls_of, World};

/// Lambda's `PublishVersion`: `POST /2015-03-31/functions/<name>/versions`.
const PUBLISH_VERSION: (&str, &str) = ("POST", "/versions");

#[tokio::test]
async fn a_publish_version_that_fails_every_time_ends_the_deploy_with_the_stage_as_it_was() {
    let (account, faults) = moto::throttled_account(0).await;
    let world = World { account, example: Workspace::example("shop") };
    world.ok(&["bootstrap"]).await;
    let started = Instant::now();
    world.ok(&["deploy", "--stage", "dev"]).await;
    let first = started.elapsed();
    let before = world.stage_status("dev").await;
    world.example.edit("functions/api/bootstrap", |text| format!("{text}\n# a code change\n"));

    faults.set_broken(Some(PUBLISH_VERSION));
    let app = world.app();
    let started = Instant::now();
    let err = world.run_with(&app, &["deploy", "--stage", "dev"]).await.expect_err("PublishVersion always fails");
    let elapsed = started.elapsed();
    let calls = calls_of(&app, "Lambda", "PublishVersion");
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "figures: unthrottled first deploy {:.1} s; permanent 500 on PublishVersion: deploy failed after {:.1} s; {calls} PublishVersion call, sent {} times",
            first.as_secs_f64(),
            elapsed.as_secs_f64(),
            faults.failed()
        );
    }
    let message = err.to_string();
    assert!(message.contains("PublishVersion") && message.contains("ServiceException"), "{message}");
    // One layer: one call (for the one function that changed), sent as often as the SDK's
    // policy attempts it, not that many times the state machine's `Retry` again.
    assert_eq!(calls, 1, "{message}");
    assert_eq!(faults.failed(), u64::from(functions::aws::MAX_ATTEMPTS), "{message}");

    faults.set_broken(None);
    let after = world.stage_status("dev").await;
    for (function, record) in &before {
        assert_eq!(after[function]["version"], record["version"], "{function}: alias where it was");
    }
    let history = world.stage_history("dev").await;
    assert_eq!(history[0]["status"], "failed", "the failure is recorded: {:?}", history[0]);
    assert!(world.status().await.iter().all(|r| r["lock"].is_null()), "the lock is released");
    world.ok(&["deploy", "--stage", "dev"]).await;
}
