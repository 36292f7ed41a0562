//! The bridge: wraps both upgraded streams, relays until the session ends, closes both sides.

use std::future::poll_fn;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use reverseit_core::ErrorKind;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::closing::SideClose;
use crate::config::BridgeConfig;
use crate::outcome::{BridgeOutcome, ClosedBy, Side};
use crate::relay::{End, Lane, Limits, Relay};
use crate::shutdown::Shutdown;

/// Deadline used when `now + timeout` does not fit in an `Instant` (tokio's own far future).
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// Relays WebSocket messages between an upgraded client connection and an upgraded backend
/// connection until both are closed; never panics; returns what happened.
///
/// `client` is the connection the proxy accepted (the proxy is its WebSocket server: it expects
/// masked frames and sends unmasked ones); `backend` the one the proxy opened (the proxy is its
/// WebSocket client and masks what it sends). Both handshakes must be done; bytes either peer sent
/// right after its handshake must be readable from the given stream (`WS-9`).
///
/// ```no_run
/// # async fn demo(client_io: tokio::io::DuplexStream, backend_io: tokio::io::DuplexStream) {
/// use reverseit_core::RouteConfig;
/// use reverseit_ws::{BridgeConfig, Shutdown};
///
/// let route = RouteConfig::builder("ws://127.0.0.1:4000").build().unwrap();
/// let config = BridgeConfig::from_route(&route);
/// let shutdown = Shutdown::new();
/// let outcome = reverseit_ws::bridge(client_io, backend_io, &config, &shutdown).await;
/// tracing::debug!(?outcome, "websocket closed");
/// # }
/// ```
pub async fn bridge<C, B>(
    client: C,
    backend: B,
    config: &BridgeConfig,
    shutdown: &Shutdown,
) -> BridgeOutcome
where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let relay = {
        // Scoped so the wrapped streams' own slots end here instead of doubling the task's state
        // next to the relay future that takes them.
        let ws_config = config.websocket_config();
        let client = WebSocketStream::from_raw_socket(client, Role::Server, Some(ws_config)).await;
        let backend =
            WebSocketStream::from_raw_socket(backend, Role::Client, Some(ws_config)).await;
        bridge_streams(client, backend, config, shutdown)
    };
    relay.await
}

/// [`bridge`] for streams already wrapped by tokio-tungstenite: `client` with `Role::Server`,
/// `backend` with `Role::Client`, ideally both with [`BridgeConfig::websocket_config`] (the message
/// size limit is tungstenite's).
pub async fn bridge_streams<C, B>(
    mut client: WebSocketStream<C>,
    mut backend: WebSocketStream<B>,
    config: &BridgeConfig,
    shutdown: &Shutdown,
) -> BridgeOutcome
where
    C: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let _active = shutdown.enter();
    let mut to_backend = Lane::default();
    let mut to_client = Lane::default();

    // One timer for the whole life: the idle deadline while relaying, then the close deadline.
    let now = Instant::now();
    let mut timer = pin!(tokio::time::sleep_until(deadline(now, config.idle_timeout)));
    let end = {
        let stop = pin!(shutdown.notified());
        let mut relay = Relay {
            client: &mut client,
            backend: &mut backend,
            to_backend: &mut to_backend,
            to_client: &mut to_client,
            limits: Limits {
                pending_bytes: config.max_pending_bytes,
                pending_frames: config.max_pending_frames,
            },
            idle_timeout: config.idle_timeout,
            idle: timer.as_mut(),
            last_frame: now,
            shutdown,
            stop,
        };
        poll_fn(|cx| relay.poll_relay(cx)).await
    };

    let (closed_by, error, offender, mut client_close, mut backend_close) = match end {
        End::Closed { by, frame } => {
            // The closer got its own frame back from tungstenite; the other side gets it after
            // what is queued toward it. Nothing more can be sent to the closer.
            let (c, b) = match by {
                Side::Client => {
                    to_client.queue.clear();
                    (SideClose::initiator(&frame), SideClose::forward(frame))
                }
                Side::Backend => {
                    to_backend.queue.clear();
                    (
                        SideClose::forward(frame.clone()),
                        SideClose::initiator(&frame),
                    )
                }
            };
            let closed_by = match by {
                Side::Client => ClosedBy::Client,
                Side::Backend => ClosedBy::Backend,
            };
            (closed_by, None, None, c, b)
        }
        End::Failed(failure) => {
            // After a failure nothing queued is delivered: each side gets its close frame at once.
            to_client.queue.clear();
            to_backend.queue.clear();
            let (c, b) = failure.close_frames();
            let readable = |side| failure.unreadable != Some(side);
            let closed_by = match failure.error.kind() {
                ErrorKind::ClientGone => ClosedBy::Client,
                ErrorKind::BackendIo => ClosedBy::Backend,
                _ => ClosedBy::Proxy,
            };
            (
                closed_by,
                Some(failure.error),
                failure.offender,
                SideClose::proxy(c, readable(Side::Client)),
                SideClose::proxy(b, readable(Side::Backend)),
            )
        }
    };

    timer
        .as_mut()
        .reset(deadline(Instant::now(), config.close_timeout));
    let clean = poll_fn(|cx| {
        let c = client_close.poll_close(cx, &mut client, &mut to_client);
        let b = backend_close.poll_close(cx, &mut backend, &mut to_backend);
        if c.is_ready() && b.is_ready() {
            Poll::Ready(true)
        } else if timer.as_mut().poll(cx).is_ready() {
            Poll::Ready(false)
        } else {
            Poll::Pending
        }
    })
    .await;

    let outcome = BridgeOutcome {
        closed_by,
        close_code_to_client: client_close.code(),
        close_code_to_backend: backend_close.code(),
        messages_client_to_backend: to_backend.relayed,
        messages_backend_to_client: to_client.relayed,
        error,
        offender,
        clean,
    };
    tracing::debug!(
        closed_by = ?outcome.closed_by,
        to_client = ?outcome.close_code_to_client,
        to_backend = ?outcome.close_code_to_backend,
        error = outcome.error.as_ref().map(tracing::field::display),
        clean,
        "websocket bridge closed"
    );
    outcome
}

/// `now + timeout`, saturating far in the future.
pub(crate) fn deadline(now: Instant, timeout: Duration) -> Instant {
    now.checked_add(timeout).unwrap_or_else(|| now + FAR_FUTURE)
}
