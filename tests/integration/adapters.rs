//! The Lambda and CloudFormation adapters (`LambdaApi`, `CloudFormationApi`) against moto.
//!
//! What moto cannot show is tested on the fakes (`functions/src/fakes/`), and each test here says
//! where moto differs from AWS: moto reports no `RevisionId` and does not check `PublishVersion`'s
//! `CodeSha256`/`RevisionId` guard, ignores `Architectures` on `UpdateFunctionCode` and
//! `LoggingConfig` on `UpdateFunctionConfiguration`, never reports an update `InProgress`,
//! accepts a duplicate permission statement id, records no resource events in CloudFormation (so
//! no failure reasons), and carries out an update that changes nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_lambda::types::{FunctionCode, Runtime};
use functions::aws::{CloudFormationApi, LambdaApi};
use functions::domain::config::FunctionConfig;
use functions::ports::{AliasTarget, Functions, Parameter, Permission, Stacks, TemplateSource, UpdateStatus};
use serde_json::json;

use crate::support::moto::{account, Account, REGION};

const FUNCTION: &str = "shop-api";

/// A valid zip archive without entries whose comment is `comment`: distinct bytes, so distinct
/// code, without a zip library.
pub(crate) fn zip(comment: &str) -> Vec<u8> {
    // End of central directory: signature, then 16 bytes of zero counts and offsets.
    let mut bytes = vec![0x50, 0x4b, 0x05, 0x06];
    bytes.extend_from_slice(&[0; 16]);
    let length = u16::try_from(comment.len()).expect("a short comment");
    bytes.extend_from_slice(&length.to_le_bytes());
    bytes.extend_from_slice(comment.as_bytes());
    bytes
}

/// One account with an execution role, a bucket (bucket names are global in moto too, hence the
/// account id in it) holding `a.zip`, `b.zip` and `c.zip`, and
/// function [`FUNCTION`] created from `a.zip`.
struct Fixture {
    lambda: LambdaApi,
    client: aws_sdk_lambda::Client,
    bucket: String,
}

async fn fixture() -> Fixture {
    let account = account().await;
    let role = create_role(&account).await;
    let bucket = format!("code-{}", account.id);
    let s3 = account.sdk.s3(REGION);
    s3.create_bucket().bucket(&bucket).send().await.expect("bucket created");
    for name in ["a", "b", "c"] {
        let body = aws_sdk_s3::primitives::ByteStream::from(zip(name));
        s3.put_object().bucket(&bucket).key(format!("{name}.zip")).body(body).send().await.expect("zip uploaded");
    }
    let client = account.sdk.lambda(REGION);
    client
        .create_function()
        .function_name(FUNCTION)
        .runtime(Runtime::Providedal2023)
        .role(role)
        .handler("bootstrap")
        .code(FunctionCode::builder().s3_bucket(&bucket).s3_key("a.zip").build())
        .send()
        .await
        .expect("function created");
    // Polls (if any) need not take a second each here.
    let lambda = LambdaApi::new(client.clone()).with_poll_interval(Duration::from_millis(10));
    Fixture { lambda, client, bucket }
}

/// moto's CreateFunction needs the execution role to exist.
pub(crate) async fn create_role(account: &Account) -> String {
    let trust = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": "lambda.amazonaws.com" },
            "Action": "sts:AssumeRole"
        }]
    });
    let created = account
        .sdk
        .iam()
        .create_role()
        .role_name("shop-fns")
        .assume_role_policy_document(trust.to_string())
        .send()
        .await
        .expect("role created");
    created.role().expect("a role").arn().to_owned()
}

fn config(environment: &[(&str, &str)]) -> FunctionConfig {
    FunctionConfig {
        runtime: "provided.al2023".into(),
        architecture: "x86_64".into(),
        handler: "bootstrap".into(),
        memory: 256,
        timeout: 10,
        description: Some("the api".into()),
        environment: environment.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        log_group: None,
    }
}

#[tokio::test]
async fn updated_code_is_published_with_its_sha_and_revision_as_guard() {
    let Fixture { lambda, bucket, .. } = fixture().await;
    let before = lambda.latest(FUNCTION).await.unwrap().expect("the function exists");
    let updated = lambda.update_code(FUNCTION, &bucket, "b.zip", "arm64").await.unwrap();
    assert_eq!(updated.status, UpdateStatus::Successful);
    assert_ne!(updated.code_sha256, before.code_sha256, "b.zip is other code than a.zip");
    assert_eq!(lambda.latest(FUNCTION).await.unwrap().unwrap().code_sha256, updated.code_sha256);

    let version = lambda.publish(FUNCTION, &updated.code_sha256, &updated.revision_id, "deploy 1").await.unwrap();
    assert_eq!(version.version, "1");
    assert_eq!(version.code_sha256, updated.code_sha256);
    // AWS answers version 1 again. moto clears its "changed" flag only when it publishes over an
    // existing version, so its second publish is a version 2 and only the third repeats it.
    let again = lambda.publish(FUNCTION, &updated.code_sha256, &updated.revision_id, "deploy 2").await.unwrap();
    assert!(["1", "2"].contains(&again.version.as_str()), "{again:?}");
    let third = lambda.publish(FUNCTION, &updated.code_sha256, &updated.revision_id, "deploy 3").await.unwrap();
    assert_eq!(third, again, "nothing changed since the last publish");
}

#[tokio::test]
async fn a_publish_guarded_with_a_stale_revision_is_refused_by_aws_but_not_by_moto() {
    // moto reports no RevisionId and checks neither it nor CodeSha256: the refusal itself is
    // tested on FakeFunctions (publish_is_refused_when_code_or_revision_no_longer_match).
    let Fixture { lambda, bucket, .. } = fixture().await;
    let updated = lambda.update_code(FUNCTION, &bucket, "b.zip", "x86_64").await.unwrap();
    assert_eq!(updated.revision_id, "", "moto has started to report RevisionId: test the guard here");
    match lambda.publish(FUNCTION, &updated.code_sha256, "00000000-stale", "").await {
        Ok(version) => assert_eq!(version.version, "1"),
        Err(err) => assert_eq!(err.code, "PreconditionFailedException", "{err}"),
    }
}

#[tokio::test]
async fn update_config_sets_what_latest_reads_back_and_removed_variables_go_away() {
    let Fixture { lambda, .. } = fixture().await;
    let set = lambda.update_config(FUNCTION, &config(&[("MODE", "fast"), ("TABLE", "orders")])).await.unwrap();
    assert_eq!(set.status, UpdateStatus::Successful);
    let read = lambda.latest(FUNCTION).await.unwrap().unwrap().config.expect("a zip function has a configuration");
    assert_eq!(read, config(&[("MODE", "fast"), ("TABLE", "orders")]));

    lambda.update_config(FUNCTION, &config(&[("MODE", "slow")])).await.unwrap();
    let read = lambda.latest(FUNCTION).await.unwrap().unwrap().config.unwrap();
    assert_eq!(read.environment, BTreeMap::from([("MODE".to_owned(), "slow".to_owned())]));

    let cleared = FunctionConfig { description: None, ..config(&[]) };
    lambda.update_config(FUNCTION, &cleared).await.unwrap();
    let read = lambda.latest(FUNCTION).await.unwrap().unwrap().config.unwrap();
    assert_eq!(read, cleared, "no variables and no description left");
}

#[tokio::test]
async fn a_log_group_is_sent_but_moto_does_not_keep_it() {
    // moto ignores LoggingConfig: what `latest` makes of Lambda's default group is checked by
    // reading a config without one; the per-stage group itself is checked on FakeFunctions.
    let Fixture { lambda, .. } = fixture().await;
    let with_group = FunctionConfig { log_group: Some("/aliasflow/shop/dev/api".into()), ..config(&[]) };
    let revision = lambda.update_config(FUNCTION, &with_group).await.unwrap();
    assert_eq!(revision.config.unwrap().log_group, None);
}

#[tokio::test]
async fn an_alias_is_created_then_moved_and_listed() {
    let Fixture { lambda, bucket, .. } = fixture().await;
    let first = lambda.update_code(FUNCTION, &bucket, "b.zip", "x86_64").await.unwrap();
    let v1 = lambda.publish(FUNCTION, &first.code_sha256, &first.revision_id, "").await.unwrap();
    let second = lambda.update_code(FUNCTION, &bucket, "c.zip", "x86_64").await.unwrap();
    let v2 = lambda.publish(FUNCTION, &second.code_sha256, &second.revision_id, "").await.unwrap();
    assert_eq!((v1.version.as_str(), v2.version.as_str()), ("1", "2"));

    lambda.point_alias(FUNCTION, "dev", &v1.version).await.unwrap();
    lambda.point_alias(FUNCTION, "prod", &v1.version).await.unwrap();
    lambda.point_alias(FUNCTION, "dev", &v2.version).await.unwrap();
    let aliases = lambda.aliases(FUNCTION).await.unwrap();
    let target = |alias: &str, version: &str| AliasTarget { alias: alias.into(), version: version.into() };
    assert_eq!(aliases, [target("dev", "2"), target("prod", "1")]);

    lambda.delete_alias(FUNCTION, "prod").await.unwrap();
    lambda.delete_alias(FUNCTION, "prod").await.unwrap();
    assert_eq!(lambda.aliases(FUNCTION).await.unwrap(), [target("dev", "2")]);
}

#[tokio::test]
async fn versions_are_listed_without_latest_and_deleting_one_twice_is_fine() {
    let Fixture { lambda, bucket, .. } = fixture().await;
    for key in ["b.zip", "c.zip"] {
        let revision = lambda.update_code(FUNCTION, &bucket, key, "x86_64").await.unwrap();
        lambda.publish(FUNCTION, &revision.code_sha256, &revision.revision_id, "").await.unwrap();
    }
    let versions = lambda.versions(FUNCTION).await.unwrap();
    let numbers: Vec<&str> = versions.iter().map(|v| v.version.as_str()).collect();
    assert_eq!(numbers, ["1", "2"]);
    assert_ne!(versions[0].code_sha256, versions[1].code_sha256);

    lambda.delete_version(FUNCTION, "1").await.unwrap();
    lambda.delete_version(FUNCTION, "1").await.unwrap();
    let numbers: Vec<String> = lambda.versions(FUNCTION).await.unwrap().into_iter().map(|v| v.version).collect();
    assert_eq!(numbers, ["2"]);

    let err = lambda.delete_version(FUNCTION, "$LATEST").await.unwrap_err();
    assert_eq!(err.code, "InvalidParameterValueException", "never deletes the whole function");
    assert!(lambda.latest(FUNCTION).await.unwrap().is_some());
}

#[tokio::test]
async fn a_permission_on_an_alias_can_be_added_twice() {
    // moto appends a duplicate statement where AWS answers ResourceConflictException; the
    // conflict path (read the policy, then succeed) runs on AWS only.
    let Fixture { lambda, client, .. } = fixture().await;
    lambda.point_alias(FUNCTION, "dev", "$LATEST").await.unwrap();
    let permission = Permission {
        statement_id: "apigateway-dev".into(),
        principal: "apigateway.amazonaws.com".into(),
        source_arn: "arn:aws:execute-api:us-east-1:123456789012:abc123/*".into(),
    };
    lambda.add_permission(FUNCTION, "dev", &permission).await.unwrap();
    lambda.add_permission(FUNCTION, "dev", &permission).await.unwrap();
    let policy = client.get_policy().function_name(FUNCTION).qualifier("dev").send().await.unwrap();
    assert!(policy.policy().unwrap_or_default().contains("apigateway-dev"));
}

#[tokio::test]
async fn a_missing_function_has_no_latest_aliases_or_versions_and_refuses_updates() {
    let Fixture { lambda, bucket, .. } = fixture().await;
    assert_eq!(lambda.latest("shop-nope").await.unwrap(), None);
    assert!(lambda.aliases("shop-nope").await.unwrap().is_empty());
    assert!(lambda.versions("shop-nope").await.unwrap().is_empty());
    lambda.delete_version("shop-nope", "3").await.unwrap();
    let err = lambda.update_code("shop-nope", &bucket, "b.zip", "x86_64").await.unwrap_err();
    assert_eq!((err.operation.as_str(), err.code.as_str()), ("UpdateFunctionCode", "ResourceNotFoundException"));
    assert!(!err.transient);
    let err = lambda.point_alias("shop-nope", "dev", "1").await.unwrap_err();
    assert_eq!(err.code, "ResourceNotFoundException", "{err}");
}

fn topic_template(outputs: &serde_json::Value) -> TemplateSource {
    let template = json!({
        "Parameters": { "Stage": { "Type": "String" } },
        "Resources": {
            "Topic": { "Type": "AWS::SNS::Topic", "Properties": { "TopicName": { "Fn::Sub": "shop-${Stage}" } } }
        },
        "Outputs": outputs
    });
    TemplateSource::Body(template.to_string())
}

/// The tags of shop's stage dev.
fn owner() -> Vec<(String, String)> {
    functions::domain::naming::Owner::stage("shop", "dev").tags()
}

fn stage(value: &str) -> Vec<Parameter> {
    vec![Parameter { key: "Stage".into(), value: value.into() }]
}

#[tokio::test]
async fn a_stack_is_created_described_updated_and_deleted() {
    let account = account().await;
    let stacks = CloudFormationApi::new(account.sdk.cloudformation(REGION));
    assert_eq!(stacks.describe("shop-dev").await.unwrap(), None);

    let first = topic_template(&json!({ "TopicArn": { "Value": { "Ref": "Topic" } } }));
    stacks.create("shop-dev", &first, &stage("dev"), &owner()).await.unwrap();
    let created = stacks.describe("shop-dev").await.unwrap().expect("the stack exists");
    assert_eq!(created.status, "CREATE_COMPLETE");
    let arn = &created.outputs["TopicArn"];
    assert!(arn.starts_with("arn:aws:sns:us-east-1:") && arn.ends_with(":shop-dev"), "{arn}");
    let described = account.sdk.cloudformation(REGION).describe_stacks().stack_name("shop-dev").send().await.unwrap();
    let tags: Vec<(String, String)> = described.stacks()[0]
        .tags()
        .iter()
        .map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned()))
        .collect();
    assert_eq!(tags, owner());
    assert_eq!(created.tags, owner().into_iter().collect(), "DescribeStacks reports them");

    let second = topic_template(&json!({
        "TopicArn": { "Value": { "Ref": "Topic" } },
        "TopicName": { "Value": { "Fn::GetAtt": ["Topic", "TopicName"] } }
    }));
    assert!(stacks.update("shop-dev", &second, &stage("dev"), &owner()).await.unwrap());
    let updated = stacks.describe("shop-dev").await.unwrap().unwrap();
    assert_eq!(updated.status, "UPDATE_COMPLETE");
    assert_eq!(updated.outputs["TopicName"], "shop-dev");

    // AWS answers "No updates are to be performed" (Ok(false)); moto carries the update out.
    let changed = stacks.update("shop-dev", &second, &stage("dev"), &owner()).await.unwrap();
    assert!(stacks.describe("shop-dev").await.unwrap().unwrap().succeeded(), "changed: {changed}");
    assert!(stacks.failure_reasons("shop-dev").await.unwrap().is_empty());

    stacks.delete("shop-dev").await.unwrap();
    assert_eq!(stacks.describe("shop-dev").await.unwrap(), None);
    stacks.delete("shop-dev").await.unwrap();
    assert!(stacks.failure_reasons("shop-dev").await.unwrap().is_empty());
}

#[tokio::test]
async fn an_update_of_a_missing_stack_and_a_second_create_are_refused() {
    let account = account().await;
    let stacks = CloudFormationApi::new(account.sdk.cloudformation(REGION));
    let template = topic_template(&json!({}));
    let err = stacks.update("shop-dev", &template, &stage("dev"), &owner()).await.unwrap_err();
    assert_eq!((err.operation.as_str(), err.code.as_str()), ("UpdateStack", "ValidationError"));
    stacks.create("shop-dev", &template, &stage("dev"), &owner()).await.unwrap();
    let err = stacks.create("shop-dev", &template, &stage("dev"), &owner()).await.unwrap_err();
    assert_eq!(err.code, "AlreadyExistsException", "{err}");
}

#[tokio::test]
async fn a_stack_whose_resource_fails_is_refused_by_moto_at_create() {
    // moto creates resources inside CreateStack: a failing resource fails the call itself and
    // leaves the stack CREATE_IN_PROGRESS with no resource events, where AWS would end in
    // ROLLBACK_COMPLETE with a CREATE_FAILED event. failure_reasons is checked on FakeStacks
    // (a_failed_update_rolls_back_and_names_the_resource).
    let account = account().await;
    let stacks = CloudFormationApi::new(account.sdk.cloudformation(REGION));
    let template = json!({
        "Resources": {
            "Api": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "FunctionName": "shop-api",
                    "Runtime": "provided.al2023",
                    "Handler": "bootstrap",
                    "Role": "arn:aws:iam::123456789012:role/nobody",
                    "Code": { "ZipFile": "x" }
                }
            }
        }
    });
    let outcome = stacks.create("shop", &TemplateSource::Body(template.to_string()), &[], &[]).await;
    let state = stacks.describe("shop").await.unwrap();
    let reasons = stacks.failure_reasons("shop").await.unwrap();
    // moto answers HTTP 400 with the Lambda error as a body CloudFormation's XML parser rejects.
    let err = outcome.expect_err("moto created a function with a missing role");
    assert_eq!(err.operation, "CreateStack", "{err}");
    assert!(!err.transient, "{err}");
    assert_eq!(state.map(|s| s.status).as_deref(), Some("CREATE_IN_PROGRESS"));
    assert!(reasons.is_empty(), "moto has started to record resource events: test failure_reasons here: {reasons:?}");
}
