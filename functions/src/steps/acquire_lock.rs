//! `AcquireLock`: takes the stage's lease for this execution, or refuses with `StageLocked`
//! naming the holder. Then it validates what `Plan` read before the lock was held: if another
//! execution changed the stage since (its state, active deployment, next id or region), the
//! plan is stale; the lock just taken is released and the step refuses with `StageChanged`,
//! having written nothing else. Taking it again as the same owner renews it: safe to repeat.

use serde::Deserialize;

use crate::domain::history::{Lock, StageRecord};
use crate::error::StepError;
use crate::ports::{Deps, LockOutcome};

/// The lease name of a stage.
pub fn stage_lock(stage: &str) -> String {
    format!("stage:{stage}")
}

/// What `AcquireLock` reads of the state.
#[derive(Debug, Deserialize)]
pub struct Input {
    /// The service.
    pub service: String,
    /// The stage.
    pub stage: String,
    /// The execution taking it.
    pub owner: String,
    /// The stage as `Plan` read it (`None`: a new stage).
    pub stage_record: Option<StageRecord>,
    /// The id `Plan` gave this execution's deployment.
    pub deployment_id: u64,
}

/// Takes the lock or refuses.
#[tracing::instrument(name = "AcquireLock", skip_all, fields(stage = %input.stage))]
pub async fn run(input: Input, deps: &Deps) -> Result<Lock, StepError> {
    let name = stage_lock(&input.stage);
    let now = deps.clock.now();
    match deps.history.acquire(&input.service, &name, &input.owner, deps.settings.lock_lease, now).await? {
        LockOutcome::Acquired(lock) => {
            if let Some(reason) = stale(&input, deps).await? {
                deps.history.release(&input.service, &name, &input.owner).await?;
                return Err(StepError::StageChanged { stage: input.stage, reason });
            }
            tracing::info!(owner = %lock.owner, expires_at = %lock.expires_at, "stage locked");
            Ok(lock)
        }
        LockOutcome::Held(lock) => {
            Err(StepError::StageLocked { stage: input.stage, holder: lock.owner, until: lock.expires_at.to_rfc3339() })
        }
    }
}

/// What changed in the stage since `Plan` read it, if anything that `Plan` decided on did.
async fn stale(input: &Input, deps: &Deps) -> Result<Option<String>, StepError> {
    let now = deps.history.stage(&input.service, &input.stage).await?;
    let Some(reason) = changed(input.stage_record.as_ref(), now.as_ref()) else { return Ok(None) };
    // This execution's own commit is no change: a repeated invocation after it recorded.
    let own = deps.history.deployment(&input.service, &input.stage, input.deployment_id).await?;
    Ok(own.is_none_or(|d| d.execution != input.owner).then_some(reason))
}

/// How `now` differs from `planned` in what a plan rests on: the state, the active deployment,
/// the next id, the region.
fn changed(planned: Option<&StageRecord>, now: Option<&StageRecord>) -> Option<String> {
    let describe = |r: &StageRecord| {
        let active = r.active.map_or_else(|| "none".to_owned(), |id| id.to_string());
        format!("{:?} in {}, active deployment {active}, next id {}", r.state, r.region, r.next_id).to_lowercase()
    };
    match (planned, now) {
        (None, None) => None,
        (Some(p), Some(n))
            if (p.state, p.active, p.next_id, &p.region) == (n.state, n.active, n.next_id, &n.region) =>
        {
            None
        }
        (None, Some(n)) => Some(format!("planned as a new stage, it is now {}", describe(n))),
        (Some(p), None) => Some(format!("planned as {}, its record is gone", describe(p))),
        (Some(p), Some(n)) => Some(format!("planned as {}, it is now {}", describe(p), describe(n))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::FakeAws;
    use crate::ports::History;
    use crate::steps::fixtures::{deployed, SERVICE};

    fn input(owner: &str) -> Input {
        Input { service: "shop".into(), stage: "dev".into(), owner: owner.into(), stage_record: None, deployment_id: 1 }
    }

    #[tokio::test]
    async fn a_second_owner_is_refused_with_the_holder_named() {
        let aws = FakeAws::default();
        let deps = aws.deps();
        run(input("exec-1"), &deps).await.unwrap();
        let err = run(input("exec-2"), &deps).await.unwrap_err();
        assert_eq!(err.error_type(), "StageLocked");
        assert!(err.to_string().contains("exec-1"), "{err}");
    }

    #[tokio::test]
    async fn the_same_owner_may_take_it_again() {
        let aws = FakeAws::default();
        let deps = aws.deps();
        run(input("exec-1"), &deps).await.unwrap();
        run(input("exec-1"), &deps).await.unwrap();
    }

    #[tokio::test]
    async fn a_stage_changed_since_the_plan_is_refused_and_the_lock_released() {
        let aws = FakeAws::default();
        let deps = aws.deps();
        let planned = input("exec-2");
        // Another deploy committed deployment 1 between Plan and AcquireLock.
        deployed(&aws, "dev", 1, None, &[]).await;
        let before = aws.history.snapshot();
        let err = run(planned, &deps).await.unwrap_err();
        assert_eq!(err.error_type(), "StageChanged");
        assert!(err.to_string().contains("active deployment 1"), "{err}");
        assert_eq!(aws.history.snapshot(), before, "nothing written, the lock free");
    }

    #[tokio::test]
    async fn an_unchanged_stage_or_ones_own_commit_passes() {
        let aws = FakeAws::default();
        let deps = aws.deps();
        deployed(&aws, "dev", 1, None, &[]).await;
        let planned = aws.history.stage(SERVICE, "dev").await.unwrap();
        let again = || Input { stage_record: planned.clone(), deployment_id: 2, ..input("exec-dev-2") };
        run(again(), &deps).await.unwrap();
        run(again(), &deps).await.unwrap();
        assert!(aws.history.release(SERVICE, "stage:dev", "exec-dev-2").await.unwrap());
        // The same execution committed deployment 2 already: a repeat is no stale plan.
        deployed(&aws, "dev", 2, Some(1), &[]).await;
        run(again(), &deps).await.unwrap();
    }
}
