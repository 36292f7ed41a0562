//! HTTP/1.1 connections: one exchange at a time, reused after it (keep-alive, `POOL-1`).
//!
//! # Returning a connection without wrapping the response body
//!
//! The response must stay `Response<hyper::body::Incoming>`, so the pool cannot learn from the body
//! when an exchange ends. hyper's `SendRequest` can: it turns ready again exactly when the
//! connection can take the next request (response body read to its end, request body sent).
//! Each connection already has a task driving hyper's `Connection`; that task also watches the
//! readiness. Right after handing the request to hyper, the caller *parks* the `SendRequest` in the
//! connection's [`H1Link`]; the task polls `poll_ready` on it alongside the connection (the same
//! task makes it ready, so no extra wake-up is needed) and, once ready, gives it to the first
//! waiter or the idle list. This costs no task spawn per request (hyper-util's legacy client spawns
//! one) and no body wrapper; the park is one uncontended lock. The same task runs the idle timer
//! (`POOL-3`), re-armed only when it fires, never per request.
//!
//! # The response-head deadline without a timer per request
//!
//! A caller's deadline for the response head (`TMO-2`) travels with the parked sender. The
//! connection's one timer is moved earlier only when the deadline comes before its current
//! expiry; otherwise it fires early and is re-armed then. With a fixed timeout, each request's
//! deadline comes after the previous one's, so the timer is re-armed about once per timeout period
//! per connection instead of registered and cancelled for every request (a lock, a wheel insert
//! and a removal). The caller flags the head's arrival in the [`H1Link`]; when the deadline passes
//! first, the task marks the link timed out and drops the connection, which fails the exchange,
//! and the caller reports `ResponseHeaderTimeout`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Waker};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use reverseit_core::{Error, ErrorKind};
use tokio::time::{Instant, Sleep};

use crate::body::ReqBody;
use crate::connect::Io;
use crate::error::{Failure, exchange_error};
use crate::shard::{IdleCheck, Shard, SlotPermit, next_id};

/// A ready HTTP/1.1 connection, checked out of (or about to join) a shard.
pub(crate) struct H1Conn {
    sender: http1::SendRequest<ReqBody>,
    link: Arc<H1Link>,
}

impl fmt::Debug for H1Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("H1Conn").field("id", &self.link.id).finish()
    }
}

impl H1Conn {
    pub(crate) fn id(&self) -> u64 {
        self.link.id
    }

    /// Whether the connection can take a request now (false once the backend closed it).
    pub(crate) fn is_ready(&self) -> bool {
        self.sender.is_ready()
    }

    /// This connection is being closed to make room for a new one, which takes over its slot.
    pub(crate) fn give_up_slot(&self) {
        self.link.slot_moved.store(true, Ordering::Relaxed);
    }
}

/// What a connection's task shares with the callers using it.
#[derive(Debug)]
pub(crate) struct H1Link {
    id: u64,
    parked: Mutex<Parked>,
    /// Set when a fresh connection took over this one's slot.
    slot_moved: AtomicBool,
    /// Set by the caller once the current exchange's response head arrived (or failed).
    answered: AtomicBool,
    /// Set by the task when it closed the connection because the head missed its deadline.
    timed_out: AtomicBool,
    /// Set when the caller gave the exchange up before its response head (its own timeout, its
    /// client gone): the connection is closed at once, unflushed (see [`Abandon`]).
    abandoned: AtomicBool,
}

#[derive(Debug, Default)]
struct Parked {
    sender: Option<http1::SendRequest<ReqBody>>,
    /// The response-head deadline of the exchange the sender was parked for.
    deadline: Option<Instant>,
    waker: Option<Waker>,
}

impl H1Link {
    /// Hands the sender to the connection task, which returns it to the pool when ready and
    /// closes the connection if the response head misses `deadline`.
    fn park(&self, sender: http1::SendRequest<ReqBody>, deadline: Option<Instant>) {
        self.answered.store(false, Ordering::Relaxed);
        let waker = {
            let mut p = self.parked.lock().unwrap_or_else(PoisonError::into_inner);
            p.sender = Some(sender);
            p.deadline = deadline;
            p.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The parked sender and its deadline, if any. Either way remembers whom to wake: when a
    /// sender is parked, or when the exchange it was parked for is abandoned.
    fn unpark(&self, waker: &Waker) -> Option<(http1::SendRequest<ReqBody>, Option<Instant>)> {
        let mut p = self.parked.lock().unwrap_or_else(PoisonError::into_inner);
        if !p.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            p.waker = Some(waker.clone());
        }
        let sender = p.sender.take()?;
        Some((sender, p.deadline.take()))
    }
}

/// Starts HTTP/1.1 on a new connection: the slot passes to the connection's task.
pub(crate) async fn start(io: Io, permit: SlotPermit) -> Result<H1Conn, Error> {
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| {
            Error::new(ErrorKind::BackendIo)
                .with_message("HTTP/1.1 handshake failed")
                .with_source(e)
        })?;
    let shard = permit.shard().clone();
    let link = Arc::new(H1Link {
        id: next_id(),
        parked: Mutex::new(Parked::default()),
        slot_moved: AtomicBool::new(false),
        answered: AtomicBool::new(false),
        timed_out: AtomicBool::new(false),
        abandoned: AtomicBool::new(false),
    });
    permit.commit_h1();
    tokio::spawn(H1Task {
        idle_timer: tokio::time::sleep(shard.max_idle),
        timer_registered: false,
        conn,
        parked: None,
        deadline: None,
        exit: Exit {
            shard: Arc::downgrade(&shard),
            link: link.clone(),
        },
    });
    Ok(H1Conn { sender, link })
}

/// Sends one request; `reused` says whether the connection served before (`ERR-3`). Without
/// its response head by `deadline`, the connection is closed and the exchange fails with
/// `ResponseHeaderTimeout` (`TMO-2`).
pub(crate) async fn send(
    conn: H1Conn,
    req: Request<ReqBody>,
    reused: bool,
    deadline: Option<Instant>,
) -> Result<Response<Incoming>, Failure> {
    let H1Conn { mut sender, link } = conn;
    // The returned future does not borrow the sender: park it at once (see the module docs).
    let response = sender.try_send_request(req);
    link.park(sender, deadline);
    let abandon = Abandon(&link);
    let result = response.await;
    std::mem::forget(abandon);
    link.answered.store(true, Ordering::Relaxed);
    match result {
        Ok(r) => Ok(r),
        Err(mut e) => match e.take_message() {
            // Never written: safe to send elsewhere, whatever the method.
            Some(req) => Err(Failure::Unsent(Box::new((req, e.into_error())))),
            None if link.timed_out.load(Ordering::Relaxed) => Err(Failure::Failed(
                Error::new(ErrorKind::ResponseHeaderTimeout).with_source(e.into_error()),
            )),
            None => Err(Failure::Failed(exchange_error(e.into_error(), reused))),
        },
    }
}

/// Marks the exchange abandoned when the caller drops it before its response head.
///
/// hyper would then close the connection itself, but only after flushing what it buffered of the
/// request body: toward a backend that stopped reading, that never ends, and the connection, its
/// socket and its pool slot would be held until the process exits. Nothing of the exchange is
/// wanted any more, so the connection's task drops it unflushed instead.
struct Abandon<'a>(&'a H1Link);

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        self.0.abandoned.store(true, Ordering::Relaxed);
        // hyper wakes the task too (its response channel closed), but that wake-up is hyper's
        // business; this one is the pool's own.
        let waker = self
            .0
            .parked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .waker
            .take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

pin_project_lite::pin_project! {
    /// Drives one connection, returns its sender to the shard when ready, closes it when idle too
    /// long.
    struct H1Task {
        #[pin]
        conn: http1::Connection<TokioIo<Io>, ReqBody>,
        #[pin]
        idle_timer: Sleep,
        // Whether `idle_timer` was polled since its last (re)arming, so it will wake the task.
        timer_registered: bool,
        parked: Option<http1::SendRequest<ReqBody>>,
        // The response-head deadline of the exchange in flight, until its sender is ready again.
        deadline: Option<Instant>,
        // Last: settles the shard's counts after the connection is dropped (socket closed).
        exit: Exit,
    }
}

impl Future for H1Task {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        if this.exit.link.abandoned.load(Ordering::Relaxed) {
            // Abandoned before its response head (see `Abandon`): closed unflushed.
            return Poll::Ready(());
        }
        if let Poll::Ready(r) = this.conn.poll(cx) {
            if let Err(e) = r {
                tracing::debug!(error = %e, "backend HTTP/1.1 connection ended");
            }
            return Poll::Ready(());
        }
        if this.parked.is_none()
            && let Some((sender, deadline)) = this.exit.link.unpark(cx.waker())
        {
            *this.parked = Some(sender);
            *this.deadline = deadline;
            if let Some(d) = deadline
                && d < this.idle_timer.deadline()
            {
                // Only when the deadline is earlier than the timer's expiry (see the module docs).
                this.idle_timer.as_mut().reset(d);
                *this.timer_registered = false;
            }
        }
        if let Some(sender) = this.parked.as_mut() {
            match sender.poll_ready(cx) {
                Poll::Ready(Ok(())) => {
                    *this.deadline = None;
                    let sender = this.parked.take().expect("invariant: matched Some above");
                    let Some(shard) = this.exit.shard.upgrade() else {
                        return Poll::Ready(()); // the pool is gone
                    };
                    shard.h1_put(H1Conn {
                        sender,
                        link: this.exit.link.clone(),
                    });
                }
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Pending => {}
            }
        }
        // The timer already holds this task's waker once registered; polling it again on every
        // wake-up (two per exchange) would only re-register the same waker.
        if !*this.timer_registered || this.idle_timer.is_elapsed() {
            while this.idle_timer.as_mut().poll(cx).is_ready() {
                let now = Instant::now();
                // The head's deadline matters until the caller saw the head (or its failure).
                let head_due = this
                    .deadline
                    .filter(|_| !this.exit.link.answered.load(Ordering::Relaxed));
                if head_due.is_some_and(|d| d <= now) {
                    tracing::debug!("backend response head missed its deadline; closing");
                    this.exit.link.timed_out.store(true, Ordering::Relaxed);
                    return Poll::Ready(());
                }
                let Some(shard) = this.exit.shard.upgrade() else {
                    return Poll::Ready(());
                };
                let idle_until = match shard.h1_idle_check(this.exit.link.id, now) {
                    IdleCheck::Close => return Poll::Ready(()),
                    IdleCheck::Until(t) => t,
                };
                let next = head_due.map_or(idle_until, |d| d.min(idle_until));
                this.idle_timer.as_mut().reset(next);
            }
            *this.timer_registered = true;
        }
        Poll::Pending
    }
}

struct Exit {
    shard: Weak<Shard>,
    link: Arc<H1Link>,
}

impl Drop for Exit {
    fn drop(&mut self) {
        if let Some(shard) = self.shard.upgrade() {
            let owns_slot = !self.link.slot_moved.load(Ordering::Relaxed);
            shard.h1_closed(self.link.id, owns_slot);
        }
    }
}
