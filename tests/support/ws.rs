//! The WebSocket part of the test kit: tokio-tungstenite backends on 127.0.0.1:0 that record every
//! handshake and every message they read, clients, and expectations bounded by [`WAIT`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use reverseit_core::{RouteConfig, RouteConfigBuilder};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{
    Request as HsRequest, Response as HsResponse,
};
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};

use super::Proxy;

/// Longest a test waits for one event. On a paused clock it is virtual time, longer than every
/// timeout under test, so it fires only when a test is stuck.
pub const WAIT: Duration = Duration::from_secs(60);

/// Timeouts that must not fire in a test about another one.
pub const LONG: Duration = Duration::from_secs(3_600);

/// A valid client key (RFC 6455 §1.3's example).
pub const CLIENT_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// A task aborted on drop.
pub struct AbortOnDrop(pub JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

pub type BackendWs = WebSocketStream<Box<dyn Io>>;
pub type ClientWs = WebSocketStream<TcpStream>;

/// What a backend does to its 101 (add headers), given the handshake request.
pub type Answer = Arc<dyn Fn(&HsRequest, &mut HsResponse) + Send + Sync>;

/// What a backend does once upgraded.
#[derive(Clone)]
pub enum Script {
    /// Echoes text and binary messages, except commands (text):
    /// `drop` drops the TCP connection without a close frame; `close CODE REASON` closes;
    /// `ping PAYLOAD` sends a ping; `big N` sends an N-byte binary message.
    Echo,
    /// Sends `count` binary messages of `size` bytes (the first 8 bytes: the index, big-endian) as
    /// fast as the proxy takes them, adding each one's size to `sent` once written to the socket;
    /// then echoes.
    Flood {
        size: usize,
        count: u64,
        sent: Arc<AtomicU64>,
    },
    /// Reads nothing until `go` is notified, then echoes.
    ReadAfter(Arc<tokio::sync::Notify>),
}

/// What a backend's peer did, in order, over all its connections.
#[derive(Debug, PartialEq)]
pub enum Event {
    /// A message the backend read (close frames and control frames included).
    Received(Message),
    /// The connection's stream ended (after the closing handshake, or a failure).
    Ended,
}

/// The request line and headers of a backend handshake.
#[derive(Debug)]
pub struct Handshake {
    pub uri: Uri,
    pub headers: HeaderMap,
}

/// An in-process tokio-tungstenite backend. Every handshake and every event is recorded.
pub struct WsBackend {
    pub addr: SocketAddr,
    pub handshakes: mpsc::UnboundedReceiver<Handshake>,
    pub events: mpsc::UnboundedReceiver<Event>,
    _task: AbortOnDrop,
}

pub struct WsBackendBuilder {
    script: Script,
    answer: Answer,
    tls: Option<Arc<rustls::ServerConfig>>,
    listener: Option<TcpListener>,
}

impl WsBackend {
    /// An echo backend that accepts every handshake as it is.
    pub async fn echo() -> Self {
        Self::builder(Script::Echo).start().await
    }

    pub fn builder(script: Script) -> WsBackendBuilder {
        WsBackendBuilder {
            script,
            answer: Arc::new(|_, _| {}),
            tls: None,
            listener: None,
        }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// The next handshake request the backend accepted or refused.
    pub async fn handshake(&mut self) -> Handshake {
        tokio::time::timeout(WAIT, self.handshakes.recv())
            .await
            .expect("a backend handshake in time")
            .expect("backend running")
    }

    pub async fn event(&mut self) -> Event {
        tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("a backend event in time")
            .expect("backend running")
    }

    pub async fn expect(&mut self, message: Message) {
        assert_eq!(self.event().await, Event::Received(message));
    }

    /// The next event is the close frame `code` `reason`, then the connection ends.
    pub async fn expect_close(&mut self, code: u16, reason: &str) {
        assert_eq!(self.event().await, Event::Received(close(code, reason)));
        assert_eq!(
            self.event().await,
            Event::Ended,
            "closing handshake completes"
        );
    }
}

impl WsBackendBuilder {
    /// Sets what the backend does to its 101.
    pub fn answer(
        mut self,
        f: impl Fn(&HsRequest, &mut HsResponse) + Send + Sync + 'static,
    ) -> Self {
        self.answer = Arc::new(f);
        self
    }

    pub fn tls(mut self, server: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(server);
        self
    }

    pub fn listener(mut self, listener: TcpListener) -> Self {
        self.listener = Some(listener);
        self
    }

    pub async fn start(self) -> WsBackend {
        let listener = match self.listener {
            Some(l) => l,
            None => TcpListener::bind("127.0.0.1:0").await.unwrap(),
        };
        let addr = listener.local_addr().unwrap();
        let (hs_tx, handshakes) = mpsc::unbounded_channel();
        let (ev_tx, events) = mpsc::unbounded_channel();
        let acceptor = self.tls.map(tokio_rustls::TlsAcceptor::from);
        let (script, answer) = (self.script, self.answer);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (script, answer, hs_tx, ev_tx) =
                    (script.clone(), answer.clone(), hs_tx.clone(), ev_tx.clone());
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let io: Box<dyn Io> = match acceptor {
                        Some(acceptor) => match acceptor.accept(tcp).await {
                            Ok(tls) => Box::new(tls),
                            Err(_) => return,
                        },
                        None => Box::new(tcp),
                    };
                    // The signature is tungstenite's `Callback`.
                    #[allow(clippy::result_large_err)]
                    let callback = move |req: &HsRequest, mut resp: HsResponse| {
                        let _ = hs_tx.send(Handshake {
                            uri: req.uri().clone(),
                            headers: req.headers().clone(),
                        });
                        answer(req, &mut resp);
                        Ok(resp)
                    };
                    let Ok(ws) = tokio_tungstenite::accept_hdr_async(io, callback).await else {
                        return;
                    };
                    run_script(ws, script, ev_tx).await;
                });
            }
        });
        WsBackend {
            addr,
            handshakes,
            events,
            _task: AbortOnDrop(task),
        }
    }
}

async fn run_script(mut ws: BackendWs, script: Script, events: mpsc::UnboundedSender<Event>) {
    if let &Script::Flood {
        size,
        count,
        ref sent,
    } = &script
    {
        for i in 0..count {
            let mut payload = vec![0u8; size];
            payload[..8].copy_from_slice(&i.to_be_bytes());
            // `send` returns once the frame is written to the socket.
            if ws.send(Message::binary(payload)).await.is_err() {
                return;
            }
            sent.fetch_add(size as u64, Ordering::SeqCst);
        }
    }
    if let Script::ReadAfter(go) = &script {
        go.notified().await;
    }
    while let Some(Ok(message)) = ws.next().await {
        let _ = events.send(Event::Received(message.clone()));
        let command = match &message {
            Message::Text(t) => t.as_str().to_owned(),
            Message::Binary(_) => String::new(),
            _ => continue,
        };
        let mut words = command.splitn(3, ' ');
        let reply = match (words.next(), words.next(), words.next()) {
            (Some("drop"), None, None) => return,
            (Some("close"), Some(code), reason) => {
                let frame = CloseFrame {
                    code: CloseCode::from(code.parse::<u16>().unwrap()),
                    reason: reason.unwrap_or("").into(),
                };
                Message::Close(Some(frame))
            }
            (Some("ping"), Some(payload), None) => Message::Ping(payload.to_owned().into()),
            (Some("big"), Some(n), None) => Message::binary(vec![7u8; n.parse().unwrap()]),
            _ => message,
        };
        if ws.send(reply).await.is_err() {
            break;
        }
    }
    let _ = events.send(Event::Ended);
}

/// A route to `url` whose timeouts other than the WebSocket ones are long.
pub fn route(url: &str) -> RouteConfigBuilder {
    RouteConfig::builder(url)
        .connect_timeout(LONG)
        .pool_timeout(LONG)
        .response_header_timeout(LONG)
        .upstream_idle_timeout(LONG)
        .request_body_read_timeout(LONG)
}

pub async fn proxy_to(url: &str) -> Proxy {
    Proxy::start(route(url).build().unwrap()).await
}

/// Opens a WebSocket to `url` (`ws://proxy/...`) through the proxy.
pub async fn connect(url: &str) -> ClientWs {
    connect_request(url.into_client_request().unwrap()).await.0
}

/// Opens a WebSocket with a prepared handshake request; returns the stream and the 101.
pub async fn connect_request(
    req: tungstenite::handshake::client::Request,
) -> (ClientWs, tungstenite::handshake::client::Response) {
    let authority = req.uri().authority().unwrap().as_str().to_owned();
    let tcp = TcpStream::connect(authority).await.unwrap();
    tokio::time::timeout(WAIT, tokio_tungstenite::client_async(req, tcp))
        .await
        .expect("handshake in time")
        .expect("WebSocket handshake through the proxy")
}

pub async fn next<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
) -> Option<Message> {
    match tokio::time::timeout(WAIT, ws.next()).await {
        Ok(Some(Ok(m))) => Some(m),
        Ok(Some(Err(_)) | None) => None,
        Err(_) => panic!("no message within {WAIT:?}"),
    }
}

pub async fn expect<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, want: Message) {
    assert_eq!(next(ws).await, Some(want));
}

pub async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    message: Message,
) {
    tokio::time::timeout(WAIT, ws.send(message))
        .await
        .expect("send in time")
        .expect("send ok");
}

/// The next message is the close frame `code` `reason`; then the closing handshake completes (the
/// stream ends).
pub async fn expect_close<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocketStream<S>,
    code: u16,
    reason: &str,
) {
    assert_eq!(next(&mut ws).await, Some(close(code, reason)));
    assert_eq!(next(&mut ws).await, None, "closing handshake completes");
}

pub fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.to_owned().into(),
    }))
}

pub fn text(s: &str) -> Message {
    Message::text(s.to_owned())
}

/// An upgrade request as a browser sends it, for the handshake-level tests.
pub fn upgrade(uri: &str) -> http::request::Builder {
    Request::get(uri)
        .header("host", "proxy.test")
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-key", CLIENT_KEY)
        .header("sec-websocket-version", "13")
}

/// Sends one request over a fresh HTTP/1.1 connection; returns the answer, its body read whole
/// unless it is a 101.
pub async fn exchange(
    addr: SocketAddr,
    req: Request<Empty<Bytes>>,
) -> (StatusCode, HeaderMap, Bytes) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn.with_upgrades());
    let resp = tokio::time::timeout(WAIT, sender.send_request(req))
        .await
        .expect("an answer in time")
        .expect("an answer");
    let (parts, body) = resp.into_parts();
    let body = if parts.status == StatusCode::SWITCHING_PROTOCOLS {
        Bytes::new()
    } else {
        tokio::time::timeout(WAIT, body.collect())
            .await
            .expect("the body in time")
            .expect("the whole body")
            .to_bytes()
    };
    (parts.status, parts.headers, body)
}

/// A backend address nothing listens on.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// A CA made at test time, and a server certificate it signed for `localhost` and `127.0.0.1`.
pub struct TestCa {
    pub ca_pem: String,
    pub server: Arc<rustls::ServerConfig>,
}

impl TestCa {
    pub fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
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
        // h2 offered too: the proxy must ask for HTTP/1.1, the only protocol that upgrades.
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        TestCa {
            ca_pem: ca.pem(),
            server: Arc::new(server),
        }
    }
}

/// A temporary file removed on drop.
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn new(contents: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "reverseit-websocket-test-{}-{}.pem",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
