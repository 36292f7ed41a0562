//! The header policy: what the proxy changes in the headers it forwards, in each direction.
//!
//! - Hop-by-hop fields are removed both ways (`HDR-1`, `HDR-6`; RFC 9110 §7.6.1), including every
//!   field a `Connection` line names.
//! - Toward the backend, `Expect` is dropped (`HDR-2`), `X-Forwarded-*` written (`HDR-3`), `Host`
//!   set (`HDR-4`), then the route's `remove_headers` and `add_headers` applied (`HDR-5`).
//! - WebSocket handshakes get the same policy, minus the handshake fields the backend client
//!   regenerates (`WS-3`); [`is_websocket_upgrade`] and [`check_websocket_handshake`] detect and
//!   check them (`WS-1`), [`offered_subprotocols`] and [`check_selected_subprotocol`] serve `WS-4`.
//!
//! Everything works in place on an [`http::HeaderMap`]. A [`HeaderPolicy`] is built once per route
//! from its [`RouteConfig`]; applying it allocates only the values it writes.
//!
//! The order of lines with the same name is kept. The relative order of different names is not
//! significant (RFC 9110 §5.3) and `HeaderMap` does not keep it across removals.

use std::net::IpAddr;

use http::header::{
    CONTENT_LENGTH, EXPECT, HOST, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_EXTENSIONS,
    SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION,
};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::{ForwardedHeaders, RouteConfig};

mod forwarded;
mod hop_by_hop;
mod websocket;

pub(crate) use hop_by_hop::list_elements;
pub use hop_by_hop::{accepts_trailers, is_hop_by_hop, remove_hop_by_hop};
pub use websocket::{
    check_selected_subprotocol, check_websocket_handshake, is_websocket_upgrade,
    offered_subprotocols,
};

/// The client connection as the server adapter sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientInfo {
    /// The client's address (written to `X-Forwarded-For`).
    pub peer: IpAddr,
    /// Whether the client connected over TLS (`X-Forwarded-Proto: https`).
    pub tls: bool,
    /// The port the client connected to on the proxy (`X-Forwarded-Port`).
    pub port: u16,
}

impl ClientInfo {
    /// The client at `peer`, connected with or without TLS to the proxy's `port`.
    pub fn new(peer: IpAddr, tls: bool, port: u16) -> Self {
        Self { peer, tls, port }
    }
}

/// The protocol spoken to the backend, which decides whether `te: trailers` survives (`HDR-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Upstream {
    /// HTTP/1.1: every hop-by-hop field is removed.
    Http1,
    /// HTTP/2: `te: trailers` is kept so gRPC works.
    Http2,
}

/// One route's header policy, precomputed from its configuration.
///
/// ```
/// use std::net::Ipv4Addr;
/// use http::HeaderMap;
/// use reverseit_core::{ClientInfo, HeaderPolicy, RouteConfig, Upstream};
///
/// let route = RouteConfig::builder("http://backend:4000")
///     .add_header("x-api-key", "secret")
///     .build()
///     .unwrap();
/// let policy = HeaderPolicy::from_route(&route);
///
/// let mut h = HeaderMap::new();
/// h.insert("host", "example.com".parse().unwrap());
/// h.insert("connection", "keep-alive".parse().unwrap());
/// h.insert("x-forwarded-for", "10.0.0.1".parse().unwrap());
/// let client_host = h.get("host").cloned();
/// let client = ClientInfo::new(Ipv4Addr::new(192, 0, 2, 7).into(), true, 443);
/// policy.apply_request(&mut h, &client, client_host.as_ref(), Upstream::Http1);
///
/// assert_eq!(h["host"], "backend:4000");
/// assert_eq!(h["x-forwarded-for"], "10.0.0.1, 192.0.2.7");
/// assert_eq!(h["x-forwarded-proto"], "https");
/// assert_eq!(h["x-forwarded-host"], "example.com");
/// assert_eq!(h["x-forwarded-port"], "443");
/// assert_eq!(h["x-api-key"], "secret");
/// assert!(h.get("connection").is_none());
/// ```
#[derive(Debug, Clone)]
pub struct HeaderPolicy {
    forwarded: ForwardedHeaders,
    add: Box<[(HeaderName, HeaderValue)]>,
    remove: Box<[HeaderName]>,
    preserve_host: bool,
    backend_host: HeaderValue,
}

/// How many `X-Forwarded-*` fields [`HeaderPolicy::apply_request`] may add.
const FORWARDED_FIELDS: usize = 4;

/// The handshake fields the backend client writes itself (`WS-3`, RFC 6455 §4.1).
const REGENERATED_WS_FIELDS: [HeaderName; 4] = [
    SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_ACCEPT,
    SEC_WEBSOCKET_VERSION,
    SEC_WEBSOCKET_EXTENSIONS,
];

impl HeaderPolicy {
    /// The policy of `route`: its `forwarded_headers`, `add_headers`, `remove_headers`,
    /// `preserve_host_header` and its backend's `Host`.
    pub fn from_route(route: &RouteConfig) -> Self {
        Self {
            forwarded: route.forwarded_headers(),
            add: route.add_headers().into(),
            remove: route.remove_headers().into(),
            preserve_host: route.preserve_host_header(),
            backend_host: route.backend().host_header().clone(),
        }
    }

    /// Rewrites a request's headers for the backend, in this order:
    ///
    /// 1. hop-by-hop fields removed (`HDR-1`), `te: trailers` kept only toward [`Upstream::Http2`];
    /// 2. `Expect` removed: the proxy answers it itself (`HDR-2`);
    /// 3. `X-Forwarded-For`/`-Proto`/`-Host`/`-Port` per `forwarded_headers` (`HDR-3`);
    /// 4. `Host`: the backend's, or with `preserve_host_header` the client's (`HDR-4`);
    /// 5. `remove_headers`, then `add_headers`, each replacing every line of its name (`HDR-5`).
    ///
    /// `client_host` is the client's `Host` or HTTP/2 `:authority`, read by the caller before the
    /// call. With `preserve_host_header` and no `client_host`, an existing `Host` line is kept, and
    /// without one the backend's host is sent so HTTP/1.1 backends still get a `Host`.
    pub fn apply_request(
        &self,
        headers: &mut HeaderMap,
        client: &ClientInfo,
        client_host: Option<&HeaderValue>,
        upstream: Upstream,
    ) {
        // Room for the fields added below, made once: hyper sizes a parsed request's map to the
        // fields it carries, and growing it as each one is added means a reallocation and a rehash.
        headers.reserve(FORWARDED_FIELDS + 1 + self.add.len());
        remove_hop_by_hop(headers, upstream == Upstream::Http2);
        headers.remove(EXPECT);
        forwarded::apply(self.forwarded, headers, client, client_host);
        match (self.preserve_host, client_host) {
            (true, Some(host)) => {
                headers.insert(HOST, host.clone());
            }
            (true, None) if headers.contains_key(HOST) => {}
            _ => {
                headers.insert(HOST, self.backend_host.clone());
            }
        }
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.add {
            headers.insert(name.clone(), value.clone());
        }
    }

    /// Rewrites a backend response's headers for the client (`HDR-6`): hop-by-hop fields removed,
    /// every other line kept, duplicates such as `Set-Cookie` included, in order.
    ///
    /// A response framed by `Transfer-Encoding` also loses its `Content-Length`: the body was read
    /// by the transfer coding, so the length, if the backend sent one as well, is not the body's
    /// (RFC 9112 §6.3: a proxy forwarding such a message must remove it). Kept, it would make the
    /// client wait for bytes that never come, or read the next response as this one's body.
    pub fn apply_response(&self, headers: &mut HeaderMap) {
        if hop_by_hop::strip(headers, false).transfer_encoding {
            headers.remove(CONTENT_LENGTH);
        }
    }

    /// Rewrites a WebSocket handshake's headers for the backend (`WS-3`): [`Self::apply_request`]
    /// toward HTTP/1.1, then `Sec-WebSocket-Key`, `-Accept`, `-Version` and `-Extensions` removed, as
    /// the backend client writes its own. `Sec-WebSocket-Protocol`, cookies, `Authorization` and
    /// `Origin` are forwarded.
    pub fn apply_websocket_request(
        &self,
        headers: &mut HeaderMap,
        client: &ClientInfo,
        client_host: Option<&HeaderValue>,
    ) {
        self.apply_request(headers, client, client_host, Upstream::Http1);
        for name in &REGENERATED_WS_FIELDS {
            headers.remove(name);
        }
    }

    /// The `forwarded_headers` mode.
    pub fn forwarded_headers(&self) -> ForwardedHeaders {
        self.forwarded
    }
}

#[cfg(test)]
mod tests;
