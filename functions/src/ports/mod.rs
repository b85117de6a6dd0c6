//! Ports: small traits in domain words around every AWS call, so steps are tested without AWS.
//! Each has one AWS adapter (`crate::aws`) and one in-memory fake (`crate::fakes`).

mod artifacts;
mod executions;
mod functions;
mod history;
mod stacks;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

pub use artifacts::{Artifacts, Listed};
pub use executions::{Executions, HistoryEntry};
pub use functions::{AliasState, AliasTarget, Functions, Permission, Revision, UpdateStatus, VersionInfo};
pub use history::{Commit, History, LockOutcome, Page};
pub use stacks::{Parameter, StackState, Stacks, TemplateSource};

/// The regional ports: Lambda and CloudFormation live in the stage's region, which may not be
/// the home region.
pub trait Regions: Send + Sync {
    /// Lambda in `region`.
    fn functions(&self, region: &str) -> Arc<dyn Functions>;
    /// CloudFormation in `region`.
    fn stacks(&self, region: &str) -> Arc<dyn Stacks>;
}

/// Where "now" comes from, so lease expiry is testable.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Names and limits a step needs beside its ports.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The artifact bucket (home region).
    pub bucket: String,
    /// The key of the placeholder code zip that stacks declare functions with.
    pub placeholder_key: String,
    /// How many AWS calls of one kind a step makes at once.
    pub parallelism: usize,
    /// How long a stage lock lasts unless released.
    pub lock_lease: Duration,
    /// How long a function's publish lease lasts unless released.
    pub publish_lease: Duration,
    /// How long the service stack's lease lasts unless released: one stage changes the stack
    /// at a time. A holder that outlives it is still safe (a stack update in progress is waited
    /// for before the next), so it is sized to free the stack soon after a holder died.
    pub service_lease: Duration,
    /// First pause while polling Lambda or CloudFormation; it grows with back-off.
    pub poll_interval: Duration,
    /// How long a stack may stay in progress before the step gives up with `StackFailed`.
    pub stack_timeout: Duration,
    /// How long garbage collection keeps an artifact after a deploy last used it, however
    /// unreferenced: the CLI marks its artifacts used before the execution starts, and the
    /// deploy holds no lock until `AcquireLock`, so this must be longer than that gap plus how
    /// far the CLI's clock may lag the steps'. (Versions need none: a deploy marks them under
    /// its stage lock, which stops the collection.)
    pub garbage_grace: Duration,
}

impl Settings {
    /// Settings with the given bucket and the defaults for everything else.
    pub fn new(bucket: &str) -> Self {
        Self {
            bucket: bucket.to_owned(),
            placeholder_key: PLACEHOLDER_KEY.to_owned(),
            parallelism: 8,
            lock_lease: Duration::from_secs(30 * 60),
            publish_lease: Duration::from_secs(5 * 60),
            service_lease: Duration::from_secs(15 * 60),
            poll_interval: Duration::from_secs(1),
            stack_timeout: Duration::from_secs(60 * 60),
            garbage_grace: Duration::from_secs(15 * 60),
        }
    }
}

/// Where `bootstrap` puts the placeholder code zip.
pub const PLACEHOLDER_KEY: &str = "aliasflow/placeholder.zip";

/// Everything a step may use.
#[derive(Clone)]
pub struct Deps {
    /// The history table.
    pub history: Arc<dyn History>,
    /// The artifact bucket.
    pub artifacts: Arc<dyn Artifacts>,
    /// Lambda and CloudFormation per region.
    pub regions: Arc<dyn Regions>,
    /// Now.
    pub clock: Arc<dyn Clock>,
    /// Names and limits.
    pub settings: Settings,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps").field("settings", &self.settings).finish_non_exhaustive()
    }
}
