//! HTTP/2 pooling: prior-knowledge h2c, multiplexing up to the server's stream limit, GOAWAY.

mod kit;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{Response, Version};
use kit::{Speak, TestBackend, full, get, handler, hello, text, until, within};
use reverseit_core::{PoolConfig, Protocols};
use reverseit_pool::Pool;
use tokio::sync::Notify;

// POOL-4, POOL-1: protocols = [http2] on a plain backend is prior-knowledge h2c, and sequential
// requests reuse its one connection.
#[tokio::test]
async fn pool_4_h2c_hundred_sequential_requests_use_one_connection() {
    let backend = TestBackend::start(Speak::H2c(100), hello()).await;
    let pool = kit::pool(10);
    let target = backend.target(Protocols::HTTP2);
    for _ in 0..100 {
        let res = pool.send(&target, get("/path?q=1")).await.unwrap();
        assert_eq!(res.version(), Version::HTTP_2);
        assert_eq!(res.headers()["x-version"], "HTTP/2.0");
        assert_eq!(text(res).await, "hello");
    }
    assert_eq!(backend.counters.accepted(), 1);
    let s = pool.stats(&target);
    assert_eq!((s.open, s.http2, s.waiters), (1, 1, 0));
}

// POOL-4: http1 + http2 on a plain backend means HTTP/1.1 (no negotiation without TLS).
#[tokio::test]
async fn pool_4_both_protocols_on_plain_backend_speak_http1() {
    let backend = TestBackend::start(Speak::Http1, hello()).await;
    let pool = kit::pool(10);
    let target = backend.target(Protocols::BOTH);
    let res = pool.send(&target, get("/")).await.unwrap();
    assert_eq!(res.headers()["x-version"], "HTTP/1.1");
}

/// A handler that holds every request until `release` requests have arrived, counting the
/// most requests it held at once.
fn barrier(release: usize, inside: Arc<AtomicUsize>) -> kit::Handler {
    let all_in = Arc::new(Notify::new());
    handler(move |_req| {
        let (inside, all_in) = (inside.clone(), all_in.clone());
        async move {
            let notified = all_in.notified();
            if inside.fetch_add(1, Ordering::SeqCst) + 1 >= release {
                all_in.notify_waiters();
            } else {
                notified.await;
            }
            Response::new(full("ok"))
        }
    })
}

async fn concurrent(pool: &Pool, target: &reverseit_pool::Target, n: usize) {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (pool, target) = (pool.clone(), target.clone());
            tokio::spawn(async move { text(pool.send(&target, get("/")).await.unwrap()).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(within("request", t).await.unwrap(), "ok");
    }
}

// POOL-4: 200 concurrent requests multiplex on one connection (the server allows 250 streams).
// The backend answers none until all 200 are inside, so they really are concurrent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_4_two_hundred_concurrent_requests_share_one_connection() {
    let inside = Arc::new(AtomicUsize::new(0));
    let backend = TestBackend::start(Speak::H2c(250), barrier(200, inside.clone())).await;
    let pool = kit::pool(10);
    let target = backend.target(Protocols::HTTP2);
    concurrent(&pool, &target, 200).await;
    assert_eq!(backend.counters.accepted(), 1);
}

// POOL-4: with max_concurrent_streams = 100, 200 concurrent requests open a second connection
// rather than waiting for streams on the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_4_stream_limit_opens_a_second_connection() {
    let inside = Arc::new(AtomicUsize::new(0));
    let backend = TestBackend::start(Speak::H2c(100), barrier(200, inside.clone())).await;
    let pool = kit::pool(10);
    let target = backend.target(Protocols::HTTP2);
    concurrent(&pool, &target, 200).await;
    assert_eq!(backend.counters.accepted(), 2);
    let s = pool.stats(&target);
    assert_eq!((s.open, s.http2), (2, 2));
}

// POOL-4, POOL-2: pool_size still bounds HTTP/2 connections: with one allowed, the requests over
// the stream limit queue on it instead of failing.
#[tokio::test]
async fn pool_4_pool_size_bounds_http2_connections() {
    let backend = TestBackend::start(Speak::H2c(2), hello()).await;
    let pool = kit::pool(1);
    let target = backend.target(Protocols::HTTP2);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (pool, target) = (pool.clone(), target.clone());
            tokio::spawn(async move { text(pool.send(&target, get("/")).await.unwrap()).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(within("request", t).await.unwrap(), "hello");
    }
    assert_eq!(backend.counters.accepted(), 1);
}

// POOL-4: GOAWAY retires the connection; later requests go to a new one without failing.
#[tokio::test]
async fn pool_4_goaway_retires_the_connection() {
    let backend = TestBackend::start(Speak::H2c(100), hello()).await;
    let pool = kit::pool(4);
    let target = backend.target(Protocols::HTTP2);
    text(pool.send(&target, get("/")).await.unwrap()).await;
    backend.shutdown.send(true).unwrap(); // graceful shutdown: GOAWAY, then close
    within("backend closed", backend.counters.wait_closed(1)).await;
    backend.shutdown.send(false).unwrap();
    until("pool noticed", || pool.stats(&target).open == 0).await;
    for _ in 0..5 {
        assert_eq!(
            text(pool.send(&target, get("/")).await.unwrap()).await,
            "hello"
        );
    }
    assert_eq!(backend.counters.accepted(), 2);
}

// POOL-3 for HTTP/2: a connection without streams for conn_max_idle_time is closed.
#[tokio::test]
async fn pool_3_idle_http2_connection_closes() {
    let backend = TestBackend::start(Speak::H2c(100), hello()).await;
    let pool = Pool::new(
        PoolConfig::builder()
            .conn_max_idle_time(Duration::from_secs(10))
            .build()
            .unwrap(),
    );
    let target = backend.target(Protocols::HTTP2);
    text(pool.send(&target, get("/")).await.unwrap()).await;
    until("stream closed", || pool.stats(&target).idle == 1).await;
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(9)).await;
    assert_eq!(pool.stats(&target).open, 1);
    tokio::time::advance(Duration::from_secs(2)).await;
    until("retired", || pool.stats(&target).open == 0).await;
    tokio::time::resume();
    within("backend sees the close", backend.counters.wait_closed(1)).await;
}
