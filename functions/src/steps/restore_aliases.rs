//! `RestoreAliases` (the Catch path): moves every alias that this execution may have moved back
//! to what the stage's active deployment recorded, and removes aliases the stage did not have
//! before. An alias that cannot be restored is retried, then reported (and `status` shows the
//! drift); it never stops the lock from being released. Safe to repeat.

use serde::{Deserialize, Serialize};

use crate::domain::history::FunctionRecord;
use crate::error::StepError;
use crate::ports::Deps;
use crate::steps::state::{FunctionPlan, Published};
use crate::steps::switch_aliases;

/// Attempts per alias before it is reported instead of restored.
const ATTEMPTS: usize = 3;

/// What `RestoreAliases` reads of the state.
#[derive(Debug, Deserialize)]
pub struct Input {
    /// The stage (the alias name).
    pub stage: String,
    /// The plan, with what each alias pointed at before.
    #[serde(default)]
    pub functions: Vec<FunctionPlan>,
    /// What `PublishVersions` produced, if it got that far: aliases move only after it.
    #[serde(default)]
    pub published: Option<Vec<Published>>,
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
    let moves: Vec<(FunctionRecord, Option<FunctionRecord>)> = switch_aliases::changes(&input.functions, published)
        .into_iter()
        .map(|(p, plan)| (p.record.clone(), plan.and_then(|f| f.previous.clone())))
        .collect();
    let stage = input.stage.as_str();
    let results = super::bounded(moves, deps.settings.parallelism, |(record, previous)| async move {
        let lambda = deps.regions.functions(&record.region);
        let mut outcome = Ok(());
        for _ in 0..ATTEMPTS {
            outcome = match &previous {
                Some(previous) => lambda.point_alias(&record.function_name, stage, &previous.version).await,
                None => lambda.delete_alias(&record.function_name, stage).await,
            };
            if outcome.is_ok() {
                break;
            }
        }
        (record.function_name, outcome.map_err(StepError::from))
    })
    .await;
    let mut output = Output::default();
    for (function, result) in results {
        match result {
            Ok(()) => output.restored.push(function),
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
