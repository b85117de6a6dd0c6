//! The stage lease while an execution runs: `AcquireLock` takes it for `settings.lock_lease`,
//! and every step that runs under it renews it once less than half of that remains, so a live
//! execution never loses it however long it takes. [`steps::run`](super::run) does this for
//! every such step from the lock the state carries (`$.lock`); a step that waits long inside
//! (stack polling) calls [`renew_if_due`] between its waits.

use std::future::Future;

use serde::Deserialize;
use serde_json::Value;

use crate::domain::history::Lock;
use crate::error::StepError;
use crate::ports::{Deps, LockOutcome};
use crate::steps::acquire_lock::stage_lock;

/// The steps that run while their execution holds the stage lock.
pub const UNDER_STAGE_LOCK: &[&str] = &[
    "EnsureServiceStack",
    "EnsureStageStack",
    "PublishVersion",
    "SwitchAliases",
    "WireStage",
    "RecordDeployment",
    "ReapplyLatest",
    "DeleteAliases",
    "DeleteStack",
    "RecordRemoval",
    "RestoreAliases",
    "RecordFailure",
];

/// What renewing reads of a step's input: the lock `AcquireLock` put in the state.
#[derive(Debug, Deserialize)]
struct Held {
    service: String,
    stage: Option<String>,
    owner: String,
    lock: Option<Lock>,
}

/// Renews the stage lease the state carries, when one is due; nothing for an input without a
/// stage or a lock (the service stack alone, a hand-made input). An input this cannot read is
/// left to the step, which reports it.
pub async fn keep(input: &serde_json::Value, deps: &Deps) -> Result<(), StepError> {
    let Ok(Held { service, stage: Some(stage), owner, lock: Some(lock) }) = Held::deserialize(input) else {
        return Ok(());
    };
    renew_if_due(&service, &stage, &owner, &lock, deps).await.map(drop)
}

/// Runs `step` with the stage lease the state carries kept alive: renewed when due before it
/// starts, and checked every sixth of the lease while it runs, so a step that waits long (a stack
/// update in the local engine, where no Lambda timeout bounds a step) never outlives its lease.
/// A lease lost meanwhile ends the step with `LockLost`; a failed check is only logged, the next
/// one tries again.
pub async fn held_while<F>(input: &Value, deps: &Deps, step: F) -> Result<Value, StepError>
where
    F: Future<Output = Result<Value, StepError>>,
{
    keep(input, deps).await?;
    let period = deps.settings.lock_lease / 6;
    let watch = async {
        loop {
            tokio::time::sleep(period).await;
            match keep(input, deps).await {
                Err(lost @ StepError::LockLost { .. }) => return lost,
                Err(error) => tracing::warn!(%error, "could not check the stage lease; trying again later"),
                Ok(()) => {}
            }
        }
    };
    tokio::select! {
        output = step => output,
        lost = watch => Err(lost),
    }
}

/// The stage lease `lock` of `owner`, renewed for another `settings.lock_lease` when less than
/// half of it remains; as it is (no call) otherwise. `LockLost` when another owner holds it or
/// nobody does (broken by `unlock`, or expired and taken).
pub async fn renew_if_due(
    service: &str,
    stage: &str,
    owner: &str,
    lock: &Lock,
    deps: &Deps,
) -> Result<Lock, StepError> {
    let now = deps.clock.now();
    let lease = chrono::Duration::from_std(deps.settings.lock_lease).unwrap_or(chrono::Duration::MAX);
    if lock.expires_at - now >= lease / 2 {
        return Ok(lock.clone());
    }
    let lost = || StepError::LockLost { stage: stage.to_owned(), owner: owner.to_owned() };
    let name = stage_lock(stage);
    // Read first: taking a lease whose owner lapsed would take another's expired one too.
    let stored = deps.history.lock(service, &name).await?.filter(|l| l.owner == owner).ok_or_else(lost)?;
    // The state carries the lock as `AcquireLock` took it: an earlier step may have renewed it.
    if stored.expires_at - now >= lease / 2 {
        return Ok(stored);
    }
    match deps.history.acquire(service, &name, owner, deps.settings.lock_lease, now).await? {
        LockOutcome::Acquired(renewed) => {
            tracing::info!(stage, expires_at = %renewed.expires_at, "stage lock renewed");
            Ok(renewed)
        }
        LockOutcome::Held(_) => Err(lost()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::Utc;
    use serde_json::json;

    use super::*;
    use crate::fakes::FakeAws;
    use crate::ports::History;

    const LEASE: Duration = Duration::from_secs(30 * 60);

    async fn taken(aws: &FakeAws, owner: &str, ago: chrono::Duration) -> Lock {
        match aws.history.acquire("shop", "stage:dev", owner, LEASE, Utc::now() - ago).await.unwrap() {
            LockOutcome::Acquired(lock) => lock,
            LockOutcome::Held(lock) => panic!("held by {lock:?}"),
        }
    }

    #[test]
    fn every_step_under_the_lock_is_a_step() {
        let unknown: Vec<&&str> = UNDER_STAGE_LOCK.iter().filter(|s| !crate::steps::NAMES.contains(s)).collect();
        assert!(unknown.is_empty(), "{unknown:?}");
    }

    #[tokio::test]
    async fn a_long_step_keeps_its_lease_and_one_whose_lease_is_taken_ends_lost() {
        let aws = FakeAws::default();
        let mut deps = aws.deps();
        deps.settings.lock_lease = Duration::from_millis(600);
        let lock = match aws.history.acquire("shop", "stage:dev", "exec-1", deps.settings.lock_lease, Utc::now()).await
        {
            Ok(LockOutcome::Acquired(lock)) => lock,
            other => panic!("{other:?}"),
        };
        let input = json!({ "service": "shop", "stage": "dev", "owner": "exec-1", "lock": lock });
        let long = async {
            tokio::time::sleep(Duration::from_millis(900)).await;
            Ok(json!("done"))
        };
        assert_eq!(held_while(&input, &deps, long).await.unwrap(), json!("done"));
        let stored = aws.history.lock("shop", "stage:dev").await.unwrap().unwrap();
        assert!(stored.expires_at > lock.expires_at, "renewed while the step ran: {stored:?}");
        assert!(stored.expires_at > Utc::now(), "still held after 900 ms of a 600 ms lease");

        let taken = async {
            aws.history.release("shop", "stage:dev", "exec-1").await.unwrap();
            aws.history.acquire("shop", "stage:dev", "exec-2", LEASE, Utc::now()).await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(json!("never"))
        };
        let err = held_while(&input, &deps, taken).await.unwrap_err();
        assert_eq!(err.error_type(), "LockLost");
    }

    #[tokio::test]
    async fn a_fresh_lease_is_left_alone_without_a_call() {
        let aws = FakeAws::default();
        let lock = taken(&aws, "exec-1", chrono::Duration::minutes(1)).await;
        let calls = aws.history.total_calls();
        assert_eq!(renew_if_due("shop", "dev", "exec-1", &lock, &aws.deps()).await.unwrap(), lock);
        assert_eq!(aws.history.total_calls(), calls);
    }

    #[tokio::test]
    async fn a_lease_past_its_half_is_renewed_once() {
        let aws = FakeAws::default();
        let lock = taken(&aws, "exec-1", chrono::Duration::minutes(20)).await;
        let renewed = renew_if_due("shop", "dev", "exec-1", &lock, &aws.deps()).await.unwrap();
        assert!(renewed.expires_at > Utc::now() + chrono::Duration::minutes(29), "{renewed:?}");
        assert_eq!(aws.history.lock("shop", "stage:dev").await.unwrap(), Some(renewed.clone()));
        // The state still carries the old lock: the stored one is fresh, nothing is written.
        let acquires = aws.history.calls("acquire");
        assert_eq!(renew_if_due("shop", "dev", "exec-1", &lock, &aws.deps()).await.unwrap(), renewed);
        assert_eq!(aws.history.calls("acquire"), acquires);
    }

    #[tokio::test]
    async fn a_lease_another_owner_holds_or_nobody_holds_is_lost() {
        let aws = FakeAws::default();
        let mine = taken(&aws, "exec-1", chrono::Duration::minutes(40)).await;
        taken(&aws, "exec-2", chrono::Duration::zero()).await;
        let err = renew_if_due("shop", "dev", "exec-1", &mine, &aws.deps()).await.unwrap_err();
        assert_eq!(err.error_type(), "LockLost");
        assert_eq!(aws.history.lock("shop", "stage:dev").await.unwrap().map(|l| l.owner).as_deref(), Some("exec-2"));

        assert!(aws.history.release("shop", "stage:dev", "exec-2").await.unwrap());
        let err = renew_if_due("shop", "dev", "exec-1", &mine, &aws.deps()).await.unwrap_err();
        assert_eq!(err.error_type(), "LockLost", "broken by unlock: not taken back");
        assert_eq!(aws.history.lock("shop", "stage:dev").await.unwrap(), None);
    }

    #[tokio::test]
    async fn keep_reads_the_lock_from_the_state_and_skips_an_input_without_one() {
        let aws = FakeAws::default();
        let lock = taken(&aws, "exec-1", chrono::Duration::minutes(20)).await;
        let state = json!({ "service": "shop", "stage": "dev", "owner": "exec-1", "lock": lock, "other": 1 });
        keep(&state, &aws.deps()).await.unwrap();
        assert!(aws.history.lock("shop", "stage:dev").await.unwrap().unwrap().expires_at > lock.expires_at);
        let calls = aws.history.total_calls();
        keep(&json!({ "service": "shop", "stage": null, "owner": "exec-1" }), &aws.deps()).await.unwrap();
        assert_eq!(aws.history.total_calls(), calls);
    }
}
