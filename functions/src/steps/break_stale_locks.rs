//! `BreakStaleLocks` (cleanup): a stage lock whose lease expired belongs to an execution that
//! died before releasing it. This step takes the lock over (a conditional write: a holder that
//! renewed it meanwhile keeps it, and nothing is written), records that in the stage's history
//! under the lock it now holds (a row of kind `unlock`, status `failed`, naming the holder), and
//! releases it, so the next deploy goes ahead. Safe to repeat: a row this execution already
//! wrote is not written again, and a lock it already took over is recorded (if it was not yet)
//! and released.

use serde::{Deserialize, Serialize};

use crate::domain::history::{Deployment, DeploymentKind, DeploymentStatus, Lock, StageRecord, StageState};
use crate::error::StepError;
use crate::ports::{Commit, Deps, LockOutcome};
use crate::steps::acquire_lock::stage_lock;
use crate::steps::record_deployment::next_stage_record;

/// What `BreakStaleLocks` reads of the state.
#[derive(Debug, Deserialize)]
pub struct Input {
    /// The service.
    pub service: String,
    /// The execution breaking them.
    pub owner: String,
}

/// The locks broken.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Output {
    /// `stage: holder (expired at ...)` for each lock broken.
    pub broken: Vec<String>,
}

/// Breaks every expired stage lock of the service.
#[tracing::instrument(name = "BreakStaleLocks", skip_all, fields(service = %input.service))]
pub async fn run(input: Input, deps: &Deps) -> Result<Output, StepError> {
    let mut output = Output::default();
    for record in deps.history.stages(&input.service).await? {
        let name = stage_lock(&record.stage);
        let Some(lock) = deps.history.lock(&input.service, &name).await? else { continue };
        let holder = if lock.owner == input.owner {
            // Taken over by an earlier attempt of this step, which may have died before its row:
            // the holder's name went with the lease.
            None
        } else {
            let now = deps.clock.now();
            if lock.expires_at > now {
                continue;
            }
            // Take the lease first, so nothing is written for a lock whose holder renewed it
            // meanwhile: alive after all.
            match deps.history.acquire(&input.service, &name, &input.owner, deps.settings.lock_lease, now).await? {
                LockOutcome::Acquired(_) => Some(&lock),
                LockOutcome::Held(_) => continue,
            }
        };
        let recorded = record.state != StageState::Active || record_unlock(&input, &record, holder, deps).await?;
        deps.history.release(&input.service, &name, &input.owner).await?;
        if let (Some(lock), true) = (holder, recorded) {
            tracing::warn!(stage = %record.stage, holder = %lock.owner, expired_at = %lock.expires_at, "stale lock broken");
            output.broken.push(format!(
                "{}: {} (expired at {})",
                record.stage,
                lock.owner,
                lock.expires_at.to_rfc3339()
            ));
        }
    }
    Ok(output)
}

/// Writes the `unlock` row under the lease this execution took over, unless the stage's newest
/// row is this execution's already; `false` if the lease was taken from it meanwhile (nothing
/// written). `holder`: the dead execution's lease, when known.
async fn record_unlock(
    input: &Input,
    record: &StageRecord,
    holder: Option<&Lock>,
    deps: &Deps,
) -> Result<bool, StepError> {
    let service = &input.service;
    let newest = deps.history.deployments(service, &record.stage, 1, None).await?.items;
    if newest.first().is_some_and(|d| d.kind == DeploymentKind::Unlock && d.execution == input.owner) {
        return Ok(true);
    }
    let functions = match record.active {
        Some(id) => deps.history.deployment(service, &record.stage, id).await?.map(|d| d.functions),
        None => None,
    };
    let id = record.next_id;
    let whose = holder.map_or_else(
        || "an execution (its name was lost when an earlier attempt of cleanup took the lock over)".to_owned(),
        |lock| format!("{} expired at {}", lock.owner, lock.expires_at.to_rfc3339()),
    );
    let deployment = Deployment {
        service: service.clone(),
        stage: record.stage.clone(),
        id,
        kind: DeploymentKind::Unlock,
        status: DeploymentStatus::Failed,
        time: deps.clock.now(),
        execution: input.owner.clone(),
        functions: functions.unwrap_or_default(),
        rollback_to: None,
        stage_template_hash: record.template_hash.clone(),
        origin: None,
        error: Some(format!(
            "the lock of {whose} without being released: that execution ended before it finished; cleanup broke the lock. `aliasflow status` shows any alias it left moved"
        )),
    };
    let stage = next_stage_record(Some(record), service, &record.stage, &record.region, id, None);
    Ok(deps.history.record(&deployment, &stage, &stage_lock(&record.stage)).await? == Commit::Written)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::Utc;

    use super::*;
    use crate::fakes::FakeAws;
    use crate::ports::History;
    use crate::steps::fixtures::{deployed, record, SERVICE};

    fn input() -> Input {
        Input { service: SERVICE.into(), owner: "exec-cleanup".into() }
    }

    #[tokio::test]
    async fn an_expired_lock_is_broken_and_recorded_once_and_a_live_one_is_left_alone() {
        let aws = FakeAws::default();
        let api = record("dev", "shop-api", "1", "a.zip");
        deployed(&aws, "dev", 1, None, &[("api", api.clone())]).await;
        deployed(&aws, "prod", 1, None, &[("api", record("prod", "shop-api", "1", "a.zip"))]).await;
        let minute = Duration::from_secs(60);
        let an_hour_ago = Utc::now() - chrono::Duration::hours(1);
        aws.history.acquire(SERVICE, "stage:dev", "exec-dead", minute, an_hour_ago).await.unwrap();
        aws.history.acquire(SERVICE, "stage:prod", "exec-alive", minute, Utc::now()).await.unwrap();

        let output = run(input(), &aws.deps()).await.unwrap();
        assert_eq!(output.broken.len(), 1);
        assert!(output.broken[0].starts_with("dev: exec-dead"), "{output:?}");
        assert_eq!(aws.history.lock(SERVICE, "stage:dev").await.unwrap(), None);
        assert_eq!(
            aws.history.lock(SERVICE, "stage:prod").await.unwrap().map(|l| l.owner).as_deref(),
            Some("exec-alive")
        );

        let rows = aws.history.deployments(SERVICE, "dev", 10, None).await.unwrap().items;
        assert_eq!((rows[0].id, rows[0].kind, rows[0].status), (2, DeploymentKind::Unlock, DeploymentStatus::Failed));
        assert!(rows[0].error.as_deref().is_some_and(|e| e.contains("exec-dead")), "{:?}", rows[0].error);
        assert_eq!(rows[0].functions["api"], api, "the aliases as the history knows them");
        let stage = aws.history.stage(SERVICE, "dev").await.unwrap().unwrap();
        assert_eq!((stage.active, stage.next_id), (Some(1), 3), "the active deployment stays");

        run(input(), &aws.deps()).await.unwrap();
        assert_eq!(aws.history.deployments(SERVICE, "dev", 10, None).await.unwrap().items.len(), 2, "recorded once");
    }

    #[tokio::test]
    async fn a_repeat_after_taking_the_lock_over_records_it_once_and_releases_it() {
        let aws = FakeAws::default();
        deployed(&aws, "dev", 1, None, &[]).await;
        // An earlier attempt took the expired lease over and died before writing its row.
        aws.history.acquire(SERVICE, "stage:dev", "exec-cleanup", Duration::from_secs(60), Utc::now()).await.unwrap();
        run(input(), &aws.deps()).await.unwrap();
        assert_eq!(aws.history.lock(SERVICE, "stage:dev").await.unwrap(), None);
        let rows = aws.history.deployments(SERVICE, "dev", 10, None).await.unwrap().items;
        assert_eq!((rows.len(), rows[0].kind), (2, DeploymentKind::Unlock));

        aws.history.acquire(SERVICE, "stage:dev", "exec-cleanup", Duration::from_secs(60), Utc::now()).await.unwrap();
        run(input(), &aws.deps()).await.unwrap();
        assert_eq!(aws.history.lock(SERVICE, "stage:dev").await.unwrap(), None);
        assert_eq!(aws.history.deployments(SERVICE, "dev", 10, None).await.unwrap().items.len(), 2, "once");
    }

    #[tokio::test]
    async fn a_lock_renewed_before_it_is_taken_over_is_left_alone_and_nothing_is_written() {
        let aws = FakeAws::default();
        deployed(&aws, "dev", 1, None, &[]).await;
        let an_hour_ago = Utc::now() - chrono::Duration::hours(1);
        aws.history.acquire(SERVICE, "stage:dev", "exec-slow", Duration::from_secs(60), an_hour_ago).await.unwrap();
        // The holder renews its lease between the step's read and its take-over.
        aws.history.before_next("acquire", |t| {
            let lock = t.locks.get_mut(&(SERVICE.to_owned(), "stage:dev".to_owned())).unwrap();
            lock.expires_at = Utc::now() + chrono::Duration::minutes(30);
        });
        let output = run(input(), &aws.deps()).await.unwrap();
        assert!(output.broken.is_empty());
        assert_eq!(
            aws.history.lock(SERVICE, "stage:dev").await.unwrap().map(|l| l.owner).as_deref(),
            Some("exec-slow")
        );
        assert_eq!(aws.history.deployments(SERVICE, "dev", 10, None).await.unwrap().items.len(), 1, "no unlock row");
    }
}
