//! One backend's pool: its shards, its protocol, and the request loop that picks a connection,
//! opens one, or waits.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use http::header::HOST;
use http::uri::{Authority, PathAndQuery, Uri};
use http::{Request, Response, Version};
use hyper::body::Incoming;
use reverseit_core::{Error, ErrorKind, PoolConfig};
use tokio::time::{Instant, timeout_at};

use crate::body::ReqBody;
use crate::connect::{self, Dial, Proto};
use crate::error::Failure;
use crate::http1::{self, H1Conn};
use crate::http2::{self, H2Conn};
use crate::shard::{AttemptEnd, AttemptGuard, Grant, H1Take, H2Take, Shard, SlotPermit};
use crate::stats::BackendStats;
use crate::target::{Mode, TargetInner};

/// How many times one request is moved to another connection after hyper handed it back unsent.
/// Each hand-back means a connection died under it; a backend that accepts and drops every
/// connection must still end in an error.
const MAX_UNSENT_RETRIES: usize = 3;

const PROTO_UNKNOWN: u8 = 0;
const PROTO_HTTP1: u8 = 1;
const PROTO_HTTP2: u8 = 2;

/// One backend's connections.
#[derive(Debug)]
pub(crate) struct BackendPool {
    shards: Box<[Arc<Shard>]>,
    next_shard: AtomicUsize,
    /// The protocol new requests expect: fixed by the target's mode, or learned from the latest
    /// ALPN answer when both are offered.
    proto: AtomicU8,
    dialer: Arc<dyn Dial>,
}

/// What one step of the request loop decided.
enum Step {
    Done(Result<Response<Incoming>, Error>),
    /// The state changed under us (an attempt ended, a protocol was learned): look again.
    Again(Request<ReqBody>),
    Unsent(Request<ReqBody>, hyper::Error),
}

/// A connection just opened, with the protocol ALPN chose.
enum Opened {
    H1(H1Conn),
    H2(Arc<H2Conn>),
}

impl BackendPool {
    pub(crate) fn new(config: &PoolConfig, mode: Mode, dialer: Arc<dyn Dial>) -> Self {
        let shards = (0..config.pool_count())
            .map(|_| Arc::new(Shard::new(config.pool_size(), config.conn_max_idle_time())))
            .collect();
        let proto = match mode {
            Mode::Http1 => PROTO_HTTP1,
            Mode::Http2 => PROTO_HTTP2,
            Mode::Negotiate => PROTO_UNKNOWN,
        };
        Self {
            shards,
            next_shard: AtomicUsize::new(0),
            proto: AtomicU8::new(proto),
            dialer,
        }
    }

    pub(crate) fn stats(&self) -> BackendStats {
        let mut s = BackendStats::default();
        for shard in &*self.shards {
            shard.add_stats(&mut s);
        }
        s
    }

    /// Sends a request; `fresh` avoids idle HTTP/1.1 connections (a resend after `ERR-3`). Without
    /// a response head by `deadline`, fails with `ResponseHeaderTimeout` (`TMO-2`).
    pub(crate) async fn send(
        self: Arc<Self>,
        target: &TargetInner,
        mut req: Request<ReqBody>,
        fresh: bool,
        deadline: Option<Instant>,
    ) -> Result<Response<Incoming>, Error> {
        // Round robin over shards: spreads callers without a thread-local or a hash per request.
        let shard = match self.shards.len() {
            1 => &self.shards[0],
            n => &self.shards[self.next_shard.fetch_add(1, Ordering::Relaxed) % n],
        };
        let mut unsent = 0;
        loop {
            let step = if self.proto.load(Ordering::Relaxed) == PROTO_HTTP1 {
                match (shard.h1_take(fresh), deadline) {
                    // The hot path: the connection's own timer watches the deadline (no timer
                    // registered per request, see `http1`).
                    // `http1::send` is awaited here, not through `dispatch_h1`: one `async` layer
                    // less in every request's future (see `Pool::dispatch`).
                    (H1Take::Conn(c), _) => {
                        finish(http1::send(c, h1_request(target, req), true, deadline).await)
                    }
                    // Opening or waiting: rare once the pool is warm, so boxed, keeping every
                    // request's future at the size of the hot path.
                    (take, None) => Box::pin(self.step_h1(shard, target, req, take)).await,
                    // Awaited here rather than through a helper taking the step as an argument:
                    // an `async fn` keeps its arguments beside its state, which nearly doubled
                    // the size of every request's future (3.5 to 6.4 KiB).
                    (take, Some(d)) => {
                        timeout_at(d, Box::pin(self.step_h1(shard, target, req, take)))
                            .await
                            .unwrap_or_else(head_timeout)
                    }
                }
            } else {
                // Boxed too: the HTTP/2 step is about 1.7 KiB larger than the HTTP/1.1 hot path,
                // whose future every request of an HTTP/1.1 backend would otherwise carry.
                match deadline {
                    None => Box::pin(self.step_h2(shard, target, req)).await,
                    Some(d) => timeout_at(d, Box::pin(self.step_h2(shard, target, req)))
                        .await
                        .unwrap_or_else(head_timeout),
                }
            };
            match step {
                Step::Done(r) => return r,
                Step::Again(r) => req = r,
                Step::Unsent(r, cause) => {
                    unsent += 1;
                    if unsent > MAX_UNSENT_RETRIES {
                        return Err(Error::new(ErrorKind::BackendIo)
                            .with_message("connections kept closing before the request was sent")
                            .with_source(cause)
                            .retryable());
                    }
                    tracing::debug!(error = %cause, "request handed back unsent; trying another connection");
                    req = r;
                }
            }
        }
    }

    /// The rest of an HTTP/1.1 step once `take` found no idle connection.
    async fn step_h1(
        &self,
        shard: &Arc<Shard>,
        target: &TargetInner,
        req: Request<ReqBody>,
        take: H1Take,
    ) -> Step {
        let permit = match take {
            H1Take::Conn(c) => return dispatch_h1(c, target, req, true, None).await,
            H1Take::Slot(p) => p,
            H1Take::Wait(ticket) => match ticket.wait(target.pool_timeout).await {
                Ok(Grant::Conn(c)) => return dispatch_h1(c, target, req, true, None).await,
                Ok(Grant::Slot) => SlotPermit::new(shard.clone()),
                Err(e) => return Step::Done(Err(e)),
            },
        };
        match self.open(target, permit).await {
            Ok(Opened::H1(c)) => dispatch_h1(c, target, req, false, None).await,
            Ok(Opened::H2(c)) => dispatch_h2(c, target, req, false).await,
            Err(e) => Step::Done(Err(e)),
        }
    }

    async fn step_h2(
        &self,
        shard: &Arc<Shard>,
        target: &TargetInner,
        req: Request<ReqBody>,
    ) -> Step {
        match shard.h2_take() {
            H2Take::Stream(c, reused) => dispatch_h2(c, target, req, reused).await,
            H2Take::Wait(attempt) => match attempt.wait().await {
                AttemptEnd::Retry => Step::Again(req),
                AttemptEnd::Failed(kind, message) => Step::Done(Err(Error::new(kind)
                    .with_message(format!(
                        "a concurrent request's connection attempt failed: {message}"
                    )))),
            },
            H2Take::Connect(permit, attempt) => {
                let mut guard = AttemptGuard::new(shard.clone(), attempt);
                match self.open(target, permit).await {
                    Ok(opened) => {
                        // Waiters look again: the new connection is listed (or the protocol
                        // learned) before they wake.
                        drop(guard);
                        match opened {
                            Opened::H1(c) => dispatch_h1(c, target, req, false, None).await,
                            Opened::H2(c) => dispatch_h2(c, target, req, false).await,
                        }
                    }
                    Err(e) => {
                        guard.failed(&e);
                        Step::Done(Err(e))
                    }
                }
            }
            H2Take::Queue(ticket) => match ticket.wait(target.pool_timeout).await {
                Ok(Grant::Conn(c)) => dispatch_h1(c, target, req, true, None).await,
                Ok(Grant::Slot) => match self.open(target, SlotPermit::new(shard.clone())).await {
                    Ok(Opened::H1(c)) => dispatch_h1(c, target, req, false, None).await,
                    Ok(Opened::H2(c)) => dispatch_h2(c, target, req, false).await,
                    Err(e) => Step::Done(Err(e)),
                },
                Err(e) => Step::Done(Err(e)),
            },
        }
    }

    /// Opens a connection under `permit`, within the target's `connect_timeout`.
    async fn open(&self, target: &TargetInner, permit: SlotPermit) -> Result<Opened, Error> {
        let deadline = Instant::now() + target.connect_timeout;
        let (io, proto) = connect::open(target, &*self.dialer, deadline).await?;
        if target.mode == Mode::Negotiate {
            let p = match proto {
                Proto::Http1 => PROTO_HTTP1,
                Proto::Http2 => PROTO_HTTP2,
            };
            self.proto.store(p, Ordering::Relaxed);
        }
        match proto {
            Proto::Http1 => http1::start(io, permit).await.map(Opened::H1),
            Proto::Http2 => http2::start(target, io, permit, deadline)
                .await
                .map(Opened::H2),
        }
    }
}

/// `deadline`: for the connection's task to watch; `None` when the caller's step runs under
/// `timeout_at` already.
async fn dispatch_h1(
    conn: H1Conn,
    target: &TargetInner,
    req: Request<ReqBody>,
    reused: bool,
    deadline: Option<Instant>,
) -> Step {
    finish(http1::send(conn, h1_request(target, req), reused, deadline).await)
}

/// A request in the form HTTP/1.1 wants.
fn h1_request(target: &TargetInner, mut req: Request<ReqBody>) -> Request<ReqBody> {
    // HTTP/1.1 wants origin-form (RFC 9112 §3.2.1); the proxy already sends that, untouched.
    if req.uri().scheme().is_some() || req.uri().authority().is_some() {
        let pq = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::from(pq);
    }
    if req.version() != Version::HTTP_10 {
        *req.version_mut() = Version::HTTP_11;
    }
    // HTTP/1.1 requires Host (RFC 9112 §3.2); the proxy sets it, a bare client may not.
    if !req.headers().contains_key(HOST) {
        req.headers_mut()
            .insert(HOST, target.backend.host_header().clone());
    }
    req
}

async fn dispatch_h2(
    conn: Arc<H2Conn>,
    target: &TargetInner,
    mut req: Request<ReqBody>,
    reused: bool,
) -> Step {
    // HTTP/2 carries scheme and authority as pseudo-headers: hyper takes them from the URI.
    if req.uri().scheme().is_none() {
        // The caller's `Host` (a proxy's policy: the backend's host, or the client's with
        // `preserve_host_header`) becomes `:authority`, as RFC 9113 §8.3.1 asks of an intermediary;
        // sending both would let the two disagree.
        let authority = match req.headers_mut().remove(HOST) {
            Some(host) => Authority::try_from(host.as_bytes()).ok(),
            None => None,
        };
        let mut parts = std::mem::take(req.uri_mut()).into_parts();
        parts.scheme = Some(target.scheme.clone());
        parts.authority = Some(authority.unwrap_or_else(|| target.authority.clone()));
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(PathAndQuery::from_static("/"));
        }
        *req.uri_mut() =
            Uri::from_parts(parts).expect("invariant: scheme, authority and path are all set");
    }
    *req.version_mut() = Version::HTTP_2;
    finish(http2::send(conn, req, reused).await)
}

/// A step (waiting for a connection, opening one, an HTTP/2 exchange) that outlived the
/// response-head deadline.
fn head_timeout(_: tokio::time::error::Elapsed) -> Step {
    Step::Done(Err(Error::new(ErrorKind::ResponseHeaderTimeout)))
}

fn finish(r: Result<Response<Incoming>, Failure>) -> Step {
    match r {
        Ok(resp) => Step::Done(Ok(resp)),
        Err(Failure::Failed(e)) => Step::Done(Err(e)),
        Err(Failure::Unsent(unsent)) => Step::Unsent(unsent.0, unsent.1),
    }
}
