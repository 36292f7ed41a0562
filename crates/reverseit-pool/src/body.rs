//! The request body type every pooled connection is built for.
//!
//! A connection's `SendRequest<B>` fixes one body type, but one pool serves every route and every
//! caller's body type, so bodies are erased to [`ReqBody`] on the way in. The body still streams:
//! frames are polled from the caller's body as hyper asks for them (back-pressure included).
//! A body already at its end (a GET's, whatever its type) is not boxed at all: most requests carry
//! none, and a box is an allocation per request.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use reverseit_core::BoxError;

/// Any caller body, with its error boxed.
pub(crate) struct ReqBody {
    /// `None` for a body that was at its end from the start.
    inner: Option<Pin<Box<dyn Body<Data = Bytes, Error = BoxError> + Send>>>,
}

impl ReqBody {
    pub(crate) fn new<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        if body.is_end_stream() {
            return Self { inner: None };
        }
        Self {
            inner: Some(Box::pin(BoxedErr { inner: body })),
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
        match &mut self.inner {
            Some(body) => body.as_mut().poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|body| body.is_end_stream())
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        // hyper picks `Content-Length` over chunked encoding from an exact hint.
        match &self.inner {
            Some(body) => body.size_hint(),
            None => SizeHint::with_exact(0),
        }
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

#[cfg(test)]
mod tests {
    use http::HeaderMap;
    use http_body_util::{BodyExt, Empty, Full};

    use super::*;

    #[tokio::test]
    async fn a_body_at_its_end_is_empty_with_an_exact_zero_size() {
        let body = ReqBody::new(Empty::<Bytes>::new());
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
        assert!(body.collect().await.unwrap().to_bytes().is_empty());
    }

    #[tokio::test]
    async fn data_and_trailers_pass_through() {
        let body = ReqBody::new(Full::new(Bytes::from_static(b"abc")));
        assert!(!body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(3));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "abc");

        // No data but trailers: not at its end, so the trailers are sent.
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        let body = ReqBody::new(Empty::<Bytes>::new().with_trailers(async { Some(Ok(trailers)) }));
        assert!(!body.is_end_stream());
        let collected = body.collect().await.unwrap();
        assert_eq!(collected.trailers().unwrap()["grpc-status"], "0");
    }
}
