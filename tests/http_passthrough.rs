//! Pass-through: the same requests direct and through the proxy; the proxy changes nothing but what
//! the policy says.

mod support;

use http::{Request, Response, StatusCode};
use reverseit_core::RouteConfig;
use support::*;

/// Everything of an echo dump except the lines the policy is allowed to change.
fn policy_free(dump: &str) -> Vec<&str> {
    dump.lines()
        .filter(|l| !(l.starts_with("host: ") || l.starts_with("x-forwarded-")))
        .collect()
}

// The original's pass-through tests: GET, POST form, JSON, with the backend's status passed on.
#[tokio::test]
async fn get_post_json_pass_through_unchanged() {
    let backend = Backend::start(Speaks::Http1, echo).await;
    let proxy = Proxy::start(RouteConfig::builder(backend.url()).build().unwrap()).await;
    let requests = |base: String| {
        vec![
            Request::get(format!("{base}/items?id=7&sort=desc"))
                .header("accept", "application/json")
                .header("authorization", "Bearer t0k3n")
                .header("cookie", "s=1")
                .body(empty())
                .unwrap(),
            Request::post(format!("{base}/form"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(full("a=1&b=two"))
                .unwrap(),
            Request::put(format!("{base}/json"))
                .header("content-type", "application/json")
                .body(full(r#"{"name":"reverseit","n":[1,2,3]}"#))
                .unwrap(),
        ]
    };
    let direct = requests(backend.url());
    let proxied = requests(format!("http://{}", proxy.addr));
    for (d, p) in direct.into_iter().zip(proxied) {
        let (ds, _, dbody) = fetch(&client(), d).await;
        let (ps, _, pbody) = fetch(&client(), p).await;
        assert_eq!(ds, ps);
        let (dd, pd) = (
            String::from_utf8_lossy(&dbody),
            String::from_utf8_lossy(&pbody),
        );
        assert_eq!(policy_free(&dd), policy_free(&pd));
    }
}

// The original's "backend 404 passed through", body included.
#[tokio::test]
async fn backend_status_and_body_passed_through() {
    let backend = Backend::start(Speaks::Http1, |_req| async {
        Response::builder()
            .status(404)
            .header("content-type", "application/json")
            .body(full(r#"{"error":"not found"}"#))
            .unwrap()
    })
    .await;
    let proxy = Proxy::start(RouteConfig::builder(backend.url()).build().unwrap()).await;
    let (status, headers, body) = get(&proxy.url("/missing")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body, r#"{"error":"not found"}"#);
}

// The original's IPv6 literal backend.
#[tokio::test]
async fn ipv6_literal_backend() {
    let Ok(listener) = tokio::net::TcpListener::bind("[::1]:0").await else {
        panic!("this test needs IPv6 loopback ([::1]) on the machine");
    };
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let svc = hyper::service::service_fn(|req| async move {
            Ok::<_, std::convert::Infallible>(echo(req).await)
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
            .await;
    });
    let proxy = Proxy::start(
        RouteConfig::builder(format!("http://[::1]:{}/v6", addr.port()))
            .build()
            .unwrap(),
    )
    .await;
    let (status, _, body) = get(&proxy.url("/x")).await;
    assert_eq!(status, StatusCode::OK);
    let dump = String::from_utf8_lossy(&body);
    assert!(dump.starts_with("GET /v6/x"), "{dump}");
    assert_eq!(echoed(&dump, "host"), [format!("[::1]:{}", addr.port())]);
    server.abort();
}
