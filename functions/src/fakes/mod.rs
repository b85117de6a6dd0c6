//! In-memory fakes of every port, for unit tests and for what moto cannot show (a failure
//! injected into one call, throttling, a process killed mid-step). Each is a map behind a mutex;
//! a test reads it like the system.

mod artifacts;
mod executions;
mod functions;
mod history;
mod stacks;

use std::sync::Arc;

pub use artifacts::FakeArtifacts;
pub use executions::FakeExecutions;
pub use functions::FakeFunctions;
pub use history::FakeHistory;
pub use stacks::FakeStacks;

use crate::ports::{Deps, Functions, Regions, Settings, Stacks, SystemClock};

/// One fake Lambda and one fake CloudFormation per region, created on first use.
#[derive(Debug, Default)]
pub struct FakeRegions {
    functions: std::sync::Mutex<std::collections::BTreeMap<String, Arc<FakeFunctions>>>,
    stacks: std::sync::Mutex<std::collections::BTreeMap<String, Arc<FakeStacks>>>,
}

impl FakeRegions {
    /// The fake Lambda of `region`, to inspect or to inject failures into.
    pub fn fake_functions(&self, region: &str) -> Arc<FakeFunctions> {
        let mut map = self.functions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(region.to_owned()).or_default().clone()
    }

    /// The fake CloudFormation of `region`, linked to the same region's fake Lambda so the
    /// functions a stack declares exist there.
    pub fn fake_stacks(&self, region: &str) -> Arc<FakeStacks> {
        let mut map = self.stacks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(region.to_owned())
            .or_insert_with(|| Arc::new(FakeStacks::default().with_functions(self.fake_functions(region))))
            .clone()
    }
}

impl Regions for FakeRegions {
    fn functions(&self, region: &str) -> Arc<dyn Functions> {
        self.fake_functions(region)
    }

    fn stacks(&self, region: &str) -> Arc<dyn Stacks> {
        self.fake_stacks(region)
    }
}

/// A whole fake AWS: the ports of [`Deps`] with handles to inspect them.
#[derive(Debug, Clone, Default)]
pub struct FakeAws {
    /// The history table.
    pub history: Arc<FakeHistory>,
    /// The artifact bucket.
    pub artifacts: Arc<FakeArtifacts>,
    /// Lambda and CloudFormation per region.
    pub regions: Arc<FakeRegions>,
}

impl FakeAws {
    /// [`Deps`] over these fakes, with no waiting between polls.
    pub fn deps(&self) -> Deps {
        let mut settings = Settings::new("fake-artifacts");
        settings.poll_interval = std::time::Duration::ZERO;
        Deps {
            history: self.history.clone(),
            artifacts: self.artifacts.clone(),
            regions: self.regions.clone(),
            clock: Arc::new(SystemClock),
            settings,
        }
    }
}
