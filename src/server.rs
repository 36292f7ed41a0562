//! The listener: accepting (plain or TLS), the `[server]` limits, serving each connection with the
//! routes, and the graceful shutdown on SIGINT/SIGTERM.

use std::future::{Future, poll_fn};
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use reverseit_core::RouteConfig;
use reverseit_core::headers::ClientInfo;
use reverseit_hyper::{ConnectionBuilder, ReverseProxy, client_info};
use reverseit_pool::Pool;
use reverseit_ws::Shutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::access_log::{self, AccessLog, LineBatch};
use crate::error_pages::Page;
use crate::idle::{self, Activity, Ticks, Tracked};
use crate::listener;
use crate::router::Router;
use crate::settings::{BadConfig, Mount, ServerLimits, Settings};
use crate::signal::Signals;
use crate::wake_gate::Gate;

/// How long a connection being closed for idleness may stay quiet (no request, no write) before it
/// is dropped: time for an HTTP/2 GOAWAY exchange or an HTTP/1.1 close.
const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Why the server could not run.
#[derive(Debug)]
pub(crate) enum RunError {
    /// The configuration turned out unusable at start-up (exit 2).
    Config(BadConfig),
    /// A runtime failure, such as a port in use (exit 1).
    Io(String),
}

/// Runs the proxy until SIGINT or SIGTERM, then shuts down gracefully; access-log lines go to
/// `access_log`.
pub(crate) async fn run(
    settings: Settings,
    access_log: access_log::Output,
) -> Result<(), RunError> {
    // Installed before the readiness line, so a signal sent right after it is never missed.
    let mut signals = Signals::install().map_err(|e| RunError::Io(format!("signals: {e}")))?;

    let mut mounts = settings.routes;
    let demo = if settings.demo {
        let backend = crate::demo::start()
            .await
            .map_err(|e| RunError::Io(format!("cannot start the demo backend: {e}")))?;
        let route = RouteConfig::builder(format!("http://{}", backend.addr()))
            .build()
            .map_err(|e| RunError::Config(BadConfig::one(e.to_string())))?;
        mounts.push(Mount {
            path: "/".to_owned(),
            route,
        });
        Some(backend)
    } else {
        None
    };

    let websockets = Shutdown::new();
    let heads = HeadCaps::of(mounts.iter().map(|m| &m.route));
    let router = routes(mounts, Pool::new(settings.pool), &websockets)?;

    let listener = listener::bind(settings.listen)
        .map_err(|e| RunError::Io(format!("cannot listen on {}: {e}", settings.listen)))?;
    let local = listener
        .local_addr()
        .map_err(|e| RunError::Io(format!("listener address: {e}")))?;
    let scheme = if settings.tls.is_some() {
        "https"
    } else {
        "http"
    };
    ready(&format!("listening on {scheme}://{local}"))
        .map_err(|e| RunError::Io(format!("stdout: {e}")))?;
    if let Some(backend) = &demo {
        crate::demo::print_hints(local, backend.addr());
    }
    tracing::info!(%local, tls = settings.tls.is_some(), "proxy ready");

    let (lines, flush_lines) = LineBatch::new(access_log);
    tokio::spawn(flush_lines);
    let server = Arc::new(Server {
        builder: builder(&settings.limits, heads),
        service: AccessLog::new(router, lines),
        tls: settings.tls.map(TlsAcceptor::from),
        ticks: Ticks::start(settings.limits.header_read_timeout),
        limits: settings.limits,
        local_port: local.port(),
    });
    let (stop, stopped) = watch::channel(false);
    let permits = Arc::new(Semaphore::new(settings.limits.max_connections));
    {
        // One wait for a signal for the server's whole life, polled only after a wake-up of its
        // own (see `wake_gate`), rather than a new one registered and dropped for every accept.
        let stop_signal = signals.recv();
        tokio::pin!(stop_signal);
        let gate = Gate::new();
        let mut signalled = |cx: &mut Context<'_>| {
            gate.open(cx)
                .is_some_and(|mut side| stop_signal.as_mut().poll(&mut side).is_ready())
        };
        loop {
            // A permit first: beyond `max_connections`, clients wait in the kernel's accept
            // queue.
            let permit = match Arc::clone(&permits).try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    let acquire = Arc::clone(&permits).acquire_owned();
                    tokio::pin!(acquire);
                    let permit = poll_fn(|cx| {
                        if signalled(cx) {
                            return Poll::Ready(None);
                        }
                        acquire.as_mut().poll(cx).map(Some)
                    })
                    .await;
                    match permit {
                        Some(permit) => permit.expect("the connection semaphore is never closed"),
                        None => break,
                    }
                }
            };
            let accepted = poll_fn(|cx| {
                if signalled(cx) {
                    return Poll::Ready(None);
                }
                listener.poll_accept(cx).map(Some)
            })
            .await;
            let (stream, peer) = match accepted {
                None => break,
                Some(Ok(accepted)) => accepted,
                Some(Err(e)) if is_transient(&e) => {
                    // Out of file descriptors, or a connection reset while queued: pause rather
                    // than spin, and keep serving the connections already open.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                Some(Err(e)) => return Err(RunError::Io(format!("accept failed: {e}"))),
            };
            let server = Arc::clone(&server);
            let stopped = stopped.clone();
            // Boxed: tokio moves a spawned future several times before it is first polled; a 2 KiB
            // connection future costs less to allocate once than to copy three times.
            tokio::spawn(Box::pin(async move {
                server.connection(stream, permit, peer, stopped).await
            }));
        }
    }

    drop(listener);
    // Only the connections' receivers may remain, so `stop.closed()` means "all connections done".
    drop(stopped);
    tracing::info!(timeout = ?settings.shutdown_timeout, "shutting down: no new connections");
    let _ = stop.send(true);
    websockets.trigger();
    let drained = async {
        tokio::join!(stop.closed(), websockets.wait_idle());
    };
    tokio::select! {
        () = drained => tracing::info!("shutdown complete"),
        () = tokio::time::sleep(settings.shutdown_timeout) => {
            tracing::warn!("shutdown_timeout reached: cutting off the requests still running");
        }
        () = signals.recv() => tracing::warn!("second signal: stopping now"),
    }
    Ok(())
}

/// Prints the readiness line, flushed: scripts and tests wait for it.
fn ready(line: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

/// One proxy per route, all sharing one pool and one WebSocket shutdown handle.
fn routes(mounts: Vec<Mount>, pool: Pool, websockets: &Shutdown) -> Result<Router, RunError> {
    let mut mounted = Vec::with_capacity(mounts.len());
    let mut problems = Vec::new();
    for (i, m) in mounts.into_iter().enumerate() {
        match ReverseProxy::with_shutdown(pool.clone(), m.route, websockets.clone()) {
            Ok(proxy) => mounted.push((m.path, proxy)),
            Err(e) => problems.extend(
                e.in_section(&format!("routes[{i}]"))
                    .problems()
                    .iter()
                    .map(ToString::to_string),
            ),
        }
    }
    if !problems.is_empty() {
        return Err(RunError::Config(BadConfig { problems }));
    }
    Ok(Router::new(mounted))
}

/// The HTTP/1.1 + HTTP/2 connection builder with the `[server]` limits. No hyper timer is set, so
/// hyper's per-request header timer stays off: [`idle`] does that job per connection.
fn builder(limits: &ServerLimits, heads: HeadCaps) -> ConnectionBuilder {
    let mut b = ConnectionBuilder::new();
    b.http2()
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .max_header_list_size(limits.max_header_list_size);
    // Raised only for routes that allow more than hyper's defaults: past 100 fields hyper keeps
    // its header index on the heap for every request (about 5 % per request, hyper's docs).
    if heads.fields > HYPER_MAX_HEADERS {
        b.http1().max_headers(heads.fields);
    }
    if heads.bytes > HYPER_MAX_BUF_SIZE {
        b.http1().max_buf_size(heads.bytes);
    }
    b
}

/// hyper's HTTP/1.1 server defaults: the most header fields, and the largest read buffer, so the
/// largest request head, it accepts.
const HYPER_MAX_HEADERS: usize = 100;
const HYPER_MAX_BUF_SIZE: usize = 8192 + 4096 * 100;

/// What hyper must accept of a request head so that every route's own limits (`LIM-1`, `LIM-2`)
/// decide, with their own statuses, rather than hyper's defaults, which answer before any route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HeadCaps {
    fields: usize,
    bytes: usize,
}

impl HeadCaps {
    fn of<'a>(routes: impl Iterator<Item = &'a RouteConfig>) -> Self {
        let mut caps = Self {
            fields: HYPER_MAX_HEADERS,
            bytes: HYPER_MAX_BUF_SIZE,
        };
        for r in routes {
            // hyper sets aside room for this many fields per request head: no more than the
            // route's byte limit can hold (a field line takes at least 4 bytes, `a:\r\n`).
            let fields = r
                .max_request_headers()
                .min(r.max_request_header_bytes() / 4 + 1);
            caps.fields = caps.fields.max(fields);
            // The request line around the target, and each field line's CRLF.
            let head = r
                .max_request_target_bytes()
                .saturating_add(r.max_request_header_bytes())
                .saturating_add(fields.saturating_mul(2))
                .saturating_add(1024);
            caps.bytes = caps.bytes.max(head);
        }
        caps
    }
}

struct Server {
    builder: ConnectionBuilder,
    service: AccessLog,
    tls: Option<TlsAcceptor>,
    /// The idle watchdog's clock, one for all connections.
    ticks: Ticks,
    limits: ServerLimits,
    local_port: u16,
}

impl Server {
    /// Serves one accepted connection: the TLS handshake first when TLS is on, bounded by
    /// `header_read_timeout` like a request head.
    async fn connection(
        &self,
        stream: TcpStream,
        permit: OwnedSemaphorePermit,
        peer: SocketAddr,
        stopped: watch::Receiver<bool>,
    ) {
        listener::prepare(&stream);
        let Some(acceptor) = &self.tls else {
            let client = client_info(peer, false, self.local_port);
            return self.serve(stream, permit, client, stopped).await;
        };
        // Boxed: the handshake and the TLS stream would make every connection's task (plain ones
        // included) about three times larger, and tokio copies a task's future as it spawns it.
        Box::pin(self.serve_tls(acceptor, stream, permit, peer, stopped)).await;
    }

    async fn serve_tls(
        &self,
        acceptor: &TlsAcceptor,
        stream: TcpStream,
        permit: OwnedSemaphorePermit,
        peer: SocketAddr,
        stopped: watch::Receiver<bool>,
    ) {
        let handshake = acceptor.accept(stream);
        match tokio::time::timeout(self.limits.header_read_timeout, handshake).await {
            Ok(Ok(tls)) => {
                let client = client_info(peer, true, self.local_port);
                self.serve(tls, permit, client, stopped).await;
            }
            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
        }
    }

    async fn serve<I>(
        &self,
        io: I,
        permit: OwnedSemaphorePermit,
        client: ClientInfo,
        mut stopped: watch::Receiver<bool>,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        // The router learns the client here, once, rather than from an extension per request.
        // hyper's own `Service` (called by reference): no copy of the service per request, as
        // hyper-util's adapter for tower services makes.
        let activity = Arc::new(Activity::default());
        let service = Tracked::new(self.service.for_client(client), Arc::clone(&activity));
        let io = Counted {
            io,
            activity: Arc::clone(&activity),
            page: None,
            _permit: permit,
        };
        let conn = self.builder.serve_connection(io, service);
        tokio::pin!(conn);
        let quiet = idle::idle(&activity, self.ticks.clone());
        tokio::pin!(quiet);
        // Not started until polled, which happens once the close began.
        let grace = idle::quiet_for(&activity, IDLE_CLOSE_GRACE);
        tokio::pin!(grace);
        let mut stopping = *stopped.borrow();
        let stop = stopped.changed();
        tokio::pin!(stop);
        if stopping {
            conn.as_mut().graceful_shutdown();
        }
        let mut closing = false;
        // The shutdown signal and the watchdog are polled only after a wake-up of theirs, not at
        // every wake-up the connection's traffic causes (see `wake_gate`).
        let gate = Gate::new();
        std::future::poll_fn(|cx| {
            loop {
                if let Poll::Ready(done) = conn.as_mut().poll(cx) {
                    if let Err(e) = done {
                        tracing::debug!(peer = %client.peer, error = %e, "connection ended with an error");
                    }
                    return Poll::Ready(());
                }
                let Some(mut side) = gate.open(cx) else {
                    return Poll::Pending;
                };
                let mut closed_now = false;
                if !stopping && stop.as_mut().poll(&mut side).is_ready() {
                    // Shutdown: finish the requests in flight, take no more (HTTP/2 GOAWAY).
                    stopping = true;
                    closed_now = true;
                }
                if !closing && let Poll::Ready(why) = quiet.as_mut().poll(&mut side) {
                    if why == idle::Quiet::Stalled {
                        // Its response sat in a full socket for whole periods: nothing more can
                        // be sent, so nothing is lost by dropping it; the backend's connection and
                        // the response's buffers go with it.
                        tracing::debug!(peer = %client.peer, "dropping a connection whose client stopped reading");
                        return Poll::Ready(());
                    }
                    closing = true;
                    closed_now = true;
                    tracing::debug!(peer = %client.peer, "closing an idle or stalled connection");
                }
                if closed_now {
                    conn.as_mut().graceful_shutdown();
                }
                if closing && grace.as_mut().poll(&mut side).is_ready() {
                    // Quiet again after the close began: a stalled head, or a client that never
                    // finished closing. A request that slipped in, or a response still being
                    // written to a slow reader, would have kept it from being quiet.
                    return Poll::Ready(());
                }
                if !closed_now {
                    return Poll::Pending;
                }
                // The connection acts on the shutdown when polled: poll it again now, and the
                // futures behind the gate at their next wake-up.
            }
        })
        .await;
    }
}

/// A client connection (the socket, or the TLS stream over it) as hyper sees it: it holds the
/// `max_connections` permit, tells the idle watchdog when a response is written or the socket is
/// full, and sends hyper's bodiless error answers as the proxy's pages ([`Page`]).
///
/// The permit goes with the connection, so an upgraded one (a WebSocket, which outlives its task)
/// still counts against `max_connections` until it closes.
struct Counted<I> {
    io: I,
    activity: Arc<Activity>,
    page: Option<Page>,
    _permit: OwnedSemaphorePermit,
}

impl<I: AsyncWrite + Unpin> Counted<I> {
    /// Writes through `write`, or the page standing in for `head` when `head` (all of the write)
    /// is hyper's own error answer written while no request is in flight; then tells the watchdog.
    fn write_counted(
        &mut self,
        cx: &mut Context<'_>,
        head: Option<&[u8]>,
        write: impl FnOnce(Pin<&mut I>, &mut Context<'_>) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        if self.page.is_none()
            && let Some(head) = head
        {
            self.page = Page::for_head(head).filter(|_| !self.activity.in_flight());
        }
        let written = match &mut self.page {
            None => write(Pin::new(&mut self.io), cx),
            Some(page) => {
                let written = page.poll_write(&mut self.io, cx);
                if written.is_ready() {
                    self.page = None;
                }
                written
            }
        };
        match written {
            Poll::Ready(Ok(n)) if n > 0 => self.activity.wrote(),
            Poll::Pending => self.activity.write_blocked(),
            _ => {}
        }
        written
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Counted<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Counted<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .write_counted(cx, Some(buf), |io, cx| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // hyper's error head comes alone: one slice, or one followed by empty ones.
        let head = match bufs {
            [head, rest @ ..] if rest.iter().all(|b| b.is_empty()) => Some(&head[..]),
            _ => None,
        };
        self.get_mut()
            .write_counted(cx, head, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        // hyper writes head and body with one `writev` when the socket supports it.
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

fn is_transient(e: &io::Error) -> bool {
    !matches!(
        e.kind(),
        io::ErrorKind::InvalidInput | io::ErrorKind::PermissionDenied | io::ErrorKind::Unsupported
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(fields: usize, bytes: usize) -> RouteConfig {
        RouteConfig::builder("http://127.0.0.1:1")
            .max_request_headers(fields)
            .max_request_header_bytes(bytes)
            .build()
            .unwrap()
    }

    // LIM-2: hyper's caps stay at its defaults unless a route allows more; then they follow the
    // largest route, and a field count the route's byte limit could never hold is not honoured.
    #[test]
    fn head_caps_follow_the_routes() {
        let default = HeadCaps::of([route(100, 65_536)].iter());
        assert_eq!(default.fields, HYPER_MAX_HEADERS);
        assert_eq!(default.bytes, HYPER_MAX_BUF_SIZE);
        let more = HeadCaps::of([route(100, 65_536), route(300, 1_000_000)].iter());
        assert_eq!(more.fields, 300);
        assert!(more.bytes > 1_000_000 && more.bytes < 1_100_000, "{more:?}");
        let absurd = HeadCaps::of([route(1_000_000_000, 65_536)].iter());
        assert_eq!(absurd.fields, 65_536 / 4 + 1);
        assert!(absurd.bytes < 2 * HYPER_MAX_BUF_SIZE, "{absurd:?}");
    }
}
