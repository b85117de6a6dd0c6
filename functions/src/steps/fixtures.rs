//! What the unit tests of the lifecycle steps arrange on the fakes: the example manifest, a
//! stage's recorded deployments, and versions published on a fake Lambda.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::domain::history::{
    Deployment, DeploymentKind, DeploymentStatus, FunctionRecord, Lock, StageRecord, VersionRecord,
};
use crate::domain::manifest::Manifest;
use crate::domain::naming::Owner;
use crate::fakes::{FakeAws, FakeFunctions};
use crate::ports::{Commit, Functions, History};
use crate::steps::acquire_lock::stage_lock;

/// The service of every fixture.
pub const SERVICE: &str = "shop";
/// The home region of every fixture.
pub const REGION: &str = "us-east-1";

/// `examples/shop/aliasflow.yaml`.
pub fn manifest() -> Manifest {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/shop/aliasflow.yaml");
    Manifest::load(&path).unwrap()
}

/// Who a fixture function belongs to, as aliasflow's stacks tag it: `shop-<stage>-thumbnailer`
/// (the example's instance per stage) is the stage's, any other the service's.
pub fn owner(function: &str) -> Owner {
    match function.strip_prefix("shop-").and_then(|rest| rest.strip_suffix("-thumbnailer")) {
        Some(stage) => Owner::stage(SERVICE, stage),
        None => Owner::service(SERVICE),
    }
}

/// Publishes code `key` on `function` (created, tagged as its stack would, if missing) and
/// returns the version.
pub async fn publish(lambda: &FakeFunctions, function: &str, key: &str) -> String {
    lambda.create_owned(function, &owner(function));
    let revision = lambda.update_code(function, "bucket", key, "arm64").await.unwrap();
    lambda.publish(function, &revision.code_sha256, &revision.revision_id, "").await.unwrap().version
}

/// A function record of `stage` whose code is `key`.
pub fn record(stage: &str, function: &str, version: &str, key: &str) -> FunctionRecord {
    FunctionRecord {
        function_name: function.to_owned(),
        region: REGION.to_owned(),
        alias: stage.to_owned(),
        version: version.to_owned(),
        code_sha256: format!("sha-of-{key}"),
        config_hash: "config".to_owned(),
        artifact_key: key.to_owned(),
    }
}

/// The catalogue entry of a record, last used long ago (as a record from before `used_at`).
pub fn catalogued(record: &FunctionRecord) -> VersionRecord {
    VersionRecord {
        function_name: record.function_name.clone(),
        region: record.region.clone(),
        version: record.version.clone(),
        code_sha256: record.code_sha256.clone(),
        config_hash: record.config_hash.clone(),
        artifact_key: record.artifact_key.clone(),
        used_at: DateTime::default(),
    }
}

/// Records a succeeded deployment `id` of `stage` with `functions` (manifest key -> record),
/// the one before it being `rollback_to`, and makes it the stage's active one.
pub async fn deployed(
    aws: &FakeAws,
    stage: &str,
    id: u64,
    rollback_to: Option<u64>,
    functions: &[(&str, FunctionRecord)],
) -> Deployment {
    let deployment = Deployment {
        service: SERVICE.to_owned(),
        stage: stage.to_owned(),
        id,
        kind: DeploymentKind::Deploy,
        status: DeploymentStatus::Succeeded,
        time: Utc::now(),
        execution: format!("exec-{stage}-{id}"),
        functions: functions.iter().map(|(name, r)| ((*name).to_owned(), r.clone())).collect::<BTreeMap<_, _>>(),
        rollback_to,
        stage_template_hash: Some("template-1".to_owned()),
        origin: None,
        error: None,
    };
    let previous = aws.history.stage(SERVICE, stage).await.unwrap();
    let stage_record = StageRecord {
        active: Some(id),
        next_id: id + 1,
        template_hash: Some("template-1".to_owned()),
        last_deployed_at: Some(Utc::now()),
        ..previous.unwrap_or_else(|| StageRecord::new(SERVICE, stage, REGION))
    };
    commit_held(aws, &deployment, &stage_record).await;
    for (_, record) in functions {
        aws.history.put_version(SERVICE, &catalogued(record)).await.unwrap();
    }
    deployment
}

/// Records `deployment` as its execution would, holding the stage lock just for the write (the
/// lock is not left behind), without counting the lock's calls.
pub async fn commit_held(aws: &FakeAws, deployment: &Deployment, stage: &StageRecord) {
    let name = stage_lock(&deployment.stage);
    let key = (deployment.service.clone(), name.clone());
    let lock = Lock { owner: deployment.execution.clone(), expires_at: Utc::now() + chrono::Duration::hours(1) };
    let taken = aws.history.tables.lock().unwrap().locks.insert(key.clone(), lock);
    assert_eq!(aws.history.record(deployment, stage, &name).await.unwrap(), Commit::Written);
    let mut tables = aws.history.tables.lock().unwrap();
    match taken {
        Some(earlier) => tables.locks.insert(key, earlier),
        None => tables.locks.remove(&key),
    };
}
