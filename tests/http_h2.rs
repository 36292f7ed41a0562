//! HTTP/2 toward clients and backends, and trailers.

mod support;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Version};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use reverseit_core::{BoxError, Protocol, RouteConfig};
use support::*;

/// A route that speaks prior-knowledge h2c to its backend.
fn h2_route(url: &str) -> reverseit_core::RouteConfigBuilder {
    RouteConfig::builder(url).protocols(&[Protocol::Http2])
}

/// A handler that reports the protocol version it was spoken to with.
async fn version(req: Request<hyper::body::Incoming>) -> Response<Body> {
    Response::new(full(format!("{:?}", req.version())))
}

// H2-1: HTTP/1.1 and h2c clients, to HTTP/1.1 and h2c backends, in every combination.
#[tokio::test]
async fn h2_1_every_client_backend_combination() {
    let h1 = Backend::start(Speaks::Http1, version).await;
    let h2 = Backend::start(Speaks::H2c, version).await;
    let to_h1 = Proxy::start(RouteConfig::builder(h1.url()).build().unwrap()).await;
    let to_h2 = Proxy::start(h2_route(&h2.url()).build().unwrap()).await;
    for (proxy, backend_version) in [(&to_h1, "HTTP/1.1"), (&to_h2, "HTTP/2.0")] {
        for c in [client(), h2_client()] {
            let req = Request::get(proxy.url("/v")).body(empty()).unwrap();
            let (status, _, body) = fetch(&c, req).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body, backend_version);
        }
    }
    let resp = h2_client()
        .request(Request::get(to_h1.url("/v")).body(empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        resp.version(),
        Version::HTTP_2,
        "the proxy speaks h2c to the client"
    );
}

/// A gRPC-like handler: echoes each request frame back as it arrives, then ends with trailers.
async fn grpc_echo(req: Request<hyper::body::Incoming>) -> Response<Body> {
    let te = req
        .headers()
        .get("te")
        .map(|v| v.to_str().unwrap().to_owned());
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
    let mut body = req.into_body();
    tokio::spawn(async move {
        let mut count = 0;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => {
                    // An empty DATA frame only carries END_STREAM: not a message.
                    if let Some(data) = f.into_data().ok().filter(|d| !d.is_empty()) {
                        count += 1;
                        let _ = tx.send(Ok(Frame::data(data))).await;
                    }
                }
                Err(_) => return,
            }
        }
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        trailers.insert("x-messages", count.to_string().parse().unwrap());
        trailers.insert("x-te", te.unwrap_or_default().parse().unwrap());
        let _ = tx.send(Ok(Frame::trailers(trailers))).await;
    });
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Response::builder()
        .header("content-type", "application/grpc")
        .body(StreamBody::new(stream).boxed())
        .unwrap()
}

// H2-2, HDR-8, HDR-1: a streaming gRPC-like call through h2 client → proxy → h2 backend: messages
// flow both ways while the call is open, trailers come back, `te: trailers` reaches the backend.
#[tokio::test]
async fn h2_2_grpc_streaming_with_trailers() {
    let backend = Backend::start(Speaks::H2c, grpc_echo).await;
    let proxy = Proxy::start(h2_route(&backend.url()).build().unwrap()).await;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let req = Request::post(proxy.url("/pkg.Service/Chat"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(StreamBody::new(stream).boxed())
        .unwrap();
    tx.send(Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\x01a"))))
        .await
        .unwrap();
    let resp = h2_client().request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    // Bidirectional: the first reply arrives while the request stream is still open.
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, &b"\0\0\0\0\x01a"[..]);
    tx.send(Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\x01b"))))
        .await
        .unwrap();
    let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(second, &b"\0\0\0\0\x01b"[..]);
    drop(tx);
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        if let Ok(t) = frame.unwrap().into_trailers() {
            trailers = Some(t);
        }
    }
    let trailers = trailers.expect("trailers reach the client");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["x-messages"], "2");
    assert_eq!(trailers["x-te"], "trailers");
}

// HDR-8: trailers reach an HTTP/1.1 client that sent `TE: trailers`, over chunked encoding.
#[tokio::test]
async fn hdr_8_trailers_to_http1_client() {
    let backend = Backend::start(Speaks::H2c, grpc_echo).await;
    let proxy = Proxy::start(h2_route(&backend.url()).build().unwrap()).await;
    let request = "POST / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc";
    let answer = raw_exchange(proxy.addr, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("grpc-status: 0"), "{answer}");
}

// HDR-8: an HTTP/1.1 backend's announced trailers reach an HTTP/1.1 client that takes trailers,
// and not one that did not ask for them; HDR-1: the client's `TE` stays on its own hop.
#[tokio::test]
async fn hdr_8_http1_backend_trailers() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (heads_tx, mut heads) = tokio::sync::mpsc::unbounded_channel::<String>();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            let _ = heads_tx.send(String::from_utf8_lossy(&buf[..n]).to_lowercase());
            let answer = b"HTTP/1.1 200 OK\r\nTrailer: x-checksum\r\nTransfer-Encoding: chunked\r\n\r\n7\r\npayload\r\n0\r\nx-checksum: abc123\r\n\r\n";
            if s.write_all(answer).await.is_err() {
                break;
            }
        }
    });
    let proxy = Proxy::start(RouteConfig::builder(url).build().unwrap()).await;
    let with = "GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\nConnection: close\r\n\r\n";
    let answer = raw_exchange(proxy.addr, with.as_bytes()).await;
    assert!(answer.contains("x-checksum: abc123"), "{answer}");
    let head = heads.recv().await.unwrap();
    assert!(!head.contains("\r\nte:"), "{head}");
    let without = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    let answer = raw_exchange(proxy.addr, without.as_bytes()).await;
    assert!(answer.contains("payload"), "{answer}");
    assert!(!answer.contains("x-checksum"), "{answer}");
    server.abort();
}

/// Reports the `:authority` and the `Host` header the backend received.
async fn authority(req: Request<hyper::body::Incoming>) -> Response<Body> {
    let authority = req
        .uri()
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let host = req
        .headers()
        .get("host")
        .map(|h| h.to_str().unwrap().to_owned())
        .unwrap_or_default();
    Response::new(full(format!("authority={authority} host={host}")))
}

// HDR-4 toward an HTTP/2 backend: the Host the policy chose travels as `:authority`, alone.
#[tokio::test]
async fn hdr_4_host_becomes_authority_toward_h2() {
    let backend = Backend::start(Speaks::H2c, authority).await;
    let to_backend_host = Proxy::start(h2_route(&backend.url()).build().unwrap()).await;
    let (_, _, body) = get(&to_backend_host.url("/")).await;
    assert_eq!(body, format!("authority={} host=", backend.addr));

    let preserving = Proxy::start(
        h2_route(&backend.url())
            .preserve_host_header(true)
            .build()
            .unwrap(),
    )
    .await;
    let req = Request::get(preserving.url("/"))
        .header("host", "public.example")
        .body(empty())
        .unwrap();
    let (_, _, body) = fetch(&client(), req).await;
    assert_eq!(body, "authority=public.example host=");
}

// LIM-4, H2-1: a small body from an HTTP/2 client that announced no length is buffered and reaches
// an HTTP/1.1 backend with its Content-Length, not chunked.
#[tokio::test]
async fn lim_4_h2_body_without_length_gets_one() {
    let backend = Backend::start(Speaks::Http1, echo).await;
    let proxy = Proxy::start(RouteConfig::builder(backend.url()).build().unwrap()).await;
    let frames = vec![Ok::<_, BoxError>(Frame::data(Bytes::from_static(
        b"0123456789",
    )))];
    let body = StreamBody::new(futures_util::stream::iter(frames)).boxed();
    let req = Request::post(proxy.url("/up")).body(body).unwrap();
    let (status, _, dump) = fetch(&h2_client(), req).await;
    assert_eq!(status, StatusCode::OK);
    let dump = String::from_utf8_lossy(&dump);
    assert_eq!(echoed(&dump, "content-length"), ["10"], "{dump}");
    assert!(echoed(&dump, "transfer-encoding").is_empty(), "{dump}");
    assert_eq!(echoed(&dump, "body-length"), ["10"]);
}
