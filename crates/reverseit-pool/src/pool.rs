//! The pool: one value shared by every route and task, keyed by backend.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use reverseit_core::{BoxError, Error, PoolConfig};
use tokio::time::Instant;

use crate::backend::BackendPool;
use crate::body::ReqBody;
use crate::connect::{self, BackendStream, Dial, TcpDialer};
use crate::key::Key;
use crate::stats::BackendStats;
use crate::target::Target;

/// Distinguishes pools in a target's lookup cache.
static NEXT_POOL_ID: AtomicU64 = AtomicU64::new(1);

/// A connection pool for any number of backends: clone it freely (it is an `Arc`), share it
/// between routes and tasks.
///
/// Connections are kept per backend identity (scheme, host, port, TLS settings, protocols) and per
/// shard (`pool_count`), at most `pool_size` each. Dropping the last clone closes idle connections;
/// connections in use close when their exchange ends. Needs a Tokio runtime with time enabled.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    id: u64,
    config: PoolConfig,
    dialer: Arc<dyn Dial>,
    backends: Mutex<Backends>,
}

/// The per-backend entries, and the size at which unused ones are next swept out.
///
/// A proxy's routes name a handful of backends, but a pool used as a client may be sent to any
/// number of hosts: entries nobody uses (no connection, no request in flight) are dropped when
/// the map has doubled since the last sweep, so the map stays within twice the backends in use
/// (and at least [`SWEEP_AT`]) at a cost of one pass per doubling. A target whose entry was swept
/// finds its new one through the map from then on (its cached handle is set only once).
struct Backends {
    map: HashMap<Key, Arc<BackendPool>>,
    sweep_at: usize,
}

/// The fewest entries the map holds before its first sweep: more backends than most proxies have.
const SWEEP_AT: usize = 64;

impl Backends {
    /// Drops the entries only the map holds that have no connection (idle, in use or opening) and
    /// no waiter. A caller holding an entry (a request in flight, a target's cached handle being
    /// upgraded) keeps it.
    fn sweep(&mut self) {
        self.map.retain(|_, b| {
            Arc::strong_count(b) > 1 || {
                let s = b.stats();
                s.open + s.connecting + s.waiters > 0
            }
        });
        self.sweep_at = SWEEP_AT.max(2 * self.map.len());
    }
}

impl Pool {
    /// A pool with these limits.
    pub fn new(config: PoolConfig) -> Pool {
        Pool::with_dialer(config, TcpDialer)
    }

    /// A pool that opens TCP connections through `dialer` (tests, custom name resolution).
    #[doc(hidden)]
    pub fn with_dialer(config: PoolConfig, dialer: impl Dial) -> Pool {
        Pool {
            inner: Arc::new(PoolInner {
                id: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
                config,
                dialer: Arc::new(dialer),
                backends: Mutex::new(Backends {
                    map: HashMap::new(),
                    sweep_at: SWEEP_AT,
                }),
            }),
        }
    }

    /// The pool's configuration.
    pub fn config(&self) -> &PoolConfig {
        &self.inner.config
    }

    /// Sends one request to the target's backend and returns the response head; the body streams.
    ///
    /// The URI may be origin-form (`/path?q`, what a proxy forwards): it goes out untouched over
    /// HTTP/1.1 and gains the backend's scheme and authority over HTTP/2. An absolute URI is cut to
    /// origin-form for HTTP/1.1. The `Host` header is the caller's; over HTTP/1.1 a request
    /// without one gets the backend's.
    ///
    /// Errors: `Connect`, `ConnectTimeout`, `Tls` when no connection could be opened;
    /// `PoolExhausted` after `pool_timeout` without a free connection; `BackendIo` when the
    /// exchange failed before a response head, marked [retryable](Error::is_retryable) when it
    /// happened on a reused connection (or the HTTP/2 server refused the stream): the backend did
    /// not act on it, and an idempotent request can go again through [`Pool::resend`] (`ERR-3`).
    /// A request hyper hands back unsent is moved to another connection here, transparently.
    pub fn send<'a, B>(
        &'a self,
        target: &'a Target,
        req: Request<B>,
    ) -> impl Future<Output = Result<Response<Incoming>, Error>> + Send + 'a
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.dispatch(target, req, false, None)
    }

    /// Like [`Pool::send`], bounded by a deadline for the response head: when the head has not
    /// arrived by `deadline` (waiting for a connection and opening one included), the exchange is
    /// abandoned (the connection closed) and the error is `ResponseHeaderTimeout` (`TMO-2`). The
    /// body that follows the head is not bounded by it.
    ///
    /// Cheaper than wrapping [`Pool::send`] in [`tokio::time::timeout_at`]: on a reused HTTP/1.1
    /// connection the deadline is watched by the connection's own timer, so no timer is registered
    /// and cancelled per request.
    pub fn send_with_deadline<'a, B>(
        &'a self,
        target: &'a Target,
        req: Request<B>,
        deadline: Instant,
    ) -> impl Future<Output = Result<Response<Incoming>, Error>> + Send + 'a
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.dispatch(target, req, false, Some(deadline))
    }

    /// [`Pool::resend`] bounded by a deadline for the response head, as
    /// [`Pool::send_with_deadline`].
    pub fn resend_with_deadline<'a, B>(
        &'a self,
        target: &'a Target,
        req: Request<B>,
        deadline: Instant,
    ) -> impl Future<Output = Result<Response<Incoming>, Error>> + Send + 'a
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.dispatch(target, req, true, Some(deadline))
    }

    /// Like [`Pool::send`], but never on an idle HTTP/1.1 connection: for sending a request again
    /// after a [retryable](Error::is_retryable) failure, since the other idle connections may be as
    /// stale as the one that failed. When the shard is full, its oldest idle connection is closed
    /// to make room.
    pub fn resend<'a, B>(
        &'a self,
        target: &'a Target,
        req: Request<B>,
    ) -> impl Future<Output = Result<Response<Incoming>, Error>> + Send + 'a
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.dispatch(target, req, true, None)
    }

    /// [`Pool::send`] (`fresh = false`) or [`Pool::resend`] (`fresh = true`), with or without a
    /// deadline for the response head.
    ///
    /// Not `async`, and neither are the public methods above: they return the backend's request
    /// future itself. Each `async` layer would hold a copy of its arguments beside the nested
    /// future and copy that whole future when it starts, for every request.
    fn dispatch<'a, B>(
        &'a self,
        target: &'a Target,
        req: Request<B>,
        fresh: bool,
        deadline: Option<Instant>,
    ) -> impl Future<Output = Result<Response<Incoming>, Error>> + Send + 'a
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.backend(target)
            .send(&target.inner, req.map(ReqBody::new), fresh, deadline)
    }

    /// [`Pool::send`], then, for an idempotent method (RFC 9110 §9.2.2) whose failure is
    /// retryable, [`Pool::resend`] once with a copy made beforehand: the whole of `ERR-3` for
    /// callers whose body can be cloned (`Full<Bytes>`, `Empty<Bytes>`, `String`...).
    ///
    /// A streamed body cannot be sent twice; a proxy buffers small bodies and calls
    /// [`Pool::resend`] itself.
    pub async fn send_with_retry<B>(
        &self,
        target: &Target,
        req: Request<B>,
    ) -> Result<Response<Incoming>, Error>
    where
        B: Body<Data = Bytes> + Clone + Send + 'static,
        B::Error: Into<BoxError>,
    {
        if !is_idempotent(req.method()) {
            return self.send(target, req).await;
        }
        let (parts, body) = req.into_parts();
        let copy = Request::from_parts(parts.clone(), body.clone());
        match self.send(target, Request::from_parts(parts, body)).await {
            Err(e) if e.is_retryable() => {
                tracing::debug!(error = %e, "resending an idempotent request on a fresh connection");
                self.resend(target, copy).await
            }
            r => r,
        }
    }

    /// Opens a new connection to the target's backend, outside the pool, speaking HTTP/1.1 (over
    /// TLS only `http/1.1` is offered), within the target's `connect_timeout`.
    ///
    /// For a request that takes the connection over, such as a WebSocket upgrade: such a
    /// connection never returns to the pool. Errors as for [`Pool::send`]'s connect step:
    /// `Connect`, `ConnectTimeout`, `Tls`.
    pub async fn connect_http1(&self, target: &Target) -> Result<BackendStream, Error> {
        let deadline = tokio::time::Instant::now() + target.inner.connect_timeout;
        connect::open_http1(&target.inner, self.inner.dialer.as_ref(), deadline)
            .await
            .map(BackendStream)
    }

    /// Connection counts for the target's backend, summed over shards (zeros if never used).
    pub fn stats(&self, target: &Target) -> BackendStats {
        self.lookup(target).map(|b| b.stats()).unwrap_or_default()
    }

    /// The target's backend entry, created on first use.
    fn backend(&self, target: &Target) -> Arc<BackendPool> {
        if let Some(b) = self.cached(target) {
            return b;
        }
        let mut backends = self.lock_backends();
        if backends.map.len() >= backends.sweep_at && !backends.map.contains_key(&target.inner.key)
        {
            backends.sweep();
        }
        let b = backends
            .map
            .entry(target.inner.key.clone())
            .or_insert_with(|| {
                Arc::new(BackendPool::new(
                    &self.inner.config,
                    target.inner.mode,
                    self.inner.dialer.clone(),
                ))
            })
            .clone();
        drop(backends);
        // The first pool a target is used with gets the fast path; others use the map.
        let _ = target.inner.cache.set((self.inner.id, Arc::downgrade(&b)));
        b
    }

    fn lookup(&self, target: &Target) -> Option<Arc<BackendPool>> {
        self.cached(target)
            .or_else(|| self.lock_backends().map.get(&target.inner.key).cloned())
    }

    fn cached(&self, target: &Target) -> Option<Arc<BackendPool>> {
        match target.inner.cache.get() {
            Some((id, weak)) if *id == self.inner.id => weak.upgrade(),
            _ => None,
        }
    }

    fn lock_backends(&self) -> std::sync::MutexGuard<'_, Backends> {
        self.inner
            .backends
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("config", &self.inner.config)
            .field("backends", &self.lock_backends().map.len())
            .finish()
    }
}

/// RFC 9110 §9.2.2.
fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS | Method::TRACE
    )
}

#[cfg(test)]
mod tests {
    use std::io;

    use reverseit_core::Backend;

    use super::*;
    use crate::connect::DialFuture;

    /// Refuses every connection at once.
    #[derive(Debug)]
    struct Refused;

    impl Dial for Refused {
        fn dial(&self, _host: &str, _port: u16) -> DialFuture {
            Box::pin(async { Err(io::ErrorKind::ConnectionRefused.into()) })
        }
    }

    fn target(port: u16) -> Target {
        let backend = Backend::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        Target::new(backend).build().unwrap()
    }

    fn entries(pool: &Pool) -> usize {
        pool.lock_backends().map.len()
    }

    async fn get(pool: &Pool, target: &Target) {
        let req = Request::get("/")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        let err = pool.send(target, req).await.unwrap_err();
        assert_eq!(err.kind(), reverseit_core::ErrorKind::Connect);
    }

    #[tokio::test]
    async fn entries_of_unused_backends_are_swept_as_the_map_grows() {
        let pool = Pool::with_dialer(PoolConfig::default(), Refused);
        // An entry in use (a request in flight holds it) survives every sweep.
        let kept = target(1);
        let in_flight = pool.backend(&kept);
        let mut most = 0;
        for port in 2..1000 {
            get(&pool, &target(port)).await;
            most = most.max(entries(&pool));
        }
        assert!(most <= 2 * SWEEP_AT, "map grew to {most} entries");
        assert!(pool.lock_backends().map.contains_key(&kept.inner.key));
        assert!(Arc::ptr_eq(&pool.backend(&kept), &in_flight));
        // A swept backend still works: a new entry is made for it.
        get(&pool, &target(2)).await;
    }

    #[tokio::test]
    async fn few_backends_are_never_swept() {
        let pool = Pool::with_dialer(PoolConfig::default(), Refused);
        let targets: Vec<Target> = (1..SWEEP_AT as u16).map(target).collect();
        for t in &targets {
            get(&pool, t).await;
        }
        assert_eq!(entries(&pool), SWEEP_AT - 1);
    }
}
