//! Integration tests against a local moto server (one per test binary, one account per test).

mod support;

mod adapters;
mod bootstrap;
mod deploy;
mod faults;
mod history;
mod lifecycle;
mod remote;
