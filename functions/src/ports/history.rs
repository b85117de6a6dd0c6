use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::history::{
    ArtifactRecord, DeployerRecord, Deployment, Lock, ServiceRecord, StageRecord, VersionRecord,
};
use crate::error::AwsError;

/// The outcome of trying to take a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockOutcome {
    /// Taken (or already ours: taking it again renews it).
    Acquired(Lock),
    /// Somebody else holds it.
    Held(Lock),
}

/// The outcome of a write that takes effect only while its writer holds a stage lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Commit {
    /// Written (or written already by the same execution: nothing changed).
    Written,
    /// The writer no longer holds the lock (expired and taken, or broken): nothing was written.
    LockLost,
}

/// One page of a listing and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, in the listing's order.
    pub items: Vec<T>,
    /// Pass back to get the next page; `None` on the last.
    pub next: Option<String>,
}

/// The history table: the source of truth for stages, deployments, locks and versions.
#[async_trait]
pub trait History: Send + Sync {
    /// What `bootstrap` stored about the deployer; `None` when the table exists but was never
    /// bootstrapped. A missing table is an `AwsError` with code `ResourceNotFoundException`.
    async fn deployer(&self) -> Result<Option<DeployerRecord>, AwsError>;
    /// Stores the deployer record.
    async fn put_deployer(&self, record: &DeployerRecord) -> Result<(), AwsError>;

    /// The service stack record.
    async fn service(&self, service: &str) -> Result<Option<ServiceRecord>, AwsError>;
    /// Stores the service stack record.
    async fn put_service(&self, record: &ServiceRecord) -> Result<(), AwsError>;
    /// Forgets the service (after its stack is deleted); deployments stay.
    async fn delete_service(&self, service: &str) -> Result<(), AwsError>;

    /// One stage.
    async fn stage(&self, service: &str, stage: &str) -> Result<Option<StageRecord>, AwsError>;
    /// Every stage of the service, live and removed.
    async fn stages(&self, service: &str) -> Result<Vec<StageRecord>, AwsError>;
    /// Stores a stage record.
    async fn put_stage(&self, record: &StageRecord) -> Result<(), AwsError>;

    /// Writes `deployment` and the stage record `stage` together (all or nothing), only while
    /// the deployment's execution holds the lease `lock` (checked in the same transaction):
    /// [`Commit::LockLost`], writing nothing, when another owner holds it or nobody does.
    /// Writing the same deployment (same id and execution) again succeeds and changes nothing.
    async fn record(&self, deployment: &Deployment, stage: &StageRecord, lock: &str) -> Result<Commit, AwsError>;
    /// Stores a stage record only while `owner` holds the lease `lock` (one transaction), as
    /// [`record`](Self::record) does without a deployment.
    async fn put_stage_held(&self, stage: &StageRecord, lock: &str, owner: &str) -> Result<Commit, AwsError>;
    /// One deployment.
    async fn deployment(&self, service: &str, stage: &str, id: u64) -> Result<Option<Deployment>, AwsError>;
    /// A stage's deployments, newest first, `limit` per page.
    async fn deployments(
        &self,
        service: &str,
        stage: &str,
        limit: usize,
        start: Option<String>,
    ) -> Result<Page<Deployment>, AwsError>;
    /// Deletes deployments (pruning beyond `retain`).
    async fn delete_deployments(&self, service: &str, stage: &str, ids: &[u64]) -> Result<(), AwsError>;

    /// Takes the lease `name` ("stage:dev", "publish:shop-api") for `owner` unless another
    /// owner holds it unexpired. Conditional write: of many racing, exactly one wins.
    async fn acquire(
        &self,
        service: &str,
        name: &str,
        owner: &str,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<LockOutcome, AwsError>;
    /// Releases the lease if `owner` holds it; `Ok(false)` if it did not (nothing changed).
    async fn release(&self, service: &str, name: &str, owner: &str) -> Result<bool, AwsError>;
    /// The lease `name`, if held (expired or not).
    async fn lock(&self, service: &str, name: &str) -> Result<Option<Lock>, AwsError>;
    /// Every lease of the service, stage locks and publish leases, expired or not: (name, lease)
    /// in name order. A new stage's lock is among them before the stage has a record.
    async fn locks(&self, service: &str) -> Result<Vec<(String, Lock)>, AwsError>;

    /// Every version aliasflow published for the service.
    async fn versions(&self, service: &str) -> Result<Vec<VersionRecord>, AwsError>;
    /// Remembers a published version (with its `used_at`).
    async fn put_version(&self, service: &str, version: &VersionRecord) -> Result<(), AwsError>;
    /// Rewrites a catalogued version with its new `used_at`, so garbage collection keeps it;
    /// `Ok(false)`, writing nothing, when the catalogue no longer has it (collected meanwhile).
    async fn touch_version(&self, service: &str, version: &VersionRecord) -> Result<bool, AwsError>;
    /// Forgets a version, whatever its `used_at`.
    async fn delete_version(&self, service: &str, version: &VersionRecord) -> Result<(), AwsError>;
    /// Forgets a version only if its `used_at` is still `version.used_at` (as read): `Ok(false)`,
    /// and nothing changes, when a deploy used it since. One already gone counts as forgotten.
    async fn delete_version_if_unchanged(&self, service: &str, version: &VersionRecord) -> Result<bool, AwsError>;

    /// The artifact keys known to be in the bucket for the service.
    async fn artifacts(&self, service: &str) -> Result<Vec<String>, AwsError>;
    /// The artifact records of the service, with when each was last used, in key order.
    async fn artifact_records(&self, service: &str) -> Result<Vec<ArtifactRecord>, AwsError>;
    /// Remembers that `key` is in the bucket, last used at `used_at`.
    async fn put_artifact(&self, service: &str, key: &str, used_at: DateTime<Utc>) -> Result<(), AwsError>;
    /// Marks a recorded artifact used at `now`, so garbage collection keeps it; `Ok(false)`,
    /// writing nothing, when it is not recorded (never uploaded, or collected meanwhile).
    async fn touch_artifact(&self, service: &str, key: &str, now: DateTime<Utc>) -> Result<bool, AwsError>;
    /// Forgets `key`, whatever its `used_at`.
    async fn delete_artifact(&self, service: &str, key: &str) -> Result<(), AwsError>;
    /// Forgets an artifact only if its `used_at` is still `artifact.used_at` (as read):
    /// `Ok(false)`, and nothing changes, when a deploy used it since. One already gone counts as
    /// forgotten.
    async fn delete_artifact_if_unchanged(&self, service: &str, artifact: &ArtifactRecord) -> Result<bool, AwsError>;
}
