//! The test kit: in-process backends on 127.0.0.1:0, a proxy in front of them, and clients.
//!
//! Every server runs in a task that is aborted when its handle drops, so a failing test leaks nothing.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use reverseit_core::{BoxError, PoolConfig, RouteConfig};
use reverseit_hyper::ReverseProxy;
use reverseit_pool::Pool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub mod ws;

pub type Body = BoxBody<Bytes, BoxError>;

pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into()).map_err(|e| match e {}).boxed()
}

pub fn empty() -> Body {
    full(Bytes::new())
}

/// A task aborted on drop.
pub struct Task(JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A raw TCP backend that writes `answer` after each read from a connection, whatever was sent,
/// and with `close` drops the connection after its first answer. Returns its `http://` URL.
pub async fn canned_backend(answer: &'static [u8], close: bool) -> (String, Task) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while s.read(&mut buf).await.unwrap_or(0) > 0 {
                    if s.write_all(answer).await.is_err() || close {
                        break;
                    }
                }
            });
        }
    });
    (url, Task(task))
}

/// Which protocols a test backend speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Speaks {
    Http1,
    H2c,
    Auto,
}

/// An in-process backend that counts the connections it accepted.
pub struct Backend {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    _task: Task,
}

impl Backend {
    pub async fn start<F, Fut>(speaks: Speaks, handler: F) -> Self
    where
        F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let handler = handler.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let handler = handler.clone();
                        async move { Ok::<_, Infallible>(handler(req).await) }
                    });
                    let io = TokioIo::new(stream);
                    let _ = match speaks {
                        Speaks::Http1 => hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, svc)
                            .with_upgrades()
                            .await
                            .map_err(BoxError::from),
                        Speaks::H2c => {
                            hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                                .serve_connection(io, svc)
                                .await
                                .map_err(BoxError::from)
                        }
                        Speaks::Auto => {
                            hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                                .serve_connection_with_upgrades(io, svc)
                                .await
                        }
                    };
                });
            }
        });
        Backend {
            addr,
            accepted,
            _task: Task(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// The proxy served on 127.0.0.1:0 with the crate's own serve helper.
pub struct Proxy {
    pub addr: SocketAddr,
    pub proxy: ReverseProxy,
    _task: Task,
}

impl Proxy {
    pub async fn start(route: RouteConfig) -> Self {
        Self::start_with_pool(Pool::new(PoolConfig::default()), route).await
    }

    pub async fn start_with_pool(pool: Pool, route: RouteConfig) -> Self {
        let proxy = ReverseProxy::new(pool, route).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let svc = proxy.clone();
        let task = tokio::spawn(async move {
            let _ = reverseit_hyper::serve(listener, svc).await;
        });
        Proxy {
            addr,
            proxy,
            _task: Task(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

/// An HTTP/1.1 client (keep-alive).
pub fn client() -> Client<HttpConnector, Body> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// An HTTP/2 prior-knowledge (h2c) client.
pub fn h2_client() -> Client<HttpConnector, Body> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// Sends a request and collects the response body.
pub async fn fetch(
    client: &Client<HttpConnector, Body>,
    req: Request<Body>,
) -> (StatusCode, http::HeaderMap, Bytes) {
    let resp = client
        .request(req)
        .await
        .expect("request through the proxy");
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.expect("whole body").to_bytes();
    (parts.status, parts.headers, bytes)
}

pub async fn get(url: &str) -> (StatusCode, http::HeaderMap, Bytes) {
    let req = Request::get(url).body(empty()).unwrap();
    fetch(&client(), req).await
}

/// Writes raw bytes to `addr` and reads until the peer closes.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    raw_exchange_inner(addr, request, false).await
}

/// Like [`raw_exchange`], then closes the sending side: the peer sees the end of input.
pub async fn raw_exchange_eof(addr: SocketAddr, request: &[u8]) -> String {
    raw_exchange_inner(addr, request, true).await
}

async fn raw_exchange_inner(addr: SocketAddr, request: &[u8], eof: bool) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    if eof {
        stream.shutdown().await.unwrap();
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    // Bounded, so a proxy that keeps the connection open fails the test instead of hanging it.
    // Real time: not for tests on a paused clock, where waiting on the socket would let the
    // bound fire at once.
    if tokio::time::timeout(RAW_EXCHANGE_BOUND, read_all)
        .await
        .is_err()
    {
        panic!(
            "the connection stayed open {RAW_EXCHANGE_BOUND:?} after the request; read so far: {}",
            String::from_utf8_lossy(&out)
        );
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How long [`raw_exchange`] waits for the peer to close.
const RAW_EXCHANGE_BOUND: std::time::Duration = std::time::Duration::from_secs(20);

/// A handler that answers with a text dump of what it received: the request line, each header
/// line, and the body's length.
pub async fn echo(req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut out = format!("{} {}\n", parts.method, parts.uri);
    for (name, value) in &parts.headers {
        out.push_str(&format!(
            "{}: {}\n",
            name,
            value.to_str().unwrap_or("<bin>")
        ));
    }
    out.push_str(&format!("body-length: {}\n", bytes.len()));
    Response::new(full(out))
}

/// The header lines of an [`echo`] answer named `name`, in order.
pub fn echoed<'a>(dump: &'a str, name: &str) -> Vec<&'a str> {
    let prefix = format!("{name}: ");
    dump.lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .collect()
}
