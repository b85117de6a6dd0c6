//! A moto account with the deployer bootstrapped and a copy of the example service, driven
//! through the CLI in-process (`aliasflow::run`, `--output json`): where the end-to-end tests of
//! the commands start.

use std::collections::BTreeMap;
use std::time::Duration;

use aliasflow::cli::Cli;
use aliasflow::commands::CliError;
use aliasflow::output::Reply;
use aliasflow::App;
use clap::Parser;
use functions::aws::DynamoHistory;
use serde_json::Value;

use crate::support::moto::{self, Account, REGION};
use crate::support::workspace::Workspace;

/// The account and the service.
pub struct World {
    /// The test's own moto account.
    pub account: Account,
    /// The example service, to change.
    pub example: Workspace,
}

impl World {
    /// A fresh account, bootstrapped, with a copy of `examples/shop`.
    pub async fn new() -> Self {
        let world = Self::unbootstrapped().await;
        world.ok(&["bootstrap"]).await;
        world
    }

    /// A fresh account without the deployer, with a copy of `examples/shop`.
    pub async fn unbootstrapped() -> Self {
        Self { account: moto::account().await, example: Workspace::example("shop") }
    }

    /// A CLI application on the account, counting its own calls, polling without long pauses.
    pub fn app(&self) -> App {
        let mut app = App::with_sdk(self.account.sdk.clone());
        app.poll_interval = Some(Duration::from_millis(20));
        app
    }

    /// `aliasflow -f <example> --output json <args>` on `app`.
    pub async fn run_with(&self, app: &App, args: &[&str]) -> Result<Reply, CliError> {
        let file = self.example.path("aliasflow.yaml");
        let file = file.to_string_lossy();
        let argv = ["aliasflow", "-f", file.as_ref(), "--output", "json"].into_iter().chain(args.iter().copied());
        aliasflow::run(&Cli::parse_from(argv), app).await
    }

    /// [`run_with`](Self::run_with) on a fresh application.
    pub async fn run(&self, args: &[&str]) -> Result<Reply, CliError> {
        self.run_with(&self.app(), args).await
    }

    /// The JSON reply of a command that must succeed.
    pub async fn ok(&self, args: &[&str]) -> Value {
        match self.run(args).await {
            Ok(reply) => reply.json,
            Err(e) => panic!("aliasflow {}: {e}", args.join(" ")),
        }
    }

    /// The error of a command that must fail.
    pub async fn refused(&self, args: &[&str]) -> CliError {
        match self.run(args).await {
            Ok(reply) => panic!("aliasflow {} succeeded: {}", args.join(" "), reply.json),
            Err(e) => e,
        }
    }

    /// The history table, read directly.
    pub fn history(&self) -> DynamoHistory {
        DynamoHistory::new(self.account.sdk.dynamodb(REGION), functions::aws::TABLE)
    }

    /// Lambda of the home region, read directly.
    pub fn lambda(&self) -> aws_sdk_lambda::Client {
        self.account.sdk.lambda(REGION)
    }

    /// `status --output json` of every live stage: one record per stage and function.
    pub async fn status(&self) -> Vec<Value> {
        self.ok(&["status"]).await.as_array().cloned().unwrap_or_default()
    }

    /// What `status` says about `stage`: function (manifest key) -> its record.
    pub async fn stage_status(&self, stage: &str) -> BTreeMap<String, Value> {
        let records = self.status().await.into_iter().filter(|r| r["stage"] == stage);
        records.map(|r| (r["function"].as_str().unwrap_or_default().to_owned(), r)).collect()
    }

    /// `history --stage S --output json`.
    pub async fn stage_history(&self, stage: &str) -> Vec<Value> {
        self.ok(&["history", "--stage", stage]).await.as_array().cloned().unwrap_or_default()
    }
}

/// How many calls of AWS `service` (e.g. `CloudFormation`) `app` made.
pub fn calls_to(app: &App, service: &str) -> u64 {
    app.calls.by_service().get(service).copied().unwrap_or(0)
}

/// How many calls of `service`'s `operation` (e.g. `Lambda`, `PublishVersion`) `app` made.
pub fn calls_of(app: &App, service: &str, operation: &str) -> u64 {
    app.calls.snapshot().get(&(service.to_owned(), operation.to_owned())).map_or(0, |c| c.calls)
}
