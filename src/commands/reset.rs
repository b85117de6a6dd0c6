//! `aliasflow reset --stage S --from T`: runs `reset.asl.json`, which gives S T's active code and
//! configuration (like `git reset`) and keeps S's own stage resources and stage-bound settings.

use std::path::Path;

use super::operation::copy;
use super::CliError;
use crate::cli::Global;
use crate::output::Reply;
use crate::App;

/// Resets the stage.
pub async fn run(file: &Path, stage: &str, from: &str, global: &Global, app: &App) -> Result<Reply, CliError> {
    copy(file, "reset", stage, from, global, app, |service, origin| {
        format!("reset {service} stage {stage} to {origin}")
    })
    .await
}
