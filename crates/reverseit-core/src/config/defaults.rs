//! Every default, named, with the reason for its value (`CFG-1`).
//!
//! The values are the original ReverseIt's "router-style defaults": broad enough for a general HTTP
//! router, tight enough to bound the common denial-of-service vectors.

use std::time::Duration;

/// Connections per backend per shard (`pool_size`). Matches Finch's default of 50, enough for a busy
/// backend without exhausting its accept queue.
pub const POOL_SIZE: usize = 50;
/// Independent pool shards per backend (`pool_count`). One shard suffices unless contention shows.
pub const POOL_COUNT: usize = 1;
/// Time to establish a backend connection (`connect_timeout`): long enough for a slow TLS handshake,
/// short enough that a dead backend does not hold clients.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(5_000);
/// Idle time after which a pooled connection is closed (`conn_max_idle_time`); 90 s outlives the usual
/// 60 s keep-alive of servers only when they announce it, so reuse checks stay necessary.
pub const CONN_MAX_IDLE_TIME: Duration = Duration::from_millis(90_000);
/// Time to wait for a free pooled connection (`pool_timeout`).
pub const POOL_TIMEOUT: Duration = Duration::from_millis(5_000);
/// Time to wait for the backend's response head (`response_header_timeout`).
pub const RESPONSE_HEADER_TIMEOUT: Duration = Duration::from_millis(30_000);
/// Rolling idle time between backend body chunks (`upstream_idle_timeout`); under the common 60 s
/// load-balancer idle limit so the proxy reports the stall itself.
pub const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_millis(55_000);
/// Rolling idle time between client body chunks (`request_body_read_timeout`).
pub const REQUEST_BODY_READ_TIMEOUT: Duration = Duration::from_millis(55_000);
/// Largest request body accepted (`max_request_body_size`): 100 MiB.
pub const MAX_REQUEST_BODY_SIZE: u64 = 104_857_600;
/// Request bodies up to this size are buffered, so they can be retried and sent with a length
/// (`request_body_buffer_size`): 1 MiB.
pub const REQUEST_BODY_BUFFER_SIZE: usize = 1_048_576;
/// Largest request target, path plus query (`max_request_target_bytes`): 8 KiB, as most servers.
pub const MAX_REQUEST_TARGET_BYTES: usize = 8_192;
/// Largest single request header line, name + 2 + value (`max_request_header_line_bytes`): 8 KiB.
pub const MAX_REQUEST_HEADER_LINE_BYTES: usize = 8_192;
/// Largest request header block (`max_request_header_bytes`): 64 KiB.
pub const MAX_REQUEST_HEADER_BYTES: usize = 65_536;
/// Most request headers (`max_request_headers`): 100, hyper's own parsing limit.
pub const MAX_REQUEST_HEADERS: usize = 100;
/// Largest backend response header block (`max_response_header_bytes`): 64 KiB.
pub const MAX_RESPONSE_HEADER_BYTES: usize = 65_536;
/// WebSocket idle time in both directions before closing with 1001 (`websocket_idle_timeout`).
pub const WEBSOCKET_IDLE_TIMEOUT: Duration = Duration::from_millis(55_000);
/// Time for the backend's WebSocket handshake (`websocket_backend_upgrade_timeout`).
pub const WEBSOCKET_BACKEND_UPGRADE_TIMEOUT: Duration = Duration::from_millis(5_000);
/// Largest WebSocket message or frame (`max_websocket_frame_size`): 16 MiB.
pub const MAX_WEBSOCKET_FRAME_SIZE: usize = 16_777_216;
/// Bytes the bridge may queue toward one side (`max_websocket_pending_bytes`): 1 MiB.
pub const MAX_WEBSOCKET_PENDING_BYTES: usize = 1_048_576;
/// Frames the bridge may queue toward one side (`max_websocket_pending_frames`).
pub const MAX_WEBSOCKET_PENDING_FRAMES: usize = 16;
/// Extra retries for GET/HEAD whose connection closed before response headers
/// (`response_header_retries`). Off: the built-in retry on reused connections covers the common case.
pub const RESPONSE_HEADER_RETRIES: u32 = 0;
/// Size of the pieces a large request body is streamed in (`request_body_chunk_size`): 64 KiB.
pub const REQUEST_BODY_CHUNK_SIZE: usize = 65_536;
/// Status of the answer for an unreachable or failing backend (`error_response`).
pub const ERROR_RESPONSE_STATUS: u16 = 502;
/// Body of the answer for an unreachable or failing backend (`error_response`).
pub const ERROR_RESPONSE_BODY: &str = "Bad Gateway";
