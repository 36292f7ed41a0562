//! HTTP/1.1 request smuggling: ambiguous or malformed framing sent on a raw socket to the plain
//! listener, in front of the recording backend. Each request must be refused (400, 501 for an
//! unknown coding, or the connection closed) or reach the backend as exactly one well-formed
//! request, never two.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use super::Env;
use crate::e2e::recorder::Seen;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// RFC 9112 says reject (ERR-6): refused, nothing forwarded.
    Refuse,
    /// Refused, or forwarded as exactly one well-formed request.
    RefuseOrOne,
    /// A well-formed control request: forwarded once.
    One,
}

struct Case {
    name: &'static str,
    head: String,
    body: Vec<u8>,
    expect: Expect,
    /// For a forwarded request, the body the backend must get.
    forwarded_body: Option<Vec<u8>>,
}

/// The leftover that would become a second request if the proxy framed the first one wrongly.
const EVIL: &str = "GET /smuggle/evil HTTP/1.1\r\nHost: e2e\r\n\r\n";

fn all_cases() -> Vec<Case> {
    use Expect::*;
    let post = |name: &'static str, headers: &str| {
        format!("POST /smuggle/{name} HTTP/1.1\r\nHost: e2e\r\n{headers}\r\n")
    };
    // Chunked says "empty body, then EVIL"; Content-Length says "all of it is the body".
    let te_tail = format!("0\r\n\r\n{EVIL}");
    let cl_tail = te_tail.len();
    let mut v = vec![
        Case {
            name: "control",
            head: post("control", "Content-Length: 5\r\n"),
            body: b"hello".to_vec(),
            expect: One,
            forwarded_body: Some(b"hello".to_vec()),
        },
        Case {
            name: "cl-te",
            head: post(
                "cl-te",
                &format!("Content-Length: {cl_tail}\r\nTransfer-Encoding: chunked\r\n"),
            ),
            body: te_tail.clone().into_bytes(),
            expect: RefuseOrOne,
            forwarded_body: None,
        },
        Case {
            name: "te-cl",
            head: post(
                "te-cl",
                &format!("Transfer-Encoding: chunked\r\nContent-Length: {cl_tail}\r\n"),
            ),
            body: te_tail.clone().into_bytes(),
            expect: RefuseOrOne,
            forwarded_body: None,
        },
        Case {
            name: "cl-cl-differ",
            head: post(
                "cl-cl-differ",
                &format!("Content-Length: 0\r\nContent-Length: {}\r\n", EVIL.len()),
            ),
            body: EVIL.as_bytes().to_vec(),
            expect: Refuse,
            forwarded_body: None,
        },
        Case {
            name: "cl-cl-same",
            head: post("cl-cl-same", "Content-Length: 5\r\nContent-Length: 5\r\n"),
            body: b"hello".to_vec(),
            expect: RefuseOrOne,
            forwarded_body: Some(b"hello".to_vec()),
        },
        Case {
            name: "cl-list",
            head: post("cl-list", "Content-Length: 5, 5\r\n"),
            body: b"hello".to_vec(),
            expect: RefuseOrOne,
            forwarded_body: Some(b"hello".to_vec()),
        },
        Case {
            name: "cl-plus-sign",
            head: post(
                "cl-plus-sign",
                &format!("Content-Length: +{}\r\n", EVIL.len()),
            ),
            body: EVIL.as_bytes().to_vec(),
            expect: Refuse,
            forwarded_body: None,
        },
        Case {
            name: "cl-huge",
            head: post("cl-huge", "Content-Length: 99999999999999999999999999\r\n"),
            body: Vec::new(),
            expect: Refuse,
            forwarded_body: None,
        },
    ];
    // Obfuscated Transfer-Encoding beside a Content-Length that covers the would-be second request.
    let obfuscated: [(&'static str, &str, Expect); 8] = [
        ("te-xchunked", "Transfer-Encoding: xchunked\r\n", Refuse),
        (
            "te-space-before-colon",
            "Transfer-Encoding : chunked\r\n",
            Refuse,
        ),
        (
            "te-chunked-identity",
            "Transfer-Encoding: chunked, identity\r\n",
            Refuse,
        ),
        (
            "te-two-lines",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
            Refuse,
        ),
        ("te-tab", "Transfer-Encoding:\tchunked\r\n", RefuseOrOne),
        ("te-vtab", "Transfer-Encoding: \x0bchunked\r\n", RefuseOrOne),
        (
            "te-obs-fold",
            "Transfer-Encoding:\r\n chunked\r\n",
            RefuseOrOne,
        ),
        (
            "te-quoted",
            "Transfer-Encoding: \"chunked\"\r\n",
            RefuseOrOne,
        ),
    ];
    for (name, te, expect) in obfuscated {
        v.push(Case {
            name,
            head: post(name, &format!("Content-Length: {cl_tail}\r\n{te}")),
            body: te_tail.clone().into_bytes(),
            expect,
            forwarded_body: None,
        });
    }
    v.extend([
        Case {
            name: "obs-fold",
            head: "GET /smuggle/obs-fold HTTP/1.1\r\nHost: e2e\r\nX-Folded: a\r\n b\r\n\r\n".into(),
            body: Vec::new(),
            expect: RefuseOrOne,
            forwarded_body: Some(Vec::new()),
        },
        Case {
            name: "bare-lf",
            head: "GET /smuggle/bare-lf HTTP/1.1\nHost: e2e\nX-A: b\n\n".into(),
            body: Vec::new(),
            expect: RefuseOrOne,
            forwarded_body: Some(Vec::new()),
        },
        Case {
            name: "bare-cr-in-value",
            head: "GET /smuggle/bare-cr-in-value HTTP/1.1\r\nHost: e2e\r\nX-A: a\rb\r\n\r\n".into(),
            body: Vec::new(),
            expect: RefuseOrOne,
            forwarded_body: Some(Vec::new()),
        },
        Case {
            name: "bare-lf-in-chunks",
            head: post("bare-lf-in-chunks", "Transfer-Encoding: chunked\r\n"),
            body: b"5\nhello\n0\n\n".to_vec(),
            expect: RefuseOrOne,
            forwarded_body: Some(b"hello".to_vec()),
        },
        Case {
            name: "missing-host",
            head: "GET /smuggle/missing-host HTTP/1.1\r\n\r\n".into(),
            body: Vec::new(),
            expect: Refuse,
            forwarded_body: None,
        },
        Case {
            name: "two-hosts",
            head: "GET /smuggle/two-hosts HTTP/1.1\r\nHost: e2e\r\nHost: other\r\n\r\n".into(),
            body: Vec::new(),
            expect: Refuse,
            forwarded_body: None,
        },
        Case {
            name: "upgrade-h2c",
            head: "GET /smuggle/upgrade-h2c HTTP/1.1\r\nHost: e2e\r\nConnection: Upgrade, HTTP2-Settings\r\n\
                   Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
                .into(),
            body: Vec::new(),
            expect: RefuseOrOne,
            forwarded_body: Some(Vec::new()),
        },
    ]);
    // Invalid chunk framing; the would-be second request follows. The last two go wrong only
    // after a valid first chunk: a small body of unknown length is buffered before anything is
    // forwarded (LIM-4), so they are refused too.
    let bad_chunks: [(&'static str, &str); 8] = [
        ("chunk-negative", "-1\r\n"),
        ("chunk-0x-prefix", "0x5\r\nhello\r\n0\r\n\r\n"),
        (
            "chunk-overflow",
            "ffffffffffffffffffffffff1\r\nhello\r\n0\r\n\r\n",
        ),
        ("chunk-empty-size", "\r\nhello\r\n0\r\n\r\n"),
        ("chunk-space-inside", "5 5\r\nhello\r\n0\r\n\r\n"),
        ("chunk-plus", "+5\r\nhello\r\n0\r\n\r\n"),
        ("chunk-too-long", "5\r\nhelloXX\r\n0\r\n\r\n"),
        ("chunk-bad-second-size", "5\r\nhello\r\n-1\r\n"),
    ];
    for (name, chunks) in bad_chunks {
        v.push(Case {
            name,
            head: post(name, "Transfer-Encoding: chunked\r\n"),
            body: format!("{chunks}{EVIL}").into_bytes(),
            expect: Refuse,
            forwarded_body: None,
        });
    }
    v
}

/// ERR-6, ERR-5: every case, one connection each.
pub(crate) fn cases(env: &Env) -> Result<String, String> {
    let mut problems = Vec::new();
    let all = all_cases();
    let (mut refused, mut forwarded) = (0, 0);
    let _ = env.recorder.take();
    for case in &all {
        let (responses, closed) = exchange(env, case)?;
        // Let a forwarded request land.
        thread::sleep(Duration::from_millis(100));
        let seen = env.recorder.take();
        let verdict = judge(case, &responses, closed, &seen);
        match verdict {
            Ok(Verdict::ForwardedOnce) => forwarded += 1,
            Ok(Verdict::Refused) => refused += 1,
            Err(why) => {
                println!("    FAIL {}: {why}", case.name);
                problems.push(format!("{}: {why}", case.name));
                continue;
            }
        }
        let statuses: Vec<String> = responses.iter().map(u16::to_string).collect();
        println!(
            "    ok {}: responses [{}]{}, backend saw {}",
            case.name,
            statuses.join(", "),
            if closed { ", closed" } else { "" },
            seen.len(),
        );
    }
    if problems.is_empty() {
        Ok(format!(
            "{} cases: {refused} refused, {forwarded} forwarded once",
            all.len()
        ))
    } else {
        Err(problems.join("; "))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Refused,
    ForwardedOnce,
}

fn judge(case: &Case, responses: &[u16], closed: bool, seen: &[Seen]) -> Result<Verdict, String> {
    if let Some(bad) = seen.iter().find_map(|s| s.malformed.as_ref()) {
        return Err(format!("reached the backend malformed: {bad}"));
    }
    if seen.len() > 1 {
        let targets: Vec<&str> = seen.iter().map(|s| s.target.as_str()).collect();
        return Err(format!(
            "reached the backend as {} requests: {targets:?}",
            seen.len()
        ));
    }
    if let Some(s) = seen.first() {
        let want = format!("/smuggle/{}", case.name);
        if s.target != want {
            return Err(format!(
                "the backend saw {} {}, expected {want}",
                s.method, s.target
            ));
        }
        if case.expect == Expect::Refuse {
            return Err(format!(
                "forwarded (body {:?}) although RFC 9112 says reject; client got {responses:?}",
                String::from_utf8_lossy(&s.body)
            ));
        }
        if let Some(body) = &case.forwarded_body
            && &s.body != body
        {
            return Err(format!(
                "the backend got body {:?}, expected {:?}",
                String::from_utf8_lossy(&s.body),
                String::from_utf8_lossy(body)
            ));
        }
        for h in ["upgrade", "http2-settings"] {
            if let Some(v) = s.header(h) {
                return Err(format!("`{h}: {v}` reached the backend"));
            }
        }
        // The backend's answer, and at most a refusal of whatever followed.
        match responses {
            [200] | [200, 400] => Ok(Verdict::ForwardedOnce),
            other => Err(format!("forwarded once, but the client got {other:?}")),
        }
    } else {
        if case.expect == Expect::One {
            return Err(format!("not forwarded; client got {responses:?}"));
        }
        match responses {
            [] if closed => Ok(Verdict::Refused),
            [400 | 501] if closed => Ok(Verdict::Refused),
            [400 | 501] => Err("refused, but the connection was left open (ERR-6)".into()),
            other => Err(format!(
                "nothing forwarded, but the client got {other:?}{}",
                if closed { " and a close" } else { "" }
            )),
        }
    }
}

/// Sends the case on a fresh connection; returns the response statuses and whether the proxy
/// closed the connection.
fn exchange(env: &Env, case: &Case) -> Result<(Vec<u16>, bool), String> {
    let mut s = TcpStream::connect(env.plain).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(|e| e.to_string())?;
    let mut bytes = case.head.clone().into_bytes();
    bytes.extend_from_slice(&case.body);
    let mut closed = s.write_all(&bytes).is_err();
    let mut got = Vec::new();
    let start = Instant::now();
    let mut last = Instant::now();
    let mut buf = [0u8; 8192];
    while !closed {
        match s.read(&mut buf) {
            Ok(0) => closed = true,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                last = Instant::now();
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                let idle = last.elapsed();
                if (!got.is_empty() && idle > Duration::from_millis(400))
                    || start.elapsed() > Duration::from_secs(3)
                {
                    break;
                }
            }
            Err(_) => closed = true,
        }
    }
    Ok((statuses(&got), closed))
}

/// The status codes of the responses in `data`, read one after the other by their lengths.
fn statuses(mut data: &[u8]) -> Vec<u16> {
    let mut out = Vec::new();
    while let Some(end) = find(data, b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&data[..end]).into_owned();
        let Some(code) = head
            .strip_prefix("HTTP/1.1 ")
            .and_then(|r| r.get(..3))
            .and_then(|c| c.parse().ok())
        else {
            break;
        };
        out.push(code);
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        let next = (end + 4 + len).min(data.len());
        data = &data[next..];
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
