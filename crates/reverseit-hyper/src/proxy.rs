//! The proxy for one route: the original's Plug `call/2` as a `tower::Service`.
//!
//! One place decides HTTP versus WebSocket, checks the request against the limits, rewrites it by the
//! header and path policy, sends it through the pool with its body streaming and its timeouts, and
//! answers. Every failure becomes an [`Error`] and is answered by [`Error::disposition`].

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{
    CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, SEC_WEBSOCKET_VERSION, TRAILER,
    TRANSFER_ENCODING,
};
use http::{HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body::Body;
use reverseit_core::headers::{self, ClientInfo, HeaderPolicy, Upstream};
use reverseit_core::limits::{self, RequestLimits};
use reverseit_core::path::PathRewrite;
use reverseit_core::{BoxError, ConfigError, Disposition, Error, ErrorKind, Origin, RouteConfig};
use reverseit_pool::{Pool, Target};
use reverseit_ws::{BridgeConfig, Shutdown};
use tower_service::Service;

use crate::request_body::{self, BodySettings, Buffered, Prepared};
use crate::response_body::ProxyBody;

/// The reverse proxy for one route, cheap to clone.
///
/// Serve it with [`crate::serve`], mount it in axum, or wrap it in tower layers. The service never
/// fails: every error becomes a response (or an aborted body, when a response had already started).
/// A client that left mid-request gets a 502 nobody reads, whose body says so
/// ([`ProxyBody::client_gone`]), for logs.
///
/// The client's address for `X-Forwarded-*` comes from a [`ClientInfo`] request extension, which
/// [`crate::serve`], [`crate::serve_connection`] and `reverseit-axum` insert. A server that inserts
/// none gets `0.0.0.0` as the client address.
///
/// ```no_run
/// use reverseit_core::{PoolConfig, RouteConfig};
/// use reverseit_hyper::ReverseProxy;
/// use reverseit_pool::Pool;
///
/// let pool = Pool::new(PoolConfig::default());
/// let route = RouteConfig::builder("http://127.0.0.1:4000").strip_path("/api").build()?;
/// let proxy = ReverseProxy::new(pool, route)?;
/// # Ok::<(), reverseit_core::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct ReverseProxy {
    route: Arc<Route>,
}

/// Everything derived from the route's configuration once, at construction.
pub(crate) struct Route {
    pub(crate) config: RouteConfig,
    pub(crate) pool: Pool,
    pub(crate) target: Target,
    pub(crate) policy: HeaderPolicy,
    pub(crate) rewrite: PathRewrite,
    pub(crate) limits: RequestLimits,
    pub(crate) bridge: BridgeConfig,
    pub(crate) shutdown: Shutdown,
    body: BodySettings,
    /// `te: trailers` is kept only when the backend may speak HTTP/2 (`HDR-1`).
    upstream: Upstream,
}

impl ReverseProxy {
    /// A proxy for `route`, sending its requests through `pool`.
    ///
    /// Fails only on what the route's configuration could not check without I/O, such as an unreadable
    /// `ca_file`.
    pub fn new(pool: Pool, route: RouteConfig) -> Result<Self, ConfigError> {
        Self::with_shutdown(pool, route, Shutdown::default())
    }

    /// Like [`ReverseProxy::new`], with a WebSocket shutdown handle shared with other routes: the
    /// server triggers it to close every proxied WebSocket with 1001 on both sides. Once triggered,
    /// new upgrade requests are answered 503 without contacting the backend.
    pub fn with_shutdown(
        pool: Pool,
        route: RouteConfig,
        shutdown: Shutdown,
    ) -> Result<Self, ConfigError> {
        let target = Target::from_route(&route)?;
        let upstream = if route.protocols().http2() {
            Upstream::Http2
        } else {
            Upstream::Http1
        };
        Ok(Self {
            route: Arc::new(Route {
                policy: HeaderPolicy::from_route(&route),
                rewrite: PathRewrite::from_route(&route),
                limits: RequestLimits::from_route(&route),
                body: BodySettings::from_route(&route),
                bridge: BridgeConfig::from_route(&route),
                shutdown,
                upstream,
                target,
                pool,
                config: route,
            }),
        })
    }

    /// The route's configuration.
    pub fn config(&self) -> &RouteConfig {
        &self.route.config
    }

    /// The pool this proxy sends through.
    pub fn pool(&self) -> &Pool {
        &self.route.pool
    }

    /// The handle that closes this proxy's WebSockets (see [`ReverseProxy::with_shutdown`]).
    pub fn websocket_shutdown(&self) -> &Shutdown {
        &self.route.shutdown
    }

    /// The pool target of this route's backend, for [`Pool::stats`].
    pub fn target(&self) -> &Target {
        &self.route.target
    }
}

impl fmt::Debug for ReverseProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReverseProxy")
            .field("backend", self.route.config.backend())
            .finish_non_exhaustive()
    }
}

/// The future of [`ReverseProxy::call`].
pub type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send + 'static>>;

impl<B> Service<Request<B>> for ReverseProxy
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        Arc::clone(&self.route).start(req, None)
    }
}

impl ReverseProxy {
    /// Proxies one request from a client the caller describes: what [`Service::call`] does with a
    /// [`ClientInfo`] request extension, for a server that knows its connection and would rather
    /// not insert (allocate, hash, free) an extension for every request.
    pub fn call_with_client<B>(&self, req: Request<B>, client: ClientInfo) -> ResponseFuture
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        Arc::clone(&self.route).start(req, Some(client))
    }
}

impl Route {
    /// The future answering `req`; `client`: the connection as the server described it, else read
    /// from the request's extensions.
    ///
    /// HTTP and WebSocket requests get futures of their own, each boxed directly: an `async`
    /// layer choosing between them would carry the larger of the two in every request's future,
    /// and each layer costs a copy of the whole nested future when it starts (about 1 % of a
    /// small request's instructions per layer, callgrind).
    fn start<B>(self: Arc<Self>, req: Request<B>, client: Option<ClientInfo>) -> ResponseFuture
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        if headers::is_websocket_upgrade(req.headers()) {
            Box::pin(async move {
                let result = crate::websocket::proxy(&self, req, client).await;
                Ok(result.unwrap_or_else(|e| {
                    let refused = e.kind() == ErrorKind::InvalidWebSocketHandshake;
                    let mut resp = self.error_response(e);
                    if refused {
                        // RFC 6455 §4.2.2: a refused handshake names the version the server
                        // speaks.
                        resp.headers_mut()
                            .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
                    }
                    resp
                }))
            })
        } else {
            Box::pin(self.forward(req, client))
        }
    }

    /// Proxies an HTTP request. Each failure becomes the client's answer where it happens (rather
    /// than through an inner `async` function returning a `Result`, which would be one more
    /// layer).
    async fn forward<B>(
        self: Arc<Self>,
        req: Request<B>,
        client: Option<ClientInfo>,
    ) -> Result<Response<ProxyBody>, Infallible>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        let outgoing = match self.outgoing_head(req, client) {
            Ok(o) => o,
            Err(e) => return Ok(self.error_response(e)),
        };
        let Outgoing {
            method,
            path,
            mut headers,
            body,
            declared,
            had_body,
            interactive,
            client_takes_trailers,
        } = outgoing;
        let head_request = method == Method::HEAD;
        let body = if request_body::is_absent(&body, declared) {
            // Most requests: no reading future to start.
            Prepared::Buffered(Buffered::default())
        } else {
            // LIM-4, TMO-4
            match request_body::prepare(body, declared, interactive, self.body).await {
                Ok(b) => b,
                Err(e) => return Ok(self.error_response(e)),
            }
        };
        let response = match body {
            Prepared::Buffered(buffered) => {
                let deadline = tokio::time::Instant::now() + self.config.response_header_timeout();
                if declared.is_none() && (had_body || buffered.len() > 0) {
                    // A chunked (or HTTP/2, length-less) body read whole goes out with its length
                    // (`LIM-4`).
                    headers.insert(CONTENT_LENGTH, HeaderValue::from(buffered.len()));
                }
                self.send_buffered(method, path, headers, buffered, deadline)
                    .await
            }
            Prepared::Streaming(stream) => {
                // The head's clock runs only while the backend holds the exchange up (TMO-2,
                // STR-2): an upload may take longer than `response_header_timeout`.
                // Boxed: streamed bodies are the rare case, and the clock's timer and the
                // exchange inline would enlarge every request's future (each copy of it costs).
                let progress = stream.progress();
                let req = outgoing_request(method, path, headers, stream);
                let exchange = self.pool.send(&self.target, req);
                Box::pin(request_body::head_within(
                    exchange,
                    &progress,
                    self.config.response_header_timeout(),
                ))
                .await
            }
        };
        let relayed = response.and_then(|r| self.relay(r, head_request, client_takes_trailers));
        Ok(relayed.unwrap_or_else(|e| self.error_response(e)))
    }

    /// The checks and rewrites of a request's head: everything before its body is read.
    fn outgoing_head<B>(
        &self,
        req: Request<B>,
        client: Option<ClientInfo>,
    ) -> Result<Outgoing<B>, Error> {
        let (mut parts, body) = req.into_parts();
        limits::check_host(parts.version, &parts.uri, &parts.headers)?; // ERR-6
        self.limits.check_head(&parts.uri, &parts.headers)?; // LIM-1, LIM-2
        let declared =
            limits::request_body_length(&parts.headers, self.config.max_request_body_size())?; // LIM-3
        let had_body = declared.is_some() || parts.headers.contains_key(TRANSFER_ENCODING);
        let path = self.rewrite.rewrite_uri(&parts.uri)?; // PATH-1..4

        let client_host = client_host(&parts);
        let client = client.unwrap_or_else(|| client_info(&parts.extensions));
        // HDR-8: an HTTP/1.1 client gets trailers only if it asked for them; read before the policy
        // removes `te`.
        let client_takes_trailers =
            parts.version <= Version::HTTP_11 && headers::accepts_trailers(&parts.headers);
        self.policy.apply_request(
            &mut parts.headers,
            &client,
            client_host.as_ref(),
            self.upstream,
        );
        // `TE` goes no further than this hop toward an HTTP/1.1 backend (`HDR-1`), `trailers`
        // included: a backend that sends trailers only when asked (hyper's server does so) sends
        // none through the proxy.

        Ok(Outgoing {
            interactive: request_body::is_interactive(&parts.headers),
            method: parts.method,
            path,
            headers: parts.headers,
            body,
            declared,
            had_body,
            client_takes_trailers,
        })
    }

    /// Sends a buffered request, again on a fresh connection when that is safe (`ERR-3`): once when a
    /// reused connection failed before any response byte, and up to `response_header_retries` more
    /// times for GET and HEAD whose connection closed before the response head.
    async fn send_buffered(
        &self,
        method: Method,
        path: http::uri::PathAndQuery,
        headers: http::HeaderMap,
        body: Buffered,
        deadline: tokio::time::Instant,
    ) -> Result<Response<hyper::body::Incoming>, Error> {
        if !is_idempotent(&method) {
            // Never sent twice, so no copy is kept (`response_header_retries` is for GET and HEAD).
            let req = outgoing_request(method, path, headers, body);
            return self
                .pool
                .send_with_deadline(&self.target, req, deadline)
                .await;
        }
        let header_retries_apply = method == Method::GET || method == Method::HEAD;
        let mut reused_retry_left = true;
        let mut header_retries_left = self.config.response_header_retries();
        let mut fresh = false;
        loop {
            let req = outgoing_request(method.clone(), path.clone(), headers.clone(), body.clone());
            // The pool watches the deadline (`TMO-2`; on a reused connection, with the
            // connection's own timer) and keeps the kind of a failure of the client's own body
            // (`LIM-3`, `TMO-4`). Both calls are awaited here, not in a helper: see `start`.
            let sent = if fresh {
                self.pool
                    .resend_with_deadline(&self.target, req, deadline)
                    .await
            } else {
                self.pool
                    .send_with_deadline(&self.target, req, deadline)
                    .await
            };
            match sent {
                Ok(resp) => return Ok(resp),
                Err(e) if e.kind() != ErrorKind::BackendIo => return Err(e),
                Err(e) if e.is_retryable() && reused_retry_left => {
                    reused_retry_left = false;
                    tracing::debug!(error = %e, "retrying on a fresh connection");
                }
                Err(e) if header_retries_apply && header_retries_left > 0 => {
                    header_retries_left -= 1;
                    tracing::debug!(error = %e, "retrying: connection closed before the response head");
                }
                Err(e) => return Err(e),
            }
            fresh = true;
        }
    }

    /// Relays a backend response: its head checked and filtered, its body streamed.
    ///
    /// `client_takes_trailers`: an HTTP/1.1 client that sent `TE: trailers`. hyper writes trailers
    /// to such a client only for field names announced in a `Trailer` header (RFC 9110 §6.6.2), so
    /// the backend's announcement is kept for it, and a gRPC response, whose HTTP/2 backend
    /// announces nothing, gets gRPC's names announced (`HDR-8`).
    pub(crate) fn relay(
        &self,
        response: Response<hyper::body::Incoming>,
        head_request: bool,
        client_takes_trailers: bool,
    ) -> Result<Response<ProxyBody>, Error> {
        let (mut parts, incoming) = response.into_parts();
        if parts.status == StatusCode::SWITCHING_PROTOCOLS {
            // Only an upgrade request may be answered so (WebSocket upgrades take their own
            // path); relayed, it would leave the client's connection in no known protocol.
            return Err(Error::new(ErrorKind::InvalidResponse)
                .with_message("101 Switching Protocols to a request that asked for no upgrade"));
        }
        limits::check_response_head(
            parts.status,
            &parts.headers,
            self.config.max_response_header_bytes(),
            self.config.max_response_body_size(),
            head_request,
        )?; // HDR-7, LIM-5
        let announced = client_takes_trailers.then(|| announced_trailers(&parts.headers));
        self.policy.apply_response(&mut parts.headers); // HDR-6
        if let Some(announced) = announced {
            for value in announced {
                parts.headers.append(TRAILER, value);
            }
        }
        parts.version = Version::default();
        let body = ProxyBody::upstream(
            incoming,
            self.config.max_response_body_size(),
            self.config.upstream_idle_timeout(),
        );
        Ok(Response::from_parts(parts, body))
    }

    pub(crate) fn error_response(&self, error: Error) -> Response<ProxyBody> {
        match error.origin() {
            Origin::Client => {
                tracing::debug!(error = %error, cause = ?std::error::Error::source(&error), "request refused")
            }
            _ => tracing::warn!(
                error = %error,
                cause = ?std::error::Error::source(&error),
                backend = %self.config.backend(),
                "proxy error"
            ),
        }
        match error.disposition(self.config.error_response()) {
            Disposition::Respond { status, body } => plain_response(status, body),
            Disposition::Abort => {
                let mut resp = Response::new(ProxyBody::failed(error));
                *resp.status_mut() = StatusCode::BAD_GATEWAY;
                resp
            }
            _ => plain_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error".into(),
            ),
        }
    }
}

/// A short `text/plain` answer written by the proxy itself. A 400 or 501 closes the connection:
/// after a malformed request, or a body whose coding the proxy cannot read, the connection's
/// framing cannot be trusted (`ERR-6`).
pub(crate) fn plain_response(status: StatusCode, body: String) -> Response<ProxyBody> {
    let len = body.len();
    let mut resp = Response::new(ProxyBody::full(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    if status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_IMPLEMENTED {
        h.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// The `Trailer` announcement to pass to a client that takes trailers: the backend's own, or gRPC's
/// status fields for a gRPC response.
fn announced_trailers(headers: &http::HeaderMap) -> Vec<HeaderValue> {
    let own: Vec<HeaderValue> = headers.get_all(TRAILER).iter().cloned().collect();
    if !own.is_empty() {
        return own;
    }
    let grpc = headers
        .get(CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().starts_with(b"application/grpc"));
    if grpc {
        vec![HeaderValue::from_static(
            "grpc-status, grpc-message, grpc-status-details-bin",
        )]
    } else {
        Vec::new()
    }
}

/// A request's head checked and rewritten for the backend, with what the rest of the exchange needs
/// to know of the client's original.
struct Outgoing<B> {
    method: Method,
    path: http::uri::PathAndQuery,
    headers: http::HeaderMap,
    body: B,
    /// The client's `Content-Length`, checked against the limit (`LIM-3`).
    declared: Option<u64>,
    /// Whether the client announced a body (`Content-Length` or `Transfer-Encoding`).
    had_body: bool,
    /// A call of a streaming RPC protocol (see [`request_body::is_interactive`]).
    interactive: bool,
    /// An HTTP/1.1 client that sent `TE: trailers` (`HDR-8`).
    client_takes_trailers: bool,
}

/// The request toward the backend, in origin form: the pool gives it the form its protocol needs.
fn outgoing_request<B>(
    method: Method,
    path: http::uri::PathAndQuery,
    headers: http::HeaderMap,
    body: B,
) -> Request<B> {
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = path.into();
    *req.headers_mut() = headers;
    req
}

/// RFC 9110 §9.2.2.
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// The host the client asked for: the request target's authority when it has one (an HTTP/1.1
/// absolute-form target, whose authority a server must take over `Host`, RFC 9112 §3.2.2; an
/// HTTP/2 `:authority`, RFC 9113 §8.3.1), otherwise its `Host`.
pub(crate) fn client_host(parts: &http::request::Parts) -> Option<HeaderValue> {
    parts
        .uri
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        .or_else(|| parts.headers.get(HOST).cloned())
}

/// The client connection as the server adapter described it; without one (a server that did not
/// say), the peer is unknown and reported as `0.0.0.0`.
pub(crate) fn client_info(ext: &http::Extensions) -> ClientInfo {
    ext.get::<ClientInfo>()
        .copied()
        .unwrap_or_else(|| ClientInfo::new(std::net::Ipv4Addr::UNSPECIFIED.into(), false, 0))
}
