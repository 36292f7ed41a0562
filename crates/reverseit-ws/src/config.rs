//! The bridge's settings, derived once per route, and the tungstenite configuration built from them.

use std::time::Duration;

use reverseit_core::RouteConfig;
use reverseit_core::config::defaults;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// tungstenite read buffer per side: 2 KiB.
///
/// tungstenite zero-fills the free part of its read buffer before every read, so its default 128 KiB
/// cost +49 % CPU per small message in the prototypes against +6 % at 4 KiB; it is also allocated up
/// front, so it is most of an idle connection's memory (HAProxy holds one in about 6 KiB). Larger
/// messages still arrive whole: the buffer grows to the frame being read, 2 KiB per `read` call.
///
/// Measured through the `reverseit` binary (`cargo xtask bench`, 2 000 idle connections; CPU per
/// echo round trip, interleaved runs): 4 KiB holds an idle connection in 12.3 KiB, 2 KiB in 9.2 KiB
/// and 512 bytes in 6.1 KiB; 64-byte messages cost the same at all three (16–17 µs), 8 KiB messages
/// the same at 4 and 2 KiB (25–26 µs) but nearly twice as much at 512 bytes (45–53 µs).
pub const READ_BUFFER_SIZE: usize = 2 * 1024;

/// Bytes tungstenite gathers toward one side before it writes them to the socket: 1 KiB.
///
/// The bridge flushes as soon as it has nothing more to read, so this only batches bursts of small
/// messages (about fifteen 64-byte messages per `write`) while keeping the write buffer, which keeps
/// its capacity, small on idle connections.
pub const WRITE_BUFFER_SIZE: usize = 1024;

/// Time allowed for the closing handshakes after the session ends: 5 s.
///
/// Long enough for a peer on a slow link to answer a close frame, short enough that a peer that never
/// answers does not hold a connection. The whole closing phase (delivering what is queued toward a side
/// that receives a forwarded close, both handshakes, TCP shutdown) shares this one deadline.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Room kept in tungstenite's write buffer, past one message, for the control frames it may have to
/// add (an automatic pong and a close frame, 131 bytes each at most, RFC 6455 §5.5).
const CONTROL_FRAME_ROOM: usize = 512;

/// Largest write batch accepted by [`BridgeConfig::with_write_buffer_size`]: keeps tungstenite's
/// `max_write_buffer_size > write_buffer_size` rule true whatever the message limit.
const MAX_WRITE_BUFFER_SIZE: usize = 1 << 20;

/// Largest WebSocket frame header (RFC 6455 §5.2: 2 + 8 length + 4 mask bytes).
const FRAME_HEADER_MAX: usize = 14;

/// Smallest read buffer accepted by [`BridgeConfig::with_read_buffer_size`]: tungstenite needs room for
/// a frame header.
const MIN_READ_BUFFER_SIZE: usize = 256;

/// Bridge settings derived once per route (see [`BridgeConfig::from_route`]).
///
/// The route options it reads are `websocket_idle_timeout` (`TMO-7`), `max_websocket_frame_size`
/// (`LIM-6`), `max_websocket_pending_bytes` and `max_websocket_pending_frames` (`WS-11`),
/// `websocket_validate_utf8` (`WS-8`) and `websocket_compress`; the crate documentation says what each
/// one bounds.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    pub(crate) idle_timeout: Duration,
    pub(crate) max_message_size: usize,
    pub(crate) max_pending_bytes: usize,
    pub(crate) max_pending_frames: usize,
    pub(crate) validate_utf8: bool,
    pub(crate) compress: bool,
    pub(crate) read_buffer_size: usize,
    pub(crate) write_buffer_size: usize,
    pub(crate) close_timeout: Duration,
}

impl BridgeConfig {
    /// The bridge settings of `route`.
    pub fn from_route(route: &RouteConfig) -> Self {
        Self {
            idle_timeout: route.websocket_idle_timeout(),
            max_message_size: route.max_websocket_frame_size(),
            max_pending_bytes: route.max_websocket_pending_bytes(),
            max_pending_frames: route.max_websocket_pending_frames(),
            validate_utf8: route.websocket_validate_utf8(),
            compress: route.websocket_compress(),
            ..Self::default()
        }
    }

    /// Sets tungstenite's read buffer per side (default [`READ_BUFFER_SIZE`], at least 256 bytes).
    pub fn with_read_buffer_size(mut self, bytes: usize) -> Self {
        self.read_buffer_size = bytes.max(MIN_READ_BUFFER_SIZE);
        self
    }

    /// Sets the bytes tungstenite gathers before writing (default [`WRITE_BUFFER_SIZE`]; 0 writes every
    /// message at once; at most 1 MiB).
    pub fn with_write_buffer_size(mut self, bytes: usize) -> Self {
        self.write_buffer_size = bytes.min(MAX_WRITE_BUFFER_SIZE);
        self
    }

    /// Sets the deadline of the closing phase (default [`CLOSE_TIMEOUT`]).
    pub fn with_close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// The idle timeout: no frame in either direction for this long closes both sides with 1001.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// The largest message (and frame) accepted from either side.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Whether text messages must be valid UTF-8. tungstenite 0.30 always checks, so this is always
    /// enforced (see the crate documentation).
    pub fn validate_utf8(&self) -> bool {
        self.validate_utf8
    }

    /// Whether the route asked for compression. Not negotiated: tungstenite 0.30 has no
    /// permessage-deflate (see the crate documentation).
    pub fn compress(&self) -> bool {
        self.compress
    }

    /// The tungstenite settings used for both sides.
    ///
    /// A small read buffer ([`READ_BUFFER_SIZE`]), a small write batch ([`WRITE_BUFFER_SIZE`]), and a
    /// write buffer bounded to one whole message plus its batch and two control frames: the bridge
    /// hands a side a message only once the previous ones are written (back-pressure), so this bound is
    /// never reached by data and only guarantees that a close frame always fits. Messages and frames
    /// are limited to `max_websocket_frame_size` (`LIM-6`). Masking rules are RFC 6455's: unmasked
    /// client frames are refused.
    pub fn websocket_config(&self) -> WebSocketConfig {
        let max_write_buffer = self
            .write_buffer_size
            .saturating_add(self.max_message_size)
            .saturating_add(FRAME_HEADER_MAX + CONTROL_FRAME_ROOM);
        WebSocketConfig::default()
            .read_buffer_size(self.read_buffer_size)
            .write_buffer_size(self.write_buffer_size)
            .max_write_buffer_size(max_write_buffer)
            .max_message_size(Some(self.max_message_size))
            .max_frame_size(Some(self.max_message_size))
            .accept_unmasked_frames(false)
    }
}

impl Default for BridgeConfig {
    /// The settings of a route with every WebSocket option at its default.
    fn default() -> Self {
        Self {
            idle_timeout: defaults::WEBSOCKET_IDLE_TIMEOUT,
            max_message_size: defaults::MAX_WEBSOCKET_FRAME_SIZE,
            max_pending_bytes: defaults::MAX_WEBSOCKET_PENDING_BYTES,
            max_pending_frames: defaults::MAX_WEBSOCKET_PENDING_FRAMES,
            validate_utf8: true,
            compress: false,
            read_buffer_size: READ_BUFFER_SIZE,
            write_buffer_size: WRITE_BUFFER_SIZE,
            close_timeout: CLOSE_TIMEOUT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_route_reads_the_websocket_options() {
        let route = RouteConfig::builder("ws://127.0.0.1:9")
            .websocket_idle_timeout(Duration::from_secs(7))
            .max_websocket_frame_size(1000)
            .max_websocket_pending_bytes(2000)
            .max_websocket_pending_frames(3)
            .websocket_validate_utf8(false)
            .websocket_compress(true)
            .build()
            .unwrap();
        let c = BridgeConfig::from_route(&route);
        assert_eq!(c.idle_timeout(), Duration::from_secs(7));
        assert_eq!(c.max_message_size(), 1000);
        assert_eq!((c.max_pending_bytes, c.max_pending_frames), (2000, 3));
        assert!(!c.validate_utf8() && c.compress());
        let ws = c.websocket_config();
        assert_eq!(ws.read_buffer_size, READ_BUFFER_SIZE);
        assert_eq!(ws.write_buffer_size, WRITE_BUFFER_SIZE);
        assert_eq!(
            (ws.max_message_size, ws.max_frame_size),
            (Some(1000), Some(1000))
        );
        assert!(ws.max_write_buffer_size > ws.write_buffer_size + 1000);
        assert!(!ws.accept_unmasked_frames);
    }

    #[test]
    fn huge_limits_do_not_overflow() {
        let c = BridgeConfig {
            max_message_size: usize::MAX,
            ..BridgeConfig::default()
        };
        let ws = c.websocket_config();
        assert_eq!(ws.max_write_buffer_size, usize::MAX);
        assert!(ws.max_write_buffer_size > ws.write_buffer_size);
    }
}
