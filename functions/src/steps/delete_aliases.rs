//! `DeleteAliases` (remove): deletes the stage's alias from every shared function that may have
//! one: those its active deployment recorded, and every shared function of the manifest (an
//! interrupted deploy may have left an alias the history never recorded). Each function's tags
//! are read first (with the alias, one `GetFunction`): a function that is not the service's is
//! refused with `NotOwned` before anything is deleted there. The permissions on an alias go with
//! it; instance-per-stage functions go with the stage stack. Safe to repeat: a missing alias is
//! not an error.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::domain::manifest::Manifest;
use crate::domain::naming;
use crate::error::StepError;
use crate::ports::{AliasState, Deps};
use crate::steps::state::FunctionPlan;

/// What `DeleteAliases` reads of the state.
#[derive(Debug, Deserialize)]
pub struct Input {
    /// The manifest.
    pub manifest: Manifest,
    /// The stage (the alias name).
    pub stage: String,
    /// The plan: the functions the active deployment recorded.
    pub functions: Vec<FunctionPlan>,
}

/// The aliases deleted.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Output {
    /// Physical names of the functions whose alias `<stage>` is gone.
    pub deleted: Vec<String>,
}

/// Deletes the aliases, in parallel (bounded).
#[tracing::instrument(name = "DeleteAliases", skip_all, fields(stage = %input.stage))]
pub async fn run(input: Input, deps: &Deps) -> Result<Output, StepError> {
    let manifest = &input.manifest;
    let stage = input.stage.as_str();
    let own = |name: &str, function_name: &str| {
        naming::function_name_unchecked(&manifest.service, Some(stage), name) == function_name
    };
    let mut targets: BTreeSet<(String, String)> = input
        .functions
        .iter()
        .filter(|f| !own(&f.name, &f.function_name))
        .map(|f| (f.region.clone(), f.function_name.clone()))
        .collect();
    for name in manifest.functions.keys().filter(|name| !manifest.is_instance_per_stage(name, stage)) {
        let function_name = naming::function_name(&manifest.service, None, name)
            .map_err(|e| StepError::ManifestInvalid(e.to_string()))?;
        targets.insert((manifest.region.clone(), function_name));
    }
    let owner = &naming::Owner::service(&manifest.service);
    let results =
        super::bounded(targets.into_iter().collect(), deps.settings.parallelism, |(region, function)| async move {
            let lambda = deps.regions.functions(&region);
            let AliasState::At { tags, .. } = lambda.alias(&function, stage).await? else {
                return Ok(None);
            };
            owner.check(&format!("function {function}"), &tags)?;
            lambda.delete_alias(&function, stage).await?;
            tracing::info!(%function, "alias deleted");
            Ok::<_, StepError>(Some(function))
        })
        .await;
    let mut deleted: Vec<String> = results.into_iter().collect::<Result<Vec<_>, _>>()?.into_iter().flatten().collect();
    deleted.sort();
    Ok(Output { deleted })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::FakeAws;
    use crate::ports::Functions;
    use crate::steps::fixtures::{manifest, publish, REGION};

    #[tokio::test]
    async fn every_shared_function_loses_the_stages_alias_and_keeps_the_others() {
        let aws = FakeAws::default();
        let lambda = aws.regions.fake_functions(REGION);
        for function in ["shop-api", "shop-worker"] {
            let version = publish(&lambda, function, "code.zip").await;
            for stage in ["dev", "prod"] {
                lambda.point_alias(function, stage, &version).await.unwrap();
            }
        }
        let input = || Input { manifest: manifest(), stage: "dev".into(), functions: Vec::new() };
        let output = run(input(), &aws.deps()).await.unwrap();
        assert_eq!(
            output.deleted,
            ["shop-api", "shop-worker"],
            "from the manifest, though no deployment recorded them"
        );
        let aliases: Vec<String> = lambda.alias_snapshot().into_keys().map(|(f, a)| format!("{f}:{a}")).collect();
        assert_eq!(aliases, ["shop-api:prod", "shop-worker:prod"]);
        run(input(), &aws.deps()).await.unwrap();
    }
}
