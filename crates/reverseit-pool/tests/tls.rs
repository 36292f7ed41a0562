//! TLS toward backends: trust anchors, `ca_file`, `verify_tls = false`, SNI/IP names, ALPN.

mod kit;

use kit::{Speak, TestBackend, TestCa, get, hello, text};
use reverseit_core::{Backend, ErrorKind, Protocols, RouteConfig};
use reverseit_pool::Target;

async fn tls_backend(ca: &TestCa) -> TestBackend {
    TestBackend::start_tls(Speak::Tls, hello(), Some(ca.server.clone())).await
}

fn https(backend: &TestBackend, host: &str) -> Backend {
    Backend::parse(&format!("https://{host}:{}", backend.addr.port())).unwrap()
}

// POOL-5: the test CA given as ca_file verifies the backend (by DNS name, sent as SNI).
#[tokio::test]
async fn pool_5_ca_file_trusts_the_backend() {
    let ca = TestCa::new();
    let backend = tls_backend(&ca).await;
    let pool = kit::pool(4);
    let target = Target::new(https(&backend, "localhost"))
        .ca_file(ca.ca_file())
        .build()
        .unwrap();
    let res = pool.send(&target, get("/")).await.unwrap();
    assert_eq!(res.headers()["x-version"], "HTTP/1.1");
    assert_eq!(text(res).await, "hello");
    // Reused, as plain connections are.
    text(pool.send(&target, get("/")).await.unwrap()).await;
    assert_eq!(backend.counters.accepted(), 1);
}

// POOL-5: an IP literal backend is verified against the certificate's IP address.
#[tokio::test]
async fn pool_5_ip_literal_is_verified_by_ip_san() {
    let ca = TestCa::new();
    let backend = tls_backend(&ca).await;
    let pool = kit::pool(4);
    let target = Target::new(https(&backend, "127.0.0.1"))
        .ca_file(ca.ca_file())
        .build()
        .unwrap();
    assert_eq!(
        text(pool.send(&target, get("/")).await.unwrap()).await,
        "hello"
    );
}

// POOL-5, ERR-1: without the CA the handshake fails as a TLS error (502), cause kept.
#[tokio::test]
async fn pool_5_unknown_ca_is_a_tls_error() {
    let ca = TestCa::new();
    let backend = tls_backend(&ca).await;
    let pool = kit::pool(4);
    let target = Target::new(https(&backend, "localhost")).build().unwrap();
    let err = pool.send(&target, get("/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err:?}");
    assert!(!err.is_retryable());
    let cause = std::error::Error::source(&err)
        .expect("cause kept")
        .to_string();
    assert!(cause.contains("certificate"), "{cause}");
    // A name the certificate does not carry fails too, even with the CA.
    let other = Backend::parse(&format!("https://127.0.0.2:{}", backend.addr.port())).unwrap();
    let target = Target::new(other).ca_file(ca.ca_file()).build().unwrap();
    let err = pool.send(&target, get("/")).await.unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Tls | ErrorKind::Connect),
        "{err:?}"
    );
}

// POOL-5: verify_tls = false accepts the unknown certificate, for that target only.
#[tokio::test]
async fn pool_5_verify_tls_false_is_per_target() {
    let ca = TestCa::new();
    let backend = tls_backend(&ca).await;
    let pool = kit::pool(4);
    let insecure = Target::new(https(&backend, "localhost"))
        .verify_tls(false)
        .build()
        .unwrap();
    assert_eq!(
        text(pool.send(&insecure, get("/")).await.unwrap()).await,
        "hello"
    );
    let verified = Target::new(https(&backend, "localhost")).build().unwrap();
    let err = pool.send(&verified, get("/")).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Tls,
        "the insecure connection is not shared"
    );
}

// POOL-4, POOL-5: with http1 and http2 offered, ALPN picks h2 when the server has it; with http2
// alone over TLS, h2 is offered alone.
#[tokio::test]
async fn pool_4_alpn_picks_h2() {
    let ca = TestCa::new();
    let backend = tls_backend(&ca).await;
    let pool = kit::pool(4);
    for protocols in [Protocols::BOTH, Protocols::HTTP2] {
        let target = Target::new(https(&backend, "localhost"))
            .ca_file(ca.ca_file())
            .protocols(protocols)
            .build()
            .unwrap();
        for _ in 0..3 {
            let res = pool.send(&target, get("/")).await.unwrap();
            assert_eq!(res.headers()["x-version"], "HTTP/2.0", "{protocols}");
            text(res).await;
        }
    }
    assert_eq!(
        backend.counters.accepted(),
        2,
        "one shared connection per protocol set"
    );
}

// POOL-4: offered both, a server that only speaks HTTP/1.1 gets HTTP/1.1, reused as usual; the
// concurrent first requests that waited for the negotiating connection follow it.
#[tokio::test]
async fn pool_4_alpn_falls_back_to_http1() {
    let ca = TestCa::with_alpn(&[b"http/1.1"]);
    let backend = tls_backend(&ca).await;
    let pool = kit::pool(4);
    let target = Target::new(https(&backend, "localhost"))
        .ca_file(ca.ca_file())
        .protocols(Protocols::BOTH)
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (pool, target) = (pool.clone(), target.clone());
            tokio::spawn(async move {
                let res = pool.send(&target, get("/")).await.unwrap();
                res.headers()["x-version"].to_str().unwrap().to_owned()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), "HTTP/1.1");
    }
    let s = pool.stats(&target);
    assert!(s.http1 >= 1 && s.http1 <= 4 && s.http2 == 0, "{s:?}");
}

// CFG-3, POOL-5: a route's ca_file is read when the target is built; a bad one names the option
// and the path.
#[tokio::test]
async fn target_from_route_reads_ca_file() {
    let ca = TestCa::new();
    let path = ca.ca_file();
    let route = RouteConfig::builder("https://localhost:1")
        .ca_file(&path)
        .protocols(&[reverseit_core::Protocol::Http2])
        .build()
        .unwrap();
    let target = Target::from_route(&route).unwrap();
    assert_eq!(target.backend().port(), 1);

    let missing = std::env::temp_dir().join("reverseit-pool-no-such-ca.pem");
    let route = RouteConfig::builder("https://localhost:1")
        .ca_file(&missing)
        .build()
        .unwrap();
    let err = Target::from_route(&route).unwrap_err();
    let p = &err.problems()[0];
    assert_eq!(p.option(), "ca_file");
    assert!(p.value().contains("reverseit-pool-no-such-ca.pem"), "{err}");

    let not_pem =
        std::env::temp_dir().join(format!("reverseit-pool-empty-{}.pem", std::process::id()));
    std::fs::write(&not_pem, "no certificate here").unwrap();
    let route = RouteConfig::builder("https://localhost:1")
        .ca_file(&not_pem)
        .build()
        .unwrap();
    let err = Target::from_route(&route).unwrap_err();
    assert_eq!(err.problems()[0].option(), "ca_file", "{err}");
}
