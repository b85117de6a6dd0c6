//! A function's configuration as aliasflow sets it through the Lambda API (never through
//! CloudFormation), resolved for one stage, and its hash: same code and same hash means the same
//! version can serve both stages.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::manifest::{LogsMode, Manifest};
use crate::domain::naming;

/// The configuration of one function for one stage, every reference resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionConfig {
    /// Lambda runtime id.
    pub runtime: String,
    /// `arm64` or `x86_64`.
    pub architecture: String,
    /// The handler.
    pub handler: String,
    /// Memory in MB.
    pub memory: u32,
    /// Timeout in seconds.
    pub timeout: u32,
    /// Description, if any.
    pub description: Option<String>,
    /// Environment variables, references replaced.
    pub environment: BTreeMap<String, String>,
    /// `LoggingConfig.LogGroup` when aliasflow sets it (per-stage log groups); `None` leaves
    /// what the stack declared.
    pub log_group: Option<String>,
}

impl FunctionConfig {
    /// sha256 (hex) of the configuration's canonical JSON.
    ///
    /// ```
    /// use functions::domain::config::FunctionConfig;
    /// let config = FunctionConfig {
    ///     runtime: "provided.al2023".into(), architecture: "arm64".into(),
    ///     handler: "bootstrap".into(), memory: 128, timeout: 3, description: None,
    ///     environment: Default::default(), log_group: None,
    /// };
    /// assert_eq!(config.hash(), config.clone().hash());
    /// assert_eq!(config.hash().len(), 64);
    /// ```
    pub fn hash(&self) -> String {
        // Fields are in declaration order and the map is sorted, so the JSON is canonical.
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(json))
    }
}

/// The values `${...}` references resolve against.
#[derive(Debug, Clone, Copy)]
pub struct Bindings<'a> {
    /// The stage name, for `${stage}`.
    pub stage: &'a str,
    /// The service stack's outputs, for `${service_output:Name}`.
    pub service_outputs: &'a BTreeMap<String, String>,
    /// The stage stack's outputs, for `${stage_output:Name}`.
    pub stage_outputs: &'a BTreeMap<String, String>,
}

/// Resolves function `name` of the manifest for a stage.
///
/// Fails with a message naming the environment variable when a reference has no value (an
/// output the stack does not have).
pub fn resolve(manifest: &Manifest, name: &str, bindings: Bindings<'_>) -> Result<FunctionConfig, String> {
    let spec =
        manifest.functions.get(name).ok_or_else(|| format!("functions.{name}: no such function in the manifest"))?;
    let architecture = spec.architecture.unwrap_or(manifest.architecture);
    let architecture =
        serde_json::to_value(architecture).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    let mut environment = BTreeMap::new();
    for (key, value) in &spec.environment {
        let resolved = substitute(value, bindings)
            .map_err(|reference| format!("functions.{name}.environment.{key}: {reference}"))?;
        environment.insert(key.clone(), resolved);
    }
    let per_stage_log_group = manifest.logs == LogsMode::Stage && !manifest.is_instance_per_stage(name, bindings.stage);
    Ok(FunctionConfig {
        runtime: spec.runtime.clone().unwrap_or_else(|| manifest.runtime.clone()),
        architecture,
        handler: spec.handler.clone(),
        memory: spec.memory,
        timeout: spec.timeout,
        description: spec.description.clone(),
        environment,
        log_group: per_stage_log_group.then(|| naming::log_group_name(&manifest.service, Some(bindings.stage), name)),
    })
}

/// Replaces `${stage}`, `${stage_output:X}` and `${service_output:X}` in `value`.
fn substitute(value: &str, bindings: Bindings<'_>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let reference = &after[..end];
        let resolved = match reference.split_once(':') {
            None if reference == "stage" => Some(bindings.stage),
            Some(("stage_output", output)) => bindings.stage_outputs.get(output).map(String::as_str),
            Some(("service_output", output)) => bindings.service_outputs.get(output).map(String::as_str),
            _ => None,
        };
        let resolved =
            resolved.ok_or_else(|| format!("${{{reference}}} has no value: the stack has no such output"))?;
        out.push_str(resolved);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bindings<'a>(service: &'a BTreeMap<String, String>, stage: &'a BTreeMap<String, String>) -> Bindings<'a> {
        Bindings { stage: "dev", service_outputs: service, stage_outputs: stage }
    }

    #[test]
    fn references_resolve_against_stage_and_service_outputs() {
        let service = BTreeMap::from([("Bucket".to_owned(), "b-1".to_owned())]);
        let stage = BTreeMap::from([("Table".to_owned(), "t-dev".to_owned())]);
        let got = substitute("${stage}/${stage_output:Table}/${service_output:Bucket}!", bindings(&service, &stage));
        assert_eq!(got.as_deref(), Ok("dev/t-dev/b-1!"));
    }

    #[test]
    fn a_missing_output_is_an_error_naming_the_reference() {
        let empty = BTreeMap::new();
        let err = substitute("${stage_output:Nope}", bindings(&empty, &empty)).unwrap_err();
        assert!(err.contains("${stage_output:Nope}"), "{err}");
    }

    #[test]
    fn text_without_references_is_kept() {
        let empty = BTreeMap::new();
        assert_eq!(substitute("plain $ {x} ${", bindings(&empty, &empty)).as_deref(), Ok("plain $ {x} ${"));
    }
}
