//! The history port on DynamoDB: one table (`aliasflow-history`, keys `pk`/`sk`, both strings).
//!
//! | item | `pk` | `sk` | attributes besides `data` |
//! |---|---|---|---|
//! | deployer record | `aliasflow` | `DEPLOYER` | |
//! | service stack | `<service>` | `SERVICE` | |
//! | stage | `<service>` | `STAGE#<stage>` | |
//! | deployment | `<service>` | `DEPLOY#<stage>#<id, 10 digits>` | `execution` (S), `id` (N) |
//! | lease | `<service>` | `LOCK#<name>` (`stage:dev`, `publish:shop-api`) | `owner` (S), `expires` (N, epoch ms), `expires_at` (S, RFC 3339); no `data` |
//! | version | `<service>` | `VERSION#<region>#<function>#<version, 10 digits>` | `used` (N, epoch ms) |
//! | artifact | `<service>` | `ARTIFACT#<key>` | `used` (N, epoch ms), `used_at` (S, RFC 3339); no `data` |
//!
//! Every record is stored whole as JSON (serde of the domain type) in the string attribute
//! `data`: the domain types can grow fields without a migration, since readers ignore what
//! they do not know and older items lack only what new fields default. Only what a condition
//! expression must see is an attribute of its own (`execution`, `owner`, `expires`, `used`).
//! Versions and artifacts written before `used` existed lack it and read as used at the epoch.
//!
//! Ids and version numbers are zero-padded so the sort key orders them as numbers: a stage's
//! deployments come newest first from one `Query` with `ScanIndexForward = false`. A service
//! named `aliasflow` shares its partition with the deployer record, which is harmless: no sort
//! key prefix above matches `DEPLOYER`.
//!
//! Every read a decision depends on is strongly consistent; every listing the port calls
//! "every" is paginated to the end.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, DeleteRequest, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    WriteRequest,
};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::aws_error;
use crate::domain::history::{
    ArtifactRecord, DeployerRecord, Deployment, Lock, ServiceRecord, StageRecord, VersionRecord,
};
use crate::error::AwsError;
use crate::ports::{Commit, History, LockOutcome, Page};

type Item = HashMap<String, AttributeValue>;

/// The deployer record's partition and sort key.
const DEPLOYER_PK: &str = "aliasflow";
const DEPLOYER_SK: &str = "DEPLOYER";
const SERVICE_SK: &str = "SERVICE";

/// `BatchWriteItem` takes at most 25 requests.
const BATCH: usize = 25;
/// How often an `acquire` that lost a race to a lease that then vanished tries again.
const ACQUIRE_ATTEMPTS: usize = 5;
/// How often `BatchWriteItem` is repeated for the items DynamoDB left unprocessed.
const UNPROCESSED_ATTEMPTS: u32 = 8;

/// [`History`] on a DynamoDB table laid out as the module doc says.
#[derive(Debug, Clone)]
pub struct DynamoHistory {
    client: Client,
    table: String,
    /// "table aliasflow-history (us-east-1)": the resource every error names.
    label: String,
}

impl DynamoHistory {
    /// The history in `table`, reached through `client` (whose region is the home region).
    pub fn new(client: Client, table: &str) -> Self {
        let region = client.config().region().map_or_else(|| "no region set".to_owned(), ToString::to_string);
        let label = format!("table {table} ({region})");
        Self { client, table: table.to_owned(), label }
    }

    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, AwsError> {
        let request = self.client.get_item().table_name(&self.table).set_key(Some(key(pk, sk)));
        let output = request.consistent_read(true).send().await.map_err(|e| aws_error("GetItem", &self.label, &e))?;
        Ok(output.item)
    }

    async fn get_record<T: DeserializeOwned>(&self, pk: &str, sk: &str) -> Result<Option<T>, AwsError> {
        match self.get(pk, sk).await? {
            Some(item) => Ok(Some(self.decode(&item, "GetItem")?)),
            None => Ok(None),
        }
    }

    async fn put(&self, item: Item) -> Result<(), AwsError> {
        let request = self.client.put_item().table_name(&self.table).set_item(Some(item));
        request.send().await.map(drop).map_err(|e| aws_error("PutItem", &self.label, &e))
    }

    async fn put_record<T: Serialize>(&self, pk: &str, sk: &str, record: &T) -> Result<(), AwsError> {
        self.put(self.record_item(pk, sk, record)?).await
    }

    async fn delete(&self, pk: &str, sk: &str) -> Result<(), AwsError> {
        let request = self.client.delete_item().table_name(&self.table).set_key(Some(key(pk, sk)));
        request.send().await.map(drop).map_err(|e| aws_error("DeleteItem", &self.label, &e))
    }

    /// Writes `item` if it is already there: `Ok(false)`, writing nothing, if it is not.
    async fn put_if_present(&self, item: Item) -> Result<bool, AwsError> {
        let request = self.client.put_item().table_name(&self.table).set_item(Some(item));
        match request.condition_expression("attribute_exists(pk)").send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(PutItemError::is_conditional_check_failed_exception) => {
                Ok(false)
            }
            Err(e) => Err(aws_error("PutItem", &self.label, &e)),
        }
    }

    /// Deletes the item if its `used` is still `used_at`, or if it is gone already; `Ok(false)`,
    /// deleting nothing, if it was used since.
    async fn delete_if_unused_since(&self, pk: &str, sk: &str, used_at: DateTime<Utc>) -> Result<bool, AwsError> {
        // An item read without `used` (written before it existed) reads as the epoch; it is
        // unchanged while it still has none.
        let condition = if used_at == DateTime::<Utc>::default() {
            "attribute_not_exists(#used) OR #used = :used"
        } else {
            "attribute_not_exists(pk) OR #used = :used"
        };
        self.delete_where(pk, sk, condition, ("#used", "used"), (":used", millis(used_at))).await
    }

    /// Deletes the item if `condition` (on the one attribute `name` and the one value `value`)
    /// holds; `Ok(false)`, deleting nothing, if it does not.
    async fn delete_where(
        &self,
        pk: &str,
        sk: &str,
        condition: &str,
        (name, attribute): (&str, &str),
        (placeholder, value): (&str, AttributeValue),
    ) -> Result<bool, AwsError> {
        let sent = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .condition_expression(condition)
            .expression_attribute_names(name, attribute)
            .expression_attribute_values(placeholder, value)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(DeleteItemError::is_conditional_check_failed_exception) => {
                Ok(false)
            }
            Err(e) => Err(aws_error("DeleteItem", &self.label, &e)),
        }
    }

    fn version_item(&self, service: &str, version: &VersionRecord) -> Result<Item, AwsError> {
        let mut item = self.record_item(service, &version_sk(version), version)?;
        item.insert("used".to_owned(), millis(version.used_at));
        Ok(item)
    }

    /// Every item of partition `pk` whose sort key starts with `prefix`, in key order.
    async fn query_all(&self, pk: &str, prefix: &str) -> Result<Vec<Item>, AwsError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(pk))
                .expression_attribute_values(":prefix", s(prefix))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| aws_error("Query", &self.label, &e))?;
            items.extend(output.items.unwrap_or_default());
            match output.last_evaluated_key {
                Some(last) if !last.is_empty() => start = Some(last),
                _ => return Ok(items),
            }
        }
    }

    async fn query_records<T: DeserializeOwned>(&self, pk: &str, prefix: &str) -> Result<Vec<T>, AwsError> {
        let items = self.query_all(pk, prefix).await?;
        items.iter().map(|item| self.decode(item, "Query")).collect()
    }

    fn record_item<T: Serialize>(&self, pk: &str, sk: &str, record: &T) -> Result<Item, AwsError> {
        let json = serde_json::to_string(record).map_err(|e| self.invalid("PutItem", &format!("{pk}/{sk}"), &e))?;
        let mut item = key(pk, sk);
        item.insert("data".to_owned(), AttributeValue::S(json));
        Ok(item)
    }

    fn decode<T: DeserializeOwned>(&self, item: &Item, operation: &str) -> Result<T, AwsError> {
        let data = item.get("data").and_then(|v| v.as_s().ok());
        let Some(data) = data else {
            return Err(self.invalid(operation, &item_name(item), &"no `data` attribute"));
        };
        serde_json::from_str(data).map_err(|e| self.invalid(operation, &item_name(item), &e))
    }

    fn decode_lock(&self, item: &Item, operation: &str) -> Result<Lock, AwsError> {
        let owner = item.get("owner").and_then(|v| v.as_s().ok());
        let expires = item.get("expires").and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<i64>().ok());
        match (owner, expires.and_then(DateTime::from_timestamp_millis)) {
            (Some(owner), Some(expires_at)) => Ok(Lock { owner: owner.clone(), expires_at }),
            _ => Err(self.invalid(operation, &item_name(item), &"no `owner` or `expires` attribute")),
        }
    }

    /// An item aliasflow cannot read: written by something else, or by an incompatible version.
    fn invalid(&self, operation: &str, item: &str, cause: &dyn std::fmt::Display) -> AwsError {
        AwsError {
            operation: operation.to_owned(),
            resource: self.label.clone(),
            code: "InvalidItem".to_owned(),
            message: format!("item {item} is not what aliasflow wrote: {cause}"),
            transient: false,
        }
    }

    /// The first action of a transaction that commits only while `owner` holds the lease
    /// `lock` ([`lock_check_failed`] reads its cancellation reason).
    fn lock_check(&self, service: &str, lock: &str, owner: &str) -> Result<TransactWriteItem, AwsError> {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key(service, &lock_sk(lock))))
            .condition_expression("#owner = :me")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":me", s(owner))
            .build()
            .map_err(|e| self.invalid("TransactWriteItems", "lock check", &e))?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    fn put_stage_item(&self, stage: &StageRecord) -> Result<TransactWriteItem, AwsError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.record_item(&stage.service, &stage_sk(&stage.stage), stage)?))
            .build()
            .map_err(|e| self.invalid("TransactWriteItems", "stage", &e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Why `TransactWriteItems` of [`History::record`] was cancelled, as one error.
    async fn record_refused(&self, deployment: &Deployment, err: &SdkError<TransactWriteItemsError>) -> AwsError {
        let mut error = aws_error("TransactWriteItems", &self.label, err);
        let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = err.as_service_error() else {
            return error;
        };
        let reasons = cancelled.cancellation_reasons();
        let deployment_reason = reasons.get(DEPLOYMENT_ACTION);
        if deployment_reason.and_then(|r| r.code()) == Some(CONDITION_FAILED) {
            let sk = deploy_sk(&deployment.stage, deployment.id);
            let old = match deployment_reason.and_then(|r| r.item()) {
                Some(item) => Some(item.clone()),
                // Not every DynamoDB (moto) returns the old item: read it.
                None => self.get(&deployment.service, &sk).await.ok().flatten(),
            };
            let holder = old.as_ref().and_then(|i| i.get("execution")).and_then(|v| v.as_s().ok());
            error.code = "ConditionalCheckFailedException".to_owned();
            error.message = format!(
                "deployment {} of stage {} is already recorded by another execution ({}), not {}",
                deployment.id,
                deployment.stage,
                holder.map_or("unknown", String::as_str),
                deployment.execution
            );
            error.transient = false;
        } else {
            let transient = |code: &str| {
                matches!(
                    code,
                    "TransactionConflict"
                        | "ThrottlingError"
                        | "ProvisionedThroughputExceeded"
                        | "RequestLimitExceeded"
                )
            };
            error.transient = error.transient || reasons.iter().any(|r| r.code().is_some_and(transient));
        }
        error
    }
}

#[async_trait]
impl History for DynamoHistory {
    async fn deployer(&self) -> Result<Option<DeployerRecord>, AwsError> {
        self.get_record(DEPLOYER_PK, DEPLOYER_SK).await
    }

    async fn put_deployer(&self, record: &DeployerRecord) -> Result<(), AwsError> {
        self.put_record(DEPLOYER_PK, DEPLOYER_SK, record).await
    }

    async fn service(&self, service: &str) -> Result<Option<ServiceRecord>, AwsError> {
        self.get_record(service, SERVICE_SK).await
    }

    async fn put_service(&self, record: &ServiceRecord) -> Result<(), AwsError> {
        self.put_record(&record.service, SERVICE_SK, record).await
    }

    async fn delete_service(&self, service: &str) -> Result<(), AwsError> {
        self.delete(service, SERVICE_SK).await
    }

    async fn stage(&self, service: &str, stage: &str) -> Result<Option<StageRecord>, AwsError> {
        self.get_record(service, &stage_sk(stage)).await
    }

    async fn stages(&self, service: &str) -> Result<Vec<StageRecord>, AwsError> {
        self.query_records(service, "STAGE#").await
    }

    async fn put_stage(&self, record: &StageRecord) -> Result<(), AwsError> {
        self.put_record(&record.service, &stage_sk(&record.stage), record).await
    }

    async fn record(&self, deployment: &Deployment, stage: &StageRecord, lock: &str) -> Result<Commit, AwsError> {
        let mut deployment_item =
            self.record_item(&deployment.service, &deploy_sk(&deployment.stage, deployment.id), deployment)?;
        deployment_item.insert("execution".to_owned(), s(&deployment.execution));
        deployment_item.insert("id".to_owned(), AttributeValue::N(deployment.id.to_string()));
        // The same execution may write its deployment again (a retried step); another
        // execution that computed the same id lost a race and must not overwrite it.
        let put_deployment = Put::builder()
            .table_name(&self.table)
            .set_item(Some(deployment_item))
            .condition_expression("attribute_not_exists(sk) OR #execution = :execution")
            .expression_attribute_names("#execution", "execution")
            .expression_attribute_values(":execution", s(&deployment.execution))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| self.invalid("TransactWriteItems", "deployment", &e))?;
        let sent = self
            .client
            .transact_write_items()
            .transact_items(self.lock_check(&deployment.service, lock, &deployment.execution)?)
            .transact_items(TransactWriteItem::builder().put(put_deployment).build())
            .transact_items(self.put_stage_item(stage)?)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(Commit::Written),
            Err(e) if lock_check_failed(&e) => Ok(Commit::LockLost),
            Err(e) => Err(self.record_refused(deployment, &e).await),
        }
    }

    async fn put_stage_held(&self, stage: &StageRecord, lock: &str, owner: &str) -> Result<Commit, AwsError> {
        let sent = self
            .client
            .transact_write_items()
            .transact_items(self.lock_check(&stage.service, lock, owner)?)
            .transact_items(self.put_stage_item(stage)?)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(Commit::Written),
            Err(e) if lock_check_failed(&e) => Ok(Commit::LockLost),
            Err(e) => Err(aws_error("TransactWriteItems", &self.label, &e)),
        }
    }

    async fn deployment(&self, service: &str, stage: &str, id: u64) -> Result<Option<Deployment>, AwsError> {
        self.get_record(service, &deploy_sk(stage, id)).await
    }

    async fn deployments(
        &self,
        service: &str,
        stage: &str,
        limit: usize,
        start: Option<String>,
    ) -> Result<Page<Deployment>, AwsError> {
        let prefix = format!("DEPLOY#{stage}#");
        // A page of nothing would page forever.
        let limit = limit.max(1);
        let mut exclusive = match start {
            Some(cursor) if cursor.starts_with(&prefix) => Some(key(service, &cursor)),
            Some(cursor) => {
                return Err(AwsError {
                    operation: "Query".to_owned(),
                    resource: self.label.clone(),
                    code: "ValidationException".to_owned(),
                    message: format!("page cursor {cursor:?} is not one of stage {stage}'s deployments"),
                    transient: false,
                })
            }
            None => None,
        };
        // One item more than the page, so `next` is `None` exactly when nothing follows; and
        // repeat, since DynamoDB ends a page at 1 MB however many items it holds.
        let mut items: Vec<Item> = Vec::new();
        loop {
            let want = i32::try_from(limit + 1 - items.len()).unwrap_or(i32::MAX);
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(service))
                .expression_attribute_values(":prefix", s(&prefix))
                .scan_index_forward(false)
                .limit(want)
                .consistent_read(true)
                .set_exclusive_start_key(exclusive.take())
                .send()
                .await
                .map_err(|e| aws_error("Query", &self.label, &e))?;
            items.extend(output.items.unwrap_or_default());
            match output.last_evaluated_key {
                Some(last) if !last.is_empty() && items.len() <= limit => exclusive = Some(last),
                _ => break,
            }
        }
        let more = items.len() > limit;
        items.truncate(limit);
        let next =
            if more { items.last().and_then(|i| i.get("sk")).and_then(|v| v.as_s().ok()).cloned() } else { None };
        let deployments = items.iter().map(|item| self.decode(item, "Query")).collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items: deployments, next })
    }

    async fn delete_deployments(&self, service: &str, stage: &str, ids: &[u64]) -> Result<(), AwsError> {
        for chunk in ids.chunks(BATCH) {
            let mut requests = Vec::with_capacity(chunk.len());
            for id in chunk {
                let delete = DeleteRequest::builder()
                    .set_key(Some(key(service, &deploy_sk(stage, *id))))
                    .build()
                    .map_err(|e| self.invalid("BatchWriteItem", "deployment", &e))?;
                requests.push(WriteRequest::builder().delete_request(delete).build());
            }
            let mut pause = Duration::from_millis(50);
            for attempt in 1..=UNPROCESSED_ATTEMPTS {
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .send()
                    .await
                    .map_err(|e| aws_error("BatchWriteItem", &self.label, &e))?;
                requests = output.unprocessed_items.and_then(|mut u| u.remove(&self.table)).unwrap_or_default();
                if requests.is_empty() {
                    break;
                }
                if attempt == UNPROCESSED_ATTEMPTS {
                    return Err(AwsError {
                        operation: "BatchWriteItem".to_owned(),
                        resource: self.label.clone(),
                        code: "UnprocessedItems".to_owned(),
                        message: format!("{} deletions left unprocessed after {attempt} attempts", requests.len()),
                        transient: true,
                    });
                }
                // DynamoDB leaves items unprocessed when it throttles: back off before repeating.
                tokio::time::sleep(pause).await;
                pause = pause.saturating_mul(2);
            }
        }
        Ok(())
    }

    async fn acquire(
        &self,
        service: &str,
        name: &str,
        owner: &str,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<LockOutcome, AwsError> {
        let lock = Lock { owner: owner.to_owned(), expires_at: lease_end(now, lease) };
        let sk = lock_sk(name);
        let mut item = key(service, &sk);
        item.insert("owner".to_owned(), s(owner));
        item.insert("expires".to_owned(), AttributeValue::N(lock.expires_at.timestamp_millis().to_string()));
        item.insert("expires_at".to_owned(), s(&lock.expires_at.to_rfc3339()));
        for _ in 0..ACQUIRE_ATTEMPTS {
            let sent = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                .condition_expression("attribute_not_exists(pk) OR #owner = :me OR #expires < :now")
                .expression_attribute_names("#owner", "owner")
                .expression_attribute_names("#expires", "expires")
                .expression_attribute_values(":me", s(owner))
                .expression_attribute_values(":now", AttributeValue::N(now.timestamp_millis().to_string()))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .await;
            let Err(err) = sent else { return Ok(LockOutcome::Acquired(lock)) };
            let Some(PutItemError::ConditionalCheckFailedException(refused)) = err.as_service_error() else {
                return Err(aws_error("PutItem", &self.label, &err));
            };
            let current = match refused.item() {
                Some(old) => Some(self.decode_lock(old, "PutItem")?),
                None => self.lock(service, name).await?,
            };
            match current {
                Some(held) if held.owner != owner && !expired(&held, now) => return Ok(LockOutcome::Held(held)),
                // Released, expired or ours between the write and the read: try again.
                _ => continue,
            }
        }
        Err(AwsError {
            operation: "PutItem".to_owned(),
            resource: self.label.clone(),
            code: "LockContention".to_owned(),
            message: format!("lease {name} of {service} changed hands {ACQUIRE_ATTEMPTS} times while taking it"),
            transient: true,
        })
    }

    async fn release(&self, service: &str, name: &str, owner: &str) -> Result<bool, AwsError> {
        self.delete_where(service, &lock_sk(name), "#owner = :me", ("#owner", "owner"), (":me", s(owner))).await
    }

    async fn lock(&self, service: &str, name: &str) -> Result<Option<Lock>, AwsError> {
        match self.get(service, &lock_sk(name)).await? {
            Some(item) => Ok(Some(self.decode_lock(&item, "GetItem")?)),
            None => Ok(None),
        }
    }

    async fn locks(&self, service: &str) -> Result<Vec<(String, Lock)>, AwsError> {
        let items = self.query_all(service, LOCK_PREFIX).await?;
        let mut locks = Vec::with_capacity(items.len());
        for item in &items {
            let sk = item.get("sk").and_then(|v| v.as_s().ok());
            let Some(name) = sk.and_then(|sk| sk.strip_prefix(LOCK_PREFIX)) else {
                return Err(self.invalid("Query", &item_name(item), &"no lease sort key"));
            };
            locks.push((name.to_owned(), self.decode_lock(item, "Query")?));
        }
        Ok(locks)
    }

    async fn versions(&self, service: &str) -> Result<Vec<VersionRecord>, AwsError> {
        self.query_records(service, "VERSION#").await
    }

    async fn put_version(&self, service: &str, version: &VersionRecord) -> Result<(), AwsError> {
        self.put(self.version_item(service, version)?).await
    }

    async fn touch_version(&self, service: &str, version: &VersionRecord) -> Result<bool, AwsError> {
        // PutItem, not UpdateItem: the record is stored whole, and the steps' roles may put.
        self.put_if_present(self.version_item(service, version)?).await
    }

    async fn delete_version(&self, service: &str, version: &VersionRecord) -> Result<(), AwsError> {
        self.delete(service, &version_sk(version)).await
    }

    async fn delete_version_if_unchanged(&self, service: &str, version: &VersionRecord) -> Result<bool, AwsError> {
        self.delete_if_unused_since(service, &version_sk(version), version.used_at).await
    }

    async fn artifacts(&self, service: &str) -> Result<Vec<String>, AwsError> {
        let items = self.query_all(service, ARTIFACT_PREFIX).await?;
        let keys = items.iter().filter_map(|i| i.get("sk")).filter_map(|v| v.as_s().ok());
        Ok(keys.filter_map(|sk| sk.strip_prefix(ARTIFACT_PREFIX)).map(str::to_owned).collect())
    }

    async fn artifact_records(&self, service: &str) -> Result<Vec<ArtifactRecord>, AwsError> {
        let items = self.query_all(service, ARTIFACT_PREFIX).await?;
        let mut records = Vec::with_capacity(items.len());
        for item in &items {
            let sk = item.get("sk").and_then(|v| v.as_s().ok());
            let Some(key_) = sk.and_then(|sk| sk.strip_prefix(ARTIFACT_PREFIX)) else {
                return Err(self.invalid("Query", &item_name(item), &"no artifact sort key"));
            };
            let used = match item.get("used") {
                None => DateTime::<Utc>::default(),
                Some(value) => value
                    .as_n()
                    .ok()
                    .and_then(|n| n.parse::<i64>().ok())
                    .and_then(DateTime::from_timestamp_millis)
                    .ok_or_else(|| self.invalid("Query", &item_name(item), &"`used` is not epoch milliseconds"))?,
            };
            records.push(ArtifactRecord { key: key_.to_owned(), used_at: used });
        }
        Ok(records)
    }

    async fn put_artifact(&self, service: &str, key_: &str, used_at: DateTime<Utc>) -> Result<(), AwsError> {
        self.put(artifact_item(service, key_, used_at)).await
    }

    async fn touch_artifact(&self, service: &str, key_: &str, now: DateTime<Utc>) -> Result<bool, AwsError> {
        // The CLI's role may put but not update; the item holds nothing else to keep.
        self.put_if_present(artifact_item(service, key_, now)).await
    }

    async fn delete_artifact(&self, service: &str, key_: &str) -> Result<(), AwsError> {
        self.delete(service, &format!("{ARTIFACT_PREFIX}{key_}")).await
    }

    async fn delete_artifact_if_unchanged(&self, service: &str, artifact: &ArtifactRecord) -> Result<bool, AwsError> {
        self.delete_if_unused_since(service, &format!("{ARTIFACT_PREFIX}{}", artifact.key), artifact.used_at).await
    }
}

/// The cancellation reason code of an action whose condition failed.
const CONDITION_FAILED: &str = "ConditionalCheckFailed";
/// Where the lock check stands among a held write's actions (their cancellation reasons come in
/// the same order), and the deployment's put in [`History::record`].
const LOCK_CHECK_ACTION: usize = 0;
const DEPLOYMENT_ACTION: usize = 1;

/// Whether a held write was cancelled because its writer no longer holds the lock: the typed
/// cancellation reason of the lock check, never the message.
fn lock_check_failed(err: &SdkError<TransactWriteItemsError>) -> bool {
    let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = err.as_service_error() else {
        return false;
    };
    cancelled.cancellation_reasons().get(LOCK_CHECK_ACTION).and_then(|r| r.code()) == Some(CONDITION_FAILED)
}

const ARTIFACT_PREFIX: &str = "ARTIFACT#";
const LOCK_PREFIX: &str = "LOCK#";

fn artifact_item(service: &str, key_: &str, used_at: DateTime<Utc>) -> Item {
    let mut item = key(service, &format!("{ARTIFACT_PREFIX}{key_}"));
    item.insert("used".to_owned(), millis(used_at));
    item.insert("used_at".to_owned(), s(&used_at.to_rfc3339()));
    item
}

/// A time as the number attribute conditions compare: epoch milliseconds.
fn millis(time: DateTime<Utc>) -> AttributeValue {
    AttributeValue::N(time.timestamp_millis().to_string())
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn key(pk: &str, sk: &str) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

/// `pk/sk` of an item, for error messages.
fn item_name(item: &Item) -> String {
    let part = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).map_or("?", String::as_str).to_owned();
    format!("{}/{}", part("pk"), part("sk"))
}

fn stage_sk(stage: &str) -> String {
    format!("STAGE#{stage}")
}

fn deploy_sk(stage: &str, id: u64) -> String {
    format!("DEPLOY#{stage}#{id:010}")
}

fn lock_sk(name: &str) -> String {
    format!("{LOCK_PREFIX}{name}")
}

fn version_sk(version: &VersionRecord) -> String {
    // Lambda versions are numbers; pad them so they sort as numbers. Anything else sorts as text.
    let number = version.version.parse::<u64>().map_or_else(|_| version.version.clone(), |n| format!("{n:010}"));
    format!("VERSION#{}#{}#{number}", version.region, version.function_name)
}

/// When a lease taken at `now` for `lease` ends, to the millisecond the table stores.
fn lease_end(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
    let end = now.checked_add_signed(lease).unwrap_or(DateTime::<Utc>::MAX_UTC);
    DateTime::from_timestamp_millis(end.timestamp_millis()).unwrap_or(end)
}

/// Whether the lease is over at `now`, to the millisecond, as the condition expression sees it.
fn expired(lock: &Lock, now: DateTime<Utc>) -> bool {
    lock.expires_at.timestamp_millis() < now.timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_keys_sort_as_numbers() {
        assert!(deploy_sk("dev", 9) < deploy_sk("dev", 10));
        assert_eq!(deploy_sk("dev", 42), "DEPLOY#dev#0000000042");
        assert!(!deploy_sk("dev2", 1).starts_with("DEPLOY#dev#"));
    }

    #[test]
    fn version_keys_sort_as_numbers() {
        let v = |n: &str| VersionRecord {
            function_name: "shop-api".into(),
            region: "us-east-1".into(),
            version: n.into(),
            code_sha256: String::new(),
            config_hash: String::new(),
            artifact_key: String::new(),
            used_at: DateTime::default(),
        };
        assert!(version_sk(&v("9")) < version_sk(&v("10")));
        assert_eq!(version_sk(&v("3")), "VERSION#us-east-1#shop-api#0000000003");
    }

    #[test]
    fn a_lease_ends_on_a_whole_millisecond() {
        let now = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        let end = lease_end(now, Duration::from_secs(60));
        assert_eq!(end.timestamp_millis(), now.timestamp_millis() + 60_000);
        assert_eq!(end.timestamp_subsec_nanos() % 1_000_000, 0);
        assert!(!expired(&Lock { owner: "a".into(), expires_at: end }, end));
    }
}
