//! The original README's "Customizing Requests and Responses", with tower layers instead of
//! `register_before_send`: add an API key to every proxied request, add `x-proxy-by` and
//! `x-proxy-version` to every response, and log method, path and status.
//!
//! Run: `cargo run -p reverseit-axum --example custom_layers -- http://127.0.0.1:4000`.

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use http::HeaderValue;
use reverseit_axum::{ClientAddr, Proxy};
use reverseit_core::{PoolConfig, RouteConfig};
use reverseit_pool::Pool;
use tower::ServiceBuilder;

/// The proxy of the original's `MyApp.APIProxy`, mounted at `/api` with `/api` stripped.
pub(crate) fn api_proxy(
    pool: Pool,
    backend: &str,
    api_key: &'static str,
) -> Result<Router, Box<dyn std::error::Error>> {
    let proxy = Proxy::new(pool, RouteConfig::builder(backend).build()?)?;
    let layered = ServiceBuilder::new()
        // Outermost: sees the request first and the final response last.
        .layer(middleware::from_fn(log_request))
        // Before the backend: `put_req_header("x-api-key", ...)`.
        .map_request(move |mut req: Request| {
            req.headers_mut()
                .insert("x-api-key", HeaderValue::from_static(api_key));
            req
        })
        // After the backend answered: `put_resp_header("x-proxy-by", ...)`.
        .map_response(|mut res: http::Response<reverseit_hyper::ProxyBody>| {
            let h = res.headers_mut();
            h.insert("x-proxy-by", HeaderValue::from_static("MyApp"));
            h.insert("x-proxy-version", HeaderValue::from_static("1.0"));
            res
        })
        .service(proxy);
    Ok(Router::new().nest_service("/api", layered))
}

/// `Logger.info("Proxied #{conn.method} #{conn.request_path} → #{conn.status}")`
async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let res = next.run(req).await;
    tracing::info!("Proxied {method} {path} → {}", res.status());
    res
}

#[allow(dead_code)] // also compiled into the crate's tests, which call `api_proxy` only
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let backend = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:4000".into());
    let pool = Pool::new(PoolConfig::default());
    let app = api_proxy(pool, &backend, "secret")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<ClientAddr>(),
    )
    .await?;
    Ok(())
}
