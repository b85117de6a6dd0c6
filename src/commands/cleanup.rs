//! `aliasflow cleanup`: runs `cleanup.asl.json` now, as its schedule does: breaks stale stage
//! locks, removes the stages whose `ttl` expired, and collects the garbage. A stage that could
//! not be removed makes the command fail after the others were.

use std::path::Path;

use serde_json::{json, Value};

use super::operation::{begin, execute, field, manifest_json, report, Cost};
use super::remove::{garbage_rows, list};
use super::CliError;
use crate::cli::Global;
use crate::output::{table, Reply};
use crate::App;

/// Cleans up.
pub async fn run(file: &Path, global: &Global, app: &App) -> Result<Reply, CliError> {
    let (manifest, target, started) = begin(file, None, global, app).await?;
    let request = json!({ "manifest": manifest_json(&manifest)? });
    let (output, transitions) = execute("cleanup", &manifest, request, target).await?;
    let stages: &[Value] = output.get("stages").and_then(Value::as_array).map_or(&[], Vec::as_slice);
    if let Some(failed) = stages.iter().find(|s| s.get("error").is_some()) {
        return Err(CliError::Execution {
            operation: "cleanup".to_owned(),
            state: format!("RemoveExpiredStages (stage {})", field(failed, "/stage")),
            error: field(failed, "/error/Error"),
            cause: field(failed, "/error/Cause"),
        });
    }
    let mut rows = vec![vec!["stale locks broken".to_owned(), list(output.get("locks_broken"))]];
    for stage in stages {
        let what = match stage.get("skipped") {
            Some(reason) => format!("skipped: {}", reason.as_str().unwrap_or_default()),
            None => format!("removed (deployment {})", field(stage, "/deployment")),
        };
        rows.push(vec![format!("expired stage {}", field(stage, "/stage")), what]);
    }
    if stages.is_empty() {
        rows.push(vec!["expired stages".to_owned(), "-".to_owned()]);
    }
    rows.extend(garbage_rows(output.get("garbage")));
    let cost = Cost::of(app, transitions, started);
    rows.extend(cost.rows());
    let json = report(&manifest.service, None, output, &cost);
    Ok(Reply::new(Value::Object(json), format!("cleaned up {}\n{}", manifest.service, table(&["", ""], &rows))))
}
