//! The client-connection watchdog behind `[server] header_read_timeout`: slowloris protection
//! without a timer per request, nor one per connection.
//!
//! hyper's own `header_read_timeout` arms a timer for every request head, which cost 13–24 % on
//! small requests in our measurements (`performance-notes.md`). What the protection needs is
//! coarser: a connection must not stay open without doing useful work. So each connection counts
//! the requests it starts and finishes and its socket writes (relaxed atomic increments), and one
//! [`Ticks`] clock per server ticks every `header_read_timeout` for all connections. A connection
//! notes its counts at every tick; when a whole interval between two ticks passed with no request
//! in flight, none started and nothing written, it is asked to close (HTTP/2 GOAWAY, HTTP/1.1
//! close), and dropped after a further quiet second ([`quiet_for`]). A slow or never-finished
//! request head (it never becomes a request, and reads do not count) and an idle keep-alive
//! connection are both closed after one to two periods; a slow request in flight is the routes'
//! timeouts' business, except a response its client stopped taking: the socket writes also say
//! when the socket was full, and a response that sat in a full socket for [`STALL_INTERVALS`]
//! whole periods without a byte taken is dropped with its connection ([`Quiet::Stalled`]), which
//! frees the backend connection it held.
//!
//! A timer per connection cost a write to tokio's wake-up `eventfd` for every new connection (its
//! deadline is earlier than the driver's planned wake-up, so the driver is woken to re-arm); the
//! shared clock is a `watch` channel, which a connection joins without a system call.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::service::Service;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

/// What one connection has been doing.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    started: AtomicU64,
    finished: AtomicU64,
    /// Write calls on the socket: a response still draining to a slow reader after its body ended
    /// is activity. Reads are not: a trickled request head must not keep a connection open.
    writes: AtomicU64,
    /// The last write found the socket full: the client is not taking what it is sent.
    write_blocked: AtomicBool,
}

impl Activity {
    /// Notes a write to the client (one relaxed increment per write call).
    pub(crate) fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.write_blocked.store(false, Ordering::Relaxed);
    }

    /// Notes a write the socket could not take: the client's receive window is full.
    pub(crate) fn write_blocked(&self) {
        self.write_blocked.store(true, Ordering::Relaxed);
    }

    /// Whether requests are in flight. `finished` is read first and never exceeds `started`, so a
    /// request racing the loads can only make the connection look busy, never idle.
    pub(crate) fn in_flight(&self) -> bool {
        let finished = self.finished.load(Ordering::Relaxed);
        self.started.load(Ordering::Relaxed) != finished
    }

    /// What changes when the connection does something. Equal snapshots at both ends of an interval,
    /// and nothing in flight at its end, mean nothing was in flight during it: a request in flight
    /// at its start would have finished (`finished` moved) or still be running.
    fn snapshot(&self) -> [u64; 3] {
        [
            self.started.load(Ordering::Relaxed),
            self.finished.load(Ordering::Relaxed),
            self.writes.load(Ordering::Relaxed),
        ]
    }
}

/// A server's clock for its connections' watchdogs: one task ticking every period, shared by every
/// connection through a `watch` channel. The task ends once every clone is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Ticks(watch::Receiver<()>);

impl Ticks {
    /// Starts the clock; the first tick comes one `period` from now.
    pub(crate) fn start(period: Duration) -> Self {
        let (tx, rx) = watch::channel(());
        tokio::spawn(tick(tx, period));
        Self(rx)
    }
}

/// Ticks `tx` every `period` until no receiver is left.
async fn tick(tx: watch::Sender<()>, period: Duration) {
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    // Never two ticks closer than `period` (as `Burst` would make after a stall): an interval
    // shorter than the period would close connections early.
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {
                if tx.send(()).is_err() {
                    return;
                }
            }
            () = tx.closed() => return,
        }
    }
}

/// Why the watchdog gave up on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Quiet {
    /// Nothing in flight, nothing started, nothing written for a whole interval: ask it to close.
    Idle,
    /// A response in flight that the client has not taken a byte of for [`STALL_INTERVALS`] whole
    /// intervals, its socket full all along: drop it, response and all.
    Stalled,
}

/// Whole intervals a response may sit in a full socket before its connection is dropped (with the
/// default 10 s period, 30 to 40 s without a byte taken, near nginx's `send_timeout` of 60 s
/// between two writes). A client that takes anything at all, however slowly, is never cut.
pub(crate) const STALL_INTERVALS: u32 = 3;

/// Completes at the first tick ending a whole interval (from one tick to the next) in which the
/// connection had no request in flight, started none and wrote nothing: one to two periods after its
/// last activity ([`Quiet::Idle`]); or, with a response in flight, once [`STALL_INTERVALS`] whole
/// intervals passed without a write while the socket was full ([`Quiet::Stalled`]). The interval
/// in which it is called is partial, so it never counts.
pub(crate) async fn idle(activity: &Activity, ticks: Ticks) -> Quiet {
    let Ticks(mut ticks) = ticks;
    // A clone reports the ticks its original has not seen; only those from now on matter.
    ticks.borrow_and_update();
    // `None` until the first tick: the interval before it is partial.
    let mut seen = None;
    let mut stalled = 0;
    loop {
        if ticks.changed().await.is_err() {
            // The clock stopped, which happens only as the server goes away: never idle, then.
            return std::future::pending().await;
        }
        let now = activity.snapshot();
        let unchanged = seen == Some(now);
        seen = Some(now);
        if !activity.in_flight() {
            stalled = 0;
            if unchanged {
                return Quiet::Idle;
            }
        } else if unchanged && activity.write_blocked.load(Ordering::Relaxed) {
            stalled += 1;
            if stalled == STALL_INTERVALS {
                return Quiet::Stalled;
            }
        } else {
            stalled = 0;
        }
    }
}

/// Completes once the connection went a whole `period`, timed from the first poll, with no request
/// in flight, none started and nothing written. One timer per call: for the rare closing path.
pub(crate) async fn quiet_for(activity: &Activity, period: Duration) {
    let mut seen = activity.snapshot();
    loop {
        tokio::time::sleep(period).await;
        let now = activity.snapshot();
        if now == seen && !activity.in_flight() {
            return;
        }
        seen = now;
    }
}

/// One request, counted from the service call until its response body is dropped (or the call's
/// future is, when the client goes away first).
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(activity: &Arc<Activity>) -> Self {
        activity.started.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(activity))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.finished.fetch_add(1, Ordering::Relaxed);
    }
}

/// Wraps a connection's service to count its requests in an [`Activity`].
#[derive(Debug, Clone)]
pub(crate) struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Tracked<S> {
    pub(crate) fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<S, B, ResB> Service<Request<B>> for Tracked<S>
where
    S: Service<Request<B>, Response = Response<ResB>, Error = Infallible>,
    S::Future: Unpin,
{
    type Response = Response<TrackedBody<ResB>>;
    type Error = Infallible;
    type Future = TrackedFuture<S::Future>;

    fn call(&self, req: Request<B>) -> Self::Future {
        TrackedFuture {
            guard: Some(InFlight::new(&self.activity)),
            inner: self.inner.call(req),
        }
    }
}

/// The future of [`Tracked::call`].
#[derive(Debug)]
pub(crate) struct TrackedFuture<F> {
    inner: F,
    guard: Option<InFlight>,
}

impl<F, ResB> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response<ResB>, Infallible>> + Unpin,
{
    type Output = Result<Response<TrackedBody<ResB>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Ok(resp) = ready!(Pin::new(&mut this.inner).poll(cx));
        let guard = this.guard.take();
        Poll::Ready(Ok(resp.map(|inner| TrackedBody {
            inner,
            _guard: guard,
        })))
    }
}

/// A response body that keeps its request counted as in flight until it is dropped.
#[derive(Debug)]
pub(crate) struct TrackedBody<B> {
    inner: B,
    _guard: Option<InFlight>,
}

impl<B> Body for TrackedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests;
