//! Relaying: WS-5, WS-9 and the original's WebSocket tests.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use reverseit_ws::{BridgeConfig, ClosedBy, Shutdown};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::Data;

/// Closes a harness cleanly from the client with 1000 and returns the outcome.
async fn finish(h: Harness) -> reverseit_ws::BridgeOutcome {
    let Harness {
        mut client,
        backend,
        bridge,
        ..
    } = h;
    send(&mut client, close_frame(1000, "done")).await;
    let backend = tokio::spawn(expect_close(backend, 1000, Some("done")));
    expect_close_echo(client).await;
    backend.await.unwrap();
    let out = outcome(bridge).await;
    assert!(out.clean, "{out:?}");
    out
}

/// After the client sent a close frame: its echo, then the end of the stream.
async fn expect_close_echo(mut client: Peer) {
    match next(&mut client).await {
        Some(Message::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 1000),
        other => panic!("expected the close echo, got {other:?}"),
    }
    assert_eq!(next(&mut client).await, None);
}

// WS-5 + original "bidirectional text echo".
#[tokio::test]
async fn ws_5_text_both_ways() {
    let mut h = start(BridgeConfig::default()).await;
    send(&mut h.client, text("hello backend")).await;
    expect(&mut h.backend, text("hello backend")).await;
    send(&mut h.backend, text("hello client")).await;
    expect(&mut h.client, text("hello client")).await;
    let out = finish(h).await;
    assert_eq!(out.closed_by, ClosedBy::Client);
    assert_eq!(
        (
            out.messages_client_to_backend,
            out.messages_backend_to_client
        ),
        (1, 1)
    );
}

// WS-5 + original "binary echo", through an echoing backend.
#[tokio::test]
async fn ws_5_binary_echo() {
    let mut h = start(BridgeConfig::default()).await;
    let backend = tokio::spawn(echo(std::mem::replace(&mut h.backend, dummy().await)));
    let payload: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    send(&mut h.client, binary(payload.clone())).await;
    expect(&mut h.client, binary(payload)).await;
    send(&mut h.client, close_frame(1000, "")).await;
    expect_close_echo(h.client).await;
    assert_eq!(backend.await.unwrap(), 1);
    assert!(outcome(h.bridge).await.clean);
}

/// A peer that is never used (to move the real one out of a harness).
async fn dummy() -> Peer {
    let (a, _b) = tokio::io::duplex(64);
    tokio_tungstenite::WebSocketStream::from_raw_socket(
        a,
        tokio_tungstenite::tungstenite::protocol::Role::Server,
        None,
    )
    .await
}

// WS-5 + original "ping/pong": the client's ping reaches the backend, and the client gets exactly
// one pong (the proxy's), not a second one relayed from the backend.
#[tokio::test]
async fn ws_5_client_ping_gets_exactly_one_pong() {
    let mut h = start(BridgeConfig::default()).await;
    send(&mut h.client, Message::Ping("p1".into())).await;
    // The backend sees the ping (and tungstenite answers it with a pong the proxy swallows).
    expect(&mut h.backend, Message::Ping("p1".into())).await;
    expect(&mut h.client, Message::Pong("p1".into())).await;
    // Whatever comes next must be this marker, not a duplicate pong.
    send(&mut h.backend, text("marker")).await;
    expect(&mut h.client, text("marker")).await;
    let out = finish(h).await;
    // The ping and "marker" crossed; the backend's pong did not.
    assert_eq!(
        (
            out.messages_client_to_backend,
            out.messages_backend_to_client
        ),
        (1, 1)
    );
}

// WS-5: the same the other way: the backend's ping reaches the client, the backend gets one pong.
#[tokio::test]
async fn ws_5_backend_ping_gets_exactly_one_pong() {
    let mut h = start(BridgeConfig::default()).await;
    send(&mut h.backend, Message::Ping("b1".into())).await;
    expect(&mut h.client, Message::Ping("b1".into())).await;
    expect(&mut h.backend, Message::Pong("b1".into())).await;
    send(&mut h.client, text("marker")).await;
    expect(&mut h.backend, text("marker")).await;
    finish(h).await;
}

// WS-5: unsolicited pongs are relayed both ways; many pings in a row each get one pong.
#[tokio::test]
async fn ws_5_unsolicited_pongs_and_ping_series() {
    let mut h = start(BridgeConfig::default()).await;
    send(&mut h.client, Message::Pong("heartbeat-c".into())).await;
    expect(&mut h.backend, Message::Pong("heartbeat-c".into())).await;
    send(&mut h.backend, Message::Pong("heartbeat-b".into())).await;
    expect(&mut h.client, Message::Pong("heartbeat-b".into())).await;
    for i in 0..5 {
        let p = format!("ping-{i}");
        send(&mut h.client, Message::Ping(p.clone().into())).await;
        expect(&mut h.client, Message::Pong(p.clone().into())).await;
        expect(&mut h.backend, Message::Ping(p.into())).await;
    }
    send(&mut h.backend, text("marker")).await;
    expect(&mut h.client, text("marker")).await;
    finish(h).await;
}

// WS-5: fragmented messages (text and binary) arrive whole and in order; empty messages too.
#[tokio::test]
async fn ws_5_fragmented_and_empty_messages() {
    let mut h = start(BridgeConfig::default()).await;
    send(&mut h.client, raw(b"frag", Data::Text, false)).await;
    send(&mut h.client, raw(b"men", Data::Continue, false)).await;
    // A control frame may come between fragments (RFC 6455 §5.4).
    send(&mut h.client, Message::Ping("mid".into())).await;
    send(&mut h.client, raw(b"ted", Data::Continue, true)).await;
    send(&mut h.client, raw(&[1, 2], Data::Binary, false)).await;
    send(&mut h.client, raw(&[3], Data::Continue, true)).await;
    send(&mut h.client, text("")).await;
    send(&mut h.client, binary(vec![])).await;
    expect(&mut h.backend, Message::Ping("mid".into())).await;
    expect(&mut h.backend, text("fragmented")).await;
    expect(&mut h.backend, binary(vec![1, 2, 3])).await;
    expect(&mut h.backend, text("")).await;
    expect(&mut h.backend, binary(vec![])).await;
    expect(&mut h.client, Message::Pong("mid".into())).await;
    // And from the backend.
    send(&mut h.backend, raw(b"ab", Data::Text, false)).await;
    send(&mut h.backend, raw(b"c", Data::Continue, true)).await;
    send(&mut h.backend, text("")).await;
    expect(&mut h.client, text("abc")).await;
    expect(&mut h.client, text("")).await;
    finish(h).await;
}

// Original "empty text": an empty text message is echoed.
#[tokio::test]
async fn original_empty_text_echo() {
    let mut h = start(BridgeConfig::default()).await;
    let backend = tokio::spawn(echo(std::mem::replace(&mut h.backend, dummy().await)));
    send(&mut h.client, text("")).await;
    expect(&mut h.client, text("")).await;
    send(&mut h.client, close_frame(1000, "")).await;
    expect_close_echo(h.client).await;
    assert_eq!(backend.await.unwrap(), 1);
}

// Original "10 000-byte message".
#[tokio::test]
async fn original_ten_thousand_byte_message() {
    let mut h = start(BridgeConfig::default()).await;
    let backend = tokio::spawn(echo(std::mem::replace(&mut h.backend, dummy().await)));
    let big = "x".repeat(10_000);
    send(&mut h.client, text(&big)).await;
    expect(&mut h.client, text(&big)).await;
    send(&mut h.client, close_frame(1000, "")).await;
    expect_close_echo(h.client).await;
    backend.await.unwrap();
}

// Original "ten rapid messages all echoed", in order.
#[tokio::test]
async fn original_ten_rapid_messages_in_order() {
    let mut h = start(BridgeConfig::default()).await;
    let backend = tokio::spawn(echo(std::mem::replace(&mut h.backend, dummy().await)));
    for i in 0..10 {
        h.client.feed(text(&format!("m{i}"))).await.unwrap();
    }
    h.client.flush().await.unwrap();
    for i in 0..10 {
        expect(&mut h.client, text(&format!("m{i}"))).await;
    }
    send(&mut h.client, close_frame(1000, "")).await;
    expect_close_echo(h.client).await;
    assert_eq!(backend.await.unwrap(), 10);
    let out = outcome(h.bridge).await;
    assert_eq!(
        (
            out.messages_client_to_backend,
            out.messages_backend_to_client
        ),
        (10, 10)
    );
}

// Original "two simultaneous connections": two bridges do not mix their messages.
#[tokio::test]
async fn original_two_simultaneous_bridges() {
    let shutdown = Shutdown::new();
    let mut a = start_with(BridgeConfig::default(), shutdown.clone(), DUPLEX).await;
    let mut b = start_with(BridgeConfig::default(), shutdown.clone(), DUPLEX).await;
    send(&mut a.client, text("to a")).await;
    send(&mut b.client, text("to b")).await;
    expect(&mut b.backend, text("to b")).await;
    expect(&mut a.backend, text("to a")).await;
    send(&mut b.backend, text("from b")).await;
    send(&mut a.backend, text("from a")).await;
    expect(&mut a.client, text("from a")).await;
    expect(&mut b.client, text("from b")).await;
    assert_eq!(shutdown.active(), 2);
    finish(a).await;
    finish(b).await;
    assert_eq!(shutdown.active(), 0);
}

// WS-9: bytes the backend sent right after its 101 (already in the stream when the bridge starts)
// are relayed.
#[tokio::test]
async fn ws_9_data_already_sent_by_the_backend_is_relayed() {
    let (client_io, proxy_client_io) = tokio::io::duplex(DUPLEX);
    let (proxy_backend_io, mut backend_io) = tokio::io::duplex(DUPLEX);
    // An unmasked server text frame "early" followed by a binary frame [7], written before the
    // bridge exists.
    backend_io
        .write_all(b"\x81\x05early\x82\x01\x07")
        .await
        .unwrap();
    let mut client = tokio_tungstenite::WebSocketStream::from_raw_socket(
        client_io,
        tokio_tungstenite::tungstenite::protocol::Role::Client,
        None,
    )
    .await;
    let shutdown = Shutdown::new();
    let bridge = tokio::spawn(async move {
        reverseit_ws::bridge(
            proxy_client_io,
            proxy_backend_io,
            &BridgeConfig::default(),
            &shutdown,
        )
        .await
    });
    expect(&mut client, text("early")).await;
    expect(&mut client, binary(vec![7])).await;
    drop(backend_io);
    expect_close(client, 1011, None).await;
    assert_eq!(outcome(bridge).await.closed_by, ClosedBy::Backend);
}

// 1 000 concurrent bridges, every message accounted for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_bridges_account_for_every_message() {
    const BRIDGES: usize = 1000;
    const MESSAGES: usize = 5;
    let shutdown = Shutdown::new();
    let mut clients = Vec::with_capacity(BRIDGES);
    for _ in 0..BRIDGES {
        let h = start_with(BridgeConfig::default(), shutdown.clone(), 4096).await;
        let backend = tokio::spawn(echo(h.backend));
        clients.push((h.client, backend, h.bridge));
    }
    let mut tasks = Vec::with_capacity(BRIDGES);
    for (i, (mut client, backend, bridge)) in clients.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for m in 0..MESSAGES {
                client.feed(text(&format!("{i}:{m}"))).await.unwrap();
            }
            client.flush().await.unwrap();
            for m in 0..MESSAGES {
                expect(&mut client, text(&format!("{i}:{m}"))).await;
            }
            send(&mut client, close_frame(1000, "")).await;
            while client.next().await.is_some() {}
            let echoed = backend.await.unwrap();
            let out = outcome(bridge).await;
            assert!(out.clean);
            (
                echoed,
                out.messages_client_to_backend,
                out.messages_backend_to_client,
            )
        }));
    }
    let mut totals = (0, 0, 0);
    for t in tasks {
        let (e, c2b, b2c) = t.await.unwrap();
        totals = (totals.0 + e, totals.1 + c2b, totals.2 + b2c);
    }
    let want = (BRIDGES * MESSAGES) as u64;
    assert_eq!(totals, (want, want, want));
    shutdown.wait_idle().await;
    assert_eq!(shutdown.active(), 0);
}
