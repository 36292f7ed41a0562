//! hyper's own answers to request heads it cannot parse, given the proxy's `text/plain` page.
//!
//! hyper answers a malformed head (400), a request target over its limit (414) and too many or too
//! large header fields (431) itself, before any request reaches the proxy, with an empty body:
//! `connection: close`, `content-length: 0` and the date, nothing else. The catalogue promises a
//! `text/plain` page with every status the proxy makes, and those are the proxy's answers as far
//! as a client can tell. hyper has no hook for them, so the client connection's writes (the
//! server's `Counted`) are watched for exactly that head, written while no request is in flight,
//! and it goes out as a [`Page`] instead.
//!
//! The check costs a length test and a ten-byte comparison per write call. A response the proxy
//! relays cannot be mistaken for hyper's: it is written while its request is in flight, or, once
//! its body was dropped, with its own fields (a `Content-Length` the proxy sets, or the backend's)
//! listed before the `connection: close` hyper adds after them.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::AsyncWrite;

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

/// A page being written in place of hyper's head.
pub(crate) struct Page {
    bytes: Vec<u8>,
    written: usize,
    /// The length of hyper's head, reported written once the whole page is.
    replaces: usize,
}

impl Page {
    /// The page for `head` (all hyper asks to write at once), when it is hyper's error answer.
    pub(crate) fn for_head(head: &[u8]) -> Option<Self> {
        page_for(head).map(|bytes| Self {
            bytes,
            written: 0,
            replaces: head.len(),
        })
    }

    /// Writes the rest of the page to `io`; hyper's head counts as written once all of it is.
    pub(crate) fn poll_write<W: AsyncWrite + Unpin>(
        &mut self,
        io: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        while self.written < self.bytes.len() {
            let n = ready!(Pin::new(&mut *io).poll_write(cx, &self.bytes[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        Poll::Ready(Ok(self.replaces))
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
