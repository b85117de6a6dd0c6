//! What the history table records: services, stages, deployments, locks, and the version
//! catalogue that lets stages share versions. Plain data; the DynamoDB layout is the adapter's.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What `aliasflow bootstrap` installed in an account and region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployerRecord {
    /// The artifact bucket.
    pub bucket: String,
    /// The key of the placeholder code zip in it.
    pub placeholder_key: String,
    /// `local` (table and bucket only) or `aws` (the whole deployer).
    pub engine: String,
    /// The aliasflow version that installed it.
    pub version: String,
    /// Operation name (`deploy`, ...) to state machine ARN, when the whole deployer is installed.
    pub state_machines: BTreeMap<String, String>,
}

/// The service stack as aliasflow last left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// The service name.
    pub service: String,
    /// The home region.
    pub region: String,
    /// sha256 (hex) of the template and parameters the stack was last brought to.
    pub template_hash: String,
    /// The stack's outputs after that.
    pub outputs: BTreeMap<String, String>,
    /// When the stack was last changed.
    pub updated_at: DateTime<Utc>,
    /// The shared functions the stack defines, by manifest key: enough to keep one in the stack
    /// after the manifest drops it, while a live stage still uses it. Records written before
    /// aliasflow kept this read as empty.
    #[serde(default)]
    pub functions: BTreeMap<String, SharedFunction>,
}

/// A shared function as the service stack defines it, without the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedFunction {
    /// The physical function name, e.g. `shop-worker`.
    pub function_name: String,
    /// The runtime the definition declares.
    pub runtime: String,
    /// The architecture (`arm64`, `x86_64`).
    pub architecture: String,
    /// The handler the definition declares.
    pub handler: String,
    /// Whether its log group is in the service stack (`logs: service`).
    pub service_log_group: bool,
}

/// Whether a stage is live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageState {
    /// Deployed (at least its stack).
    Active,
    /// Removed: its rows are kept for the record but hold no versions.
    Removed,
}

/// One stage of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageRecord {
    /// The service name.
    pub service: String,
    /// The stage name (also the alias name).
    pub stage: String,
    /// The region of its stack and instance-per-stage functions.
    pub region: String,
    /// Live or removed.
    pub state: StageState,
    /// The deployment the aliases point at now, if any succeeded.
    pub active: Option<u64>,
    /// The id the next deployment of this stage gets.
    pub next_id: u64,
    /// sha256 (hex) of the stage template and parameters the stack was last brought to.
    pub template_hash: Option<String>,
    /// The stage stack's outputs after that.
    pub outputs: BTreeMap<String, String>,
    /// sha256 (hex) of the alias wiring (permissions) last applied.
    pub wiring_hash: Option<String>,
    /// When the stage was last deployed (for `ttl`).
    pub last_deployed_at: Option<DateTime<Utc>>,
}

impl StageRecord {
    /// A stage that is about to be created.
    pub fn new(service: &str, stage: &str, region: &str) -> Self {
        Self {
            service: service.to_owned(),
            stage: stage.to_owned(),
            region: region.to_owned(),
            state: StageState::Active,
            active: None,
            next_id: 1,
            template_hash: None,
            outputs: BTreeMap::new(),
            wiring_hash: None,
            last_deployed_at: None,
        }
    }
}

/// What a deployment did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentKind {
    /// `aliasflow deploy --stage S`.
    Deploy,
    /// `aliasflow rollback`.
    Rollback,
    /// `aliasflow reset`.
    Reset,
    /// `aliasflow clone`.
    Clone,
    /// `aliasflow remove --stage S` (or cleanup, for an expired stage): the stage's last row.
    Remove,
    /// Cleanup broke a stage lock whose lease expired: the holder's operation never finished.
    Unlock,
}

impl DeploymentKind {
    /// Its name in the history: `deploy`, `rollback`, `reset`, `clone`, `remove`, `unlock`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deploy => "deploy",
            Self::Rollback => "rollback",
            Self::Reset => "reset",
            Self::Clone => "clone",
            Self::Remove => "remove",
            Self::Unlock => "unlock",
        }
    }
}

/// How a deployment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentStatus {
    /// Every alias points where it was meant to.
    Succeeded,
    /// It failed; the aliases were restored to the deployment before it.
    Failed,
}

/// One function as a deployment left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionRecord {
    /// The physical function name, e.g. `shop-api` or `shop-dev-thumb`.
    pub function_name: String,
    /// The region of the function.
    pub region: String,
    /// The alias (the stage name).
    pub alias: String,
    /// The version the alias points at.
    pub version: String,
    /// Lambda's `CodeSha256` of that version (base64).
    pub code_sha256: String,
    /// sha256 (hex) of the resolved configuration of that version.
    pub config_hash: String,
    /// The artifact bucket key of its code.
    pub artifact_key: String,
}

/// One row of a stage's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// The service name.
    pub service: String,
    /// The stage.
    pub stage: String,
    /// Increases by one per deployment of the stage.
    pub id: u64,
    /// What it did.
    pub kind: DeploymentKind,
    /// How it ended.
    pub status: DeploymentStatus,
    /// When it was recorded.
    pub time: DateTime<Utc>,
    /// The execution that made it (the lock owner).
    pub execution: String,
    /// Per function (manifest key) what the stage pointed at after it.
    pub functions: BTreeMap<String, FunctionRecord>,
    /// The deployment a rollback from this one returns to: the one active before it (for a
    /// rollback, the base of its target, so repeated rollbacks walk further back).
    pub rollback_to: Option<u64>,
    /// sha256 (hex) of the stage template this deployment brought, so a rollback knows whether
    /// the stage stack differs.
    pub stage_template_hash: Option<String>,
    /// For a reset or clone: the origin stage and its deployment.
    pub origin: Option<String>,
    /// For a failure: the error name and cause.
    pub error: Option<String>,
}

/// A published version that aliasflow knows, so another stage with the same code and
/// configuration reuses it instead of publishing again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// The physical function name.
    pub function_name: String,
    /// The region of the function.
    pub region: String,
    /// The version number.
    pub version: String,
    /// Lambda's `CodeSha256` (base64).
    pub code_sha256: String,
    /// sha256 (hex) of the resolved configuration.
    pub config_hash: String,
    /// The artifact bucket key of its code.
    pub artifact_key: String,
    /// When a deploy last published or reused it: garbage collection keeps it for a grace period
    /// after that, referenced or not. Records written before aliasflow kept this read as the
    /// epoch: long unused.
    #[serde(default)]
    pub used_at: DateTime<Utc>,
}

/// A code zip in the artifact bucket, as the history records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRecord {
    /// The object key (content-addressed).
    pub key: String,
    /// When a deploy last uploaded or used it: garbage collection keeps it for a grace period
    /// after that, referenced or not. Records written before aliasflow kept this read as the
    /// epoch: long unused.
    #[serde(default)]
    pub used_at: DateTime<Utc>,
}

/// A lease: on a stage (one execution changes it at a time) or on a function's `$LATEST`
/// (one stage publishes it at a time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// Who holds it: an execution id.
    pub owner: String,
    /// When the lease expires.
    pub expires_at: DateTime<Utc>,
}

/// What aliasflow last put into a function's `$LATEST`, kept with the function's publish lease.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LatestState {
    /// `CodeSha256` of `$LATEST` (base64).
    pub code_sha256: Option<String>,
    /// Configuration hash of `$LATEST`.
    pub config_hash: Option<String>,
}
