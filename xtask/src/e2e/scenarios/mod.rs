//! The scenarios, grouped by topic, and the small helpers they share (curl, the echo backend's
//! answer).

mod http;
mod load;
mod smuggling;
mod streaming;
mod websocket;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::Scenario;
use super::deps::Tool;
use super::proc;
use super::setup::Env;

/// Every scenario, in the order they run.
pub(crate) fn all() -> Vec<Scenario> {
    let s = Duration::from_secs;
    vec![
        Scenario {
            name: "http-matrix",
            ids: &["H2-1", "POOL-4", "POOL-5", "PATH-1", "PATH-3"],
            needs: &[Tool::Curl, Tool::PyPeers, Tool::Nginx, Tool::Openssl],
            timeout: s(90),
            run: http::matrix,
        },
        Scenario {
            name: "forwarded-headers",
            ids: &["HDR-1", "HDR-3", "HDR-4"],
            needs: &[Tool::Curl, Tool::PyPeers, Tool::Openssl],
            timeout: s(30),
            run: http::forwarded,
        },
        Scenario {
            name: "limits",
            ids: &["LIM-1", "LIM-2", "LIM-3", "LIM-5", "ERR-1"],
            needs: &[Tool::Curl, Tool::Nghttp, Tool::PyPeers],
            timeout: s(30),
            run: http::limits,
        },
        Scenario {
            name: "trailers-nghttp",
            ids: &["HDR-8", "H2-1"],
            needs: &[Tool::Nghttp, Tool::PyPeers],
            timeout: s(30),
            run: http::trailers,
        },
        Scenario {
            name: "big-bodies-64mib",
            ids: &["STR-2", "LIM-4", "STR-6"],
            needs: &[Tool::Curl, Tool::PyPeers, Tool::Nginx, Tool::Openssl],
            timeout: s(150),
            run: streaming::big_bodies,
        },
        Scenario {
            name: "sse",
            ids: &["STR-1"],
            needs: &[Tool::Curl, Tool::PyPeers, Tool::Openssl],
            timeout: s(30),
            run: streaming::sse,
        },
        Scenario {
            name: "websocket",
            ids: &["WS-2", "WS-4", "WS-5", "WS-6", "WS-10", "POOL-5"],
            needs: &[Tool::PyPeers, Tool::Openssl],
            timeout: s(90),
            run: websocket::clients,
        },
        Scenario {
            name: "autobahn",
            ids: &["WS-5", "WS-6", "WS-8", "ERR-5"],
            needs: &[Tool::PyPeers, Tool::Autobahn],
            timeout: s(300),
            run: websocket::autobahn,
        },
        Scenario {
            name: "smuggling",
            ids: &["ERR-6", "ERR-5"],
            needs: &[],
            timeout: s(90),
            run: smuggling::cases,
        },
        Scenario {
            name: "h2load-burst",
            ids: &["H2-1", "POOL-1", "POOL-4"],
            needs: &[Tool::H2load, Tool::Nginx, Tool::Openssl],
            timeout: s(120),
            run: load::burst,
        },
        Scenario {
            name: "sigterm-drain",
            ids: &["cli.md SIGTERM"],
            needs: &[Tool::Curl, Tool::PyPeers],
            timeout: s(40),
            run: load::sigterm_drain,
        },
    ]
}

/// What curl got.
#[derive(Debug)]
pub(crate) struct Got {
    pub(crate) status: u16,
    /// `1.1` or `2`.
    pub(crate) version: String,
    pub(crate) head: String,
    pub(crate) body: Vec<u8>,
    pub(crate) body_file: PathBuf,
}

impl Got {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The echo backend's `key value` lines.
    pub(crate) fn field(&self, key: &str) -> Option<String> {
        let prefix = format!("{key} ");
        self.text()
            .lines()
            .find_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
    }

    /// Every value of a header the echo backend saw.
    pub(crate) fn seen_header(&self, name: &str) -> Vec<String> {
        let prefix = format!("header {name}: ");
        self.text()
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
            .collect()
    }
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A fresh file name under `target/e2e/tmp`.
pub(crate) fn tmp(env: &Env, what: &str) -> Result<PathBuf, String> {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    Ok(env.dir("tmp")?.join(format!("{n}-{what}")))
}

/// Runs curl with `args` (a URL among them); the body is kept in a file (and read back unless
/// `keep_body_on_disk`).
pub(crate) fn curl_to(env: &Env, args: &[&str], keep_body_on_disk: bool) -> Result<Got, String> {
    let head = tmp(env, "head")?;
    let body = tmp(env, "body")?;
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "100", "-D"])
        .arg(&head)
        .arg("-o")
        .arg(&body)
        .args(["-w", "%{http_code} %{http_version}"])
        .args(args);
    let out = proc::run(&mut cmd, Duration::from_secs(110))?;
    if !out.status.success() {
        return Err(format!(
            "curl {} failed ({}): {}",
            args.join(" "),
            out.status,
            out.stderr_str().trim()
        ));
    }
    let w = out.stdout_str();
    let mut it = w.split_whitespace();
    let status = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let version = it.next().unwrap_or("").to_owned();
    let head_text = std::fs::read_to_string(&head).unwrap_or_default();
    let _ = std::fs::remove_file(&head);
    let bytes = if keep_body_on_disk {
        Vec::new()
    } else {
        let b = std::fs::read(&body).unwrap_or_default();
        let _ = std::fs::remove_file(&body);
        b
    };
    Ok(Got {
        status,
        version,
        head: head_text,
        body: bytes,
        body_file: body,
    })
}

pub(crate) fn curl(env: &Env, args: &[&str]) -> Result<Got, String> {
    curl_to(env, args, false)
}

/// `Err` with `what` when `cond` is false.
pub(crate) fn ensure(cond: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(what()) }
}

/// One way of reaching the proxy with curl.
#[derive(Debug, Clone)]
pub(crate) struct Listener {
    pub(crate) name: &'static str,
    pub(crate) base: String,
    pub(crate) args: Vec<String>,
    /// curl's `%{http_version}` expected.
    pub(crate) version: &'static str,
    pub(crate) scheme: &'static str,
}

/// The proxy's four faces: HTTP/1.1 and h2c on the plain listener, h2 and HTTP/1.1 over TLS.
pub(crate) fn listeners(env: &Env) -> Vec<Listener> {
    let ca = env.ca.display().to_string();
    vec![
        Listener {
            name: "h1",
            base: format!("http://{}", env.plain),
            args: vec!["--http1.1".into()],
            version: "1.1",
            scheme: "http",
        },
        Listener {
            name: "h2c",
            base: format!("http://{}", env.plain),
            args: vec!["--http2-prior-knowledge".into()],
            version: "2",
            scheme: "http",
        },
        Listener {
            name: "tls-h2",
            base: format!("https://{}", env.tls),
            args: vec!["--http2".into(), "--cacert".into(), ca.clone()],
            version: "2",
            scheme: "https",
        },
        Listener {
            name: "tls-h1",
            base: format!("https://{}", env.tls),
            args: vec!["--http1.1".into(), "--cacert".into(), ca],
            version: "1.1",
            scheme: "https",
        },
    ]
}

impl Listener {
    /// curl through this listener: `extra` arguments, then the URL `base + path`.
    pub(crate) fn curl(&self, env: &Env, path: &str, extra: &[&str]) -> Result<Got, String> {
        let url = format!("{}{path}", self.base);
        let mut args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        args.extend_from_slice(extra);
        args.push(&url);
        let got = curl(env, &args)?;
        ensure(got.version == self.version, || {
            format!(
                "{}: curl spoke HTTP/{} to the proxy, expected {}",
                self.name, got.version, self.version
            )
        })?;
        Ok(got)
    }
}
