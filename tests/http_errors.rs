//! Failures and timeouts: every one answered with its status, or the client connection aborted.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use reverseit_core::{BoxError, PoolConfig, RouteConfig};
use reverseit_pool::Pool;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};

const LONG: Duration = Duration::from_secs(3_600);

fn route(url: &str) -> reverseit_core::RouteConfigBuilder {
    // Timeouts other than the one under test are long, so the test's timer is the first to fire.
    RouteConfig::builder(url)
        .connect_timeout(LONG)
        .pool_timeout(LONG)
        .response_header_timeout(LONG)
        .upstream_idle_timeout(LONG)
        .request_body_read_timeout(LONG)
}

// ERR-1, TMO-1: a refused connection → 502 "Bad Gateway" (or the route's error_response).
#[tokio::test]
async fn err_1_connection_refused_502() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let proxy = Proxy::start(route(&url).build().unwrap()).await;
    let (status, headers, body) = get(&proxy.url("/")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body, "Bad Gateway");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );

    let proxy = Proxy::start(
        route(&url)
            .error_response(503, "Down for maintenance")
            .build()
            .unwrap(),
    )
    .await;
    let (status, _, body) = get(&proxy.url("/")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "Down for maintenance");
}

// TMO-2: response headers not received within response_header_timeout → 504.
#[tokio::test(start_paused = true)]
async fn tmo_2_response_header_timeout_504() {
    let backend = Backend::start(Speaks::Http1, |_req| async {
        std::future::pending::<()>().await;
        unreachable!()
    })
    .await;
    let proxy = Proxy::start(
        route(&backend.url())
            .response_header_timeout(Duration::from_millis(500))
            .build()
            .unwrap(),
    )
    .await;
    let (status, _, _) = get(&proxy.url("/")).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
}

/// A request body of `pieces` 100-byte pieces, one every `every` (on the test's clock).
fn slow_upload(pieces: usize, every: Duration) -> Body {
    let (tx, mut rx) = mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
    tokio::spawn(async move {
        for _ in 0..pieces {
            tokio::time::sleep(every).await;
            let piece = Frame::data(Bytes::from(vec![b'u'; 100]));
            if tx.send(Ok(piece)).await.is_err() {
                return;
            }
        }
    });
    StreamBody::new(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))).boxed()
}

/// A proxy that streams every request body past 16 bytes and waits 500 ms for a response head.
async fn streaming_proxy(backend: &Backend) -> Proxy {
    Proxy::start(
        route(&backend.url())
            .response_header_timeout(Duration::from_millis(500))
            .request_body_buffer_size(16)
            .build()
            .unwrap(),
    )
    .await
}

// TMO-2, STR-2: a streamed upload that lasts longer than response_header_timeout, its pieces
// reaching the backend steadily, is not cut off: the head's clock runs while the backend holds the
// exchange up, not while the client is still sending.
#[tokio::test(start_paused = true)]
async fn tmo_2_long_streamed_upload_is_not_cut_off() {
    let backend = Backend::start(Speaks::Http1, echo).await;
    let proxy = streaming_proxy(&backend).await;
    let started = tokio::time::Instant::now();
    let req = Request::post(proxy.url("/"))
        .body(slow_upload(8, Duration::from_millis(300)))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(2400));
    let dump = resp.into_body().collect().await.unwrap().to_bytes();
    let dump = String::from_utf8_lossy(&dump);
    assert!(dump.ends_with("body-length: 800\n"), "{dump}");
}

// TMO-2: a backend that read the whole streamed body and never answers gets its
// response_header_timeout from the body's last piece → 504.
#[tokio::test(start_paused = true)]
async fn tmo_2_streamed_upload_then_silence_504() {
    let backend = Backend::start(Speaks::Http1, |req: Request<hyper::body::Incoming>| async {
        let _ = req.into_body().collect().await;
        std::future::pending::<()>().await;
        unreachable!()
    })
    .await;
    let proxy = streaming_proxy(&backend).await;
    let started = tokio::time::Instant::now();
    let req = Request::post(proxy.url("/"))
        .body(slow_upload(4, Duration::from_millis(300)))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1700) && elapsed < Duration::from_millis(1800),
        "{elapsed:?}"
    );
}

// TMO-3: no backend body data for upstream_idle_timeout mid-response → the client connection is
// aborted, never ended cleanly.
#[tokio::test(start_paused = true)]
async fn tmo_3_upstream_idle_aborts_client() {
    let backend = Backend::start(Speaks::Http1, |_req| async {
        let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
        tokio::spawn(async move {
            tx.send(Ok(Frame::data(Bytes::from_static(b"start"))))
                .await
                .unwrap();
            std::future::pending::<()>().await;
            drop(tx);
        });
        let mut rx = rx;
        let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        Response::new(StreamBody::new(stream).boxed())
    })
    .await;
    let proxy = Proxy::start(
        route(&backend.url())
            .upstream_idle_timeout(Duration::from_millis(800))
            .build()
            .unwrap(),
    )
    .await;
    let resp = client()
        .request(Request::get(proxy.url("/")).body(empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let err = resp.into_body().collect().await;
    assert!(err.is_err(), "the body must end with an error, not cleanly");
}

// TMO-4: a client that stops sending its declared body → 408.
#[tokio::test(start_paused = true)]
async fn tmo_4_client_body_timeout_408() {
    let backend = Backend::start(Speaks::Http1, echo).await;
    let proxy = Proxy::start(
        route(&backend.url())
            .request_body_read_timeout(Duration::from_millis(700))
            .build()
            .unwrap(),
    )
    .await;
    let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly ten b")
        .await
        .unwrap();
    let mut answer = vec![0u8; 12];
    stream.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 408");
}

// TMO-5: no pooled connection free within pool_timeout → 503.
#[tokio::test(start_paused = true)]
async fn tmo_5_pool_exhausted_503() {
    let release = Arc::new(Notify::new());
    let gate = release.clone();
    let backend = Backend::start(Speaks::Http1, move |_req| {
        let gate = gate.clone();
        async move {
            gate.notified().await;
            Response::new(full("done"))
        }
    })
    .await;
    let pool = Pool::new(PoolConfig::builder().pool_size(1).build().unwrap());
    let proxy = Proxy::start_with_pool(
        pool,
        route(&backend.url())
            .pool_timeout(Duration::from_millis(50))
            .build()
            .unwrap(),
    )
    .await;
    let c = client();
    let holder = tokio::spawn({
        let c = c.clone();
        let url = proxy.url("/hold");
        async move { fetch(&c, Request::get(url).body(empty()).unwrap()).await }
    });
    // Wait until the first request holds the only connection.
    while proxy.proxy.pool().stats(proxy.proxy.target()).in_use < 1 {
        tokio::task::yield_now().await;
    }
    let (status, _, _) = fetch(
        &c,
        Request::get(proxy.url("/second")).body(empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    release.notify_one();
    let (status, _, body) = holder.await.unwrap();
    assert_eq!(
        (status, body),
        (StatusCode::OK, Bytes::from_static(b"done"))
    );
}

// ERR-2: a backend body shorter than its Content-Length aborts the client connection.
#[tokio::test]
async fn err_2_truncated_backend_body_aborts_client() {
    let (url, _server) = canned_backend(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly twenty bytes...",
        true,
    )
    .await;
    let proxy = Proxy::start(RouteConfig::builder(url).build().unwrap()).await;
    let resp = client()
        .request(Request::get(proxy.url("/")).body(empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-length"], "100");
    assert!(resp.into_body().collect().await.is_err());
}

// ERR-3: with response_header_retries, a GET whose connection closes before the response head is
// retried, with the same head (repeated lines included, in order); without, it fails with 502.
#[tokio::test]
async fn err_3_response_header_retries() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let heads = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let record = heads.clone();
    let server = tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let len = s.read(&mut buf).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..len]).into_owned();
            // Only a head seen just before (a resend) is answered; a new one is dropped unanswered.
            let resend = {
                let mut heads = record.lock().unwrap();
                let resend = heads.last() == Some(&head);
                heads.push(head);
                resend
            };
            if resend {
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
            } else {
                drop(s); // closed before any response byte
            }
        }
    });
    let proxy = Proxy::start(RouteConfig::builder(url.clone()).build().unwrap()).await;
    let (status, _, _) = get(&proxy.url("/")).await;
    assert_eq!(
        status,
        StatusCode::BAD_GATEWAY,
        "fresh connection, no retries configured"
    );

    let proxy = Proxy::start(
        RouteConfig::builder(url)
            .response_header_retries(1)
            .build()
            .unwrap(),
    )
    .await;
    let req = Request::get(proxy.url("/"))
        .header("x-multi", "a")
        .header("x-multi", "b")
        .body(empty())
        .unwrap();
    let (status, _, body) = fetch(&client(), req).await;
    assert_eq!((status, body), (StatusCode::OK, Bytes::from_static(b"ok")));
    let heads = heads.lock().unwrap();
    assert_eq!(heads.len(), 3, "one attempt without retries, two with one");
    let answered = &heads[2];
    assert!(
        answered.contains("x-multi: a\r\nx-multi: b\r\n"),
        "{answered}"
    );
    assert!(
        answered.contains("x-forwarded-for: 127.0.0.1\r\n"),
        "{answered}"
    );
    drop(heads);
    server.abort();
}

// ERR-3: a backend that closes idle keep-alive connections never fails an idempotent request.
#[tokio::test]
async fn err_3_backend_closing_idle_connections_never_fails_a_get() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                // Answers keep-alive, then closes as soon as the response is out: the pool
                // cannot know before it tries the connection again.
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
                let _ = s.read(&mut buf).await;
            });
        }
    });
    let proxy = Proxy::start(RouteConfig::builder(url).build().unwrap()).await;
    for _ in 0..20 {
        let (status, _, body) = get(&proxy.url("/")).await;
        assert_eq!((status, body), (StatusCode::OK, Bytes::from_static(b"ok")));
    }
    server.abort();
}

// ERR-4: a client that disconnects mid-response cancels the backend exchange.
#[tokio::test]
async fn err_4_client_disconnect_cancels_backend() {
    let backend_saw_cancel = Arc::new(Notify::new());
    let notify = backend_saw_cancel.clone();
    let backend = Backend::start(Speaks::Http1, move |_req| {
        let notify = notify.clone();
        async move {
            let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
            tokio::spawn(async move {
                loop {
                    if tx
                        .send(Ok(Frame::data(Bytes::from(vec![b'x'; 16 * 1024]))))
                        .await
                        .is_err()
                    {
                        // hyper dropped the body: the proxy closed the backend connection.
                        notify.notify_one();
                        return;
                    }
                }
            });
            let mut rx = rx;
            let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
            Response::new(StreamBody::new(stream).boxed())
        }
    })
    .await;
    let proxy = Proxy::start(RouteConfig::builder(backend.url()).build().unwrap()).await;
    let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.unwrap();
    drop(stream);
    tokio::time::timeout(Duration::from_secs(10), backend_saw_cancel.notified())
        .await
        .expect("the backend exchange is cancelled after the client left");
}

// ERR-1, STR-5: a backend answering a plain request with 101 Switching Protocols (no upgrade was
// asked for) gets the client `error_response`, not a switch to an unknown protocol.
#[tokio::test]
async fn unrequested_101_is_bad_gateway() {
    let (url, _server) = canned_backend(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: upgrade\r\n\r\n",
        true,
    )
    .await;
    let proxy = Proxy::start(RouteConfig::builder(url).build().unwrap()).await;
    let (status, headers, body) = get(&proxy.url("/")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(headers.get("upgrade").is_none());
    assert_eq!(body, "Bad Gateway");
}
