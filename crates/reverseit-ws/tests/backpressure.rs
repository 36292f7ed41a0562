//! WS-11: bounded buffers and back-pressure.

mod common;

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use reverseit_core::ErrorKind;
use reverseit_ws::{READ_BUFFER_SIZE, Shutdown, Side, WRITE_BUFFER_SIZE};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

/// Counts the bytes the bridge reads from a stream.
struct Counting {
    inner: DuplexStream,
    read: Arc<AtomicU64>,
}

impl AsyncRead for Counting {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.read.fetch_add(n as u64, Ordering::SeqCst);
        res
    }
}

impl AsyncWrite for Counting {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A sender floods a receiver that does not read: the bridge must stop reading the sender once its
/// queue is full, so the bytes it took from the sender stay under a fixed bound; once the receiver
/// reads, the flow resumes in order and nothing was closed.
async fn flood(sender: Side, message_size: usize, pending_bytes: usize, pending_frames: usize) {
    const MESSAGES: u64 = 10_000;
    const DUPLEX_CAPACITY: usize = 16 * 1024;
    let config = config(
        route()
            .max_websocket_frame_size(1 << 20)
            .max_websocket_pending_bytes(pending_bytes)
            .max_websocket_pending_frames(pending_frames)
            .websocket_idle_timeout(Duration::from_secs(3600)),
    );
    let consumed = Arc::new(AtomicU64::new(0));
    let (client_io, proxy_client_io) = tokio::io::duplex(DUPLEX_CAPACITY);
    let (proxy_backend_io, backend_io) = tokio::io::duplex(DUPLEX_CAPACITY);
    let (proxy_client_io, proxy_backend_io) = (
        Counting {
            inner: proxy_client_io,
            read: Arc::clone(&consumed),
        },
        Counting {
            inner: proxy_backend_io,
            read: Arc::new(AtomicU64::new(0)),
        },
    );
    let (proxy_client_io, proxy_backend_io) = match sender {
        Side::Client => (proxy_client_io, proxy_backend_io),
        Side::Backend => {
            // Count what is read from the backend instead.
            let Counting { inner: c, read: a } = proxy_client_io;
            let Counting { inner: b, read: z } = proxy_backend_io;
            (
                Counting { inner: c, read: z },
                Counting { inner: b, read: a },
            )
        }
    };
    let client =
        WebSocketStream::from_raw_socket(client_io, Role::Client, Some(peer_config())).await;
    let backend =
        WebSocketStream::from_raw_socket(backend_io, Role::Server, Some(peer_config())).await;
    let (mut tx, mut rx) = match sender {
        Side::Client => (client, backend),
        Side::Backend => (backend, client),
    };
    let shutdown = Shutdown::new();
    let bridge = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { reverseit_ws::bridge(proxy_client_io, proxy_backend_io, &config, &shutdown).await }
    });

    let sent = Arc::new(AtomicU64::new(0));
    let flooder = tokio::spawn({
        let sent = Arc::clone(&sent);
        async move {
            for i in 0..MESSAGES {
                let mut payload = vec![0u8; message_size];
                payload[..8].copy_from_slice(&i.to_be_bytes());
                if tx.send(Message::Binary(payload.into())).await.is_err() {
                    break;
                }
                sent.fetch_add(1, Ordering::SeqCst);
            }
            tx
        }
    });

    // On the paused clock this returns once every task is blocked: the flooder on its writes, the
    // bridge on the receiver.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let took = consumed.load(Ordering::SeqCst) as usize;
    let frame = message_size + 14;
    // The queue (up to its limit plus the message that crossed it), the message tungstenite is
    // writing plus its write batch, a read buffer's worth of the next frame, and what fits in the
    // duplex toward the receiver.
    let queue_bound = pending_bytes.min(pending_frames * frame) + frame;
    let bound = queue_bound + frame + WRITE_BUFFER_SIZE + READ_BUFFER_SIZE + DUPLEX_CAPACITY;
    assert!(
        took <= bound,
        "bridge took {took} bytes from the flooder, bound {bound}"
    );
    let stalled_at = sent.load(Ordering::SeqCst);
    eprintln!(
        "{sender:?} flood: bridge took {took} bytes (bound {bound}); sender blocked after {stalled_at} messages"
    );
    assert!(stalled_at < MESSAGES, "the flooder is blocked");
    assert!(!flooder.is_finished() && !bridge.is_finished());
    // Still blocked an hour later (paused clock): nothing moved, nothing closed.
    tokio::time::sleep(Duration::from_secs(1800)).await;
    assert_eq!(sent.load(Ordering::SeqCst), stalled_at);
    assert_eq!(consumed.load(Ordering::SeqCst) as usize, took);

    // The receiver reads: the flow resumes, in order.
    for i in 0..(stalled_at + 20) {
        match next(&mut rx).await {
            Some(Message::Binary(b)) => {
                assert_eq!(b.len(), message_size);
                assert_eq!(u64::from_be_bytes(b[..8].try_into().unwrap()), i);
            }
            other => panic!("message {i}: {other:?}"),
        }
    }
    assert!(sent.load(Ordering::SeqCst) > stalled_at);
    flooder.abort();
    drop(rx);
    let out = outcome(bridge).await;
    assert!(out.error.is_some()); // a side dropped; nothing closed for back-pressure before that
    assert_ne!(out.close_code_to_client, Some(1009));
    assert_ne!(out.close_code_to_backend, Some(1009));
}

// WS-11: a backend flooding 10 000 × 64 KiB to a client that does not read; the byte limit stops
// the reading.
#[tokio::test(start_paused = true)]
async fn ws_11_backend_flood_to_a_non_reading_client_is_bounded() {
    flood(Side::Backend, 64 * 1024, 256 * 1024, 16).await;
}

// WS-11: the same from the client toward a backend that does not read.
#[tokio::test(start_paused = true)]
async fn ws_11_client_flood_to_a_non_reading_backend_is_bounded() {
    flood(Side::Client, 64 * 1024, 256 * 1024, 16).await;
}

// WS-11: small messages: the frame limit stops the reading.
#[tokio::test(start_paused = true)]
async fn ws_11_small_message_flood_is_bounded_by_the_frame_limit() {
    flood(Side::Backend, 100, 1 << 20, 8).await;
}

// WS-11: the one queue back-pressure cannot bound: pings relayed to a side that does not answer
// them. Past max_websocket_pending_frames the pinger gets 1009, the other side 1001.
#[tokio::test]
async fn ws_11_unanswered_ping_flood_closes_the_pinger_with_1009() {
    let mut h = start(config(route().max_websocket_pending_frames(4))).await;
    for i in 0..5 {
        h.client.feed(Message::Ping(vec![i].into())).await.unwrap();
    }
    h.client.flush().await.unwrap();
    // The client gets its pongs (from the proxy), then 1009; the backend, which read nothing and so
    // answered nothing, finds four pings then 1001.
    expect_close(h.client, 1009, Some("too many frames queued")).await;
    expect_close(h.backend, 1001, None).await;
    let out = outcome(h.bridge).await;
    assert_eq!(out.error.unwrap().kind(), ErrorKind::WebSocketQueueFull);
    assert_eq!(out.offender, Some(Side::Client));
    assert_eq!(out.messages_client_to_backend, 4);
}

// WS-11: pings that are answered do not accumulate, however many.
#[tokio::test]
async fn ws_11_answered_pings_do_not_accumulate() {
    let mut h = start(config(route().max_websocket_pending_frames(2))).await;
    for i in 0..50u8 {
        send(&mut h.client, Message::Ping(vec![i].into())).await;
        expect(&mut h.client, Message::Pong(vec![i].into())).await;
        // The backend answers (tungstenite writes its pong on the next flush, as a peer that keeps
        // reading would); the proxy swallows that pong.
        expect(&mut h.backend, Message::Ping(vec![i].into())).await;
        h.backend.flush().await.unwrap();
    }
    send(&mut h.backend, text("still open")).await;
    expect(&mut h.client, text("still open")).await;
}
