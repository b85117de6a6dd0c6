//! aliasflow's step handlers and the pure domain they share with the CLI.
//!
//! - [`domain`]: manifest, naming, templates, configuration, history records. Pure: no SDK types.
//! - [`ports`]: small traits in domain words around every AWS call.
//! - [`aws`]: the only code that names the AWS SDK; one adapter per port.
//! - [`fakes`] (feature `fakes`, and unit tests): in-memory ports for tests.
//! - [`steps`]: one module per Task state of the state machines, each a `run(input, &Deps)`.
//! - `lambda` (feature `lambda`): the steps as Lambda functions, shared by the binaries in `src/bin/`.
#![warn(missing_docs)]

pub mod artifact;
pub mod aws;
pub mod converge;
pub mod deployer;
pub mod domain;
pub mod error;
#[cfg(any(test, feature = "fakes"))]
pub mod fakes;
#[cfg(test)]
mod infra;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod lifecycle;
pub mod ports;
pub mod steps;
