//! `SwitchAliases`: points each function's alias `<stage>` at its new version, in parallel
//! (bounded). Functions whose alias already points there are left alone. Safe to repeat:
//! pointing an alias where it already points changes nothing.

use serde::{Deserialize, Serialize};

use crate::domain::history::FunctionRecord;
use crate::error::StepError;
use crate::ports::Deps;
use crate::steps::state::{FunctionPlan, Published};

/// What `SwitchAliases` reads of the state.
#[derive(Debug, Deserialize)]
pub struct Input {
    /// The stage (the alias name).
    pub stage: String,
    /// The plan, with what each alias pointed at before.
    pub functions: Vec<FunctionPlan>,
    /// `PublishVersions`' result: where each alias goes.
    pub published: Vec<Published>,
}

/// The aliases that moved.
#[derive(Debug, Serialize)]
pub struct Output {
    /// Physical names of the functions whose alias was pointed anew.
    pub moved: Vec<String>,
}

/// The records whose alias must move: new version, or a function the stage did not have.
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

/// Moves the aliases.
#[tracing::instrument(name = "SwitchAliases", skip_all, fields(stage = %input.stage))]
pub async fn run(input: Input, deps: &Deps) -> Result<Output, StepError> {
    let records: Vec<FunctionRecord> =
        changes(&input.functions, &input.published).into_iter().map(|(p, _)| p.record.clone()).collect();
    let moved = records.iter().map(|r| r.function_name.clone()).collect();
    let stage = input.stage.as_str();
    let results = super::bounded(records, deps.settings.parallelism, |record| async move {
        let lambda = deps.regions.functions(&record.region);
        lambda.point_alias(&record.function_name, stage, &record.version).await?;
        tracing::info!(function = %record.function_name, version = %record.version, "alias switched");
        Ok::<_, StepError>(())
    })
    .await;
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok(Output { moved })
}
