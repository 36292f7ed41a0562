//! One client connection served by hyper as HTTP/1.1 or HTTP/2, chosen from its first bytes
//! (`H2-1`), with HTTP/1.1 upgrades (`WS-1`).
//!
//! hyper-util's `auto` server reads exactly the 24 bytes of the HTTP/2 preface before handing the
//! connection to hyper, which then reads the rest of the request head: two reads for every new
//! connection. [`Connection`] reads once, up to 4 KiB, decides from what came, and replays those
//! bytes to hyper ahead of the socket, so a request head that arrived whole costs one system call.
//!
//! The decision: the whole HTTP/2 preface (`PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`, RFC 9113 §3.4) means
//! HTTP/2 with prior knowledge; a shorter prefix of it means "read more"; anything else, or an end of
//! stream after a few bytes, goes to HTTP/1.1, whose parser answers or closes what it cannot read. Over
//! TLS the same sniff serves both ALPN outcomes: a client that negotiated `h2` starts with the preface,
//! one that negotiated `http/1.1` (or nothing) with a request line.

use std::fmt;
use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use hyper::rt::bounds::Http2ServerConnExec;
use hyper::server::conn::{http1, http2};
use hyper::service::{HttpService, Service};
use hyper_util::rt::{TokioExecutor, TokioIo};
use pin_project_lite::pin_project;
use reverseit_core::BoxError;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The HTTP/2 connection preface a client sends first (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How many of the first bytes hyper's HTTP/1.1 server gets with its first read; the rest of them
/// come with its second, without a system call.
///
/// hyper's server read buffer starts at 8 KiB, and doubles when a request head takes a second read.
/// At 8 KiB, hyper re-allocates it for nearly every request of a keep-alive connection (it reads
/// ahead while the previous head's bytes are still referenced); at 16 KiB, less often. hyper has no
/// setting for that size, so the first head is handed over in two reads, as hyper-util's `auto`
/// server did with a system call between them. Measured (callgrind, small GETs): keep-alive 34.7 k
/// instructions per request against 35.4 k when the head is handed over whole (1.6 against 2.0
/// buffer allocations per request). A connection that serves one request only pays for the growth
/// (a re-allocation copying 8 KiB), so a head that announces the connection's end is handed over
/// whole (see [`announces_close`]).
const HTTP1_FIRST_READ_LIMIT: usize = 24;

/// How many bytes the first read of a connection may take. A typical request head, or the HTTP/2
/// preface with a client's first frames, fits; what does not is read by hyper afterwards. The
/// buffer is on the stack and never zeroed; only the bytes read are copied out.
const FIRST_READ_SIZE: usize = 4096;

/// Builds [`Connection`]s: hyper's HTTP/1.1 and HTTP/2 server builders, one of which serves each
/// connection according to its first bytes.
///
/// The defaults: HTTP/1.1 keep-alive on, upgrades on; HTTP/2 with hyper's defaults and tasks
/// spawned on tokio. No hyper timer is set, so hyper arms no per-request timers.
#[derive(Debug, Clone)]
pub struct ConnectionBuilder {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
}

impl Default for ConnectionBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ConnectionBuilder {
    /// A builder with the defaults above.
    pub fn new() -> Self {
        let mut http1 = http1::Builder::new();
        http1.keep_alive(true);
        Self {
            http1,
            http2: http2::Builder::new(TokioExecutor::new()),
        }
    }

    /// hyper's HTTP/1.1 settings, for connections that do not start with the HTTP/2 preface.
    pub fn http1(&mut self) -> &mut http1::Builder {
        &mut self.http1
    }

    /// hyper's HTTP/2 settings (`max_concurrent_streams`, `max_header_list_size`, …), for
    /// connections that start with the preface.
    pub fn http2(&mut self) -> &mut http2::Builder<TokioExecutor> {
        &mut self.http2
    }

    /// Binds a connection to a service; the returned future serves it until it closes, upgrades
    /// included.
    ///
    /// hyper sees `io` through a wrapper that first replays the bytes sniffed, so
    /// [`hyper::upgrade::Upgraded::downcast`] cannot recover `I` from an upgraded connection; using
    /// the `Upgraded` as an IO object, as the proxy does, is unaffected.
    pub fn serve_connection<I, S>(&self, io: I, service: S) -> Connection<'_, I, S>
    where
        S: HttpService<Incoming>,
    {
        Connection {
            state: State::Sniffing {
                builder: self,
                io: Some(io),
                service: Some(service),
                matched: 0,
            },
        }
    }
}

pin_project! {
    /// A future serving one connection with HTTP/1.1 (upgrades on) or HTTP/2, from
    /// [`ConnectionBuilder::serve_connection`]. It completes when the connection closes; an
    /// upgraded connection lives on in the upgrade's owner.
    #[must_use = "futures do nothing unless polled"]
    pub struct Connection<'a, I, S>
    where
        S: HttpService<Incoming>,
    {
        #[pin]
        state: State<'a, I, S>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<'a, I, S>
    where
        S: HttpService<Incoming>,
    {
        // Reading the first bytes. `matched` bytes of the preface were read already (and are the
        // preface's own, so they are not kept).
        Sniffing {
            builder: &'a ConnectionBuilder,
            io: Option<I>,
            service: Option<S>,
            matched: usize,
        },
        Http1 {
            #[pin]
            conn: http1::UpgradeableConnection<TokioIo<Prefixed<I>>, S>,
        },
        Http2 {
            #[pin]
            conn: http2::Connection<TokioIo<Prefixed<I>>, S, TokioExecutor>,
        },
        // Closed before any protocol was chosen: end of stream, or a graceful shutdown.
        Done,
    }
}

impl<I, S> fmt::Debug for Connection<'_, I, S>
where
    S: HttpService<Incoming>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Sniffing { .. } => "sniffing",
            State::Http1 { .. } => "http1",
            State::Http2 { .. } => "http2",
            State::Done => "done",
        };
        f.debug_struct("Connection").field("state", &state).finish()
    }
}

impl<I, S, B> Connection<'_, I, S>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: Body + 'static,
    B::Error: Into<BoxError>,
    TokioExecutor: Http2ServerConnExec<S::Future, B>,
{
    /// Starts a graceful shutdown: HTTP/1.1 finishes the request in flight and closes, HTTP/2
    /// sends GOAWAY and finishes its streams. Keep polling the future until it completes.
    ///
    /// While the first bytes are still awaited, no request has begun: the socket is dropped and the
    /// future completes with `Ok(())` at its next poll.
    pub fn graceful_shutdown(self: Pin<&mut Self>) {
        let mut state = self.project().state;
        match state.as_mut().project() {
            StateProj::Sniffing { .. } => state.set(State::Done),
            StateProj::Http1 { conn } => conn.graceful_shutdown(),
            StateProj::Http2 { conn } => conn.graceful_shutdown(),
            StateProj::Done => {}
        }
    }
}

impl<I, S, B> Future for Connection<'_, I, S>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: Body + 'static,
    B::Error: Into<BoxError>,
    TokioExecutor: Http2ServerConnExec<S::Future, B>,
{
    type Output = Result<(), BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Sniffing {
                    builder,
                    io,
                    service,
                    matched,
                } => {
                    let socket = io
                        .as_mut()
                        .expect("the socket stays until a protocol is chosen");
                    let first = match ready!(sniff(socket, matched, cx)) {
                        Ok(Some(first)) => first,
                        Ok(None) => {
                            state.set(State::Done);
                            return Poll::Ready(Ok(()));
                        }
                        Err(e) => {
                            state.set(State::Done);
                            return Poll::Ready(Err(e.into()));
                        }
                    };
                    let builder = *builder;
                    let io = io
                        .take()
                        .expect("the socket stays until a protocol is chosen");
                    let service = service.take().expect("the service is taken once");
                    let is_h2 = first.starts_with(H2_PREFACE);
                    let first_read_limit = if is_h2 || announces_close(&first) {
                        usize::MAX
                    } else {
                        HTTP1_FIRST_READ_LIMIT
                    };
                    let io = TokioIo::new(Prefixed::new(first, first_read_limit, io));
                    if is_h2 {
                        let conn = builder.http2.serve_connection(io, service);
                        state.set(State::Http2 { conn });
                    } else {
                        let conn = builder.http1.serve_connection(io, service).with_upgrades();
                        state.set(State::Http1 { conn });
                    }
                }
                StateProj::Http1 { conn } => return conn.poll(cx).map_err(Into::into),
                StateProj::Http2 { conn } => return conn.poll(cx).map_err(Into::into),
                StateProj::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}

/// Reads a connection's first bytes: `Some(bytes)` once they decide the protocol (the whole preface,
/// or anything that departs from it), `None` at an end of stream before any byte.
///
/// Kept out of line: its 4 KiB stack buffer would otherwise enlarge the frame of every poll of the
/// connection, not only the first.
#[inline(never)]
fn sniff<I: AsyncRead + Unpin>(
    io: &mut I,
    matched: &mut usize,
    cx: &mut Context<'_>,
) -> Poll<io::Result<Option<Bytes>>> {
    let mut storage = [MaybeUninit::<u8>::uninit(); FIRST_READ_SIZE];
    loop {
        let mut buf = ReadBuf::uninit(&mut storage);
        // The part of the preface read before, so the decision below sees every byte so far.
        buf.put_slice(&H2_PREFACE[..*matched]);
        ready!(Pin::new(&mut *io).poll_read(cx, &mut buf))?;
        let read = buf.filled();
        if read.len() == *matched {
            // End of stream. Before any byte: nothing to serve. After part of the preface: HTTP/1.1
            // gets those bytes and refuses them as a malformed request.
            return Poll::Ready(Ok((!read.is_empty()).then(|| Bytes::copy_from_slice(read))));
        }
        if read.len() < H2_PREFACE.len() && H2_PREFACE.starts_with(read) {
            *matched = read.len();
            continue;
        }
        return Poll::Ready(Ok(Some(Bytes::copy_from_slice(read))));
    }
}

/// Whether an HTTP/1.1 request head announces that its connection ends after it: a `Connection`
/// field naming `close`, or HTTP/1.0 without `keep-alive` (RFC 9112 §9.3). Only a hint for sizing
/// hyper's read buffer (see [`HTTP1_FIRST_READ_LIMIT`]), read from the bytes sniffed: hyper parses
/// the head and decides the connection's fate; a head cut short or unusual here costs at most a
/// buffer re-allocation.
fn announces_close(head: &[u8]) -> bool {
    const FIELD: &[u8] = b"connection:";
    // Whole lines only: a line cut off by the end of the bytes sniffed is not read.
    let mut start = 0;
    let mut lines = memchr::memchr_iter(b'\n', head).map(|end| {
        let line = &head[start..end];
        start = end + 1;
        line.strip_suffix(b"\r").unwrap_or(line)
    });
    let http10 = lines
        .next()
        .is_some_and(|request_line| request_line.ends_with(b" HTTP/1.0"));
    let mut keep_alive = false;
    for line in lines {
        if line.is_empty() {
            // The end of the head: HTTP/1.0 closes unless it asked to keep the connection.
            return http10 && !keep_alive;
        }
        // No space may come before the colon (RFC 9112 §5.1).
        if line.len() < FIELD.len() || !line[..FIELD.len()].eq_ignore_ascii_case(FIELD) {
            continue;
        }
        for option in line[FIELD.len()..]
            .split(|&b| b == b',')
            .map(<[u8]>::trim_ascii)
        {
            if option.eq_ignore_ascii_case(b"close") {
                return true;
            }
            keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
        }
    }
    // The head goes on past the bytes sniffed: no decision from a part of it.
    false
}

/// A socket whose first reads replay bytes already read from it.
#[derive(Debug)]
pub(crate) struct Prefixed<I> {
    prefix: Bytes,
    /// The most bytes the next read may return from `prefix`; unbounded after the first read.
    limit: usize,
    io: I,
}

impl<I> Prefixed<I> {
    /// Replays `prefix`, at most `first_read_limit` bytes of it in the first read.
    pub(crate) fn new(prefix: Bytes, first_read_limit: usize, io: I) -> Self {
        Self {
            prefix,
            limit: first_read_limit.max(1),
            io,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Prefixed<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.prefix.is_empty() {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        let n = this.prefix.len().min(buf.remaining()).min(this.limit);
        this.limit = usize::MAX;
        buf.put_slice(&this.prefix[..n]);
        this.prefix.advance(n);
        if this.prefix.is_empty() {
            // An emptied `Bytes` still holds its allocation; release it now, not with the socket.
            this.prefix = Bytes::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Prefixed<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
