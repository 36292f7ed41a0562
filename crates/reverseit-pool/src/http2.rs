//! HTTP/2 connections, shared by concurrent requests up to the server's stream limit (`POOL-4`).
//!
//! A connection's load is the larger of the requests handed to it still waiting for their response
//! head (counted here, exactly) and the streams open on the wire (counted by
//! [`FrameWatch`](crate::frames)); a stream stays counted while its response body streams. The
//! limit is the server's `SETTINGS_MAX_CONCURRENT_STREAMS`: a new connection counts as open only
//! once the server's first `SETTINGS` arrived, so the limit is known before requests are spread.
//!
//! A connection that the server closes or sends `GOAWAY` on stops taking streams at once; requests
//! hyper hands back unsent go to another connection, and streams the server refused
//! (`REFUSED_STREAM`, or above a `GOAWAY`'s last stream) fail with a retryable error, since the
//! server guarantees it did not process them (RFC 9113 §8.7).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use reverseit_core::{Error, ErrorKind};
use tokio::time::{Instant, Sleep};

use crate::body::ReqBody;
use crate::connect::{Io, timeout_error};
use crate::error::{Failure, exchange_error};
use crate::frames::{FrameWatch, INITIAL_MAX_STREAMS, Wire};
use crate::shard::{IdleCheck, Shard, SlotPermit, next_id};
use crate::target::TargetInner;

type Conn = http2::Connection<TokioIo<FrameWatch<Io>>, ReqBody, TokioExecutor>;

/// One shared HTTP/2 connection.
pub(crate) struct H2Conn {
    pub(crate) id: u64,
    sender: http2::SendRequest<ReqBody>,
    pub(crate) wire: Arc<Wire>,
    /// Requests dispatched here still waiting for their response head.
    awaiting: AtomicUsize,
    /// Whether a stream was already reserved here (the first goes to the caller that opened it).
    used: AtomicBool,
}

impl fmt::Debug for H2Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("H2Conn")
            .field("id", &self.id)
            .field("occupancy", &self.occupancy())
            .field("max_streams", &self.max_streams())
            .finish()
    }
}

impl H2Conn {
    /// Streams in use or about to be.
    pub(crate) fn occupancy(&self) -> usize {
        self.awaiting
            .load(Ordering::Relaxed)
            .max(self.wire.open_streams())
    }

    pub(crate) fn max_streams(&self) -> usize {
        self.wire.max_streams()
    }

    /// Whether new streams may go here.
    pub(crate) fn usable(&self) -> bool {
        !self.sender.is_closed() && !self.wire.goaway() && !self.wire.ended()
    }

    /// Counts one more request; returns whether the connection served before.
    pub(crate) fn reserve(&self) -> bool {
        self.awaiting.fetch_add(1, Ordering::Relaxed);
        self.used.swap(true, Ordering::Relaxed)
    }
}

/// Starts HTTP/2 on a new connection and waits, by `deadline`, for the server's first `SETTINGS`.
/// On success the connection is listed in the shard with one stream reserved for the caller.
pub(crate) async fn start(
    target: &TargetInner,
    io: Io,
    permit: SlotPermit,
    deadline: Instant,
) -> Result<Arc<H2Conn>, Error> {
    let wire = Wire::new();
    let (sender, conn) = http2::Builder::new(TokioExecutor::new())
        .initial_max_send_streams(INITIAL_MAX_STREAMS)
        .handshake(TokioIo::new(FrameWatch::new(io, wire.clone())))
        .await
        .map_err(|e| {
            Error::new(ErrorKind::BackendIo)
                .with_message("HTTP/2 handshake failed")
                .with_source(e)
        })?;
    // hyper's connection reader already runs in its own task; `conn` only dispatches requests,
    // so it can wait unpolled until the server has spoken.
    loop {
        let changed = wire.changed.notified();
        if wire.settings_seen() {
            break;
        }
        if wire.ended() {
            return Err(Error::new(ErrorKind::Connect).with_message(format!(
                "{} closed the connection before its HTTP/2 SETTINGS (does it speak HTTP/2?)",
                target.backend
            )));
        }
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            return Err(timeout_error(target).with_message(format!(
                "{} sent no HTTP/2 SETTINGS within {} ms",
                target.backend,
                target.connect_timeout.as_millis()
            )));
        }
    }
    let shard = permit.shard().clone();
    let h2 = Arc::new(H2Conn {
        id: next_id(),
        sender,
        wire,
        awaiting: AtomicUsize::new(1),
        used: AtomicBool::new(true),
    });
    permit.commit_h2(h2.clone());
    tokio::spawn(H2Task {
        conn,
        idle_timer: tokio::time::sleep(shard.max_idle),
        timer_on: true,
        exit: Exit {
            shard: Arc::downgrade(&shard),
            id: h2.id,
        },
    });
    Ok(h2)
}

/// Sends one request on a stream reserved with [`H2Conn::reserve`].
pub(crate) async fn send(
    conn: Arc<H2Conn>,
    req: Request<ReqBody>,
    reused: bool,
) -> Result<Response<Incoming>, Failure> {
    let _reserved = Reserved(&conn);
    // `try_send_request` needs `&mut`; a clone is two reference counts, cheaper than a lock.
    let response = conn.sender.clone().try_send_request(req);
    match response.await {
        Ok(r) => Ok(r),
        Err(mut e) => match e.take_message() {
            Some(req) => Err(Failure::Unsent(Box::new((req, e.into_error())))),
            None => Err(Failure::Failed(exchange_error(e.into_error(), reused))),
        },
    }
}

/// Releases a reservation when the response head arrived, failed, or its caller went away.
struct Reserved<'a>(&'a H2Conn);

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        self.0.awaiting.fetch_sub(1, Ordering::Relaxed);
    }
}

pin_project_lite::pin_project! {
    /// Drives one connection's request dispatcher and retires the connection when idle too long.
    struct H2Task {
        #[pin]
        conn: Conn,
        #[pin]
        idle_timer: Sleep,
        timer_on: bool,
        exit: Exit,
    }
}

impl Future for H2Task {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        if let Poll::Ready(r) = this.conn.poll(cx) {
            if let Err(e) = r {
                tracing::debug!(error = %e, "backend HTTP/2 connection ended");
            }
            return Poll::Ready(());
        }
        while *this.timer_on && this.idle_timer.as_mut().poll(cx).is_ready() {
            let Some(shard) = this.exit.shard.upgrade() else {
                *this.timer_on = false;
                break;
            };
            match shard.h2_idle_check(this.exit.id, Instant::now()) {
                // Unlisted: the dispatcher ends once the last sender clone is dropped, and the
                // connection closes after its last stream.
                IdleCheck::Close => *this.timer_on = false,
                IdleCheck::Until(t) => this.idle_timer.as_mut().reset(t),
            }
        }
        Poll::Pending
    }
}

struct Exit {
    shard: Weak<Shard>,
    id: u64,
}

impl Drop for Exit {
    fn drop(&mut self) {
        if let Some(shard) = self.shard.upgrade() {
            shard.h2_closed(self.id);
        }
    }
}
