pub mod moto;
pub mod workspace;
