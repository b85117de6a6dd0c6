//! The artifacts port on S3: one bucket, objects under the keys the port is given.

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use chrono::{DateTime, Utc};

use super::error::aws_error;
use crate::error::AwsError;
use crate::ports::{Artifacts, Listed};

/// [`Artifacts`] on an S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Artifacts {
    client: Client,
    bucket: String,
}

impl S3Artifacts {
    /// The artifacts in `bucket`, reached through `client` (whose region is the bucket's).
    pub fn new(client: Client, bucket: &str) -> Self {
        Self { client, bucket: bucket.to_owned() }
    }

    /// `s3://bucket/key`: the resource an error names.
    fn object(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }
}

#[async_trait]
impl Artifacts for S3Artifacts {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), AwsError> {
        let request = self.client.put_object().bucket(&self.bucket).key(key).body(ByteStream::from(bytes));
        request.send().await.map(drop).map_err(|e| aws_error("PutObject", &self.object(key), &e))
    }

    async fn exists(&self, key: &str) -> Result<bool, AwsError> {
        match self.client.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(_) => Ok(true),
            // HeadObject has no body, so a missing key is only its 404: `NotFound`.
            Err(e)
                if e.as_service_error()
                    .is_some_and(aws_sdk_s3::operation::head_object::HeadObjectError::is_not_found) =>
            {
                Ok(false)
            }
            Err(e) => Err(aws_error("HeadObject", &self.object(key), &e)),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, AwsError> {
        let output = match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(output) => output,
            Err(e)
                if e.as_service_error()
                    .is_some_and(aws_sdk_s3::operation::get_object::GetObjectError::is_no_such_key) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(aws_error("GetObject", &self.object(key), &e)),
        };
        match output.body.collect().await {
            Ok(bytes) => Ok(Some(bytes.into_bytes().to_vec())),
            // The answer started but the body broke off: another attempt may get all of it.
            Err(e) => Err(AwsError {
                operation: "GetObject".to_owned(),
                resource: self.object(key),
                code: "Unreachable".to_owned(),
                message: format!("the object's body broke off: {e}"),
                transient: true,
            }),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Listed>, AwsError> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let output = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| aws_error("ListObjectsV2", &self.object(prefix), &e))?;
            keys.extend(output.contents.unwrap_or_default().into_iter().filter_map(|o| {
                // An object without a time is taken for an old one, as before times were read.
                let modified = o
                    .last_modified
                    .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()))
                    .unwrap_or_default();
                o.key.map(|key| Listed { key, modified })
            }));
            match output.next_continuation_token {
                Some(next) if output.is_truncated.unwrap_or(false) => token = Some(next),
                _ => return Ok(keys),
            }
        }
    }

    async fn delete(&self, key: &str) -> Result<(), AwsError> {
        // S3 answers 204 for a key that is not there, so a missing key needs no special case.
        let request = self.client.delete_object().bucket(&self.bucket).key(key);
        request.send().await.map(drop).map_err(|e| aws_error("DeleteObject", &self.object(key), &e))
    }
}
