//! The request body type every pooled connection is built for.
//!
//! A connection's `SendRequest<B>` fixes one body type, but one pool serves every route and every
//! caller's body type, so bodies are erased to [`ReqBody`] on the way in. The body still streams:
//! frames are polled from the caller's body as hyper asks for them (back-pressure included).
//! A zero-sized body (`Empty<Bytes>`) boxes without allocating.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use reverseit_core::BoxError;

/// Any caller body, with its error boxed.
pub(crate) struct ReqBody {
    inner: Pin<Box<dyn Body<Data = Bytes, Error = BoxError> + Send>>,
}

impl ReqBody {
    pub(crate) fn new<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Self {
            inner: Box::pin(BoxedErr { inner: body }),
        }
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = BoxError;

    #[inline]
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.inner.as_mut().poll_frame(cx)
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        // hyper picks `Content-Length` over chunked encoding from an exact hint.
        self.inner.size_hint()
    }
}

impl fmt::Debug for ReqBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReqBody")
    }
}

pin_project_lite::pin_project! {
    /// Boxes the inner body's error.
    struct BoxedErr<B> {
        #[pin]
        inner: B,
    }
}

impl<B> Body for BoxedErr<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.project().inner.poll_frame(cx).map_err(Into::into)
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
