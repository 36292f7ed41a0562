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
}

#[derive(Debug, Default)]
struct Parked {
    sender: Option<http1::SendRequest<ReqBody>>,
    waker: Option<Waker>,
}

impl H1Link {
    /// Hands the sender to the connection task, which returns it to the pool when ready.
    fn park(&self, sender: http1::SendRequest<ReqBody>) {
        let waker = {
            let mut p = self.parked.lock().unwrap_or_else(PoisonError::into_inner);
            p.sender = Some(sender);
            p.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The parked sender, if any; otherwise remembers whom to wake when one is parked.
    fn unpark(&self, waker: &Waker) -> Option<http1::SendRequest<ReqBody>> {
        let mut p = self.parked.lock().unwrap_or_else(PoisonError::into_inner);
        let s = p.sender.take();
        if s.is_none() && !p.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            p.waker = Some(waker.clone());
        }
        s
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
    });
    permit.commit_h1();
    tokio::spawn(H1Task {
        idle_timer: tokio::time::sleep(shard.max_idle),
        timer_registered: false,
        conn,
        parked: None,
        exit: Exit {
            shard: Arc::downgrade(&shard),
            link: link.clone(),
        },
    });
    Ok(H1Conn { sender, link })
}

/// Sends one request; `reused` says whether the connection served before (`ERR-3`).
pub(crate) async fn send(
    conn: H1Conn,
    req: Request<ReqBody>,
    reused: bool,
) -> Result<Response<Incoming>, Failure> {
    let H1Conn { mut sender, link } = conn;
    // The returned future does not borrow the sender: park it at once (see the module docs).
    let response = sender.try_send_request(req);
    link.park(sender);
    match response.await {
        Ok(r) => Ok(r),
        Err(mut e) => match e.take_message() {
            // Never written: safe to send elsewhere, whatever the method.
            Some(req) => Err(Failure::Unsent(Box::new((req, e.into_error())))),
            None => Err(Failure::Failed(exchange_error(e.into_error(), reused))),
        },
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
        // Last: settles the shard's counts after the connection is dropped (socket closed).
        exit: Exit,
    }
}

impl Future for H1Task {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        if let Poll::Ready(r) = this.conn.poll(cx) {
            if let Err(e) = r {
                tracing::debug!(error = %e, "backend HTTP/1.1 connection ended");
            }
            return Poll::Ready(());
        }
        if this.parked.is_none() {
            *this.parked = this.exit.link.unpark(cx.waker());
        }
        if let Some(sender) = this.parked.as_mut() {
            match sender.poll_ready(cx) {
                Poll::Ready(Ok(())) => {
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
                let Some(shard) = this.exit.shard.upgrade() else {
                    return Poll::Ready(());
                };
                match shard.h1_idle_check(this.exit.link.id, Instant::now()) {
                    IdleCheck::Close => return Poll::Ready(()),
                    IdleCheck::Until(t) => this.idle_timer.as_mut().reset(t),
                }
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
