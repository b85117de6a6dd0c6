//! Time as the engine sees it: the real tokio clock, or an instant one for tests.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

/// Where the engine reads the time and how it waits (Wait states, Retry back-off, timeouts).
pub trait Clock: Send + Sync {
    /// The current time (event timestamps, `$$.Execution.StartTime`, Wait `Timestamp`s).
    fn now(&self) -> DateTime<Utc>;

    /// Waits `duration`: Wait states and the back-off between retries.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;

    /// Completes when a timeout of `duration` (Task or execution `TimeoutSeconds`) expires.
    /// Defaults to [`Clock::sleep`].
    fn timeout(&self, duration: Duration) -> BoxFuture<'static, ()> {
        self.sleep(duration)
    }
}

/// The real clock: `Utc::now()` and `tokio::time::sleep` (needs a tokio runtime with timers).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock on which sleeping takes no time: each sleep returns at once and moves `now()` forward
/// by the slept amount (concurrent sleeps add up). Timeouts never expire on it, since tasks take
/// no time either. Every sleep is recorded, so tests can check Retry back-off and Wait durations.
///
/// ```
/// use statemachines::{Clock, InstantClock};
/// use std::time::Duration;
/// let clock = InstantClock::new();
/// let before = clock.now();
/// futures::executor::block_on(clock.sleep(Duration::from_secs(90)));
/// assert_eq!((clock.now() - before).num_seconds(), 90);
/// assert_eq!(clock.sleeps(), vec![Duration::from_secs(90)]);
/// ```
#[derive(Debug)]
pub struct InstantClock {
    state: Mutex<(DateTime<Utc>, Vec<Duration>)>,
}

impl InstantClock {
    /// Starts at the current real time.
    pub fn new() -> Self {
        Self::starting_at(Utc::now())
    }

    /// Starts at `start`.
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Self { state: Mutex::new((start, Vec::new())) }
    }

    /// Every sleep asked of this clock so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).1.clone()
    }

    /// The sum of every sleep so far.
    pub fn slept(&self) -> Duration {
        self.sleeps().iter().sum()
    }
}

impl Default for InstantClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for InstantClock {
    fn now(&self) -> DateTime<Utc> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).0
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let step = chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX);
        state.0 = state.0.checked_add_signed(step).unwrap_or(state.0);
        state.1.push(duration);
        Box::pin(futures::future::ready(()))
    }

    fn timeout(&self, _duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(futures::future::pending())
    }
}
