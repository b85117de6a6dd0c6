//! `aliasflow clone --stage T --from S`: runs `clone.asl.json`, which creates stage T with S's
//! active code and configuration, sharing S's versions where they bind to no stage.

use std::path::Path;

use super::operation::copy;
use super::CliError;
use crate::cli::Global;
use crate::output::Reply;
use crate::App;

/// Clones the stage.
pub async fn run(file: &Path, stage: &str, from: &str, global: &Global, app: &App) -> Result<Reply, CliError> {
    copy(file, "clone", stage, from, global, app, |service, origin| {
        format!("cloned {service} {origin} to new stage {stage}")
    })
    .await
}
