//! Bodies through the proxy: streaming, back-pressure, sizes counted exactly, keep-alive.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use reverseit_core::{BoxError, RouteConfig};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

fn route(backend: &Backend) -> reverseit_core::RouteConfigBuilder {
    RouteConfig::builder(backend.url())
}

/// A body fed by the test through a channel.
fn channel_body() -> (mpsc::Sender<Bytes>, Body) {
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let stream = tokio_stream(rx).map(|b| Ok::<_, BoxError>(Frame::data(b)));
    (tx, BodyExt::boxed(StreamBody::new(stream)))
}

fn tokio_stream(mut rx: mpsc::Receiver<Bytes>) -> impl futures_util::Stream<Item = Bytes> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A handler that counts the body it receives and answers with the count.
async fn count_body(req: Request<hyper::body::Incoming>) -> Response<Body> {
    let mut body = req.into_body();
    let mut n: u64 = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("body frame").into_data() {
            n += data.len() as u64;
        }
    }
    Response::new(full(n.to_string()))
}

/// A streamed body of `total` bytes in `chunk`-sized frames.
fn sized_body(total: usize, chunk: usize) -> Body {
    let frames = (0..total.div_ceil(chunk)).map(move |i| {
        let len = chunk.min(total - i * chunk);
        Ok::<_, BoxError>(Frame::data(Bytes::from(vec![b'a' + (i % 26) as u8; len])))
    });
    BodyExt::boxed(StreamBody::new(futures_util::stream::iter(frames)))
}

// STR-1: the first chunk of a slow response reaches the client before the backend sends the second.
#[tokio::test]
async fn str_1_first_chunk_arrives_before_the_second_is_sent() {
    let (first_seen_tx, first_seen_rx) = oneshot::channel::<()>();
    let first_seen_rx = Arc::new(tokio::sync::Mutex::new(Some(first_seen_rx)));
    let backend = Backend::start(Speaks::Http1, move |_req| {
        let gate = first_seen_rx.clone();
        async move {
            let (tx, body) = channel_body();
            tokio::spawn(async move {
                tx.send(Bytes::from_static(b"data: one\n\n")).await.unwrap();
                // The second chunk is sent only once the client has seen the first.
                let rx = gate.lock().await.take().unwrap();
                rx.await.unwrap();
                tx.send(Bytes::from_static(b"data: two\n\n")).await.unwrap();
            });
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(body)
                .unwrap()
        }
    })
    .await;
    let proxy = Proxy::start(route(&backend).build().unwrap()).await;
    let resp = client()
        .request(Request::get(proxy.url("/sse")).body(empty()).unwrap())
        .await
        .unwrap();
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "data: one\n\n");
    first_seen_tx.send(()).unwrap();
    let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(second, "data: two\n\n");
}

// STR-3, STR-2: a client that does not read bounds what the backend can push through the proxy.
#[tokio::test]
async fn str_3_slow_client_bounds_buffered_bytes() {
    let pushed = Arc::new(AtomicU64::new(0));
    let counter = pushed.clone();
    let backend = Backend::start(Speaks::Http1, move |_req| {
        let counter = counter.clone();
        async move {
            let (tx, body) = channel_body();
            tokio::spawn(async move {
                // Up to 1 GiB, as fast as the proxy accepts it.
                for _ in 0..(1 << 14) {
                    if tx.send(Bytes::from(vec![b'x'; 64 * 1024])).await.is_err() {
                        return;
                    }
                    counter.fetch_add(64 * 1024, Ordering::SeqCst);
                }
            });
            Response::new(body)
        }
    })
    .await;
    let proxy = Proxy::start(route(&backend).build().unwrap()).await;
    let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 16];
    stream.read_exact(&mut head).await.unwrap();
    assert!(head.starts_with(b"HTTP/1.1 200"));
    // Wait until the backend stops making progress: the pipes are full.
    wait_until_stalled(&pushed).await;
    let stalled_at = pushed.load(Ordering::SeqCst);
    // Kernel socket buffers on both sides plus hyper's buffers: a few MiB at most, never the GiB.
    assert!(
        stalled_at < 32 * 1024 * 1024,
        "{stalled_at} bytes pushed while the client read nothing"
    );
    // Reading resumes the flow.
    let mut buf = vec![0u8; 1 << 20];
    let mut read = 0;
    while read < 8 << 20 {
        read += stream.read(&mut buf).await.unwrap();
    }
    assert!(pushed.load(Ordering::SeqCst) > stalled_at);
}

/// Returns once `counter` has stopped moving: every buffer between the writer and a reader that
/// does not read is full. Polls on short timer ticks; a stalled flow passes the check at once.
async fn wait_until_stalled(counter: &AtomicU64) {
    let mut last = u64::MAX;
    loop {
        let now = counter.load(Ordering::SeqCst);
        if now == last && now > 0 {
            return;
        }
        last = now;
        // Enough turns for every task on the path to move if it can.
        for _ in 0..1_000 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

// STR-2: a client uploading to a backend that does not read can only push a bounded amount into
// the proxy, however large its body; once the backend reads, the whole upload arrives.
#[tokio::test]
async fn str_2_upload_to_a_stalled_backend_is_bounded() {
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let go = Arc::new(tokio::sync::Mutex::new(Some(go_rx)));
    let backend = Backend::start(Speaks::Http1, move |req| {
        let go = go.clone();
        async move {
            if let Some(rx) = go.lock().await.take() {
                let _ = rx.await;
            }
            count_body(req).await
        }
    })
    .await;
    let proxy = Proxy::start(route(&backend).build().unwrap()).await;
    let sent = Arc::new(AtomicU64::new(0));
    let (tx, body) = channel_body();
    let total: u64 = 96 << 20; // under the default 100 MiB limit, well over the bound below
    let feeder = tokio::spawn({
        let sent = sent.clone();
        async move {
            let chunk = Bytes::from(vec![b'u'; 64 * 1024]);
            while sent.load(Ordering::SeqCst) < total {
                if tx.send(chunk.clone()).await.is_err() {
                    return;
                }
                sent.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            }
        }
    });
    let req = Request::post(proxy.url("/up")).body(body).unwrap();
    let response = tokio::spawn(fetch_owned(req));
    wait_until_stalled(&sent).await;
    let stalled_at = sent.load(Ordering::SeqCst);
    assert!(
        stalled_at < 32 << 20,
        "{stalled_at} bytes taken in while the backend read nothing"
    );
    go_tx.send(()).unwrap();
    let (status, _, body) = response.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, total.to_string());
    feeder.await.unwrap();
}

async fn fetch_owned(req: Request<Body>) -> (StatusCode, http::HeaderMap, Bytes) {
    fetch(&client(), req).await
}

// STR-5: informational responses from the backend (103, an unsolicited 100) are not forwarded as
// the final response; the client gets the 200 that follows.
#[tokio::test]
async fn str_5_backend_1xx_not_final() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n\
                          HTTP/1.1 100 Continue\r\n\r\n\
                          HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal",
                    )
                    .await;
                let _ = s.read(&mut buf).await;
            });
        }
    });
    let proxy = Proxy::start(RouteConfig::builder(url).build().unwrap()).await;
    let (status, _, body) = get(&proxy.url("/")).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, Bytes::from_static(b"final"))
    );
    server.abort();
}

// The original's streaming tests: a 15 MiB chunked upload counted exactly, and a 1 KiB one.
#[tokio::test]
async fn chunked_uploads_counted_exactly() {
    let backend = Backend::start(Speaks::Http1, count_body).await;
    let proxy = Proxy::start(route(&backend).build().unwrap()).await;
    for total in [15 << 20, 1024] {
        let req = Request::post(proxy.url("/upload"))
            .body(sized_body(total, 64 * 1024 - 7))
            .unwrap();
        let (status, _, body) = fetch(&client(), req).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, total.to_string());
    }
}

// STR-6 and POOL-1: after a 2 MiB upload the client's connection stays usable, and the second
// upload reuses the first's backend connection.
#[tokio::test]
async fn str_6_keep_alive_after_upload_and_backend_reuse() {
    let backend = Backend::start(Speaks::Http1, count_body).await;
    let proxy = Proxy::start(route(&backend).build().unwrap()).await;
    let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    for _ in 0..2 {
        let body = vec![b'u'; 2 << 20];
        let head = format!(
            "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&body).await.unwrap();
        let answer = read_response(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with(&(2 << 20).to_string()), "{answer}");
    }
    assert_eq!(backend.connections(), 1);
}

/// Reads one response with a Content-Length body from a raw stream.
async fn read_response(stream: &mut tokio::net::TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.unwrap();
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await.unwrap();
    head + &String::from_utf8_lossy(&body)
}

// The original's download test: 20 MiB exact; and upload then download of 15 MiB.
#[tokio::test]
async fn downloads_exact() {
    let backend = Backend::start(
        Speaks::Http1,
        |req: Request<hyper::body::Incoming>| async move {
            let size: usize = req.uri().query().unwrap_or("0").parse().unwrap();
            Response::new(sized_body(size, 100_000))
        },
    )
    .await;
    let proxy = Proxy::start(route(&backend).build().unwrap()).await;
    for size in [20 << 20, 15 << 20] {
        let (status, _, body) = get(&proxy.url(&format!("/dl?{size}"))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.len(), size);
        assert_eq!(body[size - 1], b'a' + (((size - 1) / 100_000) % 26) as u8);
    }
}

// The original's three concurrent 12 MiB uploads.
#[tokio::test]
async fn three_concurrent_uploads() {
    let backend = Backend::start(Speaks::Http1, count_body).await;
    let proxy = Proxy::start(route(&backend).build().unwrap()).await;
    let c = client();
    let uploads = (0..3).map(|_| {
        let req = Request::post(proxy.url("/up"))
            .body(sized_body(12 << 20, 50_000))
            .unwrap();
        fetch(&c, req)
    });
    for (status, _, body) in futures_util::future::join_all(uploads).await {
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, (12 << 20).to_string());
    }
}

// STR-4: HEAD keeps the backend's Content-Length and carries no body; 204 and 304 carry none.
#[tokio::test]
async fn str_4_head_204_304() {
    let backend = Backend::start(
        Speaks::Http1,
        |req: Request<hyper::body::Incoming>| async move {
            match req.uri().path() {
                "/204" => Response::builder().status(204).body(empty()).unwrap(),
                "/304" => Response::builder().status(304).body(empty()).unwrap(),
                _ => Response::new(full("twelve bytes")),
            }
        },
    )
    .await;
    let proxy = Proxy::start(route(&backend).build().unwrap()).await;
    let req = Request::head(proxy.url("/")).body(empty()).unwrap();
    let (status, headers, body) = fetch(&client(), req).await;
    assert_eq!((status, body.len()), (StatusCode::OK, 0));
    assert_eq!(headers["content-length"], "12");
    for code in [204, 304] {
        let (status, _, body) = get(&proxy.url(&format!("/{code}"))).await;
        assert_eq!(status.as_u16(), code);
        assert!(body.is_empty());
    }
}

// STR-7: a backend that answers 413 early while the client still uploads has its answer relayed.
// The backend closes as a well-behaved server does (RFC 9112 §9.6): it stops reading only after
// the client stopped sending, so its answer is not lost to a reset.
#[tokio::test]
async fn str_7_early_backend_answer_relayed() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        s.write_all(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 14\r\nConnection: close\r\n\r\ntoo big for me")
            .await
            .unwrap();
        // Lingering close: drain what the proxy still sends until it gives up.
        let mut sink = vec![0u8; 64 * 1024];
        while let Ok(n) = s.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    });
    let proxy = Proxy::start(
        RouteConfig::builder(url)
            .request_body_buffer_size(1024)
            .build()
            .unwrap(),
    )
    .await;
    let (tx, body) = channel_body();
    let feeder = tokio::spawn(async move {
        for _ in 0..4 {
            if tx.send(Bytes::from(vec![b'x'; 64 * 1024])).await.is_err() {
                break;
            }
        }
        // The rest of the upload never comes: only the early answer can end this request.
        std::future::pending::<()>().await;
    });
    let req = Request::post(proxy.url("/up")).body(body).unwrap();
    let resp = tokio::time::timeout(std::time::Duration::from_secs(10), client().request(req))
        .await
        .expect("the early answer arrives while the upload is unfinished")
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "too big for me");
    feeder.abort();
    server.abort();
}

/// Answers with the request's body, and its `Content-Length` line in `x-got-length`.
async fn mirror_body(req: Request<hyper::body::Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let length = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_else(|| "none".to_owned());
    let bytes = body.collect().await.expect("body").to_bytes();
    Response::builder()
        .header("x-got-length", length)
        .body(full(bytes))
        .unwrap()
}

// LIM-4: a chunked upload of one-byte chunks, within the buffer size, is buffered and reaches the
// backend whole, in order, with its Content-Length (the proxy joins small pieces as it buffers).
#[tokio::test]
async fn lim_4_upload_of_one_byte_chunks_arrives_whole() {
    let backend = Backend::start(Speaks::Http1, mirror_body).await;
    let proxy = Proxy::start(route(&backend).build().unwrap()).await;
    let body: Vec<u8> = (0..20_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut request =
        b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for byte in &body {
        request.extend_from_slice(b"1\r\n");
        request.push(*byte);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    stream.write_all(&request).await.unwrap();
    let answer = read_response(&mut stream).await;
    let (head, echoed_body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("x-got-length: 20000"),
        "{head}"
    );
    assert_eq!(echoed_body.as_bytes(), body.as_slice());
}
