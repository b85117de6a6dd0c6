//! `aliasflow validate`: checks the manifest; calls no AWS API.

use std::path::Path;

use serde_json::json;

use super::{manifest, CliError};
use crate::output::Reply;

/// Validates the manifest and summarises it.
pub fn run(file: &Path) -> Result<Reply, CliError> {
    let manifest = manifest(file)?;
    let functions: Vec<&String> = manifest.functions.keys().collect();
    let text = format!(
        "{}: service {} is valid: {} function(s) ({}), {} service resource(s), {} stage resource(s), home region {}",
        file.display(),
        manifest.service,
        functions.len(),
        functions.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", "),
        manifest.resources.len(),
        manifest.stage_resources.len(),
        manifest.region,
    );
    let json = json!({
        "valid": true,
        "file": file.display().to_string(),
        "service": manifest.service,
        "region": manifest.region,
        "functions": functions,
    });
    Ok(Reply::new(json, text))
}
