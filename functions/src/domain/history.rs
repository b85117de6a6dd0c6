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

impl Deployment {
    /// Whether a rollback may return to it: a succeeded deploy, rollback, reset or clone. Failed
    /// runs and `unlock`/`remove` rows record no code to return to.
    pub fn is_rollback_target(&self) -> bool {
        self.status == DeploymentStatus::Succeeded
            && matches!(
                self.kind,
                DeploymentKind::Deploy | DeploymentKind::Rollback | DeploymentKind::Reset | DeploymentKind::Clone
            )
    }

    /// Whether the stage runs the same code here as in `other`: the same functions, each at the
    /// same version, code, configuration and artifact (the alias name aside).
    pub fn same_code(&self, other: &Deployment) -> bool {
        same_functions(&self.functions, &other.functions)
    }
}

/// Whether two sets of function records (manifest key to record) put the same code behind the
/// alias: the same keys, each with the same function, region, version, code, configuration and
/// artifact. The alias is left out: it names the stage, not the code.
pub fn same_functions(a: &BTreeMap<String, FunctionRecord>, b: &BTreeMap<String, FunctionRecord>) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|((ka, ra), (kb, rb))| {
            ka == kb
                && (&ra.function_name, &ra.region, &ra.version, &ra.code_sha256, &ra.config_hash, &ra.artifact_key)
                    == (&rb.function_name, &rb.region, &rb.version, &rb.code_sha256, &rb.config_hash, &rb.artifact_key)
        })
}

/// The ids `retain` prunes from a stage's deployments (given newest first): every row older than
/// the `retain`-th newest rollback target, except `active`. Rollback targets alone count, so
/// failed runs, `unlock` and `remove` rows never push a target out; they go once they are older
/// than every target kept. Fewer targets than `retain`: nothing goes.
pub fn prunable(newest_first: &[Deployment], retain: usize, active: Option<u64>) -> Vec<u64> {
    let Some(last) = retain.checked_sub(1) else { return Vec::new() };
    let Some(oldest_kept) = newest_first.iter().filter(|d| d.is_rollback_target()).nth(last) else {
        return Vec::new();
    };
    newest_first.iter().filter(|d| d.id < oldest_kept.id && Some(d.id) != active).map(|d| d.id).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: u64, kind: DeploymentKind, status: DeploymentStatus) -> Deployment {
        Deployment {
            service: "shop".into(),
            stage: "dev".into(),
            id,
            kind,
            status,
            time: DateTime::default(),
            execution: format!("exec-{id}"),
            functions: BTreeMap::new(),
            rollback_to: None,
            stage_template_hash: None,
            origin: None,
            error: None,
        }
    }

    fn newest_first(rows: &[(DeploymentKind, DeploymentStatus)]) -> Vec<Deployment> {
        let mut rows: Vec<Deployment> = rows.iter().enumerate().map(|(i, (k, s))| row(i as u64 + 1, *k, *s)).collect();
        rows.reverse();
        rows
    }

    use DeploymentKind::{Deploy, Remove, Rollback, Unlock};
    use DeploymentStatus::{Failed, Succeeded};

    #[test]
    fn failed_rows_never_push_a_rollback_target_out() {
        let mut kinds = vec![(Deploy, Succeeded), (Deploy, Succeeded)];
        kinds.extend(std::iter::repeat_n((Deploy, Failed), 10));
        assert!(prunable(&newest_first(&kinds), 2, Some(2)).is_empty(), "two targets, retain 2: all stay");
        kinds.push((Deploy, Succeeded));
        assert_eq!(prunable(&newest_first(&kinds), 2, Some(13)), [1], "the third target goes, nothing newer");
    }

    #[test]
    fn other_rows_go_once_older_than_every_target_kept_and_the_active_one_stays() {
        let kinds = [
            (Deploy, Succeeded),
            (Unlock, Failed),
            (Deploy, Failed),
            (Rollback, Succeeded),
            (Remove, Succeeded),
            (Deploy, Succeeded),
            (Deploy, Succeeded),
        ];
        assert_eq!(prunable(&newest_first(&kinds), 2, Some(7)), [5, 4, 3, 2, 1]);
        assert_eq!(prunable(&newest_first(&kinds), 2, Some(1)), [5, 4, 3, 2], "the active one stays");
        assert_eq!(prunable(&newest_first(&kinds), 3, Some(7)), [3, 2, 1]);
        assert!(prunable(&newest_first(&kinds), 0, Some(7)).is_empty(), "retain 0 prunes nothing");
    }

    #[test]
    fn the_same_code_ignores_the_alias_but_not_the_version() {
        let record = |alias: &str, version: &str| FunctionRecord {
            function_name: "shop-api".into(),
            region: "us-east-1".into(),
            alias: alias.into(),
            version: version.into(),
            code_sha256: "c".into(),
            config_hash: "h".into(),
            artifact_key: "k".into(),
        };
        let one = |r: FunctionRecord| BTreeMap::from([("api".to_owned(), r)]);
        assert!(same_functions(&one(record("dev", "1")), &one(record("prod", "1"))));
        assert!(!same_functions(&one(record("dev", "1")), &one(record("dev", "2"))));
        assert!(!same_functions(&one(record("dev", "1")), &BTreeMap::new()));
    }
}
