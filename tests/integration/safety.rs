//! Ownership and convergence against moto (issue 12): a deploy refuses what another service or
//! stage owns, or what aliasflow did not create, and changes nothing there; a deploy of the same
//! code puts back aliases moved or deleted outside aliasflow, and `status` says what drifted.
//!
//! moto's CloudFormation drops an `AWS::Lambda::Function`'s `Tags`, which AWS applies; the test
//! server is moto with that behaviour added (`scripts/moto-server.py`).

use std::collections::BTreeMap;

use aws_sdk_lambda::types::{FunctionCode, Runtime};
use functions::aws::LambdaApi;
use functions::domain::naming::Owner;
use functions::ports::{AliasState, Functions, History};
use serde_json::Value;

use crate::adapters::{create_role, zip};
use crate::support::moto::{account, REGION};
use crate::support::world::World;

/// The stack's template body and status, as CloudFormation reports them.
async fn stack(world: &World, name: &str) -> (String, String) {
    let cloudformation = world.account.sdk.cloudformation(REGION);
    let template = cloudformation.get_template().stack_name(name).send().await.expect("GetTemplate");
    let described = cloudformation.describe_stacks().stack_name(name).send().await.expect("DescribeStacks");
    let status = described.stacks()[0].stack_status().map(|s| s.as_str().to_owned()).unwrap_or_default();
    (template.template_body().unwrap_or_default().to_owned(), status)
}

/// What `status` says of stage `stage`: function (manifest key) -> (version, recorded, drift).
async fn drift(world: &World, stage: &str) -> BTreeMap<String, (Value, Value, Value)> {
    let status = world.stage_status(stage).await;
    status
        .into_iter()
        .map(|(f, r)| (f, (r["version"].clone(), r["recorded_version"].clone(), r["drift"].clone())))
        .collect()
}

#[tokio::test]
async fn a_service_named_like_another_services_stage_stack_is_refused_and_that_stack_untouched() {
    let world = World::new().await;
    world.ok(&["deploy", "--stage", "dev"]).await;
    let before = stack(&world, "shop-dev").await;

    // Service `shop-dev`'s service stack would be `shop-dev`: shop's stage stack of dev.
    world.example.edit("aliasflow.yaml", |text| text.replace("service: shop\n", "service: shop-dev\n"));
    let err = world.refused(&["deploy"]).await;
    let message = err.to_string();
    assert_eq!(err.error_type(), "NotOwned", "{message}");
    assert!(message.contains("stack shop-dev") && message.contains("stage dev of service shop"), "{message}");

    assert_eq!(stack(&world, "shop-dev").await, before, "same template, same status");
    let history = world.history();
    assert_eq!(history.service("shop-dev").await.unwrap(), None, "nothing recorded for shop-dev");
    assert!(history.stages("shop-dev").await.unwrap().is_empty());
}

#[tokio::test]
async fn aliases_moved_or_deleted_outside_are_reported_then_put_back_by_a_deploy_of_the_same_code() {
    let world = World::new().await;
    world.ok(&["deploy", "--stage", "dev"]).await;
    world.example.edit("functions/api/bootstrap", |text| format!("{text}\n# a code change\n"));
    world.ok(&["deploy", "--stage", "dev"]).await;
    let recorded = drift(&world, "dev").await;
    assert!(recorded.values().all(|(_, _, drift)| drift.is_null()), "{recorded:?}");
    let (api_version, _, _) = &recorded["api"];
    assert_eq!(api_version, "2", "api has two versions: {recorded:?}");

    let lambda = world.lambda();
    lambda.update_alias().function_name("shop-api").name("dev").function_version("1").send().await.expect("moved");
    lambda.delete_alias().function_name("shop-worker").name("dev").send().await.expect("deleted");
    let drifted = drift(&world, "dev").await;
    assert_eq!(drifted["api"].2, "moved", "{drifted:?}");
    assert_eq!(drifted["worker"].2, "missing", "{drifted:?}");
    assert!(drifted["thumbnailer"].2.is_null(), "{drifted:?}");

    let again = world.ok(&["deploy", "--stage", "dev"]).await;
    assert_eq!(again["result"]["published"], 0, "same code: {again}");
    let repaired = drift(&world, "dev").await;
    assert!(repaired.values().all(|(version, recorded, drift)| version == recorded && drift.is_null()), "{repaired:?}");
    assert_eq!(repaired["api"].0, "2");
}

#[tokio::test]
async fn a_function_aliasflow_did_not_create_under_the_manifests_name_is_refused_and_left_alone() {
    let world = World::new().await;
    world.ok(&["deploy"]).await;
    // Someone replaced the worker the service stack made by a function of their own under the
    // same name. (Created before the stack, it would fail the stack's creation on AWS, and moto
    // would let the stack take it over: neither reaches the check.)
    let lambda = world.lambda();
    lambda.delete_function().function_name("shop-worker").send().await.expect("deleted");
    let arn = create_role(&world.account).await;
    let code = FunctionCode::builder().zip_file(aws_sdk_lambda::primitives::Blob::new(zip("theirs"))).build();
    let created = lambda
        .create_function()
        .function_name("shop-worker")
        .runtime(Runtime::Providedal2023)
        .role(arn)
        .handler("theirs")
        .code(code)
        .send()
        .await
        .expect("function created");
    let before = created.code_sha256().map(str::to_owned);

    let err = world.refused(&["deploy", "--stage", "dev"]).await;
    let message = err.to_string();
    assert!(message.contains("NotOwned") || err.error_type() == "NotOwned", "{message}");
    assert!(message.contains("function shop-worker") && message.contains("no aliasflow:service tag"), "{message}");
    let after = lambda.get_function().function_name("shop-worker").send().await.expect("still there");
    let configuration = after.configuration().expect("configuration");
    assert_eq!(configuration.code_sha256().map(str::to_owned), before, "code untouched");
    assert_eq!(configuration.handler(), Some("theirs"), "configuration untouched");
    let versions = lambda.list_versions_by_function().function_name("shop-worker").send().await.expect("versions");
    assert_eq!(versions.versions().len(), 1, "only $LATEST: nothing published");
    let aliases = lambda.list_aliases().function_name("shop-worker").send().await.expect("aliases");
    assert!(aliases.aliases().is_empty(), "no alias created");
}

#[tokio::test]
async fn reading_an_alias_tells_a_missing_function_from_a_missing_alias_and_carries_the_tags() {
    let account = account().await;
    let role = create_role(&account).await;
    let client = account.sdk.lambda(REGION);
    let owner: std::collections::HashMap<String, String> = Owner::service("shop").tags().into_iter().collect();
    client
        .create_function()
        .function_name("shop-api")
        .runtime(Runtime::Providedal2023)
        .role(role)
        .handler("bootstrap")
        .code(FunctionCode::builder().zip_file(aws_sdk_lambda::primitives::Blob::new(zip("ours"))).build())
        .set_tags(Some(owner.clone()))
        .send()
        .await
        .expect("function created");
    let lambda = LambdaApi::new(client.clone());
    let tags: BTreeMap<String, String> = owner.into_iter().collect();
    assert_eq!(lambda.alias("shop-nope", "dev").await.unwrap(), AliasState::FunctionMissing);
    assert_eq!(lambda.alias("shop-api", "dev").await.unwrap(), AliasState::AliasMissing { tags: tags.clone() });
    let latest = lambda.latest("shop-api").await.unwrap().expect("exists");
    assert_eq!(latest.tags, tags, "GetFunction carries the tags");
    let version = lambda.publish("shop-api", &latest.code_sha256, &latest.revision_id, "").await.unwrap();
    lambda.point_alias("shop-api", "dev", &version.version).await.unwrap();
    // AWS answers GetFunction on an alias with the function's tags; so does moto (a version
    // shares its function's tags there).
    let expected = AliasState::At { version: version.version.clone(), code_sha256: version.code_sha256, tags };
    assert_eq!(lambda.alias("shop-api", "dev").await.unwrap(), expected);
}
