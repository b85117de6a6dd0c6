//! `EnsureStageStack`: brings the stage stack (`<service>-<stage>`, the stage's region) to the
//! stage template: stage resources, instance-per-stage functions, per-stage log groups, the API
//! stage. Creating it creates the stage. The service stack's outputs arrive as parameters (this
//! works across regions, where `ImportValue` does not). Skipped without a call when the recorded
//! hash of template and parameters is unchanged. Safe to repeat.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::converge::{converge, Target, Tools};
use crate::domain::history::StageRecord;
use crate::domain::manifest::Manifest;
use crate::domain::{naming, template};
use crate::error::StepError;
use crate::ports::Deps;
use crate::steps::state::StackResult;

/// What `EnsureStageStack` reads of the state.
#[derive(Debug, Deserialize)]
pub struct Input {
    /// The manifest.
    pub manifest: Manifest,
    /// The stage.
    pub stage: String,
    /// The stage's region.
    pub region: String,
    /// The stage as last recorded.
    pub stage_record: Option<StageRecord>,
    /// `EnsureServiceStack`'s result: the service outputs become parameters.
    pub service_stack: StackResult,
}

/// The stage template's parameter values: `Stage`, the placeholder code, and every service
/// output, filtered to what the template declares.
pub fn parameters(
    template: &serde_json::Value,
    stage: &str,
    service_outputs: &BTreeMap<String, String>,
    deps: &Deps,
) -> BTreeMap<String, String> {
    let mut available = service_outputs.clone();
    available.insert("Stage".to_owned(), stage.to_owned());
    available.insert("ArtifactBucket".to_owned(), deps.settings.bucket.clone());
    available.insert("PlaceholderKey".to_owned(), deps.settings.placeholder_key.clone());
    let declared = template::parameter_names(template);
    available.into_iter().filter(|(key, _)| declared.contains(key)).collect()
}

/// Creates or updates the stage stack.
#[tracing::instrument(name = "EnsureStageStack", skip_all, fields(stage = %input.stage))]
pub async fn run(input: Input, deps: &Deps) -> Result<StackResult, StepError> {
    let manifest = &input.manifest;
    let stack = naming::stage_stack_name(&manifest.service, &input.stage)
        .map_err(|e| StepError::ManifestInvalid(e.to_string()))?;
    let template = template::stage_template(manifest, &input.stage);
    let parameters = parameters(&template, &input.stage, &input.service_stack.outputs, deps);
    let target = Target { stack: &stack, region: &input.region, template: &template, parameters };
    let stacks = deps.regions.stacks(&input.region);
    let tools = Tools { stacks: stacks.as_ref(), artifacts: deps.artifacts.as_ref(), settings: &deps.settings };
    let recorded = input
        .stage_record
        .as_ref()
        .filter(|r| r.state == crate::domain::history::StageState::Active && r.region == input.region)
        .and_then(|r| r.template_hash.as_deref().map(|hash| (hash, &r.outputs)));
    converge(tools, &target, recorded).await
}
