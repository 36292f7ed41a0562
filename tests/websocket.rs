//! WebSocket proxying end to end (issue 5): tokio-tungstenite clients → the proxy (served by
//! `reverseit_hyper::serve`, or mounted in an axum router) → in-process tokio-tungstenite backends on
//! 127.0.0.1:0.
//!
//! Every wait is on an event (a message, a close, a status) bounded by [`WAIT`]; timeout tests run on
//! a paused clock. The one exception is the back-pressure test, which must observe that the backend
//! stopped making progress: quiescence is not an event, so it samples the backend's progress.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use reverseit_core::PoolConfig;
use reverseit_pool::Pool;
use support::ws::*;
use support::{Backend, Proxy, Speaks, full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::{self, Message};

// ---------------------------------------------------------------------------------------------
// Handshake: backend first (WS-1 … WS-4, WS-9, WS-10, TMO-6).
// ---------------------------------------------------------------------------------------------

// WS-2 (the original's "backend 403 relayed without upgrade"): the backend's refusal reaches the
// client whole, status, headers and body, and the client is not upgraded.
#[tokio::test]
async fn ws_2_backend_403_is_relayed_without_upgrade() {
    let backend = Backend::start(Speaks::Http1, |_req| async {
        Response::builder()
            .status(StatusCode::FORBIDDEN)
            .header("content-type", "text/plain")
            .header("x-denied-by", "policy")
            .header("set-cookie", "a=1")
            .header("set-cookie", "b=2")
            .body(full("no sockets for you"))
            .unwrap()
    })
    .await;
    let proxy = proxy_to(&backend.url()).await;
    let (status, headers, body) =
        exchange(proxy.addr, upgrade("/chat").body(Empty::new()).unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, "no sockets for you");
    assert_eq!(headers["content-type"], "text/plain");
    assert_eq!(headers["x-denied-by"], "policy");
    let cookies: Vec<_> = headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    assert!(!headers.contains_key("upgrade"));
    assert!(!headers.contains_key("sec-websocket-accept"));
    assert_eq!(backend.connections(), 1);

    // A tungstenite client sees the refusal as an HTTP error.
    let tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let url = format!("ws://{}/chat", proxy.addr);
    match tokio_tungstenite::client_async(url, tcp).await {
        Err(tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        }
        other => panic!("expected a 403, got {other:?}"),
    }
}

// WS-2, ERR-1: an unreachable backend → 502, not upgraded.
#[tokio::test]
async fn ws_2_unreachable_backend_is_502() {
    let addr = closed_port().await;
    let proxy = proxy_to(&format!("ws://{addr}")).await;
    let (status, headers, body) =
        exchange(proxy.addr, upgrade("/chat").body(Empty::new()).unwrap()).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body, "Bad Gateway");
    assert!(!headers.contains_key("upgrade"));
}

// TMO-6: a backend that accepts the connection and never answers the handshake → 504 once
// websocket_backend_upgrade_timeout passes, and the client is not upgraded.
#[tokio::test(start_paused = true)]
async fn tmo_6_backend_upgrade_timeout_is_504() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (got_tx, mut got) = mpsc::unbounded_channel();
    let _silent = AbortOnDrop(tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut tcp, _)) = listener.accept().await {
            // Read the handshake, answer nothing, keep the connection open.
            let mut buf = vec![0u8; 4096];
            let n = tcp.read(&mut buf).await.unwrap_or(0);
            let _ = got_tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
            held.push(tcp);
        }
    }));
    let proxy = Proxy::start(
        route(&format!("ws://{addr}"))
            .websocket_backend_upgrade_timeout(Duration::from_secs(2))
            .websocket_idle_timeout(LONG)
            .build()
            .unwrap(),
    )
    .await;
    let started = tokio::time::Instant::now();
    let (status, headers, body) =
        exchange(proxy.addr, upgrade("/slow").body(Empty::new()).unwrap()).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(body, "Gateway Timeout");
    assert!(!headers.contains_key("upgrade"));
    assert!(!headers.contains_key("sec-websocket-accept"));
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    // The backend did get the handshake: the time was spent waiting for its answer.
    let request = got.recv().await.unwrap();
    assert!(request.starts_with("GET /slow HTTP/1.1\r\n"), "{request}");
}

// WS-1: a detected upgrade that is not a valid handshake → 400, and the backend is not contacted.
#[tokio::test]
async fn ws_1_invalid_handshakes_are_400() {
    let mut backend = WsBackend::echo().await;
    let proxy = proxy_to(&backend.ws_url()).await;
    let post = upgrade("/chat").method("POST");
    let no_key = Request::get("/chat")
        .header("host", "proxy.test")
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13");
    let version_12 = Request::get("/chat")
        .header("host", "proxy.test")
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-key", CLIENT_KEY)
        .header("sec-websocket-version", "12");
    let bad_key = Request::get("/chat")
        .header("host", "proxy.test")
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-key", "not base64")
        .header("sec-websocket-version", "13");
    for (what, req) in [
        ("POST", post),
        ("missing key", no_key),
        ("version 12", version_12),
        ("malformed key", bad_key),
    ] {
        let (status, headers, body) = exchange(proxy.addr, req.body(Empty::new()).unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}");
        assert_eq!(body, "Bad Request", "{what}");
        assert!(!headers.contains_key("upgrade"), "{what}");
        // RFC 6455 §4.2.2: the refusal names the version the proxy speaks.
        assert_eq!(headers["sec-websocket-version"], "13", "{what}");
    }
    assert!(
        backend.handshakes.try_recv().is_err(),
        "the backend was contacted"
    );
}

// WS-1: a handshake over HTTP/1.0 is not a valid one (RFC 6455 §4.1) → 400, backend untouched.
#[tokio::test]
async fn ws_1_handshake_over_http_1_0_is_400() {
    let mut backend = WsBackend::echo().await;
    let proxy = proxy_to(&backend.ws_url()).await;
    let request = format!(
        "GET /chat HTTP/1.0\r\nHost: proxy.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: {CLIENT_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.0 400 "), "{answer}");
    assert!(answer.ends_with("Bad Request"), "{answer}");
    assert!(
        backend.handshakes.try_recv().is_err(),
        "the backend was contacted"
    );
}

// WS-2: a backend 101 that a client must refuse (RFC 6455 §4.1: no `Upgrade`/`Connection`
// tokens, or an extension nobody offered) → 502, the client not upgraded.
#[tokio::test]
async fn ws_2_backend_101_a_client_must_refuse_is_502() {
    type Edit = fn(&mut tungstenite::handshake::server::Response);
    let edits: [(&str, Edit); 3] = [
        ("no Upgrade", |resp| {
            resp.headers_mut().remove("upgrade");
        }),
        ("no Connection", |resp| {
            resp.headers_mut().remove("connection");
        }),
        ("an extension", |resp| {
            resp.headers_mut().insert(
                "sec-websocket-extensions",
                "permessage-deflate".parse().unwrap(),
            );
        }),
    ];
    for (what, edit) in edits {
        let backend = WsBackend::builder(Script::Echo)
            .answer(move |_, resp| edit(resp))
            .start()
            .await;
        let proxy = proxy_to(&backend.ws_url()).await;
        let (status, headers, body) =
            exchange(proxy.addr, upgrade("/").body(Empty::new()).unwrap()).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{what}");
        assert_eq!(body, "Bad Gateway", "{what}");
        assert!(!headers.contains_key("upgrade"), "{what}");
    }
}

// WS-1 (tokens are case-insensitive, `Connection` may list others) and WS-10 (an `http://` route
// carries WebSockets): the route serves plain HTTP at a path, and an upgrade request to that same
// path is proxied as a WebSocket, not as an HTTP request stripped of its `Upgrade`.
#[tokio::test]
async fn ws_1_upgrade_to_a_plain_http_route_is_a_websocket() {
    let backend = Backend::start(
        Speaks::Http1,
        |mut req: Request<hyper::body::Incoming>| async move {
            let key = req.headers().get("sec-websocket-key").cloned();
            let Some(key) = key else {
                return Response::new(full(format!("plain http at {}", req.uri())));
            };
            let on_upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let Ok(upgraded) = on_upgrade.await else {
                    return;
                };
                let mut ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_text() && ws.send(Message::text(format!("hyper: {m}"))).await.is_err() {
                        break;
                    }
                }
            });
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-accept", derive_accept_key(key.as_bytes()))
                .body(full(""))
                .unwrap()
        },
    )
    .await;
    let proxy = proxy_to(&backend.url()).await;

    let (status, _, body) = support::get(&proxy.url("/page")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "plain http at /page");

    let mut req = format!("ws://{}/page", proxy.addr)
        .into_client_request()
        .unwrap();
    let h = req.headers_mut();
    h.insert("connection", "keep-alive, Upgrade".parse().unwrap());
    h.insert("upgrade", "WebSocket".parse().unwrap());
    let (mut ws, resp) = connect_request(req).await;
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    send(&mut ws, text("hello")).await;
    expect(&mut ws, text("hyper: hello")).await;
    send(&mut ws, close(1000, "")).await;
    expect_close(ws, 1000, "").await;
}

// WS-3: the backend's handshake request carries the path rewrite and the query, the header
// policy's X-Forwarded-*, the client's cookies, authorization and origin, and a key of the proxy's
// own; hop-by-hop headers and the client's extension offer are not forwarded. WS-4 (the original's
// "offered subprotocols reach the backend unchanged").
#[tokio::test]
async fn ws_3_backend_handshake_carries_the_policy() {
    let mut backend = WsBackend::builder(Script::Echo)
        .answer(|_, resp| {
            resp.headers_mut()
                .insert("sec-websocket-protocol", "chat.v2".parse().unwrap());
        })
        .start()
        .await;
    let proxy = Proxy::start(
        route(&format!("{}/v1", backend.ws_url()))
            .strip_path("/api")
            .build()
            .unwrap(),
    )
    .await;
    let mut req = format!("ws://{}/api/rooms/7?user=ann&x=%2F%20", proxy.addr)
        .into_client_request()
        .unwrap();
    let client_key = req.headers()["sec-websocket-key"].clone();
    let h = req.headers_mut();
    h.insert("connection", "Upgrade, x-hop".parse().unwrap());
    h.insert("x-hop", "secret".parse().unwrap());
    h.append("cookie", "session=abc; theme=dark".parse().unwrap());
    h.insert("authorization", "Bearer t0k3n".parse().unwrap());
    h.insert("origin", "https://app.example".parse().unwrap());
    h.insert("x-forwarded-for", "10.0.0.1".parse().unwrap());
    h.insert(
        "sec-websocket-protocol",
        "chat.v1, chat.v2".parse().unwrap(),
    );
    h.insert(
        "sec-websocket-extensions",
        "permessage-deflate; client_max_window_bits"
            .parse()
            .unwrap(),
    );
    let (mut ws, resp) = connect_request(req).await;
    assert_eq!(resp.headers()["sec-websocket-protocol"], "chat.v2");

    let seen = backend.handshake().await;
    assert_eq!(seen.uri, "/v1/rooms/7?user=ann&x=%2F%20");
    let h = &seen.headers;
    assert_eq!(h["host"], backend.addr.to_string().as_str());
    assert_eq!(h["cookie"], "session=abc; theme=dark");
    assert_eq!(h["authorization"], "Bearer t0k3n");
    assert_eq!(h["origin"], "https://app.example");
    assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], proxy.addr.to_string().as_str());
    assert_eq!(h["sec-websocket-protocol"], "chat.v1, chat.v2");
    assert_eq!(h["sec-websocket-version"], "13");
    assert_eq!(h["upgrade"], "websocket");
    assert!(
        !h.contains_key("x-hop"),
        "a Connection-nominated header was forwarded"
    );
    assert!(
        !h.contains_key("sec-websocket-extensions"),
        "compression is never negotiated"
    );
    let key = &h["sec-websocket-key"];
    assert_ne!(key, client_key, "the client's key was forwarded");
    assert_eq!(key.len(), 24);

    send(&mut ws, text("through")).await;
    expect(&mut ws, text("through")).await;
}

// WS-4: the backend's choice among the client's offer reaches the client; a choice the client did
// not offer → 502.
#[tokio::test]
async fn ws_4_subprotocol_chosen_by_the_backend() {
    let backend = WsBackend::builder(Script::Echo)
        .answer(|req, resp| {
            // Picks the last protocol offered.
            let offer = req.headers()["sec-websocket-protocol"].to_str().unwrap();
            let last = offer.rsplit(',').next().unwrap().trim().to_owned();
            resp.headers_mut()
                .insert("sec-websocket-protocol", last.parse().unwrap());
        })
        .start()
        .await;
    let proxy = proxy_to(&backend.ws_url()).await;
    let mut req = format!("ws://{}/", proxy.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", "mqtt, wamp".parse().unwrap());
    let (mut ws, resp) = connect_request(req).await;
    let chosen: Vec<_> = resp
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .collect();
    assert_eq!(chosen, ["wamp"]);
    send(&mut ws, text("hi")).await;
    expect(&mut ws, text("hi")).await;

    // A backend that picks a protocol the client never offered.
    let rogue = WsBackend::builder(Script::Echo)
        .answer(|_, resp| {
            resp.headers_mut()
                .insert("sec-websocket-protocol", "graphql-ws".parse().unwrap());
        })
        .start()
        .await;
    let proxy = proxy_to(&rogue.ws_url()).await;
    let req = upgrade("/").header("sec-websocket-protocol", "mqtt");
    let (status, headers, body) = exchange(proxy.addr, req.body(Empty::new()).unwrap()).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body, "Bad Gateway");
    assert!(!headers.contains_key("sec-websocket-protocol"));
}

// WS-2, HDR-6: the backend's 101 headers (cookies in order, its own) reach the client's 101.
#[tokio::test]
async fn ws_2_set_cookie_from_the_backend_101_reaches_the_client() {
    let backend = WsBackend::builder(Script::Echo)
        .answer(|_, resp| {
            let h = resp.headers_mut();
            h.append("set-cookie", "sid=1; HttpOnly".parse().unwrap());
            h.append("set-cookie", "pref=2".parse().unwrap());
            h.insert("x-backend", "ws-1".parse().unwrap());
        })
        .start()
        .await;
    let proxy = proxy_to(&backend.ws_url()).await;
    let (status, headers, _) = exchange(proxy.addr, upgrade("/").body(Empty::new()).unwrap()).await;
    assert_eq!(status, StatusCode::SWITCHING_PROTOCOLS);
    let cookies: Vec<_> = headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["sid=1; HttpOnly", "pref=2"]);
    assert_eq!(headers["x-backend"], "ws-1");
    // The accept key is computed for the client's key, not copied from the backend's answer.
    assert_eq!(
        headers["sec-websocket-accept"],
        derive_accept_key(CLIENT_KEY.as_bytes()).as_str()
    );
    assert_eq!(headers["upgrade"], "websocket");
}

// HDR-7: a backend 101 whose header block is over max_response_header_bytes → 502, not upgraded.
#[tokio::test]
async fn hdr_7_oversized_101_head_is_502() {
    let backend = WsBackend::builder(Script::Echo)
        .answer(|_, resp| {
            let big = "x".repeat(2_000);
            resp.headers_mut().insert("x-big", big.parse().unwrap());
        })
        .start()
        .await;
    let proxy = Proxy::start(
        route(&backend.ws_url())
            .max_response_header_bytes(1_024)
            .build()
            .unwrap(),
    )
    .await;
    let (status, headers, body) =
        exchange(proxy.addr, upgrade("/").body(Empty::new()).unwrap()).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body, "Bad Gateway");
    assert!(!headers.contains_key("x-big"));
}

// WS-9: a message the backend writes in the same packet as its 101 reaches the client first.
#[tokio::test]
async fn ws_9_message_sent_right_after_the_101_is_not_lost() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _backend = AbortOnDrop(tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            assert_eq!(tcp.read(&mut byte).await.unwrap(), 1);
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let key = head
            .lines()
            .find_map(|l| l.strip_prefix("sec-websocket-key: "))
            .expect("a key");
        // The 101 and an unmasked text frame "welcome" in one write.
        let mut out = format!(
            "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\
             sec-websocket-accept: {}\r\n\r\n",
            derive_accept_key(key.as_bytes())
        )
        .into_bytes();
        out.extend_from_slice(&[0x81, 7]);
        out.extend_from_slice(b"welcome");
        tcp.write_all(&out).await.unwrap();
        let mut ws = WebSocketStream::from_raw_socket(tcp, Role::Server, None).await;
        while let Some(Ok(m)) = ws.next().await {
            if m.is_text() && ws.send(m).await.is_err() {
                break;
            }
        }
    }));
    let proxy = proxy_to(&format!("ws://{addr}")).await;
    let mut ws = connect(&format!("ws://{}/", proxy.addr)).await;
    expect(&mut ws, text("welcome")).await;
    send(&mut ws, text("and then")).await;
    expect(&mut ws, text("and then")).await;
}

// WS-10: a `wss://` backend whose certificate a test CA signed (`ca_file`), and the same backend
// as `https://`; without the CA the TLS failure is a 502.
#[tokio::test]
async fn ws_10_wss_and_https_backends_with_ca_file() {
    let ca = TestCa::new();
    let ca_file = TempFile::new(&ca.ca_pem);
    let mut backend = WsBackend::builder(Script::Echo)
        .tls(ca.server.clone())
        .start()
        .await;
    for scheme in ["wss", "https"] {
        let url = format!("{scheme}://127.0.0.1:{}/secure", backend.addr.port());
        let proxy = Proxy::start(route(&url).ca_file(&ca_file.0).build().unwrap()).await;
        let mut ws = connect(&format!("ws://{}/room", proxy.addr)).await;
        assert_eq!(backend.handshake().await.uri, "/secure/room", "{scheme}");
        send(&mut ws, text(&format!("over {scheme}"))).await;
        expect(&mut ws, text(&format!("over {scheme}"))).await;
        send(&mut ws, Message::binary(vec![1u8, 2, 3])).await;
        expect(&mut ws, Message::binary(vec![1u8, 2, 3])).await;
        send(&mut ws, close(1000, "done")).await;
        expect_close(ws, 1000, "done").await;
    }

    // ERR-1: the same backend without its CA: certificate unknown → 502.
    let url = format!("wss://127.0.0.1:{}", backend.addr.port());
    let proxy = proxy_to(&url).await;
    let (status, _, body) = exchange(proxy.addr, upgrade("/").body(Empty::new()).unwrap()).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body, "Bad Gateway");
}

// ---------------------------------------------------------------------------------------------
// Relay (WS-5, WS-6, WS-7, WS-8, LIM-6).
// ---------------------------------------------------------------------------------------------

// WS-5 (the original's "bidirectional text echo"): text both ways, and the backend reads exactly
// what the client sent.
#[tokio::test]
async fn ws_5_text_echo() {
    let mut backend = WsBackend::echo().await;
    let proxy = proxy_to(&backend.ws_url()).await;
    let mut ws = connect(&format!("ws://{}/echo", proxy.addr)).await;
    for message in ["hello", "héllo wörld ✓", "{\"json\":true}"] {
        send(&mut ws, text(message)).await;
        expect(&mut ws, text(message)).await;
        backend.expect(text(message)).await;
    }
    send(&mut ws, close(1000, "")).await;
    expect_close(ws, 1000, "").await;
    backend.expect_close(1000, "").await;
}

// WS-5 (the original's "binary echo").
#[tokio::test]
async fn ws_5_binary_echo() {
    let backend = WsBackend::echo().await;
    let proxy = proxy_to(&backend.ws_url()).await;
    let mut ws = connect(&format!("ws://{}/", proxy.addr)).await;
    let payload: Vec<u8> = (0..=255u8).chain([0, 0xff, 0xfe]).collect();
    send(&mut ws, Message::binary(payload.clone())).await;
    expect(&mut ws, Message::binary(payload)).await;
    send(&mut ws, Message::binary(Vec::new())).await;
    expect(&mut ws, Message::binary(Vec::new())).await;
}

// WS-5 (the original's "empty text").
#[tokio::test]
async fn ws_5_empty_text() {
    let mut backend = WsBackend::echo().await;
    let proxy = proxy_to(&backend.ws_url()).await;
    let mut ws = connect(&format!("ws://{}/", proxy.addr)).await;
    send(&mut ws, text("")).await;
    expect(&mut ws, text("")).await;
    backend.expect(text("")).await;
}

// WS-5: a fragmented message is relayed (whole), in order with the others.
#[tokio::test]
async fn ws_5_fragmented_message() {
    let mut backend = WsBackend::echo().await;
    let proxy = proxy_to(&backend.ws_url()).await;
    let mut ws = connect(&format!("ws://{}/", proxy.addr)).await;
    let frame = |payload: &[u8], opcode, fin| {
        Message::Frame(Frame::message(payload.to_vec(), OpCode::Data(opcode), fin))
    };
    ws.feed(frame(b"frag", Data::Text, false)).await.unwrap();
    ws.feed(frame(b"men", Data::Continue, false)).await.unwrap();
    ws.feed(frame(b"ted", Data::Continue, true)).await.unwrap();
    ws.feed(text("next")).await.unwrap();
    ws.flush().await.unwrap();
    backend.expect(text("fragmented")).await;
    backend.expect(text("next")).await;
    expect(&mut ws, text("fragmented")).await;
    expect(&mut ws, text("next")).await;
}

// WS-5 (the original's "ping/pong"): the client gets exactly one pong per ping, and the backend
// still sees the ping; the same from the backend's side.
#[tokio::test]
async fn ws_5_ping_pong_exactly_one_pong_per_ping() {
    let mut backend = WsBackend::echo().await;
    let proxy = proxy_to(&backend.ws_url()).await;
    let mut ws = connect(&format!("ws://{}/", proxy.addr)).await;

    // Client → backend.
    send(&mut ws, Message::Ping(Bytes::from_static(b"p1"))).await;
    send(&mut ws, text("after p1")).await;
    expect(&mut ws, Message::Pong(Bytes::from_static(b"p1"))).await;
    expect(&mut ws, text("after p1")).await;
    backend
        .expect(Message::Ping(Bytes::from_static(b"p1")))
        .await;
    backend.expect(text("after p1")).await;

    // Backend → client: the client sees the ping (tungstenite answers it), the backend exactly one
    // pong.
    send(&mut ws, text("ping p2")).await;
    expect(&mut ws, Message::Ping(Bytes::from_static(b"p2"))).await;
    backend.expect(text("ping p2")).await;
    backend
        .expect(Message::Pong(Bytes::from_static(b"p2")))
        .await;
    send(&mut ws, text("after p2")).await;
    backend.expect(text("after p2")).await;
    expect(&mut ws, text("after p2")).await;

    // No second pong anywhere: the next thing either side reads is the close.
    send(&mut ws, close(1000, "")).await;
    expect_close(ws, 1000, "").await;
    backend.expect_close(1000, "").await;
}

// WS-5 (the original's "two simultaneous connections"): each gets its own echoes only.
#[tokio::test]
async fn ws_5_two_simultaneous_connections() {
    let backend = WsBackend::echo().await;
    let proxy = proxy_to(&backend.ws_url()).await;
    let url = format!("ws://{}/", proxy.addr);
    let mut a = connect(&url).await;
    let mut b = connect(&url).await;
    send(&mut a, text("a1")).await;
    send(&mut b, text("b1")).await;
    send(&mut a, text("a2")).await;
    expect(&mut b, text("b1")).await;
    expect(&mut a, text("a1")).await;
    expect(&mut a, text("a2")).await;
    send(&mut b, close(1000, "b done")).await;
    expect_close(b, 1000, "b done").await;
    // A still works after B closed.
    send(&mut a, text("a3")).await;
    expect(&mut a, text("a3")).await;
}

// WS-5 (the original's "10 000-byte message").
#[tokio::test]
async fn ws_5_ten_thousand_byte_message() {
    let backend = WsBackend::echo().await;
    let proxy = proxy_to(&backend.ws_url()).await;
    let mut ws = connect(&format!("ws://{}/", proxy.addr)).await;
    let big: String = (0..10_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    send(&mut ws, text(&big)).await;
    expect(&mut ws, text(&big)).await;
    let bytes: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    send(&mut ws, Message::binary(bytes.clone())).await;
    expect(&mut ws, Message::binary(bytes)).await;
}

// WS-5 (the original's "ten rapid messages all echoed"): sent back to back, echoed in order.
#[tokio::test]
async fn ws_5_ten_rapid_messages_echoed_in_order() {
    let backend = WsBackend::echo().await;
    let proxy = proxy_to(&backend.ws_url()).await;
    let mut ws = connect(&format!("ws://{}/", proxy.addr)).await;
    for i in 0..10 {
        ws.feed(text(&format!("rapid {i}"))).await.unwrap();
    }
    ws.flush().await.unwrap();
    for i in 0..10 {
        expect(&mut ws, text(&format!("rapid {i}"))).await;
    }
}

// WS-6: a client's close code and reason reach the backend, and the client gets them back.
#[tokio::test]
async fn ws_6_client_close_4001_bye_reaches_the_backend() {
    let mut backend = WsBackend::echo().await;
    let proxy = proxy_to(&backend.ws_url()).await;
    let mut ws = connect(&format!("ws://{}/", proxy.addr)).await;
    send(&mut ws, text("last words")).await;
    expect(&mut ws, text("last words")).await;
    send(&mut ws, close(4001, "bye")).await;
    expect_close(ws, 4001, "bye").await;
    backend.expect(text("last words")).await;
    backend.expect_close(4001, "bye").await;
}

// WS-6: a backend's close code and reason reach the client.
#[tokio::test]
async fn ws_6_backend_close_4001_bye_reaches_the_client() {
    let mut backend = WsBackend::echo().await;
    let proxy = proxy_to(&backend.ws_url()).await;
    let mut ws = connect(&format!("ws://{}/", proxy.addr)).await;
    send(&mut ws, text("close 4001 bye")).await;
    expect_close(ws, 4001, "bye").await;
    backend.expect(text("close 4001 bye")).await;
    // The client's answer to the close, relayed back.
    backend.expect_close(4001, "bye").await;
}

// WS-7: a backend that drops its TCP connection → the client gets 1011.
#[tokio::test]
async fn ws_7_backend_drop_is_1011_to_the_client() {
    let backend = WsBackend::echo().await;
    let proxy = proxy_to(&backend.ws_url()).await;
    let mut ws = connect(&format!("ws://{}/", proxy.addr)).await;
    send(&mut ws, text("drop")).await;
    expect_close(ws, 1011, "backend connection lost").await;
}

// WS-7: a client that drops its TCP connection → the backend gets 1001.
#[tokio::test]
async fn ws_7_client_drop_is_1001_to_the_backend() {
    let mut backend = WsBackend::echo().await;
    let proxy = proxy_to(&backend.ws_url()).await;
    let mut ws = connect(&format!("ws://{}/", proxy.addr)).await;
    send(&mut ws, text("still here")).await;
    expect(&mut ws, text("still here")).await;
    backend.expect(text("still here")).await;
    drop(ws);
    backend.expect_close(1001, "client connection lost").await;
}

// WS-8: a text message that is not UTF-8 (sent as a raw frame, which tungstenite's `Message::Text`
// cannot express) → 1007 to the client, 1001 to the backend, which never sees the message.
#[tokio::test]
async fn ws_8_invalid_utf8_from_the_client_is_1007() {
    let mut backend = WsBackend::echo().await;
    let proxy = proxy_to(&backend.ws_url()).await;
    let mut ws = connect(&format!("ws://{}/", proxy.addr)).await;
    let invalid = Frame::message(vec![b'o', b'k', 0xff, 0xfe], OpCode::Data(Data::Text), true);
    send(&mut ws, Message::Frame(invalid)).await;
    expect_close(ws, 1007, "invalid UTF-8").await;
    backend.expect_close(1001, "invalid UTF-8").await;
}

/// Opens a raw TCP connection to the proxy, writes an upgrade request for `/` followed by `after`
/// in the same write, and reads the answer's head. Returns the stream and the bytes read past the
/// head.
async fn raw_upgrade(proxy: SocketAddr, after: &[u8]) -> (TcpStream, Vec<u8>) {
    let mut tcp = TcpStream::connect(proxy).await.unwrap();
    let mut out = format!(
        "GET / HTTP/1.1\r\nhost: {proxy}\r\nconnection: upgrade\r\nupgrade: websocket\r\n\
         sec-websocket-key: {CLIENT_KEY}\r\nsec-websocket-version: 13\r\n\r\n"
    )
    .into_bytes();
    out.extend_from_slice(after);
    tcp.write_all(&out).await.unwrap();
    let mut read = Vec::new();
    let head_end = loop {
        if let Some(i) = read.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
            .await
            .expect("the answer in time")
            .unwrap();
        assert!(n > 0, "the proxy closed before answering");
        read.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&read[..head_end]).into_owned();
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    (tcp, read[head_end..].to_vec())
}

/// A client text frame, masked as RFC 6455 §5.3 requires.
fn masked_text(payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

// WS-9 from the client's side: a frame the client sends in the same packet as its upgrade request,
// before the 101, is relayed once the backend answered.
#[tokio::test]
async fn ws_9_frame_sent_with_the_upgrade_request_is_not_lost() {
    let mut backend = WsBackend::echo().await;
    let proxy = proxy_to(&backend.ws_url()).await;
    let (tcp, rest) = raw_upgrade(proxy.addr, &masked_text(b"eager")).await;
    let mut ws = WebSocketStream::from_partially_read(tcp, rest, Role::Client, None).await;
    expect(&mut ws, text("eager")).await;
    backend.handshake().await;
    backend.expect(text("eager")).await;
}

// ERR-5: an RFC 6455 violation by the client (an unmasked frame) → 1002 to the client, 1001 to
// the backend, which never sees the frame.
#[tokio::test]
async fn err_5_unmasked_client_frame_is_1002() {
    let mut backend = WsBackend::echo().await;
    let proxy = proxy_to(&backend.ws_url()).await;
    let (tcp, rest) = raw_upgrade(proxy.addr, b"").await;
    // Speaking as a server: frames go out unmasked.
    let config = tungstenite::protocol::WebSocketConfig::default().accept_unmasked_frames(true);
    let mut ws = WebSocketStream::from_partially_read(tcp, rest, Role::Server, Some(config)).await;
    send(&mut ws, text("unmasked")).await;
    expect_close(ws, 1002, "protocol error").await;
    backend.handshake().await;
    backend.expect_close(1001, "protocol error").await;
}

// LIM-6 (the original's "a message over the limit closes the connection"): a message at the limit
// passes; one byte over → 1009 to its sender, 1001 to the other side; both directions.
#[tokio::test]
async fn lim_6_message_over_the_limit_is_1009_to_its_sender() {
    let mut backend = WsBackend::echo().await;
    let limited = |url: &str| route(url).max_websocket_frame_size(1024).build().unwrap();
    let proxy = Proxy::start(limited(&backend.ws_url())).await;

    let mut ws = connect(&format!("ws://{}/", proxy.addr)).await;
    send(&mut ws, Message::binary(vec![1u8; 1024])).await;
    expect(&mut ws, Message::binary(vec![1u8; 1024])).await;
    backend.expect(Message::binary(vec![1u8; 1024])).await;
    send(&mut ws, Message::binary(vec![2u8; 1025])).await;
    expect_close(ws, 1009, "message too big").await;
    backend.expect_close(1001, "message too big").await;

    // The backend sends too much: it gets 1009, the client 1001.
    let mut ws = connect(&format!("ws://{}/", proxy.addr)).await;
    send(&mut ws, text("big 5000")).await;
    expect_close(ws, 1001, "message too big").await;
    backend.expect(text("big 5000")).await;
    backend.expect_close(1009, "message too big").await;
}

// ---------------------------------------------------------------------------------------------
// Timeouts, shutdown, adapters, scale and memory (TMO-7, WS-11).
// ---------------------------------------------------------------------------------------------

// TMO-7: no frame either way for websocket_idle_timeout → 1001 to both sides, and not before.
#[tokio::test(start_paused = true)]
async fn tmo_7_idle_connection_is_closed_1001_both_sides() {
    let mut backend = WsBackend::echo().await;
    let proxy = Proxy::start(
        route(&backend.ws_url())
            .websocket_backend_upgrade_timeout(LONG)
            .websocket_idle_timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
    )
    .await;
    let mut ws = connect(&format!("ws://{}/", proxy.addr)).await;
    // Traffic at 6 s keeps it open past the first 10 s.
    tokio::time::sleep(Duration::from_secs(6)).await;
    send(&mut ws, text("tick")).await;
    expect(&mut ws, text("tick")).await;
    backend.expect(text("tick")).await;
    let last = tokio::time::Instant::now();
    assert_eq!(next(&mut ws).await, Some(close(1001, "idle timeout")));
    let idle = last.elapsed();
    assert!(
        idle >= Duration::from_secs(10) && idle < Duration::from_secs(11),
        "closed after {idle:?} idle"
    );
    assert_eq!(next(&mut ws).await, None, "closing handshake completes");
    backend.expect_close(1001, "idle timeout").await;
}

// Shutdown: ReverseProxy::websocket_shutdown().trigger() closes every bridged connection with 1001
// on both sides; bridges started later close at once.
#[tokio::test]
async fn shutdown_trigger_closes_both_sides_with_1001() {
    let mut backend = WsBackend::echo().await;
    let proxy = proxy_to(&backend.ws_url()).await;
    let url = format!("ws://{}/", proxy.addr);
    let mut a = connect(&url).await;
    let mut b = connect(&url).await;
    for ws in [&mut a, &mut b] {
        send(ws, text("up")).await;
        expect(ws, text("up")).await;
    }
    let shutdown = proxy.proxy.websocket_shutdown().clone();
    assert_eq!(shutdown.active(), 2);
    shutdown.trigger();
    expect_close(a, 1001, "server shutting down").await;
    expect_close(b, 1001, "server shutting down").await;
    let mut closes = 0;
    while closes < 2 {
        match backend.event().await {
            Event::Received(text_up) if text_up == text("up") => {}
            Event::Received(m) => {
                assert_eq!(m, close(1001, "server shutting down"));
                closes += 1;
            }
            Event::Ended => {}
        }
    }
    tokio::time::timeout(WAIT, shutdown.wait_idle())
        .await
        .expect("every bridge ends");

    // A new upgrade while draining is refused before the backend is contacted.
    let (status, headers, body) =
        exchange(proxy.addr, upgrade("/").body(Empty::new()).unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "Service Unavailable: shutting down");
    assert!(!headers.contains_key("upgrade"));
    for _ in 0..2 {
        backend.handshake().await;
    }
    assert!(
        backend.handshakes.try_recv().is_err(),
        "the backend was contacted"
    );
}

// WS-1 … WS-6 through axum: the proxy mounted with `nest_service("/socket", ...)` and served with
// `axum::serve` (hyper upgrades, connect info for X-Forwarded-For).
#[tokio::test]
async fn axum_nest_service_carries_a_websocket_echo() {
    let mut backend = WsBackend::echo().await;
    let socket = reverseit_axum::Proxy::new(
        Pool::new(PoolConfig::default()),
        route(&backend.ws_url()).build().unwrap(),
    )
    .unwrap();
    let app = axum::Router::new().nest_service("/socket", socket);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _server = AbortOnDrop(tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<reverseit_axum::ClientAddr>(),
        )
        .await
        .unwrap();
    }));

    let mut ws = connect(&format!("ws://{addr}/socket/live?v=2")).await;
    let seen = backend.handshake().await;
    assert_eq!(seen.uri, "/live?v=2");
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(
        seen.headers["x-forwarded-port"],
        addr.port().to_string().as_str()
    );
    send(&mut ws, text("via axum")).await;
    expect(&mut ws, text("via axum")).await;
    send(&mut ws, Message::Ping(Bytes::from_static(b"k"))).await;
    expect(&mut ws, Message::Pong(Bytes::from_static(b"k"))).await;
    send(&mut ws, close(4001, "bye")).await;
    expect_close(ws, 4001, "bye").await;
    backend.expect(text("via axum")).await;
    backend
        .expect(Message::Ping(Bytes::from_static(b"k")))
        .await;
    backend.expect_close(4001, "bye").await;
}

// WS-5 at scale: 1 000 concurrent connections through one proxy, three messages each, every one
// echoed to its own connection in order, every bridge ended after the closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_5_thousand_concurrent_connections() {
    const CONNECTIONS: usize = 1_000;
    const MESSAGES: usize = 3;
    let mut backend = WsBackend::echo().await;
    let proxy = proxy_to(&backend.ws_url()).await;
    let url = format!("ws://{}/", proxy.addr);
    // Every connection opens before any sends, so all are live at once.
    let opened = Arc::new(tokio::sync::Barrier::new(CONNECTIONS));
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..CONNECTIONS {
        let (url, opened) = (url.clone(), opened.clone());
        clients.spawn(async move {
            let mut ws = connect(&url).await;
            opened.wait().await;
            for m in 0..MESSAGES {
                ws.feed(text(&format!("{c}:{m}"))).await.unwrap();
            }
            ws.flush().await.unwrap();
            for m in 0..MESSAGES {
                expect(&mut ws, text(&format!("{c}:{m}"))).await;
            }
            send(&mut ws, close(1000, "")).await;
            expect_close(ws, 1000, "").await;
            MESSAGES
        });
    }
    let echoed = tokio::time::timeout(Duration::from_secs(120), async {
        let mut echoed = 0;
        while let Some(done) = clients.join_next().await {
            echoed += done.expect("a client task");
        }
        echoed
    })
    .await
    .expect("1 000 connections done in time");
    assert_eq!(echoed, CONNECTIONS * MESSAGES);

    // The backend read every message and every close.
    let (mut texts, mut closes, mut ended) = (0, 0, 0);
    while ended < CONNECTIONS {
        match backend.event().await {
            Event::Received(Message::Text(_)) => texts += 1,
            Event::Received(m) => {
                assert_eq!(m, close(1000, ""));
                closes += 1;
            }
            Event::Ended => ended += 1,
        }
    }
    assert_eq!((texts, closes), (CONNECTIONS * MESSAGES, CONNECTIONS));
    let shutdown = proxy.proxy.websocket_shutdown();
    tokio::time::timeout(WAIT, shutdown.wait_idle())
        .await
        .expect("every bridge ends");
}

// WS-11: a backend floods 64 KiB messages toward a client that does not read. The backend stalls
// after a bounded number of bytes (socket buffers plus the proxy's bounded queue), nothing is closed,
// and once the client reads, every message arrives, in order.
#[tokio::test]
async fn ws_11_non_reading_client_stalls_the_backend() {
    const SIZE: usize = 64 * 1024;
    const COUNT: u64 = 512; // 32 MiB in all
    const BOUND: u64 = 16 * 1024 * 1024;
    let sent = Arc::new(AtomicU64::new(0));
    // Small socket buffers at both ends, so what remains is the proxy's share (its own bounded
    // queue and its sockets' buffers).
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_send_buffer_size(SIZE as u32).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1024).unwrap();
    let backend = WsBackend::builder(Script::Flood {
        size: SIZE,
        count: COUNT,
        sent: sent.clone(),
    })
    .listener(listener)
    .start()
    .await;
    let proxy = proxy_to(&backend.ws_url()).await;

    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(SIZE as u32).unwrap();
    let tcp = socket.connect(proxy.addr).await.unwrap();
    let url = format!("ws://{}/", proxy.addr);
    let (mut ws, _) = tokio_tungstenite::client_async(url, tcp).await.unwrap();

    // Wait for the backend to stall: no progress for 500 ms, before it ever passes the bound.
    let stalled_at = tokio::time::timeout(WAIT, async {
        let mut last = sent.load(Ordering::SeqCst);
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = sent.load(Ordering::SeqCst);
            assert!(
                now <= BOUND,
                "the backend sent {now} bytes to a client that reads nothing"
            );
            if now == last && now > 0 {
                return now;
            }
            last = now;
        }
    })
    .await
    .expect("the backend stalls");
    assert!(stalled_at < COUNT * SIZE as u64);
    eprintln!("backend stalled after {} KiB", stalled_at / 1024);

    // Reading resumes the flow: every message, in order, and the backend finishes.
    for i in 0..COUNT {
        match next(&mut ws).await {
            Some(Message::Binary(b)) => {
                assert_eq!(b.len(), SIZE);
                assert_eq!(u64::from_be_bytes(b[..8].try_into().unwrap()), i);
            }
            other => panic!("message {i}: {other:?}"),
        }
    }
    assert_eq!(sent.load(Ordering::SeqCst), COUNT * SIZE as u64);
    send(&mut ws, close(1000, "")).await;
    expect_close(ws, 1000, "").await;
}

// WS-11: a client floods 64 KiB messages toward a backend that does not read: the client stalls
// after a bounded number of bytes, and once the backend reads, every message arrives in order.
#[tokio::test]
async fn ws_11_non_reading_backend_stalls_the_client() {
    const SIZE: usize = 64 * 1024;
    const COUNT: u64 = 512; // 32 MiB in all
    const BOUND: u64 = 16 * 1024 * 1024;
    let go = Arc::new(tokio::sync::Notify::new());
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(SIZE as u32).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1024).unwrap();
    let mut backend = WsBackend::builder(Script::ReadAfter(go.clone()))
        .listener(listener)
        .start()
        .await;
    let proxy = proxy_to(&backend.ws_url()).await;

    let socket = TcpSocket::new_v4().unwrap();
    socket.set_send_buffer_size(SIZE as u32).unwrap();
    let tcp = socket.connect(proxy.addr).await.unwrap();
    let url = format!("ws://{}/", proxy.addr);
    let (ws, _) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
    let (mut tx, mut rx) = ws.split();
    let sent = Arc::new(AtomicU64::new(0));
    let flood = {
        let sent = sent.clone();
        tokio::spawn(async move {
            for i in 0..COUNT {
                let mut payload = vec![0u8; SIZE];
                payload[..8].copy_from_slice(&i.to_be_bytes());
                tx.send(Message::binary(payload)).await.unwrap();
                sent.fetch_add(SIZE as u64, Ordering::SeqCst);
            }
            tx
        })
    };

    let stalled_at = tokio::time::timeout(WAIT, async {
        let mut last = sent.load(Ordering::SeqCst);
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = sent.load(Ordering::SeqCst);
            assert!(
                now <= BOUND,
                "the client sent {now} bytes to a backend that reads nothing"
            );
            if now == last && now > 0 {
                return now;
            }
            last = now;
        }
    })
    .await
    .expect("the client stalls");
    assert!(stalled_at < COUNT * SIZE as u64);
    eprintln!("client stalled after {} KiB", stalled_at / 1024);

    go.notify_one();
    // The backend echoes what it reads: the client reads the echoes meanwhile.
    let echoes = tokio::spawn(async move {
        for i in 0..COUNT {
            match tokio::time::timeout(WAIT, rx.next()).await.unwrap() {
                Some(Ok(Message::Binary(b))) => {
                    assert_eq!(u64::from_be_bytes(b[..8].try_into().unwrap()), i)
                }
                other => panic!("echo {i}: {other:?}"),
            }
        }
        rx
    });
    for i in 0..COUNT {
        match backend.event().await {
            Event::Received(Message::Binary(b)) => {
                assert_eq!(b.len(), SIZE);
                assert_eq!(u64::from_be_bytes(b[..8].try_into().unwrap()), i);
            }
            other => panic!("message {i}: {other:?}"),
        }
    }
    let mut tx = tokio::time::timeout(WAIT, flood).await.unwrap().unwrap();
    let mut rx = tokio::time::timeout(WAIT, echoes).await.unwrap().unwrap();
    assert_eq!(sent.load(Ordering::SeqCst), COUNT * SIZE as u64);
    tx.send(close(1000, "")).await.unwrap();
    assert_eq!(
        tokio::time::timeout(WAIT, rx.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap(),
        close(1000, "")
    );
    backend.expect_close(1000, "").await;
}

// ERR-4: a client that goes away while the backend handshake runs cancels it: the backend
// connection is closed, not held until websocket_backend_upgrade_timeout.
#[tokio::test]
async fn err_4_client_gone_during_the_backend_handshake_cancels_it() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (got_tx, mut got) = mpsc::unbounded_channel();
    let (eof_tx, mut eof) = mpsc::unbounded_channel();
    let _silent = AbortOnDrop(tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let (got_tx, eof_tx) = (got_tx.clone(), eof_tx.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = tcp.read(&mut buf).await;
                let _ = got_tx.send(());
                // Never answers; reports when the proxy closes the connection.
                let _ = tcp.read(&mut buf).await;
                let _ = eof_tx.send(());
            });
        }
    }));
    let proxy = Proxy::start(
        route(&format!("ws://{addr}"))
            .websocket_backend_upgrade_timeout(LONG)
            .build()
            .unwrap(),
    )
    .await;
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(
        format!(
            "GET / HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\
             sec-websocket-key: {CLIENT_KEY}\r\nsec-websocket-version: 13\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    tokio::time::timeout(WAIT, got.recv())
        .await
        .unwrap()
        .unwrap();
    drop(tcp);
    tokio::time::timeout(Duration::from_secs(10), eof.recv())
        .await
        .expect("the backend handshake is cancelled when the client leaves")
        .unwrap();
}
