//! # reverseit-hyper
//!
//! The ReverseIt proxy as a [`tower_service::Service`] over hyper: [`ReverseProxy`] takes
//! `http::Request<B>` for any body `B` (hyper's, axum's), and answers with a streaming
//! [`ProxyBody`].
//!
//! For each request it decides between HTTP and WebSocket, checks the limits, applies the header and
//! path policy of [`reverseit_core`], sends the request through a [`reverseit_pool::Pool`] with its
//! body streaming (or buffered when small, so it can be retried), and relays the response frame by
//! frame. Every failure is answered through [`reverseit_core::Error::disposition`].
//!
//! [`serve`] and [`serve_connection`] run it with hyper's HTTP/1.1 and HTTP/2 servers, upgrades
//! included, passing each client's address to the proxy for `X-Forwarded-For`. A
//! [`ConnectionBuilder`] picks the protocol of each connection from its first read (the HTTP/2
//! preface or not), in one system call where hyper-util's `auto` server makes two.
#![deny(missing_docs)]

mod connection;
mod proxy;
mod request_body;
mod response_body;
mod serve;
mod websocket;

pub use connection::{Connection, ConnectionBuilder};
pub use proxy::{ResponseFuture, ReverseProxy};
pub use response_body::ProxyBody;
pub use serve::{WithClientInfo, client_info, connection_builder, serve, serve_connection};
