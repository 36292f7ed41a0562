//! A proxy route's configuration: the original's plug options.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderName, HeaderValue, StatusCode};

use super::check::Checker;
use super::defaults as d;
use super::values::{ErrorResponse, ForwardedHeaders, Protocol, Protocols, SizeLimit};
use super::{ConfigError, PoolConfig};
use crate::backend::Backend;

/// Everything one proxy route needs: its backend and every plug option of the original (`CFG-1`).
///
/// Built with [`RouteConfig::builder`], which checks every value once (`CFG-2`); afterwards the
/// configuration is read-only.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    backend: Backend,
    strip_path: Option<Box<str>>,
    connect_timeout: Duration,
    verify_tls: bool,
    protocols: Protocols,
    add_headers: Vec<(HeaderName, HeaderValue)>,
    remove_headers: Vec<HeaderName>,
    ca_file: Option<PathBuf>,
    error_response: ErrorResponse,
    /// The options taken as given, checked by `build`.
    rest: RouteConfigRest,
}

/// Read access to the options whose values are `Copy`: those checked while parsing live in the
/// config itself, the others in `rest`.
macro_rules! copy_getters {
    (
        parsed { $( $(#[$pdoc:meta])* $pname:ident : $pty:ty ),* $(,)? }
        rest { $( $(#[$doc:meta])* $name:ident : $ty:ty ),* $(,)? }
    ) => {
        impl RouteConfig {
            $( $(#[$pdoc])* #[inline] pub fn $pname(&self) -> $pty { self.$pname } )*
            $( $(#[$doc])* #[inline] pub fn $name(&self) -> $ty { self.rest.$name } )*
        }
    };
}

copy_getters! {
    parsed {
    /// Backend connect timeout (`connect_timeout`, default 5 s; `CFG-3`).
    connect_timeout: Duration,
    /// Whether backend certificates are verified (`verify_tls`, default true; `CFG-3`).
    verify_tls: bool,
    /// Upstream protocols (`protocols`, default HTTP/1.1; `CFG-3`).
    protocols: Protocols,
    }
    rest {
    /// Time to wait for a free pooled connection (`pool_timeout`, default 5 s).
    pool_timeout: Duration,
    /// Time to wait for the backend's response head (`response_header_timeout`, default 30 s).
    response_header_timeout: Duration,
    /// Rolling idle timeout on the backend's body (`upstream_idle_timeout`, default 55 s).
    upstream_idle_timeout: Duration,
    /// Rolling idle timeout on the client's body (`request_body_read_timeout`, default 55 s).
    request_body_read_timeout: Duration,
    /// Largest request body (`max_request_body_size`, default 100 MiB).
    max_request_body_size: SizeLimit,
    /// Bodies up to this size are buffered (`request_body_buffer_size`, default 1 MiB).
    request_body_buffer_size: usize,
    /// Largest response body (`max_response_body_size`, default no limit).
    max_response_body_size: SizeLimit,
    /// Largest request target (`max_request_target_bytes`, default 8 KiB).
    max_request_target_bytes: usize,
    /// Largest request header line, name + 2 + value (`max_request_header_line_bytes`, default 8 KiB).
    max_request_header_line_bytes: usize,
    /// Largest request header block (`max_request_header_bytes`, default 64 KiB).
    max_request_header_bytes: usize,
    /// Most request headers (`max_request_headers`, default 100).
    max_request_headers: usize,
    /// Largest response header block (`max_response_header_bytes`, default 64 KiB).
    max_response_header_bytes: usize,
    /// `X-Forwarded-*` mode (`forwarded_headers`, default append).
    forwarded_headers: ForwardedHeaders,
    /// WebSocket idle timeout (`websocket_idle_timeout`, default 55 s).
    websocket_idle_timeout: Duration,
    /// Backend WebSocket handshake timeout (`websocket_backend_upgrade_timeout`, default 5 s).
    websocket_backend_upgrade_timeout: Duration,
    /// Largest WebSocket message or frame (`max_websocket_frame_size`, default 16 MiB).
    max_websocket_frame_size: usize,
    /// Bytes the WebSocket bridge may queue toward one side (`max_websocket_pending_bytes`, 1 MiB).
    max_websocket_pending_bytes: usize,
    /// Frames the WebSocket bridge may queue toward one side (`max_websocket_pending_frames`, 16).
    max_websocket_pending_frames: usize,
    /// Whether to negotiate WebSocket compression with the client (`websocket_compress`, false).
    websocket_compress: bool,
    /// Extra retries for GET/HEAD that lost their connection before headers
    /// (`response_header_retries`, default 0).
    response_header_retries: u32,
    /// Piece size for streamed request bodies (`request_body_chunk_size`, default 64 KiB).
    request_body_chunk_size: usize,
    /// Forward the client's `Host` instead of the backend's (`preserve_host_header`, default false).
    preserve_host_header: bool,
    /// Close with 1007 on invalid UTF-8 in text messages (`websocket_validate_utf8`, default true).
    websocket_validate_utf8: bool,
    }
}

impl RouteConfig {
    /// A builder for a route to `backend`, starting from the defaults. The URL is checked in
    /// [`RouteConfigBuilder::build`] with everything else.
    ///
    /// ```
    /// use std::time::Duration;
    /// use reverseit_core::RouteConfig;
    ///
    /// let route = RouteConfig::builder("http://127.0.0.1:4000/v1")
    ///     .strip_path("/api")
    ///     .pool_timeout(Duration::from_millis(200))
    ///     .add_header("x-api-key", "secret")
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(route.backend().path_prefix(), "/v1");
    /// assert_eq!(route.strip_path(), Some("/api"));
    ///
    /// let err = RouteConfig::builder("ftp://h").build().unwrap_err();
    /// assert_eq!(err.problems()[0].option(), "backend");
    /// ```
    pub fn builder(backend: impl Into<String>) -> RouteConfigBuilder {
        RouteConfigBuilder::new(backend.into())
    }

    /// The backend.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The prefix removed from request paths on a segment boundary (`strip_path`), without a
    /// trailing slash.
    pub fn strip_path(&self) -> Option<&str> {
        self.strip_path.as_deref()
    }

    /// Headers set on every backend request, replacing client lines of the same name (`add_headers`).
    pub fn add_headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.add_headers
    }

    /// Headers removed from every backend request (`remove_headers`).
    pub fn remove_headers(&self) -> &[HeaderName] {
        &self.remove_headers
    }

    /// An extra trust anchor file (PEM) for a TLS backend (`ca_file`).
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// The answer for a backend that fails before responding (`error_response`, default 502).
    pub fn error_response(&self) -> &ErrorResponse {
        &self.error_response
    }
}

/// Builds a [`RouteConfig`]. Setters only record; [`RouteConfigBuilder::build`] checks everything.
#[derive(Debug, Clone)]
pub struct RouteConfigBuilder {
    backend: String,
    strip_path: Option<String>,
    protocols: Option<Vec<Protocol>>,
    connect_timeout: Option<Duration>,
    verify_tls: Option<bool>,
    add_headers: Vec<(String, String)>,
    remove_headers: Vec<String>,
    ca_file: Option<PathBuf>,
    error_response: Option<(u16, String)>,
    rest: RouteConfigRest,
}

/// The options whose values are checked without parsing.
#[derive(Debug, Clone, Copy)]
struct RouteConfigRest {
    pool_timeout: Duration,
    response_header_timeout: Duration,
    upstream_idle_timeout: Duration,
    request_body_read_timeout: Duration,
    max_request_body_size: SizeLimit,
    request_body_buffer_size: usize,
    max_response_body_size: SizeLimit,
    max_request_target_bytes: usize,
    max_request_header_line_bytes: usize,
    max_request_header_bytes: usize,
    max_request_headers: usize,
    max_response_header_bytes: usize,
    forwarded_headers: ForwardedHeaders,
    websocket_idle_timeout: Duration,
    websocket_backend_upgrade_timeout: Duration,
    max_websocket_frame_size: usize,
    max_websocket_pending_bytes: usize,
    max_websocket_pending_frames: usize,
    websocket_compress: bool,
    response_header_retries: u32,
    request_body_chunk_size: usize,
    preserve_host_header: bool,
    websocket_validate_utf8: bool,
}

/// Builder setters that record a value as given.
macro_rules! setters {
    ($( $(#[$doc:meta])* $name:ident : $ty:ty ),* $(,)?) => {
        impl RouteConfigBuilder {
            $( $(#[$doc])* pub fn $name(mut self, v: $ty) -> Self { self.rest.$name = v; self } )*
        }
    };
}

setters! {
    /// Sets `pool_timeout` (at least 1 ms).
    pool_timeout: Duration,
    /// Sets `response_header_timeout` (at least 1 ms).
    response_header_timeout: Duration,
    /// Sets `upstream_idle_timeout` (at least 1 ms).
    upstream_idle_timeout: Duration,
    /// Sets `request_body_read_timeout` (at least 1 ms).
    request_body_read_timeout: Duration,
    /// Sets `max_request_body_size`.
    max_request_body_size: SizeLimit,
    /// Sets `request_body_buffer_size` (may be 0: stream every body).
    request_body_buffer_size: usize,
    /// Sets `max_response_body_size`.
    max_response_body_size: SizeLimit,
    /// Sets `max_request_target_bytes` (at least 1).
    max_request_target_bytes: usize,
    /// Sets `max_request_header_line_bytes` (at least 1).
    max_request_header_line_bytes: usize,
    /// Sets `max_request_header_bytes` (at least 1).
    max_request_header_bytes: usize,
    /// Sets `max_request_headers` (at least 1).
    max_request_headers: usize,
    /// Sets `max_response_header_bytes` (at least 1).
    max_response_header_bytes: usize,
    /// Sets `forwarded_headers`.
    forwarded_headers: ForwardedHeaders,
    /// Sets `websocket_idle_timeout` (at least 1 ms).
    websocket_idle_timeout: Duration,
    /// Sets `websocket_backend_upgrade_timeout` (at least 1 ms).
    websocket_backend_upgrade_timeout: Duration,
    /// Sets `max_websocket_frame_size` (at least 1).
    max_websocket_frame_size: usize,
    /// Sets `max_websocket_pending_bytes` (at least 1).
    max_websocket_pending_bytes: usize,
    /// Sets `max_websocket_pending_frames` (at least 1).
    max_websocket_pending_frames: usize,
    /// Sets `websocket_compress`.
    websocket_compress: bool,
    /// Sets `response_header_retries`.
    response_header_retries: u32,
    /// Sets `request_body_chunk_size` (at least 1).
    request_body_chunk_size: usize,
    /// Sets `preserve_host_header`.
    preserve_host_header: bool,
    /// Sets `websocket_validate_utf8`.
    websocket_validate_utf8: bool,
}

impl RouteConfigBuilder {
    fn new(backend: String) -> Self {
        Self {
            backend,
            strip_path: None,
            protocols: None,
            connect_timeout: None,
            verify_tls: None,
            add_headers: Vec::new(),
            remove_headers: Vec::new(),
            ca_file: None,
            error_response: None,
            rest: RouteConfigRest {
                pool_timeout: d::POOL_TIMEOUT,
                response_header_timeout: d::RESPONSE_HEADER_TIMEOUT,
                upstream_idle_timeout: d::UPSTREAM_IDLE_TIMEOUT,
                request_body_read_timeout: d::REQUEST_BODY_READ_TIMEOUT,
                max_request_body_size: SizeLimit::Bytes(d::MAX_REQUEST_BODY_SIZE),
                request_body_buffer_size: d::REQUEST_BODY_BUFFER_SIZE,
                max_response_body_size: SizeLimit::Infinity,
                max_request_target_bytes: d::MAX_REQUEST_TARGET_BYTES,
                max_request_header_line_bytes: d::MAX_REQUEST_HEADER_LINE_BYTES,
                max_request_header_bytes: d::MAX_REQUEST_HEADER_BYTES,
                max_request_headers: d::MAX_REQUEST_HEADERS,
                max_response_header_bytes: d::MAX_RESPONSE_HEADER_BYTES,
                forwarded_headers: ForwardedHeaders::Append,
                websocket_idle_timeout: d::WEBSOCKET_IDLE_TIMEOUT,
                websocket_backend_upgrade_timeout: d::WEBSOCKET_BACKEND_UPGRADE_TIMEOUT,
                max_websocket_frame_size: d::MAX_WEBSOCKET_FRAME_SIZE,
                max_websocket_pending_bytes: d::MAX_WEBSOCKET_PENDING_BYTES,
                max_websocket_pending_frames: d::MAX_WEBSOCKET_PENDING_FRAMES,
                websocket_compress: false,
                response_header_retries: d::RESPONSE_HEADER_RETRIES,
                request_body_chunk_size: d::REQUEST_BODY_CHUNK_SIZE,
                preserve_host_header: false,
                websocket_validate_utf8: true,
            },
        }
    }

    /// Sets `strip_path`: a prefix starting with `/`, removed on a segment boundary (`PATH-1`).
    pub fn strip_path(mut self, prefix: impl Into<String>) -> Self {
        self.strip_path = Some(prefix.into());
        self
    }

    /// Sets this route's `connect_timeout` (`CFG-3`), overriding the pool's.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = Some(d);
        self
    }

    /// Sets this route's `protocols` (`CFG-3`), overriding the pool's.
    pub fn protocols(mut self, list: &[Protocol]) -> Self {
        self.protocols = Some(list.to_vec());
        self
    }

    /// Sets this route's `verify_tls` (`CFG-3`), overriding the pool's.
    pub fn verify_tls(mut self, on: bool) -> Self {
        self.verify_tls = Some(on);
        self
    }

    /// Adds one `add_headers` entry: the header is set to this single value on every backend request.
    pub fn add_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.add_headers.push((name.into(), value.into()));
        self
    }

    /// Adds one `remove_headers` entry.
    pub fn remove_header(mut self, name: impl Into<String>) -> Self {
        self.remove_headers.push(name.into());
        self
    }

    /// Sets `ca_file`: a PEM file of extra trust anchors for a TLS backend. Read by the pool.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Sets `error_response`: the status (400..=599) and body for a failing backend.
    pub fn error_response(mut self, status: u16, body: impl Into<String>) -> Self {
        self.error_response = Some((status, body.into()));
        self
    }

    /// Takes `connect_timeout`, `protocols` and `verify_tls` from the pool where this route left them
    /// unset, as a TOML route does with its `[pool]` table.
    pub fn inherit(mut self, pool: &PoolConfig) -> Self {
        self.connect_timeout.get_or_insert(pool.connect_timeout());
        self.verify_tls.get_or_insert(pool.verify_tls());
        if self.protocols.is_none() {
            let p = pool.protocols();
            let mut list = Vec::with_capacity(2);
            if p.http1() {
                list.push(Protocol::Http1);
            }
            if p.http2() {
                list.push(Protocol::Http2);
            }
            self.protocols = Some(list);
        }
        self
    }

    /// Checks every option and returns the route, or every problem found (`CFG-2`).
    pub fn build(self) -> Result<RouteConfig, ConfigError> {
        let mut c = Checker::default();
        let backend = match Backend::parse(&self.backend) {
            Ok(b) => Some(b),
            Err(e) => {
                c.absorb(e);
                None
            }
        };
        let strip_path = self.strip_path.and_then(|p| check_strip_path(&mut c, p));
        let connect_timeout = self.connect_timeout.unwrap_or(d::CONNECT_TIMEOUT);
        c.duration("connect_timeout", connect_timeout);
        let protocols = match &self.protocols {
            Some(list) => c.protocols("protocols", list),
            None => Protocols::HTTP1,
        };
        let r = self.rest;
        for (name, v) in [
            ("pool_timeout", r.pool_timeout),
            ("response_header_timeout", r.response_header_timeout),
            ("upstream_idle_timeout", r.upstream_idle_timeout),
            ("request_body_read_timeout", r.request_body_read_timeout),
            ("websocket_idle_timeout", r.websocket_idle_timeout),
            (
                "websocket_backend_upgrade_timeout",
                r.websocket_backend_upgrade_timeout,
            ),
        ] {
            c.duration(name, v);
        }
        for (name, v) in [
            ("max_request_target_bytes", r.max_request_target_bytes),
            (
                "max_request_header_line_bytes",
                r.max_request_header_line_bytes,
            ),
            ("max_request_header_bytes", r.max_request_header_bytes),
            ("max_request_headers", r.max_request_headers),
            ("max_response_header_bytes", r.max_response_header_bytes),
            ("max_websocket_frame_size", r.max_websocket_frame_size),
            ("max_websocket_pending_bytes", r.max_websocket_pending_bytes),
            (
                "max_websocket_pending_frames",
                r.max_websocket_pending_frames,
            ),
            ("request_body_chunk_size", r.request_body_chunk_size),
        ] {
            c.positive(name, v as u64);
        }
        let add_headers = self
            .add_headers
            .iter()
            .filter_map(|(n, v)| {
                let name = check_header_name(&mut c, "add_headers", n)?;
                if let Some(reason) = not_addable(&name) {
                    c.fail(&format!("add_headers.{n}"), format!("{v:?}"), reason);
                    return None;
                }
                let value = match HeaderValue::from_str(v) {
                    Ok(value) => value,
                    Err(_) => {
                        c.fail(
                            &format!("add_headers.{n}"),
                            format!("{v:?}"),
                            "a header value must be visible ASCII or spaces, free of CR, LF and NUL",
                        );
                        return None;
                    }
                };
                Some((name, value))
            })
            .collect();
        let remove_headers = self
            .remove_headers
            .iter()
            .filter_map(|n| check_header_name(&mut c, "remove_headers", n))
            .collect();
        let error_response = match self.error_response {
            None => ErrorResponse::default(),
            Some((status, body)) => match StatusCode::from_u16(status) {
                Ok(s) if (400..=599).contains(&status) => ErrorResponse::new(s, body),
                _ => {
                    c.fail("error_response.status", status, "must be within 400..=599");
                    ErrorResponse::default()
                }
            },
        };
        let Some(backend) = backend else {
            return Err(c
                .finish(())
                .expect_err("a backend parse error was recorded"));
        };
        let cfg = RouteConfig {
            backend,
            strip_path,
            connect_timeout,
            verify_tls: self.verify_tls.unwrap_or(true),
            protocols,
            add_headers,
            remove_headers,
            ca_file: self.ca_file,
            error_response,
            rest: r,
        };
        c.finish(cfg)
    }
}

fn check_strip_path(c: &mut Checker, p: String) -> Option<Box<str>> {
    if !p.starts_with('/') {
        c.fail("strip_path", format!("{p:?}"), "must start with `/`");
        return None;
    }
    if p.contains(['?', '#']) || p.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        c.fail(
            "strip_path",
            format!("{p:?}"),
            "must be a plain path: no query, fragment, spaces or control characters",
        );
        return None;
    }
    let trimmed = p.trim_end_matches('/');
    // "/" (or "//") strips nothing.
    (!trimmed.is_empty()).then(|| trimmed.into())
}

/// Why `name` cannot be an `add_headers` entry, if it cannot. Hop-by-hop fields describe the
/// connection they travel on (`HDR-1` removes the client's), and the body's framing is the
/// proxy's to write: an added `Content-Length: 3` would make the backend wait for three bytes of
/// every bodiless request, an added `Transfer-Encoding` would misframe every body.
fn not_addable(name: &HeaderName) -> Option<&'static str> {
    if *name == http::header::CONTENT_LENGTH {
        Some("the proxy frames each request body itself; `Content-Length` cannot be added")
    } else if crate::headers::is_hop_by_hop(name) {
        Some("a hop-by-hop field (HDR-1) describes one connection and cannot be added")
    } else {
        None
    }
}

fn check_header_name(c: &mut Checker, option: &str, name: &str) -> Option<HeaderName> {
    match HeaderName::from_bytes(name.as_bytes()) {
        Ok(n) => Some(n),
        Err(_) => {
            c.fail(
                option,
                format!("{name:?}"),
                "not a valid header name (RFC 9110 §5.1 token)",
            );
            None
        }
    }
}
