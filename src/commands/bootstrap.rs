//! `aliasflow bootstrap`: installs the deployer into the account and region. With the local
//! engine that is the history table and the artifact bucket, from the same `infra/` template
//! the whole deployer is installed from.

use std::path::Path;

use functions::deployer;
use serde_json::json;

use super::CliError;
use crate::cli::EngineKind;
use crate::output::Reply;
use crate::App;

/// The deployer's CloudFormation template.
pub const DEPLOYER_TEMPLATE: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/infra/deployer.json"));

/// Installs (or upgrades) the deployer in the manifest's home region, or the SDK's region when
/// there is no manifest.
pub async fn run(file: &Path, engine: EngineKind, app: &App) -> Result<Reply, CliError> {
    if engine == EngineKind::Aws {
        return Err(CliError::Usage(
            "bootstrap --engine aws (the deployer's Lambda functions and state machines) is not available in this version; use --engine local".to_owned(),
        ));
    }
    let region = if file.exists() {
        super::manifest(file)?.region
    } else {
        app.sdk().await.region().ok_or_else(|| {
            CliError::Usage(format!(
                "no manifest at {} and no AWS region set: pass -f aliasflow.yaml or set AWS_REGION",
                file.display()
            ))
        })?
    };
    let sdk = app.sdk().await;
    let record = deployer::bootstrap_local(&sdk, &region, DEPLOYER_TEMPLATE, env!("CARGO_PKG_VERSION"))
        .await
        .map_err(|e| CliError::Usage(format!("bootstrap: {e}")))?;
    let text = format!(
        "aliasflow deployer ready in {region} (engine local): history table {}, artifact bucket {}",
        functions::aws::TABLE,
        record.bucket
    );
    Ok(Reply::new(
        json!({ "region": region, "engine": record.engine, "table": functions::aws::TABLE, "bucket": record.bucket }),
        text,
    ))
}
