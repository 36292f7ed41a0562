//! Plain HTTP through the proxy: the listener × backend matrix, forwarding headers, limits,
//! trailers.

use std::fs;
use std::process::Command;
use std::time::Duration;

use super::{Env, ensure, listeners, tmp};
use crate::e2e::proc;
use crate::e2e::setup::sha256;

/// A hypercorn route and the HTTP version the backend should see on it.
const HYPERCORN_ROUTES: &[(&str, &str, &str)] = &[
    // (mount, backend's http_version, backend's scheme)
    ("/h1", "1.1", "http"),
    ("/h2c", "2", "http"),
    ("/tls-h2", "2", "https"),
    ("/tls-h1", "1.1", "https"),
];

/// H2-1, POOL-4, POOL-5, PATH-1, PATH-3: GET and POST through every listener (HTTP/1.1, h2c, h2 and
/// HTTP/1.1 over TLS) to every backend (hypercorn over HTTP/1.1, h2c, h2 and HTTP/1.1 over TLS
/// with the test CA as `ca_file`; nginx over HTTP/1.1 and h2c).
pub(crate) fn matrix(env: &Env) -> Result<String, String> {
    let body = tmp(env, "post-body")?;
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(&body, &data).map_err(|e| e.to_string())?;
    let body_sha = sha256(&body)?;
    let post = format!("@{}", body.display());
    let mut count = 0;
    for l in listeners(env) {
        for (mount, backend_version, backend_scheme) in HYPERCORN_ROUTES {
            let what = format!("{} -> {mount}", l.name);
            // PATH-1 strips the mount; PATH-3 keeps the raw query, escapes and order included.
            let got = l.curl(env, &format!("{mount}/echo/a%2Fb?z=1&a=%20x&z=0"), &[])?;
            ensure(got.status == 200, || {
                format!("{what}: GET status {}", got.status)
            })?;
            let checks = [
                ("method", "GET".to_owned()),
                ("path", "/echo/a%2Fb".to_owned()),
                ("query", "z=1&a=%20x&z=0".to_owned()),
                ("http_version", (*backend_version).to_owned()),
                ("scheme", (*backend_scheme).to_owned()),
            ];
            for (key, want) in checks {
                let seen = got.field(key);
                ensure(seen.as_deref() == Some(want.as_str()), || {
                    format!("{what}: backend saw {key} {seen:?}, expected {want:?}")
                })?;
            }
            let got = l.curl(
                env,
                &format!("{mount}/echo"),
                &[
                    "--data-binary",
                    &post,
                    "-H",
                    "content-type: application/octet-stream",
                ],
            )?;
            ensure(got.status == 200, || {
                format!("{what}: POST status {}", got.status)
            })?;
            ensure(got.field("method").as_deref() == Some("POST"), || {
                format!("{what}: POST arrived as {:?}", got.field("method"))
            })?;
            ensure(
                got.field("body_len").as_deref() == Some("100000")
                    && got.field("body_sha256").as_deref() == Some(body_sha.as_str()),
                || {
                    format!(
                        "{what}: backend got {:?} bytes with SHA-256 {:?}",
                        got.field("body_len"),
                        got.field("body_sha256")
                    )
                },
            )?;
            count += 2;
        }
        for (mount, protocol) in [("/nginx", "HTTP/1.1"), ("/nginx-h2c", "HTTP/2.0")] {
            let what = format!("{} -> {mount}", l.name);
            let want = format!("hello from nginx {protocol}\n");
            let got = l.curl(env, &format!("{mount}/hello"), &[])?;
            ensure(got.status == 200 && got.text() == want, || {
                format!(
                    "{what}: GET got {} {:?}, expected 200 {want:?}",
                    got.status,
                    got.text()
                )
            })?;
            let got = l.curl(env, &format!("{mount}/hello"), &["--data-binary", &post])?;
            ensure(got.status == 200 && got.text() == want, || {
                format!(
                    "{what}: POST got {} {:?}, expected 200 {want:?}",
                    got.status,
                    got.text()
                )
            })?;
            count += 2;
        }
    }
    let _ = fs::remove_file(&body);
    Ok(format!(
        "{count} requests: 4 listeners x (4 hypercorn + 2 nginx backends) x GET/POST"
    ))
}

/// HDR-1, HDR-3, HDR-4: what the backend sees of forwarding and hop-by-hop headers.
pub(crate) fn forwarded(env: &Env) -> Result<String, String> {
    let ls = listeners(env);
    let hop = [
        "-H",
        "Connection: x-hop",
        "-H",
        "X-Hop: must not pass",
        "-H",
        "Keep-Alive: timeout=5",
        "-H",
        "Proxy-Connection: keep-alive",
        "-H",
        "TE: trailers",
        "-H",
        "X-Keep: passes",
        "-H",
        "X-Forwarded-For: 203.0.113.7",
    ];
    for l in [&ls[0], &ls[2]] {
        for (mount, h2_backend) in [("/h1", false), ("/h2c", true)] {
            let what = format!("{} -> {mount}", l.name);
            let got = l.curl(env, &format!("{mount}/echo"), &hop)?;
            ensure(got.status == 200, || {
                format!("{what}: status {}", got.status)
            })?;
            // An HTTP/2 client has no `Connection` header (RFC 9113 §8.2.2; curl drops it), so
            // there `x-hop` is an ordinary header.
            let nominated: &[&str] = if l.version == "2" { &[] } else { &["x-hop"] };
            for gone in ["keep-alive", "proxy-connection", "upgrade"]
                .iter()
                .chain(nominated)
            {
                let seen = got.seen_header(gone);
                ensure(seen.is_empty(), || {
                    format!("{what}: hop-by-hop `{gone}` reached the backend: {seen:?}")
                })?;
            }
            ensure(got.seen_header("x-keep") == ["passes"], || {
                format!("{what}: x-keep seen as {:?}", got.seen_header("x-keep"))
            })?;
            // HDR-1 keeps `te: trailers` toward an HTTP/2 backend only; an HTTP/1.1 backend gets
            // neither `te` nor a `connection` naming it.
            let (te, connection) = (got.seen_header("te"), got.seen_header("connection"));
            let want: (Vec<String>, Vec<String>) = if h2_backend {
                (vec!["trailers".into()], vec![])
            } else {
                (vec![], vec![])
            };
            ensure((te.clone(), connection.clone()) == want, || {
                format!(
                    "{what}: backend saw te {te:?} and connection {connection:?}, expected {want:?}"
                )
            })?;
            let proxy_addr = if l.scheme == "https" {
                env.tls
            } else {
                env.plain
            };
            let expect = [
                ("x-forwarded-for", "203.0.113.7, 127.0.0.1".to_owned()),
                ("x-forwarded-proto", l.scheme.to_owned()),
                ("x-forwarded-host", proxy_addr.to_string()),
            ];
            for (name, want) in expect {
                let seen = got.seen_header(name);
                ensure(seen == [want.clone()], || {
                    format!("{what}: backend saw {name} {seen:?}, expected [{want:?}]")
                })?;
            }
            if mount == "/h1" {
                // HDR-4: the backend's own host and port.
                let want = format!("127.0.0.1:{}", env.ports.hyp);
                let seen = got.seen_header("host");
                ensure(seen == [want.clone()], || {
                    format!("{what}: backend saw host {seen:?}, expected [{want:?}]")
                })?;
            }
        }
    }
    // HDR-3 replace: every client-sent forwarding header is dropped, the proxy's own set.
    let got = ls[0].curl(
        env,
        "/replace/echo",
        &[
            "-H",
            "X-Forwarded-For: 203.0.113.7",
            "-H",
            "X-Forwarded-Host: evil.example",
            "-H",
            "Forwarded: for=198.51.100.1",
        ],
    )?;
    for (name, want) in [
        ("x-forwarded-for", vec!["127.0.0.1".to_owned()]),
        ("x-forwarded-host", vec![env.plain.to_string()]),
        ("forwarded", vec![]),
    ] {
        let seen = got.seen_header(name);
        ensure(seen == want, || {
            format!("replace: backend saw {name} {seen:?}, expected {want:?}")
        })?;
    }
    Ok("append (h1 and TLS h2 clients, h1 and h2 backends) and replace".into())
}

/// LIM-1, LIM-2, LIM-3, LIM-5, ERR-1: the limits as curl sees them, over HTTP/1.1 and h2c.
pub(crate) fn limits(env: &Env) -> Result<String, String> {
    let ls = listeners(env);
    let big = tmp(env, "2mib")?;
    fs::write(&big, vec![b'b'; 2 << 20]).map_err(|e| e.to_string())?;
    let big_arg = format!("@{}", big.display());
    let long_query = format!("/limits/echo?q={}", "a".repeat(2000));
    let long_header = format!("x-long: {}", "h".repeat(3000));
    let many: Vec<String> = (0..25).map(|i| format!("x-h{i}: {i}")).collect();
    let mut many_args: Vec<&str> = Vec::new();
    for h in &many {
        many_args.extend(["-H", h.as_str()]);
    }
    let mut n = 0;
    for l in [&ls[0], &ls[1]] {
        let cases: Vec<(&str, String, Vec<&str>, u16, &str)> = vec![
            ("within limits", "/limits/echo".into(), vec![], 200, ""),
            ("LIM-1 long target", long_query.clone(), vec![], 414, ""),
            (
                "LIM-2 long header line",
                "/limits/echo".into(),
                vec!["-H", &long_header],
                431,
                "",
            ),
            (
                "LIM-2 too many headers",
                "/limits/echo".into(),
                many_args.clone(),
                431,
                "",
            ),
            (
                "LIM-3 body over the limit (Content-Length)",
                "/limits/echo".into(),
                vec!["--data-binary", &big_arg],
                413,
                "",
            ),
            (
                "LIM-3 body over the limit (chunked)",
                "/limits/echo".into(),
                vec![
                    "--data-binary",
                    &big_arg,
                    "-H",
                    "transfer-encoding: chunked",
                ],
                413,
                "",
            ),
            (
                "LIM-5 response over the limit",
                "/limits/bytes?n=2097152".into(),
                vec![],
                502,
                "Bad Gateway: Response too large",
            ),
            (
                "ERR-1 backend down",
                "/down/".into(),
                vec![],
                502,
                "Bad Gateway",
            ),
            ("no route", "/nowhere".into(), vec![], 404, ""),
        ];
        for (what, path, extra, want, body) in cases {
            // A chunked request body is an HTTP/1.1 thing.
            if l.version == "2" && extra.contains(&"transfer-encoding: chunked") {
                continue;
            }
            if l.version == "2" && want == 413 {
                // Over HTTP/2 the proxy answers 413 then resets the stream with NO_ERROR to stop
                // the upload (RFC 9113 §8.1); curl 7.88 reports that as a framing error and drops
                // the response, so nghttp reads this one.
                nghttp_413(env, &big)?;
                n += 1;
                continue;
            }
            let got = l.curl(env, &path, &extra)?;
            ensure(got.status == want, || {
                format!(
                    "{} {what}: status {}, expected {want} (body {:?})",
                    l.name,
                    got.status,
                    got.text().chars().take(80).collect::<String>()
                )
            })?;
            ensure(got.text().contains(body), || {
                format!(
                    "{} {what}: body {:?}, expected {body:?}",
                    l.name,
                    got.text()
                )
            })?;
            n += 1;
        }
    }
    let _ = fs::remove_file(&big);
    Ok(format!("{n} requests over h1 and h2c"))
}

/// LIM-3 over h2c, read by nghttp: a 2 MiB upload to a 1 MiB limit gets 413.
fn nghttp_413(env: &Env, body: &std::path::Path) -> Result<(), String> {
    let url = format!("http://{}/limits/echo", env.plain);
    let out = proc::run(
        Command::new("nghttp")
            .arg("-v")
            .arg("-d")
            .arg(body)
            .arg(&url),
        Duration::from_secs(20),
    )?;
    let text = out.stdout_str();
    ensure(
        text.contains(":status: 413") && text.contains("Payload Too Large"),
        || {
            format!(
                "h2c LIM-3: nghttp did not get the 413:\n{}",
                proc::tail_text(&text, 12)
            )
        },
    )
}

/// HDR-8, H2-1: nghttp (h2c) gets the HTTP/2 backend's trailer through the proxy.
pub(crate) fn trailers(env: &Env) -> Result<String, String> {
    let url = format!("http://{}/h2c/trailers", env.plain);
    let out = proc::run(
        Command::new("nghttp").args(["-v", "-H", "te: trailers", &url]),
        Duration::from_secs(20),
    )?;
    let text = out.stdout_str();
    ensure(out.status.success(), || {
        format!("nghttp {url} failed ({}): {}", out.status, out.stderr_str())
    })?;
    ensure(text.contains(":status: 200"), || {
        format!("nghttp got no 200:\n{text}")
    })?;
    ensure(text.contains("body before trailers"), || {
        format!("nghttp got no body:\n{text}")
    })?;
    ensure(text.contains("x-checksum: e2e-trailer"), || {
        format!("the trailer did not reach nghttp:\n{text}")
    })?;
    Ok("x-checksum trailer via h2c -> h2c backend".into())
}
