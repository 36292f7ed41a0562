//! What the server runs with, resolved once from the command line or the TOML file: the listener,
//! the client-side limits, the pool and the mounted routes. Nothing is re-validated afterwards.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reverseit_core::{ConfigError, PoolConfig, RouteConfig};

use crate::cli::Args;

/// The listen address when neither `--listen` nor the file's `listen` says otherwise (`cli.md`).
pub(crate) const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);

/// How long in-flight requests may run on after SIGINT/SIGTERM (`shutdown_timeout`): long enough
/// for ordinary requests, short enough for an orchestrator's kill timeout (Kubernetes: 30 s).
pub(crate) const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// `[server] header_read_timeout`: how long a client connection may go without a request in
/// progress. 10 s is plenty for any real client to send a request head (browsers send it in one
/// packet) and stops slowloris-style connections from piling up; it also closes idle keep-alive
/// connections, as Apache's 5 s `KeepAliveTimeout` does.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// `[server] max_connections`: open client connections at most. Each proxied request can hold a
/// backend socket too, so this stays well under common file-descriptor limits of servers (65 536)
/// while leaving room for a busy site.
pub(crate) const MAX_CONNECTIONS: usize = 10_000;

/// `[server] http2_max_concurrent_streams`: the value nginx, Go and most browsers expect.
pub(crate) const HTTP2_MAX_CONCURRENT_STREAMS: u32 = 100;

/// `[server] max_header_list_size`: HTTP/2 `SETTINGS_MAX_HEADER_LIST_SIZE`, matching the routes'
/// default `max_request_header_bytes` (64 KiB), so a header block no route would accept is refused
/// before it is buffered.
pub(crate) const MAX_HEADER_LIST_SIZE: u32 = 64 * 1024;

/// Everything the server needs to run.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) listen: SocketAddr,
    pub(crate) shutdown_timeout: Duration,
    /// The TLS server configuration when `[tls]` is set: ALPN `h2` and `http/1.1`.
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    pub(crate) limits: ServerLimits,
    pub(crate) pool: PoolConfig,
    /// The routes; empty in demo mode, whose route is added once the demo backend is bound.
    pub(crate) routes: Vec<Mount>,
    pub(crate) demo: bool,
}

/// The `[server]` table: protection of the listener against its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ServerLimits {
    pub(crate) header_read_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) http2_max_concurrent_streams: u32,
    pub(crate) max_header_list_size: u32,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: HEADER_READ_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            http2_max_concurrent_streams: HTTP2_MAX_CONCURRENT_STREAMS,
            max_header_list_size: MAX_HEADER_LIST_SIZE,
        }
    }
}

/// One route mounted at a path prefix.
#[derive(Debug, Clone)]
pub(crate) struct Mount {
    /// The normalized mount prefix: starts with `/`, no trailing `/` except for the root `/`.
    pub(crate) path: String,
    pub(crate) route: RouteConfig,
}

/// A configuration that cannot be used: every problem, one line (or short block) each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadConfig {
    pub(crate) problems: Vec<String>,
}

impl BadConfig {
    pub(crate) fn one(problem: impl Into<String>) -> Self {
        Self {
            problems: vec![problem.into()],
        }
    }
}

impl fmt::Display for BadConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "error: {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for BadConfig {}

/// Resolves the command line (and the file it names) into settings.
pub(crate) fn resolve(args: &Args) -> Result<Settings, BadConfig> {
    let mut settings = if let Some(path) = &args.config {
        crate::file::load(path)?
    } else if let Some(backend) = &args.backend {
        from_backend(args, backend)?
    } else {
        Settings {
            listen: DEFAULT_LISTEN,
            shutdown_timeout: SHUTDOWN_TIMEOUT,
            tls: None,
            limits: ServerLimits::default(),
            pool: PoolConfig::default(),
            routes: Vec::new(),
            demo: true,
        }
    };
    if let Some(listen) = args.listen {
        settings.listen = listen;
    }
    Ok(settings)
}

/// `--backend URL [--strip-path PREFIX] [--protocols ...]`: one route at `/`.
fn from_backend(args: &Args, backend: &str) -> Result<Settings, BadConfig> {
    let mut b = RouteConfig::builder(backend);
    if let Some(p) = &args.strip_path {
        b = b.strip_path(p.clone());
    }
    if let Some(p) = &args.protocols {
        b = b.protocols(p);
    }
    let route = b.build().map_err(|e| from_flags(&e))?;
    Ok(Settings {
        listen: DEFAULT_LISTEN,
        shutdown_timeout: SHUTDOWN_TIMEOUT,
        tls: None,
        limits: ServerLimits::default(),
        pool: PoolConfig::default(),
        routes: vec![Mount {
            path: "/".to_owned(),
            route,
        }],
        demo: false,
    })
}

/// Names each invalid option by its command-line flag.
fn from_flags(e: &ConfigError) -> BadConfig {
    BadConfig {
        problems: e
            .problems()
            .iter()
            .map(|p| {
                let flag = p.option().replace('_', "-");
                format!("invalid --{flag} {}: {}", p.value(), p.reason())
            })
            .collect(),
    }
}

/// Checks a mount prefix and normalizes it (no trailing slash except for `/`).
pub(crate) fn mount_path(p: &str) -> Result<String, &'static str> {
    if !p.starts_with('/') {
        return Err("a mount path must start with `/`");
    }
    if p.contains(['?', '#', '%']) || p.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(
            "a mount path is a plain path: no query, fragment, percent-escapes, spaces or control characters",
        );
    }
    if p.split('/').any(|seg| seg == "." || seg == "..") {
        return Err("a mount path must not contain `.` or `..` segments");
    }
    let trimmed = p.trim_end_matches('/');
    Ok(if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_are_normalized() {
        assert_eq!(mount_path("/").unwrap(), "/");
        assert_eq!(mount_path("//").unwrap(), "/");
        assert_eq!(mount_path("/api/").unwrap(), "/api");
        assert_eq!(mount_path("/api/v1").unwrap(), "/api/v1");
        assert!(mount_path("api").is_err());
        assert!(mount_path("/a?b").is_err());
        assert!(mount_path("/a/../b").is_err());
    }

    fn args(list: &[&str]) -> Args {
        use clap::Parser;
        Args::try_parse_from(std::iter::once("reverseit").chain(list.iter().copied())).unwrap()
    }

    #[test]
    fn modes_resolve() {
        let demo = resolve(&args(&[])).unwrap();
        assert!(demo.demo);
        assert!(demo.routes.is_empty());
        assert_eq!(demo.listen, DEFAULT_LISTEN);

        let one = resolve(&args(&[
            "--backend",
            "http://127.0.0.1:4000/v1",
            "--strip-path",
            "/api",
            "--protocols",
            "http2",
            "--listen",
            "[::1]:0",
        ]))
        .unwrap();
        assert!(!one.demo);
        assert_eq!(one.listen.to_string(), "[::1]:0");
        assert_eq!(one.routes.len(), 1);
        assert_eq!(one.routes[0].path, "/");
        assert_eq!(one.routes[0].route.strip_path(), Some("/api"));
        assert_eq!(
            one.routes[0].route.protocols(),
            reverseit_core::Protocols::HTTP2
        );
        assert_eq!(one.limits, ServerLimits::default());
        assert_eq!(one.shutdown_timeout, SHUTDOWN_TIMEOUT);
    }

    #[test]
    fn flag_errors_name_the_flag() {
        let e = RouteConfig::builder("http://h")
            .strip_path("api")
            .build()
            .unwrap_err();
        let msg = from_flags(&e).to_string();
        assert!(msg.contains("--strip-path"), "{msg}");
        assert!(msg.contains("api"), "{msg}");
    }
}
