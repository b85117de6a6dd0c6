//! `bootstrap --engine local` against moto: the deployer's table and bucket from `infra/`, the
//! placeholder code, the deployer record; and what steps see on an account without them.

use functions::aws::{CallCounter, DynamoHistory, TABLE};
use functions::deployer::{bootstrap_local, deployer_settings, placeholder_zip, STACK};
use functions::ports::{History, PLACEHOLDER_KEY};

use crate::support::moto::{account, REGION};

const DEPLOYER: &str = include_str!("../../infra/deployer.json");

async fn stack_status(sdk: &functions::aws::Sdk) -> String {
    let described = sdk.cloudformation(REGION).describe_stacks().stack_name(STACK).send().await.expect("the stack");
    described.stacks()[0].stack_status().expect("a status").as_str().to_owned()
}

fn stack_writes(counter: &CallCounter) -> u64 {
    let snapshot = counter.snapshot();
    let writes = snapshot.iter().filter(|((service, operation), _)| {
        service == "CloudFormation" && matches!(operation.as_str(), "CreateStack" | "UpdateStack" | "DeleteStack")
    });
    writes.map(|(_, count)| count.calls).sum()
}

#[tokio::test]
async fn bootstrap_creates_table_bucket_placeholder_and_record_and_a_second_run_changes_nothing() {
    let account = account().await;
    let first = bootstrap_local(&account.sdk, REGION, DEPLOYER, "test").await.unwrap();
    assert_eq!(first.engine, "local");
    assert_eq!(first.version, "test");
    assert_eq!(first.placeholder_key, PLACEHOLDER_KEY);
    assert_eq!(first.bucket, format!("aliasflow-artifacts-{}-{REGION}", account.id));
    assert_eq!(stack_status(&account.sdk).await, "CREATE_COMPLETE");

    let placeholder =
        account.sdk.s3(REGION).get_object().bucket(&first.bucket).key(PLACEHOLDER_KEY).send().await.unwrap();
    let bytes = placeholder.body.collect().await.unwrap().into_bytes();
    assert_eq!(bytes.as_ref(), placeholder_zip().unwrap().as_slice());
    let history = DynamoHistory::new(account.sdk.dynamodb(REGION), TABLE);
    assert_eq!(history.deployer().await.unwrap(), Some(first.clone()));

    let counter = CallCounter::default();
    let counted = account.sdk.clone().with_interceptor(counter.interceptor());
    let second = bootstrap_local(&counted, REGION, DEPLOYER, "test").await.unwrap();
    assert_eq!(second, first);
    assert_eq!(stack_writes(&counter), 0, "a second bootstrap makes no stack change: {:?}", counter.snapshot());
    assert_eq!(stack_status(&account.sdk).await, "CREATE_COMPLETE");
    assert_eq!(deployer_settings(&history).await.unwrap(), first);
}

#[tokio::test]
async fn bootstrap_brings_a_stack_with_another_template_up_to_date() {
    let account = account().await;
    let mut older: serde_json::Value = serde_json::from_str(DEPLOYER).unwrap();
    older["Description"] = serde_json::json!("an older aliasflow deployer");
    bootstrap_local(&account.sdk, REGION, &older.to_string(), "old").await.unwrap();

    let record = bootstrap_local(&account.sdk, REGION, DEPLOYER, "new").await.unwrap();
    assert_eq!(record.version, "new");
    assert_eq!(stack_status(&account.sdk).await, "UPDATE_COMPLETE");
    let history = DynamoHistory::new(account.sdk.dynamodb(REGION), TABLE);
    assert_eq!(deployer_settings(&history).await.unwrap().version, "new");
}

#[tokio::test]
async fn steps_on_an_account_without_bootstrap_are_told_to_run_it() {
    let account = account().await;
    let history = DynamoHistory::new(account.sdk.dynamodb(REGION), TABLE);
    let err = history.deployer().await.unwrap_err();
    assert_eq!(err.code, "ResourceNotFoundException");
    let err = deployer_settings(&history).await.unwrap_err();
    assert_eq!(err.error_type(), "NotBootstrapped");
    let message = err.to_string();
    assert!(message.contains(TABLE) && message.contains(REGION), "{message}");
    assert!(message.contains("aliasflow bootstrap"), "{message}");
}

#[tokio::test]
async fn the_deployer_record_round_trips() {
    let account = account().await;
    let mut record = bootstrap_local(&account.sdk, REGION, DEPLOYER, "test").await.unwrap();
    record.engine = "aws".into();
    record.state_machines.insert("deploy".into(), "arn:aws:states:us-east-1:123456789012:stateMachine:deploy".into());
    let history = DynamoHistory::new(account.sdk.dynamodb(REGION), TABLE);
    history.put_deployer(&record).await.unwrap();
    assert_eq!(history.deployer().await.unwrap(), Some(record.clone()));
    // A local bootstrap where the whole deployer is installed keeps that deployer's record.
    assert_eq!(bootstrap_local(&account.sdk, REGION, DEPLOYER, "test").await.unwrap(), record);
}
