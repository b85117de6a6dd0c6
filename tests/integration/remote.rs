//! `--engine aws` against moto: `bootstrap --engine aws` installs the whole `infra/deployer.json`
//! (step functions, state machines, schedule, CI role) and upgrades it in place; operations
//! start an execution of the installed machine with the documented input and follow it.
//!
//! What moto cannot show: it runs no Rust Lambda (the handler zips here are stand-ins, and each
//! handler's event handling is tested in-process in `functions::lambda`), it applies no
//! `DefinitionSubstitutions` (the test reads them from the template CloudFormation holds), and
//! its executions never run their states: each reports the same canned history, which ends in
//! `ExecutionSucceeded`. So these tests check what the CLI sends and how it follows, not what
//! the machines do; the local engine's tests run the same definitions against moto.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use functions::deployer::{placeholder_zip, STACK};
use functions::ports::History;
use functions::steps;
use functions::steps::plan::Request;
use serde_json::Value;

use crate::support::moto::REGION;
use crate::support::world::{calls_of, calls_to, World};

/// Stand-in handler zips, `<dir>/<binary>/bootstrap.zip`, as `scripts/package-lambdas.sh`
/// leaves them; `revision` changes their bytes.
fn handlers(revision: &str) -> tempfile_dir::Dir {
    let dir = tempfile_dir::Dir::new();
    for step in steps::NAMES {
        let folder = dir.path().join(steps::binary(step));
        std::fs::create_dir_all(&folder).expect("a handler folder");
        let mut zip = placeholder_zip().expect("a zip");
        zip.extend_from_slice(revision.as_bytes());
        std::fs::write(folder.join("bootstrap.zip"), zip).expect("a handler zip");
    }
    dir
}

/// A folder removed when dropped.
mod tempfile_dir {
    use std::path::{Path, PathBuf};

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new() -> Self {
            let path = std::env::temp_dir().join(format!("aliasflow-handlers-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&path).expect("a temporary folder");
            Self(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

async fn bootstrap_aws(world: &World, handlers: &Path, parameters: &[&str]) -> Value {
    let handlers = handlers.to_string_lossy().into_owned();
    let mut args = vec!["bootstrap", "--engine", "aws", "--handlers", handlers.as_str()];
    for parameter in parameters {
        args.extend(["--parameter", parameter]);
    }
    world.ok(&args).await
}

async fn stack_parameters(world: &World) -> BTreeMap<String, String> {
    let described =
        world.account.sdk.cloudformation(REGION).describe_stacks().stack_name(STACK).send().await.expect("the stack");
    let parameters = described.stacks()[0].parameters().iter();
    parameters
        .filter_map(|p| Some((p.parameter_key()?.to_owned(), p.parameter_value().unwrap_or("").to_owned())))
        .collect()
}

/// `${Name}` placeholders of a definition.
fn placeholders(text: &str) -> BTreeSet<String> {
    text.split("${").skip(1).filter_map(|rest| rest.split_once('}')).map(|(name, _)| name.to_owned()).collect()
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

#[tokio::test]
async fn bootstrap_engine_aws_installs_every_step_function_and_state_machine_and_upgrades_in_place() {
    let world = World::unbootstrapped().await;
    let zips = handlers("one");
    let reply = bootstrap_aws(&world, zips.path(), &["GitHubRepository=org/shop"]).await;
    assert_eq!(reply["engine"], "aws");
    let prefix = reply["handler_prefix"].as_str().unwrap().to_owned();
    assert!(prefix.starts_with("aliasflow/handlers/"), "{prefix}");

    // One function per step, with its code from the uploaded zips.
    let lambda = world.lambda();
    for step in steps::NAMES {
        let function = lambda.get_function().function_name(format!("aliasflow-{step}")).send().await.unwrap();
        let configuration = function.configuration().unwrap();
        assert_eq!(
            configuration.runtime().map(aws_sdk_lambda::types::Runtime::as_str),
            Some("provided.al2023"),
            "{step}"
        );
        assert_eq!(configuration.handler(), Some("bootstrap"), "{step}");
    }

    // One state machine per definition, each Task bound to its step's function.
    let template = world.account.sdk.cloudformation(REGION).get_template().stack_name(STACK).send().await.unwrap();
    let template: Value = serde_json::from_str(template.template_body().unwrap()).unwrap();
    let machines = reply["state_machines"].as_object().unwrap();
    let sfn = world.account.sdk.sfn(REGION);
    for entry in std::fs::read_dir(repository().join("statemachines")).unwrap() {
        let path = entry.unwrap().path();
        let Some(operation) = path.file_name().unwrap().to_str().unwrap().strip_suffix(".asl.json") else {
            continue;
        };
        let arn = machines[operation].as_str().unwrap_or_else(|| panic!("no state machine for {operation}"));
        let described = sfn.describe_state_machine().state_machine_arn(arn).send().await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let installed: Value = serde_json::from_str(described.definition()).unwrap();
        assert_eq!(installed, serde_json::from_str::<Value>(&text).unwrap(), "{operation}");
        let id = format!("{}{}StateMachine", &operation[..1].to_uppercase(), &operation[1..]);
        let bound = template["Resources"][&id]["Properties"]["DefinitionSubstitutions"].as_object().unwrap();
        assert_eq!(bound.keys().cloned().collect::<BTreeSet<_>>(), placeholders(&text), "{operation}");
        for (placeholder, value) in bound {
            let step = placeholder.strip_suffix("FunctionArn").unwrap();
            assert_eq!(value["Fn::GetAtt"][0], format!("{step}Function"), "{operation}: {placeholder}");
        }
    }
    assert!(reply["outputs"]["CiRoleArn"].is_string(), "GitHubRepository makes the CI role: {reply}");
    let record = world.history().deployer().await.unwrap().unwrap();
    assert_eq!(record.engine, "aws");
    assert_eq!(record.state_machines.len(), machines.len());

    // The same handlers again: the same prefix; the repository parameter keeps its value.
    let again = bootstrap_aws(&world, zips.path(), &[]).await;
    assert_eq!(again["handler_prefix"], prefix.as_str());
    assert_eq!(stack_parameters(&world).await["GitHubRepository"], "org/shop");

    // New handlers: a new prefix, which is what updates the functions' code.
    let newer = handlers("two");
    let upgraded = bootstrap_aws(&world, newer.path(), &[]).await;
    assert_ne!(upgraded["handler_prefix"], prefix.as_str());
    assert_eq!(stack_parameters(&world).await["HandlerCodePrefix"], upgraded["handler_prefix"].as_str().unwrap());
}

#[tokio::test]
async fn bootstrap_engine_aws_without_the_handler_zips_or_with_an_unknown_parameter_changes_nothing() {
    let world = World::unbootstrapped().await;
    let app = world.app();
    let err = world.run_with(&app, &["bootstrap", "--engine", "aws", "--handlers", "/nonexistent"]).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("/nonexistent/plan/bootstrap.zip"), "{message}");
    assert!(message.contains("scripts/package-lambdas.sh"), "{message}");
    assert_eq!(app.calls.by_service().values().sum::<u64>(), 0, "refused before any AWS call");

    let zips = handlers("one");
    let dir = zips.path().to_string_lossy().into_owned();
    let args = ["bootstrap", "--engine", "aws", "--handlers", &dir, "--parameter", "GitHubRepo=org/shop"];
    let message = world.run_with(&app, &args).await.unwrap_err().to_string();
    assert!(message.contains("GitHubRepo is not a parameter") && message.contains("GitHubRepository"), "{message}");
    assert_eq!(calls_to(&app, "CloudFormation"), 0, "{message}");
}

/// `input` valid against `#/$defs/<operation>` of statemachines/input.schema.json, by the
/// `jsonschema` package `scripts/setup-local-aws.sh` installs: the documented schema, checked by
/// a validator that is not aliasflow's.
fn assert_valid_input(input: &Value, operation: &str) {
    let script = "import json, sys, jsonschema\n\
        schema = json.load(open(sys.argv[1]))\n\
        rules = dict(schema, **{'$ref': '#/$defs/' + sys.argv[2]})\n\
        errors = [e.message for e in jsonschema.Draft202012Validator(rules).iter_errors(json.loads(sys.argv[3]))]\n\
        print('; '.join(errors))\n\
        sys.exit(1 if errors else 0)";
    let output = Command::new(repository().join(".venv/bin/python"))
        .args(["-c", script])
        .arg(repository().join("statemachines/input.schema.json"))
        .arg(operation)
        .arg(input.to_string())
        .output()
        .expect("python from .venv (bash scripts/setup-local-aws.sh)");
    assert!(
        output.status.success(),
        "{operation} input {input} is not valid: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The input of the newest execution of `operation`'s machine.
async fn last_input(world: &World, machines: &Value, operation: &str) -> Value {
    let sfn = world.account.sdk.sfn(REGION);
    let machine = machines[operation].as_str().expect("the machine's ARN");
    let listed = sfn.list_executions().state_machine_arn(machine).send().await.expect("the executions");
    let newest = listed.executions().iter().max_by_key(|e| *e.start_date()).expect("an execution");
    assert!(newest.name().starts_with(&format!("{operation}-")), "{}", newest.name());
    let described = sfn.describe_execution().execution_arn(newest.execution_arn()).send().await.expect("the execution");
    serde_json::from_str(described.input().unwrap_or_default()).expect("a JSON input")
}

#[tokio::test]
async fn engine_aws_starts_the_installed_machine_with_the_documented_input_and_follows_it_to_its_end() {
    let world = World::unbootstrapped().await;
    let zips = handlers("one");
    let installed = bootstrap_aws(&world, zips.path(), &[]).await;
    let machines = &installed["state_machines"];

    let app = world.app();
    world.run_with(&app, &["deploy", "--engine", "aws", "--stage", "dev"]).await.unwrap();
    assert_eq!(calls_of(&app, "SFN", "StartExecution"), 1);
    assert!(calls_of(&app, "SFN", "GetExecutionHistory") >= 1);
    let input = last_input(&world, machines, "deploy").await;
    assert_valid_input(&input, "deploy");
    let request: Request = serde_json::from_value(input.clone()).unwrap();
    assert_eq!(request.stage.as_deref(), Some("dev"));

    // What the input names is in the bucket: the manifest (also as the service's latest, the
    // key a console user types) and every function's code.
    let bucket = world.history().deployer().await.unwrap().unwrap().bucket;
    let s3 = world.account.sdk.s3(REGION);
    let key = request.manifest_key.clone().unwrap();
    for key in [key.as_str(), "shop/manifests/latest.json"] {
        let object = s3.get_object().bucket(&bucket).key(key).send().await.unwrap();
        let manifest: Value = serde_json::from_slice(&object.body.collect().await.unwrap().into_bytes()).unwrap();
        assert_eq!(manifest["service"], "shop", "{key}");
    }
    assert_eq!(request.artifacts.len(), 3, "{input}");
    for artifact in request.artifacts.values() {
        s3.head_object().bucket(&bucket).key(&artifact.key).send().await.unwrap();
    }

    world.ok(&["rollback", "--engine", "aws", "--stage", "dev", "--to", "1"]).await;
    assert_valid_input(&last_input(&world, machines, "rollback").await, "rollback");
    world.ok(&["reset", "--engine", "aws", "--stage", "dev", "--from", "prod"]).await;
    assert_valid_input(&last_input(&world, machines, "reset").await, "reset");
    world.ok(&["cleanup", "--engine", "aws"]).await;
    assert_valid_input(&last_input(&world, machines, "cleanup").await, "cleanup");
}

#[tokio::test]
async fn the_schema_check_of_these_tests_refuses_a_typo() {
    let input = serde_json::json!({ "stgae": "prod", "manifest_key": "shop/manifests/latest.json" });
    let refused = std::panic::catch_unwind(|| assert_valid_input(&input, "rollback"));
    assert!(refused.is_err(), "the validator accepted a typo");
}

#[tokio::test]
async fn engine_aws_on_a_deployer_installed_for_the_local_engine_says_to_bootstrap_and_starts_nothing() {
    let world = World::new().await;
    let app = world.app();
    let err = world.run_with(&app, &["deploy", "--engine", "aws", "--stage", "dev"]).await.unwrap_err();
    assert_eq!(err.error_type(), "NotBootstrapped");
    assert!(err.to_string().contains("aliasflow bootstrap --engine aws"), "{err}");
    assert_eq!(calls_to(&app, "SFN"), 0);
    assert_eq!(calls_to(&app, "S3"), 0, "nothing uploaded");
}
