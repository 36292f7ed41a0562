//! WebSocket upgrades: the backend's handshake first, then the client's, then the frame bridge.
//!
//! The client is upgraded only after the backend answered 101 (`WS-2`), with the backend's chosen
//! subprotocol and its other response headers (cookies) (`WS-4`). A backend that answers anything
//! else has its answer relayed whole. The backend handshake runs over hyper's HTTP/1.1 client, whose
//! upgrade hands over any bytes the backend sent right after its 101 (`WS-9`); the client's upgrade is
//! hyper's own, so no second HTTP server is involved. The relay itself is [`reverseit_ws::bridge`].

use bytes::Bytes;
use http::header::{
    CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Version};
use http_body::Body;
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use reverseit_core::headers::{self, ClientInfo};
use reverseit_core::limits;
use reverseit_core::{BoxError, Error, ErrorKind};
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::proxy::{Route, client_host, client_info};
use crate::response_body::ProxyBody;

/// Proxies one WebSocket upgrade request (`WS-1` … `WS-4`, `WS-10`, `TMO-6`); `client` as for
/// `Route::start`.
pub(crate) async fn proxy<B>(
    route: &Route,
    req: Request<B>,
    client: Option<ClientInfo>,
) -> Result<Response<ProxyBody>, Error>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let (mut parts, _body) = req.into_parts();
    if parts.version < Version::HTTP_11 {
        // RFC 6455 §4.1: the handshake is HTTP/1.1 or later (hyper cannot upgrade HTTP/1.0).
        return Err(Error::new(ErrorKind::InvalidWebSocketHandshake)
            .with_message("a WebSocket handshake over HTTP/1.0"));
    }
    headers::check_websocket_handshake(&parts.method, &parts.headers)?; // WS-1
    limits::check_host(parts.version, &parts.uri, &parts.headers)?; // ERR-6
    route.limits.check_head(&parts.uri, &parts.headers)?; // LIM-1, LIM-2
    let path = route.rewrite.rewrite_uri(&parts.uri)?; // WS-3, PATH-*
    let client_key = parts
        .headers
        .get(SEC_WEBSOCKET_KEY)
        .cloned()
        .ok_or_else(|| Error::new(ErrorKind::InvalidWebSocketHandshake))?;
    if route.shutdown.is_triggered() {
        // Draining: a new upgrade would reach the backend only to be closed with 1001 at once, so
        // it is refused with 503 before the backend is contacted.
        return Err(
            Error::new(ErrorKind::Shutdown).with_message("WebSocket upgrade while draining")
        );
    }
    let Some(client_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
        return Err(Error::new(ErrorKind::Internal)
            .with_message("the server does not support upgrades on this connection"));
    };

    let client_host = client_host(&parts);
    let client = client.unwrap_or_else(|| client_info(&parts.extensions));
    let mut headers = parts.headers;
    route
        .policy
        .apply_websocket_request(&mut headers, &client, client_host.as_ref()); // WS-3
    // WS-4: the client's offer goes to the backend as it is; keep it to check the backend's choice.
    let mut offer = HeaderMap::new();
    for v in headers.get_all(SEC_WEBSOCKET_PROTOCOL) {
        offer.append(SEC_WEBSOCKET_PROTOCOL, v.clone());
    }
    let key = generate_key();
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
    headers.insert(
        SEC_WEBSOCKET_KEY,
        HeaderValue::from_str(&key).expect("a generated key is base64"),
    );
    let mut backend_req = Request::new(Empty::<Bytes>::new());
    *backend_req.uri_mut() = path.into();
    *backend_req.headers_mut() = headers;

    let timeout = route.config.websocket_backend_upgrade_timeout();
    let mut response = match tokio::time::timeout(timeout, handshake(route, backend_req)).await {
        Ok(result) => result?,
        Err(_) => return Err(Error::new(ErrorKind::WebSocketUpgradeTimeout)), // TMO-6
    };
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        // WS-2: the backend refused; the client gets its answer as it is, not upgraded.
        return route.relay(response, false, false);
    }
    // HDR-7 holds for the 101 too: its header block is bounded like any response head's.
    limits::check_response_head(
        response.status(),
        response.headers(),
        route.config.max_response_header_bytes(),
        route.config.max_response_body_size(),
        false,
    )?;
    check_backend_answer(response.headers(), &key, &offer)?;
    let backend_upgrade = hyper::upgrade::on(&mut response);
    let (mut head, _) = response.into_parts();

    // The client's 101: the backend's headers (cookies, the chosen subprotocol) under the response
    // policy, plus the handshake headers computed for the client's own key.
    route.policy.apply_response(&mut head.headers);
    head.headers.remove(SEC_WEBSOCKET_ACCEPT);
    head.headers.remove(SEC_WEBSOCKET_EXTENSIONS);
    head.headers
        .insert(CONNECTION, HeaderValue::from_static("upgrade"));
    head.headers
        .insert(UPGRADE, HeaderValue::from_static("websocket"));
    head.headers.insert(
        SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&derive_accept_key(client_key.as_bytes()))
            .expect("an accept key is base64"),
    );

    let bridge_config = route.bridge.clone();
    let shutdown = route.shutdown.clone();
    tokio::spawn(async move {
        let (client_io, backend_io) = match tokio::try_join!(client_upgrade, backend_upgrade) {
            Ok(both) => both,
            Err(e) => {
                tracing::debug!(error = %e, "WebSocket upgrade did not complete");
                return;
            }
        };
        let outcome = reverseit_ws::bridge(
            TokioIo::new(client_io),
            TokioIo::new(backend_io),
            &bridge_config,
            &shutdown,
        )
        .await;
        tracing::debug!(?outcome, "WebSocket closed");
    });

    let mut resp = Response::new(ProxyBody::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *resp.headers_mut() = head.headers;
    Ok(resp)
}

/// Connects to the backend (TLS included, `WS-10`) and sends the upgrade request over HTTP/1.1.
async fn handshake(route: &Route, req: Request<Empty<Bytes>>) -> Result<Response<Incoming>, Error> {
    let io = route.pool.connect_http1(&route.target).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| Error::new(ErrorKind::BackendIo).with_source(e))?;
    tokio::spawn(async move {
        // Ends when the upgraded stream is handed over, or when the backend closes.
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "backend WebSocket handshake connection failed");
        }
    });
    sender
        .send_request(req)
        .await
        .map_err(|e| Error::new(ErrorKind::BackendIo).with_source(e))
}

/// Checks the backend's 101 as RFC 6455 §4.1 asks of a client: `Upgrade: websocket` and
/// `Connection: upgrade`, the accept key derived from the key we sent, no extension (the proxy
/// offers none), and a chosen subprotocol one the client offered (`WS-4`).
fn check_backend_answer(response: &HeaderMap, key: &str, offer: &HeaderMap) -> Result<(), Error> {
    if !headers::is_websocket_upgrade(response) {
        return Err(Error::new(ErrorKind::WebSocketHandshake)
            .with_message("the backend's 101 lacks Upgrade: websocket or Connection: upgrade"));
    }
    if response.contains_key(SEC_WEBSOCKET_EXTENSIONS) {
        return Err(Error::new(ErrorKind::WebSocketHandshake)
            .with_message("the backend's 101 chose an extension, and none was offered"));
    }
    let accept = response
        .get(SEC_WEBSOCKET_ACCEPT)
        .map(HeaderValue::as_bytes);
    if accept != Some(derive_accept_key(key.as_bytes()).as_bytes()) {
        return Err(Error::new(ErrorKind::WebSocketHandshake)
            .with_message("the backend's Sec-WebSocket-Accept does not match the key sent"));
    }
    headers::check_selected_subprotocol(offer, response)
}
