//! Progress on stderr while a workflow runs, from the engine's event stream: each state as it
//! starts and ends, and each function as the `PublishVersions` Map finishes it.
#![allow(clippy::print_stderr)]

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::Value;
use statemachines::{Event, EventKind};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio::task::JoinHandle;

/// What the progress display learnt from the events.
#[derive(Debug, Default)]
pub struct Seen {
    /// The state whose failure ended the execution, by error name, latest first wins.
    pub failures: Vec<(String, String)>,
}

impl Seen {
    /// The state that failed with `error`: the first one, since the Catch path runs after it.
    pub fn state_of(&self, error: &str) -> Option<String> {
        self.failures.iter().find(|(_, e)| e == error).map(|(state, _)| state.clone())
    }
}

/// The display, running until the execution drops its end of the stream.
#[derive(Debug)]
pub struct Progress {
    task: JoinHandle<Seen>,
}

impl Progress {
    /// Starts following events; returns the sender to give the engine. `quiet` shows nothing
    /// but still learns what failed.
    pub fn start(quiet: bool) -> (Self, UnboundedSender<Event>) {
        let (sender, mut receiver) = unbounded_channel::<Event>();
        let task = tokio::spawn(async move {
            let mut display = Display { quiet, ..Display::default() };
            while let Some(event) = receiver.recv().await {
                display.show(&event);
            }
            display.seen
        });
        (Self { task }, sender)
    }

    /// Waits until the stream ends and returns what was seen.
    pub async fn finish(self) -> Seen {
        self.task.await.unwrap_or_default()
    }
}

#[derive(Default)]
struct Display {
    quiet: bool,
    started: BTreeMap<String, Instant>,
    /// The state running in each scope (`""` at the top level, `Map/3` in an iteration).
    running: BTreeMap<String, String>,
    /// Map name -> (finished, total).
    items: BTreeMap<String, (usize, usize)>,
    seen: Seen,
}

fn scope_key(event: &Event) -> String {
    event.scope.iter().map(|(name, index)| format!("{name}/{index}")).collect::<Vec<_>>().join("/")
}

impl Display {
    fn say(&self, line: &str) {
        if !self.quiet {
            eprintln!("{line}");
        }
    }

    fn show(&mut self, event: &Event) {
        let top = event.scope.is_empty();
        match &event.kind {
            EventKind::StateEntered { name, .. } => {
                self.running.insert(scope_key(event), name.clone());
                if top {
                    self.started.insert(name.clone(), Instant::now());
                    self.say(&format!("▸ {name}"));
                }
            }
            EventKind::StateExited { name, .. } if top => {
                let took = self.started.get(name).map(|t| t.elapsed().as_secs_f64()).unwrap_or_default();
                let items = self
                    .items
                    .get(name)
                    .filter(|(done, _)| *done > 0)
                    .map(|(done, total)| format!(" ({done}/{total} functions)"))
                    .unwrap_or_default();
                self.say(&format!("✓ {name}{items} {took:.1}s"));
            }
            EventKind::MapStateStarted { length } => {
                if let Some(name) = self.running.get(&scope_key(event)).cloned() {
                    self.items.insert(name, (0, *length));
                }
            }
            EventKind::TaskSucceeded { output, .. } if event.scope.len() == 1 => {
                // Only `PublishVersion` items are functions; other Maps (cleanup's stages) run
                // several Tasks per item and are summed up by their command.
                let Some(line) = describe(output) else { return };
                let map = event.scope[0].0.clone();
                let (done, total) = {
                    let entry = self.items.entry(map).or_default();
                    entry.0 += 1;
                    *entry
                };
                self.say(&format!("  {line} ({done}/{total})"));
            }
            EventKind::TaskFailed { error, cause, .. } => {
                let state = self.running.get(&scope_key(event)).cloned().unwrap_or_default();
                self.say(&format!("  ✗ {state}: {error}: {}", cause.lines().next().unwrap_or_default()));
                self.seen.failures.push((state, error.clone()));
            }
            _ => {}
        }
    }
}

/// One function's line: `api: new version 7` or `worker: unchanged, version 3`; `None` for the
/// output of anything but `PublishVersion`.
fn describe(output: &Value) -> Option<String> {
    let version = output.get("version").and_then(Value::as_str)?;
    let name = output.get("name").and_then(Value::as_str).unwrap_or("?");
    Some(if output.get("new_version").and_then(Value::as_bool).unwrap_or(false) {
        format!("{name}: new version {version}")
    } else {
        format!("{name}: unchanged, version {version}")
    })
}
