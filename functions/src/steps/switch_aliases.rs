//! `SwitchAliases`: brings every function's alias `<stage>` to its version, in parallel
//! (bounded), whatever happened to it outside aliasflow (moved, deleted): a run that ends well
//! leaves every alias where its history row says. A version this run published was just checked
//! as the function's owner's by `PublishVersion`, so its alias is pointed at once; every other
//! alias is read first (one `GetFunction`, with the function's tags, checked before any change)
//! and moved only where it is not already at its version. Safe to repeat.

use serde::{Deserialize, Serialize};

use crate::domain::history::FunctionRecord;
use crate::domain::naming;
use crate::error::StepError;
use crate::ports::{AliasState, Deps};
use crate::steps::state::{FunctionPlan, Published};

/// What `SwitchAliases` reads of the state.
#[derive(Debug, Deserialize)]
pub struct Input {
    /// The service.
    pub service: String,
    /// The stage (the alias name).
    pub stage: String,
    /// `PublishVersions`' result: where each alias goes.
    pub published: Vec<Published>,
    /// The plan, with where the history says each alias points now.
    pub functions: Vec<FunctionPlan>,
}

/// The aliases that moved.
#[derive(Debug, Serialize)]
pub struct Output {
    /// Physical names of the functions whose alias was pointed anew, sorted.
    pub moved: Vec<String>,
}

/// The records whose alias the plan expects to move: new version, or a function the stage did
/// not have. (What really moves also depends on what drifted: [`run`] reads each alias.)
pub fn changes<'a>(
    functions: &'a [FunctionPlan],
    published: &'a [Published],
) -> Vec<(&'a Published, Option<&'a FunctionPlan>)> {
    published
        .iter()
        .map(|p| (p, functions.iter().find(|f| f.name == p.name)))
        .filter(|(p, plan)| {
            plan.and_then(|f| f.previous.as_ref()).is_none_or(|previous| previous.version != p.record.version)
        })
        .collect()
}

/// Refuses to change an alias of a function that is missing or not `owner`'s, as `state` (one
/// [`Functions::alias`] read) shows it. What both `SwitchAliases` and `RestoreAliases` check
/// before they move an alias.
pub(crate) fn owned(state: &AliasState, function: &str, owner: &naming::Owner) -> Result<(), StepError> {
    let Some(tags) = state.tags() else {
        return Err(StepError::Conflict(format!(
            "function {function} does not exist; its stack should have it: deploy the stage again"
        )));
    };
    owner.check(&format!("function {function}"), tags)?;
    Ok(())
}

/// Moves the aliases that are not where the published records say.
#[tracing::instrument(name = "SwitchAliases", skip_all, fields(stage = %input.stage))]
pub async fn run(input: Input, deps: &Deps) -> Result<Output, StepError> {
    let stage = input.stage.as_str();
    let service = input.service.as_str();
    // An alias the plan expects to move (a new version, another version than the history's, a
    // function the stage did not have) is pointed at once: no read can spare that call, and the
    // version it goes to is one aliasflow published on this very function (PublishVersion
    // checked its owner; UpdateAlias refuses a version the function does not have). The others
    // are read, so what drifted outside is put back and a function of another owner refused.
    let expected: Vec<String> =
        changes(&input.functions, &input.published).into_iter().map(|(p, _)| p.name.clone()).collect();
    let items: Vec<(String, bool, FunctionRecord)> = input
        .published
        .into_iter()
        .map(|p| (p.name.clone(), p.new_version || expected.contains(&p.name), p.record))
        .collect();
    let results = super::bounded(items, deps.settings.parallelism, |(name, moves, record)| async move {
        let lambda = deps.regions.functions(&record.region);
        let function = record.function_name.as_str();
        if !moves {
            let owner = naming::function_owner(service, stage, &name, function);
            let state = lambda.alias(function, stage).await?;
            owned(&state, function, &owner)?;
            if state.version() == Some(record.version.as_str()) {
                return Ok(None);
            }
        }
        lambda.point_alias(function, stage, &record.version).await?;
        tracing::info!(function, version = %record.version, "alias switched");
        Ok::<_, StepError>(Some(record.function_name))
    })
    .await;
    let mut moved: Vec<String> = results.into_iter().collect::<Result<Vec<_>, _>>()?.into_iter().flatten().collect();
    moved.sort();
    Ok(Output { moved })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::FakeAws;
    use crate::ports::Functions;
    use crate::steps::fixtures::{publish, record, REGION, SERVICE};

    fn published(name: &str, function: &str, version: &str, new_version: bool) -> Published {
        Published { name: name.into(), new_version, record: record("dev", function, version, "code.zip") }
    }

    /// The plan of a function whose alias the history says is where `published` sends it.
    fn unchanged(published: &Published) -> FunctionPlan {
        FunctionPlan {
            name: published.name.clone(),
            function_name: published.record.function_name.clone(),
            region: published.record.region.clone(),
            artifact: crate::steps::state::ArtifactRef { key: "code.zip".into(), code_sha256: "c29tZQ==".into() },
            previous: Some(published.record.clone()),
            known: Vec::new(),
        }
    }

    #[tokio::test]
    async fn aliases_moved_or_deleted_outside_are_put_back_and_the_others_only_read() {
        let aws = FakeAws::default();
        let lambda = aws.regions.fake_functions(REGION);
        for function in ["shop-api", "shop-worker", "shop-web"] {
            publish(&lambda, function, "one.zip").await;
            publish(&lambda, function, "two.zip").await;
            lambda.point_alias(function, "dev", "2").await.unwrap();
        }
        // Drift: one alias moved back by hand, one deleted.
        lambda.point_alias("shop-api", "dev", "1").await.unwrap();
        lambda.delete_alias("shop-worker", "dev").await.unwrap();
        let before = lambda.call_counts();
        let input = || {
            let published: Vec<Published> =
                ["api", "worker", "web"].map(|name| published(name, &format!("shop-{name}"), "2", false)).to_vec();
            Input {
                service: SERVICE.into(),
                stage: "dev".into(),
                functions: published.iter().map(unchanged).collect(),
                published,
            }
        };
        let output = run(input(), &aws.deps()).await.unwrap();
        assert_eq!(output.moved, ["shop-api", "shop-worker"]);
        let at: Vec<String> = lambda.alias_snapshot().into_iter().map(|((f, _), v)| format!("{f}:{v}")).collect();
        assert_eq!(at, ["shop-api:2", "shop-web:2", "shop-worker:2"]);
        let after = lambda.call_counts();
        let delta = |op: &str| after.get(op).unwrap_or(&0) - before.get(op).unwrap_or(&0);
        // Three reads, a second read for the missing alias, and only the two moves (the deleted
        // alias is created again after UpdateAlias says it is missing).
        assert_eq!((delta("GetFunction"), delta("UpdateAlias"), delta("CreateAlias")), (4, 2, 1));
        assert!(run(input(), &aws.deps()).await.unwrap().moved.is_empty(), "converged: nothing to move");
    }

    #[tokio::test]
    async fn an_alias_the_plan_moves_is_pointed_without_a_read() {
        let aws = FakeAws::default();
        let lambda = aws.regions.fake_functions(REGION);
        publish(&lambda, "shop-api", "one.zip").await;
        publish(&lambda, "shop-api", "two.zip").await;
        lambda.point_alias("shop-api", "dev", "2").await.unwrap();
        // A rollback: the history says 2, the target is the reused version 1.
        let target = published("api", "shop-api", "1", false);
        let mut plan = unchanged(&target);
        plan.previous = Some(record("dev", "shop-api", "2", "code.zip"));
        let before = lambda.call_counts();
        let input =
            Input { service: SERVICE.into(), stage: "dev".into(), functions: vec![plan], published: vec![target] };
        assert_eq!(run(input, &aws.deps()).await.unwrap().moved, ["shop-api"]);
        let after = lambda.call_counts();
        assert_eq!(after.get("GetFunction"), before.get("GetFunction"), "no read");
        assert_eq!(lambda.alias_snapshot().into_values().collect::<Vec<_>>(), ["1"]);
    }

    #[tokio::test]
    async fn a_function_of_another_owner_is_refused_before_its_alias_moves() {
        let aws = FakeAws::default();
        let lambda = aws.regions.fake_functions(REGION);
        publish(&lambda, "shop-api", "one.zip").await;
        lambda.set_tags("shop-api", crate::domain::naming::Owner::service("shop-admin").tags().into_iter().collect());
        let published = vec![published("api", "shop-api", "1", false)];
        let input = Input {
            service: SERVICE.into(),
            stage: "dev".into(),
            functions: published.iter().map(unchanged).collect(),
            published,
        };
        let err = run(input, &aws.deps()).await.unwrap_err();
        assert_eq!(err.error_type(), "NotOwned");
        assert!(lambda.alias_snapshot().is_empty(), "no alias created");
    }
}
