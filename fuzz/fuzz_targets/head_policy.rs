//! A request head and a response head, as a client and a backend may send them, through the
//! checks and the header policy: nothing panics, and no hop-by-hop field survives the policy in
//! either direction (`HDR-1`, `HDR-6`) but the `te: trailers` an HTTP/2 backend is owed.

#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use arbitrary::Arbitrary;
use http::header::{CONNECTION, TE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};
use libfuzzer_sys::fuzz_target;
use reverseit_core::headers::{
    check_selected_subprotocol, check_websocket_handshake, is_hop_by_hop, is_websocket_upgrade,
    offered_subprotocols,
};
use reverseit_core::limits::{self, check_response_head};
use reverseit_core::{
    ClientInfo, ForwardedHeaders, HeaderPolicy, RequestLimits, RouteConfig, SizeLimit, Upstream,
};

#[derive(Arbitrary, Debug)]
struct Input {
    target: String,
    request: Vec<(String, Vec<u8>)>,
    response: Vec<(String, Vec<u8>)>,
    status: u16,
    forwarded: u8,
    add: Vec<(String, String)>,
    remove: Vec<String>,
    preserve_host: bool,
    peer: [u8; 4],
    tls: bool,
    port: u16,
    http2_backend: bool,
    head_request: bool,
}

/// The fields that parse as a field name and value; the rest, as hyper would have refused them.
fn head(fields: &[(String, Vec<u8>)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in fields {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            map.append(name, value);
        }
    }
    map
}

fn route(input: &Input) -> RouteConfig {
    let forwarded = match input.forwarded % 3 {
        0 => ForwardedHeaders::Append,
        1 => ForwardedHeaders::Replace,
        _ => ForwardedHeaders::Off,
    };
    let base = || {
        RouteConfig::builder("http://backend.internal:4000/base")
            .forwarded_headers(forwarded)
            .preserve_host_header(input.preserve_host)
    };
    let mut with_lists = base();
    for (name, value) in &input.add {
        with_lists = with_lists.add_header(name.as_str(), value.as_str());
    }
    for name in &input.remove {
        with_lists = with_lists.remove_header(name.as_str());
    }
    // Lists the builder refuses (a bad name or value) leave the route without them.
    with_lists
        .build()
        .unwrap_or_else(|_| base().build().expect("a fixed valid route"))
}

/// Every name a `Connection` line of `map` lists.
fn connection_options(map: &HeaderMap) -> Vec<HeaderName> {
    map.get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect()
}

fuzz_target!(|input: Input| {
    let route = route(&input);
    let policy = HeaderPolicy::from_route(&route);
    let limits = RequestLimits::from_route(&route);

    let mut request = head(&input.request);
    let uri = input.target.parse::<Uri>().ok();
    if let Some(uri) = &uri {
        let _ = limits.check_head(uri, &request);
        let _ = limits::check_host(Version::HTTP_11, uri, &request);
    }
    let _ = limits::request_body_length(&request, SizeLimit::Bytes(1 << 20));
    let _ = limits.check_body_length(&request);
    if is_websocket_upgrade(&request) {
        let _ = check_websocket_handshake(&Method::GET, &request);
        let _ = offered_subprotocols(&request).count();
    }

    let options = connection_options(&request);
    let client = ClientInfo::new(
        IpAddr::V4(Ipv4Addr::from(input.peer)),
        input.tls,
        input.port,
    );
    let host = request.get(http::header::HOST).cloned();
    let upstream = if input.http2_backend {
        Upstream::Http2
    } else {
        Upstream::Http1
    };
    policy.apply_request(&mut request, &client, host.as_ref(), upstream);
    for (name, value) in &request {
        let added = route.add_headers().iter().any(|(n, _)| n == name);
        // What the route adds is the operator's word, hop-by-hop or not.
        if added {
            continue;
        }
        if *name == TE && upstream == Upstream::Http2 {
            assert_eq!(
                value, "trailers",
                "only te: trailers goes to an HTTP/2 backend"
            );
        } else {
            assert!(!is_hop_by_hop(name), "hop-by-hop {name} forwarded");
        }
        let written = name.as_str().starts_with("x-forwarded-") || *name == http::header::HOST;
        assert!(
            written || !options.contains(name),
            "{name}, listed in Connection, forwarded"
        );
    }

    let mut response = head(&input.response);
    let _ = check_selected_subprotocol(&request, &response);
    if let Ok(status) = StatusCode::from_u16(input.status) {
        let _ = check_response_head(
            status,
            &response,
            64 * 1024,
            SizeLimit::Bytes(1 << 20),
            input.head_request,
        );
    }
    let options = connection_options(&response);
    policy.apply_response(&mut response);
    for name in response.keys() {
        assert!(!is_hop_by_hop(name), "hop-by-hop {name} sent to the client");
        assert!(
            !options.contains(name),
            "{name}, listed in Connection, sent to the client"
        );
    }
});
