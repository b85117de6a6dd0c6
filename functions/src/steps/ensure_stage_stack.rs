//! `EnsureStageStack`: brings the stage stack (`<service>-<stage>`, the stage's region) to the
//! stage template: stage resources, instance-per-stage functions, per-stage log groups, the API
//! stage. Creating it creates the stage. The service stack's outputs arrive as parameters (this
//! works across regions, where `ImportValue` does not). Skipped without a call when the recorded
//! hash of template and parameters is unchanged; before a change the recorded hash is forgotten,
//! so a run that dies meanwhile leaves the next one converging the stack. Safe to repeat.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::converge::{converge, Target, Tools};
use crate::domain::history::StageRecord;
use crate::domain::manifest::Manifest;
use crate::domain::{naming, template};
use crate::error::StepError;
use crate::ports::Deps;
use crate::steps::state::{Source, StackResult};

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
    /// `EnsureServiceStack`'s result: the service outputs become parameters. A rollback, which
    /// restores a stored template with its parameters, runs without it.
    #[serde(default)]
    pub service_stack: StackResult,
    /// Rollback: `restore_stack` names the stored template to bring the stack back to.
    #[serde(default)]
    pub source: Option<Source>,
}

/// A stage template as applied, with its parameter values: what a rollback brings the stack
/// back to. Stored in the artifact bucket under [`template_key`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedTemplate {
    /// The template.
    pub template: serde_json::Value,
    /// The parameter values.
    pub parameters: BTreeMap<String, String>,
}

/// Where the applied stage template of hash `hash` is kept.
///
/// ```
/// use functions::steps::ensure_stage_stack::template_key;
/// assert_eq!(template_key("shop", "ab12"), "shop/templates/ab12.json");
/// ```
pub fn template_key(service: &str, hash: &str) -> String {
    format!("{service}/templates/{hash}.json")
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

/// Creates or updates the stage stack; keeps each template it applies, so a rollback can bring
/// the stack back to it.
#[tracing::instrument(name = "EnsureStageStack", skip_all, fields(stage = %input.stage))]
pub async fn run(input: Input, deps: &Deps) -> Result<StackResult, StepError> {
    let manifest = &input.manifest;
    let stack = naming::stage_stack_name(&manifest.service, &input.stage)
        .map_err(|e| StepError::ManifestInvalid(e.to_string()))?;
    let wanted = match input.source.as_ref().and_then(|s| s.restore_stack.as_deref()) {
        Some(hash) => stored(&manifest.service, hash, deps).await?,
        None => {
            let template = template::stage_template(manifest, &input.stage);
            let parameters = parameters(&template, &input.stage, &input.service_stack.outputs, deps);
            AppliedTemplate { template, parameters }
        }
    };
    let target = Target {
        stack: &stack,
        region: &input.region,
        template: &wanted.template,
        parameters: wanted.parameters.clone(),
        owner: &naming::Owner::stage(&manifest.service, &input.stage),
    };
    let stacks = deps.regions.stacks(&input.region);
    let tools = Tools { stacks: stacks.as_ref(), artifacts: deps.artifacts.as_ref(), settings: &deps.settings };
    let recorded = input
        .stage_record
        .as_ref()
        .filter(|r| r.state == crate::domain::history::StageState::Active && r.region == input.region)
        .and_then(|r| r.template_hash.as_deref().map(|hash| (hash, &r.outputs)));
    let changing = recorded.is_none_or(|(hash, _)| hash != target.hash());
    if let Some(record) = input.stage_record.as_ref().filter(|r| changing && r.template_hash.is_some()) {
        // The next run must not trust the recorded hash if this one dies while the stack changes
        // (a stopped execution records nothing): forgetting it first makes that run converge the
        // stack. Under the stage lock nobody else writes the record.
        deps.history.put_stage(&StageRecord { template_hash: None, ..record.clone() }).await?;
    }
    let result = converge(tools, &target, recorded).await?;
    // Kept whenever the stack left its recorded template, not only when this attempt changed
    // it: a retry after a lost answer finds the stack already updated.
    if recorded.is_none_or(|(hash, _)| hash != result.hash) {
        let key = template_key(&manifest.service, &result.hash);
        let document = serde_json::to_vec(&wanted).map_err(|e| StepError::InputInvalid(e.to_string()))?;
        deps.artifacts.put(&key, document).await?;
    }
    Ok(result)
}

/// The stored template of hash `hash`.
async fn stored(service: &str, hash: &str, deps: &Deps) -> Result<AppliedTemplate, StepError> {
    let key = template_key(service, hash);
    let missing = |why: &str| {
        StepError::Conflict(format!(
            "the stage template {hash} to roll back to {why} (s3://{}/{key}); deploy the stage instead",
            deps.settings.bucket
        ))
    };
    let bytes = deps.artifacts.get(&key).await?.ok_or_else(|| missing("is not in the artifact bucket"))?;
    serde_json::from_slice(&bytes).map_err(|_| missing("is not a stored template"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::history::StageState;
    use crate::fakes::FakeAws;
    use crate::ports::{History, Stacks};
    use crate::steps::fixtures::{manifest, REGION, SERVICE};

    fn input(stage_record: Option<StageRecord>, source: Option<Source>) -> Input {
        let outputs = [("FunctionRoleArn", "arn:role"), ("RestApiId", "api-1"), ("AssetsBucket", "assets")];
        let outputs = outputs.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        Input {
            manifest: manifest(),
            stage: "dev".into(),
            region: REGION.into(),
            stage_record,
            service_stack: StackResult {
                hash: "s".into(),
                operation: "none".into(),
                outputs,
                kept: Default::default(),
            },
            source,
        }
    }

    fn recorded(result: &StackResult) -> StageRecord {
        StageRecord {
            template_hash: Some(result.hash.clone()),
            outputs: result.outputs.clone(),
            state: StageState::Active,
            ..StageRecord::new(SERVICE, "dev", REGION)
        }
    }

    #[tokio::test]
    async fn a_stack_of_another_service_under_the_stages_name_is_refused_untouched() {
        let aws = FakeAws::default();
        let stacks = aws.regions.fake_stacks(REGION);
        let body = crate::ports::TemplateSource::Body(r#"{"Resources":{}}"#.into());
        let theirs = naming::Owner::service("shop-dev").tags();
        stacks.create("shop-dev", &body, &[], &theirs).await.unwrap();
        let err = run(input(None, None), &aws.deps()).await.unwrap_err();
        assert_eq!(err.error_type(), "NotOwned");
        assert!(err.to_string().contains("stack shop-dev") && err.to_string().contains("service shop-dev"), "{err}");
        assert_eq!(stacks.calls("UpdateStack") + stacks.calls("DeleteStack"), 0);
        assert_eq!(stacks.last_template("shop-dev").as_deref(), Some(r#"{"Resources":{}}"#));
        assert!(aws.artifacts.keys().is_empty(), "nothing staged or kept");
    }

    #[tokio::test]
    async fn a_stack_change_forgets_the_recorded_hash_first_so_a_run_that_dies_is_converged_next() {
        let aws = FakeAws::default();
        let first = run(input(None, None), &aws.deps()).await.unwrap();
        let record = recorded(&first);
        aws.history.put_stage(&record).await.unwrap();
        let mut changed = input(Some(record.clone()), None);
        changed.manifest.stage_outputs.insert("Extra".into(), serde_json::json!({ "Value": "x" }));
        // The stack update fails: the run ends here, as one killed during the change would.
        aws.regions.fake_stacks(REGION).fail_next("shop-dev");
        run(changed, &aws.deps()).await.unwrap_err();
        let stored = aws.history.stage(SERVICE, "dev").await.unwrap().unwrap();
        assert_eq!(stored.template_hash, None, "the next run cannot skip the stack");
        let unchanged = run(input(Some(record), None), &aws.deps()).await.unwrap();
        assert_eq!(unchanged.operation, "none", "an unchanged stack writes nothing");
        assert_eq!(aws.history.stage(SERVICE, "dev").await.unwrap().unwrap().template_hash, None);
    }

    #[tokio::test]
    async fn each_template_the_stack_is_brought_to_is_kept_and_a_rollback_brings_it_back() {
        let aws = FakeAws::default();
        let first = run(input(None, None), &aws.deps()).await.unwrap();
        assert_eq!(first.operation, "created");
        let key = template_key(SERVICE, &first.hash);
        assert_eq!(aws.artifacts.keys(), [key]);

        let unchanged = run(input(Some(recorded(&first)), None), &aws.deps()).await.unwrap();
        assert_eq!(unchanged.operation, "none");
        assert_eq!(aws.artifacts.calls("put"), 1, "an unchanged stack keeps nothing new");

        let mut changed = input(Some(recorded(&first)), None);
        changed.manifest.stage_outputs.insert("Extra".into(), serde_json::json!({ "Value": "x" }));
        let second = run(changed, &aws.deps()).await.unwrap();
        assert_eq!(second.operation, "updated");
        assert_eq!(aws.artifacts.keys().len(), 2);

        let back =
            Source { stage: "dev".into(), deployment: 1, rollback_to: None, restore_stack: Some(first.hash.clone()) };
        let restored = run(input(Some(recorded(&second)), Some(back)), &aws.deps()).await.unwrap();
        assert_eq!((restored.operation.as_str(), restored.hash.as_str()), ("updated", first.hash.as_str()));
        assert!(!restored.outputs.contains_key("Extra"), "{:?}", restored.outputs);
    }
}
