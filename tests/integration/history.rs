//! The history table and the artifact bucket adapters against moto, each test in its own
//! bootstrapped account: records, all-or-nothing deployments, pages, leases under a race.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials};
use aws_credential_types::Credentials;
use chrono::{DateTime, Utc};
use functions::aws::{DynamoHistory, S3Artifacts, Sdk, TABLE};
use functions::deployer::bootstrap_local;
use functions::domain::history::{
    DeployerRecord, Deployment, DeploymentKind, DeploymentStatus, FunctionRecord, Lock, ServiceRecord, SharedFunction,
    StageRecord, StageState, VersionRecord,
};
use functions::error::AwsError;
use functions::ports::{Artifacts, Commit, History, LockOutcome};
use futures::{StreamExt, TryStreamExt};

use crate::support::moto::{account, Account, REGION};

async fn bootstrapped() -> (Account, DeployerRecord, DynamoHistory) {
    let account = account().await;
    let record = bootstrap_local(&account.sdk, REGION, include_str!("../../infra/deployer.json"), "test")
        .await
        .expect("bootstrap");
    let history = DynamoHistory::new(account.sdk.dynamodb(REGION), TABLE);
    (account, record, history)
}

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + seconds, 0).expect("a time")
}

fn deployment(stage: &str, id: u64, execution: &str) -> Deployment {
    let function = FunctionRecord {
        function_name: "shop-api".into(),
        region: REGION.into(),
        alias: stage.into(),
        version: id.to_string(),
        code_sha256: "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".into(),
        config_hash: "ab".repeat(32),
        artifact_key: format!("shop/api/{id}.zip"),
    };
    Deployment {
        service: "shop".into(),
        stage: stage.into(),
        id,
        kind: DeploymentKind::Deploy,
        status: DeploymentStatus::Succeeded,
        time: at(id.try_into().expect("a small id")),
        execution: execution.into(),
        functions: BTreeMap::from([("api".to_owned(), function)]),
        rollback_to: id.checked_sub(1).filter(|&previous| previous > 0),
        stage_template_hash: Some("cd".repeat(32)),
        origin: None,
        error: None,
    }
}

fn stage_after(stage: &str, id: u64) -> StageRecord {
    StageRecord {
        active: Some(id),
        next_id: id + 1,
        last_deployed_at: Some(at(id.try_into().expect("a small id"))),
        ..StageRecord::new("shop", stage, REGION)
    }
}

fn ids(deployments: &[Deployment]) -> Vec<u64> {
    deployments.iter().map(|d| d.id).collect()
}

#[tokio::test]
async fn service_and_stage_records_round_trip() {
    let (_account, _, history) = bootstrapped().await;
    assert_eq!(history.service("shop").await.unwrap(), None);
    let service = ServiceRecord {
        service: "shop".into(),
        region: REGION.into(),
        template_hash: "ef".repeat(32),
        outputs: BTreeMap::from([("AssetsBucket".to_owned(), "shop-assets".to_owned())]),
        updated_at: at(0),
        functions: BTreeMap::from([(
            "worker".to_owned(),
            SharedFunction {
                function_name: "shop-worker".into(),
                runtime: "provided.al2023".into(),
                architecture: "arm64".into(),
                handler: "bootstrap".into(),
                service_log_group: true,
            },
        )]),
    };
    history.put_service(&service).await.unwrap();
    assert_eq!(history.service("shop").await.unwrap(), Some(service));

    let dev = stage_after("dev", 3);
    let prod = StageRecord { state: StageState::Removed, ..StageRecord::new("shop", "prod", "eu-west-1") };
    history.put_stage(&dev).await.unwrap();
    history.put_stage(&prod).await.unwrap();
    history.put_stage(&StageRecord::new("other", "dev", REGION)).await.unwrap();
    assert_eq!(history.stage("shop", "dev").await.unwrap(), Some(dev.clone()));
    assert_eq!(history.stages("shop").await.unwrap(), [dev, prod]);

    history.delete_service("shop").await.unwrap();
    assert_eq!(history.service("shop").await.unwrap(), None);
    assert_eq!(history.stages("shop").await.unwrap().len(), 2, "forgetting the service keeps its stages");
}

/// [`held_record`] that must commit.
async fn committed(history: &DynamoHistory, deployment: &Deployment, stage: &StageRecord) {
    assert_eq!(held_record(history, deployment, stage).await.expect("moto answers"), Commit::Written);
}

/// Records `deployment` as its execution does: holding the stage lock.
async fn held_record(
    history: &DynamoHistory,
    deployment: &Deployment,
    stage: &StageRecord,
) -> Result<Commit, AwsError> {
    let name = format!("stage:{}", deployment.stage);
    let lease = Duration::from_secs(60);
    history.acquire("shop", &name, &deployment.execution, lease, Utc::now()).await.expect("moto answers");
    let commit = history.record(deployment, stage, &name).await;
    history.release("shop", &name, &deployment.execution).await.expect("moto answers");
    commit
}

#[tokio::test]
async fn record_is_idempotent_for_its_execution_and_all_or_nothing_against_another() {
    let (_account, _, history) = bootstrapped().await;
    let first = deployment("dev", 1, "exec-1");
    assert_eq!(held_record(&history, &first, &stage_after("dev", 1)).await.unwrap(), Commit::Written);
    // A retried step writes the same deployment again.
    committed(&history, &first, &stage_after("dev", 1)).await;
    assert_eq!(history.deployment("shop", "dev", 1).await.unwrap(), Some(first.clone()));

    // Another execution that computed the same id writes neither its deployment nor its stage.
    let mut intruder = deployment("dev", 1, "exec-2");
    intruder.kind = DeploymentKind::Rollback;
    let err = held_record(&history, &intruder, &stage_after("dev", 99)).await.unwrap_err();
    assert_eq!((err.operation.as_str(), err.code.as_str()), ("TransactWriteItems", "ConditionalCheckFailedException"));
    assert!(!err.transient);
    assert!(err.message.contains("exec-1"), "{err}");
    assert_eq!(history.deployment("shop", "dev", 1).await.unwrap(), Some(first));
    assert_eq!(history.stage("shop", "dev").await.unwrap(), Some(stage_after("dev", 1)));
}

/// The lock check is part of the transaction: an execution whose lease another owner took (or
/// that holds none) writes neither its deployment nor its stage, and learns it from the
/// cancellation reason, not from an error.
#[tokio::test]
async fn only_the_lock_holder_commits_in_the_same_transaction() {
    let (_account, _, history) = bootstrapped().await;
    let lease = Duration::from_secs(60);
    let past = Utc::now() - chrono::Duration::hours(1);
    history.acquire("shop", "stage:dev", "exec-1", lease, past).await.unwrap();
    // exec-1's lease expired; exec-2 took the lock.
    history.acquire("shop", "stage:dev", "exec-2", lease, Utc::now()).await.unwrap();
    let late = deployment("dev", 1, "exec-1");
    assert_eq!(history.record(&late, &stage_after("dev", 1), "stage:dev").await.unwrap(), Commit::LockLost);
    assert_eq!(history.put_stage_held(&stage_after("dev", 1), "stage:dev", "exec-1").await.unwrap(), Commit::LockLost);
    assert_eq!(history.deployment("shop", "dev", 1).await.unwrap(), None);
    assert_eq!(history.stage("shop", "dev").await.unwrap(), None);

    history.release("shop", "stage:dev", "exec-2").await.unwrap();
    assert_eq!(history.record(&late, &stage_after("dev", 1), "stage:dev").await.unwrap(), Commit::LockLost, "nobody's");

    let own = deployment("dev", 1, "exec-2");
    history.acquire("shop", "stage:dev", "exec-2", lease, Utc::now()).await.unwrap();
    assert_eq!(history.record(&own, &stage_after("dev", 1), "stage:dev").await.unwrap(), Commit::Written);
    assert_eq!(history.put_stage_held(&stage_after("dev", 1), "stage:dev", "exec-2").await.unwrap(), Commit::Written);
    assert_eq!(history.deployment("shop", "dev", 1).await.unwrap(), Some(own));
}

#[tokio::test]
async fn deployments_list_newest_first_across_pages_and_prune() {
    let (_account, _, history) = bootstrapped().await;
    for id in 1..=7 {
        committed(&history, &deployment("dev", id, &format!("exec-{id}")), &stage_after("dev", id)).await;
    }
    // A stage whose name starts like `dev` must not leak into dev's pages.
    committed(&history, &deployment("dev2", 1, "exec-x"), &stage_after("dev2", 1)).await;

    let first = history.deployments("shop", "dev", 3, None).await.unwrap();
    assert_eq!(ids(&first.items), [7, 6, 5]);
    let second = history.deployments("shop", "dev", 3, first.next.clone()).await.unwrap();
    assert_eq!(ids(&second.items), [4, 3, 2]);
    let last = history.deployments("shop", "dev", 3, second.next).await.unwrap();
    assert_eq!(ids(&last.items), [1]);
    assert_eq!(last.next, None);
    let whole = history.deployments("shop", "dev", 7, None).await.unwrap();
    assert_eq!((whole.items.len(), whole.next), (7, None), "a page that ends the listing has no next");
    assert_eq!(whole.items[0], deployment("dev", 7, "exec-7"));

    let err = history.deployments("shop", "dev2", 3, first.next).await.unwrap_err();
    assert_eq!(err.code, "ValidationException");

    history.delete_deployments("shop", "dev", &[1, 2, 3]).await.unwrap();
    let pruned = history.deployments("shop", "dev", 10, None).await.unwrap();
    assert_eq!(ids(&pruned.items), [7, 6, 5, 4]);
    assert_eq!(history.deployment("shop", "dev", 2).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_eight_racing_for_a_stage_lock_exactly_one_wins_and_the_others_see_it() {
    let (_account, _, history) = bootstrapped().await;
    let history = Arc::new(history);
    let start = Arc::new(tokio::sync::Barrier::new(8));
    let now = Utc::now();
    let lease = Duration::from_secs(600);
    let racers = (0..8).map(|i| {
        let (history, start) = (history.clone(), start.clone());
        tokio::spawn(async move {
            start.wait().await;
            history.acquire("shop", "stage:dev", &format!("exec-{i}"), lease, now).await
        })
    });
    let mut winners = Vec::new();
    let mut holders = Vec::new();
    for racer in racers.collect::<Vec<_>>() {
        match racer.await.unwrap().unwrap() {
            LockOutcome::Acquired(lock) => winners.push(lock),
            LockOutcome::Held(lock) => holders.push(lock),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one winner: {winners:?}");
    assert_eq!(holders.len(), 7);
    let winner = &winners[0];
    assert!(holders.iter().all(|held| held == winner), "losers see the winner and its expiry: {holders:?}");
    assert_eq!(winner.expires_at.timestamp_millis(), (now + lease).timestamp_millis());
    assert_eq!(history.lock("shop", "stage:dev").await.unwrap().as_ref(), Some(winner));
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_only_its_owner_releases_it() {
    let (_account, _, history) = bootstrapped().await;
    let minute = Duration::from_secs(60);
    let taken = history.acquire("shop", "stage:dev", "exec-a", minute, at(0)).await.unwrap();
    assert_eq!(taken, LockOutcome::Acquired(Lock { owner: "exec-a".into(), expires_at: at(60) }));
    let refused = history.acquire("shop", "stage:dev", "exec-b", minute, at(60)).await.unwrap();
    assert_eq!(refused, LockOutcome::Held(Lock { owner: "exec-a".into(), expires_at: at(60) }));
    // Taking one's own lease again renews it.
    let renewed = history.acquire("shop", "stage:dev", "exec-a", minute, at(30)).await.unwrap();
    assert_eq!(renewed, LockOutcome::Acquired(Lock { owner: "exec-a".into(), expires_at: at(90) }));

    let taken_over = history.acquire("shop", "stage:dev", "exec-b", minute, at(91)).await.unwrap();
    assert_eq!(taken_over, LockOutcome::Acquired(Lock { owner: "exec-b".into(), expires_at: at(151) }));

    assert!(!history.release("shop", "stage:dev", "exec-a").await.unwrap(), "the old owner releases nothing");
    assert_eq!(history.lock("shop", "stage:dev").await.unwrap().map(|l| l.owner), Some("exec-b".into()));
    assert!(history.release("shop", "stage:dev", "exec-b").await.unwrap());
    assert_eq!(history.lock("shop", "stage:dev").await.unwrap(), None);
    assert!(!history.release("shop", "stage:dev", "exec-b").await.unwrap());
    // Leases are per name: the publish lease is independent of the stage lease.
    let publish = history.acquire("shop", "publish:shop-api", "exec-c", minute, at(0)).await.unwrap();
    assert!(matches!(publish, LockOutcome::Acquired(_)));
}

#[tokio::test]
async fn versions_and_artifact_keys_are_put_listed_and_deleted() {
    let (_account, _, history) = bootstrapped().await;
    let version = |function: &str, n: &str| VersionRecord {
        function_name: function.into(),
        region: REGION.into(),
        version: n.into(),
        code_sha256: format!("sha-{n}"),
        config_hash: "ab".repeat(32),
        artifact_key: format!("shop/{function}/{n}.zip"),
        used_at: at(0),
    };
    for (function, n) in [("shop-api", "10"), ("shop-api", "9"), ("shop-web", "1"), ("shop-api", "2")] {
        history.put_version("shop", &version(function, n)).await.unwrap();
    }
    let listed: Vec<(String, String)> =
        history.versions("shop").await.unwrap().into_iter().map(|v| (v.function_name, v.version)).collect();
    let expected = [("shop-api", "2"), ("shop-api", "9"), ("shop-api", "10"), ("shop-web", "1")];
    assert_eq!(listed, expected.map(|(f, n)| (f.to_owned(), n.to_owned())));
    history.delete_version("shop", &version("shop-api", "9")).await.unwrap();
    assert_eq!(history.versions("shop").await.unwrap().len(), 3);

    history.put_artifact("shop", "shop/api/abc.zip", at(0)).await.unwrap();
    history.put_artifact("shop", "shop/web/def.zip", at(0)).await.unwrap();
    history.put_artifact("shop", "shop/api/abc.zip", at(0)).await.unwrap();
    assert_eq!(history.artifacts("shop").await.unwrap(), ["shop/api/abc.zip", "shop/web/def.zip"]);
    history.delete_artifact("shop", "shop/api/abc.zip").await.unwrap();
    assert_eq!(history.artifacts("shop").await.unwrap(), ["shop/web/def.zip"]);
    assert!(history.artifacts("other").await.unwrap().is_empty());
}

#[tokio::test]
async fn artifacts_are_put_read_listed_and_deleted_in_the_bucket() {
    let (account, record, _) = bootstrapped().await;
    let bucket = S3Artifacts::new(account.sdk.s3(REGION), &record.bucket);
    assert!(!bucket.exists("shop/api/abc.zip").await.unwrap());
    assert_eq!(bucket.get("shop/api/abc.zip").await.unwrap(), None);
    bucket.put("shop/api/abc.zip", b"zip-a".to_vec()).await.unwrap();
    bucket.put("shop/web/def.zip", b"zip-b".to_vec()).await.unwrap();
    bucket.put("shopping/x.zip", b"zip-c".to_vec()).await.unwrap();
    assert!(bucket.exists("shop/api/abc.zip").await.unwrap());
    assert_eq!(bucket.get("shop/web/def.zip").await.unwrap(), Some(b"zip-b".to_vec()));
    let listed = bucket.list("shop/").await.unwrap();
    let keys: Vec<&str> = listed.iter().map(|l| l.key.as_str()).collect();
    assert_eq!(keys, ["shop/api/abc.zip", "shop/web/def.zip"]);
    let age = chrono::Utc::now() - listed[0].modified;
    assert!(age < chrono::Duration::minutes(5), "S3 says when each object was written: {age}");
    bucket.delete("shop/api/abc.zip").await.unwrap();
    bucket.delete("shop/api/abc.zip").await.unwrap();
    assert!(!bucket.exists("shop/api/abc.zip").await.unwrap());

    let missing = S3Artifacts::new(account.sdk.s3(REGION), "no-such-bucket-here");
    let err = missing.list("").await.unwrap_err();
    assert_eq!((err.operation.as_str(), err.code.as_str()), ("ListObjectsV2", "NoSuchBucket"));
}

#[tokio::test]
async fn a_listing_larger_than_one_page_is_listed_whole() {
    let (account, record, history) = bootstrapped().await;
    let bucket = S3Artifacts::new(account.sdk.s3(REGION), &record.bucket);
    // ListObjectsV2 pages hold 1,000 keys; DynamoDB query pages 1 MB, reached here with big stages.
    let keys: Vec<String> = (0..1005).map(|i| format!("many/{i:04}.zip")).collect();
    let puts = futures::stream::iter(&keys).map(|k| bucket.put(k, Vec::new())).buffer_unordered(16);
    puts.try_collect::<Vec<()>>().await.unwrap();
    let listed: Vec<String> = bucket.list("many/").await.unwrap().into_iter().map(|l| l.key).collect();
    assert_eq!(listed, keys);

    let big = |name: &str| StageRecord {
        outputs: (0..200).map(|i| (format!("Output{i}"), "x".repeat(400))).collect(),
        ..StageRecord::new("shop", name, REGION)
    };
    let names: Vec<String> = (0..15).map(|i| format!("stage-{i:02}")).collect();
    for name in &names {
        history.put_stage(&big(name)).await.unwrap();
    }
    let stages = history.stages("shop").await.unwrap();
    assert_eq!(stages.into_iter().map(|s| s.stage).collect::<Vec<_>>(), names);
}

/// A credentials provider that finds none, as the SDK's default chain does on a bare machine.
#[derive(Debug)]
struct NoCredentials;

impl ProvideCredentials for NoCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::ready(Err(CredentialsError::not_loaded(
            "no providers in chain provided credentials",
        )))
    }
}

#[tokio::test]
async fn an_endpoint_nobody_answers_is_reported_as_unreachable_in_one_line() {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url("http://127.0.0.1:9")
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .retry_config(RetryConfig::disabled())
        .load()
        .await;
    let history = DynamoHistory::new(Sdk::new(config).dynamodb(REGION), TABLE);
    let err = history.deployer().await.unwrap_err();
    assert_eq!(err.code, "Unreachable");
    assert!(err.transient);
    assert!(err.message.contains("AWS_ENDPOINT_URL"), "{err}");
    assert!(!err.to_string().contains('\n'), "{err}");
}

#[tokio::test]
async fn missing_credentials_are_reported_as_such() {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url("http://127.0.0.1:9")
        .region(Region::new(REGION))
        .credentials_provider(NoCredentials)
        .retry_config(RetryConfig::disabled())
        .load()
        .await;
    let history = DynamoHistory::new(Sdk::new(config).dynamodb(REGION), TABLE);
    let err = history.deployer().await.unwrap_err();
    assert_eq!(err.code, "NoCredentials", "{err}");
    assert!(!err.transient);
    assert!(err.message.contains("AWS_ACCESS_KEY_ID"), "{err}");
}
