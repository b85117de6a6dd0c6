//! The artifact bucket in memory: key to bytes, with call counts and injectable failures.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::history::{injected, Calls, Strike};
use crate::error::AwsError;
use crate::ports::{Artifacts, Listed};

/// [`Artifacts`] in memory. Operations are named as the port's methods (`"put"`, `"exists"`,
/// ...) for [`fail_next`](Self::fail_next) and [`calls`](Self::calls); the errors name the S3
/// operation the adapter would have called.
#[derive(Debug, Default)]
pub struct FakeArtifacts {
    /// The bucket: key to bytes, to inspect or to arrange.
    pub objects: Mutex<BTreeMap<String, Vec<u8>>>,
    /// When `put` last wrote each key; an object arranged in `objects` directly has none and is
    /// listed as written long ago.
    pub modified: Mutex<BTreeMap<String, DateTime<Utc>>>,
    calls: Calls,
}

impl FakeArtifacts {
    /// The next `times` calls of `operation` (a method name of [`Artifacts`]) fail with AWS error
    /// `code` and change nothing.
    pub fn fail_next(&self, operation: &str, times: usize, code: &str) {
        self.calls.inject(operation, times, code, Strike::Before);
    }

    /// How many times `operation` (a method name of [`Artifacts`]) was called, failed calls too.
    pub fn calls(&self, operation: &str) -> usize {
        self.calls.count(operation)
    }

    /// Every call count, by operation.
    pub fn call_counts(&self) -> BTreeMap<String, usize> {
        self.calls.counts()
    }

    /// How many calls were made, of every operation: what the budgets count as S3 requests.
    pub fn total_calls(&self) -> usize {
        self.calls.counts().values().sum()
    }

    /// The keys in the bucket.
    pub fn keys(&self) -> Vec<String> {
        self.objects().keys().cloned().collect()
    }

    fn objects(&self) -> MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        self.objects.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn call<T>(
        &self,
        operation: &str,
        aws_operation: &str,
        key: &str,
        body: impl FnOnce(&mut BTreeMap<String, Vec<u8>>) -> T,
    ) -> Result<T, AwsError> {
        let fault = self.calls.enter(operation);
        let resource = format!("s3://fake-artifacts/{key}");
        if let Some((code, Strike::Before)) = &fault {
            return Err(injected(aws_operation, &resource, code));
        }
        let result = body(&mut self.objects());
        match fault {
            Some((code, Strike::After)) => Err(injected(aws_operation, &resource, &code)),
            _ => Ok(result),
        }
    }
}

#[async_trait]
impl Artifacts for FakeArtifacts {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), AwsError> {
        self.call("put", "PutObject", key, |o| {
            o.insert(key.to_owned(), bytes);
        })?;
        self.modified.lock().unwrap_or_else(PoisonError::into_inner).insert(key.to_owned(), Utc::now());
        Ok(())
    }

    async fn exists(&self, key: &str) -> Result<bool, AwsError> {
        self.call("exists", "HeadObject", key, |o| o.contains_key(key))
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, AwsError> {
        self.call("get", "GetObject", key, |o| o.get(key).cloned())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Listed>, AwsError> {
        let keys: Vec<String> = self.call("list", "ListObjectsV2", prefix, |o| {
            o.range(prefix.to_owned()..).take_while(|(k, _)| k.starts_with(prefix)).map(|(k, _)| k.clone()).collect()
        })?;
        let modified = self.modified.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(keys
            .into_iter()
            .map(|key| Listed { modified: modified.get(&key).copied().unwrap_or_default(), key })
            .collect())
    }

    async fn delete(&self, key: &str) -> Result<(), AwsError> {
        self.call("delete", "DeleteObject", key, |o| {
            o.remove(key);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn objects_are_put_listed_by_prefix_and_deleted() {
        let bucket = FakeArtifacts::default();
        bucket.put("shop/api/abc.zip", b"zip".to_vec()).await.unwrap();
        bucket.put("shop/web/def.zip", b"zip2".to_vec()).await.unwrap();
        bucket.put("shopping/x.zip", b"zip3".to_vec()).await.unwrap();
        let listed: Vec<String> = bucket.list("shop/").await.unwrap().into_iter().map(|l| l.key).collect();
        assert_eq!(listed, ["shop/api/abc.zip", "shop/web/def.zip"]);
        assert!(bucket.exists("shop/api/abc.zip").await.unwrap());
        assert_eq!(bucket.get("shop/web/def.zip").await.unwrap(), Some(b"zip2".to_vec()));
        bucket.delete("shop/api/abc.zip").await.unwrap();
        bucket.delete("shop/api/abc.zip").await.unwrap();
        assert!(!bucket.exists("shop/api/abc.zip").await.unwrap());
        assert_eq!(bucket.get("shop/api/abc.zip").await.unwrap(), None);
        assert_eq!(bucket.calls("delete"), 2);
    }

    #[tokio::test]
    async fn an_injected_failure_changes_nothing() {
        let bucket = FakeArtifacts::default();
        bucket.fail_next("put", 1, "SlowDown");
        let err = bucket.put("k", vec![1]).await.unwrap_err();
        assert_eq!((err.operation.as_str(), err.code.as_str(), err.transient), ("PutObject", "SlowDown", true));
        assert!(bucket.keys().is_empty());
        bucket.put("k", vec![1]).await.unwrap();
        assert_eq!(bucket.keys(), ["k"]);
        assert_eq!(bucket.total_calls(), 2);
    }
}
