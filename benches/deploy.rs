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
//!    functions, (b) one function, on 8 concurrent tasks,
//! 5. the rollback: (a) `deploy --stage bench` with new code in every function, so the
//!    deployment before it differs in all n aliases, (b) `rollback --stage bench`, which points
//!    every alias back, (c) its baseline: a plain SDK program doing n `UpdateAlias` calls on 8
//!    concurrent tasks. The next repeat's 5a is the roll forward; only 5b is measured against
//!    the rollback budgets, 5a is shown because it was run anyway.
//!
//! Runs 2, 3 and 4 repeat (`ALIASFLOW_BENCH_REPEATS`, default 3), interleaved, then run 5 as
//! often, and the table shows min and median. The baselines move an alias of their own
//! (`baseline`), so the stage's aliases and history stay aliasflow's. Calls are counted per
//! service and operation with the same `CallCounter` the CLI's summary uses, and timed by an
//! interceptor of the bench's own (`CallTimer`): latency per operation, how much of the wall time
//! at least one call was under way ("in AWS calls"; the rest is aliasflow's own work), and the
//! sequential API rounds.
//!
//! Sequential API rounds: the number of maximal periods during which at least one AWS call was
//! in flight, from the start of a call (before serialization) to its end (after its last
//! attempt). Calls that overlap, directly or through a chain of overlapping calls, share a round:
//! 50 `UpdateAlias` calls on 8 tasks are one round, the same calls one at a time are 50. It is
//! the length of the command's critical path in AWS round trips, so fewer means more parallel;
//! on AWS each round costs at least one network round trip, plus a state transition when the
//! round is a state of its own. For the rollback the calls of each round are listed in order.
//!
//! Nothing is asserted: budgets are printed "ok"/"OVER", and a run that fails outright ends the
//! bench with its error.
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

    /// Summed latency by (service, operation), how long at least one call was running, and the
    /// sequential rounds: the maximal periods during which at least one call was in flight, each
    /// with the calls that ran in it and how long it lasted.
    fn figures(&self) -> Timing {
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let mut latency: BTreeMap<(String, String), Duration> = BTreeMap::new();
        for (service, operation, start, end) in &calls {
            *latency.entry((service.clone(), operation.clone())).or_default() += end.duration_since(*start);
        }
        calls.sort_by_key(|(_, _, start, _)| *start);
        let mut busy = Duration::ZERO;
        let mut rounds: Vec<Round> = Vec::new();
        let mut covered: Option<(Instant, Instant)> = None;
        for (service, operation, start, end) in calls {
            covered = match covered {
                Some((from, to)) if start <= to => Some((from, to.max(end))),
                previous => {
                    if let (Some((from, to)), Some(round)) = (previous, rounds.last_mut()) {
                        round.spent = to.duration_since(from);
                        busy += round.spent;
                    }
                    rounds.push(Round::default());
                    Some((start, end))
                }
            };
            if let Some(round) = rounds.last_mut() {
                *round.calls.entry((service, operation)).or_default() += 1;
            }
        }
        if let (Some((from, to)), Some(round)) = (covered, rounds.last_mut()) {
            round.spent = to.duration_since(from);
            busy += round.spent;
        }
        Timing { latency, busy, rounds }
    }
}

/// One sequential round: its calls by (service, operation), and how long it lasted.
#[derive(Debug, Clone, Default)]
struct Round {
    calls: BTreeMap<(String, String), u64>,
    spent: Duration,
}

/// What [`CallTimer::figures`] makes of the calls.
#[derive(Debug, Default)]
struct Timing {
    latency: BTreeMap<(String, String), Duration>,
    busy: Duration,
    rounds: Vec<Round>,
}

/// "Lambda UpdateAlias x50, DynamoDB GetItem": the calls of one round.
fn round_text(round: &Round) -> String {
    let calls: Vec<String> = round
        .calls
        .iter()
        .map(|((service, operation), n)| match n {
            1 => format!("{service} {operation}"),
            _ => format!("{service} {operation} x{n}"),
        })
        .collect();
    calls.join(", ")
}

/// The rounds one per line with the time they took, runs of rounds with the same calls folded:
/// "r3-r6 (4 rounds)   41 ms  DynamoDB GetItem".
fn round_lines(rounds: &[Round]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut first = 0;
    while first < rounds.len() {
        let same = rounds[first..].iter().take_while(|r| r.calls == rounds[first].calls).count();
        let last = first + same - 1;
        let label =
            if same == 1 { format!("r{}", first + 1) } else { format!("r{}-r{} ({same} rounds)", first + 1, last + 1) };
        let spent: Duration = rounds[first..=last].iter().map(|r| r.spent).sum();
        lines.push(format!("{label:<18} {:>5} ms  {}", spent.as_millis(), round_text(&rounds[first])));
        first = last + 1;
    }
    lines
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
    /// The sequential rounds of AWS calls, in order (see the header comment).
    rounds: Vec<Round>,
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

    fn round_count(&self) -> u64 {
        self.rounds.len() as u64
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
            "sequential_rounds": self.rounds.len(),
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
        let timing = timer.figures();
        let run = Run {
            calls: app.calls.snapshot(),
            latency: timing.latency,
            aws_busy: timing.busy,
            rounds: timing.rounds,
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
    let Timing { latency, busy, rounds } = timer.figures();
    Ok(Run { calls: counter.snapshot(), latency, aws_busy: busy, rounds, wall, ..Run::default() })
}

/// The rollback's baseline: points the baseline's alias of each function at `version`, with
/// nothing else, on [`CONCURRENCY`] tasks. `work` is (function, version) pairs.
async fn baseline_point(account: &Account, work: Vec<(String, String)>) -> anyhow::Result<Run> {
    let counter = CallCounter::default();
    let timer = CallTimer::default();
    let sdk = account.sdk.clone().with_interceptor(counter.interceptor()).with_interceptor(timer.interceptor());
    let lambda = sdk.lambda(REGION);
    let started = Instant::now();
    futures::stream::iter(work)
        .map(|(function, version)| {
            let lambda = lambda.clone();
            async move {
                lambda
                    .update_alias()
                    .function_name(&function)
                    .name(BASELINE_ALIAS)
                    .function_version(&version)
                    .send()
                    .await
                    .map_err(|e| anyhow!("UpdateAlias {function}: {}", DisplayErrorContext(&e)))?;
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    let wall = started.elapsed();
    let Timing { latency, busy, rounds } = timer.figures();
    Ok(Run { calls: counter.snapshot(), latency, aws_busy: busy, rounds, wall, ..Run::default() })
}

/// (function, version) of each function in deployment `id`, from `history --output json`.
fn deployment_versions(history: &Value, id: u64) -> anyhow::Result<Vec<(String, String)>> {
    let deployment = history
        .as_array()
        .and_then(|all| all.iter().find(|d| d["id"].as_u64() == Some(id)))
        .ok_or_else(|| anyhow!("history lists no deployment {id}"))?;
    let functions = deployment["functions"].as_array().ok_or_else(|| anyhow!("deployment {id} has no functions"))?;
    functions
        .iter()
        .map(|f| match (f["function_name"].as_str(), f["version"].as_str()) {
            (Some(function), Some(version)) => Ok((function.to_owned(), version.to_owned())),
            _ => Err(anyhow!("deployment {id}: a function without function_name or version: {f}")),
        })
        .collect()
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

fn min_count(runs: &[Run], f: impl Fn(&Run) -> u64) -> f64 {
    spread(runs, |r| f(r) as f64).0
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
    cells.push(count_cell(runs, Run::round_count));
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
    /// Run 5a: the deploy that gives every function new code, before each rollback.
    all_changed: Vec<Run>,
    /// Run 5b: `rollback --stage bench` right after 5a.
    rollback: Vec<Run>,
    /// Run 5c: n `UpdateAlias` calls by hand.
    baseline_rollback: Vec<Run>,
    /// Per rollback: where it went and where it should have.
    rollback_targets: Vec<RollbackTarget>,
}

/// Where a rollback of run 5b returned, next to what the history says it should.
#[derive(Debug)]
struct RollbackTarget {
    /// `origin` of the rollback's reply: `bench#<id>`.
    origin: String,
    /// `bench#<rollback_to of the deployment rolled back>`.
    expected: String,
    /// Functions whose version differs between the two deployments (n: every alias moves).
    differing: usize,
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
        let back = &self.rollback;
        let rollback_limit = n + 10;
        let calls = worst(back, &Run::total);
        budgets.push(Budget::new(
            format!("rollback: calls <= n+10 = {rollback_limit}"),
            calls.to_string(),
            calls <= rollback_limit,
        ));
        let publishes = worst(back, &|r| r.operation("Lambda", "PublishVersion"));
        budgets.push(Budget::new("rollback: no PublishVersion".into(), publishes.to_string(), publishes == 0));
        let (_, rollback, _) = spread(back, |r| r.wall.as_secs_f64());
        let (_, point, _) = spread(&self.baseline_rollback, |r| r.wall.as_secs_f64());
        budgets.push(Budget::new(
            format!(
                "rollback: wall time <= 2 x baseline ({} UpdateAlias on {CONCURRENCY} tasks, median {point:.3} s) = {:.3} s",
                self.n,
                2.0 * point
            ),
            format!("{rollback:.3} s ({:.1}x)", rollback / point.max(f64::EPSILON)),
            rollback <= 2.0 * point,
        ));
        for (label, runs) in [
            ("first deploy", std::slice::from_ref(&self.first)),
            ("code-only deploy", code.as_slice()),
            ("nothing-changed deploy", same.as_slice()),
            ("every-function deploy", self.all_changed.as_slice()),
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
            "aliasflow deploy benchmark: {n} functions, moto account {}, runs 2-5 repeated {r} times (min / median)",
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
            "rounds",
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
            row(&format!("5a deploy, all {n} functions changed"), &self.all_changed, true),
            row(&format!("5b rollback of 5a ({n} aliases move)"), &self.rollback, true),
            row(&format!("5c baseline SDK program, {n} UpdateAlias"), &self.baseline_rollback, false),
        ];
        print!("{}", table(&header, &rows));
        println!(
            "(calls per run; \"17 (15-19)\" is median (min-max) over the repeats; wall time is the whole in-process"
        );
        println!(" command: manifest, packaging, upload and the execution; the baseline times only its Lambda calls;");
        println!(
            " \"in AWS calls\" is the median time at least one AWS call was under way, the rest is aliasflow itself;"
        );
        println!(
            " \"rounds\" counts the periods in which at least one AWS call was in flight, one after another: calls that"
        );
        println!(" overlap share a round, so fewer rounds means more parallel; 5a is not timed against a budget)");
        println!();
        for (label, runs) in [
            ("1b first deploy", std::slice::from_ref(&self.first)),
            ("2  code-only deploy", self.code_only.as_slice()),
            ("3  nothing-changed deploy", self.unchanged.as_slice()),
            ("4b baseline, 1 function", self.baseline_one.as_slice()),
            ("5a deploy, all functions changed", self.all_changed.as_slice()),
            ("5b rollback", self.rollback.as_slice()),
            ("5c baseline, UpdateAlias only", self.baseline_rollback.as_slice()),
        ] {
            println!("operations (calls x latency per call), {label}:");
            for line in operations(runs) {
                println!("    {line}");
            }
        }
        // The run with the most rounds: once the stage has more than `retain` deployments, each
        // rollback also prunes, which the first repeat may not.
        let most = self.rollback.iter().enumerate().max_by_key(|(i, r)| (r.rounds.len(), std::cmp::Reverse(*i)));
        if let Some((i, most)) = most {
            println!();
            println!(
                "sequential API rounds of the rollback (5b): {} over the repeats; each round of run {} of {r} \
                 ({} rounds), its duration and its calls:",
                count_cell(&self.rollback, Run::round_count),
                i + 1,
                most.rounds.len()
            );
            for line in round_lines(&most.rounds) {
                println!("    {line}");
            }
        }
        let retried: u64 = [&self.first, &self.bootstrap]
            .into_iter()
            .chain(&self.code_only)
            .chain(&self.unchanged)
            .chain(&self.baseline_all)
            .chain(&self.baseline_one)
            .chain(&self.all_changed)
            .chain(&self.rollback)
            .chain(&self.baseline_rollback)
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
            ("every-function deploy", published(&self.all_changed), n as u64),
            ("rollback", published(&self.rollback), 0),
        ];
        for (label, got, want) in expectations {
            if got.iter().any(|p| *p != want) {
                println!("WARNING: {label} published {got:?} function(s), expected {want}: its figures measure something else");
            }
        }
        let moved: Vec<u64> = self.rollback.iter().map(|r| r.operation("Lambda", "UpdateAlias")).collect();
        if moved.iter().any(|m| *m != n as u64) {
            println!("WARNING: the rollback called UpdateAlias {moved:?} times, expected {n}: not every alias moved");
        }
        let stack_calls: Vec<u64> = self.rollback.iter().map(|r| r.service("CloudFormation")).collect();
        if stack_calls.iter().any(|c| *c > 0) {
            println!(
                "WARNING: the rollback made {stack_calls:?} CloudFormation calls, expected none: the stage stack is the same"
            );
        }
        for target in &self.rollback_targets {
            if target.origin != target.expected {
                println!("WARNING: a rollback returned to {}, expected {}", target.origin, target.expected);
            }
            if target.differing != n {
                println!(
                    "WARNING: a rollback's target differs from the deployment rolled back in {} function(s), not {n}",
                    target.differing
                );
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
        println!(
            "(the deploy wall-time budget compares run 2 with 4b, the same work by hand, 4a is shown for scale; the \
             rollback's compares 5b with 5c)"
        );
        println!();
        println!("{}", self.json(&budgets));
    }

    fn json(&self, budgets: &[Budget]) -> Value {
        let repeated = |runs: &[Run]| {
            let (min, median, max) = spread(runs, |r| r.wall.as_secs_f64());
            json!({
                "seconds": { "min": min, "median": median, "max": max },
                "sequential_rounds": { "min": min_count(runs, Run::round_count), "median": median_count(runs, Run::round_count) },
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
            "deploy_all_changed": repeated(&self.all_changed),
            "rollback": {
                "update_alias_calls": self.rollback.iter().map(|r| r.operation("Lambda", "UpdateAlias")).collect::<Vec<_>>(),
                "cloudformation_calls": self.rollback.iter().map(|r| r.service("CloudFormation")).collect::<Vec<_>>(),
                "rounds_by_run": self.rollback.iter().map(|run| run.rounds.iter().map(|round| json!({ "calls": round_text(round), "seconds": secs(round.spent) })).collect::<Vec<_>>()).collect::<Vec<_>>(),
                "origins": self.rollback_targets.iter().map(|t| t.origin.as_str()).collect::<Vec<_>>(),
                "aliases_differing": self.rollback_targets.iter().map(|t| t.differing).collect::<Vec<_>>(),
                "repeated": repeated(&self.rollback),
            },
            "baseline_rollback": repeated(&self.baseline_rollback),
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
        all_changed: Vec::new(),
        rollback: Vec::new(),
        baseline_rollback: Vec::new(),
        rollback_targets: Vec::new(),
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
    // After a deploy that changes every function, the deployment before it differs in every alias;
    // the deploy of the next repeat is the roll forward. Deploying rather than `rollback --to`
    // keeps the target retained however many repeats there are (`retain` prunes the oldest).
    for repeat in 1..=repeats {
        phase(&format!("5a deploy, every function changed ({repeat}/{repeats})"));
        for name in &service.names {
            service.change_code(name, &format!("all-{repeat}"))?;
        }
        let (run, reply) = service.aliasflow(&account, &["deploy", "--stage", STAGE]).await?;
        results.all_changed.push(run);
        let deployed = reply["result"]["id"].as_u64().ok_or_else(|| anyhow!("deploy names no deployment: {reply}"))?;
        let history = service.aliasflow(&account, &["history", "--stage", STAGE]).await?.1;
        let target = history
            .as_array()
            .and_then(|all| all.iter().find(|d| d["id"].as_u64() == Some(deployed)))
            .and_then(|d| d["rollback_to"].as_u64())
            .ok_or_else(|| anyhow!("deployment {deployed} has no deployment before it: {history}"))?;
        let new_versions = deployment_versions(&history, deployed)?;
        let old_versions: BTreeMap<String, String> = deployment_versions(&history, target)?.into_iter().collect();
        let differing = new_versions.iter().filter(|(f, v)| old_versions.get(f) != Some(v)).count();
        phase(&format!("5b rollback ({repeat}/{repeats})"));
        let (run, reply) = service.aliasflow(&account, &["rollback", "--stage", STAGE]).await?;
        results.rollback.push(run);
        let origin = reply["result"]["origin"].as_str().unwrap_or("-").to_owned();
        results.rollback_targets.push(RollbackTarget { origin, expected: format!("{STAGE}#{target}"), differing });
        phase(&format!("5c baseline, UpdateAlias only ({repeat}/{repeats})"));
        results.baseline_rollback.push(baseline_point(&account, new_versions).await?);
    }
    results.print();
    Ok(())
}
