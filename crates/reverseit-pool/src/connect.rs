//! Opening a backend connection: TCP (through a [`Dial`]), then TLS with ALPN when the backend
//! is `https`/`wss`.
//!
//! Failures are typed for the proxy's status mapping (`TMO-1`, `ERR-1`): refused, unreachable or
//! unresolvable → [`ErrorKind::Connect`] (502); TLS → [`ErrorKind::Tls`] (502); the whole
//! sequence not done within the target's `connect_timeout` → [`ErrorKind::ConnectTimeout`] (504).
//! The underlying error is kept as the source.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use reverseit_core::{Error, ErrorKind};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::target::{Mode, TargetInner};
use crate::tls::{ALPN_H2, TlsSettings};

/// Opens TCP connections to backends. The pool uses [`TcpDialer`] unless told otherwise.
///
/// Not part of the stable API: a seam for tests (a dial that never completes proves the connect
/// timeout on a paused clock) and for callers with their own name resolution.
#[doc(hidden)]
pub trait Dial: fmt::Debug + Send + Sync + 'static {
    /// Connects to `host` (a name or an IP literal without brackets) on `port`.
    fn dial(&self, host: &str, port: u16) -> DialFuture;
}

/// What [`Dial::dial`] returns.
#[doc(hidden)]
pub type DialFuture = Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send + 'static>>;

/// The default [`Dial`]: IP literals directly, names through the system resolver, each resolved
/// address in turn until one accepts.
#[doc(hidden)]
#[derive(Debug, Default, Clone, Copy)]
pub struct TcpDialer;

impl Dial for TcpDialer {
    fn dial(&self, host: &str, port: u16) -> DialFuture {
        if let Ok(ip) = host.parse::<IpAddr>() {
            // No resolver round trip (and no blocking-pool hop) for literals.
            return Box::pin(TcpStream::connect((ip, port)));
        }
        let host = host.to_owned();
        Box::pin(async move {
            let mut last = None;
            for addr in tokio::net::lookup_host((host.as_str(), port)).await? {
                match TcpStream::connect(addr).await {
                    Ok(s) => return Ok(s),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, "the name resolved to no address")
            }))
        })
    }
}

/// The protocol a new connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proto {
    Http1,
    Http2,
}

/// A backend connection outside the pool, for a request that takes the connection over
/// (a WebSocket upgrade): plain TCP or TLS.
#[derive(Debug)]
pub struct BackendStream(pub(crate) Io);

/// A connected byte stream, plain or TLS.
#[derive(Debug)]
pub(crate) enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Opens a connection to the target's backend and settles its protocol, by `deadline`.
pub(crate) async fn open(
    target: &TargetInner,
    dialer: &dyn Dial,
    deadline: Instant,
) -> Result<(Io, Proto), Error> {
    match tokio::time::timeout_at(deadline, open_inner(target, dialer)).await {
        Ok(r) => r,
        Err(elapsed) => Err(timeout_error(target).with_source(elapsed)),
    }
}

/// The error for a connection not ready by its deadline.
pub(crate) fn timeout_error(target: &TargetInner) -> Error {
    Error::new(ErrorKind::ConnectTimeout).with_message(format!(
        "no connection to {} within {} ms",
        target.backend,
        target.connect_timeout.as_millis()
    ))
}

async fn open_inner(target: &TargetInner, dialer: &dyn Dial) -> Result<(Io, Proto), Error> {
    let tcp = dial(target, dialer).await?;
    let Some(tls) = &target.tls else {
        let proto = match target.mode {
            Mode::Http2 => Proto::Http2,
            Mode::Http1 | Mode::Negotiate => Proto::Http1,
        };
        return Ok((Io::Plain(tcp), proto));
    };
    let stream = handshake(target, tls, tcp).await?;
    let proto = match target.mode {
        Mode::Http1 => Proto::Http1,
        // Offered `h2` alone: a server that picks nothing gets HTTP/2 anyway, as asked.
        Mode::Http2 => Proto::Http2,
        Mode::Negotiate => match stream.get_ref().1.alpn_protocol() {
            Some(p) if p == ALPN_H2 => Proto::Http2,
            _ => Proto::Http1,
        },
    };
    Ok((Io::Tls(Box::new(stream)), proto))
}

/// Opens a connection that speaks HTTP/1.1 whatever the target's protocols, for a request that
/// upgrades the connection (WebSocket): over TLS only `http/1.1` is offered.
pub(crate) async fn open_http1(
    target: &TargetInner,
    dialer: &dyn Dial,
    deadline: Instant,
) -> Result<Io, Error> {
    let open = async {
        let tcp = dial(target, dialer).await?;
        match target.upgrade_tls.as_ref().or(target.tls.as_ref()) {
            None => Ok(Io::Plain(tcp)),
            Some(tls) => Ok(Io::Tls(Box::new(handshake(target, tls, tcp).await?))),
        }
    };
    match tokio::time::timeout_at(deadline, open).await {
        Ok(r) => r,
        Err(elapsed) => Err(timeout_error(target).with_source(elapsed)),
    }
}

async fn dial(target: &TargetInner, dialer: &dyn Dial) -> Result<TcpStream, Error> {
    let backend = &target.backend;
    let tcp = dialer
        .dial(backend.host(), backend.port())
        .await
        .map_err(|e| {
            Error::new(ErrorKind::Connect)
                .with_message(format!("cannot connect to {backend}: {e}"))
                .with_source(e)
        })?;
    // Requests are written whole by hyper; Nagle would only delay them.
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(%backend, error = %e, "TCP_NODELAY not set");
    }
    Ok(tcp)
}

async fn handshake(
    target: &TargetInner,
    tls: &TlsSettings,
    tcp: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Error> {
    tls.connector
        .connect(tls.server_name.clone(), tcp)
        .await
        .map_err(|e| {
            Error::new(ErrorKind::Tls)
                .with_message(format!("TLS handshake with {} failed: {e}", target.backend))
                .with_source(e)
        })
}

impl AsyncRead for Io {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    #[inline]
    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

impl AsyncRead for BackendStream {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for BackendStream {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    #[inline]
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}
