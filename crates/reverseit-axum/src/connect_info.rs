//! The client's address as axum's connect info, for `X-Forwarded-*`.

use std::net::SocketAddr;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use reverseit_core::headers::ClientInfo;
use tokio::net::TcpListener;

/// Connect info that tells the proxy the client's address and the port it reached.
///
/// Serve the router with `into_make_service_with_connect_info::<ClientAddr>()`. A router served with
/// `ConnectInfo<SocketAddr>` works too, but then `X-Forwarded-Port` falls back to the `Host` port.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub ClientInfo);

impl Connected<IncomingStream<'_, TcpListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        let peer: SocketAddr = *stream.remote_addr();
        let local_port = stream.io().local_addr().map(|a| a.port()).unwrap_or(0);
        ClientAddr(ClientInfo::new(peer.ip(), false, local_port))
    }
}
