//! Integration tests against a local moto server (one per test binary, one account per test).

// Test fixtures fail the test with a message, like the tests themselves (`expect` is denied in
// the library code only).
#![allow(clippy::expect_used)]

mod support;

mod adapters;
mod bootstrap;
mod deploy;
mod faults;
mod history;
mod lifecycle;
mod locks;
mod matrix;
mod remote;
mod retries;
mod safety;
mod shared;
