//! Demo mode's built-in backend, on an ephemeral loopback port: something to proxy to when trying
//! ReverseIt out, with one endpoint per kind of traffic the proxy carries.
//!
//! - `GET /hello`: plain text.
//! - `/echo`, any method: a JSON object with the method, path, query, headers and body received.
//! - `GET /stream`: a chunked body, several chunks over time.
//! - `GET /sse`: server-sent events.
//! - `GET /ws`: WebSocket echo of text, binary and ping; close codes are echoed.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::header::{CONNECTION, CONTENT_TYPE, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

type DemoBody = BoxBody<Bytes, Infallible>;

/// Largest body `/echo` reads back.
const ECHO_LIMIT: usize = 1024 * 1024;

/// The running demo backend; it stops when dropped.
#[derive(Debug)]
pub(crate) struct DemoBackend {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl DemoBackend {
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for DemoBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the demo backend on `127.0.0.1:0`.
pub(crate) async fn start() -> std::io::Result<DemoBackend> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let builder = auto::Builder::new(TokioExecutor::new());
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let builder = builder.clone();
            tokio::spawn(async move {
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service_fn(handle));
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "demo backend connection error");
                }
            });
        }
    });
    Ok(DemoBackend { addr, task })
}

/// What to try, printed after the readiness line.
pub(crate) fn print_hints(proxy: SocketAddr, backend: SocketAddr) {
    let p = format!("http://{proxy}");
    println!(
        "\nReverseIt demo: {p} proxies to a built-in backend at http://{backend}\n\
         Try:\n  \
         curl {p}/hello\n  \
         curl -X POST -H 'content-type: text/plain' -d 'hi there' '{p}/echo?x=1'\n  \
         curl -N {p}/stream\n  \
         curl -N {p}/sse\n  \
         websocat ws://{proxy}/ws          (or: wscat -c ws://{proxy}/ws)\n\
         Logs go to stderr (RUST_LOG=debug for more). Ctrl-C stops."
    );
}

async fn handle(req: Request<Incoming>) -> Result<Response<DemoBody>, Infallible> {
    let resp = match (req.method(), req.uri().path()) {
        (&Method::GET, "/hello") => {
            text(StatusCode::OK, "Hello from the ReverseIt demo backend!\n")
        }
        (_, "/echo") => echo(req).await,
        (&Method::GET, "/stream") => ticking(
            "text/plain; charset=utf-8",
            (1..=5).map(|i| format!("chunk {i} of 5\n")),
            Duration::from_millis(300),
        ),
        (&Method::GET, "/sse") => ticking(
            "text/event-stream",
            (1..=10).map(|i| format!("event: tick\nid: {i}\ndata: {{\"n\": {i}}}\n\n")),
            Duration::from_millis(500),
        ),
        (&Method::GET, "/ws") => websocket(req),
        _ => text(
            StatusCode::NOT_FOUND,
            "Not Found: try /hello, /echo, /stream, /sse or /ws\n",
        ),
    };
    Ok(resp)
}

fn text(status: StatusCode, body: &'static str) -> Response<DemoBody> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())).boxed());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Answers with what was received, as JSON.
async fn echo(req: Request<Incoming>) -> Response<DemoBody> {
    let (parts, body) = req.into_parts();
    let Ok(body) = Limited::new(body, ECHO_LIMIT).collect().await else {
        return text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Payload Too Large: /echo reads 1 MiB at most\n",
        );
    };
    let body = body.to_bytes();
    let mut json = String::with_capacity(256 + body.len());
    json.push_str("{\"method\":");
    push_json_str(&mut json, parts.method.as_str());
    json.push_str(",\"path\":");
    push_json_str(&mut json, parts.uri.path());
    json.push_str(",\"query\":");
    match parts.uri.query() {
        Some(q) => push_json_str(&mut json, q),
        None => json.push_str("null"),
    }
    json.push_str(",\"headers\":");
    push_headers(&mut json, &parts.headers);
    json.push_str(",\"body\":");
    push_json_str(&mut json, &String::from_utf8_lossy(&body));
    json.push_str("}\n");
    let mut resp = Response::new(Full::new(Bytes::from(json)).boxed());
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// Headers as an object; repeated names are joined with ", " (RFC 9110 §5.3).
fn push_headers(out: &mut String, headers: &HeaderMap) {
    out.push('{');
    for (i, name) in headers.keys().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_str(out, name.as_str());
        out.push(':');
        let joined = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        push_json_str(out, &joined);
    }
    out.push('}');
}

/// Writes `s` as a JSON string (RFC 8259 §7).
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A body sending `items` one at a time, `period` apart, the first at once.
fn ticking(
    content_type: &'static str,
    items: impl Iterator<Item = String>,
    period: Duration,
) -> Response<DemoBody> {
    let body = Ticking {
        items: items.map(Bytes::from).collect::<Vec<_>>().into_iter(),
        period,
        sleep: None,
    };
    let mut resp = Response::new(body.boxed());
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

struct Ticking {
    items: std::vec::IntoIter<Bytes>,
    period: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Body for Ticking {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if let Some(sleep) = &mut this.sleep
            && sleep.as_mut().poll(cx).is_pending()
        {
            return Poll::Pending;
        }
        match this.items.next() {
            Some(item) => {
                this.sleep = Some(Box::pin(tokio::time::sleep(this.period)));
                Poll::Ready(Some(Ok(Frame::data(item))))
            }
            None => Poll::Ready(None),
        }
    }
}

/// Accepts a WebSocket handshake and echoes on the upgraded connection.
fn websocket(mut req: Request<Incoming>) -> Response<DemoBody> {
    let upgrade = req
        .headers()
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = req.headers().get(SEC_WEBSOCKET_KEY).filter(|_| upgrade) else {
        return text(
            StatusCode::BAD_REQUEST,
            "Bad Request: /ws expects a WebSocket handshake\n",
        );
    };
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                // Small buffers: a demo connection carries small messages.
                let config = WebSocketConfig::default()
                    .read_buffer_size(4096)
                    .write_buffer_size(0);
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                echo_websocket(ws).await;
            }
            Err(e) => tracing::debug!(error = %e, "demo WebSocket upgrade failed"),
        }
    });
    let mut resp = Response::new(Full::new(Bytes::new()).boxed());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(
        SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
    );
    resp
}

/// Echoes text and binary messages. tungstenite itself answers pings with pongs and a close with
/// the same code and reason; reading on after a close flushes that reply.
async fn echo_websocket<S>(mut ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(msg) = ws.next().await {
        let sent = match msg {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => ws.send(m).await,
            Ok(_) => Ok(()),
            Err(_) => break,
        };
        if sent.is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        let mut s = String::new();
        push_json_str(&mut s, "a\"b\\c\nd\u{1}é");
        assert_eq!(s, r#""a\"b\\c\nd\u0001é""#);
    }

    #[test]
    fn repeated_headers_are_joined() {
        let mut h = HeaderMap::new();
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("x-a", HeaderValue::from_static("2"));
        h.insert("x-b", HeaderValue::from_static("q\"uote"));
        let mut s = String::new();
        push_headers(&mut s, &h);
        assert_eq!(s, r#"{"x-a":"1, 2","x-b":"q\"uote"}"#);
    }
}
