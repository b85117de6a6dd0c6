//! `ReapplyLatest` (rollback): callers of an instance-per-stage function call it unqualified,
//! because they cannot address an alias, so they run `$LATEST`; moving the alias back does not
//! reach them. This puts the code and configuration of the version the alias now points at back
//! into `$LATEST`. Safe to repeat: a `$LATEST` that already matches is left alone.

use serde::{Deserialize, Serialize};

use crate::domain::naming;
use crate::error::StepError;
use crate::ports::Deps;
use crate::steps::publish_version::apply;
use crate::steps::state::{FunctionPlan, Published};

/// What `ReapplyLatest` reads of the state.
#[derive(Debug, Deserialize)]
pub struct Input {
    /// The service.
    pub service: String,
    /// The stage.
    pub stage: String,
    /// The plan: each function's physical name and code.
    pub functions: Vec<FunctionPlan>,
    /// Where each alias points now.
    pub published: Vec<Published>,
}

/// The functions whose `$LATEST` changed.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Output {
    /// Physical names of the instance-per-stage functions whose `$LATEST` was re-applied.
    pub reapplied: Vec<String>,
}

/// Re-applies the recorded code and configuration to the stage's own functions.
#[tracing::instrument(name = "ReapplyLatest", skip_all, fields(stage = %input.stage))]
pub async fn run(input: Input, deps: &Deps) -> Result<Output, StepError> {
    let stage = input.stage.as_str();
    // Only the stage's own functions are re-applied.
    let owner = &naming::Owner::stage(&input.service, stage);
    let instances: Vec<(FunctionPlan, String)> = input
        .functions
        .into_iter()
        .filter(|f| naming::function_name_unchecked(&input.service, Some(stage), &f.name) == f.function_name)
        .filter_map(|f| {
            let version = input.published.iter().find(|p| p.name == f.name)?.record.version.clone();
            Some((f, version))
        })
        .collect();
    let results = super::bounded(instances, deps.settings.parallelism, |(function, version)| async move {
        let lambda = deps.regions.functions(&function.region);
        let name = function.function_name.as_str();
        let config = lambda.config_of(name, &version).await?.ok_or_else(|| {
            StepError::Conflict(format!("version {version} of {name} does not exist; deploy stage {stage} instead"))
        })?;
        let (_, changed) = apply(lambda.as_ref(), &function, &config, owner, deps).await?;
        if changed {
            tracing::info!(function = name, %version, "$LATEST re-applied");
        }
        Ok::<_, StepError>(changed.then(|| name.to_owned()))
    })
    .await;
    let mut reapplied: Vec<String> =
        results.into_iter().collect::<Result<Vec<_>, _>>()?.into_iter().flatten().collect();
    reapplied.sort();
    Ok(Output { reapplied })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::config::FunctionConfig;
    use crate::fakes::FakeAws;
    use crate::ports::Functions;
    use crate::steps::fixtures::{publish, record, REGION, SERVICE};
    use crate::steps::state::ArtifactRef;

    fn plan(name: &str, function: &str, key: &str) -> FunctionPlan {
        FunctionPlan {
            name: name.into(),
            function_name: function.into(),
            region: REGION.into(),
            artifact: ArtifactRef { key: key.into(), code_sha256: String::new() },
            previous: None,
            known: Vec::new(),
        }
    }

    #[tokio::test]
    async fn the_stages_own_function_gets_the_code_and_configuration_of_its_version_back_in_latest() {
        let aws = FakeAws::default();
        let lambda = aws.regions.fake_functions(REGION);
        let old = publish(&lambda, "shop-dev-thumbnailer", "t-1.zip").await;
        let old_latest = lambda.peek("shop-dev-thumbnailer").unwrap();
        let bigger = FunctionConfig { memory: 1024, ..old_latest.config.clone().unwrap() };
        lambda.update_config("shop-dev-thumbnailer", &bigger).await.unwrap();
        publish(&lambda, "shop-dev-thumbnailer", "t-2.zip").await;
        publish(&lambda, "shop-api", "api-2.zip").await;
        let api_latest = lambda.peek("shop-api").unwrap();

        let mut thumbnailer = plan("thumbnailer", "shop-dev-thumbnailer", "t-1.zip");
        thumbnailer.artifact.code_sha256 = old_latest.code_sha256.clone();
        let input = |functions| Input {
            service: SERVICE.into(),
            stage: "dev".into(),
            functions,
            published: vec![
                Published {
                    name: "thumbnailer".into(),
                    new_version: false,
                    record: record("dev", "shop-dev-thumbnailer", &old, "t-1.zip"),
                },
                Published {
                    name: "api".into(),
                    new_version: false,
                    record: record("dev", "shop-api", "1", "api-1.zip"),
                },
            ],
        };
        let functions = vec![thumbnailer, plan("api", "shop-api", "api-1.zip")];
        let output = run(input(functions.clone()), &aws.deps()).await.unwrap();
        assert_eq!(output.reapplied, ["shop-dev-thumbnailer"]);
        let latest = lambda.peek("shop-dev-thumbnailer").unwrap();
        assert_eq!(latest.code_sha256, old_latest.code_sha256);
        assert_eq!(latest.config.map(|c| c.memory), old_latest.config.map(|c| c.memory));
        assert_eq!(lambda.peek("shop-api").unwrap(), api_latest, "a shared function's $LATEST is left alone");

        let again = run(input(functions), &aws.deps()).await.unwrap();
        assert!(again.reapplied.is_empty(), "already right: {again:?}");
    }
}
