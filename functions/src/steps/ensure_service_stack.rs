//! `EnsureServiceStack`: brings the service stack (`<service>`, home region) to the manifest's
//! service template: function definitions, service log groups, alias-independent resources and
//! the REST API. Skipped without a call when the recorded template hash is unchanged. Safe to
//! repeat: an up-to-date stack is left alone.

use std::collections::BTreeMap;

use chrono::Utc;
use serde::Deserialize;

use crate::converge::{converge, Target, Tools};
use crate::domain::history::ServiceRecord;
use crate::domain::manifest::Manifest;
use crate::domain::{naming, template};
use crate::error::StepError;
use crate::ports::Deps;
use crate::steps::state::StackResult;

/// What `EnsureServiceStack` reads of the state.
#[derive(Debug, Deserialize)]
pub struct Input {
    /// The manifest.
    pub manifest: Manifest,
    /// The service stack as last recorded.
    pub service_record: Option<ServiceRecord>,
}

/// The service template's parameter values: where the placeholder code is, for the parameters
/// the template declares (CloudFormation refuses undeclared ones).
pub fn parameters(template: &serde_json::Value, deps: &Deps) -> BTreeMap<String, String> {
    let declared = template::parameter_names(template);
    [("ArtifactBucket", &deps.settings.bucket), ("PlaceholderKey", &deps.settings.placeholder_key)]
        .into_iter()
        .filter(|(key, _)| declared.iter().any(|d| d == key))
        .map(|(key, value)| (key.to_owned(), value.clone()))
        .collect()
}

/// Creates or updates the service stack and records it.
#[tracing::instrument(name = "EnsureServiceStack", skip_all, fields(service = %input.manifest.service))]
pub async fn run(input: Input, deps: &Deps) -> Result<StackResult, StepError> {
    let manifest = &input.manifest;
    let stack = naming::service_stack_name(&manifest.service).map_err(|e| StepError::ManifestInvalid(e.to_string()))?;
    let template = template::service_template(manifest);
    let target = Target {
        stack: &stack,
        region: &manifest.region,
        template: &template,
        parameters: parameters(&template, deps),
        owner: &naming::Owner::service(&manifest.service),
    };
    let stacks = deps.regions.stacks(&manifest.region);
    let tools = Tools { stacks: stacks.as_ref(), artifacts: deps.artifacts.as_ref(), settings: &deps.settings };
    let recorded = input.service_record.as_ref().map(|r| (r.template_hash.as_str(), &r.outputs));
    let result = converge(tools, &target, recorded).await?;
    if result.operation != "none" || input.service_record.is_none() {
        let record = ServiceRecord {
            service: manifest.service.clone(),
            region: manifest.region.clone(),
            template_hash: result.hash.clone(),
            outputs: result.outputs.clone(),
            updated_at: Utc::now(),
        };
        deps.history.put_service(&record).await?;
    }
    Ok(result)
}
