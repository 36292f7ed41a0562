//! The pool's test kit: in-process backends on `127.0.0.1:0` that count their connections, a test
//! CA, channel-driven bodies, and small waiting helpers.
//!
//! Each test crate uses a subset of it.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use reverseit_core::{Backend, PoolConfig, Protocols};
use reverseit_pool::{Pool, Target};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

pub type RespBody = UnsyncBoxBody<Bytes, Infallible>;
pub type BoxFut = Pin<Box<dyn Future<Output = Response<RespBody>> + Send>>;
pub type Handler = Arc<dyn Fn(Request<Incoming>) -> BoxFut + Send + Sync>;

/// How the backend speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speak {
    Http1,
    /// Prior-knowledge HTTP/2 with this `max_concurrent_streams`.
    H2c(u32),
    /// TLS, ALPN `h2` and `http/1.1`, both served.
    Tls,
}

/// What the backend saw.
#[derive(Debug, Default)]
pub struct Counters {
    pub accepted: AtomicUsize,
    pub open: AtomicUsize,
    pub max_open: AtomicUsize,
    pub closed: AtomicUsize,
    /// Woken on every accept and every close.
    pub changed: Notify,
}

impl Counters {
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
    pub fn max_open(&self) -> usize {
        self.max_open.load(Ordering::SeqCst)
    }
    pub fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }

    /// Waits until `closed` reaches `n` (an event, not a sleep).
    pub async fn wait_closed(&self, n: usize) {
        loop {
            let changed = self.changed.notified();
            if self.closed() >= n {
                return;
            }
            changed.await;
        }
    }
}

/// A running in-process backend; stops when dropped.
pub struct TestBackend {
    pub addr: SocketAddr,
    pub counters: Arc<Counters>,
    /// Set to true to make every connection shut down gracefully (idle HTTP/1.1 connections
    /// close; HTTP/2 sends GOAWAY).
    pub shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestBackend {
    pub async fn start(speak: Speak, handler: Handler) -> TestBackend {
        Self::start_tls(speak, handler, None).await
    }

    pub async fn start_tls(
        speak: Speak,
        handler: Handler,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> TestBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counters = Arc::new(Counters::default());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let c = counters.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                c.accepted.fetch_add(1, Ordering::SeqCst);
                let now = c.open.fetch_add(1, Ordering::SeqCst) + 1;
                c.max_open.fetch_max(now, Ordering::SeqCst);
                c.changed.notify_waiters();
                let c = c.clone();
                let handler = handler.clone();
                let tls = tls.clone();
                let shutdown = shutdown_rx.clone();
                tokio::spawn(async move {
                    serve(speak, tcp, handler, tls, shutdown).await;
                    c.open.fetch_sub(1, Ordering::SeqCst);
                    c.closed.fetch_add(1, Ordering::SeqCst);
                    c.changed.notify_waiters();
                });
            }
        });
        TestBackend {
            addr,
            counters,
            shutdown,
            task,
        }
    }

    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.addr)
    }

    /// A target for this backend with the given protocols.
    pub fn target(&self, protocols: Protocols) -> Target {
        Target::new(Backend::parse(&self.url("http")).unwrap())
            .protocols(protocols)
            .build()
            .unwrap()
    }
}

async fn serve(
    speak: Speak,
    tcp: tokio::net::TcpStream,
    handler: Handler,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let svc = service_fn(move |req| {
        let h = handler.clone();
        async move { Ok::<_, Infallible>(h(req).await) }
    });
    match speak {
        Speak::Http1 => {
            let conn =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = signalled(&mut shutdown) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        }
        Speak::H2c(max) => {
            let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .max_concurrent_streams(max)
                .serve_connection(TokioIo::new(tcp), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = signalled(&mut shutdown) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        }
        Speak::Tls => {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.expect("TLS config"));
            let Ok(stream) = acceptor.accept(tcp).await else {
                return; // the client refused our certificate
            };
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        }
    }
}

async fn signalled(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// Wraps an async closure as a handler.
pub fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<RespBody>> + Send + 'static,
{
    Arc::new(move |req| Box::pin(f(req)))
}

/// Answers `hello` with the HTTP version it saw in `x-version`.
pub fn hello() -> Handler {
    handler(|req: Request<Incoming>| async move {
        Response::builder()
            .header("x-version", format!("{:?}", req.version()))
            .body(full("hello"))
            .unwrap()
    })
}

pub fn full(s: impl Into<Bytes>) -> RespBody {
    Full::new(s.into()).boxed_unsync()
}

pub fn empty() -> Empty<Bytes> {
    Empty::new()
}

pub fn get(path: &str) -> Request<Empty<Bytes>> {
    Request::get(path).body(Empty::new()).unwrap()
}

/// Reads a whole response body.
pub async fn text(res: Response<Incoming>) -> String {
    let b = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(b.to_vec()).unwrap()
}

pub fn pool(size: usize) -> Pool {
    Pool::new(PoolConfig::builder().pool_size(size).build().unwrap())
}

/// Yields until `cond` holds; for state that changes as other tasks run (no timer involved, so it
/// works on a paused clock). Panics after many rounds rather than hanging.
pub async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..100_000 {
        if cond() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("never happened: {what}");
}

/// A body whose chunks come from a channel: the test decides when each is sent.
pub struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

pub fn channel_body() -> (mpsc::Sender<Bytes>, ChannelBody) {
    let (tx, rx) = mpsc::channel(1);
    (tx, ChannelBody { rx })
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// A CA made at test time, and a server certificate for `localhost` and `127.0.0.1` it signed.
pub struct TestCa {
    pub ca_pem: String,
    pub server: Arc<rustls::ServerConfig>,
}

impl TestCa {
    pub fn new() -> TestCa {
        Self::with_alpn(&[b"h2", b"http/1.1"])
    }

    /// A CA whose server offers only these ALPN protocols.
    pub fn with_alpn(alpn: &[&[u8]]) -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "ReverseIt test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let key = rustls_pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
        let mut server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
        server.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        TestCa {
            ca_pem: ca.pem(),
            server: Arc::new(server),
        }
    }

    /// Writes the CA certificate to a fresh temporary file.
    pub fn ca_file(&self) -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "reverseit-pool-test-ca-{}-{}.pem",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&path, &self.ca_pem).unwrap();
        path
    }
}

/// Gives up a test that hangs, with a message, after a generous real-time bound.
pub async fn within<F: Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(Duration::from_secs(20), f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out: {what}"),
    }
}
