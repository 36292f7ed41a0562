//! The README-mirroring examples, served by axum, carry requests through to a real backend.

#[path = "../examples/custom_layers.rs"]
mod custom_layers;
#[path = "../examples/plug_style.rs"]
mod plug_style;
#[path = "../examples/router.rs"]
mod router;

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use reverseit_axum::ClientAddr;
use reverseit_core::PoolConfig;
use reverseit_pool::Pool;
use tokio::net::TcpListener;

/// A backend answering with its request line and the headers the test looks at.
async fn backend() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                        let header = |n: &str| {
                            req.headers()
                                .get(n)
                                .map(|v| v.to_str().unwrap().to_owned())
                                .unwrap_or_default()
                        };
                        let text = format!(
                            "{} {}\nx-api-key: {}\nx-forwarded-for: {}\n",
                            req.method(),
                            req.uri(),
                            header("x-api-key"),
                            header("x-forwarded-for"),
                        );
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))))
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, task)
}

async fn serve(app: axum::Router) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<ClientAddr>(),
        )
        .await
        .unwrap();
    });
    (addr, task)
}

async fn get(addr: SocketAddr, path: &str) -> (u16, http::HeaderMap, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get(path)
        .header("host", addr.to_string())
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

// The router example: `/api` is nested (prefix stripped), `/` stays the application's own.
#[tokio::test]
async fn router_example_strips_the_mount_prefix() {
    let (backend, b) = backend().await;
    let url = format!("http://{backend}");
    let app = router::app(Pool::new(PoolConfig::default()), &url, &url).unwrap();
    let (addr, s) = serve(app).await;
    let (status, _, body) = get(addr, "/api/users?page=2").await;
    assert_eq!(status, 200);
    assert!(body.starts_with("GET /users?page=2\n"), "{body}");
    assert!(body.contains("x-forwarded-for: 127.0.0.1\n"), "{body}");
    let (status, _, body) = get(addr, "/").await;
    assert_eq!((status, body.as_str()), (200, "the application's own page"));
    b.abort();
    s.abort();
}

// The plug-style example: every path goes to the backend unchanged.
#[tokio::test]
async fn plug_style_example_forwards_everything() {
    let (backend, b) = backend().await;
    let app = plug_style::proxy_router(
        Pool::new(PoolConfig::default()),
        &format!("http://{backend}"),
    )
    .unwrap();
    let (addr, s) = serve(app).await;
    let (status, _, body) = get(addr, "/any/path").await;
    assert_eq!(status, 200);
    assert!(body.starts_with("GET /any/path\n"), "{body}");
    b.abort();
    s.abort();
}

// The custom-layers example: the API key reaches the backend, the proxy headers reach the client.
#[tokio::test]
async fn custom_layers_example_changes_request_and_response() {
    let (backend, b) = backend().await;
    let app = custom_layers::api_proxy(
        Pool::new(PoolConfig::default()),
        &format!("http://{backend}"),
        "secret",
    )
    .unwrap();
    let (addr, s) = serve(app).await;
    let (status, headers, body) = get(addr, "/api/items").await;
    assert_eq!(status, 200);
    assert!(body.starts_with("GET /items\n"), "{body}");
    assert!(body.contains("x-api-key: secret\n"), "{body}");
    assert_eq!(headers["x-proxy-by"], "MyApp");
    assert_eq!(headers["x-proxy-version"], "1.0");
    b.abort();
    s.abort();
}
