use http::Uri;
use proptest::prelude::*;

use super::*;
use crate::ErrorKind;

fn ok(rw: &PathRewrite, path: &str, query: Option<&str>) -> String {
    match rw.rewrite(path, query) {
        Ok(pq) => pq.as_str().to_owned(),
        Err(e) => panic!("{rw:?} {path:?} {query:?}: {e}"),
    }
}

fn err(rw: &PathRewrite, path: &str, query: Option<&str>) -> ErrorKind {
    match rw.rewrite(path, query) {
        Ok(pq) => panic!("{rw:?} {path:?} {query:?}: accepted as {pq}"),
        Err(e) => e.kind(),
    }
}

// ---- PATH-1 ----

#[test]
fn path_1_strip_on_segment_boundary_only() {
    let cases = [
        ("/api", "/api/users", "/users"),
        ("/api", "/api", "/"),
        ("/api", "/api/", "/"),
        ("/api", "/apiary", "/apiary"),
        ("/api", "/other", "/other"),
        ("/api", "/API/users", "/API/users"),
        ("/api", "/api/users/", "/users/"),
        ("/api", "/api//x", "//x"),
        ("/api", "/x/api/y", "/x/api/y"),
        ("/api/", "/api/users", "/users"),
        ("/a/b", "/a/b/c", "/c"),
        ("/a/b", "/a/bc", "/a/bc"),
        ("/a/b", "/a", "/a"),
        ("/", "/api", "/api"),
    ];
    for (strip, path, want) in cases {
        let rw = PathRewrite::new(Some(strip), "");
        assert_eq!(ok(&rw, path, None), want, "strip {strip} from {path}");
    }
}

#[test]
fn path_1_from_route() {
    let route = crate::RouteConfig::builder("http://h/v1/")
        .strip_path("/api/")
        .build()
        .unwrap();
    let rw = PathRewrite::from_route(&route);
    assert_eq!(ok(&rw, "/api/users", Some("a=1")), "/v1/users?a=1");
    assert_eq!(ok(&rw, "/api", None), "/v1/");
    let plain = PathRewrite::from_route(&crate::RouteConfig::builder("http://h").build().unwrap());
    assert!(plain.is_identity());
}

// ---- PATH-2 ----

#[test]
fn path_2_prefix_joined_with_one_slash() {
    // (strip, prefix, path, expected)
    let cases = [
        (None, "/v1", "/users", "/v1/users"),
        (None, "/v1", "/users/", "/v1/users/"),
        (None, "/v1", "/", "/v1/"),
        (None, "/v1/", "/users", "/v1/users"),
        (None, "v1", "/users", "/v1/users"),
        (None, "/a/b", "/c", "/a/b/c"),
        (None, "", "/users", "/users"),
        (None, "/", "/users/", "/users/"),
        (Some("/api"), "/v1", "/api", "/v1/"),
        (Some("/api"), "/v1", "/api/", "/v1/"),
        (Some("/api"), "/v1", "/api/users/", "/v1/users/"),
        (Some("/api"), "/v1", "/apiary", "/v1/apiary"),
    ];
    for (strip, prefix, path, want) in cases {
        let rw = PathRewrite::new(strip, prefix);
        assert_eq!(ok(&rw, path, None), want, "{strip:?} {prefix} {path}");
    }
}

// ---- PATH-3 ----

#[test]
fn path_3_bytes_and_query_unchanged() {
    let rw = PathRewrite::new(Some("/api"), "/v1");
    // (path, query, expected)
    let cases = [
        ("/api/a%20b/%2F/c", None, "/v1/a%20b/%2F/c"),
        (
            "/api/caf%C3%A9",
            Some("q=%2e%2E&b=1&a=2"),
            "/v1/caf%C3%A9?q=%2e%2E&b=1&a=2",
        ),
        ("/api/x", Some(""), "/v1/x?"),
        ("/api/x", Some("a=1&a=2&&="), "/v1/x?a=1&a=2&&="),
        ("/api/x", Some("../../etc"), "/v1/x?../../etc"),
        ("/api/~user/!$&'()*+,;=:@", None, "/v1/~user/!$&'()*+,;=:@"),
        ("/api/.well-known/x", None, "/v1/.well-known/x"),
        ("/api/...", None, "/v1/..."),
    ];
    for (path, query, want) in cases {
        let pq = rw.rewrite(path, query).unwrap();
        assert_eq!(pq.as_str(), want, "{path} {query:?}");
        assert_eq!(pq.query(), query, "{path} {query:?}");
    }
}

#[test]
fn path_3_identity_shares_the_uri() {
    let rw = PathRewrite::new(None, "");
    for target in ["/", "/a/b?c=d", "/x?", "/caf%C3%A9?q=%2e"] {
        let uri: Uri = target.parse().unwrap();
        assert_eq!(rw.rewrite_uri(&uri).unwrap(), target);
        assert_eq!(rw.rewrite(uri.path(), uri.query()).unwrap(), target);
    }
    let uri: Uri = "http://example.com".parse().unwrap();
    assert_eq!(rw.rewrite_uri(&uri).unwrap(), "/");
    let uri: Uri = "http://example.com/api/x?y".parse().unwrap();
    assert_eq!(
        PathRewrite::new(Some("/api"), "")
            .rewrite_uri(&uri)
            .unwrap(),
        "/x?y"
    );
    assert_eq!(
        PathRewrite::new(Some("/api"), "/v2")
            .rewrite_uri(&uri)
            .unwrap(),
        "/v2/x?y"
    );
    let uri: Uri = "/a/../b".parse().unwrap();
    assert_eq!(
        rw.rewrite_uri(&uri).unwrap_err().kind(),
        ErrorKind::InvalidPath
    );
}

#[test]
fn path_3_bad_requests() {
    let rw = PathRewrite::new(None, "/v1");
    let cases = [
        ("users", None),
        ("", None),
        ("*", None),
        ("/a?b", None),
        ("/a#b", None),
        ("/a", Some("b#c")),
        ("/a b", None),
        ("/a\u{0}", None),
        ("/a\r\n", None),
    ];
    for (path, query) in cases {
        assert_eq!(
            err(&rw, path, query),
            ErrorKind::BadRequest,
            "{path:?} {query:?}"
        );
    }
}

// ---- PATH-4 ----

#[test]
fn path_4_dot_segments_rejected() {
    let dotted = [
        "/.",
        "/..",
        "/./",
        "/../",
        "/a/./b",
        "/a/../b",
        "/a/..",
        "/%2e",
        "/%2E",
        "/%2e%2e",
        "/%2E%2e/x",
        "/.%2e/x",
        "/%2e./x",
        "/a/..%2fb",
        "/a/..%2Fb",
        "/a/%2e%2e%5cb",
        "/a/..\\b",
        "/a\\..\\b",
        "/a%2f..%2fb",
        "/a/..;jsessionid=1/b",
        "/a/.;x/b",
        "/api/..",
        "..",
        "../x",
        "/a/..?q",
    ];
    for path in dotted {
        assert!(has_dot_segment(path), "{path}");
        let rw = PathRewrite::new(Some("/api"), "/v1");
        assert_eq!(err(&rw, path, None), ErrorKind::InvalidPath, "{path}");
    }
    let clean = [
        "/",
        "",
        "/a/b",
        "/...",
        "/a/.../b",
        "/.a",
        "/a.",
        "/a..b",
        "/.well-known/x",
        "/%2e%2e%2e",
        "/%2ex",
        "/x%2e",
        "/%2",
        "/%2e%2",
        "/a/%252e%252e/b",
        "/a?/../",
        "/a?q=..",
        "/a;..",
        "/a/b;c/.d",
    ];
    for path in clean {
        assert!(!has_dot_segment(path), "{path}");
    }
}

// ---- properties (PATH-2, PATH-4, ERR-5) ----

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9_~-]{1,8}",
        1 => proptest::sample::select(vec![
            ".", "..", "%2e", "%2E%2e", ".%2e", "..%2f", "%2e%5C", "..;x", "...", ".a", "%41",
        ])
        .prop_map(str::to_owned),
    ]
}

fn path_strategy() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(segment(), 0..6),
        proptest::sample::select(vec!["/", "\\", "%2f", "//"]),
        any::<bool>(),
    )
        .prop_map(|(segs, sep, trailing)| {
            let mut p = String::from("/");
            p.push_str(&segs.join(if sep == "\\" { "/" } else { sep }));
            if trailing {
                p.push('/');
            }
            p
        })
}

/// An independent oracle for PATH-4: decode `%2e`, `%2f`, `%5c`, split on separators, drop
/// `;params`.
fn oracle_has_dot_segment(path: &str) -> bool {
    let path = path.split('?').next().unwrap_or("");
    let lower = path.to_ascii_lowercase();
    let decoded = lower
        .replace("%2e", ".")
        .replace("%2f", "/")
        .replace("%5c", "/")
        .replace('\\', "/");
    decoded.split('/').any(|seg| {
        let name = seg.split(';').next().unwrap_or("");
        name == "." || name == ".."
    })
}

proptest! {
    // PATH-2, PATH-4: with a prefix, the result stays under it; dot segments are refused.
    #[test]
    fn path_prop_prefix_never_escaped(
        path in path_strategy(),
        query in proptest::option::of("[a-z0-9=&./%]{0,10}"),
        strip in proptest::option::of(proptest::sample::select(vec!["/api", "/a", "/api/v1"])),
        prefix in proptest::sample::select(vec!["/v1", "/a/b", "/svc/"]),
    ) {
        let rw = PathRewrite::new(strip, prefix);
        let want_prefix = format!("{}/", prefix.trim_end_matches('/'));
        match rw.rewrite(&path, query.as_deref()) {
            Ok(pq) => {
                prop_assert!(!has_dot_segment(&path));
                prop_assert!(pq.path().starts_with(&want_prefix), "{} -> {}", path, pq);
                prop_assert!(!has_dot_segment(pq.path()), "{} -> {}", path, pq);
                prop_assert_eq!(pq.query(), query.as_deref());
            }
            Err(e) => {
                prop_assert_eq!(e.kind(), ErrorKind::InvalidPath, "{}", path);
                prop_assert!(has_dot_segment(&path));
            }
        }
    }

    // PATH-4: the scanner agrees with a decode-and-split oracle on generated paths.
    #[test]
    fn path_4_prop_matches_oracle(path in path_strategy()) {
        prop_assert_eq!(has_dot_segment(&path), oracle_has_dot_segment(&path), "{}", path);
    }

    // ERR-5: no string makes the rewrite panic; whatever it accepts is a valid path-and-query.
    #[test]
    fn path_prop_rewrite_never_panics(
        path in any::<String>(),
        query in proptest::option::of(any::<String>()),
        strip in proptest::option::of(any::<String>()),
        prefix in any::<String>(),
    ) {
        let rw = PathRewrite::new(strip.as_deref(), &prefix);
        if let Ok(pq) = rw.rewrite(&path, query.as_deref()) {
            prop_assert!(pq.as_str().starts_with('/'));
        }
        let _ = has_dot_segment(&path);
    }
}
