//! WebSocket handshake helpers (RFC 6455 §4): detection (`WS-1`) and subprotocols (`WS-4`).

use http::header::{
    CONNECTION, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{HeaderMap, Method};

use super::hop_by_hop::{has_token, list_elements};
use crate::{Error, ErrorKind};

/// Whether the request asks for a WebSocket upgrade (`WS-1`): some `Connection` line has the
/// `upgrade` token and some `Upgrade` line the `websocket` token, in any case (RFC 6455 §4.2.1).
///
/// ```
/// use http::HeaderMap;
/// use reverseit_core::headers::is_websocket_upgrade;
///
/// let mut h = HeaderMap::new();
/// h.insert("connection", "keep-alive, Upgrade".parse().unwrap());
/// h.insert("upgrade", "WebSocket".parse().unwrap());
/// assert!(is_websocket_upgrade(&h));
/// ```
#[inline]
pub fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get_all(CONNECTION)
        .iter()
        .any(|v| has_token(v, "upgrade"))
        && headers
            .get_all(UPGRADE)
            .iter()
            .any(|v| has_token(v, "websocket"))
}

/// Checks a request that [`is_websocket_upgrade`] detected (`WS-1`, RFC 6455 §4.2.1): the method is
/// `GET`, there is exactly one `Sec-WebSocket-Key`, the base64 text of 16 bytes (24 characters ending
/// in `==`), and exactly one `Sec-WebSocket-Version`, `13`. Otherwise
/// [`ErrorKind::InvalidWebSocketHandshake`] (400).
///
/// ```
/// use http::{HeaderMap, Method};
/// use reverseit_core::headers::check_websocket_handshake;
///
/// let mut h = HeaderMap::new();
/// h.insert("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==".parse().unwrap());
/// h.insert("sec-websocket-version", "13".parse().unwrap());
/// assert!(check_websocket_handshake(&Method::GET, &h).is_ok());
/// assert!(check_websocket_handshake(&Method::POST, &h).is_err());
/// ```
pub fn check_websocket_handshake(method: &Method, headers: &HeaderMap) -> Result<(), Error> {
    let invalid =
        |why: &'static str| Err(Error::new(ErrorKind::InvalidWebSocketHandshake).with_message(why));
    if method != Method::GET {
        return invalid("the method must be GET");
    }
    let mut keys = headers.get_all(SEC_WEBSOCKET_KEY).iter();
    match (keys.next(), keys.next()) {
        (Some(key), None) if is_valid_key(key.as_bytes()) => {}
        (None, _) => return invalid("no Sec-WebSocket-Key"),
        (Some(_), Some(_)) => return invalid("several Sec-WebSocket-Key lines"),
        (Some(_), None) => return invalid("Sec-WebSocket-Key is not the base64 text of 16 bytes"),
    }
    let mut versions = headers.get_all(SEC_WEBSOCKET_VERSION).iter();
    match (versions.next(), versions.next()) {
        (Some(v), None) if v == "13" => Ok(()),
        _ => invalid("Sec-WebSocket-Version must be one line, 13"),
    }
}

/// 16 bytes in base64 (RFC 4648 §4): 22 alphabet characters and `==`. The two unused bits of the
/// last character are not checked, as lenient decoders do not.
fn is_valid_key(key: &[u8]) -> bool {
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// The subprotocols the client offers, in order: every `Sec-WebSocket-Protocol` line, split on
/// commas and trimmed (`WS-4`). Lines that are not visible ASCII are skipped.
///
/// ```
/// use http::HeaderMap;
/// use reverseit_core::headers::offered_subprotocols;
///
/// let mut h = HeaderMap::new();
/// h.append("sec-websocket-protocol", "graphql-ws, mqtt".parse().unwrap());
/// h.append("sec-websocket-protocol", "wamp".parse().unwrap());
/// let offered: Vec<&str> = offered_subprotocols(&h).collect();
/// assert_eq!(offered, ["graphql-ws", "mqtt", "wamp"]);
/// ```
pub fn offered_subprotocols(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter(|v| v.to_str().is_ok())
        .flat_map(list_elements)
        // Elements of a line that is visible ASCII are ASCII too.
        .filter_map(|e| std::str::from_utf8(e).ok())
}

/// Checks the backend's subprotocol choice against the client's offer (`WS-4`, RFC 6455 §4.1): the
/// backend's response has no `Sec-WebSocket-Protocol`, or exactly one line naming one protocol the
/// client offered. Otherwise [`ErrorKind::WebSocketHandshake`] (502).
///
/// ```
/// use http::HeaderMap;
/// use reverseit_core::headers::check_selected_subprotocol;
///
/// let mut request = HeaderMap::new();
/// request.insert("sec-websocket-protocol", "v2.chat, v1.chat".parse().unwrap());
/// let mut response = HeaderMap::new();
/// response.insert("sec-websocket-protocol", "v1.chat".parse().unwrap());
/// assert!(check_selected_subprotocol(&request, &response).is_ok());
/// response.insert("sec-websocket-protocol", "v3.chat".parse().unwrap());
/// assert!(check_selected_subprotocol(&request, &response).is_err());
/// ```
pub fn check_selected_subprotocol(request: &HeaderMap, response: &HeaderMap) -> Result<(), Error> {
    let mut chosen = response.get_all(SEC_WEBSOCKET_PROTOCOL).iter();
    let choice = match (chosen.next(), chosen.next()) {
        (None, _) => return Ok(()),
        (Some(v), None) => v.to_str().ok().map(str::trim),
        (Some(_), Some(_)) => None,
    };
    match choice {
        Some(c) if offered_subprotocols(request).any(|o| o == c) => Ok(()),
        _ => Err(Error::new(ErrorKind::WebSocketHandshake)
            .with_message("the backend chose a subprotocol the client did not offer")),
    }
}
