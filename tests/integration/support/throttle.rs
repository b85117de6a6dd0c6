//! An HTTP client in front of moto that injects what moto never answers: throttling of a share
//! of all requests, drawn at random (seeded, so a run repeats), answered as each AWS protocol
//! answers it (Lambda 429 `TooManyRequestsException`, DynamoDB `ThrottlingException`,
//! CloudFormation `Throttling`, S3 503 `SlowDown`); and a 500 for every request of one
//! operation. The real adapters and aliasflow's own SDK retry policy meet them as on AWS.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;

/// Which requests answer 500 every time: (HTTP method, a part of the path), e.g. Lambda's
/// `PublishVersion` is `("POST", "/versions")`.
pub type Broken = (&'static str, &'static str);

/// Wraps `inner`; each request (across all clients) is throttled with probability 1/`every`, and
/// requests matching `broken` fail with a 500.
#[derive(Debug, Clone)]
pub struct Throttling {
    inner: SharedHttpClient,
    every: u64,
    broken: Arc<Mutex<Option<Broken>>>,
    count: Arc<AtomicU64>,
    throttled: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    random: Arc<AtomicU64>,
}

impl Throttling {
    /// Throttles one request in `every`, on average (`0`: none).
    pub fn new(inner: SharedHttpClient, every: u64) -> Self {
        Self {
            inner,
            every,
            broken: Arc::default(),
            count: Arc::default(),
            throttled: Arc::default(),
            failed: Arc::default(),
            random: Arc::new(AtomicU64::new(0x9E37_79B9_7F4A_7C15)),
        }
    }

    /// From now on answers every request matching `broken` with a 500 (`None`: repaired).
    pub fn set_broken(&self, broken: Option<Broken>) {
        *self.broken.lock().unwrap_or_else(PoisonError::into_inner) = broken;
    }

    /// How many requests were answered with the injected 500.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::SeqCst)
    }

    /// The next pseudo-random number (xorshift64), shared by every connector of the client.
    fn draw(&self) -> u64 {
        let mut x = self.random.load(Ordering::SeqCst);
        loop {
            let mut next = x;
            next ^= next << 13;
            next ^= next >> 7;
            next ^= next << 17;
            match self.random.compare_exchange(x, next, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return next,
                Err(current) => x = current,
            }
        }
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
        self.client.count.fetch_add(1, Ordering::SeqCst);
        let broken = *self.client.broken.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((method, path)) = broken {
            if request.method() == method && request.uri().contains(path) {
                self.client.failed.fetch_add(1, Ordering::SeqCst);
                return HttpConnectorFuture::ready(Ok(internal_error()));
            }
        }
        if self.client.every == 0 || !self.client.draw().is_multiple_of(self.client.every) {
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

/// Lambda's answer to a request its service failed: 500 `ServiceException` (the SDK retries it
/// as transient, as it would on AWS).
fn internal_error() -> HttpResponse {
    let body = r#"{"Type":"Service","message":"injected: the service failed"}"#;
    let status = StatusCode::try_from(500).expect("500 is a status");
    let mut response = HttpResponse::new(status, SdkBody::from(body));
    response.headers_mut().insert("x-amzn-errortype", "ServiceException");
    response.headers_mut().insert("content-type", "application/json");
    response
}
