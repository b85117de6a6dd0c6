//! `aliasflow remove [--stage S]`: runs `remove.asl.json` for S, which deletes its aliases and
//! stack, records the removal and collects the garbage; without a stage, for every live stage
//! (in every region), then once more without a stage for the service stack.

use std::path::Path;

use functions::domain::history::StageState;
use serde_json::{json, Value};

use super::operation::{begin, execute, field, manifest_json, on_stage, report, Cost};
use super::CliError;
use crate::cli::Global;
use crate::output::{table, Reply};
use crate::App;

/// Removes the stage, or everything.
pub async fn run(file: &Path, stage: Option<&str>, global: &Global, app: &App) -> Result<Reply, CliError> {
    match stage {
        Some(stage) => {
            let (manifest, output, cost) = on_stage(file, "remove", stage, json!({}), global, app).await?;
            let json = report(&manifest.service, Some(stage), output.clone(), &cost);
            let mut rows = removal_rows(&output);
            rows.extend(cost.rows());
            let text = format!(
                "removed stage {stage} of {}; its history stays, marked removed\n{}",
                manifest.service,
                table(&["", ""], &rows)
            );
            Ok(Reply::new(Value::Object(json), text))
        }
        None => remove_service(file, global, app).await,
    }
}

/// Every live stage, then the service stack.
async fn remove_service(file: &Path, global: &Global, app: &App) -> Result<Reply, CliError> {
    let (manifest, target, started) = begin(file, None, global, app).await?;
    let stages = target.deps.history.stages(&manifest.service).await.map_err(|e| CliError::aws("remove", e))?;
    let mut transitions = 0;
    let mut removed = Vec::new();
    let mut rows = Vec::new();
    for stage in stages.iter().filter(|r| r.state == StageState::Active) {
        let request = json!({ "stage": stage.stage, "manifest": manifest_json(&manifest)? });
        let (output, used) = execute("remove", &manifest, request, target.clone()).await?;
        transitions += used;
        rows.push(vec![format!("stage {}", stage.stage), format!("removed ({})", stage.region)]);
        removed.push(output);
    }
    let request = json!({ "manifest": manifest_json(&manifest)? });
    let (garbage, used) = execute("remove", &manifest, request, target).await?;
    transitions += used;
    rows.push(vec!["service stack".to_owned(), format!("{} removed", manifest.service)]);
    rows.extend(garbage_rows(Some(&garbage)));
    let cost = Cost::of(app, transitions, started);
    rows.extend(cost.rows());
    let json = report(&manifest.service, None, json!({ "stages": removed, "garbage": garbage }), &cost);
    let text =
        format!("removed service {}: every stage, then its stack\n{}", manifest.service, table(&["", ""], &rows));
    Ok(Reply::new(Value::Object(json), text))
}

/// What one stage's removal did.
fn removal_rows(output: &Value) -> Vec<Vec<String>> {
    let mut rows = vec![
        vec!["removal recorded as".to_owned(), format!("deployment {}", field(output, "/deployment/id"))],
        vec!["aliases deleted on".to_owned(), list(output.get("aliases_deleted"))],
        vec!["stack deleted".to_owned(), field(output, "/stack/stack")],
    ];
    rows.extend(garbage_rows(output.get("garbage")));
    if let Some(error) = output.get("garbage_error") {
        rows.push(vec!["garbage left".to_owned(), format!("{}: {}", field(error, "/Error"), field(error, "/Cause"))]);
    }
    rows
}

/// What a garbage collection (`CollectGarbage`'s output) did.
pub(super) fn garbage_rows(garbage: Option<&Value>) -> Vec<Vec<String>> {
    let Some(garbage) = garbage else { return Vec::new() };
    let mut rows = vec![
        vec!["versions deleted".to_owned(), list(garbage.get("deleted_versions"))],
        vec!["versions kept for an alias".to_owned(), list(garbage.get("kept_versions"))],
        vec!["objects deleted".to_owned(), list(garbage.get("deleted_objects"))],
    ];
    for (label, field) in [("kept, used by a deploy lately", "kept_recent"), ("kept, used meanwhile", "kept_in_use")] {
        if garbage.get(field).and_then(Value::as_array).is_some_and(|a| !a.is_empty()) {
            rows.push(vec![label.to_owned(), list(garbage.get(field))]);
        }
    }
    if let Some(reason) = garbage.get("skipped").and_then(Value::as_str) {
        rows.push(vec!["garbage collection skipped".to_owned(), reason.to_owned()]);
    }
    rows
}

/// A JSON list of strings as `a, b`, or `-`.
pub(super) fn list(items: Option<&Value>) -> String {
    let items: Vec<&str> = items.and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(", ")
    }
}
