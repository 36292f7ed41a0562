//! # reverseit-core
//!
//! The pure heart of ReverseIt: everything a reverse proxy decides without touching a socket.
//!
//! - [`config`]: the pool's and each route's options, with the original ReverseIt's names and
//!   defaults, validated once by a builder, deserializable from the `reverseit` TOML file.
//! - [`Backend`]: a checked backend URL (http, https, ws, wss; IPv6 literals; path prefix).
//! - [`headers`]: the header policy for requests, responses and WebSocket handshakes (RFC 9110
//!   §7.6.1 hop-by-hop removal, `X-Forwarded-*`, add/remove).
//! - [`path`]: `strip_path` and the backend path prefix, and the dot-segment check.
//! - [`limits`]: request and response head checks done before a body byte moves: size limits,
//!   RFC 9112 framing (`Content-Length`, `Transfer-Encoding`) and `Host`.
//! - [`Error`]: the proxy's error type and the one mapping of each failure to an HTTP status
//!   ([`Error::disposition`]) and WebSocket close codes ([`Error::close_codes`]).
//!
//! No I/O, no tasks: the pool, the WebSocket bridge and the adapters build on this crate.
#![deny(missing_docs)]

mod backend;
pub mod config;
mod error;
pub mod headers;
pub mod limits;
pub mod path;

pub use backend::{Backend, BackendScheme};
pub use config::{
    ConfigError, ErrorResponse, ForwardedHeaders, InvalidOption, PoolConfig, PoolConfigBuilder,
    Protocol, Protocols, RouteConfig, RouteConfigBuilder, SizeLimit,
};
pub use error::{BoxError, CloseCodes, Disposition, Error, ErrorKind, Origin};
pub use headers::{ClientInfo, HeaderPolicy, Upstream};
pub use limits::RequestLimits;
pub use path::PathRewrite;
