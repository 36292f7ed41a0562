//! Header and path policy through the running proxy, as the backend and the client see it.

mod support;

use http::{Request, Response, StatusCode};
use reverseit_core::{ForwardedHeaders, RouteConfig};
use support::*;

fn route(backend: &Backend) -> reverseit_core::RouteConfigBuilder {
    RouteConfig::builder(backend.url())
}

async fn dump_through(req: Request<Body>) -> String {
    let (status, _, body) = fetch(&client(), req).await;
    assert_eq!(status, StatusCode::OK);
    String::from_utf8(body.to_vec()).unwrap()
}

// HDR-1: hop-by-hop headers, and every header the client's Connection lines name, never reach the
// backend.
#[tokio::test]
async fn hdr_1_connection_nominated_and_hop_by_hop_stripped() {
    let backend = Backend::start(Speaks::Http1, echo).await;
    let proxy = Proxy::start(route(&backend).build().unwrap()).await;
    let req = Request::get(proxy.url("/x"))
        .header("connection", "keep-alive, X-Secret")
        .header("x-secret", "do not pass")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("te", "trailers, gzip")
        .header("x-kept", "yes")
        .body(empty())
        .unwrap();
    let dump = dump_through(req).await;
    for gone in [
        "x-secret",
        "keep-alive",
        "proxy-authorization",
        "te",
        "upgrade",
    ] {
        assert!(
            echoed(&dump, gone).is_empty(),
            "{gone} reached the backend:\n{dump}"
        );
    }
    assert_eq!(echoed(&dump, "x-kept"), ["yes"]);
}

// HDR-1, HDR-6: hop-by-hop headers in the response are removed, everything else kept in order,
// duplicates included; Content-Length kept.
#[tokio::test]
async fn hdr_6_response_headers_kept_in_order_hop_by_hop_removed() {
    let backend = Backend::start(Speaks::Http1, |_req| async {
        Response::builder()
            .header("set-cookie", "a=1")
            .header("set-cookie", "b=2")
            .header("connection", "x-internal")
            .header("x-internal", "secret")
            .header("keep-alive", "timeout=5")
            .header("proxy-authenticate", "Basic")
            .header("content-length", "5")
            .header("x-app", "kept")
            .body(full("hello"))
            .unwrap()
    })
    .await;
    let proxy = Proxy::start(route(&backend).build().unwrap()).await;
    let (status, headers, body) = get(&proxy.url("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "hello");
    let cookies: Vec<_> = headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    assert_eq!(headers["content-length"], "5");
    assert_eq!(headers["x-app"], "kept");
    for gone in ["x-internal", "keep-alive", "proxy-authenticate"] {
        assert!(headers.get(gone).is_none(), "{gone} reached the client");
    }
}

// HDR-2: Expect is consumed by the proxy; the client's body is proxied after its 100 Continue.
#[tokio::test]
async fn hdr_2_expect_continue_consumed() {
    let backend = Backend::start(Speaks::Http1, echo).await;
    let proxy = Proxy::start(route(&backend).build().unwrap()).await;
    let request = format!(
        "POST /upload HTTP/1.1\r\nHost: {}\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
        proxy.addr
    );
    let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 25];
    stream.read_exact(&mut buf).await.unwrap();
    assert!(
        String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 100 Continue"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
    stream.write_all(b"hello").await.unwrap();
    let mut rest = String::new();
    stream.read_to_string(&mut rest).await.unwrap();
    assert!(rest.contains("200 OK"), "{rest}");
    assert!(rest.contains("body-length: 5"), "{rest}");
    assert!(!rest.to_ascii_lowercase().contains("\nexpect:"), "{rest}");
}

// HDR-3: append mode adds the client's address to every incoming X-Forwarded-For line, in order,
// and sets Proto, Host and Port.
#[tokio::test]
async fn hdr_3_forwarded_append() {
    let backend = Backend::start(Speaks::Http1, echo).await;
    let proxy = Proxy::start(route(&backend).build().unwrap()).await;
    let req = Request::get(proxy.url("/"))
        .header("x-forwarded-for", "10.0.0.1")
        .header("x-forwarded-for", "10.0.0.2, 10.0.0.3")
        .body(empty())
        .unwrap();
    let dump = dump_through(req).await;
    assert_eq!(
        echoed(&dump, "x-forwarded-for"),
        ["10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1"]
    );
    assert_eq!(echoed(&dump, "x-forwarded-proto"), ["http"]);
    assert_eq!(echoed(&dump, "x-forwarded-host"), [proxy.addr.to_string()]);
    assert_eq!(
        echoed(&dump, "x-forwarded-port"),
        [proxy.addr.port().to_string()]
    );
}

// HDR-3: a server that describes the connection itself (`call_with_client`) gets its client's
// address, scheme and port written, whatever a request extension says.
#[tokio::test]
async fn hdr_3_forwarded_from_call_with_client() {
    use http_body_util::BodyExt;
    use reverseit_core::headers::ClientInfo;

    let backend = Backend::start(Speaks::Http1, echo).await;
    let pool = reverseit_pool::Pool::new(reverseit_core::PoolConfig::default());
    let proxy = reverseit_hyper::ReverseProxy::new(pool, route(&backend).build().unwrap()).unwrap();
    let mut req = Request::get("/")
        .header("host", "front.example")
        .body(empty())
        .unwrap();
    let ignored = ClientInfo::new("10.1.1.1".parse().unwrap(), false, 80);
    req.extensions_mut().insert(ignored);
    let client = ClientInfo::new("192.0.2.7".parse().unwrap(), true, 8443);
    let resp = proxy.call_with_client(req, client).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let dump = String::from_utf8(body.to_vec()).unwrap();
    assert_eq!(echoed(&dump, "x-forwarded-for"), ["192.0.2.7"]);
    assert_eq!(echoed(&dump, "x-forwarded-proto"), ["https"]);
    assert_eq!(echoed(&dump, "x-forwarded-port"), ["8443"]);
    assert_eq!(echoed(&dump, "x-forwarded-host"), ["front.example"]);
}

// HDR-3: replace mode drops every spoofed forwarding line and writes its own.
#[tokio::test]
async fn hdr_3_forwarded_replace_drops_spoofed_lines() {
    let backend = Backend::start(Speaks::Http1, echo).await;
    let proxy = Proxy::start(
        route(&backend)
            .forwarded_headers(ForwardedHeaders::Replace)
            .build()
            .unwrap(),
    )
    .await;
    let req = Request::get(proxy.url("/"))
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-for", "7.7.7.7")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .header("forwarded", "for=6.6.6.6")
        .body(empty())
        .unwrap();
    let dump = dump_through(req).await;
    assert_eq!(echoed(&dump, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(echoed(&dump, "x-forwarded-proto"), ["http"]);
    assert_eq!(echoed(&dump, "x-forwarded-host"), [proxy.addr.to_string()]);
    assert!(echoed(&dump, "forwarded").is_empty(), "{dump}");
}

// HDR-3: forwarded_headers = false leaves the client's lines untouched.
#[tokio::test]
async fn hdr_3_forwarded_off_leaves_headers() {
    let backend = Backend::start(Speaks::Http1, echo).await;
    let proxy = Proxy::start(
        route(&backend)
            .forwarded_headers(ForwardedHeaders::Off)
            .build()
            .unwrap(),
    )
    .await;
    let req = Request::get(proxy.url("/"))
        .header("x-forwarded-for", "10.0.0.1")
        .body(empty())
        .unwrap();
    let dump = dump_through(req).await;
    assert_eq!(echoed(&dump, "x-forwarded-for"), ["10.0.0.1"]);
    assert!(echoed(&dump, "x-forwarded-proto").is_empty());
}

// HDR-4: the backend sees its own Host; preserve_host_header forwards the client's.
#[tokio::test]
async fn hdr_4_host_header() {
    let backend = Backend::start(Speaks::Http1, echo).await;
    let proxy = Proxy::start(route(&backend).build().unwrap()).await;
    let req = Request::get(proxy.url("/"))
        .header("host", "public.example")
        .body(empty())
        .unwrap();
    let dump = dump_through(req).await;
    assert_eq!(echoed(&dump, "host"), [backend.addr.to_string()]);

    let proxy = Proxy::start(route(&backend).preserve_host_header(true).build().unwrap()).await;
    let req = Request::get(proxy.url("/"))
        .header("host", "public.example")
        .body(empty())
        .unwrap();
    let dump = dump_through(req).await;
    assert_eq!(echoed(&dump, "host"), ["public.example"]);
}

// HDR-3, HDR-4: an absolute-form request target names the host the client asked for, over its
// `Host` line (RFC 9112 §3.2.2), as `X-Forwarded-Host` and, preserved, as `Host`.
#[tokio::test]
async fn hdr_3_4_absolute_form_authority_wins_over_host() {
    let backend = Backend::start(Speaks::Http1, echo).await;
    let request = b"GET http://asked.example:81/x HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n";
    let proxy = Proxy::start(route(&backend).build().unwrap()).await;
    let answer = raw_exchange(proxy.addr, request).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(echoed(&answer, "x-forwarded-host"), ["asked.example:81"]);
    assert_eq!(echoed(&answer, "host"), [backend.addr.to_string()]);
    assert!(answer.contains("GET /x\n"), "{answer}");

    let proxy = Proxy::start(route(&backend).preserve_host_header(true).build().unwrap()).await;
    let answer = raw_exchange(proxy.addr, request).await;
    assert_eq!(echoed(&answer, "host"), ["asked.example:81"]);
}

// HDR-5: remove_headers removes every line; add_headers replaces every line with one value.
#[tokio::test]
async fn hdr_5_add_and_remove_headers() {
    let backend = Backend::start(Speaks::Http1, echo).await;
    let proxy = Proxy::start(
        route(&backend)
            .remove_header("cookie")
            .add_header("x-api-key", "secret")
            .add_header("x-forwarded-proto", "https")
            .build()
            .unwrap(),
    )
    .await;
    let req = Request::get(proxy.url("/"))
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .header("x-api-key", "client-sent")
        .header("x-api-key", "twice")
        .body(empty())
        .unwrap();
    let dump = dump_through(req).await;
    assert!(echoed(&dump, "cookie").is_empty(), "{dump}");
    assert_eq!(echoed(&dump, "x-api-key"), ["secret"]);
    assert_eq!(echoed(&dump, "x-forwarded-proto"), ["https"]);
}

// HDR-7: a response header block over max_response_header_bytes → 502 before anything is sent.
#[tokio::test]
async fn hdr_7_oversized_response_headers_502() {
    let backend = Backend::start(Speaks::Http1, |_req| async {
        Response::builder()
            .header("x-big", "v".repeat(3_000))
            .body(full("never seen"))
            .unwrap()
    })
    .await;
    let proxy = Proxy::start(
        route(&backend)
            .max_response_header_bytes(1_024)
            .build()
            .unwrap(),
    )
    .await;
    let (status, _, body) = get(&proxy.url("/")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(!body.starts_with(b"never"));
}

// PATH-1, PATH-2, PATH-3: strip on a segment boundary, join the backend prefix with one slash,
// pass path bytes and the raw query through.
#[tokio::test]
async fn path_1_2_3_rewrite_through_the_proxy() {
    let backend = Backend::start(Speaks::Http1, echo).await;
    let url = format!("{}/v1", backend.url());
    let proxy = Proxy::start(
        RouteConfig::builder(url)
            .strip_path("/api")
            .build()
            .unwrap(),
    )
    .await;
    let cases = [
        ("/api/users", "/v1/users"),
        ("/api", "/v1/"),
        ("/api/", "/v1/"),
        ("/api/users/", "/v1/users/"),
        ("/apiary", "/v1/apiary"),
        ("/api/a%20b?q=%41&z=1&a=2", "/v1/a%20b?q=%41&z=1&a=2"),
    ];
    for (path, want) in cases {
        let req = Request::get(proxy.url(path)).body(empty()).unwrap();
        let dump = dump_through(req).await;
        let first = dump.lines().next().unwrap();
        assert_eq!(first, format!("GET {want}"), "{path}");
    }
}

// PATH-4: dot segments, literal or encoded, are refused with 400 and never forwarded.
#[tokio::test]
async fn path_4_dot_segments_refused() {
    let backend = Backend::start(Speaks::Http1, echo).await;
    let proxy = Proxy::start(route(&backend).strip_path("/api").build().unwrap()).await;
    for path in [
        "/api/../secret",
        "/api/%2e%2e/secret",
        "/api/.%2E/x",
        "/api/./x",
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let answer = raw_exchange(proxy.addr, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
    }
    assert_eq!(backend.connections(), 0, "nothing reached the backend");
}

// HDR-6 (RFC 9112 §6.3): a backend response with both `Content-Length` and chunked
// `Transfer-Encoding` is read by the coding, and reaches the client without the length: whole,
// and the connection stays usable for the next response.
#[tokio::test]
async fn hdr_6_chunked_response_with_content_length_loses_the_length() {
    let (url, _server) = canned_backend(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        false,
    )
    .await;
    let proxy = Proxy::start(RouteConfig::builder(url).build().unwrap()).await;
    let client = client();
    for _ in 0..2 {
        let resp = client
            .request(Request::get(proxy.url("/")).body(empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.headers().get("content-length").is_none());
        let body = http_body_util::BodyExt::collect(resp.into_body()).await;
        assert_eq!(body.unwrap().to_bytes(), "ok");
    }
}
