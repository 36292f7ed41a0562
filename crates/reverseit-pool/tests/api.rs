//! The public API's promises: futures are `Send`, handles are cheap to share, the standalone
//! client works (`POOL-6`).

mod kit;

use kit::{Speak, TestBackend, get, hello, text};
use reverseit_core::{Backend, Protocols};
use reverseit_pool::{BackendStats, Pool, Target};

fn assert_send<T: Send>(_: &T) {}
fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}

#[test]
fn handles_are_shareable_and_send_is_send() {
    assert_send_sync_clone::<Pool>();
    assert_send_sync_clone::<Target>();
    let pool = kit::pool(1);
    let target = Target::new(Backend::parse("http://127.0.0.1:1").unwrap())
        .build()
        .unwrap();
    // The proxy runs `send` inside tower services on a multi-thread runtime.
    let fut = pool.send(&target, get("/"));
    assert_send(&fut);
    let fut = pool.send_with_retry(&target, get("/"));
    assert_send(&fut);
    assert_eq!(pool.stats(&target), BackendStats::default());
}

// POOL-6: reverseit-core + reverseit-pool are a complete client, absolute URIs included; the pool
// adds Host over HTTP/1.1 when the caller did not.
#[tokio::test]
async fn pool_6_standalone_client() {
    let backend = TestBackend::start(
        Speak::Http1,
        kit::handler(|req: http::Request<hyper::body::Incoming>| async move {
            let host = req.headers()["host"].to_str().unwrap().to_owned();
            http::Response::new(kit::full(format!("{} {host}", req.uri())))
        }),
    )
    .await;
    let pool = Pool::new(reverseit_core::PoolConfig::default());
    let target = backend.target(Protocols::HTTP1);
    let url = format!("{}/a/b?c=d", backend.url("http"));
    let res = pool.send(&target, get(&url)).await.unwrap();
    assert_eq!(text(res).await, format!("/a/b?c=d {}", backend.addr));
    // The same pool serves other backends side by side.
    let other = TestBackend::start(Speak::H2c(10), hello()).await;
    let t2 = other.target(Protocols::HTTP2);
    assert_eq!(text(pool.send(&t2, get("/")).await.unwrap()).await, "hello");
    assert_eq!(pool.stats(&t2).http2, 1);
    assert_eq!(pool.stats(&target).http1, 1);
}
