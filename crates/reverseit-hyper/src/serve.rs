//! Serving the proxy with hyper: HTTP/1.1 and HTTP/2 on one listener ([`ConnectionBuilder`]),
//! upgrades enabled, and the client's address passed to the proxy (`H2-1`, `HDR-3`).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use reverseit_core::BoxError;
use reverseit_core::headers::ClientInfo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tower_service::Service;

use crate::connection::ConnectionBuilder;

/// A hyper service that tags every request with the connection's [`ClientInfo`] and calls a tower
/// service, so the proxy can write `X-Forwarded-*` from the real peer.
#[derive(Debug, Clone)]
pub struct WithClientInfo<S> {
    inner: S,
    client: ClientInfo,
}

impl<S> WithClientInfo<S> {
    /// Wraps `inner` for one connection from `client`.
    pub fn new(inner: S, client: ClientInfo) -> Self {
        Self { inner, client }
    }
}

impl<S, B> hyper::service::Service<Request<Incoming>> for WithClientInfo<S>
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible> + Clone,
{
    type Response = Response<B>;
    type Error = Infallible;
    type Future = S::Future;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(self.client);
        // The proxy's `poll_ready` is always ready, so calling a clone directly is sound.
        self.inner.clone().call(req)
    }
}

/// A connection builder for HTTP/1.1 and HTTP/2 (prior knowledge in plain text, ALPN over TLS):
/// [`ConnectionBuilder::new`].
pub fn connection_builder() -> ConnectionBuilder {
    ConnectionBuilder::new()
}

/// Serves one accepted connection until it closes, upgrades (WebSocket) included.
///
/// `client` describes the connection: the peer's address, whether it came over TLS, and the local
/// port it reached.
pub async fn serve_connection<I, S, B>(
    builder: &ConnectionBuilder,
    io: I,
    client: ClientInfo,
    service: S,
) -> Result<(), BoxError>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    builder
        .serve_connection(io, WithClientInfo::new(service, client))
        .await
}

/// Accepts connections on `listener` and serves `service` on each, until the returned future is
/// dropped or accepting fails for good.
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// use reverseit_core::{PoolConfig, RouteConfig};
/// use reverseit_hyper::{ReverseProxy, serve};
/// use reverseit_pool::Pool;
///
/// let route = RouteConfig::builder("http://127.0.0.1:4000").build().unwrap();
/// let proxy = ReverseProxy::new(Pool::new(PoolConfig::default()), route).unwrap();
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// serve(listener, proxy).await
/// # }
/// ```
pub async fn serve<S, B>(listener: TcpListener, service: S) -> io::Result<()>
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    // Shared: each connection's task borrows it for the connection's whole life.
    let builder = Arc::new(connection_builder());
    let local_port = listener.local_addr()?.port();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) if is_transient(&e) => {
                // Out of file descriptors or a connection reset while queued: wait a moment rather
                // than spin, then go on serving the connections already open.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let _ = stream.set_nodelay(true);
        let builder = Arc::clone(&builder);
        let service = service.clone();
        let client = client_info(peer, false, local_port);
        tokio::spawn(async move {
            if let Err(e) = serve_connection(&builder, stream, client, service).await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
}

/// The [`ClientInfo`] for a TCP peer.
pub fn client_info(peer: SocketAddr, tls: bool, local_port: u16) -> ClientInfo {
    ClientInfo::new(peer.ip(), tls, local_port)
}

fn is_transient(e: &io::Error) -> bool {
    !matches!(
        e.kind(),
        io::ErrorKind::InvalidInput | io::ErrorKind::PermissionDenied | io::ErrorKind::Unsupported
    )
}
