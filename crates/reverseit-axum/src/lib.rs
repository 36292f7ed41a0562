//! # reverseit-axum
//!
//! Mount the ReverseIt proxy in an axum [`Router`](axum::Router): [`Proxy`] is a
//! `tower::Service` that axum accepts in `nest_service`, `route_service` and `fallback_service`.
//!
//! ```no_run
//! use axum::Router;
//! use reverseit_axum::{ClientAddr, Proxy};
//! use reverseit_core::{PoolConfig, RouteConfig};
//! use reverseit_pool::Pool;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // One pool for the whole application, shared by every route.
//! let pool = Pool::new(PoolConfig::builder().pool_size(100).build()?);
//! let api = Proxy::new(pool.clone(), RouteConfig::builder("http://backend-api:4000").build()?)?;
//! let socket = Proxy::new(pool, RouteConfig::builder("ws://backend-ws:4000").build()?)?;
//!
//! let app = Router::new()
//!     .nest_service("/api", api)        // `/api/users` reaches the backend as `/users`
//!     .nest_service("/socket", socket); // WebSocket upgrades included
//!
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
//! // `ClientAddr` gives the proxy the client's address for `X-Forwarded-For`.
//! axum::serve(listener, app.into_make_service_with_connect_info::<ClientAddr>()).await?;
//! # Ok(()) }
//! ```
//!
//! `nest_service` removes the mount prefix before the proxy sees the request, as Phoenix's
//! `forward` does, so a nested route needs no `strip_path`. Mounted with `route_service` or
//! `fallback_service`, the proxy sees the full path and `strip_path` applies.
//!
//! To change requests and responses, wrap the proxy in tower layers (the original's "Customizing
//! Requests and Responses"): see `examples/custom_layers.rs`.
#![deny(missing_docs)]

mod connect_info;
mod service;

pub use connect_info::ClientAddr;
pub use service::Proxy;

/// The workspace README's examples, compiled as doctests so they cannot rot.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
