#![allow(
    clippy::type_complexity,
    reason = "table-driven tests spell their row types inline"
)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use proptest::prelude::*;

use super::*;
use crate::{ErrorKind, ForwardedHeaders, RouteConfig};

const HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn map(lines: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in lines {
        h.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn values<'a>(h: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    h.get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

fn client_v4() -> ClientInfo {
    ClientInfo::new(Ipv4Addr::new(203, 0, 113, 9).into(), false, 8080)
}

fn policy(f: impl FnOnce(crate::RouteConfigBuilder) -> crate::RouteConfigBuilder) -> HeaderPolicy {
    let route = f(RouteConfig::builder("http://backend.local:4000"))
        .build()
        .unwrap();
    HeaderPolicy::from_route(&route)
}

// ---- HDR-1 ----

#[test]
fn hdr_1_fixed_hop_by_hop_list() {
    for name in HOP {
        let n = HeaderName::from_static(name);
        assert!(is_hop_by_hop(&n), "{name}");
        let mut h = map(&[(name, "x"), ("accept", "*/*")]);
        remove_hop_by_hop(&mut h, false);
        assert!(h.get(name).is_none(), "{name} survived");
        assert_eq!(values(&h, "accept"), ["*/*"]);
    }
    for name in [
        "host",
        "content-length",
        "cookie",
        "x-forwarded-for",
        "trailers",
        "tes",
    ] {
        assert!(!is_hop_by_hop(&HeaderName::from_static(name)), "{name}");
    }
}

#[test]
fn hdr_1_connection_listed_names_removed() {
    // (connection lines, names that must go, names that must stay)
    let cases: &[(&[&str], &[&str], &[&str])] = &[
        (&["x-foo"], &["x-foo"], &["x-bar", "accept"]),
        (&["X-Foo"], &["x-foo"], &["x-bar"]),
        (&["x-foo , X-BAR"], &["x-foo", "x-bar"], &["accept"]),
        (&["  x-foo,,\tx-bar  ,"], &["x-foo", "x-bar"], &["accept"]),
        (&["x-foo", "x-bar"], &["x-foo", "x-bar"], &["accept"]),
        (&["keep-alive, close"], &[], &["x-foo", "x-bar", "accept"]),
        // Invalid tokens are ignored, valid ones around them still count.
        (&["bad name, x-bar, (x)"], &["x-bar"], &["x-foo", "accept"]),
        (&["\u{1}bad,x-foo"], &[], &["x-bar"]),
        (&[""], &[], &["x-foo", "x-bar", "accept"]),
    ];
    for (conn, gone, kept) in cases {
        let mut h = map(&[
            ("x-foo", "1"),
            ("x-bar", "2"),
            ("x-bar", "3"),
            ("accept", "*/*"),
        ]);
        for c in *conn {
            // Some cases carry bytes that `from_str` refuses; build them raw.
            match HeaderValue::from_bytes(c.as_bytes()) {
                Ok(v) => {
                    h.append("connection", v);
                }
                Err(_) => continue,
            }
        }
        remove_hop_by_hop(&mut h, false);
        assert!(h.get("connection").is_none(), "{conn:?}");
        for g in *gone {
            assert!(h.get(*g).is_none(), "{conn:?}: {g} survived");
        }
        for k in *kept {
            assert!(h.get(*k).is_some(), "{conn:?}: {k} removed");
        }
    }
}

#[test]
fn hdr_1_te_trailers_kept_only_toward_http2() {
    // (te lines, connection line, upstream, expected te)
    let cases: &[(&[&str], Option<&str>, Upstream, Option<&str>)] = &[
        (&["trailers"], None, Upstream::Http2, Some("trailers")),
        (&["Trailers"], None, Upstream::Http2, Some("trailers")),
        (
            &["trailers, deflate;q=0.5"],
            None,
            Upstream::Http2,
            Some("trailers"),
        ),
        (
            &["gzip", "trailers"],
            None,
            Upstream::Http2,
            Some("trailers"),
        ),
        (&["trailers"], Some("te"), Upstream::Http2, Some("trailers")),
        (&["gzip"], None, Upstream::Http2, None),
        (&["trailersx"], None, Upstream::Http2, None),
        (&["trailers"], None, Upstream::Http1, None),
        (&["trailers"], Some("TE"), Upstream::Http1, None),
        (&[], None, Upstream::Http2, None),
    ];
    let p = policy(|b| b);
    for (te, conn, up, want) in cases {
        let mut lines: Vec<(&str, &str)> = te.iter().map(|v| ("te", *v)).collect();
        if let Some(c) = conn {
            lines.push(("connection", c));
        }
        let mut h = map(&lines);
        p.apply_request(&mut h, &client_v4(), None, *up);
        let got = values(&h, "te");
        assert_eq!(
            got,
            want.iter().copied().collect::<Vec<_>>(),
            "{te:?} {conn:?} {up:?}"
        );
    }
}

#[test]
fn hdr_1_accepts_trailers() {
    let cases = [
        (&[][..], false),
        (&["trailers"][..], true),
        (&["gzip, TRAILERS"][..], true),
        (&["gzip", "trailers"][..], true),
        (&["gzip"][..], false),
    ];
    for (te, want) in cases {
        let lines: Vec<_> = te.iter().map(|v| ("te", *v)).collect();
        assert_eq!(accepts_trailers(&map(&lines)), want, "{te:?}");
    }
}

// ---- HDR-2 ----

#[test]
fn hdr_2_expect_never_forwarded() {
    for expect in ["100-continue", "something-else"] {
        let mut h = map(&[("expect", expect), ("content-length", "3")]);
        policy(|b| b).apply_request(&mut h, &client_v4(), None, Upstream::Http1);
        assert!(h.get("expect").is_none(), "{expect}");
        assert_eq!(values(&h, "content-length"), ["3"]);
    }
}

// ---- HDR-3 ----

#[test]
fn hdr_3_forwarded_headers_per_mode() {
    struct Case {
        mode: ForwardedHeaders,
        incoming: &'static [(&'static str, &'static str)],
        client: ClientInfo,
        host: Option<&'static str>,
        // (name, expected lines)
        want: &'static [(&'static str, &'static [&'static str])],
    }
    let v6: IpAddr = "2001:db8::1".parse().unwrap();
    let mapped: IpAddr = IpAddr::V6(Ipv4Addr::new(198, 51, 100, 4).to_ipv6_mapped());
    let cases = [
        Case {
            mode: ForwardedHeaders::Append,
            incoming: &[],
            client: client_v4(),
            host: Some("example.com"),
            want: &[
                ("x-forwarded-for", &["203.0.113.9"]),
                ("x-forwarded-proto", &["http"]),
                ("x-forwarded-host", &["example.com"]),
                ("x-forwarded-port", &["8080"]),
            ],
        },
        Case {
            mode: ForwardedHeaders::Append,
            incoming: &[
                ("x-forwarded-for", "10.0.0.1, 10.0.0.2"),
                ("x-forwarded-for", "10.0.0.3"),
                ("x-forwarded-proto", "ftp"),
                ("forwarded", "for=10.0.0.1"),
            ],
            client: ClientInfo::new(v6, true, 443),
            host: Some("example.com:8443"),
            want: &[
                (
                    "x-forwarded-for",
                    &["10.0.0.1, 10.0.0.2, 10.0.0.3, 2001:db8::1"],
                ),
                ("x-forwarded-proto", &["https"]),
                ("x-forwarded-host", &["example.com:8443"]),
                ("x-forwarded-port", &["443"]),
                ("forwarded", &["for=10.0.0.1"]),
            ],
        },
        Case {
            // Append keeps a client X-Forwarded-Host when there is no Host to write.
            mode: ForwardedHeaders::Append,
            incoming: &[("x-forwarded-for", ""), ("x-forwarded-host", "a")],
            client: ClientInfo::new(mapped, false, 80),
            host: None,
            want: &[
                ("x-forwarded-for", &["198.51.100.4"]),
                ("x-forwarded-host", &["a"]),
                ("x-forwarded-port", &["80"]),
            ],
        },
        Case {
            mode: ForwardedHeaders::Replace,
            incoming: &[
                ("x-forwarded-for", "6.6.6.6"),
                ("x-forwarded-for", "7.7.7.7"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-proto", "http"),
                ("x-forwarded-host", "evil"),
                ("x-forwarded-port", "1"),
                ("forwarded", "for=6.6.6.6"),
                ("forwarded", "for=7.7.7.7"),
            ],
            client: client_v4(),
            host: None,
            want: &[
                ("x-forwarded-for", &["203.0.113.9"]),
                ("x-forwarded-proto", &["http"]),
                ("x-forwarded-host", &[]),
                ("x-forwarded-port", &["8080"]),
                ("forwarded", &[]),
            ],
        },
        Case {
            mode: ForwardedHeaders::Replace,
            incoming: &[("x-forwarded-host", "evil")],
            client: ClientInfo::new(Ipv6Addr::LOCALHOST.into(), true, 8443),
            host: Some("[::1]:8443"),
            want: &[
                ("x-forwarded-for", &["::1"]),
                ("x-forwarded-proto", &["https"]),
                ("x-forwarded-host", &["[::1]:8443"]),
                ("x-forwarded-port", &["8443"]),
            ],
        },
        Case {
            mode: ForwardedHeaders::Off,
            incoming: &[
                ("x-forwarded-for", "1.1.1.1"),
                ("x-forwarded-for", "2.2.2.2"),
                ("forwarded", "for=1.1.1.1"),
            ],
            client: client_v4(),
            host: Some("example.com"),
            want: &[
                ("x-forwarded-for", &["1.1.1.1", "2.2.2.2"]),
                ("x-forwarded-proto", &[]),
                ("x-forwarded-host", &[]),
                ("x-forwarded-port", &[]),
                ("forwarded", &["for=1.1.1.1"]),
            ],
        },
    ];
    for (i, c) in cases.iter().enumerate() {
        let p = policy(|b| b.forwarded_headers(c.mode));
        let mut h = map(c.incoming);
        let host = c.host.map(HeaderValue::from_static);
        p.apply_request(&mut h, &c.client, host.as_ref(), Upstream::Http1);
        for (name, want) in c.want {
            assert_eq!(values(&h, name), *want, "case {i} ({:?}): {name}", c.mode);
        }
    }
}

#[test]
fn hdr_3_own_lines_survive_connection_nomination() {
    // A client naming X-Forwarded-For in Connection cannot hide the proxy's own line.
    let mut h = map(&[
        ("connection", "x-forwarded-for, x-forwarded-proto"),
        ("x-forwarded-for", "10.0.0.1"),
    ]);
    policy(|b| b).apply_request(&mut h, &client_v4(), None, Upstream::Http1);
    assert_eq!(values(&h, "x-forwarded-for"), ["203.0.113.9"]);
    assert_eq!(values(&h, "x-forwarded-proto"), ["http"]);
}

/// Values are remembered per thread for the last address and port: clients taking turns, on
/// listeners with different ports, in both modes, each get their own values, an incoming chain
/// included.
#[test]
fn hdr_3_values_follow_each_client_in_turn() {
    let append = policy(|b| b);
    let replace = policy(|b| b.forwarded_headers(ForwardedHeaders::Replace));
    let turns = [
        ("192.0.2.1", 8080, "8080"),
        ("192.0.2.1", 8080, "8080"),
        ("2001:db8::1", 8443, "8443"),
        ("192.0.2.1", 8080, "8080"),
        ("198.51.100.7", 443, "443"),
        ("198.51.100.7", 8080, "8080"),
        ("2001:db8::1", 9000, "9000"),
    ];
    for (i, (peer, port, port_text)) in turns.into_iter().enumerate() {
        let client = ClientInfo::new(peer.parse().unwrap(), false, port);
        let p = if i % 2 == 0 { &append } else { &replace };
        let mut h = HeaderMap::new();
        p.apply_request(&mut h, &client, None, Upstream::Http1);
        assert_eq!(values(&h, "x-forwarded-for"), [peer], "turn {i}");
        assert_eq!(values(&h, "x-forwarded-port"), [port_text], "turn {i}");

        let mut chained = HeaderMap::new();
        chained.insert("x-forwarded-for", "10.0.0.1".parse().unwrap());
        append.apply_request(&mut chained, &client, None, Upstream::Http1);
        let want = format!("10.0.0.1, {peer}");
        assert_eq!(
            values(&chained, "x-forwarded-for"),
            [want.as_str()],
            "turn {i}"
        );
    }
}

#[test]
fn hdr_3_client_address_text() {
    // (peer, X-Forwarded-For): IPv6 without brackets, IPv4-mapped IPv6 as IPv4.
    let cases = [
        ("0.0.0.0", "0.0.0.0"),
        ("9.10.99.100", "9.10.99.100"),
        ("255.255.255.255", "255.255.255.255"),
        ("::", "::"),
        ("::1", "::1"),
        ("2001:db8::8a2e:370:7334", "2001:db8::8a2e:370:7334"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        (
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ),
    ];
    let p = policy(|b| b.forwarded_headers(ForwardedHeaders::Replace));
    for (peer, want) in cases {
        let client = ClientInfo::new(peer.parse().unwrap(), false, 80);
        let mut h = HeaderMap::new();
        p.apply_request(&mut h, &client, None, Upstream::Http1);
        assert_eq!(values(&h, "x-forwarded-for"), [want], "{peer}");
    }
}

// ---- HDR-4 ----

#[test]
fn hdr_4_host_toward_backend() {
    // (backend, preserve, incoming Host lines, client_host, expected Host)
    let cases: &[(&str, bool, &[&str], Option<&str>, &str)] = &[
        (
            "http://backend.local:4000",
            false,
            &["example.com"],
            Some("example.com"),
            "backend.local:4000",
        ),
        ("http://backend.local:80", false, &[], None, "backend.local"),
        (
            "https://backend.local:443/v1",
            false,
            &["a", "b"],
            Some("a"),
            "backend.local",
        ),
        (
            "wss://[::1]:9000",
            false,
            &[],
            Some("c.example"),
            "[::1]:9000",
        ),
        ("http://[2001:db8::2]", false, &[], None, "[2001:db8::2]"),
        (
            "http://backend.local:4000",
            true,
            &["example.com"],
            Some("example.com"),
            "example.com",
        ),
        // HTTP/2 clients send :authority only.
        (
            "http://backend.local:4000",
            true,
            &[],
            Some("h2.example"),
            "h2.example",
        ),
        (
            "http://backend.local:4000",
            true,
            &["kept.example"],
            None,
            "kept.example",
        ),
        (
            "http://backend.local:4000",
            true,
            &[],
            None,
            "backend.local:4000",
        ),
    ];
    for (backend, preserve, incoming, client_host, want) in cases {
        let route = RouteConfig::builder(*backend)
            .preserve_host_header(*preserve)
            .build()
            .unwrap();
        let p = HeaderPolicy::from_route(&route);
        let lines: Vec<_> = incoming.iter().map(|v| ("host", *v)).collect();
        let mut h = map(&lines);
        let ch = client_host.map(HeaderValue::from_static);
        p.apply_request(&mut h, &client_v4(), ch.as_ref(), Upstream::Http1);
        assert_eq!(
            values(&h, "host"),
            [*want],
            "{backend} preserve={preserve} {incoming:?}"
        );
    }
}

// ---- HDR-5 ----

#[test]
fn hdr_5_remove_then_add_headers() {
    let p = policy(|b| {
        b.remove_header("cookie")
            .remove_header("x-internal")
            .add_header("x-api-key", "secret")
            .add_header("host", "override.example")
            .add_header("x-forwarded-for", "1.2.3.4")
            .add_header("x-internal", "proxy")
    });
    let mut h = map(&[
        ("cookie", "a=1"),
        ("cookie", "b=2"),
        ("x-internal", "client"),
        ("x-api-key", "forged"),
        ("x-api-key", "forged2"),
        ("accept", "text/html"),
    ]);
    p.apply_request(&mut h, &client_v4(), None, Upstream::Http1);
    assert_eq!(values(&h, "cookie"), Vec::<&str>::new());
    assert_eq!(values(&h, "x-internal"), ["proxy"]);
    assert_eq!(values(&h, "x-api-key"), ["secret"]);
    assert_eq!(values(&h, "host"), ["override.example"]);
    assert_eq!(values(&h, "x-forwarded-for"), ["1.2.3.4"]);
    assert_eq!(values(&h, "accept"), ["text/html"]);
}

#[test]
fn hdr_5_remove_headers_can_drop_forwarded_and_host() {
    let p = policy(|b| b.remove_header("x-forwarded-port").remove_header("host"));
    let mut h = map(&[("host", "example.com")]);
    p.apply_request(&mut h, &client_v4(), None, Upstream::Http1);
    assert!(h.get("x-forwarded-port").is_none());
    assert!(h.get("host").is_none());
    assert_eq!(values(&h, "x-forwarded-for"), ["203.0.113.9"]);
}

// ---- HDR-6 ----

#[test]
fn hdr_6_response_keeps_everything_but_hop_by_hop() {
    let lines = [
        ("content-type", "text/html"),
        ("set-cookie", "a=1"),
        ("connection", "keep-alive, x-backend-hop"),
        ("x-backend-hop", "1"),
        ("set-cookie", "b=2"),
        ("content-length", "42"),
        ("keep-alive", "timeout=5"),
        ("te", "trailers"),
        ("trailer", "x-checksum"),
        ("upgrade", "h2c"),
        ("proxy-authenticate", "Basic"),
        ("set-cookie", "c=3"),
        ("vary", "accept"),
    ];
    let mut h = map(&lines);
    policy(|b| b.add_header("x-only-requests", "1")).apply_response(&mut h);
    for name in HOP.iter().chain(&["x-backend-hop", "x-only-requests"]) {
        assert!(h.get(*name).is_none(), "{name}");
    }
    assert_eq!(values(&h, "set-cookie"), ["a=1", "b=2", "c=3"]);
    assert_eq!(values(&h, "content-length"), ["42"]);
    assert_eq!(values(&h, "content-type"), ["text/html"]);
    assert_eq!(values(&h, "vary"), ["accept"]);
    assert_eq!(h.len(), 6);
}

// HDR-6: a response framed by Transfer-Encoding that also carries a Content-Length loses both
// (RFC 9112 §6.3); the body the client gets is the one the coding delimited.
#[test]
fn hdr_6_transfer_encoding_overrides_content_length() {
    let mut h = map(&[
        ("content-length", "100"),
        ("Transfer-Encoding", "chunked"),
        ("content-type", "text/plain"),
    ]);
    policy(|b| b).apply_response(&mut h);
    assert!(h.get("content-length").is_none());
    assert!(h.get("transfer-encoding").is_none());
    assert_eq!(values(&h, "content-type"), ["text/plain"]);
    assert_eq!(h.len(), 1);
}

// ---- WS-1 ----

#[test]
fn ws_1_upgrade_detection() {
    let cases: &[(&[(&str, &str)], bool)] = &[
        (&[("connection", "Upgrade"), ("upgrade", "websocket")], true),
        (
            &[
                ("connection", "keep-alive, UPGRADE"),
                ("upgrade", "WebSocket"),
            ],
            true,
        ),
        (
            &[
                ("connection", "keep-alive"),
                ("connection", "upgrade"),
                ("upgrade", "websocket"),
            ],
            true,
        ),
        (
            &[("connection", "upgrade"), ("upgrade", "h2c, websocket")],
            true,
        ),
        (&[("connection", "upgrade"), ("upgrade", "h2c")], false),
        (
            &[("connection", "keep-alive"), ("upgrade", "websocket")],
            false,
        ),
        (&[("upgrade", "websocket")], false),
        (&[("connection", "upgrade")], false),
        (
            &[("connection", "upgraded"), ("upgrade", "websockets")],
            false,
        ),
    ];
    for (lines, want) in cases {
        assert_eq!(is_websocket_upgrade(&map(lines)), *want, "{lines:?}");
    }
}

#[test]
fn ws_1_handshake_check() {
    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    let cases: &[(Method, &[(&str, &str)], bool)] = &[
        (
            Method::GET,
            &[("sec-websocket-key", KEY), ("sec-websocket-version", "13")],
            true,
        ),
        (
            Method::POST,
            &[("sec-websocket-key", KEY), ("sec-websocket-version", "13")],
            false,
        ),
        (
            Method::CONNECT,
            &[("sec-websocket-key", KEY), ("sec-websocket-version", "13")],
            false,
        ),
        (Method::GET, &[("sec-websocket-version", "13")], false),
        (Method::GET, &[("sec-websocket-key", KEY)], false),
        (
            Method::GET,
            &[("sec-websocket-key", KEY), ("sec-websocket-version", "8")],
            false,
        ),
        (
            Method::GET,
            &[
                ("sec-websocket-key", KEY),
                ("sec-websocket-version", "13, 8"),
            ],
            false,
        ),
        (
            Method::GET,
            &[
                ("sec-websocket-key", KEY),
                ("sec-websocket-version", "13"),
                ("sec-websocket-version", "13"),
            ],
            false,
        ),
        (
            Method::GET,
            &[
                ("sec-websocket-key", KEY),
                ("sec-websocket-key", KEY),
                ("sec-websocket-version", "13"),
            ],
            false,
        ),
        (
            Method::GET,
            &[
                ("sec-websocket-key", "short=="),
                ("sec-websocket-version", "13"),
            ],
            false,
        ),
        (
            Method::GET,
            &[
                ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=x"),
                ("sec-websocket-version", "13"),
            ],
            false,
        ),
        (
            Method::GET,
            &[
                ("sec-websocket-key", "dGhlIHNhbXBsZSBub25j*Q=="),
                ("sec-websocket-version", "13"),
            ],
            false,
        ),
        (
            Method::GET,
            &[
                ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ"),
                ("sec-websocket-version", "13"),
            ],
            false,
        ),
        (
            Method::GET,
            &[
                ("sec-websocket-key", "AAAAAAAAAAAAAAAAAAAA+/=="),
                ("sec-websocket-version", "13"),
            ],
            true,
        ),
    ];
    for (method, lines, ok) in cases {
        let got = check_websocket_handshake(method, &map(lines));
        match (got, ok) {
            (Ok(()), true) => {}
            (Err(e), false) => assert_eq!(e.kind(), ErrorKind::InvalidWebSocketHandshake),
            (got, _) => panic!("{method} {lines:?}: {got:?}"),
        }
    }
}

// ---- WS-3 ----

#[test]
fn ws_3_websocket_request_headers() {
    let p = policy(|b| b.add_header("x-api-key", "k"));
    let mut h = map(&[
        ("host", "example.com"),
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13"),
        ("sec-websocket-extensions", "permessage-deflate"),
        ("sec-websocket-accept", "bogus"),
        ("sec-websocket-protocol", "chat, superchat"),
        ("cookie", "session=1"),
        ("authorization", "Bearer t"),
        ("origin", "https://example.com"),
        ("te", "trailers"),
        ("expect", "100-continue"),
    ]);
    let host = h.get("host").cloned();
    let client = ClientInfo::new(Ipv4Addr::LOCALHOST.into(), true, 443);
    p.apply_websocket_request(&mut h, &client, host.as_ref());
    for gone in [
        "connection",
        "upgrade",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-accept",
        "te",
        "expect",
    ] {
        assert!(h.get(gone).is_none(), "{gone}");
    }
    assert_eq!(values(&h, "sec-websocket-protocol"), ["chat, superchat"]);
    assert_eq!(values(&h, "cookie"), ["session=1"]);
    assert_eq!(values(&h, "authorization"), ["Bearer t"]);
    assert_eq!(values(&h, "origin"), ["https://example.com"]);
    assert_eq!(values(&h, "host"), ["backend.local:4000"]);
    assert_eq!(values(&h, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(values(&h, "x-forwarded-proto"), ["https"]);
    assert_eq!(values(&h, "x-forwarded-host"), ["example.com"]);
    assert_eq!(values(&h, "x-api-key"), ["k"]);
}

// ---- WS-4 ----

#[test]
fn ws_4_offered_subprotocols() {
    let cases: &[(&[&str], &[&str])] = &[
        (&[], &[]),
        (&["chat"], &["chat"]),
        (&["chat, superchat"], &["chat", "superchat"]),
        (&[" a ,b,, c "], &["a", "b", "c"]),
        (&["a", "b, c"], &["a", "b", "c"]),
    ];
    for (lines, want) in cases {
        let l: Vec<_> = lines
            .iter()
            .map(|v| ("sec-websocket-protocol", *v))
            .collect();
        let h = map(&l);
        assert_eq!(
            offered_subprotocols(&h).collect::<Vec<_>>(),
            *want,
            "{lines:?}"
        );
    }
}

#[test]
fn ws_4_selected_subprotocol_must_be_offered() {
    // (offered lines, chosen lines, ok)
    let cases: &[(&[&str], &[&str], bool)] = &[
        (&[], &[], true),
        (&["chat"], &[], true),
        (&["chat, superchat"], &["superchat"], true),
        (&["chat", "superchat"], &["chat"], true),
        (&["chat"], &["other"], false),
        (&[], &["chat"], false),
        (&["chat, superchat"], &["chat, superchat"], false),
        (&["chat", "superchat"], &["chat", "superchat"], false),
        (&["chat"], &["Chat"], false),
    ];
    for (offered, chosen, ok) in cases {
        let req: Vec<_> = offered
            .iter()
            .map(|v| ("sec-websocket-protocol", *v))
            .collect();
        let resp: Vec<_> = chosen
            .iter()
            .map(|v| ("sec-websocket-protocol", *v))
            .collect();
        let got = check_selected_subprotocol(&map(&req), &map(&resp));
        match got {
            Ok(()) => assert!(*ok, "{offered:?} {chosen:?}"),
            Err(e) => {
                assert!(!*ok, "{offered:?} {chosen:?}: {e}");
                assert_eq!(e.kind(), ErrorKind::WebSocketHandshake);
            }
        }
    }
}

// ---- properties (HDR-1, HDR-6) ----

/// A header name: mostly hop-by-hop names and a few tokens, so Connection lists hit often.
fn name_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(HOP.to_vec()).prop_map(str::to_owned),
        2 => proptest::sample::select(vec!["x-a", "x-b", "X-C", "Accept", "host", "expect"])
            .prop_map(str::to_owned),
        2 => "[a-zA-Z][a-zA-Z0-9!#$%&'*+.^_`|~-]{0,12}",
    ]
}

fn value_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,20}",
        Just("trailers".to_owned()),
        Just("Trailers, gzip".to_owned()),
    ]
}

/// A Connection value: a comma list of names (some invalid), random case and whitespace.
fn connection_strategy() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        (name_strategy(), any::<bool>(), "[ \t]{0,2}", "[ \t]{0,2}"),
        0..5,
    )
    .prop_map(|items| {
        items
            .into_iter()
            .map(|(n, upper, l, r)| {
                let n = if upper { n.to_ascii_uppercase() } else { n };
                format!("{l}{n}{r}")
            })
            .collect::<Vec<_>>()
            .join(",")
    })
}

fn headers_strategy() -> impl Strategy<Value = HeaderMap> {
    (
        proptest::collection::vec((name_strategy(), value_strategy()), 0..24),
        proptest::collection::vec(connection_strategy(), 0..3),
    )
        .prop_map(|(lines, conns)| {
            let mut h = HeaderMap::new();
            for (n, v) in lines {
                if let (Ok(n), Ok(v)) = (
                    HeaderName::from_bytes(n.as_bytes()),
                    HeaderValue::from_str(&v),
                ) {
                    h.append(n, v);
                }
            }
            for c in conns {
                if let Ok(v) = HeaderValue::from_str(&c) {
                    h.append("connection", v);
                }
            }
            h
        })
}

/// Every name that must not survive: the fixed list and the Connection-listed valid names.
fn nominated(h: &HeaderMap) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = HOP.iter().map(|n| HeaderName::from_static(n)).collect();
    for v in h.get_all("connection") {
        for tok in v.to_str().unwrap().split(',') {
            if let Ok(n) = HeaderName::from_bytes(tok.trim().as_bytes()) {
                names.push(n);
            }
        }
    }
    names
}

proptest! {
    // HDR-1: nothing hop-by-hop survives a request, except exactly `te: trailers` toward HTTP/2.
    #[test]
    fn hdr_1_prop_no_hop_by_hop_survives_request(
        h in headers_strategy(),
        http2 in any::<bool>(),
        mode in proptest::sample::select(vec![
            ForwardedHeaders::Append, ForwardedHeaders::Replace, ForwardedHeaders::Off,
        ]),
    ) {
        let forbidden = nominated(&h);
        let had_te_trailers = accepts_trailers(&h);
        let upstream = if http2 { Upstream::Http2 } else { Upstream::Http1 };
        let p = policy(|b| b.forwarded_headers(mode));
        let mut out = h.clone();
        p.apply_request(&mut out, &client_v4(), None, upstream);
        for name in &forbidden {
            // The proxy writes these after hop-by-hop removal (HDR-3, HDR-4).
            let own: &[&str] = if mode == ForwardedHeaders::Off {
                &["host"]
            } else {
                &["host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-port"]
            };
            let proxy_own = own.contains(&name.as_str());
            if *name == "te" && http2 && had_te_trailers {
                prop_assert_eq!(values(&out, "te"), ["trailers"]);
            } else if !proxy_own {
                prop_assert!(out.get(name).is_none(), "{} survived", name);
            }
        }
        prop_assert!(out.get("expect").is_none());
    }

    // HDR-3: the address written is the peer's usual text (IPv4-mapped addresses as IPv4).
    #[test]
    fn hdr_3_prop_client_address_text(peer in any::<IpAddr>()) {
        let want = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4).to_string(),
            v4 => v4.to_string(),
        };
        let mut h = HeaderMap::new();
        policy(|b| b).apply_request(&mut h, &ClientInfo::new(peer, true, 1), None, Upstream::Http1);
        prop_assert_eq!(values(&h, "x-forwarded-for"), [want.as_str()]);
    }

    // HDR-6: nothing hop-by-hop survives a response; every other line is kept in order.
    #[test]
    fn hdr_6_prop_no_hop_by_hop_survives_response(h in headers_strategy()) {
        let forbidden = nominated(&h);
        let mut out = h.clone();
        policy(|b| b).apply_response(&mut out);
        for name in &forbidden {
            prop_assert!(out.get(name).is_none(), "{} survived", name);
        }
        for name in h.keys() {
            if !forbidden.contains(name) {
                let before: Vec<_> = h.get_all(name).iter().collect();
                let after: Vec<_> = out.get_all(name).iter().collect();
                prop_assert_eq!(before, after);
            }
        }
    }
}
