//! Limits and malformed requests, checked before the backend is contacted where possible.

mod support;

use std::time::Duration;

use http::{Request, Response, StatusCode};
use reverseit_core::{RouteConfig, SizeLimit};
use support::*;

fn route(backend: &Backend) -> reverseit_core::RouteConfigBuilder {
    RouteConfig::builder(backend.url())
}

// LIM-1: a request target over max_request_target_bytes → 414.
#[tokio::test]
async fn lim_1_long_target_414() {
    let backend = Backend::start(Speaks::Http1, echo).await;
    let proxy = Proxy::start(
        route(&backend)
            .max_request_target_bytes(64)
            .build()
            .unwrap(),
    )
    .await;
    let (status, _, _) = get(&proxy.url(&format!("/{}", "a".repeat(40)))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, headers, body) = get(&proxy.url(&format!("/x?{}", "a".repeat(70)))).await;
    assert_eq!(status, StatusCode::URI_TOO_LONG);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(!body.is_empty());
    assert_eq!(
        backend.connections(),
        1,
        "only the accepted request reached the backend"
    );
}

// LIM-2: too many headers, one line too long, or the block too large → 431.
#[tokio::test]
async fn lim_2_header_limits_431() {
    let backend = Backend::start(Speaks::Http1, echo).await;
    let proxy = Proxy::start(
        route(&backend)
            .max_request_headers(10)
            .max_request_header_line_bytes(200)
            .max_request_header_bytes(1_000)
            .build()
            .unwrap(),
    )
    .await;
    let mut many = Request::get(proxy.url("/"));
    for i in 0..12 {
        many = many.header(format!("x-h{i}"), "v");
    }
    let long_line = Request::get(proxy.url("/")).header("x-long", "v".repeat(300));
    let mut big_block = Request::get(proxy.url("/"));
    for i in 0..6 {
        big_block = big_block.header(format!("x-b{i}"), "v".repeat(180));
    }
    for req in [many, long_line, big_block] {
        let (status, _, _) = fetch(&client(), req.body(empty()).unwrap()).await;
        assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
    assert_eq!(backend.connections(), 0);
}

// LIM-3: a declared Content-Length over the limit → 413 without contacting the backend.
#[tokio::test]
async fn lim_3_declared_length_over_limit_413() {
    let backend = Backend::start(Speaks::Http1, echo).await;
    let proxy = Proxy::start(
        route(&backend)
            .max_request_body_size(SizeLimit::Bytes(1_000))
            .build()
            .unwrap(),
    )
    .await;
    let req = Request::post(proxy.url("/"))
        .body(full(vec![b'x'; 2_000]))
        .unwrap();
    let (status, _, _) = fetch(&client(), req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(backend.connections(), 0);
}

// LIM-3: a chunked body crossing the limit → 413 (the response had not started).
#[tokio::test]
async fn lim_3_streamed_body_over_limit_413() {
    let backend = Backend::start(Speaks::Http1, echo).await;
    let proxy = Proxy::start(
        route(&backend)
            .max_request_body_size(SizeLimit::Bytes(1_000))
            .request_body_buffer_size(100)
            .build()
            .unwrap(),
    )
    .await;
    let mut request = String::from(
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    );
    for _ in 0..3 {
        request.push_str(&format!("1f4\r\n{}\r\n", "y".repeat(500)));
    }
    request.push_str("0\r\n\r\n");
    let answer = raw_exchange(proxy.addr, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

// LIM-3, ERR-6: an invalid or conflicting Content-Length → 400 and the connection closes.
#[tokio::test]
async fn lim_3_invalid_content_length_400() {
    let backend = Backend::start(Speaks::Http1, echo).await;
    let proxy = Proxy::start(route(&backend).build().unwrap()).await;
    for cl in ["abc", "-1", "5, 6", "99999999999999999999999"] {
        let request = format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {cl}\r\n\r\nhello");
        let answer = raw_exchange(proxy.addr, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{cl}: {answer}");
    }
    assert_eq!(backend.connections(), 0);
}

// ERR-6: requests RFC 9112 says to reject are answered 400, never forwarded.
#[tokio::test]
async fn err_6_malformed_requests_refused() {
    let backend = Backend::start(Speaks::Http1, echo).await;
    let proxy = Proxy::start(route(&backend).build().unwrap()).await;
    let cases: &[(&str, &str)] = &[
        ("missing Host", "GET / HTTP/1.1\r\n\r\n"),
        (
            "repeated Host",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        ),
        ("space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n"),
        (
            "differing Content-Length",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        ),
        (
            "TE not ending in chunked",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        ),
        (
            "a coding besides chunked",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        ),
        (
            "invalid chunk size",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "malformed request line",
            "GET /a b c HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
    ];
    for (what, request) in cases {
        let answer = raw_exchange(proxy.addr, request.as_bytes()).await;
        let refused = answer.starts_with("HTTP/1.1 400") || answer.starts_with("HTTP/1.1 501");
        assert!(refused, "{what}: {answer}");
        assert!(
            !answer.contains("body-length"),
            "{what} reached the backend: {answer}"
        );
    }
}

// ERR-6: an invalid chunk size after the body began streaming to the backend (past
// `request_body_buffer_size`) is still the client's 400 while no response has started.
#[tokio::test]
async fn err_6_invalid_chunk_mid_stream_400() {
    let backend = Backend::start(Speaks::Http1, echo).await;
    let proxy = Proxy::start(
        route(&backend)
            .request_body_buffer_size(16)
            .build()
            .unwrap(),
    )
    .await;
    let mut request =
        String::from("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    for _ in 0..8 {
        request.push_str("a\r\n0123456789\r\n");
    }
    request.push_str("zz\r\n");
    let answer = raw_exchange(proxy.addr, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("\r\n\r\nBad Request"), "{answer}");
}

// ERR-6: `Upgrade: h2c` is never forwarded; the request is proxied as plain HTTP/1.1.
#[tokio::test]
async fn err_6_upgrade_h2c_not_forwarded() {
    let backend = Backend::start(Speaks::Http1, echo).await;
    let proxy = Proxy::start(route(&backend).build().unwrap()).await;
    let request = "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nConnection: close\r\n\r\n";
    let answer = raw_exchange(proxy.addr, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let lower = answer.to_ascii_lowercase();
    assert!(!lower.contains("upgrade: h2c"), "{answer}");
    assert!(!lower.contains("http2-settings"), "{answer}");
}

// ERR-5: garbage never panics or hangs the proxy; it keeps serving afterwards.
#[tokio::test]
async fn err_5_garbage_does_not_break_the_proxy() {
    let backend = Backend::start(Speaks::Http1, echo).await;
    let proxy = Proxy::start(route(&backend).build().unwrap()).await;
    let inputs: &[&[u8]] = &[
        b"\x00\x01\x02\x03\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: \xff\xfe\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00\xff\xff",
        b"GET http://[::1 HTTP/1.1\r\nHost: a\r\n\r\n",
    ];
    for input in inputs {
        let answer =
            tokio::time::timeout(Duration::from_secs(5), raw_exchange_eof(proxy.addr, input))
                .await
                .unwrap_or_else(|_| panic!("{input:?}: the proxy answers or closes, never hangs"));
        assert!(
            !answer.contains("body-length"),
            "{input:?} reached the backend: {answer}"
        );
    }
    let (status, _, _) = get(&proxy.url("/still-alive")).await;
    assert_eq!(status, StatusCode::OK);
}

// LIM-5: a response Content-Length over max_response_body_size → 502 "Bad Gateway: Response too
// large"; HEAD is exempt.
#[tokio::test]
async fn lim_5_response_too_large() {
    let backend = Backend::start(Speaks::Http1, |_req| async {
        Response::new(full(vec![b'z'; 5_000]))
    })
    .await;
    let proxy = Proxy::start(
        route(&backend)
            .max_response_body_size(SizeLimit::Bytes(1_000))
            .build()
            .unwrap(),
    )
    .await;
    let (status, _, body) = get(&proxy.url("/")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body, "Bad Gateway: Response too large");
    let req = Request::head(proxy.url("/")).body(empty()).unwrap();
    let (status, headers, _) = fetch(&client(), req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-length"], "5000");
}

// LIM-5: a chunked response crossing the limit aborts the client connection before more than the
// limit reaches it.
#[tokio::test]
async fn lim_5_streamed_response_over_limit_aborts() {
    let backend = Backend::start(Speaks::Http1, |_req| async {
        let chunks = (0..10).map(|_| {
            Ok::<_, reverseit_core::BoxError>(http_body::Frame::data(bytes::Bytes::from(vec![
                b'z';
                500
            ])))
        });
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(chunks));
        Response::new(http_body_util::BodyExt::boxed(body))
    })
    .await;
    let proxy = Proxy::start(
        route(&backend)
            .max_response_body_size(SizeLimit::Bytes(1_200))
            .build()
            .unwrap(),
    )
    .await;
    let request = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    let answer = raw_exchange(proxy.addr, request.as_bytes()).await;
    let body_bytes = answer.matches('z').count();
    assert!(
        body_bytes <= 1_200,
        "{body_bytes} body bytes reached the client"
    );
    assert!(
        !answer.ends_with("0\r\n\r\n"),
        "the response must not end cleanly"
    );
}
