//! The proxy as a service axum can mount.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::ConnectInfo;
use http::Request;
use http::Response;
use reverseit_core::headers::ClientInfo;
use reverseit_core::{ConfigError, RouteConfig};
use reverseit_hyper::{ProxyBody, ResponseFuture, ReverseProxy};
use reverseit_pool::Pool;
use tower_service::Service;

/// A [`ReverseProxy`] that reads the client's address from axum's connect info.
#[derive(Debug, Clone)]
pub struct Proxy {
    inner: ReverseProxy,
}

impl Proxy {
    /// A proxy for `route` over `pool` (clone one pool into every route).
    pub fn new(pool: Pool, route: RouteConfig) -> Result<Self, ConfigError> {
        Ok(Self::from(ReverseProxy::new(pool, route)?))
    }

    /// The wrapped proxy.
    pub fn inner(&self) -> &ReverseProxy {
        &self.inner
    }
}

impl From<ReverseProxy> for Proxy {
    fn from(inner: ReverseProxy) -> Self {
        Self { inner }
    }
}

impl Service<Request<Body>> for Proxy {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Service::<Request<Body>>::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        if req.extensions().get::<ClientInfo>().is_none() {
            let ext = req.extensions();
            let info = ext
                .get::<ConnectInfo<crate::ClientAddr>>()
                .map(|c| c.0.0)
                .or_else(|| {
                    ext.get::<ConnectInfo<SocketAddr>>().map(|c| {
                        let port = host_port(&req).unwrap_or(0);
                        ClientInfo::new(c.0.ip(), false, port)
                    })
                });
            if let Some(info) = info {
                req.extensions_mut().insert(info);
            }
        }
        self.inner.call(req)
    }
}

/// The port the client addressed, from `Host` (or the default port of plain HTTP).
fn host_port<B>(req: &Request<B>) -> Option<u16> {
    let host = req.headers().get(http::header::HOST)?.to_str().ok()?;
    let authority: http::uri::Authority = host.parse().ok()?;
    Some(authority.port_u16().unwrap_or(80))
}
