//! Progress on stderr while a workflow runs, from the engine's event stream: each state as it
//! starts and ends, and per-function counts in a Map.
#![allow(clippy::print_stderr)]

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Instant;

use statemachines::{Event, EventKind};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio::task::JoinHandle;

use crate::cli::OutputFormat;

/// What the progress display learnt from the events.
#[derive(Debug, Default)]
pub struct Seen {
    /// The state whose failure ended the execution, if it failed.
    pub failed_state: Option<String>,
}

/// The display, running until the execution drops its end of the stream.
#[derive(Debug)]
pub struct Progress {
    task: JoinHandle<Seen>,
}

impl Progress {
    /// Starts following events; returns the sender to give the engine.
    pub fn start(_format: OutputFormat) -> (Self, UnboundedSender<Event>) {
        let (sender, mut receiver) = unbounded_channel::<Event>();
        let terminal = std::io::stderr().is_terminal();
        let task = tokio::spawn(async move {
            let mut display = Display::new(terminal);
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

struct Display {
    terminal: bool,
    started: BTreeMap<String, Instant>,
    items: BTreeMap<String, (usize, usize)>,
    seen: Seen,
}

impl Display {
    fn new(terminal: bool) -> Self {
        Self { terminal, started: BTreeMap::new(), items: BTreeMap::new(), seen: Seen::default() }
    }

    fn show(&mut self, event: &Event) {
        let _ = self.terminal;
        match &event.kind {
            EventKind::StateEntered { name, .. } if event.scope.is_empty() => {
                self.started.insert(name.clone(), Instant::now());
                eprintln!("▸ {name}");
            }
            EventKind::StateExited { name, .. } if event.scope.is_empty() => {
                let took = self.started.get(name).map(|t| t.elapsed().as_secs_f64()).unwrap_or_default();
                let items = self.items.get(name).map(|(done, total)| format!(" ({done}/{total} functions)")).unwrap_or_default();
                eprintln!("✓ {name}{items} {took:.1}s");
            }
            _ => {}
        }
    }
}
