//! Messages per second through the bridge over loopback TCP, against the same client talking to the
//! echo backend directly, in the same run.
//!
//! Both paths skip the HTTP handshakes (each side wraps its socket with `from_raw_socket`), so the
//! difference is the bridge's frame relay alone. Everything runs on one current-thread runtime: a
//! round trip's time is then the CPU of client + (bridge) + backend, and the ratio bridged / direct
//! is the relay's cost. `echo` is one message and its echo at a time; `pipelined` keeps
//! [`BATCH`] messages in flight.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::{SinkExt, StreamExt};
use reverseit_ws::{BridgeConfig, Shutdown};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

/// Messages in flight in the pipelined case.
const BATCH: u64 = 64;

/// A WebSocket echo server; returns its address.
async fn echo_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tcp.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let mut ws =
                    WebSocketStream::from_raw_socket(tcp, Role::Server, Some(peer_config())).await;
                while let Some(Ok(m)) = ws.next().await {
                    if (m.is_binary() || m.is_text()) && ws.send(m).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// A proxy in front of `backend`: each accepted connection is bridged to a fresh backend connection.
async fn proxy(backend: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = BridgeConfig::default();
    let shutdown = Shutdown::new();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (config, shutdown) = (config.clone(), shutdown.clone());
            tokio::spawn(async move {
                client.set_nodelay(true).unwrap();
                let backend = TcpStream::connect(backend).await.unwrap();
                backend.set_nodelay(true).unwrap();
                reverseit_ws::bridge(client, backend, &config, &shutdown).await
            });
        }
    });
    addr
}

fn peer_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None)
}

async fn client(addr: SocketAddr) -> WebSocketStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    WebSocketStream::from_raw_socket(tcp, Role::Client, Some(peer_config())).await
}

/// Sends `iters` messages of `size` bytes, `in_flight` at a time, and waits for every echo.
async fn run(addr: SocketAddr, size: usize, iters: u64, in_flight: u64) -> Duration {
    let mut ws = client(addr).await;
    let payload = bytes::Bytes::from(vec![7u8; size]);
    let start = Instant::now();
    let mut sent = 0;
    while sent < iters {
        let n = in_flight.min(iters - sent);
        for _ in 0..n {
            ws.feed(Message::Binary(payload.clone())).await.unwrap();
        }
        ws.flush().await.unwrap();
        for _ in 0..n {
            black_box(ws.next().await.unwrap().unwrap());
        }
        sent += n;
    }
    let took = start.elapsed();
    let _ = ws.close(None).await;
    took
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (direct, bridged) = rt.block_on(async {
        let backend = echo_backend().await;
        (backend, proxy(backend).await)
    });
    for (name, size, in_flight) in [
        ("echo_64B", 64, 1),
        ("echo_64KiB", 64 * 1024, 1),
        ("pipelined_64B", 64, BATCH),
        ("pipelined_64KiB", 64 * 1024, BATCH),
    ] {
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(1));
        for (path, addr) in [("direct", direct), ("bridged", bridged)] {
            group.bench_with_input(BenchmarkId::from_parameter(path), &addr, |b, &addr| {
                b.to_async(&rt as &Runtime)
                    .iter_custom(|iters| run(addr, size, iters, in_flight));
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
