//! The access log: one line per request on stderr, written when the response body ends (or is
//! dropped), with the method, path, route, backend, status, body bytes and duration.
//!
//! The line is INFO under the tracing target `reverseit::access`, so `RUST_LOG`
//! (`reverseit::access=off`, say) controls it. When the line is filtered out nothing is measured:
//! the check is one cached callsite lookup per request. Otherwise the line is formatted here
//! ([`mod@line`]) rather than by tracing's formatter, and written with the lines of other requests
//! ([`batch`]): through tracing, the access log cost a small request about 40 % more CPU time.

mod batch;
mod line;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::SystemTime;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Either;
use hyper::service::Service;
use reverseit_core::BoxError;
use reverseit_core::headers::ClientInfo;
use tokio::time::Instant;

use crate::router::{Router, RouterBody, RouterFuture};

pub(crate) use batch::{LineBatch, Output};
use line::Line;

/// The tracing target of access-log lines.
pub(crate) const TARGET: &str = "reverseit::access";

/// Logs every request the router serves.
#[derive(Debug, Clone)]
pub(crate) struct AccessLog {
    router: Router,
    lines: Arc<LineBatch>,
}

impl AccessLog {
    /// Logs the requests `router` serves into `lines`.
    pub(crate) fn new(router: Router, lines: Arc<LineBatch>) -> Self {
        Self { router, lines }
    }

    /// A copy for one client connection (see [`Router::for_client`]).
    pub(crate) fn for_client(&self, client: ClientInfo) -> Self {
        Self {
            router: self.router.for_client(client),
            lines: Arc::clone(&self.lines),
        }
    }
}

/// What is known of a request when its response starts.
#[derive(Debug)]
struct Entry {
    start: Instant,
    method: Method,
    uri: Uri,
    router: Router,
    /// The route [`Router::select`] chose for the request, looked up once for both.
    selected: Option<usize>,
    status: StatusCode,
    lines: Arc<LineBatch>,
}

impl<B> Service<Request<B>> for AccessLog
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<LogBody<RouterBody>>;
    type Error = Infallible;
    type Future = LogFuture;

    fn call(&self, req: Request<B>) -> LogFuture {
        let selected = self.router.select(req.uri().path());
        let entry = tracing::enabled!(target: TARGET, tracing::Level::INFO).then(|| Entry {
            start: Instant::now(),
            method: req.method().clone(),
            // A `Uri` clone shares its bytes: no copy of the path.
            uri: req.uri().clone(),
            router: self.router.clone(),
            selected,
            status: StatusCode::OK,
            lines: Arc::clone(&self.lines),
        });
        LogFuture {
            inner: self.router.call_selected(selected, req),
            entry,
        }
    }
}

/// The future of [`AccessLog::call`].
#[derive(Debug)]
pub(crate) struct LogFuture {
    inner: RouterFuture,
    entry: Option<Entry>,
}

impl Future for LogFuture {
    type Output = Result<Response<LogBody<RouterBody>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Ok(resp) = ready!(Pin::new(&mut this.inner).poll(cx));
        let mut entry = this.entry.take();
        if let Some(e) = &mut entry {
            // Read from the body's state, inline: a lookup in the response's extensions made the
            // compiler copy the response twice more (130 instructions per request).
            e.status = if matches!(resp.body(), Either::Left(body) if body.client_gone()) {
                // The client left mid-request (its body broke off): the 502 the proxy made
                // reaches nobody, and was not the backend's.
                client_closed()
            } else {
                resp.status()
            };
        }
        Poll::Ready(Ok(resp.map(|inner| LogBody {
            inner,
            entry,
            bytes: 0,
            complete: false,
            failed: false,
        })))
    }
}

/// A response body that counts its data bytes and writes the access-log line when it is done.
pub(crate) struct LogBody<B: Body> {
    inner: B,
    entry: Option<Entry>,
    bytes: u64,
    /// The body reached its end (rather than being dropped early or failing).
    complete: bool,
    /// The body failed (an aborted response, `ERR-2`, `TMO-3`, `LIM-5`): however its end looks
    /// afterwards, the client did not get the whole of it.
    failed: bool,
}

impl<B> Body for LogBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if let Some(data) = f.data_ref() {
                    this.bytes += data.len() as u64;
                }
            }
            None => this.complete = true,
            Some(Err(_)) => this.failed = true,
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B: Body> Drop for LogBody<B> {
    fn drop(&mut self) {
        let Some(e) = self.entry.take() else {
            return;
        };
        // hyper may drop a body it knows is empty (HEAD, 204, a 101 upgrade) without polling it.
        let complete = !self.failed && (self.complete || self.inner.is_end_stream());
        e.write(self.bytes, complete);
    }
}

/// A request dropped before its response began: the client left, or the proxy stopped
/// (`shutdown_timeout`). Logged with nginx's status for it, 499, as never complete.
impl Drop for LogFuture {
    fn drop(&mut self) {
        if let Some(mut e) = self.entry.take() {
            e.status = client_closed();
            e.write(0, false);
        }
    }
}

/// nginx's status for a request its client closed before the response: 499.
fn client_closed() -> StatusCode {
    StatusCode::from_u16(499).expect("499 is a valid status code")
}

impl Entry {
    /// Writes the request's line.
    fn write(self, bytes: u64, complete: bool) {
        let route = self.router.route(self.selected);
        let line = Line {
            method: &self.method,
            path: self.uri.path(),
            route: route.map_or("-", |r| &r.path),
            backend: route.map_or("-", |r| &r.backend),
            status: self.status,
            bytes,
            duration: self.start.elapsed(),
            complete,
        };
        let at = SystemTime::now();
        self.lines.push(|out| line.write(at, out));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    #[tokio::test]
    async fn counts_body_bytes_and_passes_frames_through() {
        let mut body = LogBody {
            inner: Full::new(Bytes::from_static(b"hello")),
            entry: None,
            bytes: 0,
            complete: false,
            failed: false,
        };
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.data_ref().map(|d| &d[..]), Some(&b"hello"[..]));
        assert!(body.frame().await.is_none());
        assert_eq!(body.bytes, 5);
        assert!(body.complete);
    }
}
