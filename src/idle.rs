//! The client-connection watchdog behind `[server] header_read_timeout`: slowloris protection
//! without a timer per request.
//!
//! hyper's own `header_read_timeout` arms a timer for every request head, which cost 13–24 % on
//! small requests in our measurements (`performance-notes.md`). What the protection needs is
//! coarser: a connection must not stay open without doing useful work. So each connection counts
//! the requests it starts and finishes and its socket writes (relaxed atomic increments), and one
//! sleep per connection wakes every `header_read_timeout`: when no request is in flight, none
//! started and nothing was written during the whole period, the connection is asked to close
//! (HTTP/2 GOAWAY, HTTP/1.1 close), and dropped after a further quiet second. A slow or
//! never-finished request head (it never becomes a request, and reads do not count) and an idle
//! keep-alive connection are both closed after one to two periods; a slow request in flight is the
//! routes' timeouts' business.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use tower_service::Service;

/// What one connection has been doing.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    started: AtomicU64,
    finished: AtomicU64,
    /// Write calls on the socket: a response still draining to a slow reader after its body ended
    /// is activity. Reads are not: a trickled request head must not keep a connection open.
    writes: AtomicU64,
}

impl Activity {
    /// Notes a write to the client (one relaxed increment per write call).
    pub(crate) fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether requests are in flight. `finished` is read first and never exceeds `started`, so a
    /// request racing the loads can only make the connection look busy, never idle.
    pub(crate) fn in_flight(&self) -> bool {
        let finished = self.finished.load(Ordering::Relaxed);
        self.started.load(Ordering::Relaxed) != finished
    }
}

/// Completes once the connection went a whole `period` with no request in flight, none started
/// and nothing written.
pub(crate) async fn idle(activity: &Activity, period: Duration) {
    let snapshot = |a: &Activity| {
        (
            a.started.load(Ordering::Relaxed),
            a.writes.load(Ordering::Relaxed),
        )
    };
    let mut seen = snapshot(activity);
    loop {
        tokio::time::sleep(period).await;
        let now = snapshot(activity);
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

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
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
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_unused_connection_is_idle_after_one_period() {
        let activity = Activity::default();
        let start = tokio::time::Instant::now();
        idle(&activity, Duration::from_secs(10)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_keeps_the_connection() {
        let activity = Arc::new(Activity::default());
        let guard = InFlight::new(&activity);
        let watch = tokio::spawn({
            let a = Arc::clone(&activity);
            async move { idle(&a, Duration::from_secs(10)).await }
        });
        tokio::time::sleep(Duration::from_secs(35)).await;
        assert!(!watch.is_finished());
        let released = tokio::time::Instant::now();
        drop(guard);
        watch.await.unwrap();
        // Idle once a whole period without a request has passed: at most two periods later.
        assert!(released.elapsed() <= Duration::from_secs(20));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_started_during_a_period_defers_the_close() {
        let activity = Arc::new(Activity::default());
        let watch = tokio::spawn({
            let a = Arc::clone(&activity);
            async move { idle(&a, Duration::from_secs(10)).await }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(InFlight::new(&activity)); // a quick request
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(
            !watch.is_finished(),
            "the period with a request must not count as idle"
        );
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(watch.is_finished());
    }

    #[tokio::test(start_paused = true)]
    async fn writes_count_as_activity() {
        let activity = Arc::new(Activity::default());
        let watch = tokio::spawn({
            let a = Arc::clone(&activity);
            async move { idle(&a, Duration::from_secs(10)).await }
        });
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_secs(5)).await;
            activity.wrote(); // a slow reader still draining a response
        }
        assert!(!watch.is_finished());
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert!(watch.is_finished());
    }
}
