//! The WebSocket peers of the benchmark, run as `xtask bench ws-…` processes on the load core: an
//! echo backend, an echo load client, and a client that holds idle connections open.
//!
//! Each is a single-threaded tokio runtime doing nothing but its job, so the proxy, not these, is what
//! runs out of CPU first.

use std::io::BufRead as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::load::percentile;

/// Bytes per benchmark message.
pub(crate) const MESSAGE: usize = 64;
/// Connections of the echo load.
const LOAD_CONNECTIONS: usize = 64;
/// Connections opened at once by the idle client.
const OPENING: usize = 32;

/// Small buffers: the peers hold thousands of connections and only ever see small messages.
fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

fn runtime() -> Result<Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))
}

/// `xtask bench ws-echo ADDR`: echoes every data message, forever.
pub(crate) fn echo(addr: &str) -> Result<(), String> {
    runtime()?.block_on(async {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("bind {addr}: {e}"))?;
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let Ok(mut ws) =
                    tokio_tungstenite::accept_async_with_config(stream, Some(config())).await
                else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if (msg.is_binary() || msg.is_text()) && ws.send(msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    })
}

async fn connect(url: &str) -> Result<WebSocketStream<TcpStream>, String> {
    let addr = url
        .strip_prefix("ws://")
        .and_then(|r| r.split('/').next())
        .ok_or_else(|| format!("not a ws:// URL: {url}"))?;
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config()))
        .await
        .map_err(|e| format!("handshake {url}: {e}"))?;
    Ok(ws)
}

async fn round_trip(ws: &mut WebSocketStream<TcpStream>, payload: &[u8]) -> Result<(), String> {
    ws.send(Message::binary(payload.to_vec()))
        .await
        .map_err(|e| format!("send: {e}"))?;
    match ws.next().await {
        Some(Ok(m)) if m.len() == payload.len() => Ok(()),
        other => Err(format!("unexpected echo: {other:?}")),
    }
}

const WARMING: u8 = 0;
const MEASURING: u8 = 1;
const STOPPED: u8 = 2;

/// `xtask bench ws-load URL WARMUP SECS [SIZE]`: 64 connections each sending a message (64 bytes
/// unless `SIZE` says otherwise, for profiling) and waiting for its echo. Prints `start` when the measured part begins, then
/// `done ROUND_TRIPS SECS P50_MS P99_MS`.
pub(crate) fn load(url: &str, warmup: f64, secs: f64, size: usize) -> Result<(), String> {
    runtime()?.block_on(async {
        let phase = Arc::new(AtomicU8::new(WARMING));
        let mut tasks = Vec::with_capacity(LOAD_CONNECTIONS);
        for _ in 0..LOAD_CONNECTIONS {
            let mut ws = connect(url).await?;
            let phase = Arc::clone(&phase);
            tasks.push(tokio::spawn(async move {
                let payload = vec![b'w'; size];
                let mut latencies = Vec::new();
                loop {
                    let started_in = phase.load(Ordering::Relaxed);
                    if started_in == STOPPED {
                        break;
                    }
                    let t = Instant::now();
                    round_trip(&mut ws, &payload).await?;
                    if started_in == MEASURING && phase.load(Ordering::Relaxed) == MEASURING {
                        latencies.push(t.elapsed().as_secs_f64() * 1e3);
                    }
                }
                let _ = ws.close(None).await;
                Ok::<_, String>(latencies)
            }));
        }
        tokio::time::sleep(Duration::from_secs_f64(warmup)).await;
        println!("start");
        let start = Instant::now();
        phase.store(MEASURING, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        phase.store(STOPPED, Ordering::Relaxed);
        let elapsed = start.elapsed().as_secs_f64();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.map_err(|e| format!("client task: {e}"))??);
        }
        let n = all.len();
        let p50 = percentile(&mut all, 0.50);
        let p99 = percentile(&mut all, 0.99);
        println!("done {n} {elapsed} {p50} {p99}");
        Ok(())
    })
}

/// `xtask bench ws-idle URL WARM COUNT`: opens `WARM` connections (one echo each), prints
/// `open WARM`, waits for a line on stdin, opens `COUNT` more, prints `open TOTAL`, waits for a line
/// again, and exits.
pub(crate) fn idle(url: &str, warm: usize, count: usize) -> Result<(), String> {
    let rt = runtime()?;
    let mut open = Vec::with_capacity(warm + count);
    let stdin = std::io::stdin();
    for stage in [warm, count] {
        rt.block_on(async {
            let mut left = stage;
            while left > 0 {
                let batch = left.min(OPENING);
                let opened = futures_util::future::join_all((0..batch).map(|_| async {
                    let mut ws = connect(url).await?;
                    round_trip(&mut ws, &[b'i'; MESSAGE]).await?;
                    Ok::<_, String>(ws)
                }))
                .await;
                for ws in opened {
                    open.push(ws?);
                }
                left -= batch;
            }
            // Let the proxy settle (its handshake tasks end, its buffers shrink) before it is measured.
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok::<_, String>(())
        })?;
        println!("open {}", open.len());
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("stdin: {e}"))?;
    }
    drop(open);
    Ok(())
}
