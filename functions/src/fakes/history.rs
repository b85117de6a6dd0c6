//! The history table in memory, with the DynamoDB adapter's semantics: leases that expire to
//! the millisecond, a `record` that a retry of the same execution repeats harmlessly and another
//! execution cannot overwrite, newest-first deployment pages with an opaque cursor, deletes
//! conditional on `used_at` to the millisecond. Tests can make the next calls of an operation
//! fail, run their own change just before one (another writer between a read and a write), and
//! count the calls per operation.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::history::{
    ArtifactRecord, DeployerRecord, Deployment, Lock, ServiceRecord, StageRecord, VersionRecord,
};
use crate::error::AwsError;
use crate::ports::{Commit, History, LockOutcome, Page};

/// What the fake table holds, by the keys the DynamoDB adapter uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryTables {
    /// The deployer record.
    pub deployer: Option<DeployerRecord>,
    /// Service name to its record.
    pub services: BTreeMap<String, ServiceRecord>,
    /// (service, stage) to its record.
    pub stages: BTreeMap<(String, String), StageRecord>,
    /// (service, stage, id) to the deployment.
    pub deployments: BTreeMap<(String, String, u64), Deployment>,
    /// (service, lease name) to the lease.
    pub locks: BTreeMap<(String, String), Lock>,
    /// (service, region, function, version padded to sort as a number) to the version.
    pub versions: BTreeMap<(String, String, String, String), VersionRecord>,
    /// (service, artifact key) to when it was last used.
    pub artifacts: BTreeMap<(String, String), DateTime<Utc>>,
}

/// When an injected fault strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strike {
    /// The request is refused: nothing changes.
    Before,
    /// The request takes effect but its answer is lost (a timeout, a killed process).
    After,
}

#[derive(Debug)]
struct Fault {
    remaining: usize,
    code: String,
    strike: Strike,
}

/// Calls counted per operation, and faults waiting for the next calls of one. Shared by the
/// fakes in this folder.
#[derive(Debug, Default)]
pub(crate) struct Calls {
    counts: Mutex<BTreeMap<String, usize>>,
    faults: Mutex<BTreeMap<String, Vec<Fault>>>,
}

impl Calls {
    /// The next `times` calls of `operation` fail with `code`, after any faults already queued.
    pub(crate) fn inject(&self, operation: &str, times: usize, code: &str, strike: Strike) {
        if times == 0 {
            return;
        }
        let mut faults = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
        let fault = Fault { remaining: times, code: code.to_owned(), strike };
        faults.entry(operation.to_owned()).or_default().push(fault);
    }

    /// Counts a call of `operation`; the fault it meets, if one is queued.
    pub(crate) fn enter(&self, operation: &str) -> Option<(String, Strike)> {
        *self.counts.lock().unwrap_or_else(PoisonError::into_inner).entry(operation.to_owned()).or_default() += 1;
        let mut faults = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
        let queue = faults.get_mut(operation)?;
        let first = queue.first_mut()?;
        first.remaining -= 1;
        let hit = (first.code.clone(), first.strike);
        if first.remaining == 0 {
            queue.remove(0);
        }
        Some(hit)
    }

    /// How many times `operation` was called.
    pub(crate) fn count(&self, operation: &str) -> usize {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner).get(operation).copied().unwrap_or(0)
    }

    /// Every count, by operation.
    pub(crate) fn counts(&self) -> BTreeMap<String, usize> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// An AWS error as the adapter would report it, made up by a fake.
pub(crate) fn injected(aws_operation: &str, resource: &str, code: &str) -> AwsError {
    let mut error = AwsError::fake(aws_operation, resource, code);
    error.transient |= matches!(
        code,
        "ProvisionedThroughputExceededException"
            | "RequestLimitExceeded"
            | "Throttling"
            | "SlowDown"
            | "InternalServerError"
            | "ServiceUnavailable"
            | "RequestTimeout"
            | "Timeout"
            | "Unreachable"
    );
    error
}

/// A change a test makes to the table just before a call: what another writer does meanwhile.
type Hook = Box<dyn FnOnce(&mut HistoryTables) + Send>;

/// Hooks waiting for the next call of an operation, in the order they were added.
#[derive(Default)]
struct Hooks(Mutex<BTreeMap<String, Vec<Hook>>>);

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hooks = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_map().entries(hooks.iter().map(|(operation, queue)| (operation, queue.len()))).finish()
    }
}

/// [`History`] in memory. Operations are named as the port's methods (`"acquire"`,
/// `"record"`, ...) for [`fail_next`](Self::fail_next), [`before_next`](Self::before_next) and
/// [`calls`](Self::calls); the errors name the DynamoDB operation the adapter would have called,
/// as it would.
#[derive(Debug, Default)]
pub struct FakeHistory {
    /// The table's content, to inspect or to arrange.
    pub tables: Mutex<HistoryTables>,
    calls: Calls,
    hooks: Hooks,
    missing: Mutex<bool>,
}

/// What the fake's errors name as the resource.
const TABLE: &str = "table aliasflow-history (fake)";

impl FakeHistory {
    /// The next `times` calls of `operation` (a method name of [`History`]) fail with AWS error
    /// `code` and change nothing. `release <lease name>` (e.g. `release stage:dev`) fails only
    /// the releases of that lease.
    pub fn fail_next(&self, operation: &str, times: usize, code: &str) {
        self.calls.inject(operation, times, code, Strike::Before);
    }

    /// The next `times` calls of `operation` take effect, then fail with `code` as if the answer
    /// was lost: what a retry after a timeout, or after the process was killed, meets.
    pub fn fail_next_after_effect(&self, operation: &str, times: usize, code: &str) {
        self.calls.inject(operation, times, code, Strike::After);
    }

    /// Runs `change` on the table just before the next call of `operation` (a method name of
    /// [`History`]) takes effect: another writer that comes between what the caller read and
    /// what it writes now.
    pub fn before_next(&self, operation: &str, change: impl FnOnce(&mut HistoryTables) + Send + 'static) {
        let mut hooks = self.hooks.0.lock().unwrap_or_else(PoisonError::into_inner);
        hooks.entry(operation.to_owned()).or_default().push(Box::new(change));
    }

    /// From now on every call fails with `ResourceNotFoundException`, as on an account that was
    /// never bootstrapped.
    pub fn drop_table(&self) {
        *self.missing.lock().unwrap_or_else(PoisonError::into_inner) = true;
    }

    /// How many times `operation` (a method name of [`History`]) was called, failed calls too.
    pub fn calls(&self, operation: &str) -> usize {
        self.calls.count(operation)
    }

    /// Every call count, by operation.
    pub fn call_counts(&self) -> BTreeMap<String, usize> {
        self.calls.counts()
    }

    /// How many calls were made, of every operation.
    pub fn total_calls(&self) -> usize {
        self.calls.counts().values().sum()
    }

    /// A copy of the table's content.
    pub fn snapshot(&self) -> HistoryTables {
        self.tables().clone()
    }

    fn tables(&self) -> MutexGuard<'_, HistoryTables> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs one call of `operation` (the port method; `aws_operation` is what the adapter would
    /// call) on the table, with the faults queued for it.
    fn call<T>(
        &self,
        operation: &str,
        aws_operation: &str,
        body: impl FnOnce(&mut HistoryTables) -> Result<T, AwsError>,
    ) -> Result<T, AwsError> {
        let fault = self.calls.enter(operation);
        if *self.missing.lock().unwrap_or_else(PoisonError::into_inner) {
            let mut error = injected(aws_operation, TABLE, "ResourceNotFoundException");
            error.message = "Requested resource not found".to_owned();
            return Err(error);
        }
        if let Some((code, Strike::Before)) = &fault {
            return Err(injected(aws_operation, TABLE, code));
        }
        let hook = {
            let mut hooks = self.hooks.0.lock().unwrap_or_else(PoisonError::into_inner);
            hooks.get_mut(operation).and_then(|queue| (!queue.is_empty()).then(|| queue.remove(0)))
        };
        let mut tables = self.tables();
        if let Some(hook) = hook {
            hook(&mut tables);
        }
        let result = body(&mut tables);
        drop(tables);
        match fault {
            Some((code, Strike::After)) => Err(injected(aws_operation, TABLE, &code)),
            _ => result,
        }
    }
}

fn deploy_cursor(stage: &str, id: u64) -> String {
    // The same cursor the DynamoDB adapter hands out: the sort key of the page's last item.
    format!("DEPLOY#{stage}#{id:010}")
}

fn version_key(service: &str, version: &VersionRecord) -> (String, String, String, String) {
    let number = version.version.parse::<u64>().map_or_else(|_| version.version.clone(), |n| format!("{n:010}"));
    (service.to_owned(), version.region.clone(), version.function_name.clone(), number)
}

/// When a lease taken at `now` for `lease` ends, to the millisecond (as the table stores it).
fn lease_end(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
    let end = now.checked_add_signed(lease).unwrap_or(DateTime::<Utc>::MAX_UTC);
    DateTime::from_timestamp_millis(end.timestamp_millis()).unwrap_or(end)
}

/// Whether `owner` holds the lease `name`, as the adapter's `ConditionCheck` sees it: the owner
/// alone decides (a lease that expired untaken is still its owner's).
fn holds(t: &HistoryTables, service: &str, name: &str, owner: &str) -> bool {
    t.locks.get(&(service.to_owned(), name.to_owned())).is_some_and(|l| l.owner == owner)
}

fn expired(lock: &Lock, now: DateTime<Utc>) -> bool {
    lock.expires_at.timestamp_millis() < now.timestamp_millis()
}

/// Whether a record last used at `stored` is unchanged since it was read as used at `read`, as
/// the adapter's condition compares them: to the millisecond.
fn unchanged(stored: DateTime<Utc>, read: DateTime<Utc>) -> bool {
    stored.timestamp_millis() == read.timestamp_millis()
}

#[async_trait]
impl History for FakeHistory {
    async fn deployer(&self) -> Result<Option<DeployerRecord>, AwsError> {
        self.call("deployer", "GetItem", |t| Ok(t.deployer.clone()))
    }

    async fn put_deployer(&self, record: &DeployerRecord) -> Result<(), AwsError> {
        self.call("put_deployer", "PutItem", |t| {
            t.deployer = Some(record.clone());
            Ok(())
        })
    }

    async fn service(&self, service: &str) -> Result<Option<ServiceRecord>, AwsError> {
        self.call("service", "GetItem", |t| Ok(t.services.get(service).cloned()))
    }

    async fn put_service(&self, record: &ServiceRecord) -> Result<(), AwsError> {
        self.call("put_service", "PutItem", |t| {
            t.services.insert(record.service.clone(), record.clone());
            Ok(())
        })
    }

    async fn delete_service(&self, service: &str) -> Result<(), AwsError> {
        self.call("delete_service", "DeleteItem", |t| {
            t.services.remove(service);
            Ok(())
        })
    }

    async fn stage(&self, service: &str, stage: &str) -> Result<Option<StageRecord>, AwsError> {
        self.call("stage", "GetItem", |t| Ok(t.stages.get(&(service.to_owned(), stage.to_owned())).cloned()))
    }

    async fn stages(&self, service: &str) -> Result<Vec<StageRecord>, AwsError> {
        self.call("stages", "Query", |t| {
            Ok(t.stages.iter().filter(|((s, _), _)| s == service).map(|(_, r)| r.clone()).collect())
        })
    }

    async fn put_stage(&self, record: &StageRecord) -> Result<(), AwsError> {
        self.call("put_stage", "PutItem", |t| {
            t.stages.insert((record.service.clone(), record.stage.clone()), record.clone());
            Ok(())
        })
    }

    async fn record(&self, deployment: &Deployment, stage: &StageRecord, lock: &str) -> Result<Commit, AwsError> {
        self.call("record", "TransactWriteItems", |t| {
            if !holds(t, &deployment.service, lock, &deployment.execution) {
                return Ok(Commit::LockLost);
            }
            let key = (deployment.service.clone(), deployment.stage.clone(), deployment.id);
            if let Some(old) = t.deployments.get(&key) {
                if old.execution != deployment.execution {
                    let mut error = injected("TransactWriteItems", TABLE, "ConditionalCheckFailedException");
                    error.message = format!(
                        "deployment {} of stage {} is already recorded by another execution ({}), not {}",
                        deployment.id, deployment.stage, old.execution, deployment.execution
                    );
                    return Err(error);
                }
            }
            t.deployments.insert(key, deployment.clone());
            t.stages.insert((stage.service.clone(), stage.stage.clone()), stage.clone());
            Ok(Commit::Written)
        })
    }

    async fn put_stage_held(&self, stage: &StageRecord, lock: &str, owner: &str) -> Result<Commit, AwsError> {
        self.call("put_stage_held", "TransactWriteItems", |t| {
            if !holds(t, &stage.service, lock, owner) {
                return Ok(Commit::LockLost);
            }
            t.stages.insert((stage.service.clone(), stage.stage.clone()), stage.clone());
            Ok(Commit::Written)
        })
    }

    async fn deployment(&self, service: &str, stage: &str, id: u64) -> Result<Option<Deployment>, AwsError> {
        self.call("deployment", "GetItem", |t| {
            Ok(t.deployments.get(&(service.to_owned(), stage.to_owned(), id)).cloned())
        })
    }

    async fn deployments(
        &self,
        service: &str,
        stage: &str,
        limit: usize,
        start: Option<String>,
    ) -> Result<Page<Deployment>, AwsError> {
        self.call("deployments", "Query", |t| {
            let limit = limit.max(1);
            let prefix = format!("DEPLOY#{stage}#");
            let before = match start {
                None => u64::MAX,
                Some(cursor) => match cursor.strip_prefix(&prefix).and_then(|id| id.parse::<u64>().ok()) {
                    Some(id) => id,
                    None => {
                        let mut error = injected("Query", TABLE, "ValidationException");
                        error.message = format!("page cursor {cursor:?} is not one of stage {stage}'s deployments");
                        return Err(error);
                    }
                },
            };
            let low = (service.to_owned(), stage.to_owned(), 0);
            let high = (service.to_owned(), stage.to_owned(), before);
            let mut newest_first = t.deployments.range(low..high).rev().map(|(_, d)| d.clone());
            let items: Vec<Deployment> = newest_first.by_ref().take(limit).collect();
            let more = newest_first.next().is_some();
            let next = if more { items.last().map(|d| deploy_cursor(stage, d.id)) } else { None };
            Ok(Page { items, next })
        })
    }

    async fn delete_deployments(&self, service: &str, stage: &str, ids: &[u64]) -> Result<(), AwsError> {
        self.call("delete_deployments", "BatchWriteItem", |t| {
            for id in ids {
                t.deployments.remove(&(service.to_owned(), stage.to_owned(), *id));
            }
            Ok(())
        })
    }

    async fn acquire(
        &self,
        service: &str,
        name: &str,
        owner: &str,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<LockOutcome, AwsError> {
        self.call("acquire", "PutItem", |t| {
            let key = (service.to_owned(), name.to_owned());
            if let Some(held) = t.locks.get(&key) {
                if held.owner != owner && !expired(held, now) {
                    return Ok(LockOutcome::Held(held.clone()));
                }
            }
            let lock = Lock { owner: owner.to_owned(), expires_at: lease_end(now, lease) };
            t.locks.insert(key, lock.clone());
            Ok(LockOutcome::Acquired(lock))
        })
    }

    async fn release(&self, service: &str, name: &str, owner: &str) -> Result<bool, AwsError> {
        // Faults queued for `release <name>` strike the releases of that lease alone (the
        // stage lock's, not the publish leases' that a deploy releases before it).
        if let Some((code, Strike::Before)) = self.calls.enter(&format!("release {name}")) {
            return Err(injected("DeleteItem", TABLE, &code));
        }
        self.call("release", "DeleteItem", |t| {
            let key = (service.to_owned(), name.to_owned());
            if t.locks.get(&key).is_some_and(|l| l.owner == owner) {
                t.locks.remove(&key);
                return Ok(true);
            }
            Ok(false)
        })
    }

    async fn lock(&self, service: &str, name: &str) -> Result<Option<Lock>, AwsError> {
        self.call("lock", "GetItem", |t| Ok(t.locks.get(&(service.to_owned(), name.to_owned())).cloned()))
    }

    async fn locks(&self, service: &str) -> Result<Vec<(String, Lock)>, AwsError> {
        self.call("locks", "Query", |t| {
            Ok(t.locks
                .iter()
                .filter(|((s, _), _)| s == service)
                .map(|((_, name), l)| (name.clone(), l.clone()))
                .collect())
        })
    }

    async fn versions(&self, service: &str) -> Result<Vec<VersionRecord>, AwsError> {
        self.call("versions", "Query", |t| {
            Ok(t.versions.iter().filter(|((s, ..), _)| s == service).map(|(_, v)| v.clone()).collect())
        })
    }

    async fn put_version(&self, service: &str, version: &VersionRecord) -> Result<(), AwsError> {
        self.call("put_version", "PutItem", |t| {
            t.versions.insert(version_key(service, version), version.clone());
            Ok(())
        })
    }

    async fn touch_version(&self, service: &str, version: &VersionRecord) -> Result<bool, AwsError> {
        self.call("touch_version", "PutItem", |t| match t.versions.get_mut(&version_key(service, version)) {
            Some(stored) => {
                *stored = version.clone();
                Ok(true)
            }
            None => Ok(false),
        })
    }

    async fn delete_version(&self, service: &str, version: &VersionRecord) -> Result<(), AwsError> {
        self.call("delete_version", "DeleteItem", |t| {
            t.versions.remove(&version_key(service, version));
            Ok(())
        })
    }

    async fn delete_version_if_unchanged(&self, service: &str, version: &VersionRecord) -> Result<bool, AwsError> {
        self.call("delete_version_if_unchanged", "DeleteItem", |t| {
            let key = version_key(service, version);
            if t.versions.get(&key).is_some_and(|stored| !unchanged(stored.used_at, version.used_at)) {
                return Ok(false);
            }
            t.versions.remove(&key);
            Ok(true)
        })
    }

    async fn artifacts(&self, service: &str) -> Result<Vec<String>, AwsError> {
        self.call("artifacts", "Query", |t| {
            Ok(t.artifacts.keys().filter(|(s, _)| s == service).map(|(_, k)| k.clone()).collect())
        })
    }

    async fn artifact_records(&self, service: &str) -> Result<Vec<ArtifactRecord>, AwsError> {
        self.call("artifact_records", "Query", |t| {
            let records = t.artifacts.iter().filter(|((s, _), _)| s == service);
            Ok(records.map(|((_, key), used_at)| ArtifactRecord { key: key.clone(), used_at: *used_at }).collect())
        })
    }

    async fn put_artifact(&self, service: &str, key: &str, used_at: DateTime<Utc>) -> Result<(), AwsError> {
        self.call("put_artifact", "PutItem", |t| {
            t.artifacts.insert((service.to_owned(), key.to_owned()), used_at);
            Ok(())
        })
    }

    async fn touch_artifact(&self, service: &str, key: &str, now: DateTime<Utc>) -> Result<bool, AwsError> {
        self.call("touch_artifact", "PutItem", |t| match t.artifacts.get_mut(&(service.to_owned(), key.to_owned())) {
            Some(used_at) => {
                *used_at = now;
                Ok(true)
            }
            None => Ok(false),
        })
    }

    async fn delete_artifact(&self, service: &str, key: &str) -> Result<(), AwsError> {
        self.call("delete_artifact", "DeleteItem", |t| {
            t.artifacts.remove(&(service.to_owned(), key.to_owned()));
            Ok(())
        })
    }

    async fn delete_artifact_if_unchanged(&self, service: &str, artifact: &ArtifactRecord) -> Result<bool, AwsError> {
        self.call("delete_artifact_if_unchanged", "DeleteItem", |t| {
            let key = (service.to_owned(), artifact.key.clone());
            if t.artifacts.get(&key).is_some_and(|stored| !unchanged(*stored, artifact.used_at)) {
                return Ok(false);
            }
            t.artifacts.remove(&key);
            Ok(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::domain::history::{DeploymentKind, DeploymentStatus};

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    fn deployment(stage: &str, id: u64, execution: &str) -> Deployment {
        Deployment {
            service: "shop".into(),
            stage: stage.into(),
            id,
            kind: DeploymentKind::Deploy,
            status: DeploymentStatus::Succeeded,
            time: at(id as i64),
            execution: execution.into(),
            functions: BTreeMap::new(),
            rollback_to: None,
            stage_template_hash: None,
            origin: None,
            error: None,
        }
    }

    fn stage_after(id: u64) -> StageRecord {
        StageRecord { active: Some(id), next_id: id + 1, ..StageRecord::new("shop", "dev", "us-east-1") }
    }

    const MINUTE: Duration = Duration::from_secs(60);

    /// Records `deployment` with its execution holding the stage's lock, as a step does.
    async fn recorded(history: &FakeHistory, deployment: &Deployment, stage: &StageRecord) -> Result<(), AwsError> {
        let name = format!("stage:{}", deployment.stage);
        let lock = Lock { owner: deployment.execution.clone(), expires_at: at(1_000_000) };
        history.tables().locks.insert(("shop".into(), name.clone()), lock);
        history.record(deployment, stage, &name).await.map(|commit| assert_eq!(commit, Commit::Written))
    }

    #[tokio::test]
    async fn only_the_lock_holder_commits() {
        let history = FakeHistory::default();
        history.acquire("shop", "stage:dev", "exec-2", MINUTE, at(0)).await.unwrap();
        let commit = history.record(&deployment("dev", 1, "exec-1"), &stage_after(1), "stage:dev").await.unwrap();
        assert_eq!(commit, Commit::LockLost);
        let commit = history.put_stage_held(&stage_after(1), "stage:dev", "exec-1").await.unwrap();
        assert_eq!(commit, Commit::LockLost);
        assert!(history.release("shop", "stage:dev", "exec-2").await.unwrap());
        let commit = history.record(&deployment("dev", 1, "exec-1"), &stage_after(1), "stage:dev").await.unwrap();
        assert_eq!(commit, Commit::LockLost, "nobody holds it: not the writer either");
        assert_eq!((history.snapshot().deployments.len(), history.snapshot().stages.len()), (0, 0));
        history.acquire("shop", "stage:dev", "exec-1", MINUTE, at(0)).await.unwrap();
        let commit = history.record(&deployment("dev", 1, "exec-1"), &stage_after(1), "stage:dev").await.unwrap();
        assert_eq!(commit, Commit::Written, "expired but untaken: still the writer's");
        let commit = history.put_stage_held(&stage_after(1), "stage:dev", "exec-1").await.unwrap();
        assert_eq!(commit, Commit::Written);
    }

    #[tokio::test]
    async fn a_held_lease_is_refused_to_others_until_it_expires() {
        let history = FakeHistory::default();
        let LockOutcome::Acquired(mine) = history.acquire("shop", "stage:dev", "a", MINUTE, at(0)).await.unwrap()
        else {
            panic!("the first taker wins");
        };
        assert_eq!(mine.expires_at, at(60));
        let outcome = history.acquire("shop", "stage:dev", "b", MINUTE, at(30)).await.unwrap();
        assert_eq!(outcome, LockOutcome::Held(mine.clone()));
        let outcome = history.acquire("shop", "stage:dev", "b", MINUTE, at(61)).await.unwrap();
        assert_eq!(outcome, LockOutcome::Acquired(Lock { owner: "b".into(), expires_at: at(121) }));
    }

    #[tokio::test]
    async fn taking_ones_own_lease_again_renews_it() {
        let history = FakeHistory::default();
        history.acquire("shop", "stage:dev", "a", MINUTE, at(0)).await.unwrap();
        let outcome = history.acquire("shop", "stage:dev", "a", MINUTE, at(30)).await.unwrap();
        assert_eq!(outcome, LockOutcome::Acquired(Lock { owner: "a".into(), expires_at: at(90) }));
    }

    #[tokio::test]
    async fn only_the_owner_releases_a_lease() {
        let history = FakeHistory::default();
        history.acquire("shop", "stage:dev", "a", MINUTE, at(0)).await.unwrap();
        assert!(!history.release("shop", "stage:dev", "b").await.unwrap());
        assert_eq!(history.lock("shop", "stage:dev").await.unwrap().map(|l| l.owner), Some("a".into()));
        assert!(history.release("shop", "stage:dev", "a").await.unwrap());
        assert_eq!(history.lock("shop", "stage:dev").await.unwrap(), None);
        assert!(!history.release("shop", "stage:dev", "a").await.unwrap());
    }

    #[tokio::test]
    async fn recording_again_for_the_same_execution_is_harmless_and_another_is_refused() {
        let history = FakeHistory::default();
        recorded(&history, &deployment("dev", 1, "exec-1"), &stage_after(1)).await.unwrap();
        recorded(&history, &deployment("dev", 1, "exec-1"), &stage_after(1)).await.unwrap();
        let err = recorded(&history, &deployment("dev", 1, "exec-2"), &stage_after(1)).await.unwrap_err();
        assert_eq!(err.code, "ConditionalCheckFailedException");
        assert_eq!(err.operation, "TransactWriteItems");
        let stored = history.deployment("shop", "dev", 1).await.unwrap().unwrap();
        assert_eq!(stored.execution, "exec-1");
    }

    #[tokio::test]
    async fn a_failed_record_writes_neither_deployment_nor_stage() {
        let history = FakeHistory::default();
        history.fail_next("record", 1, "ThrottlingException");
        let err = recorded(&history, &deployment("dev", 1, "exec-1"), &stage_after(1)).await.unwrap_err();
        assert!(err.transient);
        assert!(history.snapshot().deployments.is_empty() && history.snapshot().stages.is_empty());
        recorded(&history, &deployment("dev", 1, "exec-1"), &stage_after(1)).await.unwrap();
        assert_eq!(history.calls("record"), 2);
        assert_eq!(history.stage("shop", "dev").await.unwrap(), Some(stage_after(1)));
    }

    #[tokio::test]
    async fn a_lost_answer_still_took_effect() {
        let history = FakeHistory::default();
        history.fail_next_after_effect("record", 1, "RequestTimeout");
        assert!(recorded(&history, &deployment("dev", 1, "exec-1"), &stage_after(1)).await.is_err());
        assert!(history.deployment("shop", "dev", 1).await.unwrap().is_some());
        recorded(&history, &deployment("dev", 1, "exec-1"), &stage_after(1)).await.unwrap();
    }

    #[tokio::test]
    async fn deployments_page_newest_first() {
        let history = FakeHistory::default();
        for id in 1..=5 {
            recorded(&history, &deployment("dev", id, "e"), &stage_after(id)).await.unwrap();
        }
        recorded(&history, &deployment("prod", 1, "e"), &stage_after(1)).await.unwrap();
        let first = history.deployments("shop", "dev", 2, None).await.unwrap();
        assert_eq!(first.items.iter().map(|d| d.id).collect::<Vec<_>>(), [5, 4]);
        let second = history.deployments("shop", "dev", 2, first.next).await.unwrap();
        assert_eq!(second.items.iter().map(|d| d.id).collect::<Vec<_>>(), [3, 2]);
        let last = history.deployments("shop", "dev", 2, second.next).await.unwrap();
        assert_eq!(last.items.iter().map(|d| d.id).collect::<Vec<_>>(), [1]);
        assert_eq!(last.next, None);
        let exact = history.deployments("shop", "dev", 5, None).await.unwrap();
        assert_eq!((exact.items.len(), exact.next), (5, None));
    }

    #[tokio::test]
    async fn a_cursor_of_another_stage_is_refused() {
        let history = FakeHistory::default();
        let err = history.deployments("shop", "dev", 2, Some("DEPLOY#prod#0000000001".into())).await.unwrap_err();
        assert_eq!(err.code, "ValidationException");
    }

    #[tokio::test]
    async fn injected_failures_run_out_and_calls_are_counted() {
        let history = FakeHistory::default();
        history.fail_next("deployer", 2, "InternalServerError");
        assert_eq!(history.deployer().await.unwrap_err().code, "InternalServerError");
        assert!(history.deployer().await.unwrap_err().transient);
        assert_eq!(history.deployer().await.unwrap(), None);
        assert_eq!(history.calls("deployer"), 3);
        assert_eq!(history.total_calls(), 3);
    }

    #[tokio::test]
    async fn a_dropped_table_answers_resource_not_found() {
        let history = FakeHistory::default();
        history.drop_table();
        let err = history.deployer().await.unwrap_err();
        assert_eq!((err.operation.as_str(), err.code.as_str()), ("GetItem", "ResourceNotFoundException"));
    }

    #[tokio::test]
    async fn versions_list_in_number_order_and_delete() {
        let history = FakeHistory::default();
        let version = |n: &str| VersionRecord {
            function_name: "shop-api".into(),
            region: "us-east-1".into(),
            version: n.into(),
            code_sha256: "c".into(),
            config_hash: "h".into(),
            artifact_key: "k".into(),
            used_at: at(0),
        };
        for n in ["10", "9", "2"] {
            history.put_version("shop", &version(n)).await.unwrap();
        }
        let listed: Vec<String> = history.versions("shop").await.unwrap().into_iter().map(|v| v.version).collect();
        assert_eq!(listed, ["2", "9", "10"]);
        history.delete_version("shop", &version("9")).await.unwrap();
        assert_eq!(history.versions("shop").await.unwrap().len(), 2);
        assert!(history.versions("other").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn locks_lists_every_lease_of_the_service_and_only_its_own() {
        let history = FakeHistory::default();
        history.acquire("shop", "stage:dev", "a", MINUTE, at(0)).await.unwrap();
        history.acquire("shop", "publish:us-east-1/shop-api", "b", MINUTE, at(0)).await.unwrap();
        history.acquire("other", "stage:dev", "c", MINUTE, at(0)).await.unwrap();
        let names: Vec<(String, String)> =
            history.locks("shop").await.unwrap().into_iter().map(|(name, lock)| (name, lock.owner)).collect();
        assert_eq!(names, [("publish:us-east-1/shop-api".into(), "b".into()), ("stage:dev".into(), "a".into())]);
    }

    #[tokio::test]
    async fn a_record_marked_used_after_it_was_read_is_not_deleted() {
        let history = FakeHistory::default();
        history.put_artifact("shop", "k", at(0)).await.unwrap();
        let read = history.artifact_records("shop").await.unwrap().remove(0);
        assert!(history.touch_artifact("shop", "k", at(60)).await.unwrap());
        assert!(!history.delete_artifact_if_unchanged("shop", &read).await.unwrap());
        let read = history.artifact_records("shop").await.unwrap().remove(0);
        assert_eq!(read.used_at, at(60));
        assert!(history.delete_artifact_if_unchanged("shop", &read).await.unwrap());
        assert!(!history.touch_artifact("shop", "k", at(120)).await.unwrap(), "gone: nothing to mark");
        assert!(history.artifacts("shop").await.unwrap().is_empty(), "and marking it does not bring it back");

        let version = VersionRecord {
            function_name: "shop-api".into(),
            region: "us-east-1".into(),
            version: "1".into(),
            code_sha256: "c".into(),
            config_hash: "h".into(),
            artifact_key: "k".into(),
            used_at: at(0),
        };
        history.put_version("shop", &version).await.unwrap();
        assert!(history.touch_version("shop", &VersionRecord { used_at: at(60), ..version.clone() }).await.unwrap());
        assert!(!history.delete_version_if_unchanged("shop", &version).await.unwrap());
        let read = history.versions("shop").await.unwrap().remove(0);
        assert!(history.delete_version_if_unchanged("shop", &read).await.unwrap());
        assert!(!history.touch_version("shop", &read).await.unwrap());
        assert!(history.versions("shop").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_hook_runs_once_just_before_the_next_call_of_its_operation() {
        let history = FakeHistory::default();
        history.before_next("put_artifact", |t| {
            t.artifacts.insert(("shop".into(), "first".into()), at(0));
        });
        assert!(history.artifacts("shop").await.unwrap().is_empty(), "another operation: not yet");
        history.put_artifact("shop", "second", at(1)).await.unwrap();
        assert_eq!(history.artifacts("shop").await.unwrap(), ["first", "second"]);
        history.delete_artifact("shop", "first").await.unwrap();
        history.put_artifact("shop", "third", at(2)).await.unwrap();
        assert_eq!(history.artifacts("shop").await.unwrap(), ["second", "third"], "once only");
    }
}
