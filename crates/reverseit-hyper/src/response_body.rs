//! The response body the client receives: the backend's body, frame by frame, under the response
//! limits and the upstream idle timeout, or a short body the proxy wrote itself.
//!
//! Frames are passed on as they arrive (`STR-1`) and read only when hyper asks for the next one, so a
//! slow client slows the backend instead of filling memory (`STR-3`). An error ends the body: hyper
//! then aborts the client connection instead of ending the response cleanly, so a truncated body is
//! never passed off as complete (`ERR-2`, `TMO-3`, `LIM-5`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use reverseit_core::{Error, ErrorKind, SizeLimit};
use tokio::time::{Instant, Sleep, sleep_until};

/// The body of every response the proxy returns.
pub struct ProxyBody {
    kind: Kind,
}

enum Kind {
    Upstream(Upstream),
    Full(Option<Bytes>),
    /// A response that must not end cleanly: the error is raised on the first poll.
    Failed(Option<Error>),
}

struct Upstream {
    inner: Incoming,
    /// Bytes still allowed by `max_response_body_size`, `None` for no limit.
    remaining: Option<u64>,
    idle_timeout: Duration,
    /// Armed when a poll finds no data: measures time waiting on the backend only.
    timer: Option<Pin<Box<Sleep>>>,
    waiting: bool,
    failed: bool,
}

impl ProxyBody {
    /// A body the proxy writes itself (error pages).
    pub(crate) fn full(data: impl Into<Bytes>) -> Self {
        Self {
            kind: Kind::Full(Some(data.into())),
        }
    }

    /// No body.
    pub(crate) fn empty() -> Self {
        Self {
            kind: Kind::Full(None),
        }
    }

    /// A body that fails at once, so that hyper aborts the connection instead of ending a response.
    pub(crate) fn failed(error: Error) -> Self {
        Self {
            kind: Kind::Failed(Some(error)),
        }
    }

    /// Whether this is the aborted body of an exchange whose client left mid-request (its request
    /// body broke off): the response carrying it is a 502 that nobody reads, which an access log
    /// should not count as the backend's answer (nginx logs such a request as 499).
    #[inline]
    pub fn client_gone(&self) -> bool {
        matches!(&self.kind, Kind::Failed(Some(e)) if e.kind() == ErrorKind::ClientGone)
    }

    /// The backend's body under `max_response_body_size` and `upstream_idle_timeout`.
    pub(crate) fn upstream(inner: Incoming, limit: SizeLimit, idle_timeout: Duration) -> Self {
        Self {
            kind: Kind::Upstream(Upstream {
                inner,
                remaining: limit.bytes(),
                idle_timeout,
                timer: None,
                waiting: false,
                failed: false,
            }),
        }
    }
}

impl Upstream {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                self.waiting = false;
                match frame {
                    None => Poll::Ready(None),
                    Some(Err(e)) => {
                        self.failed = true;
                        Poll::Ready(Some(Err(
                            Error::new(ErrorKind::BackendBodyTruncated).with_source(e)
                        )))
                    }
                    Some(Ok(frame)) => {
                        if let (Some(remaining), Some(data)) =
                            (&mut self.remaining, frame.data_ref())
                        {
                            match remaining.checked_sub(data.len() as u64) {
                                Some(left) => *remaining = left,
                                None => {
                                    self.failed = true;
                                    return Poll::Ready(Some(Err(Error::new(
                                        ErrorKind::ResponseTooLarge,
                                    ))));
                                }
                            }
                        }
                        Poll::Ready(Some(Ok(frame)))
                    }
                }
            }
            Poll::Pending => {
                if !self.waiting {
                    self.waiting = true;
                    let deadline = Instant::now() + self.idle_timeout;
                    match self.timer.as_mut() {
                        Some(t) => t.as_mut().reset(deadline),
                        None => self.timer = Some(Box::pin(sleep_until(deadline))),
                    }
                }
                let timer = self
                    .timer
                    .as_mut()
                    .expect("the timer is armed whenever `waiting` is set");
                ready!(timer.as_mut().poll(cx));
                self.failed = true;
                Poll::Ready(Some(Err(Error::new(ErrorKind::BackendIdleTimeout))))
            }
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match &mut self.get_mut().kind {
            Kind::Upstream(up) => up.poll_frame(cx),
            Kind::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Kind::Failed(error) => Poll::Ready(error.take().map(Err)),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Upstream(up) => up.failed || up.inner.is_end_stream(),
            Kind::Full(data) => data.is_none(),
            Kind::Failed(error) => error.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Upstream(up) => up.inner.size_hint(),
            Kind::Full(Some(d)) => SizeHint::with_exact(d.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Failed(_) => SizeHint::new(),
        }
    }
}

impl fmt::Debug for ProxyBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Upstream(_) => f.write_str("ProxyBody::Upstream"),
            Kind::Failed(_) => f.write_str("ProxyBody::Failed"),
            Kind::Full(d) => write!(
                f,
                "ProxyBody::Full({} bytes)",
                d.as_ref().map_or(0, Bytes::len)
            ),
        }
    }
}
