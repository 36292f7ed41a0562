//! [`Connection`] on real sockets (`H2-1`, `WS-1`, `WS-9`): which protocol serves what, how many
//! reads a new connection costs, and how it ends. Every wait is bounded by [`WAIT`], reached only
//! when something is broken.

use std::convert::Infallible;
use std::future::poll_fn;
use std::time::Duration;

use http::{StatusCode, Version};
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::*;

const WAIT: Duration = Duration::from_secs(10);

async fn within<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Answers with the request's HTTP version in the body; `Upgrade: echo` gets a 101 and then an echo
/// of everything sent on the upgraded connection.
async fn handle(mut req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.headers().contains_key(http::header::UPGRADE) {
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let mut io = TokioIo::new(upgrade.await.expect("upgrade"));
            let mut buf = [0; 64];
            loop {
                match io.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => io.write_all(&buf[..n]).await.expect("echo"),
                }
            }
        });
        let resp = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(http::header::CONNECTION, "upgrade")
            .header(http::header::UPGRADE, "echo")
            .body(Full::default())
            .expect("valid response");
        return Ok(resp);
    }
    let version = format!("{:?}", req.version());
    Ok(Response::new(Full::new(Bytes::from(version))))
}

/// A server socket that reports the size of every read that returned bytes.
struct Observed {
    io: TcpStream,
    reads: mpsc::UnboundedSender<usize>,
}

impl AsyncRead for Observed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        let n = buf.filled().len() - before;
        if n > 0 {
            let _ = this.reads.send(n);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Observed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// One connection served with a default [`ConnectionBuilder`]: the client's socket, the server's
/// reads as they happen, and the server's result.
struct Served {
    client: TcpStream,
    reads: mpsc::UnboundedReceiver<usize>,
    server: JoinHandle<Result<(), BoxError>>,
}

impl Served {
    async fn start() -> Served {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (io, _) = listener.accept().await.unwrap();
        let (tx, reads) = mpsc::unbounded_channel();
        let server = tokio::spawn(async move {
            let io = Observed { io, reads: tx };
            ConnectionBuilder::new()
                .serve_connection(io, service_fn(handle))
                .await
        });
        Served {
            client,
            reads,
            server,
        }
    }

    /// Waits until the server has read `n` more bytes.
    async fn server_read(&mut self, mut n: usize) {
        while n > 0 {
            let read = within("server read", self.reads.recv())
                .await
                .expect("reads");
            n = n
                .checked_sub(read)
                .expect("the server read more than was sent");
        }
    }

    async fn ended(self) -> Result<(), BoxError> {
        within("connection end", self.server).await.unwrap()
    }
}

/// Reads a response head whole; returns it and the bytes read after it.
async fn read_head(io: &mut TcpStream) -> (String, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = [0; 1024];
    loop {
        let n = within("response head", io.read(&mut buf)).await.unwrap();
        assert!(n > 0, "closed before a whole head: {got:?}");
        got.extend_from_slice(&buf[..n]);
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = got.split_off(end + 4);
            return (String::from_utf8(got).unwrap(), rest);
        }
    }
}

async fn read_to_end(io: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    within("end of stream", io.read_to_end(&mut all))
        .await
        .unwrap();
    all
}

#[tokio::test]
async fn http1_request_is_served_after_a_single_read() {
    // H2-1: HTTP/1.1 on the listener. The head arrives in one segment; the server reads the socket
    // once for it (hyper-util's auto server read it in two: the 24 bytes of a would-be preface,
    // then the rest).
    let mut s = Served::start().await;
    let head = b"GET / HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n";
    s.client.write_all(head).await.unwrap();
    let response = String::from_utf8(read_to_end(&mut s.client).await).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.ends_with("HTTP/1.1"), "{response}");
    s.server_read(head.len()).await;
    assert!(s.reads.try_recv().is_err(), "one read for the whole head");
    s.ended().await.unwrap();
}

#[tokio::test]
async fn http2_prior_knowledge_request_is_served() {
    // H2-1: prior-knowledge h2c on the plain listener.
    let s = Served::start().await;
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(s.client))
            .await
            .unwrap();
    let client_conn = tokio::spawn(conn);
    let req = Request::get("http://example.test/")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = within("h2 response", sender.send_request(req))
        .await
        .unwrap();
    assert_eq!(resp.version(), Version::HTTP_2);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "HTTP/2.0");
    drop(sender);
    within("h2 client end", client_conn).await.unwrap().unwrap();
    let _ = within("server end", s.server).await.unwrap();
}

#[tokio::test]
async fn a_preface_split_across_writes_is_still_http2() {
    let mut s = Served::start().await;
    // Each part is read by the server before the next is sent, so the sniff sees a partial
    // preface twice before the whole of it.
    for part in [&H2_PREFACE[..5], &H2_PREFACE[5..15]] {
        s.client.write_all(part).await.unwrap();
        s.server_read(part.len()).await;
    }
    s.client.write_all(&H2_PREFACE[15..]).await.unwrap();
    // An empty SETTINGS frame: length 0, type 4, no flags, stream 0.
    s.client
        .write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
        .await
        .unwrap();
    // The server's first frame is its own SETTINGS; HTTP/1.1 would have answered with a status
    // line or closed.
    let mut frame = [0; 9];
    within("server SETTINGS", s.client.read_exact(&mut frame))
        .await
        .unwrap();
    assert_eq!(frame[3], 4, "a SETTINGS frame, got {frame:?}");
    assert_eq!(&frame[5..], &[0, 0, 0, 0], "on stream 0");
    drop(s.client);
    let _ = within("server end", s.server).await.unwrap();
}

#[tokio::test]
async fn a_head_that_departs_from_the_preface_is_http1() {
    // "PRI * HTTP/" matches the preface so far; "1.1" departs from it.
    let mut s = Served::start().await;
    let start = b"PRI * HTTP/";
    s.client.write_all(start).await.unwrap();
    s.server_read(start.len()).await;
    s.client
        .write_all(b"1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let response = String::from_utf8(read_to_end(&mut s.client).await).unwrap();
    // hyper takes `PRI` for an extension method, and the service answers over HTTP/1.1.
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.ends_with("HTTP/1.1"), "{response}");
    s.ended().await.unwrap();
}

#[tokio::test]
async fn a_preface_cut_short_by_the_end_of_stream_is_refused() {
    // Part of the preface, then the client's end of stream: HTTP/1.1 gets the bytes and closes
    // rather than waiting for more.
    let mut s = Served::start().await;
    s.client.write_all(&H2_PREFACE[..10]).await.unwrap();
    s.client.shutdown().await.unwrap();
    assert!(read_to_end(&mut s.client).await.is_empty());
    let ended = s.ended().await.expect_err("an incomplete head is an error");
    let ended = ended.downcast::<hyper::Error>().expect("hyper's error");
    assert!(ended.is_incomplete_message(), "{ended}");
}

#[tokio::test]
async fn a_preface_with_a_bad_ending_is_refused() {
    // The request line of the preface, then something else: not HTTP/2, and HTTP/1.1 has no
    // version 2.0 request line to serve.
    let mut s = Served::start().await;
    s.client
        .write_all(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
        .await
        .unwrap();
    let response = String::from_utf8(read_to_end(&mut s.client).await).unwrap();
    assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
    assert!(s.ended().await.is_err());
}

#[tokio::test]
async fn end_of_stream_before_any_byte_ends_ok() {
    let mut s = Served::start().await;
    s.client.shutdown().await.unwrap();
    assert!(read_to_end(&mut s.client).await.is_empty());
    s.ended().await.unwrap();
}

#[tokio::test]
async fn graceful_shutdown_while_sniffing_ends_at_once() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (io, _) = listener.accept().await.unwrap();
    let builder = ConnectionBuilder::new();
    let conn = builder.serve_connection(io, service_fn(handle));
    tokio::pin!(conn);
    let first = poll_fn(|cx| Poll::Ready(conn.as_mut().poll(cx).is_pending())).await;
    assert!(first, "no byte came, so the connection waits");
    conn.as_mut().graceful_shutdown();
    let done = poll_fn(|cx| Poll::Ready(conn.as_mut().poll(cx))).await;
    assert!(matches!(done, Poll::Ready(Ok(()))));
    // The socket was dropped: the client sees the end of stream.
    assert!(read_to_end(&mut client).await.is_empty());
}

#[tokio::test]
async fn an_upgrade_keeps_the_bytes_sent_with_its_head() {
    // WS-1, WS-9 (client side): the bytes after the head came in the same read as the head, and
    // reach the upgraded connection.
    let mut s = Served::start().await;
    s.client
        .write_all(
            b"GET / HTTP/1.1\r\nHost: example.test\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\nearly",
        )
        .await
        .unwrap();
    let (head, mut echoed) = read_head(&mut s.client).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    while echoed.len() < 5 {
        let mut buf = [0; 64];
        let n = within("echo", s.client.read(&mut buf)).await.unwrap();
        assert!(n > 0);
        echoed.extend_from_slice(&buf[..n]);
    }
    assert_eq!(echoed, b"early");
    s.client.write_all(b"later").await.unwrap();
    let mut buf = [0; 5];
    within("echo", s.client.read_exact(&mut buf)).await.unwrap();
    assert_eq!(&buf, b"later");
    // hyper's part ends with the upgrade; the echo task owns the socket now.
    s.ended().await.unwrap();
}

#[tokio::test]
async fn prefixed_replays_its_bytes_then_reads_the_socket() {
    let (mut peer, io) = tokio::io::duplex(64);
    let mut io = Prefixed::new(Bytes::from_static(b"0123456789"), 4, io);
    peer.write_all(b"socket").await.unwrap();
    let mut buf = [0; 64];
    let n = io.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"0123", "the first read is limited");
    let n = io.read(&mut buf[..3]).await.unwrap();
    assert_eq!(&buf[..n], b"456", "then as much as the reader takes");
    let n = io.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"789");
    let n = io.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"socket", "then the socket");
    io.write_all(b"out").await.unwrap();
    let mut out = [0; 3];
    peer.read_exact(&mut out).await.unwrap();
    assert_eq!(&out, b"out");
}

/// The hint that hands a one-request connection's head to hyper whole: `close` among the
/// `Connection` options (any case, any position), or HTTP/1.0 without `keep-alive`; never from a
/// head that goes on past the bytes at hand, unless `close` was already seen.
#[test]
fn announces_close_reads_connection_options_and_http10() {
    let closing: [&[u8]; 6] = [
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nconnection:CLOSE\r\n\r\n",
        b"GET / HTTP/1.1\r\nConnection: te, close\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\nConnection: close\n\n",
        b"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
        // Cut short, but `close` came before the cut.
        b"GET / HTTP/1.1\r\nConnection: close\r\nUser-Agent: very lo",
    ];
    for head in closing {
        assert!(announces_close(head), "{}", String::from_utf8_lossy(head));
    }
    let staying: [&[u8]; 7] = [
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n",
        b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
        b"GET / HTTP/1.1\r\nX-Connection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nConnection: closed\r\n\r\n",
        // HTTP/1.0 cut short: its `keep-alive` may still come.
        b"GET / HTTP/1.0\r\nHost: a\r\nUser-Agent: very lo",
        b"",
    ];
    for head in staying {
        assert!(!announces_close(head), "{}", String::from_utf8_lossy(head));
    }
}
