//! One module per subcommand; each returns a [`Reply`] or a [`CliError`].

mod bootstrap;
mod cleanup;
mod clone;
mod deploy;
mod history;
mod operation;
mod remove;
mod render;
mod reset;
mod rollback;
mod status;
mod unlock;
mod validate;

use std::path::Path;

use functions::deployer;
use functions::domain::history::DeployerRecord;
use functions::domain::manifest::{Manifest, ManifestErrors};
use functions::error::{AwsError, StepError};
use functions::ports::{Deps, Settings};
use serde_json::json;

use crate::cli::{Cli, Command};
use crate::output::Reply;
use crate::App;

/// Why a command failed; printed as `error: ...` on stderr.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The manifest has problems: one line each.
    #[error("{0}")]
    Manifest(ManifestErrors),
    /// A refusal or failure of a step run by the CLI itself.
    #[error("{step}: {error}")]
    Step {
        /// The step (state name) or command part.
        step: String,
        /// What failed (boxed: it is large, and errors travel by value).
        error: Box<StepError>,
    },
    /// An execution that ended in failure.
    #[error("{operation} failed in {state}: {error}: {cause}")]
    Execution {
        /// The operation.
        operation: String,
        /// The state that failed.
        state: String,
        /// The error name, e.g. `StageLocked`.
        error: String,
        /// The cause.
        cause: String,
    },
    /// Input the command refuses before doing anything.
    #[error("{0}")]
    Usage(String),
}

impl CliError {
    /// A failed AWS call of the CLI itself.
    pub fn aws(step: &str, error: AwsError) -> Self {
        Self::step(step, StepError::Aws(error))
    }

    /// A refusal or failure of a step run by the CLI itself.
    pub fn step(step: &str, error: StepError) -> Self {
        Self::Step { step: step.to_owned(), error: Box::new(error) }
    }

    /// The stable error name (`ManifestInvalid`, `StageLocked`, ...), for `--output json`.
    pub fn error_type(&self) -> String {
        match self {
            Self::Manifest(_) => "ManifestInvalid".to_owned(),
            Self::Step { error, .. } => error.error_type().to_owned(),
            Self::Execution { error, .. } => error.clone(),
            Self::Usage(_) => "UsageError".to_owned(),
        }
    }

    /// The JSON document `--output json` prints for a failure.
    pub fn to_json(&self) -> serde_json::Value {
        json!({ "error": { "type": self.error_type(), "message": self.to_string() } })
    }
}

/// Runs the parsed command.
pub async fn run(cli: &Cli, app: &App) -> Result<Reply, CliError> {
    let file = cli.global.file.as_path();
    match &cli.command {
        Command::Validate => validate::run(file),
        Command::Render { stage } => render::run(file, stage.as_deref()),
        Command::Schema => Ok(render::schema()),
        Command::Bootstrap { handlers, parameters } => {
            bootstrap::run(file, cli.global.engine, handlers, parameters, app).await
        }
        Command::Deploy { stage } => deploy::run(file, stage.as_deref(), &cli.global, app).await,
        Command::Rollback { stage, to } => rollback::run(file, stage, *to, &cli.global, app).await,
        Command::Reset { stage, from } => reset::run(file, stage, from, &cli.global, app).await,
        Command::Clone { stage, from } => clone::run(file, stage, from, &cli.global, app).await,
        Command::Remove { stage } => remove::run(file, stage.as_deref(), &cli.global, app).await,
        Command::Cleanup => cleanup::run(file, &cli.global, app).await,
        Command::Status { stage } => status::run(file, stage.as_deref(), app).await,
        Command::History { stage } => history::run(file, stage, app).await,
        Command::Unlock { stage, lock_id } => unlock::run(file, stage, lock_id, app).await,
    }
}

/// Loads and validates the manifest.
pub fn manifest(file: &Path) -> Result<Manifest, CliError> {
    Manifest::load(file).map_err(CliError::Manifest)
}

/// Loads the manifest and checks the stage name against it.
pub fn manifest_for_stage(file: &Path, stage: &str) -> Result<Manifest, CliError> {
    let manifest = manifest(file)?;
    manifest.check_stage(stage).map_err(CliError::Manifest)?;
    Ok(manifest)
}

/// The deployer's ports in the manifest's home region, after checking it is bootstrapped.
pub async fn deps(manifest: &Manifest, app: &App) -> Result<(Deps, DeployerRecord), CliError> {
    let sdk = app.sdk().await;
    let history = functions::aws::DynamoHistory::new(sdk.dynamodb(&manifest.region), functions::aws::TABLE);
    let record =
        deployer::deployer_settings(&history).await.map_err(|error| CliError::step("bootstrap check", error))?;
    let mut settings = Settings::new(&record.bucket);
    settings.placeholder_key.clone_from(&record.placeholder_key);
    if let Some(interval) = app.poll_interval {
        settings.poll_interval = interval;
    }
    Ok((functions::aws::deps(&sdk, &manifest.region, settings), record))
}
