pub mod moto;
pub mod throttle;
pub mod workspace;
