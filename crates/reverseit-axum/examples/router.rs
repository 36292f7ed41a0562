//! The original README's "In a Phoenix Router": regular routes, `/api` proxied to an API backend
//! with its prefix stripped, and `/socket` proxied to a WebSocket backend, all on one shared pool.
//!
//! Run: `cargo run -p reverseit-axum --example router -- http://127.0.0.1:4000 ws://127.0.0.1:4001`
//! then `curl http://127.0.0.1:8080/api/users`.

use axum::Router;
use axum::routing::get;
use reverseit_axum::{ClientAddr, Proxy};
use reverseit_core::{PoolConfig, RouteConfig};
use reverseit_pool::Pool;

/// Builds the application: `/` served here, `/api/*` and `/socket/*` proxied.
pub(crate) fn app(
    pool: Pool,
    api_backend: &str,
    ws_backend: &str,
) -> Result<Router, Box<dyn std::error::Error>> {
    // `nest_service` hands the proxy the path without its mount prefix, as Phoenix's `forward`
    // does: `/api/users` reaches the API backend as `/users`.
    let api = Proxy::new(pool.clone(), RouteConfig::builder(api_backend).build()?)?;
    let socket = Proxy::new(pool, RouteConfig::builder(ws_backend).build()?)?;
    Ok(Router::new()
        .route("/", get(|| async { "the application's own page" }))
        .nest_service("/api", api)
        .nest_service("/socket", socket))
}

#[allow(dead_code)] // also compiled into the crate's tests, which call `app` only
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let api = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:4000".into());
    let ws = args.next().unwrap_or_else(|| "ws://127.0.0.1:4001".into());
    // One pool for the application, as `{ReverseIt, name: ..., pool_size: 100}` in the supervisor.
    let pool = Pool::new(PoolConfig::builder().pool_size(100).build()?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    axum::serve(
        listener,
        app(pool, &api, &ws)?.into_make_service_with_connect_info::<ClientAddr>(),
    )
    .await?;
    Ok(())
}
