//! The response-head deadline (`TMO-2`) of `Pool::send_with_deadline`: on fresh and reused
//! connections, after many exchanges, and never cutting a body that outlives it.

mod kit;

use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http_body_util::BodyExt;
use kit::{Speak, TestBackend, get, handler, text};

use reverseit_core::{ErrorKind, Protocols};
use tokio::time::Instant;

const TIMEOUT: Duration = Duration::from_secs(10);

/// `/hang` never answers; `/slow-body` sends its head at once and its body 20 s later; anything
/// else answers `ok` at once.
fn backend_handler() -> kit::Handler {
    handler(|req: http::Request<hyper::body::Incoming>| async move {
        match req.uri().path() {
            "/hang" => std::future::pending().await,
            "/slow-body" => {
                let (tx, body) = kit::channel_body();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(20)).await;
                    let _ = tx.send(Bytes::from_static(b"late body")).await;
                });
                Response::new(body.boxed_unsync())
            }
            _ => Response::new(kit::full("ok")),
        }
    })
}

/// A backend, a pool and a target; with `warm`, one exchange done, so the next runs on a reused
/// connection, under the connection's own timer.
async fn setup(warm: bool) -> (TestBackend, reverseit_pool::Pool, reverseit_pool::Target) {
    let backend = TestBackend::start(Speak::Http1, backend_handler()).await;
    let pool = kit::pool(4);
    let target = backend.target(Protocols::HTTP1);
    if warm {
        text(pool.send(&target, get("/")).await.unwrap()).await;
        kit::until("idle", || pool.stats(&target).idle == 1).await;
    }
    (backend, pool, target)
}

/// Sends a request the backend never answers: it fails with `ResponseHeaderTimeout` at its own
/// deadline (to the clock's millisecond), neither earlier nor later.
async fn times_out_at_its_deadline(pool: &reverseit_pool::Pool, target: &reverseit_pool::Target) {
    let start = Instant::now();
    let err = kit::within(
        "the deadline",
        pool.send_with_deadline(target, get("/hang"), start + TIMEOUT),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ResponseHeaderTimeout, "{err:?}");
    assert!(start.elapsed() >= TIMEOUT, "{:?}", start.elapsed());
    assert!(start.elapsed() < TIMEOUT + Duration::from_millis(10));
}

// TMO-2: the first exchange on a new connection, past its deadline.
#[tokio::test(start_paused = true)]
async fn tmo_2_deadline_on_a_new_connection() {
    let (_backend, pool, target) = setup(false).await;
    times_out_at_its_deadline(&pool, &target).await;
}

// TMO-2: on a reused connection the connection's own timer watches the deadline; it fires at this
// request's deadline, neither earlier (after earlier requests' deadlines) nor later.
#[tokio::test(start_paused = true)]
async fn tmo_2_deadline_on_a_reused_connection_after_many_requests() {
    let (backend, pool, target) = setup(false).await;
    for _ in 0..6 {
        let res = pool
            .send_with_deadline(&target, get("/"), Instant::now() + TIMEOUT)
            .await
            .unwrap();
        assert_eq!(text(res).await, "ok");
        kit::until("idle", || pool.stats(&target).idle == 1).await;
        // Each request's deadline lies past the previous one's expiry point.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    assert_eq!(backend.counters.accepted(), 1);
    times_out_at_its_deadline(&pool, &target).await;
    // The timed-out connection is closed (the backend sees it) and never handed out again.
    backend.counters.wait_closed(1).await;
    let res = pool
        .send_with_deadline(&target, get("/"), Instant::now() + TIMEOUT)
        .await
        .unwrap();
    assert_eq!(text(res).await, "ok");
    assert_eq!(backend.counters.accepted(), 2);
}

// TMO-2 bounds the head only: a body still streaming past the deadline is delivered whole, and
// the connection is reused afterwards.
#[tokio::test(start_paused = true)]
async fn tmo_2_deadline_does_not_bound_the_body() {
    let (backend, pool, target) = setup(true).await;
    let start = Instant::now();
    let res = pool
        .send_with_deadline(&target, get("/slow-body"), start + TIMEOUT)
        .await
        .unwrap();
    assert_eq!(text(res).await, "late body");
    assert!(start.elapsed() >= Duration::from_secs(20));
    kit::until("idle", || pool.stats(&target).idle == 1).await;
    text(pool.send(&target, get("/")).await.unwrap()).await;
    assert_eq!(backend.counters.accepted(), 1);
    assert_eq!(backend.counters.closed(), 0);
}

// TMO-2: a deadline already past still fails cleanly, and a generous one changes nothing.
#[tokio::test(start_paused = true)]
async fn tmo_2_past_and_far_deadlines() {
    let (_backend, pool, target) = setup(true).await;
    let err = kit::within(
        "the deadline",
        pool.send_with_deadline(&target, get("/hang"), Instant::now()),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ResponseHeaderTimeout, "{err:?}");
    let far = Instant::now() + Duration::from_secs(3600);
    let res = pool
        .send_with_deadline(&target, get("/"), far)
        .await
        .unwrap();
    assert_eq!(text(res).await, "ok");
}
