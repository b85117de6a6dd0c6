//! `aliasflow render [--stage S]` and `aliasflow schema`: templates and the manifest's schema,
//! byte-identical from run to run; no AWS call.

use std::path::Path;

use functions::domain::{manifest, template};

use super::{manifest as load, manifest_for_stage, CliError};
use crate::output::Reply;

/// The service template, or only the stage's template.
pub fn run(file: &Path, stage: Option<&str>) -> Result<Reply, CliError> {
    let template = match stage {
        Some(stage) => template::stage_template(&manifest_for_stage(file, stage)?, stage),
        None => template::service_template(&load(file)?, &Default::default()),
    };
    let text = template::render(&template);
    Ok(Reply::new(template, text))
}

/// The manifest's JSON Schema.
pub fn schema() -> Reply {
    let schema = manifest::schema();
    let text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    Reply::new(schema, text)
}
