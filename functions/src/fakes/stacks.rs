//! [`FakeStacks`]: CloudFormation of one region in memory. It is not CloudFormation: it creates
//! no resources (except Lambda functions in a linked [`FakeFunctions`]), every create or update
//! completes at once, and outputs are computed by a few simple rules:
//!
//! - `{"Ref": X}`: the parameter's value if `X` is a parameter; the literal `FunctionName` if `X`
//!   is an `AWS::Lambda::Function` that has one; else a made-up physical id `<stack>-<X>`;
//! - `{"Fn::GetAtt": [X, A]}`: `<stack>-<X>-<A>`;
//! - `{"Fn::Sub": "..."}`: `${Name}` replaced by the `Ref` rule, `${AWS::StackName}` by the stack
//!   name, `${X.A}` by the `GetAtt` rule;
//! - a string is itself; anything else is its JSON text.
//!
//! What it checks as CloudFormation does: a template that is not JSON, parameters the template
//! does not declare or leaves without a value, creating a stack that exists, updating a stack
//! that does not exist or cannot be updated (`ROLLBACK_COMPLETE`), and an update that changes
//! nothing (answered `Ok(false)`, where moto carries it out).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use serde_json::Value;

use crate::error::AwsError;
use crate::fakes::FakeFunctions;
use crate::ports::{Parameter, StackState, Stacks, TemplateSource};

/// Reads the template behind a `TemplateURL` (the fake cannot reach S3).
type TemplateReader = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// CloudFormation of one region in memory. Operation names in counts are the AWS ones the
/// adapter calls: `DescribeStacks`, `CreateStack`, `UpdateStack`, `DeleteStack`,
/// `DescribeStackEvents`.
#[derive(Default)]
pub struct FakeStacks {
    state: Mutex<State>,
    functions: Option<Arc<FakeFunctions>>,
}

impl fmt::Debug for FakeStacks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeStacks").field("functions", &self.functions.is_some()).finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    stacks: BTreeMap<String, Stack>,
    /// The template and parameters of the latest create or update call per stack, including
    /// ones that failed or were refused: what the caller sent.
    sent: BTreeMap<String, (String, Vec<Parameter>)>,
    failing: BTreeSet<String>,
    throttle_every: u64,
    total_calls: u64,
    calls: BTreeMap<String, u64>,
    reader: Option<TemplateReader>,
}

#[derive(Debug, Clone)]
struct Stack {
    status: String,
    reason: Option<String>,
    /// What the stack runs now (a failed update rolls back to it).
    template: String,
    parameters: Vec<Parameter>,
    outputs: BTreeMap<String, String>,
    /// Functions the stack created in the linked fake Lambda.
    functions: BTreeSet<String>,
    /// The stack's tags.
    tags: BTreeMap<String, String>,
    /// Failure reasons, newest first.
    failures: Vec<String>,
}

fn error(operation: &str, stack: &str, code: &str, message: &str) -> AwsError {
    AwsError { message: message.to_owned(), ..AwsError::fake(operation, stack, code) }
}

fn validation(operation: &str, stack: &str, message: &str) -> AwsError {
    error(operation, stack, "ValidationError", message)
}

/// A template parsed, with the parameters resolved against it.
struct Parsed {
    template: Value,
    parameters: BTreeMap<String, String>,
}

impl Parsed {
    fn new(operation: &str, stack: &str, body: &str, given: &[Parameter]) -> Result<Self, AwsError> {
        let template: Value = serde_json::from_str(body)
            .map_err(|e| validation(operation, stack, &format!("Template format error: not JSON: {e}")))?;
        let declared = template.get("Parameters").and_then(Value::as_object).cloned().unwrap_or_default();
        let unknown: Vec<&str> = given.iter().map(|p| p.key.as_str()).filter(|k| !declared.contains_key(*k)).collect();
        if !unknown.is_empty() {
            return Err(validation(operation, stack, &format!("Parameters: {unknown:?} do not exist in the template")));
        }
        let mut parameters = BTreeMap::new();
        let mut missing = Vec::new();
        for (name, declaration) in &declared {
            let value = given.iter().rev().find(|p| p.key == *name).map(|p| p.value.clone());
            match value.or_else(|| declaration.get("Default").map(scalar)) {
                Some(value) => {
                    parameters.insert(name.clone(), value);
                }
                None => missing.push(name.as_str()),
            }
        }
        if !missing.is_empty() {
            return Err(validation(operation, stack, &format!("Parameters: {missing:?} must have values")));
        }
        Ok(Self { template, parameters })
    }

    fn resources(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.template.get("Resources").and_then(Value::as_object).into_iter().flatten()
    }

    /// Literal `FunctionName`s of the template's `AWS::Lambda::Function` resources, by logical id.
    fn functions(&self) -> BTreeMap<&str, &str> {
        self.resources()
            .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some("AWS::Lambda::Function"))
            .filter_map(|(id, r)| Some((id.as_str(), r.pointer("/Properties/FunctionName")?.as_str()?)))
            .collect()
    }

    fn outputs(&self, stack: &str) -> BTreeMap<String, String> {
        let functions = self.functions();
        let reference = |name: &str| -> String {
            if name == "AWS::StackName" {
                return stack.to_owned();
            }
            if let Some(value) = self.parameters.get(name) {
                return value.clone();
            }
            if let Some(function) = functions.get(name) {
                return (*function).to_owned();
            }
            format!("{stack}-{name}")
        };
        let value = |v: &Value| -> String {
            if let Some(name) = v.get("Ref").and_then(Value::as_str) {
                return reference(name);
            }
            if let Some([id, attribute]) = v.get("Fn::GetAtt").and_then(Value::as_array).map(Vec::as_slice) {
                return format!("{stack}-{}-{}", scalar(id), scalar(attribute));
            }
            if let Some(text) = v.get("Fn::Sub").and_then(Value::as_str) {
                return substitute(text, |name| match name.split_once('.') {
                    Some((id, attribute)) => format!("{stack}-{id}-{attribute}"),
                    None => reference(name),
                });
            }
            scalar(v)
        };
        let declared = self.template.get("Outputs").and_then(Value::as_object).into_iter().flatten();
        declared.filter_map(|(key, output)| Some((key.clone(), value(output.get("Value")?)))).collect()
    }

    /// The `Tags` (CloudFormation's Key/Value list) of each function [`functions`](Self::functions)
    /// names, by function name: what the stack applies to the function.
    fn function_tags(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        let tagged = self.resources().filter_map(|(_, r)| {
            let name = r.pointer("/Properties/FunctionName")?.as_str()?;
            let list = r.pointer("/Properties/Tags").and_then(Value::as_array).cloned().unwrap_or_default();
            let tags = list
                .iter()
                .filter_map(|tag| Some((scalar(tag.get("Key")?), scalar(tag.get("Value")?))))
                .collect::<BTreeMap<_, _>>();
            Some((name.to_owned(), tags))
        });
        tagged.collect()
    }

    /// The logical id the fake blames for an injected failure.
    fn first_resource(&self) -> String {
        self.resources().next().map_or_else(|| "Resources".to_owned(), |(id, _)| id.clone())
    }
}

/// A string as itself, anything else as its JSON text.
fn scalar(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_owned)
}

/// Replaces every `${name}` in `text` by `resolve(name)`; `${!x}` is CloudFormation's escape.
fn substitute(text: &str, resolve: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = &after[..end];
        match name.strip_prefix('!') {
            Some(literal) => {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            }
            None => out.push_str(&resolve(name)),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

impl State {
    /// Counts one call and applies the throttling knob, as AWS would refuse it before doing
    /// anything.
    fn enter(&mut self, operation: &str, stack: &str) -> Result<(), AwsError> {
        self.total_calls += 1;
        *self.calls.entry(operation.to_owned()).or_default() += 1;
        if self.throttle_every > 0 && self.total_calls.is_multiple_of(self.throttle_every) {
            // CloudFormation's throttling code; `AwsError::fake` knows only Lambda's as transient.
            let throttled = error(operation, stack, "Throttling", "Rate exceeded (injected by a fake)");
            return Err(AwsError { transient: true, ..throttled });
        }
        Ok(())
    }

    /// The template text of `source`.
    fn body(&self, operation: &str, stack: &str, source: &TemplateSource) -> Result<String, AwsError> {
        match source {
            TemplateSource::Body(body) => Ok(body.clone()),
            TemplateSource::Url(url) => self.reader.as_ref().and_then(|read| read(url)).ok_or_else(|| {
                let message = format!("fake cannot read TemplateURL {url}: give it FakeStacks::read_templates_with");
                validation(operation, stack, &message)
            }),
        }
    }
}

impl FakeStacks {
    /// Links the region's fake Lambda: a stack's `AWS::Lambda::Function` resources with a literal
    /// `FunctionName` are created there (with placeholder code) and deleted with the stack.
    #[must_use]
    pub fn with_functions(mut self, functions: Arc<FakeFunctions>) -> Self {
        self.functions = Some(functions);
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How to read a template given as `TemplateURL` (e.g. from a fake artifact bucket); without
    /// it such a create or update fails with a `ValidationError` saying so.
    pub fn read_templates_with(&self, reader: impl Fn(&str) -> Option<String> + Send + Sync + 'static) {
        self.lock().reader = Some(Arc::new(reader));
    }

    /// Makes the next create or update of `stack` fail: a create ends in `ROLLBACK_COMPLETE`, an
    /// update in `UPDATE_ROLLBACK_COMPLETE` (the stack keeps its previous template), each with a
    /// failure reason on the template's first resource.
    pub fn fail_next(&self, stack: &str) {
        self.lock().failing.insert(stack.to_owned());
    }

    /// Throttles every `n`-th call with a transient `Throttling` error; 0 stops throttling.
    pub fn throttle_every(&self, n: u64) {
        self.lock().throttle_every = n;
    }

    /// How many calls of `operation` were made, throttled and refused ones included.
    pub fn calls(&self, operation: &str) -> u64 {
        self.lock().calls.get(operation).copied().unwrap_or_default()
    }

    /// Calls per operation.
    pub fn call_counts(&self) -> BTreeMap<String, u64> {
        self.lock().calls.clone()
    }

    /// Calls of all operations.
    pub fn total_calls(&self) -> u64 {
        self.lock().total_calls
    }

    /// The template last sent to create or update `stack` (also when that failed).
    pub fn last_template(&self, stack: &str) -> Option<String> {
        self.lock().sent.get(stack).map(|(template, _)| template.clone())
    }

    /// The parameters last sent to create or update `stack` (also when that failed).
    pub fn last_parameters(&self, stack: &str) -> Option<Vec<Parameter>> {
        self.lock().sent.get(stack).map(|(_, parameters)| parameters.clone())
    }

    /// Names of the stacks that exist, sorted.
    pub fn stack_names(&self) -> Vec<String> {
        self.lock().stacks.keys().cloned().collect()
    }

    /// Creates and deletes functions in the linked fake Lambda so it holds `now` instead of
    /// `before`, each of `now` with the tags the template gives it.
    fn sync_functions(&self, before: &BTreeSet<String>, now: &BTreeMap<String, BTreeMap<String, String>>) {
        let Some(functions) = &self.functions else {
            return;
        };
        for gone in before.iter().filter(|f| !now.contains_key(*f)) {
            functions.delete_function(gone);
        }
        for (function, tags) in now {
            if !before.contains(function) {
                functions.create_function(function);
            }
            functions.set_tags(function, tags.clone());
        }
    }
}

#[async_trait]
impl Stacks for FakeStacks {
    async fn describe(&self, stack: &str) -> Result<Option<StackState>, AwsError> {
        let mut state = self.lock();
        state.enter("DescribeStacks", stack)?;
        Ok(state.stacks.get(stack).map(|s| StackState {
            status: s.status.clone(),
            reason: s.reason.clone(),
            outputs: s.outputs.clone(),
            tags: s.tags.clone(),
        }))
    }

    async fn create(
        &self,
        stack: &str,
        template: &TemplateSource,
        parameters: &[Parameter],
        tags: &[(String, String)],
    ) -> Result<(), AwsError> {
        let operation = "CreateStack";
        let functions = {
            let mut state = self.lock();
            state.enter(operation, stack)?;
            let body = state.body(operation, stack, template)?;
            state.sent.insert(stack.to_owned(), (body.clone(), parameters.to_vec()));
            if state.stacks.contains_key(stack) {
                return Err(error(
                    operation,
                    stack,
                    "AlreadyExistsException",
                    &format!("Stack [{stack}] already exists"),
                ));
            }
            let parsed = Parsed::new(operation, stack, &body, parameters)?;
            let mut created = Stack {
                status: "CREATE_COMPLETE".to_owned(),
                reason: None,
                template: body,
                parameters: parameters.to_vec(),
                outputs: BTreeMap::new(),
                functions: BTreeSet::new(),
                tags: tags.iter().cloned().collect(),
                failures: Vec::new(),
            };
            let mut functions = BTreeMap::new();
            if state.failing.remove(stack) {
                let resource = parsed.first_resource();
                created.status = "ROLLBACK_COMPLETE".to_owned();
                created.reason = Some(format!("The following resource(s) failed to create: [{resource}]. "));
                created.failures.insert(0, format!("{resource}: injected failure (FakeStacks::fail_next)"));
            } else {
                created.outputs = parsed.outputs(stack);
                created.functions = parsed.functions().values().map(|f| (*f).to_owned()).collect();
                functions = parsed.function_tags();
            }
            state.stacks.insert(stack.to_owned(), created);
            functions
        };
        self.sync_functions(&BTreeSet::new(), &functions);
        Ok(())
    }

    async fn update(
        &self,
        stack: &str,
        template: &TemplateSource,
        parameters: &[Parameter],
        tags: &[(String, String)],
    ) -> Result<bool, AwsError> {
        let operation = "UpdateStack";
        let (before, now) = {
            let mut state = self.lock();
            state.enter(operation, stack)?;
            let body = state.body(operation, stack, template)?;
            state.sent.insert(stack.to_owned(), (body.clone(), parameters.to_vec()));
            let fail = state.failing.contains(stack);
            let Some(current) = state.stacks.get_mut(stack) else {
                return Err(validation(operation, stack, &format!("Stack [{stack}] does not exist")));
            };
            let updatable = ["CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE"];
            if !updatable.contains(&current.status.as_str()) {
                let message = format!("Stack:{stack} is in {} state and can not be updated.", current.status);
                return Err(validation(operation, stack, &message));
            }
            let parsed = Parsed::new(operation, stack, &body, parameters)?;
            let tags: BTreeMap<String, String> = tags.iter().cloned().collect();
            if current.template == body && current.parameters == parameters && current.tags == tags {
                // CloudFormation's "No updates are to be performed."
                return Ok(false);
            }
            let before = current.functions.clone();
            // A failed update rolls back: its functions stay as they were.
            let mut now = None;
            if fail {
                let resource = parsed.first_resource();
                current.status = "UPDATE_ROLLBACK_COMPLETE".to_owned();
                current.reason = Some(format!("The following resource(s) failed to update: [{resource}]. "));
                current.failures.insert(0, format!("{resource}: injected failure (FakeStacks::fail_next)"));
            } else {
                current.status = "UPDATE_COMPLETE".to_owned();
                current.reason = None;
                current.outputs = parsed.outputs(stack);
                current.functions = parsed.functions().values().map(|f| (*f).to_owned()).collect();
                current.template = body;
                current.parameters = parameters.to_vec();
                current.tags = tags;
                now = Some(parsed.function_tags());
            }
            if fail {
                state.failing.remove(stack);
            }
            (before, now)
        };
        if let Some(now) = now {
            self.sync_functions(&before, &now);
        }
        Ok(true)
    }

    async fn delete(&self, stack: &str) -> Result<(), AwsError> {
        let removed = {
            let mut state = self.lock();
            state.enter("DeleteStack", stack)?;
            state.stacks.remove(stack)
        };
        if let Some(removed) = removed {
            self.sync_functions(&removed.functions, &BTreeMap::new());
        }
        Ok(())
    }

    async fn failure_reasons(&self, stack: &str) -> Result<Vec<String>, AwsError> {
        let mut state = self.lock();
        state.enter("DescribeStackEvents", stack)?;
        Ok(state.stacks.get(stack).map(|s| s.failures.clone()).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Functions;

    fn body(value: &Value) -> TemplateSource {
        TemplateSource::Body(value.to_string())
    }

    fn template() -> Value {
        serde_json::json!({
            "Parameters": { "Stage": { "Type": "String" }, "Size": { "Type": "Number", "Default": 3 } },
            "Resources": {
                "Orders": { "Type": "AWS::DynamoDB::Table" },
                "Thumb": { "Type": "AWS::Lambda::Function", "Properties": { "FunctionName": "shop-dev-thumb" } }
            },
            "Outputs": {
                "StageName": { "Value": { "Ref": "Stage" } },
                "Size": { "Value": { "Ref": "Size" } },
                "OrdersTable": { "Value": { "Ref": "Orders" } },
                "ThumbName": { "Value": { "Ref": "Thumb" } },
                "OrdersArn": { "Value": { "Fn::GetAtt": ["Orders", "Arn"] } },
                "Url": { "Value": { "Fn::Sub": "https://${Stage}.example/${AWS::StackName}/${!Literal}" } },
                "Plain": { "Value": "text" }
            }
        })
    }

    fn stage(value: &str) -> Vec<Parameter> {
        vec![Parameter { key: "Stage".into(), value: value.into() }]
    }

    #[tokio::test]
    async fn a_created_stack_is_complete_at_once_with_outputs_by_simple_rules() {
        let fake = FakeStacks::default();
        assert_eq!(fake.describe("shop-dev").await.unwrap(), None);
        fake.create("shop-dev", &body(&template()), &stage("dev"), &[]).await.unwrap();
        let state = fake.describe("shop-dev").await.unwrap().unwrap();
        assert!(state.succeeded());
        let outputs: BTreeMap<&str, &str> = state.outputs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            outputs,
            BTreeMap::from([
                ("StageName", "dev"),
                ("Size", "3"),
                ("OrdersTable", "shop-dev-Orders"),
                ("ThumbName", "shop-dev-thumb"),
                ("OrdersArn", "shop-dev-Orders-Arn"),
                ("Url", "https://dev.example/shop-dev/${Literal}"),
                ("Plain", "text"),
            ])
        );
        assert_eq!(fake.last_parameters("shop-dev").unwrap(), stage("dev"));
    }

    #[tokio::test]
    async fn parameters_the_template_does_not_declare_or_leaves_empty_are_refused() {
        let fake = FakeStacks::default();
        let err = fake.create("shop-dev", &body(&template()), &[], &[]).await.unwrap_err();
        assert_eq!(err.code, "ValidationError");
        assert!(err.message.contains("Stage"), "{err}");
        let mut extra = stage("dev");
        extra.push(Parameter { key: "Nope".into(), value: "x".into() });
        let err = fake.create("shop-dev", &body(&template()), &extra, &[]).await.unwrap_err();
        assert!(err.message.contains("Nope"), "{err}");
        assert_eq!(fake.describe("shop-dev").await.unwrap(), None);
    }

    #[tokio::test]
    async fn creating_an_existing_stack_or_updating_a_missing_one_is_refused() {
        let fake = FakeStacks::default();
        let err = fake.update("shop", &body(&serde_json::json!({})), &[], &[]).await.unwrap_err();
        assert_eq!(err.code, "ValidationError");
        fake.create("shop", &body(&serde_json::json!({})), &[], &[]).await.unwrap();
        let err = fake.create("shop", &body(&serde_json::json!({})), &[], &[]).await.unwrap_err();
        assert_eq!(err.code, "AlreadyExistsException");
    }

    #[tokio::test]
    async fn an_update_that_changes_nothing_reports_false_and_a_change_true() {
        let fake = FakeStacks::default();
        fake.create("shop-dev", &body(&template()), &stage("dev"), &[]).await.unwrap();
        assert!(!fake.update("shop-dev", &body(&template()), &stage("dev"), &[]).await.unwrap());
        assert!(fake.update("shop-dev", &body(&template()), &stage("qa"), &[]).await.unwrap());
        let state = fake.describe("shop-dev").await.unwrap().unwrap();
        assert_eq!(state.status, "UPDATE_COMPLETE");
        assert_eq!(state.outputs["StageName"], "qa");
        assert_eq!(fake.calls("UpdateStack"), 2);
    }

    #[tokio::test]
    async fn a_failed_update_rolls_back_and_names_the_resource() {
        let fake = FakeStacks::default();
        fake.create("shop-dev", &body(&template()), &stage("dev"), &[]).await.unwrap();
        fake.fail_next("shop-dev");
        assert!(fake.update("shop-dev", &body(&template()), &stage("qa"), &[]).await.unwrap());
        let state = fake.describe("shop-dev").await.unwrap().unwrap();
        assert_eq!(state.status, "UPDATE_ROLLBACK_COMPLETE");
        assert_eq!(state.outputs["StageName"], "dev", "the previous template still runs");
        assert_eq!(
            fake.failure_reasons("shop-dev").await.unwrap(),
            ["Orders: injected failure (FakeStacks::fail_next)"]
        );
        assert_eq!(fake.last_parameters("shop-dev").unwrap(), stage("qa"), "what was sent is kept");
        assert!(
            fake.update("shop-dev", &body(&template()), &stage("qa"), &[]).await.unwrap(),
            "only the next one fails"
        );
        assert_eq!(fake.describe("shop-dev").await.unwrap().unwrap().status, "UPDATE_COMPLETE");
    }

    #[tokio::test]
    async fn a_failed_create_ends_in_rollback_complete_which_cannot_be_updated() {
        let fake = FakeStacks::default();
        fake.fail_next("shop-dev");
        fake.create("shop-dev", &body(&template()), &stage("dev"), &[]).await.unwrap();
        let state = fake.describe("shop-dev").await.unwrap().unwrap();
        assert_eq!(state.status, "ROLLBACK_COMPLETE");
        assert!(!state.succeeded());
        let err = fake.update("shop-dev", &body(&template()), &stage("dev"), &[]).await.unwrap_err();
        assert_eq!(err.code, "ValidationError");
        fake.delete("shop-dev").await.unwrap();
        fake.delete("shop-dev").await.unwrap();
        assert_eq!(fake.describe("shop-dev").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_linked_fake_lambda_gets_the_functions_a_stack_declares_until_it_is_deleted() {
        let lambda = Arc::new(FakeFunctions::default());
        let fake = FakeStacks::default().with_functions(lambda.clone());
        fake.create("shop-dev", &body(&template()), &stage("dev"), &[]).await.unwrap();
        assert!(lambda.latest("shop-dev-thumb").await.unwrap().is_some());
        let mut without = template();
        without["Resources"].as_object_mut().unwrap().remove("Thumb");
        without["Outputs"].as_object_mut().unwrap().remove("ThumbName");
        fake.update("shop-dev", &body(&without), &stage("dev"), &[]).await.unwrap();
        assert!(!lambda.exists("shop-dev-thumb"), "a function removed from the template is deleted");
        fake.update("shop-dev", &body(&template()), &stage("dev"), &[]).await.unwrap();
        assert!(lambda.exists("shop-dev-thumb"));
        fake.delete("shop-dev").await.unwrap();
        assert!(!lambda.exists("shop-dev-thumb"));
    }

    #[tokio::test]
    async fn a_template_url_needs_a_reader() {
        let fake = FakeStacks::default();
        let url = TemplateSource::Url("https://bucket.s3.amazonaws.com/t.json".into());
        let err = fake.create("shop", &url, &[], &[]).await.unwrap_err();
        assert!(err.message.contains("read_templates_with"), "{err}");
        fake.read_templates_with(|url| {
            url.ends_with("t.json").then(|| r#"{"Outputs":{"A":{"Value":"a"}}}"#.to_owned())
        });
        fake.create("shop", &url, &[], &[]).await.unwrap();
        assert_eq!(fake.describe("shop").await.unwrap().unwrap().outputs["A"], "a");
        assert_eq!(fake.last_template("shop").unwrap(), r#"{"Outputs":{"A":{"Value":"a"}}}"#);
    }

    #[tokio::test]
    async fn every_nth_call_is_throttled_transiently() {
        let fake = FakeStacks::default();
        fake.throttle_every(2);
        assert!(fake.describe("shop").await.is_ok());
        let err = fake.describe("shop").await.unwrap_err();
        assert_eq!((err.code.as_str(), err.transient), ("Throttling", true));
        assert_eq!(fake.calls("DescribeStacks"), 2);
    }
}
