//! One shard of one backend's connections: the HTTP/1.1 idle cache, the FIFO queue of callers
//! waiting for a connection, the shared HTTP/2 connections and the slot count `pool_size` bounds.
//!
//! Everything here runs under one short, uncontended-in-the-common-case `std::sync::Mutex`, never
//! held across an `.await`. A *slot* is a connection that is open or being opened; a caller that
//! finds no idle connection and no free slot waits (FIFO, up to `pool_timeout`) for a *grant*:
//! either a connection someone finished with, or the slot of a connection that closed.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use reverseit_core::{Error, ErrorKind};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use crate::http1::H1Conn;
use crate::http2::H2Conn;
use crate::stats::BackendStats;

/// Ids for connections and waiters, unique in the process.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// One shard's state and limits.
#[derive(Debug)]
pub(crate) struct Shard {
    state: Mutex<State>,
    pub(crate) pool_size: usize,
    pub(crate) max_idle: Duration,
}

#[derive(Debug, Default)]
struct State {
    /// Connections open or being opened: what `pool_size` bounds.
    slots: usize,
    connecting: usize,
    h1_open: usize,
    /// HTTP/1.1 connections ready for a request; the most recently used last (LIFO reuse keeps
    /// the warm connections warm and lets the cold ones reach their idle timeout).
    idle: Vec<IdleH1>,
    waiters: VecDeque<Waiter>,
    h2: Vec<Arc<H2Conn>>,
    /// The HTTP/2 (or not yet negotiated) connection being opened, which concurrent callers wait
    /// for instead of each opening their own.
    attempt: Option<Arc<Attempt>>,
}

#[derive(Debug)]
struct IdleH1 {
    conn: H1Conn,
    since: Instant,
}

#[derive(Debug)]
struct Waiter {
    id: u64,
    tx: oneshot::Sender<Grant>,
}

/// What a waiting caller is given.
#[derive(Debug)]
pub(crate) enum Grant {
    /// An HTTP/1.1 connection that just became ready.
    Conn(H1Conn),
    /// A slot: the caller opens a connection (`connecting` already counts it).
    Slot,
}

/// The result of looking for an HTTP/1.1 connection.
#[derive(Debug)]
pub(crate) enum H1Take {
    Conn(H1Conn),
    Slot(SlotPermit),
    Wait(WaitTicket),
}

/// The result of looking for an HTTP/2 stream.
#[derive(Debug)]
pub(crate) enum H2Take {
    /// A stream is reserved on this connection (`reused`: the connection served before).
    Stream(Arc<H2Conn>, bool),
    /// Another caller is opening a connection: wait for it, then look again.
    Wait(Arc<Attempt>),
    /// Open a connection; concurrent callers wait on the attempt.
    Connect(SlotPermit, Arc<Attempt>),
    /// No slot and no usable HTTP/2 connection: wait like an HTTP/1.1 caller.
    Queue(WaitTicket),
}

impl Shard {
    pub(crate) fn new(pool_size: usize, max_idle: Duration) -> Self {
        Self {
            state: Mutex::new(State::default()),
            pool_size,
            max_idle,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; if something did, the counts are still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    // ---- HTTP/1.1 ----

    /// An idle connection (most recent first), else a slot, else a place in the queue.
    ///
    /// `fresh` skips idle connections (for resending after a failure on a reused one); when the
    /// shard is full it closes the oldest idle connection and takes over its slot.
    pub(crate) fn h1_take(self: &Arc<Self>, fresh: bool) -> H1Take {
        let mut st = self.lock();
        if !fresh {
            while let Some(idle) = st.idle.pop() {
                // A connection the backend closed is never handed out (`POOL-3`); its task
                // settles the counts when it ends.
                if idle.conn.is_ready() {
                    return H1Take::Conn(idle.conn);
                }
            }
        }
        if st.slots < self.pool_size {
            st.slots += 1;
            st.connecting += 1;
            return H1Take::Slot(SlotPermit::new(self.clone()));
        }
        if fresh && !st.idle.is_empty() {
            let oldest = st.idle.remove(0);
            oldest.conn.give_up_slot();
            st.connecting += 1;
            drop(st);
            drop(oldest);
            return H1Take::Slot(SlotPermit::new(self.clone()));
        }
        H1Take::Wait(self.enqueue(st))
    }

    /// Takes back a connection whose exchange finished: to the first waiter, else idle.
    pub(crate) fn h1_put(&self, mut conn: H1Conn) {
        let since = Instant::now();
        let mut st = self.lock();
        while let Some(w) = st.waiters.pop_front() {
            match w.tx.send(Grant::Conn(conn)) {
                Ok(()) => return,
                Err(Grant::Conn(c)) => conn = c,
                Err(Grant::Slot) => unreachable!("invariant: the grant sent was a connection"),
            }
        }
        st.idle.push(IdleH1 { conn, since });
    }

    /// Settles the counts after an HTTP/1.1 connection ended.
    pub(crate) fn h1_closed(&self, id: u64, owns_slot: bool) {
        let mut st = self.lock();
        let gone = st
            .idle
            .iter()
            .position(|i| i.conn.id() == id)
            .map(|at| st.idle.swap_remove(at));
        st.h1_open -= 1;
        if owns_slot {
            release_slot(&mut st);
        }
        drop(st);
        drop(gone);
    }

    /// Called by a connection's idle timer: closes it if idle for `max_idle`, else says when to
    /// check again.
    pub(crate) fn h1_idle_check(&self, id: u64, now: Instant) -> IdleCheck {
        let mut st = self.lock();
        match st.idle.iter().position(|i| i.conn.id() == id) {
            Some(at) if st.idle[at].since + self.max_idle <= now => {
                let gone = st.idle.remove(at);
                drop(st);
                drop(gone);
                IdleCheck::Close
            }
            Some(at) => IdleCheck::Until(st.idle[at].since + self.max_idle),
            None => IdleCheck::Until(now + self.max_idle),
        }
    }

    // ---- HTTP/2 ----

    /// A stream on the least busy HTTP/2 connection below its stream limit; else the pending
    /// attempt; else a slot to open a connection; else (all connections at their limit and no
    /// slot left) the least busy connection anyway, whose stream queue then holds the request.
    pub(crate) fn h2_take(self: &Arc<Self>) -> H2Take {
        let mut st = self.lock();
        st.h2.retain(|c| c.usable());
        let best = st.h2.iter().min_by_key(|c| c.occupancy()).cloned();
        if let Some(c) = &best
            && c.occupancy() < c.max_streams()
        {
            let reused = c.reserve();
            return H2Take::Stream(best.expect("invariant: matched Some above"), reused);
        }
        if let Some(a) = &st.attempt {
            a.waiting.fetch_add(1, Ordering::Relaxed);
            return H2Take::Wait(a.clone());
        }
        if st.slots < self.pool_size {
            st.slots += 1;
            st.connecting += 1;
            let attempt = Arc::new(Attempt::default());
            st.attempt = Some(attempt.clone());
            return H2Take::Connect(SlotPermit::new(self.clone()), attempt);
        }
        if let Some(c) = best {
            let reused = c.reserve();
            return H2Take::Stream(c, reused);
        }
        H2Take::Queue(self.enqueue(st))
    }

    /// Settles the counts after an HTTP/2 connection's dispatcher ended.
    pub(crate) fn h2_closed(&self, id: u64) {
        let mut st = self.lock();
        let at = st.h2.iter().position(|c| c.id == id);
        let gone = at.map(|at| st.h2.swap_remove(at));
        release_slot(&mut st);
        drop(st);
        drop(gone);
    }

    /// Called by an HTTP/2 connection's idle timer: retires it (no new streams; it closes once
    /// its dispatcher drains) if it had no stream for `max_idle`.
    pub(crate) fn h2_idle_check(&self, id: u64, now: Instant) -> IdleCheck {
        let mut st = self.lock();
        let Some(at) = st.h2.iter().position(|c| c.id == id) else {
            return IdleCheck::Close;
        };
        let c = &st.h2[at];
        if c.occupancy() > 0 {
            return IdleCheck::Until(now + self.max_idle);
        }
        let deadline = c.wire.idle_since() + self.max_idle;
        if deadline > now {
            return IdleCheck::Until(deadline);
        }
        let gone = st.h2.swap_remove(at);
        drop(st);
        drop(gone);
        IdleCheck::Close
    }

    /// Ends an attempt: forgets it so later callers start their own, and wakes its waiters.
    fn end_attempt(&self, attempt: &Arc<Attempt>, end: AttemptEnd) {
        let mut st = self.lock();
        if st.attempt.as_ref().is_some_and(|a| Arc::ptr_eq(a, attempt)) {
            st.attempt = None;
        }
        drop(st);
        attempt.finish(end);
    }

    // ---- waiting ----

    fn enqueue(self: &Arc<Self>, mut st: MutexGuard<'_, State>) -> WaitTicket {
        let (tx, rx) = oneshot::channel();
        let id = next_id();
        st.waiters.push_back(Waiter { id, tx });
        WaitTicket {
            shard: self.clone(),
            id,
            rx: Some(rx),
        }
    }

    /// Removes a waiter that gave up; false if it was already granted something.
    fn dequeue(&self, id: u64) -> bool {
        let mut st = self.lock();
        match st.waiters.iter().position(|w| w.id == id) {
            Some(at) => {
                st.waiters.remove(at);
                true
            }
            None => false,
        }
    }

    /// Takes back a grant its waiter no longer wants.
    fn give_back(&self, grant: Grant) {
        match grant {
            Grant::Conn(c) => self.h1_put(c),
            Grant::Slot => {
                let mut st = self.lock();
                st.connecting -= 1;
                release_slot(&mut st);
            }
        }
    }

    // ---- introspection ----

    pub(crate) fn add_stats(&self, s: &mut BackendStats) {
        let st = self.lock();
        let h2_idle = st.h2.iter().filter(|c| c.occupancy() == 0).count();
        let h1_idle = st.idle.len();
        s.open += st.h1_open + st.h2.len();
        s.idle += h1_idle + h2_idle;
        s.in_use += st.h1_open.saturating_sub(h1_idle) + (st.h2.len() - h2_idle);
        s.connecting += st.connecting;
        s.waiters += st.waiters.len()
            + st.attempt
                .as_ref()
                .map_or(0, |a| a.waiting.load(Ordering::Relaxed));
        s.http1 += st.h1_open;
        s.http2 += st.h2.len();
        s.http2_streams += st.h2.iter().map(|c| c.occupancy()).sum::<usize>();
    }
}

/// Hands a freed slot to the first waiter still there, or frees it.
fn release_slot(st: &mut State) {
    while let Some(w) = st.waiters.pop_front() {
        if w.tx.send(Grant::Slot).is_ok() {
            st.connecting += 1;
            return;
        }
    }
    st.slots -= 1;
}

/// What an idle timer should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdleCheck {
    Close,
    Until(Instant),
}

/// The right to open one connection; dropping it unused frees the slot (to a waiter first).
#[derive(Debug)]
pub(crate) struct SlotPermit {
    shard: Arc<Shard>,
    armed: bool,
}

impl SlotPermit {
    pub(crate) fn new(shard: Arc<Shard>) -> Self {
        Self { shard, armed: true }
    }

    pub(crate) fn shard(&self) -> &Arc<Shard> {
        &self.shard
    }

    /// The connection is open and speaks HTTP/1.1; its task now owns the slot.
    pub(crate) fn commit_h1(mut self) {
        let mut st = self.shard.lock();
        st.connecting -= 1;
        st.h1_open += 1;
        self.armed = false;
    }

    /// The connection is open and speaks HTTP/2: listed for sharing, its task owns the slot.
    pub(crate) fn commit_h2(mut self, conn: Arc<H2Conn>) {
        let mut st = self.shard.lock();
        st.connecting -= 1;
        st.h2.push(conn);
        self.armed = false;
    }
}

impl Drop for SlotPermit {
    fn drop(&mut self) {
        if self.armed {
            let mut st = self.shard.lock();
            st.connecting -= 1;
            release_slot(&mut st);
        }
    }
}

/// A place in a shard's queue, waited on with [`WaitTicket::wait`].
///
/// Dropped early (the caller went away), it leaves the queue or hands back what it was granted.
#[derive(Debug)]
pub(crate) struct WaitTicket {
    shard: Arc<Shard>,
    id: u64,
    rx: Option<oneshot::Receiver<Grant>>,
}

impl WaitTicket {
    /// Waits up to `timeout` for a grant; then `PoolExhausted` (`TMO-5`, `POOL-2`).
    pub(crate) async fn wait(mut self, timeout: Duration) -> Result<Grant, Error> {
        let rx = self
            .rx
            .as_mut()
            .expect("invariant: the receiver is taken only by wait or drop");
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(grant)) => {
                self.rx = None;
                Ok(grant)
            }
            Ok(Err(_)) => {
                Err(Error::new(ErrorKind::Internal)
                    .with_message("the pool dropped a waiting request"))
            }
            Err(elapsed) => {
                if !self.shard.dequeue(self.id) {
                    // Granted while the timer fired: the grant is in the channel; use it.
                    if let Some(Ok(grant)) = self.rx.take().map(|mut rx| rx.try_recv()) {
                        return Ok(grant);
                    }
                }
                self.rx = None;
                Err(Error::new(ErrorKind::PoolExhausted)
                    .with_message(format!(
                        "no connection free within {} ms",
                        timeout.as_millis()
                    ))
                    .with_source(elapsed))
            }
        }
    }
}

impl Drop for WaitTicket {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take()
            && !self.shard.dequeue(self.id)
            && let Ok(grant) = rx.try_recv()
        {
            self.shard.give_back(grant);
        }
    }
}

/// One connection being opened that concurrent callers wait for (HTTP/2's "singleton" connect).
#[derive(Debug, Default)]
pub(crate) struct Attempt {
    done: AtomicBool,
    notify: Notify,
    end: Mutex<Option<AttemptEnd>>,
    waiting: AtomicUsize,
}

/// How an attempt ended, as its waiters see it.
#[derive(Debug, Clone)]
pub(crate) enum AttemptEnd {
    /// A connection is there (or the opener went away): look again.
    Retry,
    /// The connection failed; waiters fail the same way rather than each waiting out a timeout.
    Failed(ErrorKind, String),
}

impl Attempt {
    fn finish(&self, end: AttemptEnd) {
        *self.end.lock().unwrap_or_else(PoisonError::into_inner) = Some(end);
        self.done.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Waits for the attempt to end (the caller was counted in `waiting` by `h2_take`).
    pub(crate) async fn wait(&self) -> AttemptEnd {
        // Uncounts the caller however the wait ends, cancellation included.
        struct Uncount<'a>(&'a AtomicUsize);
        impl Drop for Uncount<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        let _uncount = Uncount(&self.waiting);
        // Created before the check: `notify_waiters` wakes a `Notified` that exists, polled or not.
        let notified = self.notify.notified();
        if !self.done.load(Ordering::Acquire) {
            notified.await;
        }
        self.end
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or(AttemptEnd::Retry)
    }
}

/// Ends an attempt when dropped: with the recorded outcome, or `Retry` if the opener went away.
#[derive(Debug)]
pub(crate) struct AttemptGuard {
    shard: Arc<Shard>,
    attempt: Arc<Attempt>,
    end: AttemptEnd,
}

impl AttemptGuard {
    pub(crate) fn new(shard: Arc<Shard>, attempt: Arc<Attempt>) -> Self {
        Self {
            shard,
            attempt,
            end: AttemptEnd::Retry,
        }
    }

    pub(crate) fn failed(&mut self, e: &Error) {
        self.end = AttemptEnd::Failed(e.kind(), error_chain(e));
    }
}

impl Drop for AttemptGuard {
    fn drop(&mut self) {
        let end = std::mem::replace(&mut self.end, AttemptEnd::Retry);
        self.shard.end_attempt(&self.attempt, end);
    }
}

/// An error and its causes on one line, for waiters that share a failed attempt.
fn error_chain(e: &Error) -> String {
    let mut s = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
