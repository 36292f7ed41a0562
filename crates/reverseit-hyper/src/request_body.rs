//! The request body on its way to the backend: buffered when small, streamed when large (`LIM-4`).
//!
//! Small bodies are read whole before the backend is contacted, so an idempotent request can be sent
//! again after a failed reused connection (`ERR-3`) and goes out with a `Content-Length`. Larger ones
//! stream in `request_body_chunk_size` pieces with back-pressure: the client is read only as fast as
//! the backend accepts. Either way the size limit (`LIM-3`) and the rolling read timeout (`TMO-4`)
//! apply, and memory per request stays bounded by the buffer size plus one chunk.
//!
//! A body of unknown length (chunked, or HTTP/2 without `content-length`) is buffered like a small
//! one, up to the buffer size, except for a streaming RPC call (gRPC, Connect): its client may wait
//! for replies before sending the rest, so buffering until the end would stall the call.

mod buffered;
mod progress;

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use reverseit_core::{BoxError, Error, ErrorKind, RouteConfig, SizeLimit};
use tokio::time::{Instant, Sleep, sleep_until};

pub(crate) use buffered::Buffered;
use buffered::Gather;
pub(crate) use progress::{Progress, head_within};

/// Body settings taken from the route once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodySettings {
    pub(crate) buffer_size: usize,
    pub(crate) chunk_size: usize,
    pub(crate) max_size: SizeLimit,
    pub(crate) read_timeout: Duration,
}

impl BodySettings {
    pub(crate) fn from_route(route: &RouteConfig) -> Self {
        Self {
            buffer_size: route.request_body_buffer_size(),
            chunk_size: route.request_body_chunk_size(),
            max_size: route.max_request_body_size(),
            read_timeout: route.request_body_read_timeout(),
        }
    }
}

/// What [`prepare`] made of the client's body.
#[derive(Debug)]
pub(crate) enum Prepared<B> {
    /// The whole body (possibly empty) is in memory.
    Buffered(Buffered),
    /// The body streams; `prefix` holds what was read while deciding.
    Streaming(Streaming<B>),
}

/// Whether the request has no body to read: at its end already, or declared empty. Such a request
/// (most of them) needs no [`prepare`].
pub(crate) fn is_absent<B: Body>(body: &B, declared: Option<u64>) -> bool {
    body.is_end_stream() || declared == Some(0)
}

/// Reads the start of the client's body and decides between buffering and streaming (`LIM-4`).
///
/// `declared` is the request's `Content-Length`, already checked against the limit (`LIM-3`).
/// `interactive` marks a call of a streaming RPC protocol (see [`is_interactive`]).
pub(crate) async fn prepare<B>(
    mut body: B,
    declared: Option<u64>,
    interactive: bool,
    settings: BodySettings,
) -> Result<Prepared<B>, Error>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    if is_absent(&body, declared) {
        return Ok(Prepared::Buffered(Buffered::default()));
    }
    // A declared length over the buffer size streams from the start; so does a call of a
    // streaming RPC protocol, whose client may wait for replies before it sends the rest.
    let buffer_first = match declared {
        Some(n) => n <= settings.buffer_size as u64,
        None => !interactive,
    };
    let mut gathered = Gather::default();
    let mut trailers = None;
    if buffer_first {
        loop {
            let deadline = Instant::now() + settings.read_timeout;
            let next =
                tokio::time::timeout_at(deadline, poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)))
                    .await
                    .map_err(|_| Error::new(ErrorKind::ClientBodyTimeout))?;
            match next {
                None => return Ok(Prepared::Buffered(gathered.finish(trailers))),
                Some(Err(e)) => return Err(client_body_error(e)),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        gathered.push(data);
                        if settings.max_size.exceeded_by(gathered.len()) {
                            return Err(Error::new(ErrorKind::BodyTooLarge));
                        }
                        if gathered.len() > settings.buffer_size as u64 {
                            break;
                        }
                    }
                    Err(frame) => {
                        if let Ok(t) = frame.into_trailers() {
                            trailers = Some(t);
                        }
                    }
                },
            }
            if body.is_end_stream() {
                return Ok(Prepared::Buffered(gathered.finish(trailers)));
            }
        }
    }
    Ok(Prepared::Streaming(Streaming {
        inner: body,
        received: gathered.len(),
        prefix: gathered.into_parts(),
        pending: Bytes::new(),
        settings,
        timer: None,
        waiting: false,
        done: false,
        progress: Arc::new(Progress::new()),
    }))
}

/// Whether a request is a call of a streaming RPC protocol (gRPC, gRPC-Web, Connect streaming),
/// whose client may send part of its body, wait for replies, then send more: buffering such a
/// body until its end would stall the call.
pub(crate) fn is_interactive(headers: &http::HeaderMap) -> bool {
    headers.get(http::header::CONTENT_TYPE).is_some_and(|ct| {
        let ct = ct.as_bytes();
        ct.starts_with(b"application/grpc") || ct.starts_with(b"application/connect+")
    })
}

/// A client body error, as hyper reports it: a malformed body (an invalid chunk size or chunk
/// line, `ERR-6`) is answered 400 while the response has not started; a broken connection (a
/// reset, an end of stream mid-body) leaves nobody to answer.
fn client_body_error(e: impl Into<BoxError>) -> Error {
    let e = e.into();
    let kind = if is_malformed(&*e) {
        ErrorKind::BadRequest
    } else {
        ErrorKind::ClientGone
    };
    Error::new(kind).with_source(e)
}

/// Whether a body error is hyper's decoder refusing what the client sent: hyper reports those as
/// I/O errors of kind `InvalidInput` or `InvalidData` (an end of stream is `UnexpectedEof`, a
/// reset `ConnectionReset`), somewhere in the error's chain.
fn is_malformed(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData
            );
        }
        cause = e.source();
    }
    false
}

pin_project! {
    /// A streamed request body: the prefix read while deciding, then the client's frames, cut into
    /// `request_body_chunk_size` pieces, with the size limit and the rolling read timeout.
    #[derive(Debug)]
    pub(crate) struct Streaming<B> {
        #[pin]
        inner: B,
        prefix: VecDeque<Bytes>,
        pending: Bytes,
        received: u64,
        settings: BodySettings,
        // Armed when a poll finds no data; measures only time spent waiting on the client, not
        // time the backend took to ask for more (back-pressure is not client idleness).
        timer: Option<Pin<Box<Sleep>>>,
        waiting: bool,
        done: bool,
        // The response-head clock's view of this body (`TMO-2`).
        progress: Arc<Progress>,
    }
}

impl<B> Streaming<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    /// What the response-head clock of this body's exchange runs by (see [`head_within`]).
    pub(crate) fn progress(&self) -> Arc<Progress> {
        Arc::clone(&self.progress)
    }

    fn next_piece(pending: &mut Bytes, chunk: usize) -> Bytes {
        if pending.len() > chunk {
            pending.split_to(chunk)
        } else {
            std::mem::take(pending)
        }
    }

    /// The next piece of the body: the prefix read while deciding, then the client's frames.
    fn poll_piece(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let mut this = self.project();
        let chunk = this.settings.chunk_size;
        if !this.pending.is_empty() {
            return Poll::Ready(Some(Ok(Frame::data(Self::next_piece(this.pending, chunk)))));
        }
        if let Some(mut p) = this.prefix.pop_front() {
            if p.len() > chunk {
                *this.pending = p.split_off(chunk);
            }
            return Poll::Ready(Some(Ok(Frame::data(p))));
        }
        if *this.done {
            return Poll::Ready(None);
        }
        match this.inner.as_mut().poll_frame(cx) {
            Poll::Ready(frame) => {
                *this.waiting = false;
                match frame {
                    None => {
                        *this.done = true;
                        Poll::Ready(None)
                    }
                    Some(Err(e)) => {
                        *this.done = true;
                        Poll::Ready(Some(Err(client_body_error(e))))
                    }
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(mut data) => {
                            *this.received += data.len() as u64;
                            if this.settings.max_size.exceeded_by(*this.received) {
                                *this.done = true;
                                return Poll::Ready(Some(Err(Error::new(ErrorKind::BodyTooLarge))));
                            }
                            if data.len() > chunk {
                                *this.pending = data.split_off(chunk);
                            }
                            Poll::Ready(Some(Ok(Frame::data(data))))
                        }
                        Err(frame) => Poll::Ready(Some(Ok(frame))),
                    },
                }
            }
            Poll::Pending => {
                if !*this.waiting {
                    *this.waiting = true;
                    // The client holds the exchange up now, not the backend.
                    this.progress.waiting_on_client();
                    let deadline = Instant::now() + this.settings.read_timeout;
                    match this.timer.as_mut() {
                        Some(t) => t.as_mut().reset(deadline),
                        None => *this.timer = Some(Box::pin(sleep_until(deadline))),
                    }
                }
                let timer = this
                    .timer
                    .as_mut()
                    .expect("the timer is armed whenever `waiting` is set");
                ready!(timer.as_mut().poll(cx));
                *this.done = true;
                Poll::Ready(Some(Err(Error::new(ErrorKind::ClientBodyTimeout))))
            }
        }
    }
}

impl<B> Body for Streaming<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let polled = self.as_mut().poll_piece(cx);
        if let Poll::Ready(Some(Ok(_)) | None) = polled {
            // A piece (or the end) goes to the backend's side: its clock starts again.
            self.progress.moved();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_empty()
            && self.prefix.is_empty()
            && (self.done || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let buffered: u64 =
            self.pending.len() as u64 + self.prefix.iter().map(|b| b.len() as u64).sum::<u64>();
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(buffered + inner.lower());
        if let Some(upper) = inner.upper() {
            hint.set_upper(buffered + upper);
        }
        hint
    }
}

#[cfg(test)]
mod tests;
