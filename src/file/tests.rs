//! The file's shape and its error messages (`CFG-2`: every error names the option, the value and,
//! for a file, the line).

use std::path::Path;
use std::time::Duration;

use reverseit_core::{ForwardedHeaders, Protocols, SizeLimit};

use super::parse;
use crate::settings::{BadConfig, Settings};

fn ok(text: &str) -> Settings {
    parse("test.toml", text, Path::new("")).unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &str) -> BadConfig {
    parse("test.toml", text, Path::new("")).expect_err("the file should be refused")
}

/// The one problem of `text`, checked to be at `line`.
fn one_err_at(text: &str, line: usize) -> String {
    let e = err(text);
    assert_eq!(e.problems.len(), 1, "{e}");
    let p = e.problems[0].clone();
    assert!(p.starts_with(&format!("test.toml:{line}:")), "{p}");
    p
}

#[test]
fn the_documented_example_is_accepted() {
    // CFG-1: the file of `cli.md`, less the files it names.
    let s = ok(r#"
listen = "127.0.0.1:9090"
shutdown_timeout = 1500

[server]
header_read_timeout = 2000
max_connections = 64
http2_max_concurrent_streams = 10
max_header_list_size = 32768

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
forwarded_headers = "replace"
add_headers = { "x-api-key" = "secret" }
remove_headers = ["cookie"]
verify_tls = true
protocols = ["http1", "http2"]
websocket_idle_timeout = 55000
websocket_backend_upgrade_timeout = 5000
max_websocket_frame_size = 16777216
max_websocket_pending_bytes = 1048576
max_websocket_pending_frames = 16
websocket_compress = false
response_header_retries = 1
request_body_chunk_size = 65536
preserve_host_header = false
websocket_validate_utf8 = true
error_response = { status = 503, body = "Try later" }

[[routes]]
backend = "ws://127.0.0.1:4001/v1"
forwarded_headers = false
"#);
    assert_eq!(s.listen.to_string(), "127.0.0.1:9090");
    assert_eq!(s.shutdown_timeout, Duration::from_millis(1500));
    assert_eq!(s.limits.header_read_timeout, Duration::from_secs(2));
    assert_eq!(s.limits.max_connections, 64);
    assert_eq!(s.limits.http2_max_concurrent_streams, 10);
    assert_eq!(s.limits.max_header_list_size, 32768);
    assert!(s.tls.is_none());
    assert_eq!(s.routes.len(), 2);
    let api = &s.routes[0];
    assert_eq!(api.path, "/api");
    assert_eq!(api.route.strip_path(), Some("/api"));
    assert_eq!(api.route.forwarded_headers(), ForwardedHeaders::Replace);
    assert_eq!(api.route.protocols(), Protocols::BOTH);
    assert_eq!(api.route.max_response_body_size(), SizeLimit::Infinity);
    assert_eq!(api.route.error_response().status().as_u16(), 503);
    let root = &s.routes[1];
    assert_eq!(root.path, "/");
    assert_eq!(root.route.forwarded_headers(), ForwardedHeaders::Off);
    assert_eq!(root.route.backend().path_prefix(), "/v1");
}

#[test]
fn defaults_apply_and_routes_inherit_the_pool() {
    // CFG-3: a route's unset connect_timeout/protocols/verify_tls come from [pool].
    let s = ok(r#"
[pool]
connect_timeout = 1234
protocols = ["http2"]
verify_tls = false

[[routes]]
backend = "https://127.0.0.1:4000"

[[routes]]
path = "/own/"
backend = "https://127.0.0.1:4000"
connect_timeout = 99
"#);
    assert_eq!(s.listen, crate::settings::DEFAULT_LISTEN);
    assert_eq!(s.shutdown_timeout, crate::settings::SHUTDOWN_TIMEOUT);
    assert_eq!(s.limits, crate::settings::ServerLimits::default());
    let inherited = &s.routes[0].route;
    assert_eq!(inherited.connect_timeout(), Duration::from_millis(1234));
    assert_eq!(inherited.protocols(), Protocols::HTTP2);
    assert!(!inherited.verify_tls());
    assert_eq!(s.routes[1].path, "/own");
    assert_eq!(
        s.routes[1].route.connect_timeout(),
        Duration::from_millis(99)
    );
}

#[test]
fn the_originals_pool_name_is_accepted() {
    // CFG-1: every option of the original loads, its required `name` (the Finch pool's) included.
    let s = ok(r#"
[pool]
name = "MyApp.ReverseProxy"
pool_size = 7
[[routes]]
name = "MyApp.ReverseProxy"
backend = "http://127.0.0.1:4000"
"#);
    assert_eq!(s.routes.len(), 1);
    assert_eq!(s.pool.pool_size(), 7);
    let p = one_err_at("[[routes]]\nbackend = \"http://h\"\nname = 1\n", 3);
    assert!(
        p.contains("`name` in routes[0]: invalid type: integer `1`"),
        "{p}"
    );
}

#[test]
fn unknown_route_key_is_named_with_its_line() {
    let p = one_err_at(
        "[[routes]]\nbackend = \"http://127.0.0.1:1\"\npool_timout = 10\n",
        3,
    );
    assert!(
        p.contains("unknown key `pool_timout` in routes[0]: did you mean `pool_timeout`?"),
        "{p}"
    );
    assert!(p.contains("pool_timout = 10"), "{p}");
}

#[test]
fn far_off_unknown_keys_are_named_without_a_guess() {
    let p = one_err_at("[[routes]]\nbackend = \"http://h\"\nzzz = 1\n", 3);
    assert!(
        p.contains("unknown key `zzz` in routes[0] (the keys are listed"),
        "{p}"
    );
    // The unknown key, then what the table lacks once it is set aside.
    let e = err("[tls]\nzzz = 1\n[[routes]]\nbackend = \"http://h\"\n");
    assert_eq!(e.problems.len(), 2, "{e}");
    assert!(
        e.problems.iter().any(|p| p.starts_with("test.toml:2:")
            && p.contains("unknown key `zzz` in tls, expected `cert` or `key`")),
        "{e}"
    );
    assert!(
        e.problems
            .iter()
            .any(|p| p.contains("missing field `cert`")),
        "{e}"
    );
}

#[test]
fn unknown_keys_everywhere_are_refused() {
    for (text, line, key) in [
        (
            "lisen = \"x\"\n[[routes]]\nbackend = \"http://h\"\n",
            1,
            "lisen`",
        ),
        (
            "[pool]\nsize = 1\n[[routes]]\nbackend = \"http://h\"\n",
            2,
            "size` in pool",
        ),
        (
            "[server]\ntimeout = 1\n[[routes]]\nbackend = \"http://h\"\n",
            2,
            "timeout` in server",
        ),
        (
            "[tls]\ncert = \"c\"\nkey = \"k\"\nca = \"x\"\n[[routes]]\nbackend = \"http://h\"\n",
            4,
            "ca` in tls",
        ),
        (
            "[[routes]]\nbackend = \"http://h\"\nerror_response = { status = 502, text = \"x\" }\n",
            3,
            "text`",
        ),
    ] {
        // The unknown key comes first (a `[tls]` table's unreadable files may follow it).
        let e = err(text);
        let p = &e.problems[0];
        assert!(p.starts_with(&format!("test.toml:{line}:")), "{e}");
        assert!(p.contains(&format!("`{key}")), "{e}");
    }
}

#[test]
fn values_of_the_wrong_type_are_named_with_their_table() {
    // CFG-2, cli.md: the message names the key, top-level ones included, and the value; serde's
    // Rust type names (`u64`) are not the reader's words.
    const ROUTE: &str = "[[routes]]\nbackend = \"http://h\"\n";
    for (text, key, value) in [
        ("listen = 5\n", "`listen`", "integer `5`"),
        (
            "shutdown_timeout = -1\n",
            "`shutdown_timeout`",
            "integer `-1`",
        ),
        (
            "shutdown_timeout = \"x\"\n",
            "`shutdown_timeout`",
            "string \"x\"",
        ),
        (
            "[pool]\npool_size = 1.5\n",
            "`pool_size` in pool",
            "floating point `1.5`",
        ),
    ] {
        let p = one_err_at(&format!("{text}{ROUTE}"), text.lines().count());
        assert!(p.contains(&format!("{key}: invalid")), "{p}");
        assert!(p.contains(value), "{p}");
        assert!(!p.contains("u64") && !p.contains("usize"), "{p}");
    }
    let p = one_err_at(
        &format!("{ROUTE}{ROUTE}pool_timeout = \"5s\"\npath = \"/b\"\n"),
        5,
    );
    assert!(
        p.contains("`pool_timeout` in routes[1]: invalid type"),
        "{p}"
    );
    // A problem with a key the table lacks (two routes at the default path) is at the table.
    let p = one_err_at(&format!("{ROUTE}\n{ROUTE}"), 4);
    assert!(p.contains("`routes[1].path` = \"/\""), "{p}");
}

#[test]
fn invalid_values_name_option_value_and_line() {
    // CFG-2, with the line found from the option name.
    let p = one_err_at(
        "[[routes]]\nbackend = \"http://127.0.0.1:1\"\n\n[[routes]]\npath = \"/b\"\nbackend = \"http://127.0.0.1:2\"\npool_timeout = 0\n",
        7,
    );
    assert!(p.contains("routes[1].pool_timeout"), "{p}");
    assert!(p.contains("= 0"), "{p}");

    let p = one_err_at(
        "[pool]\n\npool_size = 0\n[[routes]]\nbackend = \"http://h\"\n",
        3,
    );
    assert!(p.contains("pool.pool_size"), "{p}");

    let p = one_err_at("[[routes]]\nbackend = \"ftp://h\"\n", 2);
    assert!(
        p.contains("routes[0].backend") && p.contains("ftp://h"),
        "{p}"
    );

    let p = one_err_at(
        "[[routes]]\nbackend = \"http://h\"\nadd_headers = { \"x-ok\" = \"1\", \"x-bad\" = \"a\\nb\" }\n",
        3,
    );
    assert!(p.contains("routes[0].add_headers.x-bad"), "{p}");

    let p = one_err_at(
        "listen = \"localhost\"\n[[routes]]\nbackend = \"http://h\"\n",
        1,
    );
    assert!(p.contains("`listen`") && p.contains("localhost"), "{p}");

    let p = one_err_at("[[routes]]\npath = \"api\"\nbackend = \"http://h\"\n", 2);
    assert!(p.contains("routes[0].path"), "{p}");

    let p = one_err_at(
        "[server]\nmax_connections = 0\n[[routes]]\nbackend = \"http://h\"\n",
        2,
    );
    assert!(p.contains("server.max_connections"), "{p}");
    let p = one_err_at(
        "[server]\nmax_connections = 9999999999999\n[[routes]]\nbackend = \"http://h\"\n",
        2,
    );
    assert!(p.contains("server.max_connections` = 9999999999999"), "{p}");
}

#[test]
fn wrong_types_are_reported_by_toml_with_the_line() {
    let p = one_err_at(
        "[[routes]]\nbackend = \"http://h\"\npool_timeout = \"5s\"\n",
        3,
    );
    assert!(p.contains("5s") || p.contains("string"), "{p}");
    let p = one_err_at(
        "[[routes]]\nbackend = \"http://h\"\nforwarded_headers = \"sometimes\"\n",
        3,
    );
    assert!(p.contains("sometimes"), "{p}");
}

#[test]
fn every_problem_is_reported() {
    let e = err(r#"
[pool]
pool_size = 0

[[routes]]
backend = "http://h"
pool_timeout = 0
max_request_headers = 0

[[routes]]
path = "/b"
backend = "nope"
"#);
    assert_eq!(e.problems.len(), 4, "{e}");
    let e = err(
        "[[routes]]\npath = \"/a\"\nbackend = \"http://h\"\nx = 1\n[[routes]]\npath = \"/b\"\nbackend = \"http://h\"\ny = 2\n",
    );
    assert_eq!(e.problems.len(), 2, "{e}");
    // CFG-2, cli.md: keys of a wrong shape are each reported, named, at their line, and
    // validation still reports the rest.
    let e = err(r#"
[[routes]]
backend = "ftp://h"
websocket_idle_timeout = "55s"
max_websocket_frame_size = "big"
protocols = [
  "http1",
  "http3",
]
"#);
    let lines: Vec<&str> = e
        .problems
        .iter()
        .map(|p| p.lines().next().unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{e}");
    assert!(
        lines[0].starts_with("test.toml:4:")
            && lines[0].contains("`websocket_idle_timeout` in routes[0]:"),
        "{e}"
    );
    assert!(
        lines[1].starts_with("test.toml:5:")
            && lines[1].contains("`max_websocket_frame_size` in routes[0]:"),
        "{e}"
    );
    assert!(
        lines[2].starts_with("test.toml:8:")
            && lines[2].contains("`protocols` in routes[0]: unknown variant"),
        "{e}"
    );
    assert!(
        lines[3].starts_with("test.toml:3:") && lines[3].contains("ftp"),
        "{e}"
    );
}

#[test]
fn syntax_errors_carry_the_line() {
    let e = err("[[routes]]\nbackend = \"http://h\"\npool_timeout = = 3\n");
    for p in &e.problems {
        assert!(p.starts_with("test.toml:3:"), "{p}");
        assert!(p.contains("pool_timeout = = 3"), "{p}");
    }
}

#[test]
fn structural_mistakes() {
    let p = err("listen = \"127.0.0.1:1\"\n").to_string();
    assert!(p.contains("no routes"), "{p}");
    let p = one_err_at("[[routes]]\npath = \"/a\"\n", 1);
    assert!(p.contains("backend"), "{p}");
    let p = one_err_at(
        "[[routes]]\npath = \"/a/\"\nbackend = \"http://h\"\n[[routes]]\npath = \"/a\"\nbackend = \"http://h\"\n",
        5,
    );
    assert!(p.contains("already mounted"), "{p}");
    let p = one_err_at("routes = 3\n", 1);
    assert!(p.contains("[[routes]]"), "{p}");
}

#[test]
fn unreadable_tls_files_are_named() {
    let e = err(
        "[tls]\ncert = \"missing-cert.pem\"\nkey = \"missing-key.pem\"\n[[routes]]\nbackend = \"http://h\"\n",
    );
    assert!(e.to_string().contains("missing-cert.pem"), "{e}");
}
