//! The TOML shape of `[pool]` and `[[routes]]` (see the CLI's `cli.md`), deserialized with serde.
//!
//! Every key is optional and unknown keys are rejected with their name. Durations are integer
//! milliseconds; sizes are integer bytes or `"infinity"` where the original allows it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::values::{ForwardedHeaders, Protocol, SizeLimit};
use super::{ConfigError, PoolConfig, RouteConfig, RouteConfigBuilder};

/// The `[pool]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PoolSpec {
    /// `pool_size`
    pub pool_size: Option<usize>,
    /// `pool_count`
    pub pool_count: Option<usize>,
    /// `connect_timeout`, ms
    pub connect_timeout: Option<u64>,
    /// `conn_max_idle_time`, ms
    pub conn_max_idle_time: Option<u64>,
    /// `protocols`
    pub protocols: Option<Vec<Protocol>>,
    /// `verify_tls`
    pub verify_tls: Option<bool>,
    /// `name`: the original's required name of its Finch pool. Accepted so that a configuration
    /// carried over loads; a process has one pool, so it names nothing here.
    pub name: Option<String>,
}

impl PoolSpec {
    /// Checks the table and builds the pool configuration.
    pub fn build(&self) -> Result<PoolConfig, ConfigError> {
        let mut b = PoolConfig::builder();
        if let Some(v) = self.pool_size {
            b = b.pool_size(v);
        }
        if let Some(v) = self.pool_count {
            b = b.pool_count(v);
        }
        if let Some(v) = self.connect_timeout {
            b = b.connect_timeout(Duration::from_millis(v));
        }
        if let Some(v) = self.conn_max_idle_time {
            b = b.conn_max_idle_time(Duration::from_millis(v));
        }
        if let Some(v) = &self.protocols {
            b = b.protocols(v);
        }
        if let Some(v) = self.verify_tls {
            b = b.verify_tls(v);
        }
        b.build()
    }
}

/// The `error_response` inline table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ErrorResponseSpec {
    /// The status, 400..=599.
    pub status: u16,
    /// The body; defaults to "Bad Gateway".
    #[serde(default)]
    pub body: Option<String>,
}

/// One `[[routes]]` table: the mount `path` plus every route option.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
#[allow(missing_docs)] // each field is the option of the same name, documented on `RouteConfig`
pub struct RouteSpec {
    /// The mount prefix (`/api`): longest match wins, on whole segments. Used by the router.
    pub path: Option<String>,
    /// The backend URL (required).
    pub backend: String,
    /// `name`: the original's required name of the Finch pool a plug uses. Accepted so that a
    /// configuration carried over loads; every route uses the process's one pool.
    pub name: Option<String>,
    pub strip_path: Option<String>,
    pub connect_timeout: Option<u64>,
    pub pool_timeout: Option<u64>,
    pub response_header_timeout: Option<u64>,
    pub upstream_idle_timeout: Option<u64>,
    pub request_body_read_timeout: Option<u64>,
    pub max_request_body_size: Option<SizeLimit>,
    pub request_body_buffer_size: Option<usize>,
    pub max_response_body_size: Option<SizeLimit>,
    pub max_request_target_bytes: Option<usize>,
    pub max_request_header_line_bytes: Option<usize>,
    pub max_request_header_bytes: Option<usize>,
    pub max_request_headers: Option<usize>,
    pub max_response_header_bytes: Option<usize>,
    pub forwarded_headers: Option<ForwardedHeaders>,
    pub add_headers: Option<BTreeMap<String, String>>,
    pub remove_headers: Option<Vec<String>>,
    pub verify_tls: Option<bool>,
    pub ca_file: Option<PathBuf>,
    pub protocols: Option<Vec<Protocol>>,
    pub websocket_idle_timeout: Option<u64>,
    pub websocket_backend_upgrade_timeout: Option<u64>,
    pub max_websocket_frame_size: Option<usize>,
    pub max_websocket_pending_bytes: Option<usize>,
    pub max_websocket_pending_frames: Option<usize>,
    pub websocket_compress: Option<bool>,
    pub response_header_retries: Option<u32>,
    pub request_body_chunk_size: Option<usize>,
    pub preserve_host_header: Option<bool>,
    pub websocket_validate_utf8: Option<bool>,
    pub error_response: Option<ErrorResponseSpec>,
}

impl RouteSpec {
    /// Checks the table and builds the route; keys left unset take the pool's value where it has one
    /// (`connect_timeout`, `protocols`, `verify_tls`), otherwise the default.
    pub fn build(&self, pool: &PoolConfig) -> Result<RouteConfig, ConfigError> {
        self.builder().inherit(pool).build()
    }

    /// The builder holding this table's values, for callers that adjust it further.
    pub fn builder(&self) -> RouteConfigBuilder {
        let ms = Duration::from_millis;
        let mut b = RouteConfig::builder(self.backend.clone());
        macro_rules! set {
            ($($field:ident),* $(,)?) => {$(
                if let Some(v) = self.$field.clone() { b = b.$field(v); }
            )*};
            (ms: $($field:ident),* $(,)?) => {$(
                if let Some(v) = self.$field { b = b.$field(ms(v)); }
            )*};
        }
        set!(ms: connect_timeout, pool_timeout, response_header_timeout, upstream_idle_timeout,
            request_body_read_timeout, websocket_idle_timeout, websocket_backend_upgrade_timeout);
        set!(
            strip_path,
            max_request_body_size,
            request_body_buffer_size,
            max_response_body_size,
            max_request_target_bytes,
            max_request_header_line_bytes,
            max_request_header_bytes,
            max_request_headers,
            max_response_header_bytes,
            forwarded_headers,
            verify_tls,
            ca_file,
            max_websocket_frame_size,
            max_websocket_pending_bytes,
            max_websocket_pending_frames,
            websocket_compress,
            response_header_retries,
            request_body_chunk_size,
            preserve_host_header,
            websocket_validate_utf8
        );
        if let Some(p) = &self.protocols {
            b = b.protocols(p);
        }
        for (name, value) in self.add_headers.iter().flatten() {
            b = b.add_header(name.clone(), value.clone());
        }
        for name in self.remove_headers.iter().flatten() {
            b = b.remove_header(name.clone());
        }
        if let Some(e) = &self.error_response {
            let body = e
                .body
                .as_deref()
                .unwrap_or(super::defaults::ERROR_RESPONSE_BODY);
            b = b.error_response(e.status, body);
        }
        b
    }
}
