//! `DeleteStack` (remove): deletes the stage stack (`<service>-<stage>`, the stage's region),
//! which takes its resources, instance-per-stage functions and per-stage log groups with it; or,
//! without a stage, the service stack, after which the service record is forgotten. Waits until
//! the stack is gone. Safe to repeat: a stack already gone is not an error.

use serde::{Deserialize, Serialize};

use crate::converge::{remove, Tools};
use crate::domain::manifest::Manifest;
use crate::domain::naming;
use crate::error::StepError;
use crate::ports::Deps;

/// What `DeleteStack` reads of the state.
#[derive(Debug, Deserialize)]
pub struct Input {
    /// The manifest.
    pub manifest: Manifest,
    /// The stage whose stack to delete; absent: the service stack.
    #[serde(default)]
    pub stage: Option<String>,
    /// The stage's region (the home region without a stage).
    pub region: String,
}

/// The stack deleted.
#[derive(Debug, Serialize, Deserialize)]
pub struct Output {
    /// Its name.
    pub stack: String,
    /// `false`: there was no such stack.
    pub deleted: bool,
}

/// Deletes the stack and waits for it.
#[tracing::instrument(name = "DeleteStack", skip_all, fields(stage = ?input.stage))]
pub async fn run(input: Input, deps: &Deps) -> Result<Output, StepError> {
    let service = &input.manifest.service;
    let (stack, owner) = match &input.stage {
        Some(stage) => (naming::stage_stack_name(service, stage), naming::Owner::stage(service, stage)),
        None => (naming::service_stack_name(service), naming::Owner::service(service)),
    };
    let stack = stack.map_err(|e| StepError::ManifestInvalid(e.to_string()))?;
    let stacks = deps.regions.stacks(&input.region);
    let tools = Tools { stacks: stacks.as_ref(), artifacts: deps.artifacts.as_ref(), settings: &deps.settings };
    let deleted = remove(tools, &stack, &owner).await?;
    if input.stage.is_none() {
        deps.history.delete_service(service).await?;
    }
    tracing::info!(%stack, deleted, "stack gone");
    Ok(Output { stack, deleted })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::history::ServiceRecord;
    use crate::fakes::FakeAws;
    use crate::ports::{History, Stacks, TemplateSource};
    use crate::steps::fixtures::{manifest, REGION, SERVICE};

    fn template(function: &str) -> TemplateSource {
        let resource = json!({ "Type": "AWS::Lambda::Function", "Properties": { "FunctionName": function } });
        TemplateSource::Body(json!({ "Resources": { "Thumbnailer": resource } }).to_string())
    }

    #[tokio::test]
    async fn the_stage_stack_goes_with_its_functions_and_a_second_run_finds_nothing_to_do() {
        let aws = FakeAws::default();
        let stacks = aws.regions.fake_stacks(REGION);
        let tags = |stage| naming::Owner::stage(SERVICE, stage).tags();
        stacks.create("shop-dev", &template("shop-dev-thumbnailer"), &[], &tags("dev")).await.unwrap();
        stacks.create("shop-prod", &template("shop-prod-thumbnailer"), &[], &tags("prod")).await.unwrap();
        let input = || Input { manifest: manifest(), stage: Some("dev".into()), region: REGION.into() };
        let output = run(input(), &aws.deps()).await.unwrap();
        assert_eq!((output.stack.as_str(), output.deleted), ("shop-dev", true));
        assert_eq!(stacks.stack_names(), ["shop-prod"]);
        assert!(!aws.regions.fake_functions(REGION).exists("shop-dev-thumbnailer"));
        assert!(!run(input(), &aws.deps()).await.unwrap().deleted);
    }

    #[tokio::test]
    async fn without_a_stage_the_service_stack_goes_and_the_service_is_forgotten() {
        let aws = FakeAws::default();
        let tags = naming::Owner::service(SERVICE).tags();
        aws.regions.fake_stacks(REGION).create("shop", &template("shop-api"), &[], &tags).await.unwrap();
        let record = ServiceRecord {
            service: SERVICE.into(),
            region: REGION.into(),
            template_hash: "h".into(),
            outputs: Default::default(),
            updated_at: chrono::Utc::now(),
            functions: Default::default(),
        };
        aws.history.put_service(&record).await.unwrap();
        run(Input { manifest: manifest(), stage: None, region: REGION.into() }, &aws.deps()).await.unwrap();
        assert!(aws.regions.fake_stacks(REGION).stack_names().is_empty());
        assert_eq!(aws.history.service(SERVICE).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_stack_of_another_stage_or_service_under_the_stages_name_is_refused_and_kept() {
        let aws = FakeAws::default();
        let stacks = aws.regions.fake_stacks(REGION);
        // Service `shop-dev`'s own stack has the name of shop's stage stack of `dev`.
        let tags = naming::Owner::service("shop-dev").tags();
        stacks.create("shop-dev", &template("shop-dev-api"), &[], &tags).await.unwrap();
        let input = Input { manifest: manifest(), stage: Some("dev".into()), region: REGION.into() };
        let err = run(input, &aws.deps()).await.unwrap_err();
        assert_eq!(err.error_type(), "NotOwned");
        assert!(err.to_string().contains("stack shop-dev") && err.to_string().contains("service shop-dev"), "{err}");
        assert_eq!(stacks.stack_names(), ["shop-dev"]);
        assert_eq!(stacks.calls("DeleteStack"), 0);
    }
}
