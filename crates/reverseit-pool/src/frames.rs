//! Watches the frames of an HTTP/2 connection to learn what hyper does not tell: the server's
//! `SETTINGS_MAX_CONCURRENT_STREAMS`, how many streams are open, when the first `SETTINGS` arrived,
//! and `GOAWAY`.
//!
//! hyper's HTTP/2 `SendRequest` queues requests above the server's stream limit inside the
//! connection, and the stream stays open after the response head while its body streams. To open
//! a second connection exactly when every connection is at its limit (`POOL-4`) the pool must count
//! open streams, so this adapter sits between the socket (or TLS) and hyper and reads frame
//! headers as bytes pass (RFC 9113 §4.1): 9 bytes per frame, no copies, no allocation besides one
//! map entry per open stream. Payloads are only read for `SETTINGS` and `GOAWAY`.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Streams a client may open before the server's first `SETTINGS` says otherwise; also the limit
/// h2 keeps when the server's `SETTINGS` omit the parameter. hyper's own default, set explicitly
/// on the connection so both sides of this count agree.
pub(crate) const INITIAL_MAX_STREAMS: usize = 100;

/// The client connection preface, sent before the first frame (RFC 9113 §3.4).
const PREFACE_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 9;

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
/// `END_STREAM` on DATA and HEADERS; `ACK` on SETTINGS: both bit 0.
const FLAG_END_STREAM_OR_ACK: u8 = 0x1;
const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
const SETTING_LEN: usize = 6;

/// What the watcher has learned, shared with the pool.
#[derive(Debug)]
pub(crate) struct Wire {
    max_streams: AtomicUsize,
    open: AtomicUsize,
    settings_seen: AtomicBool,
    goaway: AtomicBool,
    /// Woken once, when the first SETTINGS arrived or the connection ended.
    pub(crate) changed: Notify,
    ended: AtomicBool,
    base: Instant,
    /// Milliseconds after `base` when the last open stream closed.
    idle_since_ms: AtomicU64,
}

impl Wire {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            max_streams: AtomicUsize::new(INITIAL_MAX_STREAMS),
            open: AtomicUsize::new(0),
            settings_seen: AtomicBool::new(false),
            goaway: AtomicBool::new(false),
            changed: Notify::new(),
            ended: AtomicBool::new(false),
            base: Instant::now(),
            idle_since_ms: AtomicU64::new(0),
        })
    }

    /// The server's current stream limit.
    pub(crate) fn max_streams(&self) -> usize {
        self.max_streams.load(Ordering::Relaxed)
    }

    /// Streams open on the wire (not yet closed in both directions, nor reset).
    pub(crate) fn open_streams(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Whether the server's first SETTINGS frame has been read.
    pub(crate) fn settings_seen(&self) -> bool {
        self.settings_seen.load(Ordering::Acquire)
    }

    /// Whether the server sent GOAWAY: no new stream may go to this connection.
    pub(crate) fn goaway(&self) -> bool {
        self.goaway.load(Ordering::Relaxed)
    }

    /// Whether the connection ended (the watcher was dropped).
    pub(crate) fn ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// When the connection last went without open streams.
    pub(crate) fn idle_since(&self) -> Instant {
        self.base + std::time::Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed))
    }
}

/// An I/O adapter that reports frame events to a [`Wire`].
#[derive(Debug)]
pub(crate) struct FrameWatch<T> {
    io: T,
    wire: Arc<Wire>,
    inbound: Scanner,
    outbound: Scanner,
    /// Client-initiated streams still open, with which halves have ended.
    streams: HashMap<u32, u8>,
}

const LOCAL_END: u8 = 1;
const REMOTE_END: u8 = 2;

impl<T> FrameWatch<T> {
    pub(crate) fn new(io: T, wire: Arc<Wire>) -> Self {
        Self {
            io,
            wire,
            inbound: Scanner::new(0),
            outbound: Scanner::new(PREFACE_LEN),
            streams: HashMap::new(),
        }
    }

    fn saw(&mut self, bytes: &[u8], outbound: bool) {
        let Self {
            wire,
            inbound,
            outbound: out_scanner,
            streams,
            ..
        } = self;
        let before = streams.len();
        let scanner = if outbound { out_scanner } else { inbound };
        scanner.feed(bytes, |ev| apply(wire, streams, ev, outbound));
        let after = streams.len();
        if after != before {
            wire.open.store(after, Ordering::Relaxed);
            if after == 0 {
                let ms = wire.base.elapsed().as_millis() as u64;
                wire.idle_since_ms.store(ms, Ordering::Relaxed);
            }
        }
    }
}

fn apply(wire: &Wire, streams: &mut HashMap<u32, u8>, ev: Event, outbound: bool) {
    let half = if outbound { LOCAL_END } else { REMOTE_END };
    match ev {
        Event::Headers { stream, end } | Event::Data { stream, end } => {
            // Client streams are odd (RFC 9113 §5.1.1); only our HEADERS open one.
            if stream % 2 == 0 {
                return;
            }
            let state = if outbound && matches!(ev, Event::Headers { .. }) {
                streams.entry(stream).or_insert(0)
            } else if let Some(s) = streams.get_mut(&stream) {
                s
            } else {
                return;
            };
            if end {
                *state |= half;
                if *state == LOCAL_END | REMOTE_END {
                    streams.remove(&stream);
                }
            }
        }
        Event::Reset { stream } => {
            streams.remove(&stream);
        }
        Event::Setting { id, value } if !outbound && id == SETTINGS_MAX_CONCURRENT_STREAMS => {
            wire.max_streams.store(value as usize, Ordering::Relaxed);
        }
        Event::Setting { .. } => {}
        Event::SettingsDone if !outbound => {
            if !wire.settings_seen.swap(true, Ordering::AcqRel) {
                wire.changed.notify_waiters();
            }
        }
        Event::SettingsDone => {}
        Event::GoAway { last_stream } if !outbound => {
            wire.goaway.store(true, Ordering::Relaxed);
            // Streams above the last one the server will process are refused (RFC 9113 §6.8).
            streams.retain(|&id, _| id <= last_stream);
        }
        Event::GoAway { .. } => {}
    }
}

impl<T> Drop for FrameWatch<T> {
    fn drop(&mut self) {
        self.wire.ended.store(true, Ordering::Release);
        self.wire.open.store(0, Ordering::Relaxed);
        self.wire.changed.notify_waiters();
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FrameWatch<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let start = buf.filled().len();
        ready!(Pin::new(&mut self.io).poll_read(cx, buf))?;
        self.saw(&buf.filled()[start..], false);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FrameWatch<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.io).poll_write(cx, buf))?;
        self.saw(&buf[..n], true);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, bufs))?;
        let mut left = n;
        for b in bufs {
            if left == 0 {
                break;
            }
            let take = left.min(b.len());
            self.saw(&b[..take], true);
            left -= take;
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A frame event of interest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Headers {
        stream: u32,
        end: bool,
    },
    Data {
        stream: u32,
        end: bool,
    },
    Reset {
        stream: u32,
    },
    Setting {
        id: u16,
        value: u32,
    },
    /// A complete SETTINGS frame (not an ACK).
    SettingsDone,
    GoAway {
        last_stream: u32,
    },
}

/// Splits one direction's byte stream into frames, across reads of any size.
#[derive(Debug)]
struct Scanner {
    /// Bytes still to pass before the first frame (the client preface).
    skip: usize,
    head: [u8; FRAME_HEADER_LEN],
    head_len: usize,
    /// Payload bytes of the current frame not seen yet.
    remaining: usize,
    kind: u8,
    flags: u8,
    /// Payload bytes collected for SETTINGS entries or the GOAWAY last-stream id.
    acc: [u8; SETTING_LEN],
    acc_len: usize,
    /// Whether the current frame's payload is collected at all.
    collect: bool,
}

impl Scanner {
    fn new(skip: usize) -> Self {
        Self {
            skip,
            head: [0; FRAME_HEADER_LEN],
            head_len: 0,
            remaining: 0,
            kind: 0,
            flags: 0,
            acc: [0; SETTING_LEN],
            acc_len: 0,
            collect: false,
        }
    }

    fn feed(&mut self, mut bytes: &[u8], mut on: impl FnMut(Event)) {
        if self.skip > 0 {
            let n = self.skip.min(bytes.len());
            self.skip -= n;
            bytes = &bytes[n..];
        }
        while !bytes.is_empty() {
            if self.remaining == 0 && self.head_len < FRAME_HEADER_LEN {
                let n = (FRAME_HEADER_LEN - self.head_len).min(bytes.len());
                self.head[self.head_len..self.head_len + n].copy_from_slice(&bytes[..n]);
                self.head_len += n;
                bytes = &bytes[n..];
                if self.head_len == FRAME_HEADER_LEN {
                    self.start_frame(&mut on);
                }
                continue;
            }
            let n = self.remaining.min(bytes.len());
            if self.collect {
                self.payload(&bytes[..n], &mut on);
            }
            self.remaining -= n;
            bytes = &bytes[n..];
            if self.remaining == 0 {
                self.end_frame(&mut on);
            }
        }
    }

    fn start_frame(&mut self, on: &mut impl FnMut(Event)) {
        let h = self.head;
        let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
        self.kind = h[3];
        self.flags = h[4];
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        let end = self.flags & FLAG_END_STREAM_OR_ACK != 0;
        match self.kind {
            DATA => on(Event::Data { stream, end }),
            HEADERS => on(Event::Headers { stream, end }),
            RST_STREAM => on(Event::Reset { stream }),
            _ => {}
        }
        self.collect = matches!(self.kind, SETTINGS if !end) || self.kind == GOAWAY;
        self.acc_len = 0;
        self.remaining = len;
        if len == 0 {
            self.end_frame(on);
        }
    }

    fn payload(&mut self, mut bytes: &[u8], on: &mut impl FnMut(Event)) {
        match self.kind {
            SETTINGS => {
                while !bytes.is_empty() {
                    let n = (SETTING_LEN - self.acc_len).min(bytes.len());
                    self.acc[self.acc_len..self.acc_len + n].copy_from_slice(&bytes[..n]);
                    self.acc_len += n;
                    bytes = &bytes[n..];
                    if self.acc_len == SETTING_LEN {
                        let a = self.acc;
                        on(Event::Setting {
                            id: u16::from_be_bytes([a[0], a[1]]),
                            value: u32::from_be_bytes([a[2], a[3], a[4], a[5]]),
                        });
                        self.acc_len = 0;
                    }
                }
            }
            _ => {
                // GOAWAY: only the last-stream id, the first 4 payload bytes.
                let n = (4usize.saturating_sub(self.acc_len)).min(bytes.len());
                self.acc[self.acc_len..self.acc_len + n].copy_from_slice(&bytes[..n]);
                self.acc_len += n;
            }
        }
    }

    fn end_frame(&mut self, on: &mut impl FnMut(Event)) {
        if self.collect {
            match self.kind {
                SETTINGS => on(Event::SettingsDone),
                _ if self.acc_len >= 4 => {
                    let a = self.acc;
                    let last_stream = u32::from_be_bytes([a[0], a[1], a[2], a[3]]) & 0x7fff_ffff;
                    on(Event::GoAway { last_stream });
                }
                _ => {}
            }
        }
        self.collect = false;
        self.head_len = 0;
    }
}

#[cfg(test)]
mod tests;
