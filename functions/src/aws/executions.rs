//! [`Executions`] on AWS Step Functions.

use async_trait::async_trait;
use aws_sdk_sfn::types::HistoryEvent;

use super::aws_error;
use crate::error::AwsError;
use crate::ports::{Executions, HistoryEntry};

/// Step Functions in the deployer's home region.
#[derive(Debug, Clone)]
pub struct StepFunctionsApi {
    client: aws_sdk_sfn::Client,
}

impl StepFunctionsApi {
    /// The adapter over `client`.
    pub fn new(client: aws_sdk_sfn::Client) -> Self {
        Self { client }
    }
}

/// Events per `GetExecutionHistory` page: AWS's largest.
const PAGE: i32 = 1000;

#[async_trait]
impl Executions for StepFunctionsApi {
    async fn start(&self, machine: &str, name: &str, input: &str) -> Result<String, AwsError> {
        let started = self
            .client
            .start_execution()
            .state_machine_arn(machine)
            .name(name)
            .input(input)
            .send()
            .await
            .map_err(|e| aws_error("StartExecution", machine, &e))?;
        Ok(started.execution_arn().to_owned())
    }

    async fn events_after(&self, execution: &str, after: i64) -> Result<Vec<HistoryEntry>, AwsError> {
        // Newest first, so a poll reads only the pages with new events, however long the
        // history already is.
        let mut found = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .get_execution_history()
                .execution_arn(execution)
                .reverse_order(true)
                .max_results(PAGE)
                .include_execution_data(true)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| aws_error("GetExecutionHistory", execution, &e))?;
            let mut reached = false;
            for event in page.events() {
                if event.id() > after {
                    found.push(entry(event));
                } else {
                    reached = true;
                }
            }
            token = page.next_token().map(str::to_owned);
            if reached || token.is_none() {
                break;
            }
        }
        found.sort_by_key(|e| e.id);
        found.dedup_by_key(|e| e.id);
        Ok(found)
    }
}

/// The details of `event` the CLI uses.
fn entry(event: &HistoryEvent) -> HistoryEntry {
    let mut entry = HistoryEntry {
        id: event.id(),
        previous_id: event.previous_event_id(),
        event_type: event.r#type().as_str().to_owned(),
        ..HistoryEntry::default()
    };
    let owned = |s: Option<&str>| s.map(str::to_owned);
    if let Some(d) = event.execution_started_event_details() {
        entry.data = owned(d.input());
    }
    if let Some(d) = event.execution_succeeded_event_details() {
        entry.data = owned(d.output());
    }
    if let Some(d) = event.execution_failed_event_details() {
        (entry.error, entry.cause) = (owned(d.error()), owned(d.cause()));
    }
    if let Some(d) = event.execution_aborted_event_details() {
        (entry.error, entry.cause) = (owned(d.error()), owned(d.cause()));
    }
    if let Some(d) = event.execution_timed_out_event_details() {
        (entry.error, entry.cause) = (owned(d.error()), owned(d.cause()));
    }
    if let Some(d) = event.state_entered_event_details() {
        (entry.name, entry.data) = (Some(d.name().to_owned()), owned(d.input()));
    }
    if let Some(d) = event.state_exited_event_details() {
        (entry.name, entry.data) = (Some(d.name().to_owned()), owned(d.output()));
    }
    if let Some(d) = event.lambda_function_scheduled_event_details() {
        (entry.resource, entry.data) = (Some(d.resource().to_owned()), owned(d.input()));
    }
    if let Some(d) = event.lambda_function_succeeded_event_details() {
        entry.data = owned(d.output());
    }
    if let Some(d) = event.lambda_function_failed_event_details() {
        (entry.error, entry.cause) = (owned(d.error()), owned(d.cause()));
    }
    if let Some(d) = event.lambda_function_timed_out_event_details() {
        (entry.error, entry.cause) = (owned(d.error()), owned(d.cause()));
    }
    if let Some(d) = event.lambda_function_schedule_failed_event_details() {
        (entry.error, entry.cause) = (owned(d.error()), owned(d.cause()));
    }
    if let Some(d) = event.lambda_function_start_failed_event_details() {
        (entry.error, entry.cause) = (owned(d.error()), owned(d.cause()));
    }
    if let Some(d) = event.map_state_started_event_details() {
        entry.length = usize::try_from(d.length()).ok();
    }
    let iteration = event
        .map_iteration_started_event_details()
        .or(event.map_iteration_succeeded_event_details())
        .or(event.map_iteration_failed_event_details())
        .or(event.map_iteration_aborted_event_details());
    if let Some(d) = iteration {
        entry.name = owned(d.name());
        entry.index = usize::try_from(d.index()).ok();
    }
    entry
}
