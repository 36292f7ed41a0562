use std::error::Error as _;
use std::io;

use http::StatusCode;

use super::*;

fn status(kind: ErrorKind) -> Option<(u16, String)> {
    match Error::new(kind).disposition(&ErrorResponse::default()) {
        Disposition::Respond { status, body } => Some((status.as_u16(), body)),
        Disposition::Abort => None,
    }
}

// ERR-*, TMO-*, LIM-*: the one mapping from failures to statuses.
#[test]
fn err_statuses_table() {
    use ErrorKind::*;
    let table: &[(ErrorKind, Option<u16>)] = &[
        (BadRequest, Some(400)),                // ERR-6
        (InvalidPath, Some(400)),               // PATH-4
        (UriTooLong, Some(414)),                // LIM-1
        (HeadersTooLarge, Some(431)),           // LIM-2
        (BodyTooLarge, Some(413)),              // LIM-3
        (ClientBodyTimeout, Some(408)),         // TMO-4
        (InvalidWebSocketHandshake, Some(400)), // WS-1
        (NoRoute, Some(404)),
        (ClientGone, None),                   // ERR-4
        (Connect, Some(502)),                 // TMO-1, ERR-1
        (ConnectTimeout, Some(504)),          // TMO-1
        (Tls, Some(502)),                     // ERR-1
        (BackendIo, Some(502)),               // ERR-1
        (ResponseHeaderTimeout, Some(504)),   // TMO-2
        (InvalidResponse, Some(502)),         // HDR-7
        (ResponseTooLarge, Some(502)),        // LIM-5
        (BackendBodyTruncated, None),         // ERR-2
        (BackendIdleTimeout, None),           // TMO-3
        (PoolExhausted, Some(503)),           // TMO-5
        (WebSocketUpgradeTimeout, Some(504)), // TMO-6
        (WebSocketHandshake, Some(502)),      // WS-4
        (Internal, Some(500)),
    ];
    for (kind, want) in table {
        assert_eq!(status(*kind).map(|s| s.0), *want, "{kind:?}");
    }
}

// LIM-5: the response-too-large body is exact.
#[test]
fn lim_5_response_too_large_body() {
    assert_eq!(
        status(ErrorKind::ResponseTooLarge),
        Some((502, "Bad Gateway: Response too large".into()))
    );
}

// ERR-1: a failing backend gets the route's error_response, status and body.
#[test]
fn err_1_error_response_is_configurable() {
    let route = crate::RouteConfig::builder("http://h")
        .error_response(503, "Backend down")
        .build()
        .unwrap();
    let d = Error::new(ErrorKind::Connect).disposition(route.error_response());
    assert_eq!(
        d,
        Disposition::Respond {
            status: StatusCode::SERVICE_UNAVAILABLE,
            body: "Backend down".into()
        }
    );
    // A timeout is not a failure to reach: it keeps its own status.
    let d = Error::new(ErrorKind::ConnectTimeout).disposition(route.error_response());
    assert!(
        matches!(d, Disposition::Respond { status, .. } if status == StatusCode::GATEWAY_TIMEOUT)
    );
}

// LIM-6, WS-7, WS-8, TMO-7: close codes.
#[test]
fn ws_close_codes_table() {
    use ErrorKind::*;
    let table = [
        (WebSocketMessageTooBig, 1009, 1001), // LIM-6
        (WebSocketQueueFull, 1009, 1001),     // WS-11
        (WebSocketInvalidUtf8, 1007, 1001),   // WS-8
        (WebSocketProtocol, 1002, 1001),      // RFC 6455 §7.4.1
        (WebSocketIdle, 1001, 1001),          // TMO-7
        (Shutdown, 1001, 1001),
        (ClientGone, 1001, 1001), // WS-7: the backend hears "going away"
        (BackendIo, 1011, 1001),  // WS-7: the client hears "internal error"
    ];
    for (kind, offender, other) in table {
        let c = Error::new(kind).close_codes();
        assert_eq!((c.to_offender, c.to_other), (offender, other), "{kind:?}");
    }
}

#[test]
fn display_source_and_retry_flag() {
    let io = io::Error::new(io::ErrorKind::ConnectionRefused, "refused");
    let e = Error::new(ErrorKind::Connect)
        .with_message("127.0.0.1:9")
        .with_source(io)
        .retryable();
    assert_eq!(e.to_string(), "backend connection failed: 127.0.0.1:9");
    assert_eq!(e.source().unwrap().to_string(), "refused");
    assert!(e.is_retryable());
    assert_eq!(e.origin(), Origin::Backend);
    assert!(!Error::new(ErrorKind::Connect).is_retryable());
    assert_eq!(Error::new(ErrorKind::BodyTooLarge).origin(), Origin::Client);
    assert!(format!("{e:?}").contains("retryable"));
}
