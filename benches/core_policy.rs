//! What `reverseit-core` costs on every proxied request: the header policy, the path rewrite and
//! the head limits.
//!
//! Run with `cargo bench --bench core_policy` (add `-- --quick` for a fast pass).

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::header::HOST;
use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use reverseit_core::{
    ClientInfo, ForwardedHeaders, HeaderPolicy, PathRewrite, RequestLimits, RouteConfig, Upstream,
};

/// Eight maps per batch: a proxied request's headers were just parsed and sit in cache, while
/// `SmallInput` batches of thousands of clones would measure cache misses instead.
const HOT: BatchSize = BatchSize::NumIterations(8);

fn map(lines: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(lines.len());
    for (name, value) in lines {
        h.append(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    h
}

/// A browser-like request: 20 lines, 3 of them hop-by-hop (`connection`, `keep-alive` and the
/// `x-foo` that `connection` names).
fn request_headers() -> HeaderMap {
    map(&[
        ("host", "app.example.com"),
        ("connection", "keep-alive, x-foo"),
        ("keep-alive", "timeout=5"),
        ("x-foo", "bar"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("accept-language", "en-US,en;q=0.5"),
        ("accept-encoding", "gzip, deflate, br, zstd"),
        ("cookie", "session=7f3c2a9e4b1d; theme=dark; consent=1"),
        ("referer", "https://app.example.com/dashboard"),
        ("x-request-id", "5e0c7a2b-93f1-4d8e-a1b6-0c2d4e6f8a90"),
        ("x-forwarded-for", "198.51.100.23"),
        (
            "authorization",
            "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl",
        ),
        ("cache-control", "no-cache"),
        ("origin", "https://app.example.com"),
        ("sec-fetch-site", "same-origin"),
        ("sec-fetch-mode", "navigate"),
        ("sec-fetch-dest", "document"),
        ("upgrade-insecure-requests", "1"),
        ("dnt", "1"),
    ])
}

/// A typical backend response: 12 lines, 2 `set-cookie`, 2 hop-by-hop.
fn response_headers() -> HeaderMap {
    map(&[
        ("content-type", "text/html; charset=utf-8"),
        ("content-length", "5120"),
        ("date", "Tue, 15 Oct 2024 10:00:00 GMT"),
        ("server", "backend/1.0"),
        ("cache-control", "private, max-age=0"),
        ("etag", "\"33a64df551425fcc55e4d42a148795d9f25f89d4\""),
        (
            "set-cookie",
            "session=7f3c2a9e4b1d; Path=/; HttpOnly; Secure",
        ),
        ("set-cookie", "theme=dark; Path=/"),
        ("vary", "accept-encoding"),
        ("x-request-id", "5e0c7a2b-93f1-4d8e-a1b6-0c2d4e6f8a90"),
        ("connection", "keep-alive"),
        ("keep-alive", "timeout=5, max=1000"),
    ])
}

fn route(mode: ForwardedHeaders) -> RouteConfig {
    RouteConfig::builder("http://10.0.0.5:4000/v1")
        .strip_path("/api")
        .forwarded_headers(mode)
        .add_header("x-api-key", "secret")
        .remove_header("x-internal")
        .build()
        .expect("the bench route is valid")
}

fn header_policy(c: &mut Criterion) {
    let client = ClientInfo::new(Ipv4Addr::new(203, 0, 113, 9).into(), true, 443);
    let request = request_headers();
    let response = response_headers();
    let mut g = c.benchmark_group("header_policy");
    for (label, mode, upstream) in [
        (
            "apply_request/append/http1",
            ForwardedHeaders::Append,
            Upstream::Http1,
        ),
        (
            "apply_request/replace/http2",
            ForwardedHeaders::Replace,
            Upstream::Http2,
        ),
    ] {
        let policy = HeaderPolicy::from_route(&route(mode));
        g.bench_function(label, |b| {
            b.iter_batched(
                || request.clone(),
                |mut h| {
                    let host = h.get(HOST).cloned();
                    policy.apply_request(black_box(&mut h), &client, host.as_ref(), upstream);
                    h
                },
                HOT,
            )
        });
    }
    let policy = HeaderPolicy::from_route(&route(ForwardedHeaders::Append));
    g.bench_function("apply_response", |b| {
        b.iter_batched(
            || response.clone(),
            |mut h| {
                policy.apply_response(black_box(&mut h));
                h
            },
            HOT,
        )
    });
    g.finish();
}

fn path_rewrite(c: &mut Criterion) {
    let mut g = c.benchmark_group("path_rewrite");
    let strip_and_prefix = PathRewrite::from_route(&route(ForwardedHeaders::Append));
    g.bench_function("rewrite/strip+prefix", |b| {
        b.iter(|| {
            strip_and_prefix.rewrite(
                black_box("/api/users/42/orders"),
                black_box(Some("page=2&sort=desc")),
            )
        })
    });
    let identity = PathRewrite::new(None, "");
    g.bench_function("rewrite/no-op", |b| {
        b.iter(|| {
            identity.rewrite(
                black_box("/users/42/orders"),
                black_box(Some("page=2&sort=desc")),
            )
        })
    });
    let uri = Uri::from_static("/users/42/orders?page=2&sort=desc");
    g.bench_function("rewrite_uri/no-op", |b| {
        b.iter(|| identity.rewrite_uri(black_box(&uri)))
    });
    g.finish();
}

fn limits(c: &mut Criterion) {
    let mut g = c.benchmark_group("limits");
    let limits = RequestLimits::from_route(&route(ForwardedHeaders::Append));
    let uri = Uri::from_static("/api/users/42/orders?page=2&sort=desc");
    let headers = request_headers();
    g.bench_function("check_head", |b| {
        b.iter(|| limits.check_head(black_box(&uri), black_box(&headers)))
    });
    g.finish();
}

criterion_group!(benches, header_policy, path_rewrite, limits);
criterion_main!(benches);
