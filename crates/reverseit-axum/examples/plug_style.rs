//! The original README's "As a Plug": a module that forwards everything to one backend, with its
//! own options (`upstream_idle_timeout`, HTTP/2 allowed).
//!
//! Run: `cargo run -p reverseit-axum --example plug_style -- http://localhost:4001`.

use std::time::Duration;

use axum::Router;
use reverseit_axum::{ClientAddr, Proxy};
use reverseit_core::{PoolConfig, Protocol, RouteConfig};
use reverseit_pool::Pool;

/// `forward "/", ReverseIt, backend: ..., upstream_idle_timeout: 60_000, protocols: [:http1, :http2]`
pub(crate) fn proxy_router(
    pool: Pool,
    backend: &str,
) -> Result<Router, Box<dyn std::error::Error>> {
    let route = RouteConfig::builder(backend)
        .upstream_idle_timeout(Duration::from_millis(60_000))
        .protocols(&[Protocol::Http1, Protocol::Http2])
        .build()?;
    // Every path the router does not handle itself goes to the backend, unchanged.
    Ok(Router::new().fallback_service(Proxy::new(pool, route)?))
}

#[allow(dead_code)] // also compiled into the crate's tests, which call `proxy_router` only
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let backend = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://localhost:4001".into());
    let pool = Pool::new(PoolConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    let app = proxy_router(pool, &backend)?;
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<ClientAddr>(),
    )
    .await?;
    Ok(())
}
