//! Bodies stream both ways, over HTTP/1.1 and HTTP/2: nothing is buffered whole by the pool.

mod kit;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use kit::{Speak, TestBackend, channel_body, handler, within};
use reverseit_core::Protocols;
use tokio::sync::{mpsc, oneshot};

/// A backend that reports each request-body chunk as it arrives, then answers with the count.
fn chunk_reporter(seen: mpsc::UnboundedSender<Bytes>) -> kit::Handler {
    handler(move |req: Request<hyper::body::Incoming>| {
        let seen = seen.clone();
        async move {
            let mut body = req.into_body();
            let mut n = 0;
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.unwrap().into_data() {
                    n += data.len();
                    let _ = seen.send(data);
                }
            }
            Response::new(kit::full(n.to_string()))
        }
    })
}

// STR-2: a streamed request body reaches the backend before it ends.
async fn request_body_streams(speak: Speak, protocols: Protocols) {
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let backend = TestBackend::start(speak, chunk_reporter(seen_tx)).await;
    let pool = kit::pool(4);
    let target = backend.target(protocols);
    let (chunks, body) = channel_body();
    let req = Request::post("/upload").body(body).unwrap();
    let send = tokio::spawn({
        let pool = pool.clone();
        async move { kit::text(pool.send(&target, req).await.unwrap()).await }
    });
    chunks.send(Bytes::from_static(b"first")).await.unwrap();
    // The backend has the first chunk while the body is still open.
    assert_eq!(within("first chunk", seen.recv()).await.unwrap(), "first");
    chunks.send(Bytes::from_static(b"second")).await.unwrap();
    assert_eq!(within("second chunk", seen.recv()).await.unwrap(), "second");
    drop(chunks); // end of body
    assert_eq!(within("response", send).await.unwrap(), "11");
}

#[tokio::test]
async fn str_2_request_body_streams_http1() {
    request_body_streams(Speak::Http1, Protocols::HTTP1).await;
}

#[tokio::test]
async fn str_2_request_body_streams_h2c() {
    request_body_streams(Speak::H2c(100), Protocols::HTTP2).await;
}

/// A backend that sends "one", then waits for the test's signal before "two".
fn two_part_response(go: Arc<Mutex<Option<oneshot::Receiver<()>>>>) -> kit::Handler {
    handler(move |_req| {
        let go = go.lock().unwrap().take().expect("one request");
        async move {
            let (tx, body) = channel_body();
            tokio::spawn(async move {
                tx.send(Bytes::from_static(b"one")).await.unwrap();
                let _ = go.await;
                tx.send(Bytes::from_static(b"two")).await.unwrap();
            });
            Response::new(body.boxed_unsync())
        }
    })
}

// STR-1: the response's first chunk is readable before the backend sends the second.
async fn response_body_streams(speak: Speak, protocols: Protocols) {
    let (go_tx, go_rx) = oneshot::channel();
    let backend =
        TestBackend::start(speak, two_part_response(Arc::new(Mutex::new(Some(go_rx))))).await;
    let pool = kit::pool(4);
    let target = backend.target(protocols);
    let res = pool.send(&target, kit::get("/")).await.unwrap();
    let mut body = res.into_body();
    let first = within("first chunk", body.frame()).await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "one");
    go_tx.send(()).unwrap();
    let second = within("second chunk", body.frame()).await.unwrap().unwrap();
    assert_eq!(second.into_data().unwrap(), "two");
    // HTTP/2 may end with an empty DATA frame carrying END_STREAM.
    let rest = within("end", body.collect()).await.unwrap().to_bytes();
    assert!(rest.is_empty(), "{rest:?}");
}

#[tokio::test]
async fn str_1_response_body_streams_http1() {
    response_body_streams(Speak::Http1, Protocols::HTTP1).await;
}

#[tokio::test]
async fn str_1_response_body_streams_h2c() {
    response_body_streams(Speak::H2c(100), Protocols::HTTP2).await;
}

// STR-6, POOL-1: after a streamed upload the connection is reused for the next request.
#[tokio::test]
async fn streamed_upload_then_reuse() {
    let (seen_tx, _seen) = mpsc::unbounded_channel();
    let backend = TestBackend::start(Speak::Http1, chunk_reporter(seen_tx)).await;
    let pool = kit::pool(4);
    let target = backend.target(Protocols::HTTP1);
    for _ in 0..3 {
        let (chunks, body) = channel_body();
        let req = Request::post("/upload").body(body).unwrap();
        let feed = tokio::spawn(async move {
            for _ in 0..16 {
                chunks
                    .send(Bytes::from(vec![b'x'; 64 * 1024]))
                    .await
                    .unwrap();
            }
        });
        let res = pool.send(&target, req).await.unwrap();
        assert_eq!(kit::text(res).await, (16 * 64 * 1024).to_string());
        feed.await.unwrap();
    }
    assert_eq!(backend.counters.accepted(), 1);
}

/// A request body that never ends: 256 KiB chunks for as long as it is read.
struct Endless;

impl http_body::Body for Endless {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(
            vec![b'x'; 256 * 1024],
        )))))
    }
}

// ERR-4, TMO-2, POOL-2: an upload its caller gives up before the response head (its own timeout,
// its client gone), toward a backend that stopped reading, closes its connection at once: the
// pool slot is free again. hyper alone would first flush the body it buffered, which a backend
// that reads nothing never lets it do.
#[tokio::test(start_paused = true)]
async fn abandoned_upload_to_a_backend_that_stopped_reading_frees_its_connection() {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (head_tx, head_rx) = oneshot::channel();
    // Reads the request head, then nothing more, keeping the socket open.
    let backend = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.unwrap();
            seen.extend_from_slice(&buf[..n]);
        }
        let _ = head_tx.send(());
        std::future::pending::<()>().await;
        drop(socket);
    });
    let target = reverseit_pool::Target::new(
        reverseit_core::Backend::parse(&format!("http://{addr}")).unwrap(),
    )
    .build()
    .unwrap();
    let pool = kit::pool(1);
    let req = Request::post("/upload").body(Endless).unwrap();
    // Boxed, so that `drop` below drops the exchange itself.
    let mut send = Box::pin(pool.send(&target, req));
    tokio::select! {
        r = &mut send => panic!("the backend answered nothing, yet: {r:?}"),
        _ = head_rx => {}
    }
    // On the paused clock, this sleep ends only once every task waits: the socket is full and
    // hyper holds the rest of the body in its buffer.
    tokio::select! {
        r = &mut send => panic!("the backend answered nothing, yet: {r:?}"),
        () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
    }
    assert_eq!(pool.stats(&target).open, 1);
    drop(send);
    kit::until("the abandoned connection closed", || {
        pool.stats(&target).open == 0
    })
    .await;
    backend.abort();
}
