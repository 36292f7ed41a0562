#![allow(
    clippy::type_complexity,
    reason = "table-driven tests spell their row types inline"
)]

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, Version};
use proptest::prelude::*;

use super::*;
use crate::{ErrorKind, RouteConfig, SizeLimit};

fn map(lines: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in lines {
        h.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_bytes(v.as_bytes()).unwrap(),
        );
    }
    h
}

fn kind<T: std::fmt::Debug>(r: Result<T, crate::Error>) -> Option<ErrorKind> {
    r.err().map(|e| e.kind())
}

fn limits(target: usize, line: usize, total: usize, count: usize) -> RequestLimits {
    let route = RouteConfig::builder("http://h")
        .max_request_target_bytes(target)
        .max_request_header_line_bytes(line)
        .max_request_header_bytes(total)
        .max_request_headers(count)
        .build()
        .unwrap();
    RequestLimits::from_route(&route)
}

// ---- LIM-1 ----

#[test]
fn lim_1_request_target_length() {
    let l = limits(10, 8192, 65536, 100);
    // (target, expected error)
    let cases = [
        ("/", None),
        ("/123456789", None), // 10 bytes: at the limit
        ("/1234?6789", None), // `?` counts
        ("/1234567890", Some(ErrorKind::UriTooLong)),
        ("/1234?67890", Some(ErrorKind::UriTooLong)),
        ("/?", None),
        ("http://a-very-long-host.example/x", None), // authority not counted
        ("http://h/1234567890", Some(ErrorKind::UriTooLong)),
    ];
    for (target, want) in cases {
        let uri: Uri = target.parse().unwrap();
        assert_eq!(
            kind(l.check_head(&uri, &HeaderMap::new())),
            want,
            "{target}"
        );
    }
}

// ---- LIM-2 ----

#[test]
fn lim_2_header_count_line_and_total() {
    let uri = Uri::from_static("/");
    // "x-a: 12345" is 10 bytes.
    let cases: &[(RequestLimits, &[(&str, &str)], Option<ErrorKind>)] = &[
        (limits(100, 10, 100, 3), &[("x-a", "12345")], None),
        (
            limits(100, 9, 100, 3),
            &[("x-a", "12345")],
            Some(ErrorKind::HeadersTooLarge),
        ),
        (
            limits(100, 100, 100, 3),
            &[("x-a", "1"), ("x-a", "2"), ("x-a", "3")],
            None,
        ),
        // Duplicates count as lines.
        (
            limits(100, 100, 100, 2),
            &[("x-a", "1"), ("x-a", "2"), ("x-a", "3")],
            Some(ErrorKind::HeadersTooLarge),
        ),
        (
            limits(100, 100, 20, 10),
            &[("x-a", "12345"), ("x-b", "12345")],
            None,
        ),
        (
            limits(100, 100, 19, 10),
            &[("x-a", "12345"), ("x-b", "12345")],
            Some(ErrorKind::HeadersTooLarge),
        ),
        (limits(100, 100, 19, 10), &[], None),
        (limits(100, 5, 5, 1), &[("a", "")], None),
    ];
    for (l, lines, want) in cases {
        assert_eq!(
            kind(l.check_head(&uri, &map(lines))),
            *want,
            "{l:?} {lines:?}"
        );
    }
}

#[test]
fn lim_2_defaults_match_config() {
    let route = RouteConfig::builder("http://h").build().unwrap();
    assert_eq!(RequestLimits::from_route(&route), RequestLimits::default());
    let big = "x".repeat(8192);
    let h = map(&[("x-big", big.as_str())]);
    let err = RequestLimits::default().check_head(&Uri::from_static("/"), &h);
    assert_eq!(kind(err), Some(ErrorKind::HeadersTooLarge));
}

// ---- LIM-3, ERR-6: request framing ----

#[test]
fn lim_3_content_length_and_body_limit() {
    let max = SizeLimit::Bytes(100);
    let cases: &[(&[(&str, &str)], Result<Option<u64>, ErrorKind>)] = &[
        (&[], Ok(None)),
        (&[("content-length", "0")], Ok(Some(0))),
        (&[("content-length", "100")], Ok(Some(100))),
        (&[("content-length", "00042")], Ok(Some(42))),
        (&[("content-length", "101")], Err(ErrorKind::BodyTooLarge)),
        (
            &[("content-length", "18446744073709551615")],
            Err(ErrorKind::BodyTooLarge),
        ),
        (
            &[("content-length", "18446744073709551616")],
            Err(ErrorKind::BadRequest),
        ),
        (&[("content-length", "")], Err(ErrorKind::BadRequest)),
        (&[("content-length", "-1")], Err(ErrorKind::BadRequest)),
        (&[("content-length", "+1")], Err(ErrorKind::BadRequest)),
        (&[("content-length", "1 2")], Err(ErrorKind::BadRequest)),
        (&[("content-length", "0x10")], Err(ErrorKind::BadRequest)),
        (&[("content-length", "1e3")], Err(ErrorKind::BadRequest)),
        (&[("content-length", "5, 5")], Ok(Some(5))),
        (
            &[("content-length", "5"), ("content-length", "5")],
            Ok(Some(5)),
        ),
        (&[("content-length", "5, 6")], Err(ErrorKind::BadRequest)),
        (
            &[("content-length", "5"), ("content-length", "6")],
            Err(ErrorKind::BadRequest),
        ),
        (&[("content-length", "5,")], Err(ErrorKind::BadRequest)),
        (&[("content-length", ",5")], Err(ErrorKind::BadRequest)),
    ];
    for (lines, want) in cases {
        let got = request_body_length(&map(lines), max).map_err(|e| e.kind());
        assert_eq!(got, *want, "{lines:?}");
    }
    let h = map(&[("content-length", "18446744073709551615")]);
    assert_eq!(
        request_body_length(&h, SizeLimit::Infinity).unwrap(),
        Some(u64::MAX)
    );
    let route = RouteConfig::builder("http://h")
        .max_request_body_size(SizeLimit::Bytes(10))
        .build()
        .unwrap();
    let l = RequestLimits::from_route(&route);
    assert_eq!(l.max_body(), SizeLimit::Bytes(10));
    assert_eq!(
        kind(l.check_body_length(&map(&[("content-length", "11")]))),
        Some(ErrorKind::BodyTooLarge)
    );
}

#[test]
fn err_6_transfer_encoding() {
    let max = SizeLimit::Bytes(100);
    let cases: &[(&[(&str, &str)], Result<Option<u64>, ErrorKind>)] = &[
        (&[("transfer-encoding", "chunked")], Ok(None)),
        (&[("transfer-encoding", "Chunked")], Ok(None)),
        // Valid, but the coding before `chunked` cannot be passed on: 501.
        (
            &[("transfer-encoding", "gzip, chunked")],
            Err(ErrorKind::UnsupportedTransferCoding),
        ),
        (
            &[
                ("transfer-encoding", "gzip"),
                ("transfer-encoding", "chunked"),
            ],
            Err(ErrorKind::UnsupportedTransferCoding),
        ),
        (
            &[("transfer-encoding", "chunked, gzip")],
            Err(ErrorKind::BadRequest),
        ),
        (
            &[
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "gzip"),
            ],
            Err(ErrorKind::BadRequest),
        ),
        (&[("transfer-encoding", "gzip")], Err(ErrorKind::BadRequest)),
        (
            &[("transfer-encoding", "chunked, chunked")],
            Err(ErrorKind::BadRequest),
        ),
        (&[("transfer-encoding", "")], Err(ErrorKind::BadRequest)),
        (
            &[("transfer-encoding", "chunkedx")],
            Err(ErrorKind::BadRequest),
        ),
        (
            &[("transfer-encoding", "chunked"), ("content-length", "5")],
            Err(ErrorKind::BadRequest),
        ),
        (
            &[("content-length", "500"), ("transfer-encoding", "chunked")],
            Err(ErrorKind::BadRequest),
        ),
    ];
    for (lines, want) in cases {
        let got = request_body_length(&map(lines), max).map_err(|e| e.kind());
        assert_eq!(got, *want, "{lines:?}");
    }
}

#[test]
fn err_6_host_checks() {
    use Version as V;
    let bad = Some(ErrorKind::BadRequest);
    // (version, uri, host lines, expected)
    let cases: &[(Version, &str, &[&str], Option<ErrorKind>)] = &[
        (V::HTTP_11, "/", &["example.com"], None),
        (V::HTTP_11, "/", &["example.com:8080"], None),
        (V::HTTP_11, "/", &["EXAMPLE.com:"], None),
        (V::HTTP_11, "/", &["[::1]:8080"], None),
        (V::HTTP_11, "/", &["[::1]"], None),
        (V::HTTP_11, "/", &["127.0.0.1"], None),
        (V::HTTP_11, "/", &[], bad),
        (V::HTTP_11, "/", &["a", "a"], bad),
        (V::HTTP_11, "/", &["a", "b"], bad),
        (V::HTTP_11, "/", &[""], bad),
        (V::HTTP_11, "/", &["exa mple.com"], bad),
        (V::HTTP_11, "/", &["user@example.com"], bad),
        (V::HTTP_11, "/", &["user:pw@example.com"], bad),
        (V::HTTP_11, "/", &["example.com/path"], bad),
        (V::HTTP_11, "/", &["example.com:99999"], bad),
        (V::HTTP_11, "/", &["example.com:+80"], bad),
        (V::HTTP_11, "/", &["example.com:8x"], bad),
        (V::HTTP_11, "/", &["[::1"], bad),
        (V::HTTP_11, "/", &[":80"], bad),
        (V::HTTP_11, "http://example.com/", &[], bad),
        (V::HTTP_11, "http://example.com/", &["example.com"], None),
        (V::HTTP_10, "/", &[], None),
        (V::HTTP_10, "/", &["example.com"], None),
        (V::HTTP_10, "/", &["a", "a"], bad),
        (V::HTTP_10, "/", &["bad host"], bad),
        (V::HTTP_2, "https://example.com/", &[], None),
        (V::HTTP_2, "https://example.com/", &["EXAMPLE.COM"], None),
        (V::HTTP_2, "https://example.com/", &["other.com"], bad),
        (V::HTTP_2, "/", &["example.com"], None),
        (V::HTTP_2, "/", &[], bad),
        (V::HTTP_2, "/", &["a", "a"], bad),
    ];
    for (version, uri, hosts, want) in cases {
        let uri: Uri = uri.parse().unwrap();
        let lines: Vec<_> = hosts.iter().map(|h| ("host", *h)).collect();
        let got = kind(check_host(*version, &uri, &map(&lines)));
        assert_eq!(got, *want, "{version:?} {uri} {hosts:?}");
    }
}

// ---- HDR-7, LIM-5: response head ----

#[test]
fn hdr_7_response_header_block_limit() {
    // "x-a: 12345" is 10 bytes.
    let h = map(&[("x-a", "12345"), ("x-b", "12345")]);
    let max = SizeLimit::Infinity;
    assert!(check_response_head(StatusCode::OK, &h, 20, max, false).is_ok());
    let err = check_response_head(StatusCode::OK, &h, 19, max, false);
    assert_eq!(kind(err), Some(ErrorKind::InvalidResponse));
    // The block limit applies whatever the status or method.
    let err = check_response_head(StatusCode::NO_CONTENT, &h, 19, max, true);
    assert_eq!(kind(err), Some(ErrorKind::InvalidResponse));
}

#[test]
fn lim_5_response_content_length() {
    let max = SizeLimit::Bytes(100);
    let big = [("content-length", "101")];
    let cases: &[(StatusCode, &[(&str, &str)], bool, Option<ErrorKind>)] = &[
        (StatusCode::OK, &[("content-length", "100")], false, None),
        (
            StatusCode::OK,
            &big,
            false,
            Some(ErrorKind::ResponseTooLarge),
        ),
        (
            StatusCode::NOT_FOUND,
            &big,
            false,
            Some(ErrorKind::ResponseTooLarge),
        ),
        (StatusCode::OK, &big, true, None),
        (StatusCode::NO_CONTENT, &big, false, None),
        (StatusCode::NOT_MODIFIED, &big, false, None),
        (StatusCode::OK, &[], false, None),
        (
            StatusCode::OK,
            &[("content-length", "abc")],
            false,
            Some(ErrorKind::InvalidResponse),
        ),
        (
            StatusCode::OK,
            &[("content-length", "abc")],
            true,
            Some(ErrorKind::InvalidResponse),
        ),
        (
            StatusCode::OK,
            &[("content-length", "5"), ("content-length", "6")],
            false,
            Some(ErrorKind::InvalidResponse),
        ),
        (StatusCode::OK, &[("content-length", "5, 5")], false, None),
    ];
    for (status, lines, head, want) in cases {
        let got = kind(check_response_head(*status, &map(lines), 65536, max, *head));
        assert_eq!(got, *want, "{status} {lines:?} head={head}");
    }
    let h = map(&big);
    assert!(check_response_head(StatusCode::OK, &h, 65536, SizeLimit::Infinity, false).is_ok());
}

// ---- properties (ERR-5, LIM-3) ----

proptest! {
    // LIM-3: any decimal length is read back exactly; anything with a non-digit is refused.
    #[test]
    fn lim_3_prop_content_length_roundtrip(n in any::<u64>(), junk in "[^0-9]{1,3}") {
        let h = map(&[("content-length", &n.to_string())]);
        prop_assert_eq!(request_body_length(&h, SizeLimit::Infinity).unwrap(), Some(n));
        let s = format!("{n}{junk}");
        if let Ok(v) = HeaderValue::from_str(&s) {
            let mut h = HeaderMap::new();
            h.insert("content-length", v);
            // Only whitespace around the digits is tolerated.
            if let Ok(got) = request_body_length(&h, SizeLimit::Infinity) {
                prop_assert_eq!(got, Some(n));
                prop_assert!(junk.trim_ascii().is_empty(), "{:?} accepted", s);
            }
        }
    }

    // ERR-6: the allocation-free fast path for ordinary `Host` values accepts nothing that the
    // full `host[:port]` parse rejects.
    #[test]
    fn err_6_prop_plain_host_fast_path_agrees(host in "[a-zA-Z0-9.:@\\[\\]_-]{0,12}") {
        if is_plain_host(host.as_bytes()) {
            let value = HeaderValue::from_str(&host).unwrap();
            prop_assert!(parse_host(&value).is_some(), "{:?}", host);
        }
    }

    // ERR-5: arbitrary header values never panic the checks.
    #[test]
    fn err_6_prop_never_panics(host in any::<Vec<u8>>(), cl in any::<Vec<u8>>(), te in any::<Vec<u8>>()) {
        let mut h = HeaderMap::new();
        for (name, v) in [("host", host), ("content-length", cl), ("transfer-encoding", te)] {
            if let Ok(v) = HeaderValue::from_bytes(&v) {
                h.append(name, v);
            }
        }
        let uri = Uri::from_static("/");
        let _ = check_host(Version::HTTP_11, &uri, &h);
        let _ = request_body_length(&h, SizeLimit::Bytes(1 << 20));
        let _ = check_response_head(StatusCode::OK, &h, 1024, SizeLimit::Bytes(10), false);
        let _ = RequestLimits::default().check_head(&uri, &h);
    }
}
