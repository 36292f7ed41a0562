//! Where and how to connect: built once per route, read on every request.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use http::uri::{Authority, Scheme};
use reverseit_core::config::defaults;
use reverseit_core::{Backend, ConfigError, Protocols, RouteConfig};

use crate::backend::BackendPool;
use crate::key::Key;
use crate::tls::{self, ALPN_H2, ALPN_HTTP1, TlsSettings};

/// One backend and the settings of the connections made to it.
///
/// Build it once per route ([`Target::from_route`]) or per backend ([`Target::new`]), then pass it
/// to every [`Pool::send`](crate::Pool::send). Cloning is cheap. The TLS configuration (trust
/// anchors, `ca_file`, ALPN) is built here, once, not per connection.
#[derive(Clone)]
pub struct Target {
    pub(crate) inner: Arc<TargetInner>,
}

pub(crate) struct TargetInner {
    pub(crate) backend: Backend,
    pub(crate) key: Key,
    pub(crate) mode: Mode,
    pub(crate) connect_timeout: Duration,
    pub(crate) pool_timeout: Duration,
    pub(crate) tls: Option<TlsSettings>,
    /// TLS offering only `http/1.1`, for upgrade connections (WebSocket) when `tls` may
    /// negotiate h2; `None` when `tls` already offers only `http/1.1`, or for plain backends.
    pub(crate) upgrade_tls: Option<TlsSettings>,
    /// `http` or `https`, for the absolute URIs HTTP/2 needs.
    pub(crate) scheme: Scheme,
    pub(crate) authority: Authority,
    /// The pool entry this target resolved to last, so a request skips the map lookup:
    /// (pool id, entry).
    pub(crate) cache: OnceLock<(u64, Weak<BackendPool>)>,
}

/// How connections to a target speak HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// HTTP/1.1 (plain, or TLS offering only `http/1.1`; a plain backend allowing both also lands
    /// here: there is no negotiation without TLS).
    Http1,
    /// HTTP/2 only: prior-knowledge h2c in plain text, ALPN `h2` alone over TLS.
    Http2,
    /// TLS offering `h2` and `http/1.1`: the server's ALPN choice decides per connection.
    Negotiate,
}

impl Target {
    /// The target of a route: its backend, `connect_timeout`, `pool_timeout`, `protocols`,
    /// `verify_tls` and `ca_file` (`CFG-3`). Reads the `ca_file` now; an unreadable file or one
    /// without a PEM certificate is an error naming `ca_file` and the path.
    pub fn from_route(route: &RouteConfig) -> Result<Target, ConfigError> {
        let mut b = Target::new(route.backend().clone())
            .connect_timeout(route.connect_timeout())
            .pool_timeout(route.pool_timeout())
            .protocols(route.protocols())
            .verify_tls(route.verify_tls());
        if let Some(path) = route.ca_file() {
            b = b.ca_file(path);
        }
        b.build()
    }

    /// A builder for a target outside any route (standalone client use), starting from the
    /// defaults: 5 s `connect_timeout` and `pool_timeout`, HTTP/1.1, verified TLS.
    ///
    /// ```
    /// use reverseit_core::{Backend, Protocols};
    /// use reverseit_pool::Target;
    ///
    /// let backend = Backend::parse("https://example.com").unwrap();
    /// let target = Target::new(backend).protocols(Protocols::BOTH).build().unwrap();
    /// assert_eq!(target.backend().host(), "example.com");
    /// ```
    #[expect(
        clippy::new_ret_no_self,
        reason = "the proxy's API: `Target::new(backend)` starts a target, `build()` checks it"
    )]
    pub fn new(backend: Backend) -> TargetBuilder {
        TargetBuilder {
            backend,
            connect_timeout: defaults::CONNECT_TIMEOUT,
            pool_timeout: defaults::POOL_TIMEOUT,
            protocols: Protocols::HTTP1,
            verify_tls: true,
            ca_file: None,
        }
    }

    /// The backend.
    pub fn backend(&self) -> &Backend {
        &self.inner.backend
    }

    /// Time allowed to open a connection: TCP, TLS and, for HTTP/2, the server's first `SETTINGS`.
    pub fn connect_timeout(&self) -> Duration {
        self.inner.connect_timeout
    }

    /// Time a request waits for a free connection before failing with `PoolExhausted`.
    pub fn pool_timeout(&self) -> Duration {
        self.inner.pool_timeout
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("backend", &self.inner.backend)
            .field("mode", &self.inner.mode)
            .field("connect_timeout", &self.inner.connect_timeout)
            .field("pool_timeout", &self.inner.pool_timeout)
            .field("tls", &self.inner.tls)
            .finish()
    }
}

/// Builds a [`Target`]; [`TargetBuilder::build`] reads the `ca_file` and prepares TLS.
#[derive(Debug, Clone)]
#[must_use]
pub struct TargetBuilder {
    backend: Backend,
    connect_timeout: Duration,
    pool_timeout: Duration,
    protocols: Protocols,
    verify_tls: bool,
    ca_file: Option<PathBuf>,
}

impl TargetBuilder {
    /// Sets the time allowed to open a connection.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Sets the time a request waits for a free pooled connection.
    pub fn pool_timeout(mut self, d: Duration) -> Self {
        self.pool_timeout = d;
        self
    }

    /// Sets the protocols: HTTP/2 is negotiated by ALPN over TLS; on a plain backend, HTTP/2 alone
    /// means prior-knowledge h2c and both mean HTTP/1.1 (`POOL-4`).
    pub fn protocols(mut self, p: Protocols) -> Self {
        self.protocols = p;
        self
    }

    /// Turns certificate verification off (`false`) for this target only. Dangerous: anyone on the
    /// network path can impersonate the backend; see the crate docs.
    pub fn verify_tls(mut self, on: bool) -> Self {
        self.verify_tls = on;
        self
    }

    /// Adds the certificates of a PEM file as trust anchors.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Checks the settings, reads the `ca_file` and builds the TLS configuration.
    pub fn build(self) -> Result<Target, ConfigError> {
        let backend = self.backend;
        let tls_on = backend.is_tls();
        let mode = match (self.protocols.http1(), self.protocols.http2()) {
            (_, false) => Mode::Http1,
            (false, true) => Mode::Http2,
            (true, true) if tls_on => Mode::Negotiate,
            (true, true) => Mode::Http1,
        };
        let tls = if tls_on {
            let alpn: &[&[u8]] = match mode {
                Mode::Http1 => &[ALPN_HTTP1],
                Mode::Http2 => &[ALPN_H2],
                Mode::Negotiate => &[ALPN_H2, ALPN_HTTP1],
            };
            Some(tls::settings(
                backend.host(),
                self.verify_tls,
                self.ca_file.as_deref(),
                alpn,
            )?)
        } else {
            None
        };
        let upgrade_tls = if tls_on && mode != Mode::Http1 {
            Some(tls::settings(
                backend.host(),
                self.verify_tls,
                self.ca_file.as_deref(),
                &[ALPN_HTTP1],
            )?)
        } else {
            None
        };
        let key = Key::new(&backend, self.verify_tls, self.ca_file, self.protocols);
        Ok(Target {
            inner: Arc::new(TargetInner {
                scheme: backend.scheme().http_scheme(),
                authority: backend.authority().clone(),
                backend,
                key,
                mode,
                connect_timeout: self.connect_timeout,
                pool_timeout: self.pool_timeout,
                tls,
                upgrade_tls,
                cache: OnceLock::new(),
            }),
        })
    }
}
