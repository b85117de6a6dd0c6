//! The pure domain: what aliasflow knows about services, stages and deployments. No SDK types.

pub mod config;
pub mod history;
pub mod manifest;
pub mod naming;
pub mod template;
