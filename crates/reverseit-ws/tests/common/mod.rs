//! Test kit: a bridge between two in-process peers over `tokio::io::duplex`.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reverseit_core::RouteConfig;
use reverseit_ws::{BridgeConfig, BridgeOutcome, Shutdown};
use tokio::io::DuplexStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

pub type Peer = WebSocketStream<DuplexStream>;

/// A stream a test peer can run on (duplex or TCP).
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> Io for T {}

/// Duplex capacity used unless a test says otherwise.
pub const DUPLEX: usize = 64 * 1024;

/// Longest a test waits for one event. On a paused clock this fires only if the test is stuck.
pub const WAIT: Duration = Duration::from_secs(30);

/// A route whose WebSocket options the test sets.
pub fn route() -> reverseit_core::RouteConfigBuilder {
    RouteConfig::builder("ws://127.0.0.1:9")
}

pub fn config(route: reverseit_core::RouteConfigBuilder) -> BridgeConfig {
    BridgeConfig::from_route(&route.build().expect("valid route"))
}

/// The peers' own tungstenite settings: no limits that could hide the proxy's.
pub fn peer_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None)
}

/// A running bridge with its two peers: `client` talks to the proxy as a WebSocket client,
/// `backend` as a WebSocket server.
pub struct Harness {
    pub client: Peer,
    pub backend: Peer,
    pub bridge: JoinHandle<BridgeOutcome>,
    pub shutdown: Shutdown,
}

pub async fn start(config: BridgeConfig) -> Harness {
    start_with(config, Shutdown::new(), DUPLEX).await
}

pub async fn start_with(config: BridgeConfig, shutdown: Shutdown, capacity: usize) -> Harness {
    let (client_io, proxy_client_io) = tokio::io::duplex(capacity);
    let (proxy_backend_io, backend_io) = tokio::io::duplex(capacity);
    let client =
        WebSocketStream::from_raw_socket(client_io, Role::Client, Some(peer_config())).await;
    let backend =
        WebSocketStream::from_raw_socket(backend_io, Role::Server, Some(peer_config())).await;
    let handle = shutdown.clone();
    let bridge = tokio::spawn(async move {
        reverseit_ws::bridge(proxy_client_io, proxy_backend_io, &config, &handle).await
    });
    Harness {
        client,
        backend,
        bridge,
        shutdown,
    }
}

/// The next message, failing the test if none comes within [`WAIT`].
pub async fn next<S: Io>(peer: &mut WebSocketStream<S>) -> Option<Message> {
    match tokio::time::timeout(WAIT, peer.next()).await {
        Ok(Some(Ok(m))) => Some(m),
        Ok(Some(Err(_)) | None) => None,
        Err(_) => panic!("no message within {WAIT:?}"),
    }
}

pub async fn expect<S: Io>(peer: &mut WebSocketStream<S>, want: Message) {
    assert_eq!(next(peer).await, Some(want));
}

pub async fn send<S: Io>(peer: &mut WebSocketStream<S>, message: Message) {
    tokio::time::timeout(WAIT, peer.send(message))
        .await
        .expect("send in time")
        .expect("send ok");
}

/// Expects a close frame with `code` (and `reason` if given), then the end of the closing handshake
/// (the stream ends), then drops the peer as a real endpoint closes its TCP connection.
pub async fn expect_close<S: Io>(mut peer: WebSocketStream<S>, code: u16, reason: Option<&str>) {
    loop {
        match next(&mut peer).await {
            Some(Message::Close(frame)) => {
                let frame = frame.expect("a close code");
                assert_eq!(u16::from(frame.code), code, "close code ({})", frame.reason);
                if let Some(reason) = reason {
                    assert_eq!(frame.reason.as_str(), reason);
                }
                break;
            }
            Some(_) => continue,
            None => panic!("stream ended without a close frame (wanted {code})"),
        }
    }
    // tungstenite sends its answer to the close frame while reading on; the stream then ends.
    assert_eq!(next(&mut peer).await, None, "closing handshake completes");
}

pub async fn outcome(bridge: JoinHandle<BridgeOutcome>) -> BridgeOutcome {
    tokio::time::timeout(WAIT, bridge)
        .await
        .expect("bridge ends in time")
        .expect("bridge does not panic")
}

pub fn close_frame(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code: code.into(),
        reason: reason.into(),
    }))
}

/// A raw data frame (for fragments and invalid UTF-8, which `Message` cannot express).
pub fn raw(payload: &[u8], opcode: Data, fin: bool) -> Message {
    Message::Frame(Frame::message(payload.to_vec(), OpCode::Data(opcode), fin))
}

pub fn text(s: &str) -> Message {
    Message::Text(s.into())
}

pub fn binary(b: Vec<u8>) -> Message {
    Message::Binary(b.into())
}

/// Echoes every data message back until the stream ends; returns how many it echoed.
pub async fn echo(mut peer: Peer) -> u64 {
    let mut n = 0;
    while let Some(Ok(m)) = peer.next().await {
        if m.is_text() || m.is_binary() {
            n += 1;
            if peer.send(m).await.is_err() {
                break;
            }
        }
    }
    n
}
