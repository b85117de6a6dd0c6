use async_trait::async_trait;

use crate::error::AwsError;

/// The artifact bucket: content-addressed code zips, placeholder code, large templates.
#[async_trait]
pub trait Artifacts: Send + Sync {
    /// Stores `bytes` at `key` (overwriting: keys are content addresses).
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), AwsError>;
    /// Whether `key` exists.
    async fn exists(&self, key: &str) -> Result<bool, AwsError>;
    /// The bytes at `key`, `None` when it does not exist.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, AwsError>;
    /// Every key under `prefix`.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, AwsError>;
    /// Deletes `key`; a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<(), AwsError>;
}
