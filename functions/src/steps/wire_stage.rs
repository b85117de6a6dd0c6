//! `WireStage`: what must point at the stage's aliases and can only be made once they exist:
//! the permission for the stage's API Gateway stage to invoke `function:<stage>`. Skipped
//! without a call when the recorded wiring is unchanged. Safe to repeat: a permission already
//! there is kept.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::history::{FunctionRecord, StageRecord, StageState};
use crate::domain::manifest::Manifest;
use crate::error::StepError;
use crate::ports::{Deps, Permission};
use crate::steps::state::{Published, StackResult};

/// What `WireStage` reads of the state.
#[derive(Debug, Deserialize)]
pub struct Input {
    /// The manifest.
    pub manifest: Manifest,
    /// The stage (the alias name).
    pub stage: String,
    /// The home region, where the REST API is.
    pub home_region: String,
    /// The stage as last recorded.
    pub stage_record: Option<StageRecord>,
    /// `EnsureServiceStack`'s result: the REST API's id.
    pub service_stack: StackResult,
    /// Where each alias points now.
    pub published: Vec<Published>,
}

/// The wiring applied.
#[derive(Debug, Serialize, Deserialize)]
pub struct Output {
    /// sha256 (hex) of what was wired; recorded with the stage.
    pub hash: String,
    /// Permissions added (0 when unchanged).
    pub added: usize,
}

/// Adds the API's permissions on the stage's aliases.
#[tracing::instrument(name = "WireStage", skip_all, fields(stage = %input.stage))]
pub async fn run(input: Input, deps: &Deps) -> Result<Output, StepError> {
    let routed: BTreeSet<&str> =
        input.manifest.api.as_ref().map(|api| api.routes.values().map(String::as_str).collect()).unwrap_or_default();
    let api_id = input.service_stack.outputs.get("RestApiId");
    let targets: Vec<FunctionRecord> = match api_id {
        Some(_) => {
            input.published.iter().filter(|p| routed.contains(p.name.as_str())).map(|p| p.record.clone()).collect()
        }
        None => Vec::new(),
    };
    let mut digest = Sha256::new();
    digest.update(api_id.map_or("", String::as_str).as_bytes());
    for target in &targets {
        digest.update(format!("\n{}/{}", target.region, target.function_name).as_bytes());
    }
    let hash = hex::encode(digest.finalize());
    let recorded =
        input.stage_record.as_ref().filter(|r| r.state == StageState::Active).and_then(|r| r.wiring_hash.as_deref());
    let (Some(api_id), false) = (api_id, recorded == Some(hash.as_str())) else {
        return Ok(Output { hash, added: 0 });
    };
    let permission = Permission {
        statement_id: format!("aliasflow-api-{}", input.stage),
        principal: "apigateway.amazonaws.com".to_owned(),
        // Any method and path of this API's stage; the account is the API's own.
        source_arn: format!("arn:aws:execute-api:{}:*:{api_id}/{}/*/*", input.home_region, input.stage),
    };
    let added = targets.len();
    let permission = &permission;
    let stage = input.stage.as_str();
    let results = super::bounded(targets, deps.settings.parallelism, |target| async move {
        deps.regions.functions(&target.region).add_permission(&target.function_name, stage, permission).await
    })
    .await;
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok(Output { hash, added })
}
