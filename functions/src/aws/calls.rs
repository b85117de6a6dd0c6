//! Counting AWS API calls per service and operation, for the CLI's summary and the benchmarks.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::{Intercept, SharedInterceptor};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// Calls and attempts (retries included) of one operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Count {
    /// Operations started.
    pub calls: u64,
    /// HTTP attempts: a retried call counts more than once.
    pub attempts: u64,
}

/// An interceptor that counts every call made through the clients it is added to.
#[derive(Debug, Clone, Default)]
pub struct CallCounter {
    counts: Arc<Mutex<BTreeMap<(String, String), Count>>>,
}

impl CallCounter {
    /// The interceptor to add with [`Sdk::with_interceptor`](super::Sdk::with_interceptor).
    pub fn interceptor(&self) -> SharedInterceptor {
        SharedInterceptor::new(self.clone())
    }

    /// Counts so far, by (service, operation), e.g. `("Lambda", "UpdateAlias")`.
    pub fn snapshot(&self) -> BTreeMap<(String, String), Count> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Calls so far, by service.
    pub fn by_service(&self) -> BTreeMap<String, u64> {
        let mut totals = BTreeMap::new();
        for ((service, _), count) in self.snapshot() {
            *totals.entry(service).or_default() += count.calls;
        }
        totals
    }

    fn bump(&self, cfg: &ConfigBag, attempt: bool) {
        let Some(metadata) = cfg.load::<Metadata>() else {
            return;
        };
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry((metadata.service().to_owned(), metadata.name().to_owned())).or_default();
        if attempt {
            count.attempts += 1;
        } else {
            count.calls += 1;
        }
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    // Not `read_before_execution`: the operation's metadata is not in the bag that early.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.bump(cfg, false);
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.bump(cfg, true);
        Ok(())
    }
}
