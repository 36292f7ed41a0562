use std::time::Duration;

use http::StatusCode;

use super::*;

fn route(backend: &str) -> RouteConfigBuilder {
    RouteConfig::builder(backend)
}

// CFG-1: every supervisor option exists with the original's default.
#[test]
fn cfg_1_pool_defaults() {
    let p = PoolConfig::default();
    assert_eq!(p.pool_size(), 50);
    assert_eq!(p.pool_count(), 1);
    assert_eq!(p.connect_timeout(), Duration::from_millis(5_000));
    assert_eq!(p.conn_max_idle_time(), Duration::from_millis(90_000));
    assert_eq!(p.protocols(), Protocols::HTTP1);
    assert!(p.verify_tls());
    assert_eq!(PoolConfig::builder().build().unwrap(), p);
}

// CFG-1: every plug option of the README table and the undocumented ones, with their defaults.
#[test]
fn cfg_1_route_defaults() {
    let r = route("http://127.0.0.1:4000").build().unwrap();
    let ms = Duration::from_millis;
    assert_eq!(r.strip_path(), None);
    assert_eq!(r.connect_timeout(), ms(5_000));
    assert_eq!(r.pool_timeout(), ms(5_000));
    assert_eq!(r.response_header_timeout(), ms(30_000));
    assert_eq!(r.upstream_idle_timeout(), ms(55_000));
    assert_eq!(r.request_body_read_timeout(), ms(55_000));
    assert_eq!(r.max_request_body_size(), SizeLimit::Bytes(104_857_600));
    assert_eq!(r.request_body_buffer_size(), 1_048_576);
    assert_eq!(r.max_response_body_size(), SizeLimit::Infinity);
    assert_eq!(r.max_request_target_bytes(), 8_192);
    assert_eq!(r.max_request_header_line_bytes(), 8_192);
    assert_eq!(r.max_request_header_bytes(), 65_536);
    assert_eq!(r.max_request_headers(), 100);
    assert_eq!(r.max_response_header_bytes(), 65_536);
    assert_eq!(r.forwarded_headers(), ForwardedHeaders::Append);
    assert!(r.add_headers().is_empty());
    assert!(r.remove_headers().is_empty());
    assert!(r.verify_tls());
    assert_eq!(r.ca_file(), None);
    assert_eq!(r.protocols(), Protocols::HTTP1);
    assert_eq!(r.websocket_idle_timeout(), ms(55_000));
    assert_eq!(r.websocket_backend_upgrade_timeout(), ms(5_000));
    assert_eq!(r.max_websocket_frame_size(), 16_777_216);
    assert_eq!(r.max_websocket_pending_bytes(), 1_048_576);
    assert_eq!(r.max_websocket_pending_frames(), 16);
    assert!(!r.websocket_compress());
    assert_eq!(r.response_header_retries(), 0);
    assert_eq!(r.request_body_chunk_size(), 65_536);
    assert!(!r.preserve_host_header());
    assert!(r.websocket_validate_utf8());
    assert_eq!(r.error_response().status(), StatusCode::BAD_GATEWAY);
    assert_eq!(r.error_response().body(), "Bad Gateway");
}

// CFG-1: the TOML shape of cli.md parses into the same options, every key of the example included.
#[test]
fn cfg_1_toml_example_from_cli_md() {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        pool: PoolSpec,
        routes: Vec<RouteSpec>,
    }
    let text = r#"
        [pool]
        pool_size = 50
        pool_count = 1
        connect_timeout = 5000
        conn_max_idle_time = 90000
        protocols = ["http1"]
        verify_tls = true

        [[routes]]
        path = "/api"
        backend = "http://127.0.0.1:4000"
        strip_path = "/api"
        connect_timeout = 5000
        pool_timeout = 5000
        response_header_timeout = 30000
        upstream_idle_timeout = 55000
        request_body_read_timeout = 55000
        max_request_body_size = 104857600
        request_body_buffer_size = 1048576
        max_response_body_size = "infinity"
        max_request_target_bytes = 8192
        max_request_header_line_bytes = 8192
        max_request_header_bytes = 65536
        max_request_headers = 100
        max_response_header_bytes = 65536
        forwarded_headers = "append"
        add_headers = { "x-api-key" = "secret" }
        remove_headers = ["cookie"]
        verify_tls = true
        ca_file = "backend-ca.pem"
        protocols = ["http1", "http2"]
        websocket_idle_timeout = 55000
        websocket_backend_upgrade_timeout = 5000
        max_websocket_frame_size = 16777216
        max_websocket_pending_bytes = 1048576
        max_websocket_pending_frames = 16
        websocket_compress = false
        response_header_retries = 2
        request_body_chunk_size = 4096
        preserve_host_header = true
        websocket_validate_utf8 = false
        error_response = { status = 503, body = "Down" }
    "#;
    let file: File = toml::from_str(text).unwrap();
    let pool = file.pool.build().unwrap();
    assert_eq!(pool, PoolConfig::default());
    let spec = &file.routes[0];
    assert_eq!(spec.path.as_deref(), Some("/api"));
    let r = spec.build(&pool).unwrap();
    assert_eq!(r.strip_path(), Some("/api"));
    assert_eq!(r.protocols(), Protocols::BOTH);
    assert_eq!(r.add_headers()[0].0, "x-api-key");
    assert_eq!(r.add_headers()[0].1, "secret");
    assert_eq!(r.remove_headers()[0], "cookie");
    assert_eq!(r.ca_file().unwrap().to_str(), Some("backend-ca.pem"));
    assert_eq!(r.response_header_retries(), 2);
    assert_eq!(r.request_body_chunk_size(), 4096);
    assert!(r.preserve_host_header());
    assert!(!r.websocket_validate_utf8());
    assert_eq!(r.error_response().status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.error_response().body(), "Down");
    assert_eq!(r.max_response_body_size(), SizeLimit::Infinity);
}

// CFG-1: forwarded_headers takes "append", "replace" or false; sizes take "infinity".
#[test]
fn cfg_1_toml_value_forms() {
    let parse = |extra: &str| -> Result<RouteSpec, toml::de::Error> {
        toml::from_str(&format!("backend = \"http://h\"\n{extra}"))
    };
    let cases = [
        ("forwarded_headers = \"replace\"", ForwardedHeaders::Replace),
        ("forwarded_headers = false", ForwardedHeaders::Off),
        ("forwarded_headers = \"append\"", ForwardedHeaders::Append),
    ];
    for (line, want) in cases {
        assert_eq!(parse(line).unwrap().forwarded_headers, Some(want), "{line}");
    }
    assert!(parse("forwarded_headers = true").is_err());
    assert!(parse("forwarded_headers = \"prepend\"").is_err());
    assert_eq!(
        parse("max_request_body_size = \"infinity\"")
            .unwrap()
            .max_request_body_size,
        Some(SizeLimit::Infinity)
    );
    let err = parse("max_request_body_size = \"lots\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("infinity"), "{err}");
    let err = parse("protocols = [\"http3\"]").unwrap_err().to_string();
    assert!(err.contains("http3"), "{err}");
}

// CFG-2: unknown keys are rejected with their name.
#[test]
fn cfg_2_unknown_keys_named() {
    let err = toml::from_str::<RouteSpec>("backend = \"http://h\"\npool_sise = 3")
        .unwrap_err()
        .to_string();
    assert!(err.contains("pool_sise"), "{err}");
    let err = toml::from_str::<PoolSpec>("max_conns = 3")
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_conns"), "{err}");
}

// CFG-2: every invalid value is reported with the option and the value, all at once.
#[test]
fn cfg_2_validation_names_option_and_value() {
    let err = route("http://h")
        .pool_timeout(Duration::ZERO)
        .max_request_headers(0)
        .request_body_chunk_size(0)
        .max_websocket_pending_frames(0)
        .protocols(&[])
        .add_header("bad header", "v")
        .add_header("x-ok", "line\r\nbreak")
        .remove_header("")
        .error_response(302, "moved")
        .strip_path("api")
        .build()
        .unwrap_err();
    let found: Vec<(&str, &str)> = err
        .problems()
        .iter()
        .map(|p| (p.option(), p.value()))
        .collect();
    for want in [
        ("pool_timeout", "0"),
        ("max_request_headers", "0"),
        ("request_body_chunk_size", "0"),
        ("max_websocket_pending_frames", "0"),
        ("protocols", "[]"),
        ("add_headers", "\"bad header\""),
        ("add_headers.x-ok", "\"line\\r\\nbreak\""),
        ("remove_headers", "\"\""),
        ("error_response.status", "302"),
        ("strip_path", "\"api\""),
    ] {
        assert!(found.contains(&want), "missing {want:?} in {found:?}");
    }
    let text = err.to_string();
    assert!(text.contains("invalid `pool_timeout` = 0"), "{text}");
}

// CFG-2, HDR-1: `add_headers` cannot add a hop-by-hop field or the body's framing; each such entry
// is refused with its name and value, whatever its case. Other fields, `Host` included, can.
#[test]
fn cfg_2_add_headers_refuses_connection_and_framing_fields() {
    let names = [
        "connection",
        "Keep-Alive",
        "proxy-authorization",
        "proxy-authenticate",
        "proxy-connection",
        "te",
        "trailer",
        "Transfer-Encoding",
        "upgrade",
        "content-length",
    ];
    let mut builder = RouteConfig::builder("http://127.0.0.1:4000");
    for name in names {
        builder = builder.add_header(name, "x");
    }
    let err = builder.build().unwrap_err();
    let found: Vec<(&str, &str)> = err
        .problems()
        .iter()
        .map(|p| (p.option(), p.value()))
        .collect();
    assert_eq!(found.len(), names.len(), "{found:?}");
    for name in names {
        let option = format!("add_headers.{name}");
        assert!(
            found.contains(&(option.as_str(), "\"x\"")),
            "{option} in {found:?}"
        );
    }
    let ok = RouteConfig::builder("http://127.0.0.1:4000")
        .add_header("host", "backend.internal")
        .add_header("x-api-key", "k")
        .build()
        .unwrap();
    assert_eq!(ok.add_headers().len(), 2);
}

// CFG-2: the pool's counts must be positive, its timeouts non-zero, its protocols non-empty.
#[test]
fn cfg_2_pool_validation() {
    let err = PoolConfig::builder()
        .pool_size(0)
        .pool_count(0)
        .connect_timeout(Duration::ZERO)
        .conn_max_idle_time(Duration::ZERO)
        .protocols(&[])
        .build()
        .unwrap_err();
    let names: Vec<&str> = err.problems().iter().map(|p| p.option()).collect();
    assert_eq!(
        names,
        [
            "pool_size",
            "pool_count",
            "connect_timeout",
            "conn_max_idle_time",
            "protocols"
        ]
    );
}

// CFG-2: a bad backend is reported together with other problems, and sections prefix names.
#[test]
fn cfg_2_backend_and_sections() {
    let err = route("ftp://h")
        .max_request_headers(0)
        .build()
        .unwrap_err()
        .in_section("routes[1]");
    let names: Vec<&str> = err.problems().iter().map(|p| p.option()).collect();
    assert_eq!(
        names,
        ["routes[1].backend", "routes[1].max_request_headers"]
    );
    assert_eq!(err.problems()[0].value(), "ftp://h");
}

// CFG-2: an error_response status must be 400..=599.
#[test]
fn cfg_2_error_response_status_range() {
    for (status, ok) in [
        (399, false),
        (400, true),
        (599, true),
        (600, false),
        (1000, false),
    ] {
        let res = route("http://h").error_response(status, "x").build();
        assert_eq!(res.is_ok(), ok, "status {status}");
    }
}

// CFG-3: a route's own connect_timeout, protocols and verify_tls win over the pool's; unset ones
// inherit the pool's.
#[test]
fn cfg_3_route_overrides_pool() {
    let pool = PoolConfig::builder()
        .connect_timeout(Duration::from_millis(700))
        .protocols(&[Protocol::Http2])
        .verify_tls(false)
        .build()
        .unwrap();
    let inherited = route("https://h").inherit(&pool).build().unwrap();
    assert_eq!(inherited.connect_timeout(), Duration::from_millis(700));
    assert_eq!(inherited.protocols(), Protocols::HTTP2);
    assert!(!inherited.verify_tls());

    let own = route("https://h")
        .connect_timeout(Duration::from_millis(50))
        .protocols(&[Protocol::Http1, Protocol::Http2])
        .verify_tls(true)
        .inherit(&pool)
        .build()
        .unwrap();
    assert_eq!(own.connect_timeout(), Duration::from_millis(50));
    assert_eq!(own.protocols(), Protocols::BOTH);
    assert!(own.verify_tls());
}

// PATH-1 support: strip_path is stored without a trailing slash; "/" strips nothing.
#[test]
fn strip_path_normalised() {
    let r = route("http://h").strip_path("/api/").build().unwrap();
    assert_eq!(r.strip_path(), Some("/api"));
    let r = route("http://h").strip_path("/").build().unwrap();
    assert_eq!(r.strip_path(), None);
}
