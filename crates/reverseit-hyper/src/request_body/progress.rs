//! The response-head clock of a streamed request (`TMO-2`), which runs only while the proxy waits on
//! the backend.
//!
//! A buffered request is in memory before the backend is contacted, so its head deadline is fixed
//! at the start. A streamed one is still arriving while the backend reads it: a deadline fixed at
//! the start would cut off every upload that lasts longer than `response_header_timeout` (30 s by
//! default), however steadily it flows. So the clock restarts whenever the client's body moves on
//! to the backend, and stops while the proxy waits for the client, which `request_body_read_timeout`
//! bounds (`TMO-4`). What it still catches: a backend that neither reads the body nor answers, and
//! one that read it all and does not answer.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::{Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;

use reverseit_core::{Error, ErrorKind};
use tokio::time::{Instant, sleep_until};

/// Where a streamed body stands, shared between the body (which hyper polls) and the wait for the
/// response head.
#[derive(Debug)]
pub(crate) struct Progress {
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy)]
struct State {
    /// When the body last moved toward the backend (or the exchange began).
    since: Instant,
    /// The body is waiting for the client's next bytes: the backend is not the one holding it up.
    on_client: bool,
}

impl Progress {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State {
                since: Instant::now(),
                on_client: false,
            }),
        }
    }

    /// The body handed a piece (or its end) to the backend's side.
    pub(crate) fn moved(&self) {
        self.update(|s| {
            s.since = Instant::now();
            s.on_client = false;
        });
    }

    /// The body waits for the client.
    pub(crate) fn waiting_on_client(&self) {
        self.update(|s| s.on_client = true);
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// When the backend's time runs out, or `None` while the client is the one awaited.
    fn deadline(&self, timeout: Duration) -> Option<Instant> {
        let s = *self.state.lock().unwrap_or_else(PoisonError::into_inner);
        (!s.on_client).then(|| s.since + timeout)
    }
}

/// Awaits `exchange` (sending the request and receiving the response head) unless the backend
/// holds it up for `timeout` by the clock of `progress`: then `ResponseHeaderTimeout`, and
/// `exchange` is dropped, which abandons the backend's connection.
pub(crate) async fn head_within<T>(
    exchange: impl Future<Output = Result<T, Error>>,
    progress: &Progress,
    timeout: Duration,
) -> Result<T, Error> {
    let mut exchange = pin!(exchange);
    let first = progress
        .deadline(timeout)
        .unwrap_or_else(|| Instant::now() + timeout);
    let mut timer = pin!(sleep_until(first));
    poll_fn(|cx| {
        if let Poll::Ready(done) = exchange.as_mut().poll(cx) {
            return Poll::Ready(done);
        }
        while timer.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            match progress.deadline(timeout) {
                Some(deadline) if deadline <= now => {
                    return Poll::Ready(Err(Error::new(ErrorKind::ResponseHeaderTimeout)));
                }
                Some(deadline) => timer.as_mut().reset(deadline),
                // The client is awaited: look again in a while (the body's own read timeout ends
                // the exchange if the client stays silent).
                None => timer.as_mut().reset(now + timeout),
            }
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::future::pending;
    use std::sync::Arc;

    use tokio::time::sleep;

    const TIMEOUT: Duration = Duration::from_secs(30);

    async fn never() -> Result<(), Error> {
        pending().await
    }

    // TMO-2: an exchange the body never moves in times out after the timeout, to the tick.
    #[tokio::test(start_paused = true)]
    async fn times_out_without_progress() {
        let progress = Progress::new();
        let started = Instant::now();
        let err = head_within(never(), &progress, TIMEOUT).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ResponseHeaderTimeout);
        assert_eq!(started.elapsed(), TIMEOUT);
    }

    // TMO-2, STR-2: an upload whose pieces keep reaching the backend is not cut off, however long
    // it lasts; the clock runs from its last piece.
    #[tokio::test(start_paused = true)]
    async fn each_piece_restarts_the_clock() {
        let progress = Arc::new(Progress::new());
        let body = Arc::clone(&progress);
        let uploader = tokio::spawn(async move {
            for _ in 0..10 {
                sleep(Duration::from_secs(20)).await;
                body.moved();
            }
        });
        let started = Instant::now();
        let err = head_within(never(), &progress, TIMEOUT).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ResponseHeaderTimeout);
        assert_eq!(started.elapsed(), Duration::from_secs(200) + TIMEOUT);
        uploader.await.unwrap();
    }

    // TMO-4 territory: while the client is awaited, the backend's clock stops.
    #[tokio::test(start_paused = true)]
    async fn waiting_on_the_client_stops_the_clock() {
        let progress = Arc::new(Progress::new());
        let body = Arc::clone(&progress);
        let client = tokio::spawn(async move {
            body.waiting_on_client();
            sleep(Duration::from_secs(100)).await;
            body.moved();
        });
        let started = Instant::now();
        let err = head_within(never(), &progress, TIMEOUT).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ResponseHeaderTimeout);
        assert_eq!(started.elapsed(), Duration::from_secs(100) + TIMEOUT);
        client.await.unwrap();
    }

    // An exchange that completes first is returned as it is.
    #[tokio::test(start_paused = true)]
    async fn an_answer_in_time_is_returned() {
        let progress = Progress::new();
        let exchange = async {
            sleep(TIMEOUT - Duration::from_millis(1)).await;
            Ok::<_, Error>(7)
        };
        assert_eq!(head_within(exchange, &progress, TIMEOUT).await.unwrap(), 7);
    }
}
