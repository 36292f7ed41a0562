//! Memory per bridged connection: the bridge's future is what a task holds besides tungstenite's
//! buffers, so its size is kept in check here.

use reverseit_ws::{BridgeConfig, READ_BUFFER_SIZE, Shutdown};

/// Bound on the bridge's future (the task's state), with tokio's `TcpStream` on both sides: two
/// tungstenite streams (320 bytes each), the lanes, one timer, the shutdown listener and the closing
/// state, plus what rustc's async layout does not overlap. Measured 2.4 KiB with Rust 1.95.
const FUTURE_BOUND: usize = 2560;

#[test]
fn bridge_future_is_small() {
    let config = BridgeConfig::default();
    let shutdown = Shutdown::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let size = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let a = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (b, _) = listener.accept().await.unwrap();
        let fut = reverseit_ws::bridge(a, b, &config, &shutdown);
        let (a, b) = (
            tokio::net::TcpStream::connect(addr).await.unwrap(),
            listener.accept().await.unwrap().0,
        );
        let a = tokio_tungstenite::WebSocketStream::from_raw_socket(
            a,
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        let b = tokio_tungstenite::WebSocketStream::from_raw_socket(
            b,
            tokio_tungstenite::tungstenite::protocol::Role::Client,
            None,
        )
        .await;
        let inner = reverseit_ws::bridge_streams(a, b, &config, &shutdown);
        eprintln!(
            "bridge_streams future: {} bytes",
            std::mem::size_of_val(&inner)
        );
        std::mem::size_of_val(&fut)
    });
    eprintln!(
        "bridge future: {size} bytes; plus two {READ_BUFFER_SIZE}-byte read buffers per connection"
    );
    assert!(size <= FUTURE_BOUND, "bridge future is {size} bytes");
}
