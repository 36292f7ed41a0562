//! The listening socket, and the options accepted sockets get from it.

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// How many connections the kernel may queue before they are accepted. Past `max_connections`
/// clients wait there (see `server::run`); the standard library's 128 turns a burst of new clients
/// into dropped SYNs and a client's one-second retransmit. The kernel caps it at
/// `net.core.somaxconn` (4096 by default).
const BACKLOG: u32 = 1024;

/// Binds `addr` as `TcpListener::bind` does (`SO_REUSEADDR`, so a restart rebinds at once) with a
/// longer accept queue, and with `TCP_NODELAY` set: every response is written whole or in large
/// pieces, so Nagle's algorithm would only delay a streamed body's small chunks behind the
/// client's delayed acknowledgements.
///
/// Linux copies `TCP_NODELAY` from a listening socket into each socket it accepts, so there the
/// option costs one system call for the server's life rather than one per connection (see
/// [`prepare`]).
pub(crate) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Gives an accepted socket the options [`bind`] could not pass on. A failure is ignored: the
/// connection works without them.
pub(crate) fn prepare(stream: &TcpStream) {
    if !INHERITS_NODELAY {
        let _ = stream.set_nodelay(true);
    }
}

/// Whether accepted sockets inherit `TCP_NODELAY` from the listener (the test below fails where
/// this is wrong).
const INHERITS_NODELAY: bool = cfg!(any(target_os = "linux", target_os = "android"));

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::Ipv4Addr;

    #[tokio::test]
    async fn accepted_sockets_have_nodelay() {
        let listener = bind((Ipv4Addr::LOCALHOST, 0).into()).unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (stream, peer) = accepted.unwrap();
        assert_eq!(peer, client.unwrap().local_addr().unwrap());
        prepare(&stream);
        assert!(stream.nodelay().unwrap());
    }

    #[tokio::test]
    async fn a_port_in_use_is_refused() {
        let first = bind((Ipv4Addr::LOCALHOST, 0).into()).unwrap();
        let err = bind(first.local_addr().unwrap()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }
}
