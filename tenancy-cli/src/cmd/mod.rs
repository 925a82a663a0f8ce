//! One module per command group; each parses nothing and prints through `Out`.

pub mod archive;
pub mod audit;
pub mod migrate;
pub mod moving;
pub mod registry;
pub mod servers;
pub mod spares;
pub mod tenants;
pub mod verify;
