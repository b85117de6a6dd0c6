// Fixtures fail the test (or the benchmark) with a message.
#![allow(clippy::expect_used)]
pub mod moto;
pub mod strict;
pub mod throttle;
pub mod workspace;
pub mod world;
