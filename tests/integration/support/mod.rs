pub mod moto;
pub mod throttle;
pub mod workspace;
pub mod world;
