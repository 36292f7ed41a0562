//! The proxy's error type, and the one place that maps an error to what the client sees.
//!
//! Every failure in every layer ends up as an [`Error`]: the pool, the HTTP service and the WebSocket
//! bridge build one with the [`ErrorKind`] that says what went wrong, attach the underlying cause, and
//! hand it to [`Error::disposition`] (HTTP) or [`Error::close_code`] (WebSocket). Status codes appear
//! nowhere else in the project.

use std::error::Error as StdError;
use std::fmt;

use http::StatusCode;

use crate::config::ErrorResponse;

/// A boxed cause, kept in the chain returned by [`std::error::Error::source`].
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What went wrong, at the proxy's level of description.
///
/// The variants are grouped by where the failure came from (see [`ErrorKind::origin`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    // ---- the client's request (4xx) ----
    /// The request breaks HTTP's rules (RFC 9112 §3.2, §6.3): missing or repeated `Host`, an invalid or
    /// conflicting `Content-Length`, a bad `Transfer-Encoding` and the like (`ERR-6`, `LIM-3`).
    BadRequest,
    /// The request body has a transfer coding other than `chunked` (`gzip, chunked` and the like),
    /// which the proxy cannot pass on: 501 (RFC 9112 §6.1, `ERR-6`).
    UnsupportedTransferCoding,
    /// The request path contains a `.` or `..` segment, literally or percent-encoded (`PATH-4`).
    InvalidPath,
    /// The request target is longer than `max_request_target_bytes` (`LIM-1`).
    UriTooLong,
    /// The request headers exceed a count or size limit (`LIM-2`).
    HeadersTooLarge,
    /// The request body is larger than `max_request_body_size` (`LIM-3`).
    BodyTooLarge,
    /// The client sent no body data for `request_body_read_timeout` (`TMO-4`).
    ClientBodyTimeout,
    /// A WebSocket upgrade request that is not a valid handshake (`WS-1`).
    InvalidWebSocketHandshake,
    /// No route matches the request path.
    NoRoute,
    /// The client went away or broke its connection; nobody is left to answer (`ERR-4`).
    ClientGone,

    // ---- the backend (5xx) ----
    /// The backend could not be reached: refused, unreachable, name resolution failed (`TMO-1`, `ERR-1`).
    Connect,
    /// The backend connection was not established within `connect_timeout` (`TMO-1`).
    ConnectTimeout,
    /// The TLS handshake with the backend failed (`ERR-1`, `POOL-5`).
    Tls,
    /// The backend connection failed (reset, closed, protocol error) before a complete response head.
    BackendIo,
    /// The backend sent no response head within `response_header_timeout` (`TMO-2`).
    ResponseHeaderTimeout,
    /// The backend's response head is invalid or larger than `max_response_header_bytes` (`HDR-7`).
    InvalidResponse,
    /// The backend's response body is larger than `max_response_body_size` (`LIM-5`).
    ResponseTooLarge,
    /// The backend's body ended before its announced length, or its connection broke mid-body (`ERR-2`).
    BackendBodyTruncated,
    /// The backend sent no body data for `upstream_idle_timeout` mid-response (`TMO-3`).
    BackendIdleTimeout,
    /// No pooled connection became free within `pool_timeout` (`TMO-5`, `POOL-2`).
    PoolExhausted,
    /// The backend's WebSocket handshake did not complete within `websocket_backend_upgrade_timeout`
    /// (`TMO-6`).
    WebSocketUpgradeTimeout,
    /// The backend answered a WebSocket handshake wrongly, for example choosing a subprotocol the client
    /// did not offer (`WS-4`).
    WebSocketHandshake,

    // ---- WebSocket sessions after the upgrade (close codes) ----
    /// A WebSocket message exceeded `max_websocket_frame_size` (`LIM-6`).
    WebSocketMessageTooBig,
    /// The bridge's queue toward one side exceeded `max_websocket_pending_bytes` or
    /// `max_websocket_pending_frames` (`WS-11`).
    WebSocketQueueFull,
    /// A text message was not valid UTF-8 (`WS-8`).
    WebSocketInvalidUtf8,
    /// A WebSocket peer broke RFC 6455 after the upgrade: an unmasked client frame, a reserved opcode
    /// or bit, a fragmented or oversized control frame (RFC 6455 §5.1–§5.5).
    WebSocketProtocol,
    /// No frame in either direction for `websocket_idle_timeout` (`TMO-7`).
    WebSocketIdle,
    /// The server is shutting down and closes every proxied connection.
    Shutdown,

    // ---- the proxy itself ----
    /// A bug or an impossible state in the proxy.
    Internal,
}

/// Where a failure came from, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Origin {
    /// The client's request or connection.
    Client,
    /// The backend or the way to it.
    Backend,
    /// The proxy itself (including a shutdown it decided on).
    Internal,
}

/// What the proxy does toward the client after an HTTP failure.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Disposition {
    /// Answer with this status and a short `text/plain` body, when no response has started yet.
    Respond {
        /// The status line.
        status: StatusCode,
        /// The body, sent with `content-type: text/plain`.
        body: String,
    },
    /// Abort the client connection: a response is under way (or the client is gone), so a clean
    /// end would pass a truncated or wrong body off as complete.
    Abort,
}

/// A WebSocket close code (RFC 6455 §7.4.1) the bridge sends on each side after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseCodes {
    /// The code sent to the side that caused the failure (or to the client, when neither did).
    pub to_offender: u16,
    /// The code sent to the other side.
    pub to_other: u16,
}

/// The proxy's error: an [`ErrorKind`], an optional message, whether a retry is safe, and the cause.
pub struct Error {
    kind: ErrorKind,
    message: Option<Box<str>>,
    retryable: bool,
    source: Option<BoxError>,
}

impl Error {
    /// An error of this kind with no further detail.
    pub fn new(kind: ErrorKind) -> Self {
        Self {
            kind,
            message: None,
            retryable: false,
            source: None,
        }
    }

    /// Adds a short explanation shown in `Display` and logs (never in the client's response body).
    pub fn with_message(mut self, message: impl Into<Box<str>>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// Attaches the underlying cause, reachable through [`std::error::Error::source`].
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Marks the failure as safe to retry on a fresh connection: it happened on a reused connection
    /// before any response byte arrived, so the backend cannot have acted on the request (`ERR-3`).
    pub fn retryable(mut self) -> Self {
        self.retryable = true;
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether the request may be sent again on a fresh connection.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// The short explanation given with [`Error::with_message`], if any.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// Where the failure came from.
    pub fn origin(&self) -> Origin {
        self.kind.origin()
    }

    /// What the client gets for this failure when it happens before any response byte was sent.
    ///
    /// This is the only place in ReverseIt that turns a failure into an HTTP status (`ERR-*`, `TMO-*`).
    /// `error_response` is the route's `error_response` option: the answer for a backend that
    /// cannot be reached or fails before its response (`ERR-1`).
    pub fn disposition(&self, error_response: &ErrorResponse) -> Disposition {
        use ErrorKind::*;
        let respond = |status: StatusCode, body: &str| Disposition::Respond {
            status,
            body: body.to_owned(),
        };
        match self.kind {
            BadRequest | InvalidWebSocketHandshake => {
                respond(StatusCode::BAD_REQUEST, "Bad Request")
            }
            UnsupportedTransferCoding => respond(StatusCode::NOT_IMPLEMENTED, "Not Implemented"),
            InvalidPath => respond(StatusCode::BAD_REQUEST, "Bad Request: invalid path"),
            UriTooLong => respond(StatusCode::URI_TOO_LONG, "URI Too Long"),
            HeadersTooLarge => respond(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "Request Header Fields Too Large",
            ),
            BodyTooLarge => respond(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large"),
            ClientBodyTimeout => respond(StatusCode::REQUEST_TIMEOUT, "Request Timeout"),
            NoRoute => respond(StatusCode::NOT_FOUND, "Not Found"),
            ClientGone | BackendBodyTruncated | BackendIdleTimeout => Disposition::Abort,
            Connect | Tls | BackendIo | InvalidResponse | WebSocketHandshake => {
                Disposition::Respond {
                    status: error_response.status(),
                    body: error_response.body().to_owned(),
                }
            }
            ResponseTooLarge => respond(StatusCode::BAD_GATEWAY, "Bad Gateway: Response too large"),
            ConnectTimeout | ResponseHeaderTimeout | WebSocketUpgradeTimeout => {
                respond(StatusCode::GATEWAY_TIMEOUT, "Gateway Timeout")
            }
            PoolExhausted => respond(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable"),
            Shutdown => respond(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable: shutting down",
            ),
            WebSocketMessageTooBig
            | WebSocketQueueFull
            | WebSocketInvalidUtf8
            | WebSocketProtocol
            | WebSocketIdle => respond(StatusCode::BAD_REQUEST, "Bad Request"),
            Internal => respond(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
        }
    }

    /// The close codes a WebSocket bridge sends after this failure (RFC 6455 §7.4.1).
    ///
    /// `to_offender` goes to the side that caused it (the sender of an oversized or invalid message),
    /// `to_other` to the other side (`LIM-6`, `WS-7`, `WS-8`, `TMO-7`).
    pub fn close_codes(&self) -> CloseCodes {
        use ErrorKind::*;
        const GOING_AWAY: u16 = 1001;
        const PROTOCOL_ERROR: u16 = 1002;
        const INVALID_PAYLOAD: u16 = 1007;
        const TOO_BIG: u16 = 1009;
        const INTERNAL: u16 = 1011;
        let (to_offender, to_other) = match self.kind {
            WebSocketMessageTooBig | WebSocketQueueFull => (TOO_BIG, GOING_AWAY),
            WebSocketInvalidUtf8 => (INVALID_PAYLOAD, GOING_AWAY),
            WebSocketProtocol => (PROTOCOL_ERROR, GOING_AWAY),
            WebSocketIdle | Shutdown | ClientGone => (GOING_AWAY, GOING_AWAY),
            // The backend broke: the client hears "server error", the backend (if still there) "going away".
            _ => (INTERNAL, GOING_AWAY),
        };
        CloseCodes {
            to_offender,
            to_other,
        }
    }
}

impl ErrorKind {
    /// Where failures of this kind come from.
    pub fn origin(self) -> Origin {
        use ErrorKind::*;
        match self {
            BadRequest
            | UnsupportedTransferCoding
            | InvalidPath
            | UriTooLong
            | HeadersTooLarge
            | BodyTooLarge
            | ClientBodyTimeout
            | InvalidWebSocketHandshake
            | NoRoute
            | ClientGone
            | WebSocketInvalidUtf8 => Origin::Client,
            Connect
            | ConnectTimeout
            | Tls
            | BackendIo
            | ResponseHeaderTimeout
            | InvalidResponse
            | ResponseTooLarge
            | BackendBodyTruncated
            | BackendIdleTimeout
            | PoolExhausted
            | WebSocketUpgradeTimeout
            | WebSocketHandshake => Origin::Backend,
            WebSocketMessageTooBig | WebSocketQueueFull | WebSocketProtocol | WebSocketIdle => {
                Origin::Client
            }
            Shutdown | Internal => Origin::Internal,
        }
    }

    fn describe(self) -> &'static str {
        use ErrorKind::*;
        match self {
            BadRequest => "malformed request",
            UnsupportedTransferCoding => "unsupported transfer coding",
            InvalidPath => "request path has a dot segment",
            UriTooLong => "request target too long",
            HeadersTooLarge => "request headers too large",
            BodyTooLarge => "request body too large",
            ClientBodyTimeout => "timed out reading the request body",
            InvalidWebSocketHandshake => "invalid WebSocket handshake",
            NoRoute => "no route for the request path",
            ClientGone => "client disconnected",
            Connect => "backend connection failed",
            ConnectTimeout => "backend connect timed out",
            Tls => "backend TLS handshake failed",
            BackendIo => "backend connection failed before the response",
            ResponseHeaderTimeout => "timed out waiting for the backend's response headers",
            InvalidResponse => "invalid backend response head",
            ResponseTooLarge => "backend response body too large",
            BackendBodyTruncated => "backend response body ended early",
            BackendIdleTimeout => "backend sent no body data in time",
            PoolExhausted => "no pooled backend connection free in time",
            WebSocketUpgradeTimeout => "backend WebSocket handshake timed out",
            WebSocketHandshake => "backend WebSocket handshake failed",
            WebSocketMessageTooBig => "WebSocket message too big",
            WebSocketQueueFull => "WebSocket queue full",
            WebSocketInvalidUtf8 => "WebSocket text message is not valid UTF-8",
            WebSocketProtocol => "WebSocket protocol violation",
            WebSocketIdle => "WebSocket idle timeout",
            Shutdown => "proxy shutting down",
            Internal => "internal proxy error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind);
        if let Some(m) = &self.message {
            d.field("message", m);
        }
        if self.retryable {
            d.field("retryable", &true);
        }
        if let Some(s) = &self.source {
            d.field("source", s);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.describe())?;
        if let Some(m) = &self.message {
            write!(f, ": {m}")?;
        }
        Ok(())
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Error::new(kind)
    }
}

#[cfg(test)]
mod tests;
