//! `AcquireLock`: takes the stage's lease for this execution, or refuses with `StageLocked`
//! naming the holder. Taking it again as the same owner renews it: safe to repeat.

use serde::Deserialize;

use crate::domain::history::Lock;
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
}

/// Takes the lock or refuses.
#[tracing::instrument(name = "AcquireLock", skip_all, fields(stage = %input.stage))]
pub async fn run(input: Input, deps: &Deps) -> Result<Lock, StepError> {
    let name = stage_lock(&input.stage);
    let now = deps.clock.now();
    match deps.history.acquire(&input.service, &name, &input.owner, deps.settings.lock_lease, now).await? {
        LockOutcome::Acquired(lock) => {
            tracing::info!(owner = %lock.owner, expires_at = %lock.expires_at, "stage locked");
            Ok(lock)
        }
        LockOutcome::Held(lock) => {
            Err(StepError::StageLocked { stage: input.stage, holder: lock.owner, until: lock.expires_at.to_rfc3339() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::FakeAws;

    fn input(owner: &str) -> Input {
        Input { service: "shop".into(), stage: "dev".into(), owner: owner.into() }
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
}
