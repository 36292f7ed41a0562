//! Configuration: the pool's options and each route's, with the original's names and defaults
//! (`CFG-1`), checked once by their builders (`CFG-2`), and their TOML shape.

mod check;
pub mod defaults;
mod error;
mod file;
mod pool;
mod route;
mod values;

pub use error::{ConfigError, InvalidOption};
pub use file::{ErrorResponseSpec, PoolSpec, RouteSpec};
pub use pool::{PoolConfig, PoolConfigBuilder};
pub use route::{RouteConfig, RouteConfigBuilder};
pub use values::{ErrorResponse, ForwardedHeaders, Protocol, Protocols, SizeLimit};

#[cfg(test)]
mod tests;
