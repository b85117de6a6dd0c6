//! `aliasflow rollback --stage S [--to ID]`: runs `rollback.asl.json`, which points every alias
//! of S back at the deployment before the active one (or at ID) without publishing.

use std::path::Path;

use serde_json::json;

use super::operation::{deployment_reply, field, on_stage};
use super::CliError;
use crate::cli::Global;
use crate::output::Reply;
use crate::App;

/// Rolls the stage back.
pub async fn run(file: &Path, stage: &str, to: Option<u64>, global: &Global, app: &App) -> Result<Reply, CliError> {
    let (manifest, output, cost) = on_stage(file, "rollback", stage, json!({ "to": to }), global, app).await?;
    let headline = format!(
        "rolled back {} stage {stage} to deployment {}",
        manifest.service,
        field(&output, "/origin").rsplit('#').next().unwrap_or_default()
    );
    Ok(deployment_reply(&manifest, stage, &headline, &output, &cost))
}
