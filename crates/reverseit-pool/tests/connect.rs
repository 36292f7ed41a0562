//! Connect failures: timeout on a paused clock, refused, unresolvable; typed and with causes.

mod kit;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kit::get;
use reverseit_core::{Backend, ErrorKind, PoolConfig};
use reverseit_pool::{Dial, DialFuture, Pool, Target};

/// A dial that never completes, counting its calls.
#[derive(Debug, Default, Clone)]
struct Never(Arc<AtomicUsize>);

impl Dial for Never {
    fn dial(&self, _host: &str, _port: u16) -> DialFuture {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(std::future::pending())
    }
}

// TMO-1: a connect not done within connect_timeout → ConnectTimeout (504). The dial never
// completes; the paused clock jumps to the deadline.
#[tokio::test(start_paused = true)]
async fn tmo_1_connect_timeout() {
    let never = Never::default();
    let pool = Pool::with_dialer(PoolConfig::default(), never.clone());
    let target = Target::new(Backend::parse("http://backend.invalid:8080").unwrap())
        .connect_timeout(Duration::from_millis(250))
        .build()
        .unwrap();
    let start = tokio::time::Instant::now();
    let err = pool.send(&target, get("/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectTimeout, "{err:?}");
    assert_eq!(start.elapsed(), Duration::from_millis(250));
    assert!(err.to_string().contains("250 ms"), "{err}");
    assert!(std::error::Error::source(&err).is_some());
    // The slot came back: nothing is left connecting.
    let s = pool.stats(&target);
    assert_eq!((s.open, s.connecting, s.waiters), (0, 0, 0));
    assert_eq!(never.0.load(Ordering::SeqCst), 1);
}

// TMO-1 with HTTP/2: concurrent first requests wait for one connection attempt (not one each),
// and all get its failure at the deadline rather than waiting again.
#[tokio::test(start_paused = true)]
async fn tmo_1_concurrent_h2_requests_share_one_connect_attempt() {
    let never = Never::default();
    let pool = Pool::with_dialer(PoolConfig::default(), never.clone());
    let target = Target::new(Backend::parse("http://backend.invalid:8080").unwrap())
        .protocols(reverseit_core::Protocols::HTTP2)
        .connect_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (pool, target) = (pool.clone(), target.clone());
            tokio::spawn(async move { pool.send(&target, get("/")).await.unwrap_err() })
        })
        .collect();
    let start = tokio::time::Instant::now();
    for t in tasks {
        assert_eq!(t.await.unwrap().kind(), ErrorKind::ConnectTimeout);
    }
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert_eq!(never.0.load(Ordering::SeqCst), 1);
}

// TMO-1, ERR-1: connection refused → Connect (502), with the io::Error as the cause.
#[tokio::test]
async fn tmo_1_connection_refused() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let pool = kit::pool(4);
    let target = Target::new(Backend::parse(&format!("http://{addr}")).unwrap())
        .build()
        .unwrap();
    let err = pool.send(&target, get("/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect, "{err:?}");
    assert!(!err.is_retryable());
    let io = std::error::Error::source(&err)
        .and_then(|e| e.downcast_ref::<io::Error>())
        .expect("io::Error cause");
    assert_eq!(io.kind(), io::ErrorKind::ConnectionRefused);
    assert_eq!(pool.stats(&target).connecting, 0);
}

// ERR-1: a name that does not resolve → Connect.
#[tokio::test]
async fn err_1_unresolvable_host() {
    let pool = kit::pool(4);
    let target = Target::new(Backend::parse("http://no-such-host.invalid:80").unwrap())
        .build()
        .unwrap();
    let err = pool.send(&target, get("/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect, "{err:?}");
}

// TMO-1: a prior-knowledge h2c target whose backend only speaks HTTP/1.1 fails at connect, not
// later with a confusing protocol error.
#[tokio::test]
async fn h2c_to_an_http1_backend_fails_at_connect() {
    let backend = kit::TestBackend::start(kit::Speak::Http1, kit::hello()).await;
    let pool = kit::pool(4);
    let target = backend.target(reverseit_core::Protocols::HTTP2);
    let err = pool.send(&target, get("/")).await.unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Connect | ErrorKind::BackendIo),
        "{err:?}"
    );
}

/// The first dial never completes; later ones connect to `addr`.
#[derive(Debug, Clone)]
struct FirstHangs {
    calls: Arc<AtomicUsize>,
    addr: std::net::SocketAddr,
}

impl Dial for FirstHangs {
    fn dial(&self, _host: &str, _port: u16) -> DialFuture {
        let addr = self.addr;
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            Box::pin(std::future::pending())
        } else {
            Box::pin(tokio::net::TcpStream::connect(addr))
        }
    }
}

// POOL-4, ERR-4: when the caller opening the shared HTTP/2 connection goes away, the callers
// waiting for it do not hang: one of them opens the connection instead.
#[tokio::test]
async fn cancelled_h2_connector_hands_over_to_a_waiter() {
    let backend = kit::TestBackend::start(kit::Speak::H2c(100), kit::hello()).await;
    let dial = FirstHangs {
        calls: Arc::default(),
        addr: backend.addr,
    };
    let pool = Pool::with_dialer(PoolConfig::default(), dial.clone());
    let target = backend.target(reverseit_core::Protocols::HTTP2);
    let opener = {
        let (pool, target) = (pool.clone(), target.clone());
        tokio::spawn(async move { pool.send(&target, get("/")).await.map(|_| ()) })
    };
    kit::until("opener dialing", || dial.calls.load(Ordering::SeqCst) == 1).await;
    let waiter = {
        let (pool, target) = (pool.clone(), target.clone());
        tokio::spawn(async move { kit::text(pool.send(&target, get("/")).await.unwrap()).await })
    };
    kit::until("waiter waiting", || pool.stats(&target).waiters == 1).await;
    opener.abort();
    let _ = opener.await;
    assert_eq!(kit::within("waiter", waiter).await.unwrap(), "hello");
    assert_eq!(dial.calls.load(Ordering::SeqCst), 2);
    let s = pool.stats(&target);
    assert_eq!((s.open, s.connecting, s.waiters), (1, 0, 0));
}
