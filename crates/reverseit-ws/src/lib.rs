//! # reverseit-ws
//!
//! ReverseIt's WebSocket frame bridge. The HTTP side (`reverseit-hyper`) does both handshakes, the
//! backend's first and then the client's 101; [`bridge`] then relays messages between the two
//! upgraded connections in a single task until both are closed, and reports a [`BridgeOutcome`].
//!
//! ## What is relayed
//! - Text, binary, ping and pong messages, both ways, in order; fragmented messages are reassembled
//!   by tungstenite and relayed whole; empty messages too (`WS-5`).
//! - **Pings are answered by the proxy and relayed.** tungstenite answers every ping it reads with a
//!   pong on its own, and that cannot be turned off; so the proxy lets it answer, relays the ping to
//!   the other side, and swallows the pong that side sends back for it (matched by payload; RFC 6455
//!   §5.5.3 lets one pong answer several pings). Each ping thus gets exactly one pong, from the proxy,
//!   and the far end still sees the ping. Unsolicited pongs are relayed. A pinger that does not read
//!   may get one pong for several pings (tungstenite keeps only the latest pending pong, as §5.5.3
//!   allows).
//! - Close frames, code and reason, both ways (`WS-6`): tungstenite answers the closer with its own
//!   frame, the proxy sends the same frame to the other side after the messages queued toward it,
//!   and both closing handshakes complete before the connections are shut down.
//!
//! ## When the proxy closes
//! Close codes come from [`reverseit_core::Error::close_codes`]:
//! - a side drops its connection without a close frame: the client gets 1011, the backend 1001
//!   (`WS-7`);
//! - a message over `max_websocket_frame_size`: 1009 to its sender, 1001 to the other side (`LIM-6`);
//! - invalid UTF-8 in a text message: 1007 to its sender, 1001 to the other side (`WS-8`);
//! - an RFC 6455 violation (unmasked client frame, reserved opcode or bit...): 1002 / 1001;
//! - more than `max_websocket_pending_frames` pings relayed to a side and still unanswered: 1009 to
//!   the pinger, 1001 to the other side (see below);
//! - no frame in either direction for `websocket_idle_timeout`: 1001 to both (`TMO-7`); a frame
//!   counts when the bridge reads it, so a sender stalled by a reader that accepts nothing for that
//!   long is closed too;
//! - [`Shutdown::trigger`]: 1001 to both.
//!
//! The closing handshakes and TCP shutdowns get [`CLOSE_TIMEOUT`] in all; then the connections are
//! dropped.
//!
//! ## Memory and back-pressure (`WS-11`)
//! The bridge never reads from one side faster than the other side accepts. Per direction it holds a
//! queue of messages read and not yet accepted by the destination's writer, and it stops reading the
//! source while that queue holds `max_websocket_pending_frames` messages or
//! `max_websocket_pending_bytes` bytes: a slow reader slows its sender through TCP flow control, and
//! nothing is closed for it. Bytes held per direction are thus at most the pending bytes, plus one
//! message (the one that crossed the limit, at most `max_websocket_frame_size`), plus tungstenite's
//! write buffer (one message being written, [`WRITE_BUFFER_SIZE`] of batching and two control
//! frames), plus its read buffer.
//!
//! The one thing the bridge must remember that back-pressure cannot bound is the pings it relayed and
//! whose pong has not come back (a side is read for its data while the pongs for it wait behind data
//! it does not read): past `max_websocket_pending_frames` such pings the pinger is closed with 1009
//! (`WebSocketQueueFull`).
//!
//! An idle bridged connection costs one task: two [`READ_BUFFER_SIZE`] read buffers (4 KiB), the
//! bridge's future (about 2.4 KiB, checked by a test) and the write buffers' capacity (the largest
//! frame written so far, or [`WRITE_BUFFER_SIZE`] after a burst): about 7 KiB after small messages,
//! besides the sockets (8.2 to 9.2 KiB of resident memory per connection through the `reverseit`
//! binary, `docs/benchmarks.md`). [`BridgeConfig::with_read_buffer_size`] trades memory against CPU for large
//! messages (tungstenite reads at most one buffer per `read` call). tungstenite keeps the capacity
//! its buffers grew to, so a connection that once carried a large message keeps up to that message's
//! size per side until it closes.
//!
//! ## Options not honoured as such
//! - `websocket_compress`: tungstenite 0.30 has no permessage-deflate, so compression is never
//!   negotiated; the option is accepted and ignored. The handshake side must not offer or accept the
//!   extension.
//! - `websocket_validate_utf8 = false`: tungstenite 0.30 always checks text messages, so invalid
//!   UTF-8 closes with 1007 whatever the option says.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod bridge;
mod closing;
mod config;
mod failure;
mod outcome;
mod relay;
mod shutdown;

pub use bridge::{bridge, bridge_streams};
pub use config::{BridgeConfig, CLOSE_TIMEOUT, READ_BUFFER_SIZE, WRITE_BUFFER_SIZE};
pub use outcome::{BridgeOutcome, ClosedBy, Side};
pub use shutdown::Shutdown;
