//! hyper's own answers to request heads it cannot parse, given the proxy's `text/plain` page.
//!
//! hyper answers a malformed head (400), a request target over its limit (414) and too many or too
//! large header fields (431) itself, before any request reaches the proxy, with an empty body:
//! `connection: close`, `content-length: 0` and the date, nothing else. The catalogue promises a
//! `text/plain` page with every status the proxy makes, and those are the proxy's answers as far
//! as a client can tell. hyper has no hook for them, so the client connection's writes are watched
//! for exactly that head, written while no request is in flight, and it goes out as the page
//! instead.
//!
//! The check costs a length test and a ten-byte comparison per write call. A response the proxy
//! relays cannot be mistaken for hyper's: it is written while its request is in flight, or, once
//! its body was dropped, with its own fields (a `Content-Length` the proxy sets, or the backend's)
//! listed before the `connection: close` hyper adds after them.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::idle::Activity;

/// The status lines of hyper's own error answers, with the text of each page.
const PAGES: [(&[u8], &str); 3] = [
    (b"HTTP/1.1 400 Bad Request\r\n", "Bad Request"),
    (b"HTTP/1.1 414 URI Too Long\r\n", "URI Too Long"),
    (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
        "Request Header Fields Too Large",
    ),
];

/// The fields hyper writes right after the status line of such an answer; its `date` follows.
const HYPER_FIELDS: &[u8] = b"connection: close\r\ncontent-length: 0\r\n";

/// The longest head hyper writes for such an answer (the 431 status line, its two fields and a
/// `date` line), with room to spare.
const MAX_HEAD: usize = 160;

/// The page replacing `head`, when `head` is hyper's own error answer. Any other head is told
/// apart by its length and first ten bytes.
fn page_for(head: &[u8]) -> Option<Vec<u8>> {
    if head.len() > MAX_HEAD || !head.starts_with(b"HTTP/1.1 4") {
        return None;
    }
    let (status_line, text) = PAGES.iter().find(|(line, _)| head.starts_with(line))?;
    let rest = head[status_line.len()..].strip_prefix(HYPER_FIELDS)?;
    // What is left is hyper's `date` line, if it writes one, and the blank line.
    if !rest.ends_with(b"\r\n") {
        return None;
    }
    let mut page = Vec::with_capacity(head.len() + 80 + text.len());
    page.extend_from_slice(status_line);
    page.extend_from_slice(b"content-type: text/plain; charset=utf-8\r\n");
    page.extend_from_slice(format!("content-length: {}\r\n", text.len()).as_bytes());
    page.extend_from_slice(b"connection: close\r\n");
    page.extend_from_slice(rest);
    page.extend_from_slice(text.as_bytes());
    Some(page)
}

/// A client connection whose hyper error answers go out as `text/plain` pages.
pub(crate) struct ErrorPages<I> {
    io: I,
    activity: Arc<Activity>,
    /// A page being written in place of hyper's head: the page, how much of it is written, and
    /// the length of hyper's head, reported written once the page is.
    page: Option<(Vec<u8>, usize, usize)>,
}

impl<I> ErrorPages<I> {
    pub(crate) fn new(io: I, activity: Arc<Activity>) -> Self {
        Self {
            io,
            activity,
            page: None,
        }
    }
}

impl<I: AsyncWrite + Unpin> ErrorPages<I> {
    /// Starts a page when `head` (all hyper asks to write) is one of hyper's error answers,
    /// written while no request is in flight.
    fn check(&mut self, head: &[u8]) {
        if let Some(page) = page_for(head)
            && !self.activity.in_flight()
        {
            self.page = Some((page, 0, head.len()));
        }
    }

    /// Writes the page in progress; hyper's head counts as written once all of it is.
    fn poll_page(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some((page, written, head_len)) = &mut self.page else {
            unreachable!("poll_page is called with a page in progress");
        };
        while *written < page.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &page[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        let head_len = *head_len;
        self.page = None;
        Poll::Ready(Ok(head_len))
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for ErrorPages<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for ErrorPages<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.page.is_none() {
            this.check(buf);
        }
        if this.page.is_some() {
            return this.poll_page(cx);
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.page.is_none()
            && let [head, rest @ ..] = bufs
            && rest.iter().all(|b| b.is_empty())
        {
            this.check(head);
        }
        if this.page.is_some() {
            return this.poll_page(cx);
        }
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
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
mod tests {
    use super::*;

    const DATE: &[u8] = b"date: Sat, 28 Nov 2026 01:37:38 GMT\r\n\r\n";

    fn hyper_head(status_line: &[u8]) -> Vec<u8> {
        [status_line, HYPER_FIELDS, DATE].concat()
    }

    #[test]
    fn hypers_own_answers_become_pages() {
        for (line, text) in PAGES {
            let page = page_for(&hyper_head(line)).expect("a page");
            let page = String::from_utf8(page).unwrap();
            let (head, body) = page.split_once("\r\n\r\n").unwrap();
            assert_eq!(body, text);
            assert!(head.starts_with(std::str::from_utf8(line).unwrap().trim_end()));
            assert!(head.contains("\r\ncontent-type: text/plain; charset=utf-8\r\n"));
            assert!(head.contains(&format!("\r\ncontent-length: {}\r\n", text.len())));
            assert!(head.contains("\r\nconnection: close\r\n"));
            assert!(head.ends_with("date: Sat, 28 Nov 2026 01:37:38 GMT"));
        }
    }

    #[test]
    fn other_heads_are_left_alone() {
        // The proxy's own page, a relayed backend answer, other statuses, a cut head.
        for head in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 11\r\nconnection: close\r\n\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\nda",
        ] {
            assert!(page_for(head).is_none(), "{}", String::from_utf8_lossy(head));
        }
    }
}
