//! [`Executions`] as a script: what moto cannot show, since its executions never run their
//! states. Each read of the history reveals the next batch of events, as polls of a running
//! execution do.

use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;

use crate::error::AwsError;
use crate::ports::{Executions, HistoryEntry};

/// Executions whose histories grow by one scripted batch per read.
#[derive(Debug, Default)]
pub struct FakeExecutions {
    batches: Mutex<Vec<Vec<HistoryEntry>>>,
    history: Mutex<Vec<HistoryEntry>>,
    started: Mutex<Vec<(String, String, String)>>,
}

impl FakeExecutions {
    /// A history that reveals `batches`, one per read (an empty batch: a poll with nothing new).
    pub fn scripted(batches: Vec<Vec<HistoryEntry>>) -> Self {
        Self { batches: Mutex::new(batches), ..Self::default() }
    }

    /// Every execution started: (state machine, name, input).
    pub fn started(&self) -> Vec<(String, String, String)> {
        self.started.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

#[async_trait]
impl Executions for FakeExecutions {
    async fn start(&self, machine: &str, name: &str, input: &str) -> Result<String, AwsError> {
        let mut started = self.started.lock().unwrap_or_else(PoisonError::into_inner);
        started.push((machine.to_owned(), name.to_owned(), input.to_owned()));
        Ok(format!("{machine}:{name}"))
    }

    async fn events_after(&self, _execution: &str, after: i64) -> Result<Vec<HistoryEntry>, AwsError> {
        let mut batches = self.batches.lock().unwrap_or_else(PoisonError::into_inner);
        let mut history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        if !batches.is_empty() {
            history.extend(batches.remove(0));
        }
        Ok(history.iter().filter(|e| e.id > after).cloned().collect())
    }
}
