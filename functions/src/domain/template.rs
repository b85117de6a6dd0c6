//! The CloudFormation templates of a manifest: the service stack and each stage stack. Pure and
//! deterministic: the same manifest renders the same bytes, so [`template_hash`] tells whether a
//! stack needs an update.
//!
//! Templates hold infrastructure only: function definitions carry placeholder code, and code,
//! memory, timeout and environment are set through the Lambda API, never here.

mod service;
mod stage;

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::domain::manifest::{sub_variables, Manifest, DEFAULT_HANDLER};
use crate::domain::naming::Owner;

pub use service::{dropped_functions, kept_functions, service_template, shared_functions};
pub use stage::stage_template;

/// Parameter: the stage name (stage stacks, when a stage resource uses it).
pub const STAGE: &str = "Stage";
/// Parameter: the bucket holding code artifacts and the placeholder zip.
pub const ARTIFACT_BUCKET: &str = "ArtifactBucket";
/// Parameter: the key of the placeholder zip in [`ARTIFACT_BUCKET`].
pub const PLACEHOLDER_KEY: &str = "PlaceholderKey";
/// Service output, and stage parameter: the functions' execution role ARN.
pub const FUNCTION_ROLE_ARN: &str = "FunctionRoleArn";
/// Service output, and stage parameter: the REST API's id.
pub const REST_API_ID: &str = "RestApiId";
/// Service output: the REST API's root resource id.
pub const REST_API_ROOT_RESOURCE_ID: &str = "RestApiRootResourceId";
/// Stage output: the stage's invoke URL on the REST API.
pub const API_URL: &str = "ApiUrl";

/// The template as `aliasflow render` prints it: pretty JSON, without a final newline.
///
/// ```
/// use functions::domain::template::render;
/// assert_eq!(render(&serde_json::json!({"a": 1})), "{\n  \"a\": 1\n}");
/// ```
pub fn render(template: &Value) -> String {
    // A Value always serializes: its map keys are strings.
    serde_json::to_string_pretty(template).unwrap_or_default()
}

/// sha256 (hex) of [`render`]'s bytes.
///
/// ```
/// use functions::domain::template::template_hash;
/// let template = serde_json::json!({"Resources": {}});
/// assert_eq!(template_hash(&template), template_hash(&template.clone()));
/// assert_eq!(template_hash(&template).len(), 64);
/// ```
pub fn template_hash(template: &Value) -> String {
    hex::encode(Sha256::digest(render(template).as_bytes()))
}

/// The parameters a template declares, in order. CloudFormation refuses a parameter the
/// template does not declare, so callers pass exactly these.
///
/// ```
/// use functions::domain::template::parameter_names;
/// let template = serde_json::json!({"Parameters": {"Stage": {"Type": "String"}}});
/// assert_eq!(parameter_names(&template), ["Stage"]);
/// ```
pub fn parameter_names(template: &Value) -> Vec<String> {
    template["Parameters"].as_object().map(|p| p.keys().cloned().collect()).unwrap_or_default()
}

/// A whole template; empty sections are left out, and a stack with nothing else gets a no-op
/// resource because CloudFormation refuses a template without resources.
fn document(
    description: String,
    parameters: Map<String, Value>,
    mut resources: Map<String, Value>,
    outputs: Map<String, Value>,
) -> Value {
    if resources.is_empty() {
        resources.insert("Placeholder".to_owned(), json!({ "Type": "AWS::CloudFormation::WaitConditionHandle" }));
    }
    let mut template = Map::new();
    template.insert("AWSTemplateFormatVersion".to_owned(), json!("2010-09-09"));
    template.insert("Description".to_owned(), Value::String(description));
    if !parameters.is_empty() {
        template.insert("Parameters".to_owned(), Value::Object(parameters));
    }
    template.insert("Resources".to_owned(), Value::Object(resources));
    if !outputs.is_empty() {
        template.insert("Outputs".to_owned(), Value::Object(outputs));
    }
    Value::Object(template)
}

fn parameter(description: &str) -> Value {
    json!({ "Type": "String", "Description": description })
}

fn output(description: &str, value: &Value) -> Value {
    json!({ "Description": description, "Value": value })
}

fn log_group(name: &str) -> Value {
    json!({ "Type": "AWS::Logs::LogGroup", "Properties": { "LogGroupName": name } })
}

/// A function definition with placeholder code; aliasflow sets the real code and configuration
/// through the Lambda API.
/// With `log_group_id` the function logs to that group of the same stack; without, aliasflow
/// points it at the stage's group through the Lambda API. Tagged with `owner`, which aliasflow
/// checks before it changes the function.
fn function(
    m: &Manifest,
    function: &str,
    name: &str,
    role: &Value,
    log_group_id: Option<&str>,
    owner: &Owner,
) -> Value {
    let handler = m.functions.get(function).map_or(DEFAULT_HANDLER, |f| f.handler.as_str());
    let mut properties = json!({
        "FunctionName": name,
        "Role": role,
        "Runtime": m.function_runtime(function),
        "Architectures": [m.function_architecture(function).as_str()],
        "Handler": handler,
        "Code": { "S3Bucket": { "Ref": ARTIFACT_BUCKET }, "S3Key": { "Ref": PLACEHOLDER_KEY } },
        "Tags": owner.tags().into_iter().map(|(key, value)| json!({ "Key": key, "Value": value })).collect::<Vec<_>>()
    });
    if let Some(id) = log_group_id {
        properties["LoggingConfig"] = json!({ "LogGroup": { "Ref": id } });
    }
    json!({ "Type": "AWS::Lambda::Function", "Properties": properties })
}

/// The names a value refers to through `Ref` and `Fn::Sub` (the part before any `.`).
fn referenced_names(value: &Value, names: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let (1, Some((key, argument))) = (map.len(), map.iter().next()) {
                let (text, local) = match (key.as_str(), argument) {
                    ("Ref", Value::String(name)) => {
                        names.insert(name.clone());
                        (None, None)
                    }
                    ("Fn::Sub", Value::String(text)) => (Some(text), None),
                    ("Fn::Sub", Value::Array(parts)) => match parts.as_slice() {
                        [Value::String(text), Value::Object(local)] => (Some(text), Some(local)),
                        _ => (None, None),
                    },
                    _ => (None, None),
                };
                for variable in text.map(|t| sub_variables(t)).unwrap_or_default() {
                    let name = variable.split('.').next().unwrap_or(variable);
                    if !local.is_some_and(|l| l.contains_key(name)) {
                        names.insert(name.to_owned());
                    }
                }
            }
            map.values().for_each(|v| referenced_names(v, names));
        }
        Value::Array(items) => items.iter().for_each(|v| referenced_names(v, names)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_found_in_refs_and_subs_but_not_in_literals_or_local_variables() {
        let value = json!({
            "A": { "Ref": "Stage" },
            "B": [{ "Fn::Sub": "${Shared}-${Table.Arn}-${!Literal}" }],
            "C": { "Fn::Sub": ["${Local}-${AWS::Region}", { "Local": "x" }] },
            "D": "${NotASub}"
        });
        let mut names = BTreeSet::new();
        referenced_names(&value, &mut names);
        assert_eq!(names.into_iter().collect::<Vec<_>>(), ["AWS::Region", "Shared", "Stage", "Table"]);
    }

    #[test]
    fn a_template_without_resources_gets_a_placeholder() {
        let template = document("d".into(), Map::new(), Map::new(), Map::new());
        assert_eq!(template["Resources"]["Placeholder"]["Type"], "AWS::CloudFormation::WaitConditionHandle");
        assert!(template.get("Parameters").is_none() && template.get("Outputs").is_none());
    }
}
