//! The aliasflow command line as a library: `main.rs` parses and prints; the end-to-end tests
//! call [`run`] in-process with their own AWS settings.

pub mod cli;
pub mod commands;
pub mod engine;
pub mod output;
pub mod progress;
pub mod remote;

use std::time::Duration;

use functions::aws::{CallCounter, Sdk};
use tokio::sync::OnceCell;

pub use commands::run;

/// What commands share: the AWS settings (loaded on first use, so commands that call no AWS
/// API never load them) and the API call counter of the summary.
#[derive(Debug, Default)]
pub struct App {
    sdk: OnceCell<Sdk>,
    /// Every AWS call this process makes, by service and operation.
    pub calls: CallCounter,
    /// First pause while polling Lambda and CloudFormation (tests shorten it).
    pub poll_interval: Option<Duration>,
}

impl App {
    /// AWS settings from the environment, loaded when a command first needs them.
    pub fn from_env() -> Self {
        Self::default()
    }

    /// Given AWS settings (tests: a moto account).
    pub fn with_sdk(sdk: Sdk) -> Self {
        Self { sdk: OnceCell::new_with(Some(sdk)), ..Self::default() }
    }

    /// The AWS settings, with the call counter on every client.
    pub async fn sdk(&self) -> Sdk {
        let sdk = self.sdk.get_or_init(Sdk::from_env).await;
        sdk.clone().with_interceptor(self.calls.interceptor())
    }
}
