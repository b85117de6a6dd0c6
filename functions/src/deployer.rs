//! The deployer's footprint in an account and region. `aliasflow bootstrap --engine local`
//! installs from `infra/deployer.json` only the history table and the artifact bucket (with its
//! policy), in the CloudFormation stack `aliasflow`; [`bootstrap_aws`] installs the whole
//! template into the same stack: the step handlers as Lambda functions, the state machines, the
//! cleanup schedule and the CI role. Both upload the placeholder code zip that service stacks
//! declare functions with, and write the deployer record in the history table. Idempotent: a
//! second run finds everything in place and changes nothing.
//!
//! Steps find the deployer through [`deployer_settings`], which turns an account that never ran
//! bootstrap into [`StepError::NotBootstrapped`].

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Cursor, Write};
use std::time::{Duration, Instant};

use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use aws_sdk_cloudformation::types::TemplateStage;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::aws::{aws_error, DynamoHistory, S3Artifacts, Sdk, TABLE};
use crate::converge;
use crate::domain::history::DeployerRecord;
use crate::error::{AwsError, StepError};
use crate::ports::{Artifacts, History, TemplateSource, PLACEHOLDER_KEY};
use crate::steps;

/// The deployer's stack.
pub const STACK: &str = "aliasflow";

/// The resources of `infra/deployer.json` that local runs need.
pub const LOCAL_RESOURCES: [&str; 3] = ["HistoryTable", "ArtifactBucket", "ArtifactBucketPolicy"];

/// The deployer stack's output naming the history table.
pub const TABLE_OUTPUT: &str = "HistoryTableName";

/// The deployer stack's output naming the artifact bucket.
pub const BUCKET_OUTPUT: &str = "ArtifactBucketName";

/// How long bootstrap waits for the stack before giving up (CloudFormation creates a table and
/// a bucket in well under a minute; this is for a stack still busy with something else).
const STACK_WAIT: Duration = Duration::from_secs(30 * 60);

/// The longest pause between two polls of the stack.
const MAX_POLL: Duration = Duration::from_secs(10);

/// Why bootstrap failed.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The deployer template is not what bootstrap expects.
    #[error("infra/deployer.json: {0}")]
    Template(String),
    /// An AWS call failed.
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// The stack ended in a state other than created or updated.
    #[error("stack {stack} ended in {status}: {reason}")]
    StackFailed {
        /// The stack name.
        stack: String,
        /// Its final status.
        status: String,
        /// CloudFormation's reasons, and what to do.
        reason: String,
    },
    /// Step handler zips are missing (binary names).
    #[error(
        "no Lambda zip for the step handlers {}: build them with `bash scripts/package-lambdas.sh`, or pass --handlers DIR (DIR/<binary>/bootstrap.zip)",
        .0.join(", ")
    )]
    MissingHandlers(Vec<String>),
    /// A `--parameter` the deployer template does not take.
    #[error("--parameter {0}")]
    Parameter(String),
    /// The stack lacks an output bootstrap reads.
    #[error("stack {stack} has no output {output}")]
    MissingOutput {
        /// The stack name.
        stack: String,
        /// The output's key.
        output: String,
    },
    /// The stack stayed busy longer than bootstrap waits.
    #[error(
        "stack {stack} is still {status} after {minutes} minutes; run `aliasflow bootstrap` again when it is done"
    )]
    Timeout {
        /// The stack name.
        stack: String,
        /// Its last status.
        status: String,
        /// How long bootstrap waited.
        minutes: u64,
    },
}

/// Installs what local runs need into the account and `region` the SDK settings reach: the
/// subset [`LOCAL_RESOURCES`] of the deployer `template` (the text of `infra/deployer.json`) as
/// the stack [`STACK`], the placeholder code at [`PLACEHOLDER_KEY`], and the deployer record
/// (engine `local`, aliasflow `version`). Running it again changes nothing. Where the whole
/// deployer is installed already (`--engine aws`), its stack and record are left as they are.
pub async fn bootstrap_local(
    sdk: &Sdk,
    region: &str,
    template: &str,
    version: &str,
) -> Result<DeployerRecord, BootstrapError> {
    let body = local_template(template)?;
    let cloudformation = sdk.cloudformation(region);
    let outputs = ensure_stack(&cloudformation, &body).await?;
    let table = output(&outputs, TABLE_OUTPUT)?;
    let bucket = output(&outputs, BUCKET_OUTPUT)?;
    tracing::info!(stack = STACK, %table, %bucket, "deployer stack ready");

    // The zip is reproducible, so uploading it again writes the same bytes.
    S3Artifacts::new(sdk.s3(region), &bucket).put(PLACEHOLDER_KEY, placeholder_zip()?).await?;

    let history = DynamoHistory::new(sdk.dynamodb(region), &table);
    if let Some(existing) = history.deployer().await? {
        if existing.engine == "aws" {
            tracing::info!("the whole deployer is installed; keeping its record");
            return Ok(existing);
        }
    }
    let record = DeployerRecord {
        bucket,
        placeholder_key: PLACEHOLDER_KEY.to_owned(),
        engine: "local".to_owned(),
        version: version.to_owned(),
        state_machines: Default::default(),
    };
    history.put_deployer(&record).await?;
    Ok(record)
}

/// Key prefix of the step handler zips in the artifact bucket.
pub const HANDLERS_PREFIX: &str = "aliasflow/handlers";

/// The deployer stack's parameter naming where the handler zips are.
pub const HANDLER_CODE_PARAMETER: &str = "HandlerCodePrefix";

/// What `bootstrap --engine aws` installed.
#[derive(Debug, Clone)]
pub struct Installed {
    /// The deployer record it wrote.
    pub record: DeployerRecord,
    /// The deployer stack's outputs (state machine ARNs, the CI role, ...).
    pub outputs: Vec<(String, String)>,
    /// Where the handler zips are: `<HANDLERS_PREFIX>/<digest>`.
    pub handler_prefix: String,
}

/// The content-addressed prefix of a set of handler zips (binary name -> zip): the same zips
/// give the same prefix, so installing them again changes no function, and new ones give a new
/// prefix, which is what makes CloudFormation update the functions' code.
pub fn handler_prefix(handlers: &BTreeMap<String, Vec<u8>>) -> String {
    let mut digest = Sha256::new();
    for (binary, zip) in handlers {
        digest.update(binary.as_bytes());
        digest.update([0]);
        digest.update(Sha256::digest(zip));
    }
    let digest = hex::encode(digest.finalize());
    format!("{HANDLERS_PREFIX}/{}", &digest[..16])
}

/// Installs (or upgrades) the whole deployer into the account and `region` the SDK settings
/// reach: the table and bucket first (as [`bootstrap_local`] does, so the zips have a bucket to
/// go to), the step `handlers` (binary name -> Lambda zip, one per [`steps::NAMES`]) under a
/// content-addressed prefix, then the whole `template` with `parameters` (template parameter ->
/// value; the ones not given keep their previous value, or their default on first install), and
/// the deployer record with engine `aws` and the state machines' ARNs.
pub async fn bootstrap_aws(
    sdk: &Sdk,
    region: &str,
    template: &str,
    version: &str,
    handlers: &BTreeMap<String, Vec<u8>>,
    parameters: &BTreeMap<String, String>,
) -> Result<Installed, BootstrapError> {
    let missing: Vec<String> =
        steps::NAMES.iter().map(|s| steps::binary(s)).filter(|b| !handlers.contains_key(b)).collect();
    if !missing.is_empty() {
        return Err(BootstrapError::MissingHandlers(missing));
    }
    let full: Value = serde_json::from_str(template).map_err(|e| BootstrapError::Template(e.to_string()))?;
    let known = full.get("Parameters").and_then(Value::as_object).cloned().unwrap_or_default();
    for name in parameters.keys() {
        if name == HANDLER_CODE_PARAMETER || !known.contains_key(name) {
            let settable: Vec<&str> =
                known.keys().map(String::as_str).filter(|k| *k != HANDLER_CODE_PARAMETER).collect();
            return Err(BootstrapError::Parameter(format!(
                "{name} is not a parameter bootstrap takes; the deployer's are {}",
                settable.join(", ")
            )));
        }
    }

    let cloudformation = sdk.cloudformation(region);
    let local = local_template(template)?;
    let outputs = ensure_stack(&cloudformation, &local).await?;
    let bucket = output(&outputs, BUCKET_OUTPUT)?;
    let artifacts = S3Artifacts::new(sdk.s3(region), &bucket);
    let prefix = handler_prefix(handlers);
    let uploads = handlers.iter().map(|(binary, zip)| {
        let key = format!("{prefix}/{binary}.zip");
        let artifacts = &artifacts;
        async move { artifacts.put(&key, zip.clone()).await }
    });
    futures::future::try_join_all(uploads).await?;
    artifacts.put(PLACEHOLDER_KEY, placeholder_zip()?).await?;
    tracing::info!(%bucket, %prefix, handlers = handlers.len(), "handlers uploaded");

    let Some(now) = describe(&cloudformation).await? else {
        return Err(BootstrapError::StackFailed {
            stack: STACK.to_owned(),
            status: "DELETE_COMPLETE".to_owned(),
            reason: "the stack was deleted while bootstrap uploaded the handlers".to_owned(),
        });
    };
    let mut values = vec![stack_parameter(HANDLER_CODE_PARAMETER).parameter_value(&prefix).build()];
    for name in known.keys().filter(|k| *k != HANDLER_CODE_PARAMETER) {
        // The previous value itself rather than `UsePreviousValue`: the same on AWS (no
        // parameter is NoEcho), and moto fails `UsePreviousValue` on one left at its default.
        if let Some(value) = parameters.get(name).or_else(|| now.parameters.get(name)) {
            values.push(stack_parameter(name).parameter_value(value).build());
        }
    }
    // The whole deployer is over CloudFormation's inline limit: it goes by TemplateURL from the
    // bucket just made, named by its content.
    let hash = hex::encode(Sha256::digest(template.as_bytes()));
    let source = converge::staged(&artifacts, &bucket, region, template.to_owned(), &hash).await?;
    let outputs = update(&cloudformation, now, &source, values).await?;
    let mut state_machines = BTreeMap::new();
    for (key, value) in &outputs {
        if let Some(machine) = key.strip_suffix("StateMachineArn") {
            state_machines.insert(machine.to_lowercase(), value.clone());
        }
    }
    let record = DeployerRecord {
        bucket,
        placeholder_key: PLACEHOLDER_KEY.to_owned(),
        engine: "aws".to_owned(),
        version: version.to_owned(),
        state_machines,
    };
    let history = DynamoHistory::new(sdk.dynamodb(region), &output(&outputs, TABLE_OUTPUT)?);
    history.put_deployer(&record).await?;
    Ok(Installed { record, outputs, handler_prefix: prefix })
}

fn stack_parameter(name: &str) -> aws_sdk_cloudformation::types::builders::ParameterBuilder {
    aws_sdk_cloudformation::types::Parameter::builder().parameter_key(name)
}

/// The stack output `key`.
fn output(outputs: &[(String, String)], key: &str) -> Result<String, BootstrapError> {
    let found = outputs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    found.ok_or_else(|| BootstrapError::MissingOutput { stack: STACK.to_owned(), output: key.to_owned() })
}

/// The deployer record, or [`StepError::NotBootstrapped`] when the account and region have no
/// history table or the table has no record (bootstrap never ran, or was interrupted).
pub async fn deployer_settings(history: &dyn History) -> Result<DeployerRecord, StepError> {
    match history.deployer().await {
        Ok(Some(record)) => Ok(record),
        Ok(None) => Err(StepError::NotBootstrapped(format!(
            "the history table {TABLE} has no deployer record (an interrupted bootstrap?)"
        ))),
        // Matching the code, not the text: the adapter reports DynamoDB's own code.
        Err(e) if e.code == "ResourceNotFoundException" => {
            Err(StepError::NotBootstrapped(format!("aliasflow is not installed here: {} does not exist", e.resource)))
        }
        Err(e) => Err(StepError::Aws(e)),
    }
}

/// The part of the deployer template that local runs need: [`LOCAL_RESOURCES`], the parameters
/// they use, and the outputs that name only them. Pretty JSON, byte-identical from run to run.
pub fn local_template(template: &str) -> Result<String, BootstrapError> {
    let full: Value = serde_json::from_str(template).map_err(|e| BootstrapError::Template(e.to_string()))?;
    let section = |name: &str| full.get(name).and_then(Value::as_object);
    let resources = section("Resources").ok_or_else(|| BootstrapError::Template("no Resources".to_owned()))?;
    let parameters = section("Parameters");

    let mut kept = Map::new();
    let mut used_parameters = BTreeSet::new();
    for name in LOCAL_RESOURCES {
        let resource = resources
            .get(name)
            .ok_or_else(|| BootstrapError::Template(format!("no resource {name}, which local bootstrap installs")))?;
        if let Some(condition) = resource.get("Condition") {
            return Err(BootstrapError::Template(format!(
                "resource {name} has Condition {condition}, which local bootstrap does not carry"
            )));
        }
        for reference in references(resource) {
            if reference.starts_with("AWS::") || LOCAL_RESOURCES.contains(&reference.as_str()) {
                continue;
            }
            if parameters.is_some_and(|p| p.contains_key(&reference)) {
                used_parameters.insert(reference);
                continue;
            }
            return Err(BootstrapError::Template(format!(
                "resource {name} refers to {reference}, which local bootstrap does not install"
            )));
        }
        kept.insert(name.to_owned(), resource.clone());
    }

    let mut out = Map::new();
    for key in ["AWSTemplateFormatVersion", "Description"] {
        if let Some(value) = full.get(key) {
            out.insert(key.to_owned(), value.clone());
        }
    }
    if let Some(parameters) = parameters.filter(|_| !used_parameters.is_empty()) {
        let mut kept_parameters = Map::new();
        for name in &used_parameters {
            let parameter = &parameters[name.as_str()];
            if parameter.get("Default").is_none() {
                return Err(BootstrapError::Template(format!("parameter {name} has no Default to bootstrap with")));
            }
            kept_parameters.insert(name.clone(), parameter.clone());
        }
        out.insert("Parameters".to_owned(), Value::Object(kept_parameters));
    }
    out.insert("Resources".to_owned(), Value::Object(kept));
    let mut outputs = Map::new();
    for (name, output) in section("Outputs").into_iter().flatten() {
        let local = output.get("Condition").is_none()
            && references(output).iter().all(|r| {
                r.starts_with("AWS::") || LOCAL_RESOURCES.contains(&r.as_str()) || used_parameters.contains(r)
            });
        if local {
            outputs.insert(name.clone(), output.clone());
        }
    }
    out.insert("Outputs".to_owned(), Value::Object(outputs));
    serde_json::to_string_pretty(&Value::Object(out)).map_err(|e| BootstrapError::Template(e.to_string()))
}

/// Every logical id or parameter a template fragment names: `Ref`, `Fn::GetAtt`, `${...}` in
/// `Fn::Sub` (not its own variables, not `${!literal}`), and `DependsOn`.
fn references(value: &Value) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    collect_references(value, &mut found);
    found
}

fn collect_references(value: &Value, found: &mut BTreeSet<String>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| collect_references(v, found)),
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("Ref" | "DependsOn", Value::String(name)) => {
                        found.insert(name.clone());
                    }
                    ("Fn::GetAtt", Value::Array(parts)) => {
                        if let Some(Value::String(name)) = parts.first() {
                            found.insert(name.clone());
                        }
                    }
                    ("Fn::GetAtt", Value::String(dotted)) => {
                        found.insert(dotted.split('.').next().unwrap_or_default().to_owned());
                    }
                    ("Fn::Sub", Value::String(text)) => found.extend(sub_names(text)),
                    ("Fn::Sub", Value::Array(parts)) => {
                        let variables = parts.get(1).and_then(Value::as_object);
                        if let Some(Value::String(text)) = parts.first() {
                            let own = |n: &String| variables.is_some_and(|v| v.contains_key(n));
                            found.extend(sub_names(text).into_iter().filter(|n| !own(n)));
                        }
                        if let Some(variables) = variables {
                            variables.values().for_each(|v| collect_references(v, found));
                        }
                    }
                    ("DependsOn", Value::Array(names)) => {
                        found.extend(names.iter().filter_map(Value::as_str).map(str::to_owned));
                    }
                    _ => collect_references(inner, found),
                }
            }
        }
        _ => {}
    }
}

/// The names in an `Fn::Sub` string: `${Name}` and `${Name.Attribute}` give `Name`.
fn sub_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        rest = &rest[start + 2..];
        let Some(end) = rest.find('}') else { break };
        let inner = &rest[..end];
        if !inner.starts_with('!') {
            // `${AWS::Region}` keeps its `::`; `${Bucket.Arn}` names `Bucket`.
            let name = if inner.starts_with("AWS::") { inner } else { inner.split('.').next().unwrap_or(inner) };
            names.insert(name.to_owned());
        }
        rest = &rest[end + 1..];
    }
    names
}

/// The stack as DescribeStacks reports it.
#[derive(Debug)]
struct StackNow {
    status: String,
    reason: Option<String>,
    outputs: Vec<(String, String)>,
    /// The stack's parameters and their values.
    parameters: BTreeMap<String, String>,
}

impl StackNow {
    fn in_progress(&self) -> bool {
        self.status.ends_with("_IN_PROGRESS")
    }

    /// A state the stack rests in with its template applied.
    fn settled(&self) -> bool {
        matches!(
            self.status.as_str(),
            "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "UPDATE_ROLLBACK_COMPLETE" | "IMPORT_COMPLETE"
        )
    }
}

/// Brings the stack [`STACK`] to `body` (or leaves a stack that holds the whole deployer) and
/// returns its outputs.
async fn ensure_stack(
    client: &aws_sdk_cloudformation::Client,
    body: &str,
) -> Result<Vec<(String, String)>, BootstrapError> {
    let mut now = describe(client).await?;
    if now.as_ref().is_some_and(StackNow::in_progress) {
        now = Some(wait(client).await?);
    }
    let Some(now) = now else {
        client
            .create_stack()
            .stack_name(STACK)
            .template_body(body)
            .send()
            .await
            .map_err(|e| aws_error("CreateStack", STACK, &e))?;
        tracing::info!(stack = STACK, "creating");
        return finished(client, wait(client).await?).await;
    };
    if !now.settled() {
        let reason = format!(
            "{}; delete the stack {STACK} (its table and bucket are retained) and run `aliasflow bootstrap` again",
            now.reason.as_deref().unwrap_or("no reason given")
        );
        return Err(BootstrapError::StackFailed { stack: STACK.to_owned(), status: now.status, reason });
    }
    let current = client
        .get_template()
        .stack_name(STACK)
        .template_stage(TemplateStage::Original)
        .send()
        .await
        .map_err(|e| aws_error("GetTemplate", STACK, &e))?;
    let current: Option<Value> = current.template_body().and_then(|b| serde_json::from_str(b).ok());
    let wanted: Value = serde_json::from_str(body).map_err(|e| BootstrapError::Template(e.to_string()))?;
    if current.as_ref() == Some(&wanted) {
        return Ok(now.outputs);
    }
    if current.as_ref().is_some_and(|c| holds_more_than(c, &wanted)) {
        // The whole deployer (`--engine aws`): shrinking it to the local subset would delete it.
        tracing::info!(stack = STACK, "the whole deployer is installed; leaving its stack as it is");
        return Ok(now.outputs);
    }
    update(client, now, &TemplateSource::Body(body.to_owned()), Vec::new()).await
}

/// Updates the settled stack to the template at `source` with `parameters` and waits for it; a
/// stack already there is left as it is.
async fn update(
    client: &aws_sdk_cloudformation::Client,
    now: StackNow,
    source: &TemplateSource,
    parameters: Vec<aws_sdk_cloudformation::types::Parameter>,
) -> Result<Vec<(String, String)>, BootstrapError> {
    let (body, url) = match source {
        TemplateSource::Body(body) => (Some(body.clone()), None),
        TemplateSource::Url(url) => (None, Some(url.clone())),
    };
    let updated = client
        .update_stack()
        .stack_name(STACK)
        .set_template_body(body)
        .set_template_url(url)
        .set_parameters(Some(parameters))
        // The roles have no names: CAPABILITY_IAM, not CAPABILITY_NAMED_IAM.
        .capabilities(aws_sdk_cloudformation::types::Capability::CapabilityIam)
        .send()
        .await;
    match updated {
        Ok(_) => {}
        // CloudFormation says "nothing to update" only as a ValidationError with this text.
        Err(e)
            if e.as_service_error()
                .and_then(|s| s.message())
                .is_some_and(|m| m.contains("No updates are to be performed")) =>
        {
            return Ok(now.outputs)
        }
        Err(e) => return Err(aws_error("UpdateStack", STACK, &e).into()),
    }
    tracing::info!(stack = STACK, "updating");
    finished(client, wait(client).await?).await
}

/// Whether the stack's template has resources beyond the wanted ones.
fn holds_more_than(current: &Value, wanted: &Value) -> bool {
    let names =
        |t: &Value| t.get("Resources").and_then(Value::as_object).map(|r| r.keys().cloned().collect::<BTreeSet<_>>());
    match (names(current), names(wanted)) {
        (Some(current), Some(wanted)) => current.is_superset(&wanted) && current.len() > wanted.len(),
        _ => false,
    }
}

/// The stack's outputs if it ended created or updated, else why not.
async fn finished(
    client: &aws_sdk_cloudformation::Client,
    now: StackNow,
) -> Result<Vec<(String, String)>, BootstrapError> {
    if matches!(now.status.as_str(), "CREATE_COMPLETE" | "UPDATE_COMPLETE") {
        return Ok(now.outputs);
    }
    let mut reasons = failure_reasons(client).await.unwrap_or_default();
    if reasons.is_empty() {
        reasons.extend(now.reason);
    }
    let reason = if reasons.is_empty() { "no reason given".to_owned() } else { reasons.join("; ") };
    Err(BootstrapError::StackFailed { stack: STACK.to_owned(), status: now.status, reason })
}

/// The stack, `None` if there is none.
async fn describe(client: &aws_sdk_cloudformation::Client) -> Result<Option<StackNow>, BootstrapError> {
    let described = client.describe_stacks().stack_name(STACK).send().await;
    let output = match described {
        Ok(output) => output,
        // CloudFormation reports a missing stack only as a ValidationError with this text.
        Err(e) if e.as_service_error().and_then(|s| s.message()).is_some_and(|m| m.contains("does not exist")) => {
            return Ok(None)
        }
        Err(e) => return Err(aws_error("DescribeStacks", STACK, &e).into()),
    };
    let Some(stack) = output.stacks().first() else { return Ok(None) };
    let status = stack.stack_status().map(|s| s.as_str().to_owned()).unwrap_or_default();
    if status == "DELETE_COMPLETE" {
        return Ok(None);
    }
    let outputs = stack
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
        .collect();
    let parameters = stack
        .parameters()
        .iter()
        .filter_map(|p| Some((p.parameter_key()?.to_owned(), p.parameter_value().unwrap_or_default().to_owned())))
        .collect();
    Ok(Some(StackNow { status, reason: stack.stack_status_reason().map(str::to_owned), outputs, parameters }))
}

/// Polls the stack until it is no longer `*_IN_PROGRESS`, from 1 s up with back-off.
async fn wait(client: &aws_sdk_cloudformation::Client) -> Result<StackNow, BootstrapError> {
    let started = Instant::now();
    let mut pause = Duration::from_secs(1);
    loop {
        let Some(now) = describe(client).await? else {
            return Err(BootstrapError::StackFailed {
                stack: STACK.to_owned(),
                status: "DELETE_COMPLETE".to_owned(),
                reason: "the stack was deleted while bootstrap waited for it".to_owned(),
            });
        };
        if !now.in_progress() {
            return Ok(now);
        }
        if started.elapsed() > STACK_WAIT {
            return Err(BootstrapError::Timeout {
                stack: STACK.to_owned(),
                status: now.status,
                minutes: STACK_WAIT.as_secs() / 60,
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_POLL);
    }
}

/// The reasons of the stack's failed resource events, newest first (first page: the recent ones).
async fn failure_reasons(client: &aws_sdk_cloudformation::Client) -> Result<Vec<String>, AwsError> {
    let output = client
        .describe_stack_events()
        .stack_name(STACK)
        .send()
        .await
        .map_err(|e| aws_error("DescribeStackEvents", STACK, &e))?;
    let failed =
        output.stack_events().iter().filter(|e| e.resource_status().is_some_and(|s| s.as_str().ends_with("_FAILED")));
    let reasons = failed.filter_map(|e| {
        let reason = e.resource_status_reason()?;
        Some(format!("{}: {reason}", e.logical_resource_id().unwrap_or("?")))
    });
    Ok(reasons.take(5).collect())
}

/// What the placeholder `bootstrap` says when a function that never got code is invoked.
const PLACEHOLDER_SCRIPT: &str = "#!/bin/sh\n\
# aliasflow placeholder: the service stack declares every function with this code; aliasflow\n\
# gives each function its real code when a stage is deployed.\n\
echo 'aliasflow: this function has no code yet: it holds the placeholder its service stack created it with; deploy a stage with `aliasflow deploy --stage <stage>`' >&2\n\
exit 1\n";

/// A reproducible zip holding one executable file, `bootstrap`, that fails with an explanation:
/// the code service stacks declare functions with before aliasflow gives them theirs.
pub fn placeholder_zip() -> Result<Vec<u8>, BootstrapError> {
    let broken = |e: &dyn std::fmt::Display| BootstrapError::Template(format!("cannot build the placeholder zip: {e}"));
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    // A fixed time and mode, stored uncompressed: the same bytes on every machine and run.
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o755);
    zip.start_file("bootstrap", options).map_err(|e| broken(&e))?;
    zip.write_all(PLACEHOLDER_SCRIPT.as_bytes()).map_err(|e| broken(&e))?;
    let cursor = zip.finish().map_err(|e| broken(&e))?;
    Ok(cursor.into_inner())
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::fakes::FakeHistory;

    const DEPLOYER: &str = include_str!("../../infra/deployer.json");

    #[test]
    fn the_local_template_keeps_table_bucket_policy_and_their_outputs() {
        let local: Value = serde_json::from_str(&local_template(DEPLOYER).unwrap()).unwrap();
        let names = |section: &str| local[section].as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(names("Resources"), ["HistoryTable", "ArtifactBucket", "ArtifactBucketPolicy"]);
        assert_eq!(names("Outputs"), [TABLE_OUTPUT, BUCKET_OUTPUT]);
        assert_eq!(local_template(DEPLOYER).unwrap(), local_template(DEPLOYER).unwrap());
    }

    #[test]
    fn the_local_template_drops_what_refers_to_the_rest_of_the_deployer() {
        let mut full: Value = serde_json::from_str(DEPLOYER).unwrap();
        full["Resources"]["DeployMachine"] = serde_json::json!({ "Type": "AWS::StepFunctions::StateMachine" });
        full["Outputs"]["DeployMachineArn"] = serde_json::json!({ "Value": { "Ref": "DeployMachine" } });
        let local: Value = serde_json::from_str(&local_template(&full.to_string()).unwrap()).unwrap();
        assert!(local["Resources"].get("DeployMachine").is_none());
        assert!(local["Outputs"].get("DeployMachineArn").is_none());
    }

    #[test]
    fn a_local_resource_that_needs_the_rest_of_the_deployer_is_refused() {
        let mut full: Value = serde_json::from_str(DEPLOYER).unwrap();
        full["Resources"]["HistoryTable"]["DependsOn"] = serde_json::json!("DeployMachine");
        let err = local_template(&full.to_string()).unwrap_err();
        assert!(err.to_string().contains("refers to DeployMachine"), "{err}");
    }

    #[test]
    fn sub_names_skip_literals_and_keep_pseudo_parameters() {
        let names = sub_names("arn:${AWS::Partition}:s3:::${ArtifactBucket.Arn}/${!Literal}");
        assert_eq!(names.into_iter().collect::<Vec<_>>(), ["AWS::Partition", "ArtifactBucket"]);
    }

    #[test]
    fn the_placeholder_zip_is_reproducible_and_holds_an_executable_bootstrap() {
        let bytes = placeholder_zip().unwrap();
        assert_eq!(bytes, placeholder_zip().unwrap());
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        assert_eq!(archive.len(), 1);
        let mut file = archive.by_name("bootstrap").unwrap();
        assert_eq!(file.unix_mode().map(|m| m & 0o777), Some(0o755));
        let mut script = String::new();
        file.read_to_string(&mut script).unwrap();
        assert!(script.starts_with("#!/bin/sh\n"));
        assert!(script.contains("exit 1"));
    }

    #[tokio::test]
    async fn an_account_without_a_deployer_record_is_not_bootstrapped() {
        let err = deployer_settings(&FakeHistory::default()).await.unwrap_err();
        assert_eq!(err.error_type(), "NotBootstrapped");
        assert!(err.to_string().contains("aliasflow bootstrap"), "{err}");
    }

    #[tokio::test]
    async fn a_missing_table_is_not_bootstrapped_and_named() {
        let history = FakeHistory::default();
        history.drop_table();
        let err = deployer_settings(&history).await.unwrap_err();
        assert_eq!(err.error_type(), "NotBootstrapped");
        assert!(err.to_string().contains("aliasflow-history"), "{err}");
    }

    #[tokio::test]
    async fn other_failures_stay_aws_failures() {
        let history = FakeHistory::default();
        history.fail_next("deployer", 1, "ThrottlingException");
        let err = deployer_settings(&history).await.unwrap_err();
        assert_eq!(err.error_type(), "AwsTransient");
    }

    #[tokio::test]
    async fn a_bootstrapped_account_gives_its_record() {
        let history = FakeHistory::default();
        let record = DeployerRecord {
            bucket: "b".into(),
            placeholder_key: PLACEHOLDER_KEY.into(),
            engine: "local".into(),
            version: "test".into(),
            state_machines: Default::default(),
        };
        history.put_deployer(&record).await.unwrap();
        assert_eq!(deployer_settings(&history).await.unwrap(), record);
    }
}
