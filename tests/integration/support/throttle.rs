//! An HTTP client that throttles every n-th request before it reaches moto, answering as each
//! AWS protocol answers throttling (Lambda 429 `TooManyRequestsException`, DynamoDB
//! `ThrottlingException`, CloudFormation `Throttling`, S3 503 `SlowDown`), so the real adapters
//! and the SDK's retry policy meet throttling the way they would on AWS. moto never throttles.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;

/// Wraps `inner`; every `every`-th request (counted across all clients) is throttled.
#[derive(Debug, Clone)]
pub struct Throttling {
    inner: SharedHttpClient,
    every: u64,
    count: Arc<AtomicU64>,
    throttled: Arc<AtomicU64>,
}

impl Throttling {
    /// Throttles one request in `every`.
    pub fn new(inner: SharedHttpClient, every: u64) -> Self {
        Self { inner, every, count: Arc::default(), throttled: Arc::default() }
    }

    /// How many requests were throttled so far.
    pub fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::SeqCst)
    }

    /// How many requests were made so far (throttled ones included).
    pub fn requests(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }
}

impl HttpClient for Throttling {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(Connector {
            inner: self.inner.http_connector(settings, components),
            client: self.clone(),
        })
    }
}

#[derive(Debug)]
struct Connector {
    inner: SharedHttpConnector,
    client: Throttling,
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let n = self.client.count.fetch_add(1, Ordering::SeqCst) + 1;
        if !n.is_multiple_of(self.client.every) {
            return self.inner.call(request);
        }
        self.client.throttled.fetch_add(1, Ordering::SeqCst);
        HttpConnectorFuture::ready(Ok(throttled(&request)))
    }
}

/// The throttling answer of the request's protocol.
fn throttled(request: &HttpRequest) -> HttpResponse {
    let target = request.headers().get("x-amz-target").unwrap_or_default();
    let body = request.body().bytes().unwrap_or_default();
    let (status, headers, body): (u16, Vec<(&str, &str)>, String) = if target.starts_with("DynamoDB_") {
        let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate exceeded"}"#;
        (400, vec![("content-type", "application/x-amz-json-1.0")], body.to_owned())
    } else if body.starts_with(b"Action=") {
        let body = "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>throttled</RequestId></ErrorResponse>";
        (400, vec![("content-type", "text/xml")], body.to_owned())
    } else if request.uri().contains("/20") && !target.is_empty() || request.uri().contains("/2015-03-31/") {
        let body = r#"{"Type":"User","message":"Rate exceeded"}"#;
        (
            429,
            vec![("x-amzn-errortype", "TooManyRequestsException"), ("content-type", "application/json")],
            body.to_owned(),
        )
    } else {
        let body = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
        (503, vec![("content-type", "application/xml")], body.to_owned())
    };
    let status = StatusCode::try_from(status).unwrap_or_else(|_| StatusCode::try_from(500).expect("500 is a status"));
    let mut response = HttpResponse::new(status, SdkBody::from(body));
    for (name, value) in headers {
        response.headers_mut().insert(name, value);
    }
    response
}
