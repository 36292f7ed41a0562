//! The relay phase: messages flow both ways, with back-pressure, until a side closes or fails.
//!
//! One task drives both directions: each poll hands queued messages to their destination, reads
//! from a source only while the queue toward the other side has room, and flushes a destination once
//! its source has nothing more ready. No channel, no second task: a connection costs one future.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Sink, Stream};
use reverseit_core::ErrorKind;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::futures::Notified;
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::failure::Failure;
use crate::outcome::Side;
use crate::shutdown::Shutdown;

/// Messages a lane reads from its source in one poll before letting the other lane and the rest of
/// the runtime run.
const LANE_BUDGET: usize = 32;

/// How the relay phase ended.
#[derive(Debug)]
pub(crate) enum End {
    /// `by` sent a close frame (already answered by tungstenite with the same frame).
    Closed { by: Side, frame: Option<CloseFrame> },
    /// The proxy ends the session.
    Failed(Failure),
}

/// The limits of a lane's queue (`WS-11`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) pending_bytes: usize,
    pub(crate) pending_frames: usize,
}

/// Messages flowing one way, from a source side to a destination side.
#[derive(Debug, Default)]
pub(crate) struct Lane {
    /// Read from the source, not yet accepted by the destination's sink.
    pub(crate) queue: VecDeque<Message>,
    queued_bytes: usize,
    /// Messages were handed to the destination since its last flush.
    unflushed: bool,
    /// The source sent a ping: tungstenite queued its automatic pong, which must be flushed even if
    /// the lane stops reading.
    pong_owed: bool,
    /// Messages handed to the destination.
    pub(crate) relayed: u64,
    /// Payloads of pings relayed to the destination whose pong it has not sent yet: that pong is not
    /// relayed back, because tungstenite already answered the pinger (`WS-5`).
    pings_in_flight: VecDeque<Bytes>,
}

impl Lane {
    fn push(&mut self, message: Message) {
        self.queued_bytes += message.len();
        self.queue.push_back(message);
    }

    /// The queue is at its limit: stop reading from the source (back-pressure).
    fn is_full(&self, limits: Limits) -> bool {
        self.queue.len() >= limits.pending_frames || self.queued_bytes >= limits.pending_bytes
    }

    /// Hands queued messages to `dst` while it accepts them.
    pub(crate) fn poll_deliver<D>(
        &mut self,
        cx: &mut Context<'_>,
        dst: &mut WebSocketStream<D>,
    ) -> Poll<Result<(), WsError>>
    where
        D: AsyncRead + AsyncWrite + Unpin,
    {
        while !self.queue.is_empty() {
            match Pin::new(&mut *dst).poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
            let Some(message) = self.queue.pop_front() else {
                break;
            };
            self.queued_bytes -= message.len();
            Pin::new(&mut *dst).start_send(message)?;
            self.unflushed = true;
            self.relayed += 1;
        }
        Poll::Ready(Ok(()))
    }

    /// Flushes `dst` if messages were handed to it.
    pub(crate) fn poll_flush<D>(
        &mut self,
        cx: &mut Context<'_>,
        dst: &mut WebSocketStream<D>,
    ) -> Poll<Result<(), WsError>>
    where
        D: AsyncRead + AsyncWrite + Unpin,
    {
        if self.unflushed {
            match Pin::new(&mut *dst).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// Both lanes, the idle timer and the shutdown signal.
pub(crate) struct Relay<'a, 's, C, B> {
    pub(crate) client: &'a mut WebSocketStream<C>,
    pub(crate) backend: &'a mut WebSocketStream<B>,
    pub(crate) to_backend: &'a mut Lane,
    pub(crate) to_client: &'a mut Lane,
    pub(crate) limits: Limits,
    pub(crate) idle_timeout: std::time::Duration,
    pub(crate) idle: Pin<&'a mut Sleep>,
    pub(crate) last_frame: Instant,
    pub(crate) shutdown: &'s Shutdown,
    pub(crate) stop: Pin<&'a mut Notified<'s>>,
}

impl<C, B> Relay<'_, '_, C, B>
where
    C: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    /// Relays until a side closes or the session fails.
    pub(crate) fn poll_relay(&mut self, cx: &mut Context<'_>) -> Poll<End> {
        // Polled (so registered) before the flag is read: a trigger in between is seen either way.
        if self.stop.as_mut().poll(cx).is_ready() || self.shutdown.is_triggered() {
            return Poll::Ready(End::Failed(Failure::proxy(ErrorKind::Shutdown, None)));
        }
        let mut active = false;
        let c2b = poll_lane(
            cx,
            Side::Client,
            self.client,
            self.backend,
            self.to_backend,
            self.to_client,
            self.limits,
            &mut active,
        );
        let end = match c2b {
            Poll::Ready(end) => Poll::Ready(end),
            Poll::Pending => poll_lane(
                cx,
                Side::Backend,
                self.backend,
                self.client,
                self.to_client,
                self.to_backend,
                self.limits,
                &mut active,
            ),
        };
        if end.is_ready() {
            return end;
        }
        // One clock read per wake-up with traffic, not one timer reset per message.
        if active {
            self.last_frame = Instant::now();
        }
        while self.idle.as_mut().poll(cx).is_ready() {
            let deadline = crate::bridge::deadline(self.last_frame, self.idle_timeout);
            if deadline <= Instant::now() {
                return Poll::Ready(End::Failed(Failure::proxy(ErrorKind::WebSocketIdle, None)));
            }
            self.idle.as_mut().reset(deadline);
        }
        Poll::Pending
    }
}

/// Drives one direction: `src` → `lane` → `dst`. `back` is the opposite lane, whose pings `src`
/// answers with its pongs.
#[allow(clippy::too_many_arguments)]
fn poll_lane<S, D>(
    cx: &mut Context<'_>,
    from: Side,
    src: &mut WebSocketStream<S>,
    dst: &mut WebSocketStream<D>,
    lane: &mut Lane,
    back: &mut Lane,
    limits: Limits,
    active: &mut bool,
) -> Poll<End>
where
    S: AsyncRead + AsyncWrite + Unpin,
    D: AsyncRead + AsyncWrite + Unpin,
{
    let to = from.other();
    let mut budget = LANE_BUDGET;
    loop {
        if let Poll::Ready(Err(e)) = lane.poll_deliver(cx, dst) {
            return Poll::Ready(End::Failed(Failure::write(to, e)));
        }
        if lane.is_full(limits) {
            break;
        }
        if budget == 0 {
            // More may be ready: come back after the others had their turn.
            cx.waker().wake_by_ref();
            break;
        }
        budget -= 1;
        let message = match Pin::new(&mut *src).poll_next(cx) {
            Poll::Pending => break,
            Poll::Ready(Some(Ok(message))) => message,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(End::Failed(Failure::read(from, e))),
            Poll::Ready(None) => return Poll::Ready(End::Failed(Failure::dropped(from))),
        };
        *active = true;
        match message {
            Message::Close(frame) => return Poll::Ready(End::Closed { by: from, frame }),
            Message::Ping(payload) => {
                lane.pong_owed = true;
                // Remembering each relayed ping is the one queue back-pressure cannot bound: the
                // pinger is read for its data while its pongs wait behind data it does not read.
                if lane.pings_in_flight.len() >= limits.pending_frames {
                    let failure = Failure::proxy(ErrorKind::WebSocketQueueFull, Some(from));
                    return Poll::Ready(End::Failed(failure));
                }
                lane.pings_in_flight.push_back(payload.clone());
                lane.push(Message::Ping(payload));
            }
            Message::Pong(payload) => {
                // A pong answering a ping we relayed to `src`: the pinger already had its pong.
                // RFC 6455 §5.5.3 lets a peer answer only the latest of several pings, so one pong
                // settles every older ping too.
                if let Some(i) = back.pings_in_flight.iter().position(|p| *p == payload) {
                    back.pings_in_flight.drain(..=i);
                } else {
                    lane.push(Message::Pong(payload));
                }
            }
            message => lane.push(message),
        }
    }
    // Nothing more to read right now (or the queue is full): write out what was handed over.
    if let Poll::Ready(Err(e)) = lane.poll_flush(cx, dst) {
        return Poll::Ready(End::Failed(Failure::write(to, e)));
    }
    if lane.pong_owed {
        match Pin::new(&mut *src).poll_flush(cx) {
            Poll::Ready(Ok(())) => lane.pong_owed = false,
            Poll::Ready(Err(e)) => return Poll::Ready(End::Failed(Failure::write(from, e))),
            Poll::Pending => {}
        }
    }
    Poll::Pending
}
