use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::AwsError;

/// One object as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its key.
    pub key: String,
    /// When it was last written: garbage collection leaves a fresh object without a record
    /// alone (the CLI uploads an artifact before it records it).
    pub modified: DateTime<Utc>,
}

/// The artifact bucket: content-addressed code zips, placeholder code, large templates.
#[async_trait]
pub trait Artifacts: Send + Sync {
    /// Stores `bytes` at `key` (overwriting: keys are content addresses).
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), AwsError>;
    /// Whether `key` exists.
    async fn exists(&self, key: &str) -> Result<bool, AwsError>;
    /// The bytes at `key`, `None` when it does not exist.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, AwsError>;
    /// Every object under `prefix`, in key order.
    async fn list(&self, prefix: &str) -> Result<Vec<Listed>, AwsError>;
    /// Deletes `key`; a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<(), AwsError>;
}
