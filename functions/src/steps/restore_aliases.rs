//! `RestoreAliases` (the Catch path): brings every alias of the published set back to what the
//! stage's active deployment recorded (the plan's `previous`), and removes aliases the stage did
//! not have before. Each alias is read first (one `GetFunction`, with the function's tags,
//! checked before any change), so a restore after a partial switch, after drift, or repeated,
//! moves exactly the aliases that are not where they belong. An alias that cannot be restored is
//! retried, then reported (and `status` shows the drift); it never stops the lock from being
//! released.

use serde::{Deserialize, Serialize};

use crate::domain::naming;
use crate::error::StepError;
use crate::ports::{AliasState, Deps};
use crate::steps::record_deployment::committed;
use crate::steps::state::{FunctionPlan, Published};
use crate::steps::switch_aliases::owned;

/// Attempts per alias before it is reported instead of restored.
const ATTEMPTS: usize = 3;

/// What `RestoreAliases` reads of the state.
#[derive(Debug, Deserialize)]
pub struct Input {
    /// The service.
    pub service: String,
    /// The stage (the alias name).
    pub stage: String,
    /// The plan, with what each alias pointed at before.
    #[serde(default)]
    pub functions: Vec<FunctionPlan>,
    /// What `PublishVersions` produced, if it got that far: aliases move only after it.
    #[serde(default)]
    pub published: Option<Vec<Published>>,
    /// The execution, and the id its deployment gets (absent: a hand-made input, or remove).
    #[serde(default)]
    pub owner: Option<String>,
    /// See `owner`.
    #[serde(default)]
    pub deployment_id: Option<u64>,
}

/// What was put back.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Output {
    /// Physical names of the functions whose alias is back where it was.
    pub restored: Vec<String>,
    /// `function: error` for each alias that could not be restored.
    pub failed: Vec<String>,
}

/// Restores the aliases.
#[tracing::instrument(name = "RestoreAliases", skip_all, fields(stage = %input.stage))]
pub async fn run(input: Input, deps: &Deps) -> Result<Output, StepError> {
    let Some(published) = &input.published else {
        return Ok(Output::default());
    };
    if let (Some(owner), Some(id)) = (&input.owner, input.deployment_id) {
        if committed(&input.service, &input.stage, id, owner, deps).await? {
            tracing::warn!(id, "the deployment was committed before the failure: its aliases stay");
            return Ok(Output::default());
        }
    }
    let stage = input.stage.as_str();
    let service = input.service.as_str();
    // (manifest key, physical name, region, the version to go back to: none, no alias).
    let targets: Vec<(String, String, String, Option<String>)> = published
        .iter()
        .map(|p| {
            let plan = input.functions.iter().find(|f| f.name == p.name);
            let previous = plan.and_then(|f| f.previous.as_ref()).map(|r| r.version.clone());
            (p.name.clone(), p.record.function_name.clone(), p.record.region.clone(), previous)
        })
        .collect();
    let results = super::bounded(targets, deps.settings.parallelism, |(name, function, region, previous)| async move {
        let lambda = deps.regions.functions(&region);
        let owner = naming::function_owner(service, stage, &name, &function);
        let restore = || async {
            let now = lambda.alias(&function, stage).await?;
            if previous.is_none() && now == AliasState::FunctionMissing {
                return Ok(false);
            }
            owned(&now, &function, &owner)?;
            match (&previous, now.version()) {
                (Some(previous), Some(now)) if now == previous => Ok(false),
                (None, None) => Ok(false),
                (Some(previous), _) => lambda.point_alias(&function, stage, previous).await.map(|()| true),
                (None, Some(_)) => lambda.delete_alias(&function, stage).await.map(|()| true),
            }
            .map_err(StepError::from)
        };
        let mut outcome = Ok(false);
        for _ in 0..ATTEMPTS {
            outcome = restore().await;
            if outcome.is_ok() {
                break;
            }
        }
        (function, outcome)
    })
    .await;
    let mut output = Output::default();
    for (function, result) in results {
        match result {
            Ok(true) => output.restored.push(function),
            Ok(false) => {}
            Err(error) => {
                tracing::error!(%function, %error, "alias could not be restored");
                output.failed.push(format!("{function}: {error}"));
            }
        }
    }
    output.restored.sort();
    output.failed.sort();
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::FakeAws;
    use crate::ports::Functions;
    use crate::steps::fixtures::{publish, record, REGION, SERVICE};
    use crate::steps::state::ArtifactRef;

    fn plan(name: &str, previous: Option<&str>) -> FunctionPlan {
        let function = format!("shop-{name}");
        FunctionPlan {
            name: name.into(),
            function_name: function.clone(),
            region: REGION.into(),
            artifact: ArtifactRef { key: "two.zip".into(), code_sha256: String::new() },
            previous: previous.map(|v| record("dev", &function, v, "one.zip")),
            known: Vec::new(),
        }
    }

    #[tokio::test]
    async fn after_a_partial_switch_every_alias_is_back_where_the_plan_found_it_and_a_repeat_changes_nothing() {
        let aws = FakeAws::default();
        let lambda = aws.regions.fake_functions(REGION);
        for function in ["shop-api", "shop-worker", "shop-web", "shop-new"] {
            publish(&lambda, function, "one.zip").await;
            publish(&lambda, function, "two.zip").await;
        }
        for function in ["shop-api", "shop-worker", "shop-web"] {
            lambda.point_alias(function, "dev", "1").await.unwrap();
        }
        // The switch got as far as api and the new function; worker was deleted by hand; web
        // was never reached.
        lambda.point_alias("shop-api", "dev", "2").await.unwrap();
        lambda.point_alias("shop-new", "dev", "2").await.unwrap();
        lambda.delete_alias("shop-worker", "dev").await.unwrap();
        let input = || Input {
            service: SERVICE.into(),
            stage: "dev".into(),
            functions: vec![
                plan("api", Some("1")),
                plan("worker", Some("1")),
                plan("web", Some("1")),
                plan("new", None),
            ],
            published: Some(
                ["api", "worker", "web", "new"]
                    .map(|name| Published {
                        name: name.into(),
                        new_version: true,
                        record: record("dev", &format!("shop-{name}"), "2", "two.zip"),
                    })
                    .to_vec(),
            ),
            owner: Some("exec-1".into()),
            deployment_id: Some(2),
        };
        let output = run(input(), &aws.deps()).await.unwrap();
        assert_eq!(output.restored, ["shop-api", "shop-new", "shop-worker"]);
        assert!(output.failed.is_empty(), "{:?}", output.failed);
        let at: Vec<String> = lambda.alias_snapshot().into_iter().map(|((f, _), v)| format!("{f}:{v}")).collect();
        assert_eq!(at, ["shop-api:1", "shop-web:1", "shop-worker:1"], "the new function's alias is gone");
        let again = run(input(), &aws.deps()).await.unwrap();
        assert!(again.restored.is_empty() && again.failed.is_empty(), "{again:?}");
    }

    #[tokio::test]
    async fn an_alias_that_will_not_move_is_reported_not_fatal() {
        let aws = FakeAws::default();
        let lambda = aws.regions.fake_functions(REGION);
        publish(&lambda, "shop-api", "one.zip").await;
        publish(&lambda, "shop-api", "two.zip").await;
        lambda.point_alias("shop-api", "dev", "2").await.unwrap();
        lambda.fail("UpdateAlias", "shop-api");
        let input = Input {
            service: SERVICE.into(),
            stage: "dev".into(),
            functions: vec![plan("api", Some("1"))],
            published: Some(vec![Published {
                name: "api".into(),
                new_version: true,
                record: record("dev", "shop-api", "2", "two.zip"),
            }]),
            owner: None,
            deployment_id: None,
        };
        let output = run(input, &aws.deps()).await.unwrap();
        assert!(output.restored.is_empty());
        assert_eq!(output.failed.len(), 1);
        assert!(output.failed[0].starts_with("shop-api: UpdateAlias"), "{:?}", output.failed);
    }
}
