//! A request body held in memory (`LIM-4`): the pieces as the client's connection delivered them,
//! not copied into one buffer.
//!
//! hyper hands a body over as slices of its read buffer, usually tens of KiB each. Keeping those
//! slices costs nothing; joining them into one buffer copied every buffered body once more and held
//! it twice while copying (a 1 MiB upload: 1 MiB of `memcpy` and 2 MiB of memory per request).
//! Small pieces are the exception: a chunked body may come a byte per chunk, and a slice per byte
//! would cost a 32-byte handle per byte of body, so runs of small pieces are copied together.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

/// Pieces shorter than this are copied together when they follow one another.
const SMALL_PIECE: usize = 4 * 1024;

/// The size of each buffer small pieces are copied into.
const JOIN_BUFFER: usize = 16 * 1024;

/// Collects a body's pieces for a [`Buffered`] (or a streamed body's prefix): large pieces as they
/// are, runs of small ones joined, so the pieces held number at most one per 4 KiB of body, plus
/// one per large piece.
#[derive(Debug, Default)]
pub(crate) struct Gather {
    parts: VecDeque<Bytes>,
    /// Small pieces being joined; empty when the last piece was large (or kept as it came).
    joining: BytesMut,
    len: u64,
}

impl Gather {
    /// Adds the next piece of the body.
    pub(crate) fn push(&mut self, piece: Bytes) {
        if piece.is_empty() {
            return;
        }
        self.len += piece.len() as u64;
        if piece.len() >= SMALL_PIECE {
            self.end_join();
            self.parts.push_back(piece);
            return;
        }
        if self.joining.is_empty() {
            // A small piece after a large one (or first) is kept as it is: most bodies that fit in
            // one small piece come as one, and need no copy. A second small piece in a row starts
            // a join, with the first one.
            match self.parts.back() {
                Some(last) if last.len() < SMALL_PIECE => {
                    let last = self.parts.pop_back().expect("a last piece, matched above");
                    // Two small pieces always fit in one join buffer.
                    self.joining.reserve(JOIN_BUFFER);
                    self.joining.extend_from_slice(&last);
                }
                _ => {
                    self.parts.push_back(piece);
                    return;
                }
            }
        } else if self.joining.capacity() - self.joining.len() < piece.len() {
            self.end_join();
            self.joining.reserve(JOIN_BUFFER);
        }
        self.joining.extend_from_slice(&piece);
    }

    /// The body's length so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The pieces, in order.
    pub(crate) fn into_parts(mut self) -> VecDeque<Bytes> {
        self.end_join();
        self.parts
    }

    /// The whole body, with its trailers if it had any.
    pub(crate) fn finish(self, trailers: Option<HeaderMap>) -> Buffered {
        Buffered::new(self.into_parts(), trailers)
    }

    fn end_join(&mut self) {
        if !self.joining.is_empty() {
            // `split` keeps the rest of the buffer's capacity for the next join.
            self.parts.push_back(self.joining.split().freeze());
        }
    }
}

/// A body read whole: cheap to clone (the pieces are shared), so the request can be sent again.
///
/// Most bodies are empty or come in one piece, and every request carries a `Buffered` (a copy too,
/// for a resend): the pieces after the first are boxed apart, so those cost what one `Bytes` does.
#[derive(Debug, Clone, Default)]
pub(crate) struct Buffered {
    /// The next piece; empty once none is left.
    first: Bytes,
    /// The pieces after `first`, for a body that came in several. Boxed for the size of `Buffered`
    /// (8 bytes, not 32), which every request's future carries and moves.
    #[allow(clippy::box_collection)]
    rest: Option<Box<VecDeque<Bytes>>>,
    trailers: Option<HeaderMap>,
}

impl Buffered {
    fn new(mut parts: VecDeque<Bytes>, trailers: Option<HeaderMap>) -> Self {
        let first = parts.pop_front().unwrap_or_default();
        let rest = (!parts.is_empty()).then(|| Box::new(parts));
        Self {
            first,
            rest,
            trailers,
        }
    }

    /// The body's length in bytes (what is left of it, once polling began). Asked once or twice
    /// per request (its `Content-Length`), so it is counted rather than kept.
    pub(crate) fn len(&self) -> u64 {
        let rest = self.rest.iter().flat_map(|r| r.iter());
        rest.map(|p| p.len() as u64).sum::<u64>() + self.first.len() as u64
    }

    /// The body's trailers, if it had any.
    #[cfg(test)]
    pub(crate) fn trailers(&self) -> Option<&HeaderMap> {
        self.trailers.as_ref()
    }

    /// The pieces the body is held in (sharing their memory).
    #[cfg(test)]
    pub(crate) fn parts(&self) -> Vec<Bytes> {
        let rest = self.rest.iter().flat_map(|r| r.iter().cloned());
        (!self.first.is_empty())
            .then(|| self.first.clone())
            .into_iter()
            .chain(rest)
            .collect()
    }

    /// The body's bytes in one buffer.
    #[cfg(test)]
    pub(crate) fn to_bytes(&self) -> Bytes {
        self.parts()
            .iter()
            .flat_map(|p| p.iter().copied())
            .collect()
    }
}

impl Body for Buffered {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if !self.first.is_empty() {
            return Poll::Ready(Some(Ok(Frame::data(std::mem::take(&mut self.first)))));
        }
        if let Some(piece) = self.rest.as_mut().and_then(|r| r.pop_front()) {
            return Poll::Ready(Some(Ok(Frame::data(piece))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_empty()
            && self.rest.as_ref().is_none_or(|r| r.is_empty())
            && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len())
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    fn gather(pieces: &[&[u8]]) -> Buffered {
        let mut g = Gather::default();
        for p in pieces {
            g.push(Bytes::copy_from_slice(p));
        }
        g.finish(None)
    }

    // LIM-4: large pieces are kept as they came, not copied: the buffered body shares their memory.
    #[test]
    fn lim_4_large_pieces_are_kept_without_a_copy() {
        let a = Bytes::from(vec![b'a'; 64 * 1024]);
        let b = Bytes::from(vec![b'b'; 8 * 1024]);
        let mut g = Gather::default();
        g.push(a.clone());
        g.push(b.clone());
        let body = g.finish(None);
        assert_eq!(body.len(), 72 * 1024);
        assert_eq!(body.parts().len(), 2);
        assert_eq!(body.parts()[0].as_ptr(), a.as_ptr());
        assert_eq!(body.parts()[1].as_ptr(), b.as_ptr());
    }

    // LIM-4: one small body in one piece is kept as it is.
    #[test]
    fn lim_4_single_small_piece_is_kept() {
        let a = Bytes::from_static(b"hello");
        let mut g = Gather::default();
        g.push(a.clone());
        let body = g.finish(None);
        assert_eq!(body.parts().len(), 1);
        assert_eq!(body.parts()[0].as_ptr(), a.as_ptr());
    }

    // LIM-4: a body of tiny chunks is held in a few buffers, not a handle per chunk: memory stays
    // in proportion to the body's bytes.
    #[test]
    fn lim_4_tiny_pieces_are_joined() {
        let mut g = Gather::default();
        let mut want = Vec::new();
        for i in 0..100_000u32 {
            let byte = (i % 251) as u8;
            g.push(Bytes::copy_from_slice(&[byte]));
            want.push(byte);
        }
        let body = g.finish(None);
        assert_eq!(body.len(), 100_000);
        assert!(
            body.parts().len() <= 100_000 / JOIN_BUFFER + 1,
            "{} pieces",
            body.parts().len()
        );
        assert_eq!(body.to_bytes(), want);
    }

    // LIM-4: pieces of every size come out as they went in: a run of small ones joined (a new
    // join buffer when one is full), large ones and a lone small one between them kept.
    #[test]
    fn lim_4_mixed_pieces_keep_their_order() {
        let big = vec![b'B'; SMALL_PIECE];
        let mid = vec![b'm'; 3000];
        let mut pieces: Vec<&[u8]> = vec![b"a", b"bc", &big, b"d", &big, b"e", b"f"];
        pieces.extend([&mid[..]; 6]);
        pieces.push(b"hi");
        let body = gather(&pieces);
        assert_eq!(body.to_bytes(), pieces.concat());
        assert_eq!(body.len(), pieces.concat().len() as u64);
        let lengths: Vec<usize> = body.parts().iter().map(Bytes::len).collect();
        assert_eq!(
            lengths,
            [3, SMALL_PIECE, 1, SMALL_PIECE, 2 + 5 * 3000, 3000 + 2]
        );
    }

    // A buffered body polls out its pieces, then its trailers, with an exact size hint throughout;
    // a clone (the copy kept for a resend, ERR-3) yields the same.
    #[tokio::test]
    async fn buffered_body_frames_and_clone() {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-sum", "6".parse().unwrap());
        let mut g = Gather::default();
        g.push(Bytes::from(vec![b'x'; SMALL_PIECE]));
        g.push(Bytes::from_static(b"tail"));
        let body = g.finish(Some(trailers));
        let copy = body.clone();
        for mut b in [body, copy] {
            assert_eq!(b.size_hint().exact(), Some(SMALL_PIECE as u64 + 4));
            let first = b.frame().await.unwrap().unwrap().into_data().unwrap();
            assert_eq!(first.len(), SMALL_PIECE);
            assert_eq!(b.size_hint().exact(), Some(4));
            let second = b.frame().await.unwrap().unwrap().into_data().unwrap();
            assert_eq!(second, "tail");
            assert!(!b.is_end_stream());
            let t = b.frame().await.unwrap().unwrap().into_trailers().unwrap();
            assert_eq!(t["x-sum"], "6");
            assert!(b.is_end_stream());
            assert!(b.frame().await.is_none());
        }
    }

    #[test]
    fn empty_pieces_are_skipped() {
        let body = gather(&[b"", b"a", b""]);
        assert_eq!(body.parts().len(), 1);
        assert!(Buffered::default().is_end_stream());
        assert_eq!(Buffered::default().len(), 0);
    }
}
