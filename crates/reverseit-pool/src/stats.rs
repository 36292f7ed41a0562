//! Per-backend counts, for metrics and tests.

/// One backend's connections, summed over the pool's shards ([`Pool::stats`](crate::Pool::stats)).
///
/// A snapshot: the counts may change right after it is taken.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackendStats {
    /// Established connections (HTTP/1.1 and HTTP/2), not counting those being opened.
    pub open: usize,
    /// Established connections with no request in flight.
    pub idle: usize,
    /// Established connections serving at least one request.
    pub in_use: usize,
    /// Callers waiting for a connection (a free one, a slot, or one another caller is opening).
    pub waiters: usize,
    /// Connections being opened (TCP, TLS, HTTP/2 preface).
    pub connecting: usize,
    /// Established HTTP/1.1 connections.
    pub http1: usize,
    /// Established HTTP/2 connections.
    pub http2: usize,
    /// HTTP/2 streams in use over all connections.
    pub http2_streams: usize,
}
