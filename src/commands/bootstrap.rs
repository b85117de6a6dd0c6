//! `aliasflow bootstrap`: installs the deployer into the account and region. With the local
//! engine that is the history table and the artifact bucket; with `--engine aws` the whole
//! `infra/deployer.json`: the step handlers as Lambda functions, the state machines, the cleanup
//! schedule and the CI role. Both run again to upgrade in place.

use std::collections::BTreeMap;
use std::path::Path;

use functions::{deployer, steps};
use serde_json::json;

use super::CliError;
use crate::cli::EngineKind;
use crate::output::{table, Reply};
use crate::App;

/// The deployer's CloudFormation template.
pub const DEPLOYER_TEMPLATE: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/infra/deployer.json"));

/// Installs (or upgrades) the deployer in the manifest's home region, or the SDK's region when
/// there is no manifest.
pub async fn run(
    file: &Path,
    engine: EngineKind,
    handlers: &Path,
    parameters: &[String],
    app: &App,
) -> Result<Reply, CliError> {
    // Everything the user gave is checked before the first AWS call.
    let aws = match engine {
        EngineKind::Aws => Some((read_handlers(handlers)?, parse_parameters(parameters)?)),
        EngineKind::Local => None,
    };
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
    let version = env!("CARGO_PKG_VERSION");
    let failed = |e: deployer::BootstrapError| CliError::Usage(format!("bootstrap: {e}"));
    let Some((handlers, parameters)) = aws else {
        let record = deployer::bootstrap_local(&sdk, &region, DEPLOYER_TEMPLATE, version).await.map_err(failed)?;
        let text = format!(
            "aliasflow deployer ready in {region} (engine local): history table {}, artifact bucket {}",
            functions::aws::TABLE,
            record.bucket
        );
        return Ok(Reply::new(
            json!({ "region": region, "engine": record.engine, "table": functions::aws::TABLE, "bucket": record.bucket }),
            text,
        ));
    };
    let installed = deployer::bootstrap_aws(&sdk, &region, DEPLOYER_TEMPLATE, version, &handlers, &parameters)
        .await
        .map_err(failed)?;
    let outputs: BTreeMap<&str, &str> = installed.outputs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let rows: Vec<Vec<String>> = outputs.iter().map(|(k, v)| vec![(*k).to_owned(), (*v).to_owned()]).collect();
    let text = format!(
        "aliasflow deployer ready in {region} (engine aws): {} step functions, handlers at s3://{}/{}\n{}",
        handlers.len(),
        installed.record.bucket,
        installed.handler_prefix,
        table(&["output", "value"], &rows)
    );
    Ok(Reply::new(
        json!({
            "region": region,
            "engine": installed.record.engine,
            "table": functions::aws::TABLE,
            "bucket": installed.record.bucket,
            "handler_prefix": installed.handler_prefix,
            "state_machines": installed.record.state_machines,
            "outputs": outputs,
        }),
        text,
    ))
}

/// Every step's handler zip, `<dir>/<binary>/bootstrap.zip`, by binary name.
fn read_handlers(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, CliError> {
    let mut zips = BTreeMap::new();
    let mut missing = Vec::new();
    for step in steps::NAMES {
        let binary = steps::binary(step);
        let path = dir.join(&binary).join("bootstrap.zip");
        match std::fs::read(&path) {
            Ok(bytes) => {
                zips.insert(binary, bytes);
            }
            Err(e) => missing.push(format!("{} ({e})", path.display())),
        }
    }
    if missing.is_empty() {
        return Ok(zips);
    }
    Err(CliError::Usage(format!(
        "bootstrap --engine aws needs every step handler's Lambda zip; missing: {}. Build them with `bash scripts/package-lambdas.sh` or pass --handlers DIR",
        missing.join(", ")
    )))
}

/// `KEY=VALUE` pairs.
fn parse_parameters(pairs: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
            _ => {
                Err(CliError::Usage(format!("--parameter {pair}: expected KEY=VALUE, e.g. GitHubRepository=org/repo")))
            }
        })
        .collect()
}
