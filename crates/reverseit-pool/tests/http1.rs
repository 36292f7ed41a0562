//! HTTP/1.1 pooling: reuse, bounds, waiting, idle eviction, stale connections.

mod kit;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::Response;
use kit::{Speak, TestBackend, full, get, handler, hello, text, until, within};
use reverseit_core::{ErrorKind, PoolConfig, Protocols};
use reverseit_pool::{Pool, Target};
use tokio::sync::watch;

// POOL-1: sequential requests reuse one keep-alive connection.
#[tokio::test]
async fn pool_1_hundred_sequential_requests_use_one_connection() {
    let backend = TestBackend::start(Speak::Http1, hello()).await;
    let pool = kit::pool(10);
    let target = backend.target(Protocols::HTTP1);
    for _ in 0..100 {
        let res = pool.send(&target, get("/")).await.unwrap();
        assert_eq!(res.headers()["x-version"], "HTTP/1.1");
        assert_eq!(text(res).await, "hello");
    }
    assert_eq!(backend.counters.accepted(), 1);
    // The last connection goes back to the idle list once its exchange is over.
    until("connection idle again", || pool.stats(&target).idle == 1).await;
    let s = pool.stats(&target);
    assert_eq!((s.open, s.in_use, s.waiters, s.http1), (1, 0, 0, 1));
}

/// A backend whose handler waits for the gate to open, counting the requests inside.
fn gated(gate: watch::Receiver<bool>, inside: Arc<AtomicUsize>) -> kit::Handler {
    handler(move |_req| {
        let mut gate = gate.clone();
        let inside = inside.clone();
        async move {
            inside.fetch_add(1, Ordering::SeqCst);
            let _ = gate.wait_for(|open| *open).await;
            Response::new(full("done"))
        }
    })
}

// POOL-2: at most pool_size connections; the other callers wait FIFO and all succeed.
#[tokio::test]
async fn pool_2_ten_concurrent_requests_share_two_connections() {
    let (open_gate, gate) = watch::channel(false);
    let inside = Arc::new(AtomicUsize::new(0));
    let backend = TestBackend::start(Speak::Http1, gated(gate, inside.clone())).await;
    let pool = kit::pool(2);
    let target = backend.target(Protocols::HTTP1);
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (pool, target) = (pool.clone(), target.clone());
            tokio::spawn(async move { text(pool.send(&target, get("/")).await?).await.pipe(Ok) })
        })
        .collect();
    until("two requests at the backend, eight waiting", || {
        inside.load(Ordering::SeqCst) == 2 && pool.stats(&target).waiters == 8
    })
    .await;
    let s = pool.stats(&target);
    assert_eq!((s.open, s.in_use, s.idle), (2, 2, 0));
    open_gate.send(true).unwrap();
    for t in tasks {
        let r: Result<String, reverseit_core::Error> = within("request", t).await.unwrap();
        assert_eq!(r.unwrap(), "done");
    }
    assert_eq!(backend.counters.accepted(), 2);
    assert!(backend.counters.max_open() <= 2);
}

// POOL-2 with pool_count: each shard has its own pool_size.
#[tokio::test]
async fn pool_2_each_shard_is_bounded_by_pool_size() {
    let (open_gate, gate) = watch::channel(false);
    let inside = Arc::new(AtomicUsize::new(0));
    let backend = TestBackend::start(Speak::Http1, gated(gate, inside.clone())).await;
    let pool = Pool::new(
        PoolConfig::builder()
            .pool_size(1)
            .pool_count(3)
            .build()
            .unwrap(),
    );
    let target = backend.target(Protocols::HTTP1);
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (pool, target) = (pool.clone(), target.clone());
            tokio::spawn(async move { pool.send(&target, get("/")).await.map(|_| ()) })
        })
        .collect();
    until("three requests in, three waiting", || {
        inside.load(Ordering::SeqCst) == 3 && pool.stats(&target).waiters == 3
    })
    .await;
    open_gate.send(true).unwrap();
    for t in tasks {
        within("request", t).await.unwrap().unwrap();
    }
    assert_eq!(backend.counters.max_open(), 3);
}

// TMO-5: no connection free within pool_timeout → PoolExhausted (503).
#[tokio::test]
async fn tmo_5_pool_exhausted_after_pool_timeout() {
    let (open_gate, gate) = watch::channel(false);
    let inside = Arc::new(AtomicUsize::new(0));
    let backend = TestBackend::start(Speak::Http1, gated(gate, inside.clone())).await;
    let pool = kit::pool(1);
    let b = reverseit_core::Backend::parse(&backend.url("http")).unwrap();
    let target = Target::new(b)
        .pool_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let first = {
        let (pool, target) = (pool.clone(), target.clone());
        tokio::spawn(async move { pool.send(&target, get("/")).await.map(|_| ()) })
    };
    until("first request at the backend", || {
        inside.load(Ordering::SeqCst) == 1
    })
    .await;
    // From here on nothing but the 50 ms wait is pending: the paused clock jumps to it.
    tokio::time::pause();
    let start = tokio::time::Instant::now();
    let err = pool.send(&target, get("/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PoolExhausted, "{err:?}");
    assert!(!err.is_retryable());
    // Timers have millisecond granularity and round up.
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(50) && waited <= Duration::from_millis(52),
        "{waited:?}"
    );
    assert_eq!(
        pool.stats(&target).waiters,
        0,
        "a timed-out waiter leaves the queue"
    );
    tokio::time::resume();
    open_gate.send(true).unwrap();
    within("first request", first).await.unwrap().unwrap();
    // The queue did not keep the dead waiter: the connection is idle again and reusable.
    until("idle", || pool.stats(&target).idle == 1).await;
    pool.send(&target, get("/")).await.unwrap();
    assert_eq!(backend.counters.accepted(), 1);
}

// POOL-3: an idle connection closes after conn_max_idle_time; the backend sees the close.
#[tokio::test]
async fn pool_3_idle_connection_closes_after_max_idle_time() {
    let backend = TestBackend::start(Speak::Http1, hello()).await;
    let pool = Pool::new(
        PoolConfig::builder()
            .conn_max_idle_time(Duration::from_secs(30))
            .build()
            .unwrap(),
    );
    let target = backend.target(Protocols::HTTP1);
    text(pool.send(&target, get("/")).await.unwrap()).await;
    until("idle", || pool.stats(&target).idle == 1).await;
    tokio::time::pause();
    // 29 s: still there.
    tokio::time::advance(Duration::from_secs(29)).await;
    assert_eq!(pool.stats(&target).open, 1);
    assert_eq!(backend.counters.closed(), 0);
    // Past 30 s: closed by the pool, seen by the backend.
    tokio::time::advance(Duration::from_secs(2)).await;
    backend.counters.wait_closed(1).await;
    let s = pool.stats(&target);
    assert_eq!((s.open, s.idle, s.in_use), (0, 0, 0));
    tokio::time::resume();
    // And the next request simply opens a new connection.
    text(pool.send(&target, get("/")).await.unwrap()).await;
    assert_eq!(backend.counters.accepted(), 2);
}

// POOL-3: a connection the backend closed is never handed out.
#[tokio::test]
async fn pool_3_connection_closed_by_backend_is_not_reused() {
    let backend = TestBackend::start(Speak::Http1, hello()).await;
    let pool = kit::pool(4);
    let target = backend.target(Protocols::HTTP1);
    text(pool.send(&target, get("/")).await.unwrap()).await;
    until("idle", || pool.stats(&target).idle == 1).await;
    // The backend closes its idle keep-alive connections.
    backend.shutdown.send(true).unwrap();
    backend.counters.wait_closed(1).await;
    until("pool noticed", || pool.stats(&target).open == 0).await;
    // A fresh backend-side listener still accepts; the pool opens a new connection.
    backend.shutdown.send(false).unwrap();
    let res = pool.send(&target, get("/")).await.unwrap();
    assert_eq!(text(res).await, "hello");
    assert_eq!(backend.counters.accepted(), 2);
}

/// A raw HTTP/1.1 backend: answers the first `keep` requests on each connection with keep-alive,
/// then reads the next request and closes without answering (what a backend closing an idle
/// connection looks like when a request was already on its way).
async fn raw_backend(
    keep: usize,
    close_after_response: bool,
) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let acc = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            acc.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut served = 0;
                loop {
                    let mut chunk = [0u8; 4096];
                    let n = match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        if served == keep {
                            return; // request read, connection dropped, no response byte
                        }
                        served += 1;
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                            .await;
                        if close_after_response {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, accepted)
}

// ERR-3, POOL-3: a backend that closes each connection right after its response never makes a
// GET fail: the pool never reuses the closed connection, or gets the request back unsent.
#[tokio::test]
async fn err_3_backend_closing_after_each_response_never_fails_a_get() {
    let (addr, accepted) = raw_backend(usize::MAX, true).await;
    let pool = kit::pool(4);
    let target = Target::new(reverseit_core::Backend::parse(&format!("http://{addr}")).unwrap())
        .build()
        .unwrap();
    for i in 0..50 {
        let res = pool
            .send_with_retry(&target, get("/"))
            .await
            .unwrap_or_else(|e| panic!("request {i}: {e:?}"));
        assert_eq!(text(res).await, "ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 50);
}

// ERR-3: a request lost on a reused connection before any response byte is a retryable error;
// on a fresh connection it is not; `send_with_retry` resends it once on a fresh one.
#[tokio::test]
async fn err_3_failure_on_reused_connection_is_retryable() {
    let (addr, accepted) = raw_backend(1, false).await;
    let pool = kit::pool(4);
    let target = Target::new(reverseit_core::Backend::parse(&format!("http://{addr}")).unwrap())
        .build()
        .unwrap();
    assert_eq!(
        text(pool.send(&target, get("/")).await.unwrap()).await,
        "ok"
    );
    until("idle", || pool.stats(&target).idle == 1).await;
    // Second request on the same (reused) connection: the backend drops it unanswered.
    let err = pool.send(&target, get("/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BackendIo, "{err:?}");
    assert!(err.is_retryable(), "{err:?}");
    assert!(
        std::error::Error::source(&err).is_some(),
        "cause chain kept"
    );
    // `resend` goes to a fresh connection, which answers.
    assert_eq!(
        text(pool.resend(&target, get("/")).await.unwrap()).await,
        "ok"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    // A failure on a fresh connection is not retryable: a backend that answers nothing.
    let (addr0, _) = raw_backend(0, false).await;
    let target0 = Target::new(reverseit_core::Backend::parse(&format!("http://{addr0}")).unwrap())
        .build()
        .unwrap();
    let err = pool.send(&target0, get("/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BackendIo);
    assert!(!err.is_retryable(), "{err:?}");
    // The whole ERR-3 loop in one call.
    until("idle", || pool.stats(&target).idle >= 1).await;
    let res = pool.send_with_retry(&target, get("/")).await.unwrap();
    assert_eq!(text(res).await, "ok");
}

// ERR-4: a caller that gives up while queued leaves the queue; one that drops a response unread
// costs that connection, not the pool's accounting.
#[tokio::test]
async fn cancelled_callers_leave_no_trace() {
    let (open_gate, gate) = watch::channel(false);
    let inside = Arc::new(AtomicUsize::new(0));
    let backend = TestBackend::start(Speak::Http1, gated(gate, inside.clone())).await;
    let pool = kit::pool(1);
    let target = backend.target(Protocols::HTTP1);
    let first = {
        let (pool, target) = (pool.clone(), target.clone());
        tokio::spawn(async move { pool.send(&target, get("/")).await.map(|_| ()) })
    };
    until("first inside", || inside.load(Ordering::SeqCst) == 1).await;
    let queued = {
        let (pool, target) = (pool.clone(), target.clone());
        tokio::spawn(async move { pool.send(&target, get("/")).await.map(|_| ()) })
    };
    until("second queued", || pool.stats(&target).waiters == 1).await;
    queued.abort();
    let _ = queued.await;
    assert_eq!(pool.stats(&target).waiters, 0);
    open_gate.send(true).unwrap();
    within("first", first).await.unwrap().unwrap();
    // A response dropped before its body was read: hyper closes that connection.
    let res = pool.send(&target, get("/")).await.unwrap();
    drop(res);
    for _ in 0..5 {
        assert_eq!(
            text(pool.send(&target, get("/")).await.unwrap()).await,
            "done"
        );
    }
    until("settled", || {
        let s = pool.stats(&target);
        s.open == 1 && s.idle == 1 && s.connecting == 0
    })
    .await;
}

// ERR-4: dropping the pool closes its idle connections (no task or socket outlives it).
#[tokio::test]
async fn dropping_the_pool_closes_idle_connections() {
    let backend = TestBackend::start(Speak::Http1, hello()).await;
    let pool = kit::pool(4);
    let target = backend.target(Protocols::HTTP1);
    text(pool.send(&target, get("/")).await.unwrap()).await;
    until("idle", || pool.stats(&target).idle == 1).await;
    drop(pool);
    within("backend sees the close", backend.counters.wait_closed(1)).await;
}

trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl<T> Pipe for T {}
