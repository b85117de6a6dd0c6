//! The data a deploy-like execution carries from state to state. Each step reads the fields it
//! needs from the whole state (its `Input` names them) and adds its result under its own key
//! (the definition's `ResultPath`), so a state can be re-run from the same input.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::history::{FunctionRecord, ServiceRecord, StageRecord, VersionRecord};
use crate::domain::manifest::Manifest;

/// One code artifact in the bucket, as the CLI uploaded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRef {
    /// The object key (content-addressed).
    pub key: String,
    /// Lambda's `CodeSha256` of the zip (base64).
    pub code_sha256: String,
}

/// What a deploy does to one function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionPlan {
    /// The manifest key, e.g. `api`.
    pub name: String,
    /// The physical name, e.g. `shop-api` or `shop-dev-thumbnailer`.
    pub function_name: String,
    /// The function's region.
    pub region: String,
    /// Its code.
    pub artifact: ArtifactRef,
    /// What the stage's alias points at now (from the active deployment), if anything.
    pub previous: Option<FunctionRecord>,
    /// Versions of this physical function that already exist: one with the same code and
    /// configuration is reused instead of publishing.
    pub known: Vec<VersionRecord>,
}

/// The result of bringing a stack to its template.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StackResult {
    /// sha256 (hex) of the template and parameters the stack now has.
    pub hash: String,
    /// `none`, `created` or `updated`.
    pub operation: String,
    /// The stack's outputs.
    pub outputs: BTreeMap<String, String>,
    /// Service stack only: shared functions the manifest no longer lists (or made instances per
    /// stage) that stay deployed because live stages still use them: manifest key to those
    /// stages.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kept: BTreeMap<String, Vec<String>>,
}

/// The plan of a deployment, made by `Plan` before anything changes: the state every later
/// state of `deploy.asl.json` starts from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// `deploy`, `rollback`, `reset`, `clone`, or `remove`.
    pub operation: String,
    /// The execution: owner of the locks it takes.
    pub owner: String,
    /// The service.
    pub service: String,
    /// The stage; `None` deploys the service stack only.
    pub stage: Option<String>,
    /// The home region: service stack, history, shared functions.
    pub home_region: String,
    /// The stage's region.
    pub region: String,
    /// The manifest, validated.
    pub manifest: Manifest,
    /// The service stack as last recorded.
    pub service_record: Option<ServiceRecord>,
    /// The stage as last recorded; `None` for a new stage.
    pub stage_record: Option<StageRecord>,
    /// The id this deployment gets.
    pub deployment_id: u64,
    /// What happens to each function, in manifest order.
    pub functions: Vec<FunctionPlan>,
    /// Rollback, reset and clone: the deployment the stage's functions come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// Rollback: where each alias goes (the target's records), read by `SwitchAliases` as it
    /// reads the result of `PublishVersions` in a deploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<Vec<Published>>,
    /// Cleanup: the live stages whose `ttl` expired, to remove (the `Map` of `cleanup.asl.json`
    /// iterates over it, so it is there, empty, for every operation).
    #[serde(default)]
    pub expired: Vec<String>,
}

/// The deployment a rollback returns to, or a reset or clone copies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// Its stage: the stage itself for a rollback, the origin for a reset or clone.
    pub stage: String,
    /// Its id.
    pub deployment: u64,
    /// Rollback only: the target's `rollback_to`, which the rollback records as its own, so the
    /// next rollback walks further back.
    pub rollback_to: Option<u64>,
    /// Rollback only: the stage template hash to bring the stage stack back to, when the stack
    /// now differs from the target's (`None`: the stack stays as it is).
    #[serde(default)]
    pub restore_stack: Option<String>,
}

impl Source {
    /// How the history names it: `prod#4`.
    ///
    /// ```
    /// use functions::steps::state::Source;
    /// let source = Source { stage: "prod".into(), deployment: 4, rollback_to: None, restore_stack: None };
    /// assert_eq!(source.origin(), "prod#4");
    /// ```
    pub fn origin(&self) -> String {
        format!("{}#{}", self.stage, self.deployment)
    }
}

impl Plan {
    /// The stage, or an error for steps that need one.
    pub fn stage(&self) -> Result<&str, crate::error::StepError> {
        self.stage.as_deref().ok_or_else(|| crate::error::StepError::InputInvalid("this step needs a stage".to_owned()))
    }
}

/// One function after `PublishVersion`: the version its alias goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// The manifest key.
    pub name: String,
    /// Whether this deployment published the version (`false`: an existing one was reused).
    #[serde(default)]
    pub new_version: bool,
    /// What the alias points at once switched.
    #[serde(flatten)]
    pub record: FunctionRecord,
}
