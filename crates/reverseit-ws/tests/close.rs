//! Closing: WS-6, WS-7, WS-8, LIM-6, TMO-7 and shutdown.

mod common;

use std::time::Duration;

use common::*;
use reverseit_core::ErrorKind;
use reverseit_ws::{BridgeConfig, ClosedBy, Shutdown, Side};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::Data;

// WS-6: the client's code and reason reach the backend after the messages before them; both
// closing handshakes complete.
#[tokio::test]
async fn ws_6_client_close_code_and_reason_reach_the_backend() {
    let mut h = start(BridgeConfig::default()).await;
    send(&mut h.client, text("last words")).await;
    send(&mut h.client, close_frame(4001, "bye")).await;
    expect(&mut h.backend, text("last words")).await;
    let backend = tokio::spawn(expect_close(h.backend, 4001, Some("bye")));
    // The client's own frame comes back as the answer (tungstenite's echo), then the stream ends.
    expect_close(h.client, 4001, Some("bye")).await;
    backend.await.unwrap();
    let out = outcome(h.bridge).await;
    assert_eq!(out.closed_by, ClosedBy::Client);
    assert_eq!(
        (out.close_code_to_client, out.close_code_to_backend),
        (Some(4001), Some(4001))
    );
    assert!(out.error.is_none() && out.clean, "{out:?}");
}

// WS-6: the reverse.
#[tokio::test]
async fn ws_6_backend_close_code_and_reason_reach_the_client() {
    let mut h = start(BridgeConfig::default()).await;
    send(&mut h.backend, text("last words")).await;
    send(&mut h.backend, close_frame(4002, "later")).await;
    expect(&mut h.client, text("last words")).await;
    let client = tokio::spawn(expect_close(h.client, 4002, Some("later")));
    expect_close(h.backend, 4002, Some("later")).await;
    client.await.unwrap();
    let out = outcome(h.bridge).await;
    assert_eq!(out.closed_by, ClosedBy::Backend);
    assert_eq!(
        (out.close_code_to_client, out.close_code_to_backend),
        (Some(4002), Some(4002))
    );
    assert!(out.clean, "{out:?}");
}

// WS-6: a close frame without a code is forwarded as such (reported as 1005).
#[tokio::test]
async fn ws_6_codeless_close_is_forwarded() {
    let mut h = start(BridgeConfig::default()).await;
    send(&mut h.client, Message::Close(None)).await;
    assert_eq!(next(&mut h.backend).await, Some(Message::Close(None)));
    assert_eq!(next(&mut h.backend).await, None);
    drop(h.backend);
    assert_eq!(next(&mut h.client).await, Some(Message::Close(None)));
    assert_eq!(next(&mut h.client).await, None);
    let out = outcome(h.bridge).await;
    assert_eq!(out.close_code_to_backend, Some(1005));
    assert!(out.clean);
}

// WS-6: both sides close at the same time; both handshakes still complete.
#[tokio::test]
async fn ws_6_simultaneous_closes() {
    let mut h = start(BridgeConfig::default()).await;
    send(&mut h.client, close_frame(4001, "c")).await;
    send(&mut h.backend, close_frame(4002, "b")).await;
    let c = tokio::spawn(async move { while next(&mut h.client).await.is_some() {} });
    let b = tokio::spawn(async move { while next(&mut h.backend).await.is_some() {} });
    c.await.unwrap();
    b.await.unwrap();
    assert!(outcome(h.bridge).await.clean);
}

// WS-7: a backend that drops its connection → the client gets 1011.
#[tokio::test]
async fn ws_7_backend_drop_closes_the_client_with_1011() {
    let h = start(BridgeConfig::default()).await;
    drop(h.backend);
    expect_close(h.client, 1011, None).await;
    let out = outcome(h.bridge).await;
    assert_eq!(out.closed_by, ClosedBy::Backend);
    assert_eq!(out.error.unwrap().kind(), ErrorKind::BackendIo);
    assert_eq!(
        (out.close_code_to_client, out.close_code_to_backend),
        (Some(1011), None)
    );
}

// WS-7: a client that drops → the backend gets 1001.
#[tokio::test]
async fn ws_7_client_drop_closes_the_backend_with_1001() {
    let h = start(BridgeConfig::default()).await;
    drop(h.client);
    expect_close(h.backend, 1001, None).await;
    let out = outcome(h.bridge).await;
    assert_eq!(out.closed_by, ClosedBy::Client);
    assert_eq!(out.error.unwrap().kind(), ErrorKind::ClientGone);
    assert_eq!(out.close_code_to_backend, Some(1001));
}

// WS-7: a backend that dies in the middle of a frame is a drop too.
#[tokio::test]
async fn ws_7_backend_dies_mid_frame() {
    use tokio::io::AsyncWriteExt;
    let (client_io, proxy_client_io) = tokio::io::duplex(DUPLEX);
    let (proxy_backend_io, mut backend_io) = tokio::io::duplex(DUPLEX);
    let client = tokio_tungstenite::WebSocketStream::from_raw_socket(
        client_io,
        tokio_tungstenite::tungstenite::protocol::Role::Client,
        None,
    )
    .await;
    let bridge = tokio::spawn(async move {
        let s = Shutdown::new();
        reverseit_ws::bridge(
            proxy_client_io,
            proxy_backend_io,
            &BridgeConfig::default(),
            &s,
        )
        .await
    });
    backend_io.write_all(b"\x81\x05ab").await.unwrap();
    drop(backend_io);
    expect_close(client, 1011, None).await;
    assert_eq!(outcome(bridge).await.closed_by, ClosedBy::Backend);
}

// WS-8: invalid UTF-8 in a client text message → 1007 to the client, 1001 to the backend.
#[tokio::test]
async fn ws_8_invalid_utf8_from_the_client() {
    let mut h = start(BridgeConfig::default()).await;
    send(&mut h.client, raw(b"ok \xff\xfe", Data::Text, true)).await;
    let backend = tokio::spawn(expect_close(h.backend, 1001, None));
    expect_close(h.client, 1007, None).await;
    backend.await.unwrap();
    let out = outcome(h.bridge).await;
    assert_eq!(out.closed_by, ClosedBy::Proxy);
    assert_eq!(out.offender, Some(Side::Client));
    assert_eq!(out.error.unwrap().kind(), ErrorKind::WebSocketInvalidUtf8);
    assert_eq!(out.messages_client_to_backend, 0);
}

// WS-8: also when the invalid sequence is split across fragments.
#[tokio::test]
async fn ws_8_invalid_utf8_in_fragments() {
    let mut h = start(BridgeConfig::default()).await;
    send(&mut h.client, raw(b"caf\xc3", Data::Text, false)).await;
    send(&mut h.client, raw(b"\x28", Data::Continue, true)).await;
    let backend = tokio::spawn(expect_close(h.backend, 1001, None));
    expect_close(h.client, 1007, None).await;
    backend.await.unwrap();
}

// WS-8 with websocket_validate_utf8 = false: tungstenite 0.30 checks text regardless, so the
// result is the same 1007 (documented in the crate docs).
#[tokio::test]
async fn ws_8_validation_off_still_closes_with_1007() {
    let mut h = start(config(route().websocket_validate_utf8(false))).await;
    send(&mut h.client, raw(b"\xff", Data::Text, true)).await;
    let backend = tokio::spawn(expect_close(h.backend, 1001, None));
    expect_close(h.client, 1007, None).await;
    backend.await.unwrap();
}

// A protocol violation (unmasked client frame) → 1002 to the client, 1001 to the backend.
#[tokio::test]
async fn unmasked_client_frame_closes_with_1002() {
    use tokio::io::AsyncWriteExt;
    let (mut client_io, proxy_client_io) = tokio::io::duplex(DUPLEX);
    let (proxy_backend_io, backend_io) = tokio::io::duplex(DUPLEX);
    let backend = tokio_tungstenite::WebSocketStream::from_raw_socket(
        backend_io,
        tokio_tungstenite::tungstenite::protocol::Role::Server,
        None,
    )
    .await;
    let bridge = tokio::spawn(async move {
        let s = Shutdown::new();
        reverseit_ws::bridge(
            proxy_client_io,
            proxy_backend_io,
            &BridgeConfig::default(),
            &s,
        )
        .await
    });
    client_io.write_all(b"\x81\x02hi").await.unwrap();
    expect_close(backend, 1001, None).await;
    // The client gets 1002: an unmasked close frame, code 0x03EA.
    let mut head = [0u8; 4];
    tokio::io::AsyncReadExt::read_exact(&mut client_io, &mut head)
        .await
        .unwrap();
    assert_eq!((head[0], &head[2..]), (0x88, &[0x03, 0xEA][..]));
    drop(client_io);
    let out = outcome(bridge).await;
    assert_eq!(out.error.unwrap().kind(), ErrorKind::WebSocketProtocol);
}

// LIM-6 + original "a message over the limit closes the connection": 1009 to the client, 1001 to the
// backend; messages up to the limit pass.
#[tokio::test]
async fn lim_6_oversized_client_message() {
    let mut h = start(config(route().max_websocket_frame_size(1000))).await;
    send(&mut h.client, binary(vec![1; 1000])).await;
    expect(&mut h.backend, binary(vec![1; 1000])).await;
    send(&mut h.client, binary(vec![2; 1001])).await;
    let backend = tokio::spawn(expect_close(h.backend, 1001, None));
    expect_close(h.client, 1009, Some("message too big")).await;
    backend.await.unwrap();
    let out = outcome(h.bridge).await;
    assert_eq!(out.error.unwrap().kind(), ErrorKind::WebSocketMessageTooBig);
    assert_eq!(out.offender, Some(Side::Client));
    assert_eq!(
        (out.close_code_to_client, out.close_code_to_backend),
        (Some(1009), Some(1001))
    );
    assert!(out.clean);
}

// LIM-6: a fragmented message whose total goes over the limit, each fragment under it.
#[tokio::test]
async fn lim_6_oversized_fragmented_message() {
    let mut h = start(config(route().max_websocket_frame_size(1000))).await;
    send(&mut h.client, raw(&[0; 600], Data::Binary, false)).await;
    send(&mut h.client, raw(&[0; 600], Data::Continue, true)).await;
    let backend = tokio::spawn(expect_close(h.backend, 1001, None));
    expect_close(h.client, 1009, None).await;
    backend.await.unwrap();
}

// LIM-6: the reverse: an oversized backend message → 1009 to the backend, 1001 to the client.
#[tokio::test]
async fn lim_6_oversized_backend_message() {
    let mut h = start(config(route().max_websocket_frame_size(1000))).await;
    send(&mut h.backend, text(&"x".repeat(5000))).await;
    let client = tokio::spawn(expect_close(h.client, 1001, None));
    expect_close(h.backend, 1009, None).await;
    client.await.unwrap();
    let out = outcome(h.bridge).await;
    assert_eq!(out.offender, Some(Side::Backend));
    assert_eq!(
        (out.close_code_to_client, out.close_code_to_backend),
        (Some(1001), Some(1009))
    );
}

// TMO-7: no frame either way for websocket_idle_timeout → 1001 to both, not earlier.
#[tokio::test(start_paused = true)]
async fn tmo_7_idle_timeout_closes_both_with_1001() {
    let idle = Duration::from_secs(10);
    let h = start(config(route().websocket_idle_timeout(idle))).await;
    let started = Instant::now();
    let backend = tokio::spawn(expect_close(h.backend, 1001, Some("idle timeout")));
    expect_close(h.client, 1001, Some("idle timeout")).await;
    assert_eq!(started.elapsed(), idle);
    backend.await.unwrap();
    let out = outcome(h.bridge).await;
    assert_eq!(out.closed_by, ClosedBy::Proxy);
    assert_eq!(out.error.unwrap().kind(), ErrorKind::WebSocketIdle);
}

// TMO-7: frames in either direction restart the idle time.
#[tokio::test(start_paused = true)]
async fn tmo_7_traffic_either_way_keeps_the_session() {
    let idle = Duration::from_secs(10);
    let mut h = start(config(route().websocket_idle_timeout(idle))).await;
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    send(&mut h.client, text("a")).await;
    expect(&mut h.backend, text("a")).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    send(&mut h.backend, Message::Ping("b".into())).await;
    expect(&mut h.client, Message::Ping("b".into())).await;
    // Last frame at 12 s: the close comes at 22 s.
    let backend = tokio::spawn(expect_close(h.backend, 1001, None));
    expect_close(h.client, 1001, None).await;
    assert_eq!(started.elapsed(), Duration::from_secs(22));
    backend.await.unwrap();
}

// TMO-7: a peer that never answers the close frame does not hold the bridge past the close
// deadline.
#[tokio::test(start_paused = true)]
async fn tmo_7_unanswered_close_is_bounded() {
    let idle = Duration::from_secs(10);
    let h = start(config(route().websocket_idle_timeout(idle))).await;
    let started = Instant::now();
    // Neither peer reads: no close answer ever comes.
    let out = outcome(h.bridge).await;
    assert_eq!(started.elapsed(), idle + reverseit_ws::CLOSE_TIMEOUT);
    assert!(!out.clean);
    assert_eq!(out.error.unwrap().kind(), ErrorKind::WebSocketIdle);
    drop((h.client, h.backend));
}

// Shutdown: both sides get 1001, the bridge returns, the count goes back to 0.
#[tokio::test]
async fn shutdown_closes_both_sides_with_1001() {
    let shutdown = Shutdown::new();
    let mut h = start_with(BridgeConfig::default(), shutdown.clone(), DUPLEX).await;
    send(&mut h.client, text("up")).await;
    expect(&mut h.backend, text("up")).await;
    assert_eq!(shutdown.active(), 1);
    shutdown.trigger();
    let backend = tokio::spawn(expect_close(h.backend, 1001, Some("server shutting down")));
    expect_close(h.client, 1001, Some("server shutting down")).await;
    backend.await.unwrap();
    let out = outcome(h.bridge).await;
    assert_eq!(out.error.unwrap().kind(), ErrorKind::Shutdown);
    assert!(out.clean);
    shutdown.wait_idle().await;
    assert_eq!(shutdown.active(), 0);
}

// Shutdown: a bridge started after the trigger closes at once.
#[tokio::test]
async fn shutdown_before_start_closes_at_once() {
    let shutdown = Shutdown::new();
    shutdown.trigger();
    let h = start_with(BridgeConfig::default(), shutdown.clone(), DUPLEX).await;
    let backend = tokio::spawn(expect_close(h.backend, 1001, None));
    expect_close(h.client, 1001, None).await;
    backend.await.unwrap();
    outcome(h.bridge).await;
    assert_eq!(shutdown.active(), 0);
}

// No leaked task: a bridge whose task is aborted still leaves the count.
#[tokio::test]
async fn aborted_bridge_leaves_the_count() {
    let shutdown = Shutdown::new();
    let mut h = start_with(BridgeConfig::default(), shutdown.clone(), DUPLEX).await;
    send(&mut h.client, text("up")).await;
    expect(&mut h.backend, text("up")).await;
    h.bridge.abort();
    shutdown.wait_idle().await;
    assert_eq!(shutdown.active(), 0);
    // Both peers see their connection end.
    assert_eq!(next(&mut h.client).await, None);
    assert_eq!(next(&mut h.backend).await, None);
}

// LIM-6 over real TCP: the client is still sending its oversized message when the proxy answers;
// the proxy reads and discards the rest, so the client sees 1009 rather than a reset.
#[tokio::test]
async fn lim_6_oversized_message_over_tcp_is_answered_with_1009() {
    use tokio::net::{TcpListener, TcpStream};
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::protocol::Role;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        (a, listener.accept().await.unwrap().0)
    }
    let (client_io, proxy_client_io) = pair().await;
    let (proxy_backend_io, backend_io) = pair().await;
    let mut client = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
    let backend = WebSocketStream::from_raw_socket(backend_io, Role::Server, None).await;
    let config = config(route().max_websocket_frame_size(1000));
    let bridge = tokio::spawn(async move {
        let s = Shutdown::new();
        reverseit_ws::bridge(proxy_client_io, proxy_backend_io, &config, &s).await
    });
    let backend = tokio::spawn(expect_close(backend, 1001, None));
    send(&mut client, binary(vec![9; 300_000])).await;
    expect_close(client, 1009, None).await;
    backend.await.unwrap();
    let out = outcome(bridge).await;
    assert!(out.clean, "{out:?}");
}
