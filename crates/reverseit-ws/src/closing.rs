//! The closing phase: each side gets its close frame, both closing handshakes run, both
//! connections are shut down, all under one deadline.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::relay::Lane;

/// Bytes the proxy reads and discards from a side it can no longer parse, after its close frame,
/// while waiting for that side to close: closing a TCP connection with unread data sends a reset,
/// which can destroy the close frame still in flight (RFC 6455 §7.1.1).
const LINGER_LIMIT: usize = 1 << 20;

/// Scratch buffer for that discarding, allocated only when needed.
const LINGER_CHUNK: usize = 2048;

/// Close code reported for a close frame without a code (RFC 6455 §7.4.1: "no status received").
const NO_STATUS: u16 = 1005;

/// Messages read from a side being drained before the task lets others run.
const DRAIN_BUDGET: usize = 32;

/// Where one side is in its closing.
#[derive(Debug)]
enum Stage {
    /// Hand over what is queued toward this side, then send the close frame.
    Deliver,
    /// Send the close frame.
    SendClose,
    /// Write out the close frame (ours, or tungstenite's echo of the side's own).
    Flush,
    /// Read until the side's close frame and the end of its stream, discarding messages.
    Drain,
    /// Shut down our half of the connection.
    Shutdown,
    /// Discard raw bytes until the side closes its half.
    Linger,
    Done,
}

/// The closing of one side.
#[derive(Debug)]
pub(crate) struct SideClose {
    stage: Stage,
    /// The close frame to send, for `Deliver` and `SendClose`.
    frame: Option<CloseFrame>,
    /// The stream can still be parsed (reading it did not fail).
    readable: bool,
    /// The code of the close frame this side got.
    code: Option<u16>,
    linger_buf: Option<Box<[u8]>>,
    lingered: usize,
}

impl SideClose {
    fn new(stage: Stage, frame: Option<CloseFrame>, readable: bool, code: Option<u16>) -> Self {
        Self {
            stage,
            frame,
            readable,
            code,
            linger_buf: None,
            lingered: 0,
        }
    }

    /// The side sent `frame`: tungstenite already queued the same frame back as its answer.
    pub(crate) fn initiator(frame: &Option<CloseFrame>) -> Self {
        Self::new(Stage::Flush, None, true, Some(code_of(frame)))
    }

    /// The side gets `frame` after the messages queued toward it (a close forwarded from the other
    /// side, `WS-6`).
    pub(crate) fn forward(frame: Option<CloseFrame>) -> Self {
        let code = code_of(&frame);
        Self::new(Stage::Deliver, frame, true, Some(code))
    }

    /// The proxy closes the side with `frame`; `None` when the side is gone. `readable` is false when
    /// reading the side failed.
    pub(crate) fn proxy(frame: Option<CloseFrame>, readable: bool) -> Self {
        match frame {
            Some(frame) => {
                let code = Some(frame.code.into());
                Self::new(Stage::SendClose, Some(frame), readable, code)
            }
            None => Self::new(Stage::Done, None, false, None),
        }
    }

    /// The code of the close frame this side got, if one was sent.
    pub(crate) fn code(&self) -> Option<u16> {
        self.code
    }

    /// Drives this side's closing; `lane` holds the messages queued toward it.
    pub(crate) fn poll_close<S>(
        &mut self,
        cx: &mut Context<'_>,
        ws: &mut WebSocketStream<S>,
        lane: &mut Lane,
    ) -> Poll<()>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        loop {
            match self.stage {
                Stage::Deliver => match lane.poll_deliver(cx, ws) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(())) => self.stage = Stage::SendClose,
                    Poll::Ready(Err(_)) => self.gone(),
                },
                Stage::SendClose => {
                    // Flushed first: tungstenite writes a pending automatic pong after a close frame
                    // buffered with it, and a peer that already read the close rejects that pong.
                    let ready = match Pin::new(&mut *ws).poll_flush(cx) {
                        Poll::Ready(Ok(())) => Pin::new(&mut *ws).poll_ready(cx),
                        other => other,
                    };
                    match ready {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(_)) => self.gone(),
                        Poll::Ready(Ok(())) => {
                            let frame = self.frame.take();
                            match Pin::new(&mut *ws).start_send(Message::Close(frame)) {
                                Ok(()) => self.stage = Stage::Flush,
                                Err(_) => self.gone(),
                            }
                        }
                    }
                }
                Stage::Flush => match Pin::new(&mut *ws).poll_flush(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(())) if self.readable => self.stage = Stage::Drain,
                    Poll::Ready(Ok(())) => self.stage = Stage::Shutdown,
                    Poll::Ready(Err(_)) => self.stage = Stage::Shutdown,
                },
                Stage::Drain => {
                    let mut budget = DRAIN_BUDGET;
                    loop {
                        match Pin::new(&mut *ws).poll_next(cx) {
                            Poll::Pending => return Poll::Pending,
                            Poll::Ready(Some(Ok(_))) if budget > 0 => budget -= 1,
                            Poll::Ready(Some(Ok(_))) => {
                                cx.waker().wake_by_ref();
                                return Poll::Pending;
                            }
                            Poll::Ready(Some(Err(_)) | None) => break,
                        }
                    }
                    self.stage = Stage::Shutdown;
                }
                Stage::Shutdown => match Pin::new(ws.get_mut()).poll_shutdown(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(_) if self.readable => self.stage = Stage::Done,
                    Poll::Ready(_) => self.stage = Stage::Linger,
                },
                Stage::Linger => {
                    let buf = self
                        .linger_buf
                        .get_or_insert_with(|| vec![0; LINGER_CHUNK].into_boxed_slice());
                    let mut read = ReadBuf::new(buf);
                    match Pin::new(ws.get_mut()).poll_read(cx, &mut read) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(())) if !read.filled().is_empty() => {
                            self.lingered += read.filled().len();
                            if self.lingered > LINGER_LIMIT {
                                self.stage = Stage::Done;
                            }
                        }
                        Poll::Ready(_) => self.stage = Stage::Done,
                    }
                }
                Stage::Done => {
                    self.linger_buf = None;
                    return Poll::Ready(());
                }
            }
        }
    }

    /// The connection broke while closing: nothing more can be sent or read.
    fn gone(&mut self) {
        if matches!(self.stage, Stage::Deliver | Stage::SendClose) {
            self.code = None;
        }
        self.stage = Stage::Done;
    }
}

fn code_of(frame: &Option<CloseFrame>) -> u16 {
    frame.as_ref().map_or(NO_STATUS, |f| f.code.into())
}
