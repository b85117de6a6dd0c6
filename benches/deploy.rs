//! `cargo bench --bench deploy`: what a deploy of a generated service of n functions costs
//! against moto, next to the budgets of DESIGN.md "Budgets and guarantees".
//!
//! The service (n functions, default 50, `ALIASFLOW_BENCH_FUNCTIONS=<n>` overrides; `logs:
//! service`, no API, no stage resources) is written to a temporary folder and deployed with the
//! CLI in-process (`aliasflow::run`) into a fresh moto account:
//! 1. `bootstrap`, then `deploy --stage bench` to a fresh stage,
//! 2. a code-only change of one function, `deploy --stage bench` again,
//! 3. `deploy --stage bench` with nothing changed,
//! 4. the baseline: a plain SDK program that does `UpdateFunctionCode` (S3 artifact), waits while
//!    `LastUpdateStatus` is `InProgress`, `PublishVersion` and `UpdateAlias` for (a) all n
//!    functions, (b) one function, on 8 concurrent tasks.
//!
//! Runs 2, 3 and 4 repeat (`ALIASFLOW_BENCH_REPEATS`, default 3), interleaved, and the table shows
//! min and median. The baseline moves an alias of its own (`baseline`), so the stage's aliases
//! and history stay aliasflow's. Calls are counted per service and operation with the same
//! `CallCounter` the CLI's summary uses, and timed by an interceptor of the bench's own: latency
//! per operation, and how much of the wall time at least one call was under way ("in AWS
//! calls"; the rest is aliasflow's own work). Nothing is asserted: budgets are printed
//! "ok"/"OVER".
//! The last line of stdout is one JSON document with every figure, for scripts; the CLI's own
//! progress goes to stderr (`2>/dev/null` leaves only the report).

// A benchmark reports on stdout (the table and the JSON line) and marks its phases on stderr,
// between the deploy progress lines the CLI prints there.
#![allow(clippy::print_stdout, clippy::print_stderr)]

// The integration tests' fixtures, whole: `moto.rs` uses its sibling modules. The bench uses only
// `moto::account`; the rest is the tests'.
#[path = "../tests/integration/support/mod.rs"]
#[allow(dead_code)]
mod support;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aliasflow::cli::Cli;
use aliasflow::output::table;
use aliasflow::App;
use anyhow::{anyhow, bail, Context};
use aws_sdk_lambda::error::DisplayErrorContext;
use aws_sdk_lambda::types::LastUpdateStatus;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::{Intercept, SharedInterceptor};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use clap::Parser;
use functions::artifact;
use functions::aws::{CallCounter, Count};
use futures::{StreamExt, TryStreamExt};
use serde_json::{json, Value};

use crate::support::moto::{self, Account, REGION};

/// The service's name, and the stage every run deploys.
const SERVICE: &str = "bench";
const STAGE: &str = "bench";
/// The alias the baseline program moves (the stage's aliases stay aliasflow's).
const BASELINE_ALIAS: &str = "baseline";
/// Concurrent tasks of the baseline, like the `PublishVersions` Map's `MaxConcurrency`.
const CONCURRENCY: usize = 8;
const DEFAULT_FUNCTIONS: usize = 50;
const DEFAULT_REPEATS: usize = 3;
/// Functions whose code run 2 changes.
const CHANGED: u64 = 1;

/// One finished AWS call: service, operation, start and end.
type TimedCall = (String, String, Instant, Instant);

/// When each AWS call ran, by (service, operation): where a run's wall time goes.
#[derive(Debug, Clone, Default)]
struct CallTimer {
    calls: Arc<Mutex<Vec<TimedCall>>>,
}

/// The start of a call, kept in its config bag until it ends.
#[derive(Debug, Clone)]
struct Started(Instant);

impl Storable for Started {
    type Storer = StoreReplace<Self>;
}

impl CallTimer {
    fn interceptor(&self) -> SharedInterceptor {
        SharedInterceptor::new(self.clone())
    }

    /// Summed latency by (service, operation), and how long at least one call was running.
    fn figures(&self) -> (BTreeMap<(String, String), Duration>, Duration) {
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let mut latency: BTreeMap<(String, String), Duration> = BTreeMap::new();
        for (service, operation, start, end) in &calls {
            *latency.entry((service.clone(), operation.clone())).or_default() += end.duration_since(*start);
        }
        calls.sort_by_key(|(_, _, start, _)| *start);
        let mut busy = Duration::ZERO;
        let mut covered: Option<(Instant, Instant)> = None;
        for (_, _, start, end) in calls {
            covered = match covered {
                Some((from, to)) if start <= to => Some((from, to.max(end))),
                Some((from, to)) => {
                    busy += to.duration_since(from);
                    Some((start, end))
                }
                None => Some((start, end)),
            };
        }
        if let Some((from, to)) = covered {
            busy += to.duration_since(from);
        }
        (latency, busy)
    }
}

impl Intercept for CallTimer {
    fn name(&self) -> &'static str {
        "CallTimer"
    }

    // Where `CallCounter` counts: the operation's metadata is in the bag from here on.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(Started(Instant::now()));
        Ok(())
    }

    fn read_after_execution(
        &self,
        _context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let end = Instant::now();
        if let (Some(Started(start)), Some(metadata)) = (cfg.load::<Started>(), cfg.load::<Metadata>()) {
            let call = (metadata.service().to_owned(), metadata.name().to_owned(), *start, end);
            self.calls.lock().unwrap_or_else(PoisonError::into_inner).push(call);
        }
        Ok(())
    }
}

/// Figures of one run.
#[derive(Debug, Clone, Default)]
struct Run {
    /// Calls by (service, operation).
    calls: BTreeMap<(String, String), Count>,
    /// Summed latency of the calls by (service, operation).
    latency: BTreeMap<(String, String), Duration>,
    /// How long at least one AWS call was under way.
    aws_busy: Duration,
    /// `state_transitions` of the summary (deploys only).
    transitions: Option<u64>,
    /// Wall time of the whole command in this process (manifest, packaging, engine).
    wall: Duration,
    /// `seconds` of the summary: from after packaging to the end.
    reported_seconds: Option<f64>,
    /// `result.published` of the summary (deploys only).
    published: Option<u64>,
}

impl Run {
    fn service(&self, service: &str) -> u64 {
        self.calls.iter().filter(|((s, _), _)| s == service).map(|(_, c)| c.calls).sum()
    }

    fn operation(&self, service: &str, operation: &str) -> u64 {
        self.calls.get(&(service.to_owned(), operation.to_owned())).map_or(0, |c| c.calls)
    }

    fn total(&self) -> u64 {
        self.calls.values().map(|c| c.calls).sum()
    }

    fn other_services(&self) -> u64 {
        self.total() - MAIN_SERVICES.iter().map(|s| self.service(s)).sum::<u64>()
    }

    fn retries(&self) -> u64 {
        self.calls.values().map(|c| c.attempts.saturating_sub(c.calls)).sum()
    }

    fn latency(&self, service: &str, operation: &str) -> Duration {
        self.latency.get(&(service.to_owned(), operation.to_owned())).copied().unwrap_or_default()
    }

    fn json(&self) -> Value {
        let mut calls: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
        for ((service, operation), count) in &self.calls {
            calls.entry(service).or_default().insert(operation, count.calls);
        }
        let mut latency: BTreeMap<&str, BTreeMap<&str, f64>> = BTreeMap::new();
        for ((service, operation), spent) in &self.latency {
            latency.entry(service).or_default().insert(operation, secs(*spent));
        }
        json!({
            "calls": calls,
            "latency_seconds": latency,
            "aws_busy_seconds": secs(self.aws_busy),
            "retried_attempts": self.retries(),
            "state_transitions": self.transitions,
            "published": self.published,
            "seconds": secs(self.wall),
            "reported_seconds": self.reported_seconds,
        })
    }
}

/// The services the table has a column for.
const MAIN_SERVICES: [&str; 4] = ["CloudFormation", "Lambda", "DynamoDB", "S3"];

/// The generated service in a temporary folder, removed on drop.
#[derive(Debug)]
struct Service {
    root: PathBuf,
    names: Vec<String>,
}

impl Service {
    /// Writes the manifest and n code folders, each with its own `bootstrap`.
    fn generate(n: usize) -> anyhow::Result<Self> {
        let root = std::env::temp_dir().join(format!("aliasflow-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let names: Vec<String> = (1..=n).map(|i| format!("f{i:03}")).collect();
        let mut manifest = format!(
            "# Generated by benches/deploy.rs: {n} functions, no API, no stage resources.\n\
             service: {SERVICE}\nregion: {REGION}\nruntime: provided.al2023\narchitecture: arm64\n\
             logs: service\nfunctions:\n"
        );
        for name in &names {
            manifest.push_str(&format!("  {name}:\n    code: functions/{name}\n"));
            write_executable(&root.join("functions").join(name).join("bootstrap"), &bootstrap(name, "v0"))?;
        }
        std::fs::write(root.join("aliasflow.yaml"), manifest).context("write the manifest")?;
        Ok(Self { root, names })
    }

    fn manifest(&self) -> PathBuf {
        self.root.join("aliasflow.yaml")
    }

    /// Gives function `name` new code.
    fn change_code(&self, name: &str, revision: &str) -> anyhow::Result<()> {
        write_executable(&self.root.join("functions").join(name).join("bootstrap"), &bootstrap(name, revision))
    }

    /// Zips code for the baseline program: distinct from every other revision of the function.
    fn baseline_package(&self, name: &str, revision: &str) -> anyhow::Result<artifact::Package> {
        let folder = self.root.join("baseline").join(revision).join(name);
        write_executable(&folder.join("bootstrap"), &bootstrap(name, &format!("baseline {revision}")))?;
        artifact::package(&folder).with_context(|| format!("package {}", folder.display()))
    }

    /// Runs one aliasflow command in-process, with a fresh call counter.
    async fn aliasflow(&self, account: &Account, args: &[&str]) -> anyhow::Result<(Run, Value)> {
        let timer = CallTimer::default();
        let app = App::with_sdk(account.sdk.clone().with_interceptor(timer.interceptor()));
        let manifest = self.manifest();
        let manifest = manifest.to_string_lossy();
        let argv = ["aliasflow", "-f", manifest.as_ref(), "--output", "json"].into_iter().chain(args.iter().copied());
        let cli = Cli::try_parse_from(argv)?;
        let started = Instant::now();
        let reply = aliasflow::run(&cli, &app).await.map_err(|e| anyhow!("aliasflow {}: {e}", args.join(" ")))?;
        let wall = started.elapsed();
        let json = reply.json;
        let (latency, aws_busy) = timer.figures();
        let run = Run {
            calls: app.calls.snapshot(),
            latency,
            aws_busy,
            transitions: json["state_transitions"].as_u64(),
            wall,
            reported_seconds: json["seconds"].as_f64(),
            published: json["result"]["published"].as_u64(),
        };
        Ok((run, json))
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn bootstrap(name: &str, revision: &str) -> String {
    format!("#!/bin/sh\n# aliasflow benchmark function {name}, code {revision}\nexec echo {name}\n")
}

fn write_executable(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod {}", path.display()))
}

fn env_count(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(text) => match text.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => bail!("{name}={text}: give a whole number above 0"),
        },
        Err(_) => Ok(default),
    }
}

fn phase(text: &str) {
    eprintln!("==== benches/deploy: {text} ====");
}

/// The plain SDK program's part for one function: new code from S3, wait, publish, move alias.
async fn update_publish_point(
    lambda: &aws_sdk_lambda::Client,
    bucket: &str,
    function: &str,
    key: &str,
) -> anyhow::Result<()> {
    let failed = |operation: &str, e: &dyn std::fmt::Display| anyhow!("{operation} {function}: {e}");
    let updated = lambda
        .update_function_code()
        .function_name(function)
        .s3_bucket(bucket)
        .s3_key(key)
        .send()
        .await
        .map_err(|e| failed("UpdateFunctionCode", &DisplayErrorContext(&e)))?;
    let mut status = updated.last_update_status().cloned();
    let mut pause = Duration::from_millis(100);
    while status == Some(LastUpdateStatus::InProgress) {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
        let current = lambda
            .get_function_configuration()
            .function_name(function)
            .send()
            .await
            .map_err(|e| failed("GetFunctionConfiguration", &DisplayErrorContext(&e)))?;
        status = current.last_update_status().cloned();
    }
    let published = lambda
        .publish_version()
        .function_name(function)
        .send()
        .await
        .map_err(|e| failed("PublishVersion", &DisplayErrorContext(&e)))?;
    let version = published.version().ok_or_else(|| anyhow!("PublishVersion {function}: no version"))?;
    lambda
        .update_alias()
        .function_name(function)
        .name(BASELINE_ALIAS)
        .function_version(version)
        .send()
        .await
        .map_err(|e| failed("UpdateAlias", &DisplayErrorContext(&e)))?;
    Ok(())
}

/// Times the baseline over `work` (function, artifact key) on [`CONCURRENCY`] tasks.
async fn baseline(account: &Account, bucket: &str, work: Vec<(String, String)>) -> anyhow::Result<Run> {
    let counter = CallCounter::default();
    let timer = CallTimer::default();
    let sdk = account.sdk.clone().with_interceptor(counter.interceptor()).with_interceptor(timer.interceptor());
    let lambda = sdk.lambda(REGION);
    let queue = Arc::new(Mutex::new(VecDeque::from(work)));
    let started = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let queue = Arc::clone(&queue);
            let lambda = lambda.clone();
            let bucket = bucket.to_owned();
            tokio::spawn(async move {
                loop {
                    let next = queue.lock().unwrap_or_else(PoisonError::into_inner).pop_front();
                    let Some((function, key)) = next else {
                        return Ok::<_, anyhow::Error>(());
                    };
                    update_publish_point(&lambda, &bucket, &function, &key).await?;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await??;
    }
    let wall = started.elapsed();
    let (latency, aws_busy) = timer.figures();
    Ok(Run { calls: counter.snapshot(), latency, aws_busy, wall, ..Run::default() })
}

/// Untimed: uploads one new baseline artifact per function, returns (function, key) pairs.
async fn baseline_artifacts(
    account: &Account,
    bucket: &str,
    service: &Service,
    functions: &[String],
    revision: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let s3 = account.sdk.s3(REGION);
    let mut work = Vec::new();
    for name in functions {
        let package = service.baseline_package(name, revision)?;
        let key = format!("benchmark/baseline/{}.zip", package.sha256_hex);
        work.push((format!("{SERVICE}-{name}"), key, package.bytes));
    }
    futures::stream::iter(work)
        .map(|(function, key, bytes)| {
            let s3 = s3.clone();
            async move {
                let body = aws_sdk_s3::primitives::ByteStream::from(bytes);
                s3.put_object()
                    .bucket(bucket)
                    .key(&key)
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| anyhow!("PutObject {key}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)))?;
                Ok::<_, anyhow::Error>((function, key))
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await
}

/// Untimed: the baseline's own alias on every function, where the stage's alias points.
async fn baseline_aliases(account: &Account, functions: &[String]) -> anyhow::Result<()> {
    let lambda = account.sdk.lambda(REGION);
    futures::stream::iter(functions)
        .map(|name| {
            let lambda = lambda.clone();
            async move {
                let function = format!("{SERVICE}-{name}");
                let alias = lambda
                    .get_alias()
                    .function_name(&function)
                    .name(STAGE)
                    .send()
                    .await
                    .map_err(|e| anyhow!("GetAlias {function}: {}", DisplayErrorContext(&e)))?;
                let version = alias.function_version().unwrap_or("$LATEST");
                lambda
                    .create_alias()
                    .function_name(&function)
                    .name(BASELINE_ALIAS)
                    .function_version(version)
                    .send()
                    .await
                    .map_err(|e| anyhow!("CreateAlias {function}: {}", DisplayErrorContext(&e)))?;
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await
        .map(drop)
}

fn secs(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1000.0).round() / 1000.0
}

/// Min, median and max of the figure `f` over `runs`.
fn spread(runs: &[Run], f: impl Fn(&Run) -> f64) -> (f64, f64, f64) {
    let mut values: Vec<f64> = runs.iter().map(f).collect();
    values.sort_by(f64::total_cmp);
    let Some((&min, &max)) = values.first().zip(values.last()) else {
        return (0.0, 0.0, 0.0);
    };
    let middle = values.len() / 2;
    let median = if values.len() % 2 == 1 { values[middle] } else { (values[middle - 1] + values[middle]) / 2.0 };
    (min, median, max)
}

/// A count over the repeats: "17", or "17 (15-19)" when they differ.
fn count_cell(runs: &[Run], f: impl Fn(&Run) -> u64) -> String {
    let (min, median, max) = spread(runs, |r| f(r) as f64);
    if (max - min).abs() < f64::EPSILON {
        format!("{median}")
    } else {
        format!("{median} ({min}-{max})")
    }
}

fn median_count(runs: &[Run], f: impl Fn(&Run) -> u64) -> f64 {
    spread(runs, |r| f(r) as f64).1
}

/// "Lambda: PublishVersion 1 x 9 ms, UpdateAlias 1 x 7 ms": calls and latency per call, medians
/// over the repeats.
fn operations(runs: &[Run]) -> Vec<String> {
    let mut names: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for run in runs {
        for (service, operation) in run.calls.keys() {
            let ops = names.entry(service).or_default();
            if !ops.contains(&operation.as_str()) {
                ops.push(operation);
            }
        }
    }
    names
        .into_iter()
        .map(|(service, mut ops)| {
            ops.sort_unstable();
            let listed: Vec<String> = ops
                .iter()
                .map(|op| {
                    let calls = count_cell(runs, |r| r.operation(service, op));
                    let (_, each, _) = spread(runs, |r| {
                        r.latency(service, op).as_secs_f64() * 1000.0 / r.operation(service, op).max(1) as f64
                    });
                    format!("{op} {calls} x {each:.0} ms")
                })
                .collect();
            format!("{service}: {}", listed.join(", "))
        })
        .collect()
}

fn row(label: &str, runs: &[Run], deploy: bool) -> Vec<String> {
    let (min, median, _) = spread(runs, |r| r.wall.as_secs_f64());
    let mut cells = vec![label.to_owned()];
    for service in MAIN_SERVICES {
        cells.push(count_cell(runs, |r| r.service(service)));
    }
    cells.push(count_cell(runs, Run::other_services));
    cells.push(if deploy { count_cell(runs, |r| r.transitions.unwrap_or_default()) } else { "-".to_owned() });
    cells.push(format!("{min:.3} s"));
    cells.push(format!("{median:.3} s"));
    let (_, busy, _) = spread(runs, |r| r.aws_busy.as_secs_f64());
    cells.push(format!("{busy:.3} s"));
    cells
}

/// One budget line of DESIGN.md and the figure measured against it.
#[derive(Debug)]
struct Budget {
    rule: String,
    measured: String,
    ok: bool,
}

impl Budget {
    fn new(rule: String, measured: String, ok: bool) -> Self {
        Self { rule, measured, ok }
    }

    fn mark(&self) -> &'static str {
        if self.ok {
            "ok"
        } else {
            "OVER"
        }
    }
}

/// Everything measured.
#[derive(Debug)]
struct Results {
    n: usize,
    repeats: usize,
    account: String,
    bootstrap: Run,
    first: Run,
    code_only: Vec<Run>,
    unchanged: Vec<Run>,
    baseline_all: Vec<Run>,
    baseline_one: Vec<Run>,
}

impl Results {
    fn budgets(&self) -> Vec<Budget> {
        let n = self.n as u64;
        let calls_limit = 3 * n + 10;
        let transitions_limit = 2 * n + 25;
        let code = &self.code_only;
        let same = &self.unchanged;
        let mut budgets = Vec::new();

        let worst = |runs: &[Run], f: &dyn Fn(&Run) -> u64| runs.iter().map(f).max().unwrap_or_default();
        let cfn = worst(code, &|r| r.service("CloudFormation"));
        budgets.push(Budget::new("code-only deploy: 0 CloudFormation calls".into(), cfn.to_string(), cfn == 0));
        let besides_s3 = worst(code, &|r| r.total() - r.service("S3"));
        budgets.push(Budget::new(
            format!("code-only deploy: calls besides S3 <= 3n+10 = {calls_limit}"),
            besides_s3.to_string(),
            besides_s3 <= calls_limit,
        ));
        let s3 = worst(code, &|r| r.service("S3"));
        budgets.push(Budget::new(
            format!("code-only deploy: S3 requests <= changed artifacts = {CHANGED}"),
            s3.to_string(),
            s3 <= CHANGED,
        ));
        let (_, deploy, _) = spread(code, |r| r.wall.as_secs_f64());
        let (_, one, _) = spread(&self.baseline_one, |r| r.wall.as_secs_f64());
        let (_, all, _) = spread(&self.baseline_all, |r| r.wall.as_secs_f64());
        budgets.push(Budget::new(
            format!(
                "code-only deploy: wall time <= 1.5 x baseline (1 function, median {one:.3} s) = {:.3} s",
                1.5 * one
            ),
            format!("{deploy:.3} s ({:.1}x)", deploy / one.max(f64::EPSILON)),
            deploy <= 1.5 * one,
        ));
        budgets.push(Budget::new(
            format!(
                "code-only deploy: wall time <= 1.5 x baseline ({} functions, median {all:.3} s) = {:.3} s",
                self.n,
                1.5 * all
            ),
            format!("{deploy:.3} s ({:.1}x)", deploy / all.max(f64::EPSILON)),
            deploy <= 1.5 * all,
        ));
        let publishes = worst(same, &|r| r.operation("Lambda", "PublishVersion"));
        budgets.push(Budget::new(
            "nothing-changed deploy: no PublishVersion".into(),
            publishes.to_string(),
            publishes == 0,
        ));
        let cfn = worst(same, &|r| r.service("CloudFormation"));
        budgets.push(Budget::new("nothing-changed deploy: no CloudFormation call".into(), cfn.to_string(), cfn == 0));
        let s3 = worst(same, &|r| r.service("S3"));
        budgets.push(Budget::new(
            "nothing-changed deploy: S3 requests <= changed artifacts = 0".into(),
            s3.to_string(),
            s3 == 0,
        ));
        for (label, runs) in [
            ("first deploy", std::slice::from_ref(&self.first)),
            ("code-only deploy", code.as_slice()),
            ("nothing-changed deploy", same.as_slice()),
        ] {
            let transitions = worst(runs, &|r| r.transitions.unwrap_or_default());
            budgets.push(Budget::new(
                format!("{label}: state transitions <= 2n+25 = {transitions_limit}"),
                transitions.to_string(),
                transitions <= transitions_limit,
            ));
        }
        budgets
    }

    fn print(&self) {
        let n = self.n;
        let r = self.repeats;
        println!();
        println!(
            "aliasflow deploy benchmark: {n} functions, moto account {}, runs 2-4 repeated {r} times (min / median)",
            self.account
        );
        println!();
        let header = [
            "run",
            "CloudFormation",
            "Lambda",
            "DynamoDB",
            "S3",
            "other",
            "transitions",
            "wall min",
            "wall median",
            "in AWS calls",
        ];
        let rows = vec![
            row("1a bootstrap", std::slice::from_ref(&self.bootstrap), false),
            row("1b first deploy (fresh stage)", std::slice::from_ref(&self.first), true),
            row("2  code-only deploy (1 function changed)", &self.code_only, true),
            row("3  nothing-changed deploy", &self.unchanged, true),
            row(&format!("4a baseline SDK program, {n} functions"), &self.baseline_all, false),
            row("4b baseline SDK program, 1 function", &self.baseline_one, false),
        ];
        print!("{}", table(&header, &rows));
        println!(
            "(calls per run; \"17 (15-19)\" is median (min-max) over the repeats; wall time is the whole in-process"
        );
        println!(" command: manifest, packaging, upload and the execution; the baseline times only its Lambda calls;");
        println!(
            " \"in AWS calls\" is the median time at least one AWS call was under way, the rest is aliasflow itself)"
        );
        println!();
        for (label, runs) in [
            ("1b first deploy", std::slice::from_ref(&self.first)),
            ("2  code-only deploy", self.code_only.as_slice()),
            ("3  nothing-changed deploy", self.unchanged.as_slice()),
            ("4b baseline, 1 function", self.baseline_one.as_slice()),
        ] {
            println!("operations (calls x latency per call), {label}:");
            for line in operations(runs) {
                println!("    {line}");
            }
        }
        let retried: u64 = [&self.first, &self.bootstrap]
            .into_iter()
            .chain(&self.code_only)
            .chain(&self.unchanged)
            .chain(&self.baseline_all)
            .chain(&self.baseline_one)
            .map(Run::retries)
            .sum();
        if retried > 0 {
            println!("note: {retried} call attempt(s) were retries (throttling or errors), not counted as calls above");
        }
        let reconfigured = self.code_only.iter().map(|r| r.operation("Lambda", "UpdateFunctionConfiguration")).max();
        if reconfigured.unwrap_or_default() > 0 {
            println!(
                "note: the code-only deploy called UpdateFunctionConfiguration: the configuration Lambda reports differs \
                 from the manifest's (moto 5.2.5 applies no Architectures, so functions stay x86_64 against arm64)"
            );
        }
        let published = |runs: &[Run]| runs.iter().map(|r| r.published.unwrap_or(u64::MAX)).collect::<Vec<_>>();
        let expectations = [
            ("first deploy", published(std::slice::from_ref(&self.first)), n as u64),
            ("code-only deploy", published(&self.code_only), CHANGED),
            ("nothing-changed deploy", published(&self.unchanged), 0),
        ];
        for (label, got, want) in expectations {
            if got.iter().any(|p| *p != want) {
                println!("WARNING: {label} published {got:?} function(s), expected {want}: its figures measure something else");
            }
        }
        println!();
        println!(
            "budgets (DESIGN.md \"Budgets and guarantees\"), n = {n}, worst of the repeats, wall times as medians:"
        );
        let budgets = self.budgets();
        let rows: Vec<Vec<String>> =
            budgets.iter().map(|b| vec![b.rule.clone(), b.measured.clone(), b.mark().to_owned()]).collect();
        print!("{}", table(&["budget", "measured", ""], &rows));
        println!("(the wall-time budget compares run 2 with 4b, the same work by hand; 4a is shown for scale)");
        println!();
        println!("{}", self.json(&budgets));
    }

    fn json(&self, budgets: &[Budget]) -> Value {
        let repeated = |runs: &[Run]| {
            let (min, median, max) = spread(runs, |r| r.wall.as_secs_f64());
            json!({
                "seconds": { "min": min, "median": median, "max": max },
                "calls_by_service_median": MAIN_SERVICES.iter().map(|s| (s.to_string(), json!(median_count(runs, |r| r.service(s))))).collect::<serde_json::Map<_, _>>(),
                "runs": runs.iter().map(Run::json).collect::<Vec<_>>(),
            })
        };
        json!({
            "benchmark": "deploy",
            "functions": self.n,
            "repeats": self.repeats,
            "bootstrap": self.bootstrap.json(),
            "first_deploy": self.first.json(),
            "code_only_deploy": repeated(&self.code_only),
            "nothing_changed_deploy": repeated(&self.unchanged),
            "baseline_all": repeated(&self.baseline_all),
            "baseline_one": repeated(&self.baseline_one),
            "budgets": budgets.iter().map(|b| json!({ "rule": b.rule, "measured": b.measured, "ok": b.ok })).collect::<Vec<_>>(),
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n = env_count("ALIASFLOW_BENCH_FUNCTIONS", DEFAULT_FUNCTIONS)?;
    let repeats = env_count("ALIASFLOW_BENCH_REPEATS", DEFAULT_REPEATS)?;
    let service = Service::generate(n)?;
    let account = moto::account().await;

    phase("1a bootstrap");
    let (bootstrap, reply) = service.aliasflow(&account, &["bootstrap"]).await?;
    let bucket = reply["bucket"].as_str().ok_or_else(|| anyhow!("bootstrap names no bucket: {reply}"))?.to_owned();
    phase("1b first deploy");
    let (first, _) = service.aliasflow(&account, &["deploy", "--stage", STAGE]).await?;
    baseline_aliases(&account, &service.names).await?;

    let changed = service.names.first().ok_or_else(|| anyhow!("no function"))?.clone();
    let mut results = Results {
        n,
        repeats,
        account: account.id.clone(),
        bootstrap,
        first,
        code_only: Vec::new(),
        unchanged: Vec::new(),
        baseline_all: Vec::new(),
        baseline_one: Vec::new(),
    };
    for repeat in 1..=repeats {
        phase(&format!("2 code-only deploy ({repeat}/{repeats})"));
        service.change_code(&changed, &format!("v{repeat}"))?;
        results.code_only.push(service.aliasflow(&account, &["deploy", "--stage", STAGE]).await?.0);
        phase(&format!("3 nothing-changed deploy ({repeat}/{repeats})"));
        results.unchanged.push(service.aliasflow(&account, &["deploy", "--stage", STAGE]).await?.0);
        phase(&format!("4 baseline ({repeat}/{repeats})"));
        let work = baseline_artifacts(&account, &bucket, &service, &service.names, &format!("all-{repeat}")).await?;
        results.baseline_all.push(baseline(&account, &bucket, work).await?);
        let work =
            baseline_artifacts(&account, &bucket, &service, std::slice::from_ref(&changed), &format!("one-{repeat}"))
                .await?;
        results.baseline_one.push(baseline(&account, &bucket, work).await?);
    }
    results.print();
    Ok(())
}
