//! The AWS adapters: the only code that names the AWS SDK. One adapter per port.
//!
//! Endpoints and credentials come from the SDK's own settings (`AWS_ENDPOINT_URL`,
//! `AWS_REGION`, `AWS_PROFILE`, ...), never from code.

mod artifacts;
mod calls;
mod error;
mod executions;
mod functions;
mod history;
mod stacks;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_runtime_api::client::interceptors::SharedInterceptor;

pub use artifacts::S3Artifacts;
pub use calls::{CallCounter, Count};
pub use error::aws_error;
pub use executions::StepFunctionsApi;
pub use functions::LambdaApi;
pub use history::DynamoHistory;
pub use stacks::CloudFormationApi;

use crate::ports::{Deps, Functions, Regions, Settings, Stacks, SystemClock};

/// The history table's name; `infra/` creates it.
pub const TABLE: &str = "aliasflow-history";

/// The one layer that retries AWS calls (DESIGN.md "Retries in one layer"): the SDK's standard
/// mode, with enough attempts that a quarter of all calls throttled still goes through (a call
/// fails only after 8 throttles in a row: one in 65,536 at that rate), and backoff short enough
/// that a call failing every time gives up within about 20 s (0.25 s doubling to at most 5 s,
/// full jitter), so a permanent error ends the run within DESIGN.md's 60 s. Not the adaptive
/// mode: it slows a client down after every throttle, whatever rate caused it. The state machines
/// do not retry what the SDK gave up on.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(Duration::from_millis(250))
        .with_max_backoff(Duration::from_secs(5))
}

/// Attempts per AWS call, the first included.
pub const MAX_ATTEMPTS: u32 = 8;

/// A client of the SDK crate `$sdk` from the shared settings, in `$region` (`None`: the
/// settings' own), with every interceptor, and `$adjust` applied to its builder.
macro_rules! client {
    ($self:expr, $sdk:ident, $region:expr) => {
        client!($self, $sdk, $region, |builder: $sdk::config::Builder| builder)
    };
    ($self:expr, $sdk:ident, $region:expr, $adjust:expr) => {{
        let mut builder = $sdk::config::Builder::from(&$self.config);
        if let Some(region) = $region {
            builder = builder.region(Region::new(region.to_owned()));
        }
        for interceptor in &$self.interceptors {
            builder.push_interceptor(interceptor.clone());
        }
        $sdk::Client::from_conf(($adjust)(builder).build())
    }};
}

/// The SDK settings, loaded once, plus interceptors every client gets.
#[derive(Debug, Clone)]
pub struct Sdk {
    config: SdkConfig,
    interceptors: Vec<SharedInterceptor>,
}

impl Sdk {
    /// Loads the SDK's usual settings, with aliasflow's retry policy.
    pub async fn from_env() -> Self {
        let config = aws_config::defaults(BehaviorVersion::latest()).retry_config(retry_config()).load().await;
        Self { config, interceptors: Vec::new() }
    }

    /// Wraps an already loaded configuration.
    pub fn new(config: SdkConfig) -> Self {
        Self { config, interceptors: Vec::new() }
    }

    /// Adds an interceptor to every client built from now on (tests use it to pick a moto account).
    #[must_use]
    pub fn with_interceptor(mut self, interceptor: SharedInterceptor) -> Self {
        self.interceptors.push(interceptor);
        self
    }

    /// The region the SDK settings name, if any.
    pub fn region(&self) -> Option<String> {
        self.config.region().map(ToString::to_string)
    }

    /// The loaded settings.
    pub fn config(&self) -> &SdkConfig {
        &self.config
    }

    /// A Lambda client for `region`.
    pub fn lambda(&self, region: &str) -> aws_sdk_lambda::Client {
        client!(self, aws_sdk_lambda, Some(region))
    }

    /// A CloudFormation client for `region`.
    pub fn cloudformation(&self, region: &str) -> aws_sdk_cloudformation::Client {
        client!(self, aws_sdk_cloudformation, Some(region))
    }

    /// A DynamoDB client for `region`.
    pub fn dynamodb(&self, region: &str) -> aws_sdk_dynamodb::Client {
        client!(self, aws_sdk_dynamodb, Some(region))
    }

    /// An S3 client for `region`.
    pub fn s3(&self, region: &str) -> aws_sdk_s3::Client {
        // Virtual-hosted addressing on AWS (path style is deprecated there); path style only
        // against an endpoint of one's own (moto), which does not resolve bucket subdomains.
        let local = self.config.endpoint_url().is_some();
        client!(self, aws_sdk_s3, Some(region), |builder: aws_sdk_s3::config::Builder| builder.force_path_style(local))
    }

    /// A Step Functions client for `region`.
    pub fn sfn(&self, region: &str) -> aws_sdk_sfn::Client {
        client!(self, aws_sdk_sfn, Some(region))
    }

    /// An IAM client (global service).
    pub fn iam(&self) -> aws_sdk_iam::Client {
        client!(self, aws_sdk_iam, None::<&str>)
    }
}

/// Lambda and CloudFormation adapters per region, built on first use.
#[derive(Debug)]
pub struct AwsRegions {
    sdk: Sdk,
    functions: Mutex<BTreeMap<String, Arc<dyn Functions>>>,
    stacks: Mutex<BTreeMap<String, Arc<dyn Stacks>>>,
}

impl AwsRegions {
    /// Adapters built from `sdk`.
    pub fn new(sdk: Sdk) -> Self {
        Self { sdk, functions: Mutex::default(), stacks: Mutex::default() }
    }
}

impl Regions for AwsRegions {
    fn functions(&self, region: &str) -> Arc<dyn Functions> {
        let mut map = self.functions.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(region.to_owned()).or_insert_with(|| Arc::new(LambdaApi::new(self.sdk.lambda(region)))).clone()
    }

    fn stacks(&self, region: &str) -> Arc<dyn Stacks> {
        let mut map = self.stacks.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(region.to_owned())
            .or_insert_with(|| Arc::new(CloudFormationApi::new(self.sdk.cloudformation(region))))
            .clone()
    }
}

impl std::fmt::Debug for dyn Functions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Functions")
    }
}

impl std::fmt::Debug for dyn Stacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stacks")
    }
}

/// The deployer's ports on AWS: history table and artifact bucket in `home_region`.
pub fn deps(sdk: &Sdk, home_region: &str, settings: Settings) -> Deps {
    Deps {
        history: Arc::new(DynamoHistory::new(sdk.dynamodb(home_region), TABLE)),
        artifacts: Arc::new(S3Artifacts::new(sdk.s3(home_region), &settings.bucket)),
        regions: Arc::new(AwsRegions::new(sdk.clone())),
        clock: Arc::new(SystemClock),
        settings,
    }
}
