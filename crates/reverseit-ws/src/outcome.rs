//! What a bridge reports when it ends.

use reverseit_core::Error;

/// One side of a bridged connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The client, toward which the proxy is the WebSocket server.
    Client,
    /// The backend, toward which the proxy is the WebSocket client.
    Backend,
}

impl Side {
    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::Client => Side::Backend,
            Side::Backend => Side::Client,
        }
    }
}

/// Who ended the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClosedBy {
    /// The client sent a close frame, or dropped its connection (then [`BridgeOutcome::error`] is
    /// `ClientGone`).
    Client,
    /// The backend sent a close frame, or dropped its connection (then [`BridgeOutcome::error`] is
    /// `BackendIo`).
    Backend,
    /// The proxy: a limit, an invalid message, the idle timeout or a shutdown; [`BridgeOutcome::error`]
    /// says which, [`BridgeOutcome::offender`] which side caused it.
    Proxy,
}

/// What happened on a bridged connection, for logs and tests.
#[derive(Debug)]
#[non_exhaustive]
pub struct BridgeOutcome {
    /// Who ended the session.
    pub closed_by: ClosedBy,
    /// The close code of the close frame the client received from the proxy: its own echoed back when
    /// it closed first, the backend's when the backend closed first, the proxy's after a failure;
    /// 1005 for a close frame without a code; `None` when no close frame could be sent.
    pub close_code_to_client: Option<u16>,
    /// The same toward the backend.
    pub close_code_to_backend: Option<u16>,
    /// Messages (text, binary, ping, pong; not close) handed from the client to the backend.
    pub messages_client_to_backend: u64,
    /// Messages handed from the backend to the client.
    pub messages_backend_to_client: u64,
    /// Why the session ended, unless a side closed it cleanly with a close frame. Its
    /// [`close_codes`](Error::close_codes) are the codes sent.
    pub error: Option<Error>,
    /// The side whose message broke a rule (too big, invalid UTF-8, protocol violation, too many pings
    /// in flight), when there is one.
    pub offender: Option<Side>,
    /// Whether both closing handshakes (and TCP shutdowns) finished before the close deadline.
    pub clean: bool,
}
