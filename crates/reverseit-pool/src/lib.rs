//! # reverseit-pool
//!
//! ReverseIt's connection pool toward backends, and with `reverseit-core` a complete HTTP client
//! (`POOL-6`).
//!
//! - [`Pool`]: one value, cheap to clone, shared by every route and task. Connections are kept per
//!   backend (scheme, host, port, TLS settings, protocols) and per shard (`pool_count`), at most
//!   `pool_size` each (`POOL-2`). A caller waits FIFO for a free connection up to the target's
//!   `pool_timeout`, then gets [`ErrorKind::PoolExhausted`](reverseit_core::ErrorKind) (503,
//!   `TMO-5`).
//! - HTTP/1.1: keep-alive reuse, most recently used first (`POOL-1`). Idle connections close after
//!   `conn_max_idle_time`, and one the backend closed is never handed out (`POOL-3`).
//! - HTTP/2: negotiated by ALPN over TLS when `protocols` include `http2`; prior-knowledge h2c when
//!   `protocols = ["http2"]` on a plain backend. Concurrent requests share a connection up to the
//!   server's `SETTINGS_MAX_CONCURRENT_STREAMS`; then another opens, within `pool_size` (`POOL-4`).
//!   Concurrent first requests wait for one connection rather than each opening their own.
//! - Failures are [`reverseit_core::Error`]s with the cause chain kept: connect refused or
//!   unreachable → `Connect` (502), `connect_timeout` → `ConnectTimeout` (504), TLS → `Tls` (502)
//!   (`TMO-1`, `ERR-1`). A failure on a reused connection before any response byte is
//!   [retryable](reverseit_core::Error::is_retryable) (`ERR-3`): see [`Pool::send`],
//!   [`Pool::resend`] and [`Pool::send_with_retry`] for who retries what.
//! - Bodies stream both ways with back-pressure: any [`http_body::Body`] in, hyper's
//!   [`Incoming`](hyper::body::Incoming) out; the pool buffers no body.
//! - [`Pool::stats`]: open, idle, in-use connections and waiters per backend.
//! - Memory stays bounded as a client sent to ever new hosts: a backend's entry without
//!   connections, waiters or requests in flight is dropped once the pool holds many.
//!
//! ## TLS
//!
//! rustls with the `ring` provider and the Mozilla roots of `webpki-roots`; a route's `ca_file`
//! adds trust anchors; SNI (and the verified name) is the backend host, except for IP literals,
//! which are checked against the certificate's IP addresses (`POOL-5`).
//!
//! `verify_tls = false` turns certificate verification off for that backend only. **This is
//! dangerous:** the connection is still encrypted, but to whoever answers. Anyone who can
//! redirect traffic between the proxy and the backend (DNS, ARP, BGP, a compromised router or
//! container network) can present any certificate, read every request (credentials, cookies,
//! tokens) and forge every response, without any error. Use it only for a backend reached over a
//! network you trust completely, and prefer `ca_file` with the backend's own CA.
//!
//! ## A standalone client
//!
//! ```no_run
//! use http_body_util::{BodyExt, Empty};
//! use reverseit_core::{Backend, PoolConfig};
//! use reverseit_pool::{Pool, Target};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let pool = Pool::new(PoolConfig::default());
//! let target = Target::new(Backend::parse("http://127.0.0.1:8080")?).build()?;
//!
//! let req = http::Request::get("/hello").body(Empty::<bytes::Bytes>::new())?;
//! let res = pool.send(&target, req).await?;
//! println!("{}", res.status());
//! let body = res.into_body().collect().await?.to_bytes();
//! println!("{}", String::from_utf8_lossy(&body));
//! # Ok(())
//! # }
//! ```
//!
//! `examples/client.rs` is the same as a program taking a URL.
#![deny(missing_docs)]

mod backend;
mod body;
mod connect;
mod error;
mod frames;
mod http1;
mod http2;
mod key;
mod pool;
mod shard;
mod stats;
mod target;
mod tls;

pub use connect::BackendStream;
#[doc(hidden)]
pub use connect::{Dial, DialFuture, TcpDialer};
pub use pool::Pool;
pub use stats::BackendStats;
pub use target::{Target, TargetBuilder};
