//! The pool's configuration: the original's supervisor options.

use std::time::Duration;

use super::ConfigError;
use super::check::Checker;
use super::defaults;
use super::values::{Protocol, Protocols};

/// Connection-pool options, shared by every route that uses the pool (`CFG-1`).
///
/// Built with [`PoolConfig::builder`]; `PoolConfig::default()` holds the original's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    pool_size: usize,
    pool_count: usize,
    connect_timeout: Duration,
    conn_max_idle_time: Duration,
    protocols: Protocols,
    verify_tls: bool,
}

impl PoolConfig {
    /// A builder starting from the defaults.
    ///
    /// ```
    /// use std::time::Duration;
    /// use reverseit_core::PoolConfig;
    ///
    /// let pool = PoolConfig::builder().pool_size(100).pool_count(2).build().unwrap();
    /// assert_eq!(pool.pool_size(), 100);
    /// assert_eq!(pool.connect_timeout(), Duration::from_secs(5));
    /// ```
    pub fn builder() -> PoolConfigBuilder {
        PoolConfigBuilder {
            cfg: PoolConfig::default(),
            protocols: None,
        }
    }

    /// Most open connections per backend per shard (`pool_size`, default 50).
    pub fn pool_size(&self) -> usize {
        self.pool_size
    }

    /// Independent shards per backend (`pool_count`, default 1).
    pub fn pool_count(&self) -> usize {
        self.pool_count
    }

    /// Default backend connect timeout (`connect_timeout`, default 5 s).
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Idle time after which a pooled connection is closed (`conn_max_idle_time`, default 90 s).
    pub fn conn_max_idle_time(&self) -> Duration {
        self.conn_max_idle_time
    }

    /// Default upstream protocols (`protocols`, default HTTP/1.1 only).
    pub fn protocols(&self) -> Protocols {
        self.protocols
    }

    /// Default for verifying backend certificates (`verify_tls`, default true).
    pub fn verify_tls(&self) -> bool {
        self.verify_tls
    }
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            pool_size: defaults::POOL_SIZE,
            pool_count: defaults::POOL_COUNT,
            connect_timeout: defaults::CONNECT_TIMEOUT,
            conn_max_idle_time: defaults::CONN_MAX_IDLE_TIME,
            protocols: Protocols::HTTP1,
            verify_tls: true,
        }
    }
}

/// Builds a [`PoolConfig`]; every value is checked once, in [`PoolConfigBuilder::build`].
#[derive(Debug, Clone)]
pub struct PoolConfigBuilder {
    cfg: PoolConfig,
    protocols: Option<Vec<Protocol>>,
}

impl PoolConfigBuilder {
    /// Sets `pool_size` (at least 1).
    pub fn pool_size(mut self, n: usize) -> Self {
        self.cfg.pool_size = n;
        self
    }

    /// Sets `pool_count` (at least 1).
    pub fn pool_count(mut self, n: usize) -> Self {
        self.cfg.pool_count = n;
        self
    }

    /// Sets `connect_timeout` (at least 1 ms).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.cfg.connect_timeout = d;
        self
    }

    /// Sets `conn_max_idle_time` (at least 1 ms).
    pub fn conn_max_idle_time(mut self, d: Duration) -> Self {
        self.cfg.conn_max_idle_time = d;
        self
    }

    /// Sets `protocols` (non-empty).
    pub fn protocols(mut self, list: &[Protocol]) -> Self {
        self.protocols = Some(list.to_vec());
        self
    }

    /// Sets `verify_tls`.
    pub fn verify_tls(mut self, on: bool) -> Self {
        self.cfg.verify_tls = on;
        self
    }

    /// Checks every option and returns the configuration, or every problem found (`CFG-2`).
    pub fn build(self) -> Result<PoolConfig, ConfigError> {
        let mut c = Checker::default();
        let mut cfg = self.cfg;
        c.positive("pool_size", cfg.pool_size as u64);
        c.positive("pool_count", cfg.pool_count as u64);
        c.duration("connect_timeout", cfg.connect_timeout);
        c.duration("conn_max_idle_time", cfg.conn_max_idle_time);
        if let Some(list) = self.protocols {
            cfg.protocols = c.protocols("protocols", &list);
        }
        c.finish(cfg)
    }
}
