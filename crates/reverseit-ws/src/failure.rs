//! Why a session ends, and which close frame each side then gets.
//!
//! tungstenite errors are classified here into the proxy's [`ErrorKind`]s; the close codes come from
//! the one mapping in `reverseit-core` ([`Error::close_codes`]).

use reverseit_core::{Error, ErrorKind};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::Utf8Bytes;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::outcome::Side;

/// A session ended by the proxy rather than by a close frame.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) error: Error,
    /// The side whose message broke a rule; it gets `to_offender`, the other side `to_other`.
    /// `None`: the client gets `to_offender` (core's rule when neither side's message is at fault).
    pub(crate) offender: Option<Side>,
    /// A side whose connection is gone: nothing can be sent to it.
    pub(crate) gone: Option<Side>,
    /// A side whose stream can no longer be read (tokio-tungstenite ends a stream after an error):
    /// it gets its close frame, then the proxy discards what it still sends.
    pub(crate) unreadable: Option<Side>,
}

impl Failure {
    /// A failure decided by the proxy with both sides still there (idle timeout, shutdown, too many
    /// pings in flight).
    pub(crate) fn proxy(kind: ErrorKind, offender: Option<Side>) -> Self {
        Self {
            error: Error::new(kind),
            offender,
            gone: None,
            unreadable: None,
        }
    }

    /// Reading from `side` failed.
    pub(crate) fn read(side: Side, err: WsError) -> Self {
        let mut failure = Self::classify(side, err);
        if failure.gone.is_none() {
            failure.unreadable = Some(side);
        }
        failure
    }

    /// Writing to `side` failed.
    pub(crate) fn write(side: Side, err: WsError) -> Self {
        Self::classify(side, err)
    }

    /// `side`'s stream ended without a close frame.
    pub(crate) fn dropped(side: Side) -> Self {
        let kind = match side {
            Side::Client => ErrorKind::ClientGone,
            Side::Backend => ErrorKind::BackendIo,
        };
        Self {
            error: Error::new(kind).with_message("connection closed without a close frame"),
            offender: None,
            gone: Some(side),
            unreadable: None,
        }
    }

    fn classify(side: Side, err: WsError) -> Self {
        let message = |kind: ErrorKind, err: WsError| {
            Error::new(kind)
                .with_message(format!("from the {}", side_name(side)))
                .with_source(err)
        };
        let offending = |kind: ErrorKind, err: WsError| Self {
            error: message(kind, err),
            offender: Some(side),
            gone: None,
            unreadable: None,
        };
        match err {
            WsError::Capacity(_) => offending(ErrorKind::WebSocketMessageTooBig, err),
            WsError::Utf8(_) => offending(ErrorKind::WebSocketInvalidUtf8, err),
            // The write buffer is sized for a whole message plus control frames (see
            // `BridgeConfig::websocket_config`); if it ever overflows, the side is not reading.
            WsError::WriteBufferFull(_) => offending(ErrorKind::WebSocketQueueFull, err),
            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)
            | WsError::Io(_)
            | WsError::Tls(_)
            | WsError::ConnectionClosed
            | WsError::AlreadyClosed => {
                let mut failure = Self::dropped(side);
                failure.error = failure.error.with_source(err);
                failure
            }
            WsError::Protocol(_) | WsError::AttackAttempt => {
                offending(ErrorKind::WebSocketProtocol, err)
            }
            // Handshake-only errors (HTTP, URL) cannot happen after the upgrade.
            _ => Self {
                error: message(ErrorKind::Internal, err),
                offender: None,
                gone: None,
                unreadable: None,
            },
        }
    }

    /// The close frames for (client, backend); `None` for a side that is gone.
    pub(crate) fn close_frames(&self) -> (Option<CloseFrame>, Option<CloseFrame>) {
        let codes = self.error.close_codes();
        let (to_client, to_backend) = match self.offender {
            Some(Side::Backend) => (codes.to_other, codes.to_offender),
            Some(Side::Client) | None => (codes.to_offender, codes.to_other),
        };
        let reason = reason(self.error.kind());
        let frame = |code: u16, side: Side| {
            (self.gone != Some(side)).then(|| CloseFrame {
                code: CloseCode::from(code),
                reason: Utf8Bytes::from_static(reason),
            })
        };
        (
            frame(to_client, Side::Client),
            frame(to_backend, Side::Backend),
        )
    }
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Client => "client",
        Side::Backend => "backend",
    }
}

/// The close reason sent with the proxy's close codes: short, and the same on both sides.
fn reason(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::WebSocketMessageTooBig => "message too big",
        ErrorKind::WebSocketQueueFull => "too many frames queued",
        ErrorKind::WebSocketInvalidUtf8 => "invalid UTF-8",
        ErrorKind::WebSocketProtocol => "protocol error",
        ErrorKind::WebSocketIdle => "idle timeout",
        ErrorKind::Shutdown => "server shutting down",
        ErrorKind::ClientGone => "client connection lost",
        ErrorKind::BackendIo => "backend connection lost",
        _ => "proxy error",
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use tokio_tungstenite::tungstenite::error::CapacityError;

    use super::*;

    fn codes(f: &Failure) -> (Option<u16>, Option<u16>) {
        let (c, b) = f.close_frames();
        (c.map(|f| f.code.into()), b.map(|f| f.code.into()))
    }

    // LIM-6: 1009 to the sender, 1001 to the other side, both ways.
    #[test]
    fn lim_6_too_big_codes_follow_the_offender() {
        let too_big = || {
            WsError::Capacity(CapacityError::MessageTooLong {
                size: 2,
                max_size: 1,
            })
        };
        let f = Failure::read(Side::Client, too_big());
        assert_eq!(f.error.kind(), ErrorKind::WebSocketMessageTooBig);
        assert_eq!(codes(&f), (Some(1009), Some(1001)));
        let f = Failure::read(Side::Backend, too_big());
        assert_eq!(codes(&f), (Some(1001), Some(1009)));
        assert_eq!(f.unreadable, Some(Side::Backend));
    }

    // WS-8: invalid UTF-8 → 1007 to the sender.
    #[test]
    fn ws_8_invalid_utf8_codes() {
        let f = Failure::read(Side::Client, WsError::Utf8("bad".into()));
        assert_eq!(codes(&f), (Some(1007), Some(1001)));
    }

    // WS-7: a side that drops gets nothing; the other side gets 1011 (client) or 1001 (backend).
    #[test]
    fn ws_7_dropped_sides() {
        let reset = || WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake);
        let f = Failure::read(Side::Backend, reset());
        assert_eq!(f.error.kind(), ErrorKind::BackendIo);
        assert_eq!(codes(&f), (Some(1011), None));
        let f = Failure::read(Side::Client, reset());
        assert_eq!(f.error.kind(), ErrorKind::ClientGone);
        assert_eq!(codes(&f), (None, Some(1001)));
        let f = Failure::write(Side::Client, WsError::Io(io::ErrorKind::BrokenPipe.into()));
        assert_eq!(
            (codes(&f), f.gone),
            ((None, Some(1001)), Some(Side::Client))
        );
    }

    #[test]
    fn protocol_violations_get_1002() {
        let f = Failure::read(
            Side::Client,
            WsError::Protocol(ProtocolError::UnmaskedFrameFromClient),
        );
        assert_eq!(codes(&f), (Some(1002), Some(1001)));
    }

    // TMO-7 and shutdown: 1001 both ways.
    #[test]
    fn tmo_7_idle_and_shutdown_codes() {
        for kind in [ErrorKind::WebSocketIdle, ErrorKind::Shutdown] {
            assert_eq!(codes(&Failure::proxy(kind, None)), (Some(1001), Some(1001)));
        }
    }
}
