//! Picks the route for a request: the longest mount prefix that matches whole path segments.
//!
//! The router only chooses; it leaves the path alone. Removing the mount prefix is the route's
//! `strip_path` job (`cli.md`), so `path = "/api"` without `strip_path` forwards `/api/users` as is.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{Either, Full};
use hyper::service::Service;
use reverseit_core::BoxError;
use reverseit_core::headers::ClientInfo;
use reverseit_hyper::{ProxyBody, ResponseFuture, ReverseProxy};

/// The body of every response the router gives: the proxy's, or its own 404.
pub(crate) type RouterBody = Either<ProxyBody, Full<Bytes>>;

/// The routes, longest mount path first; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Router {
    routes: Arc<[Route]>,
    /// The client connection this copy serves, when the server said (see [`Router::for_client`]).
    client: Option<ClientInfo>,
}

/// One mounted route.
#[derive(Debug)]
pub(crate) struct Route {
    /// The mount prefix, normalized (`/` or `/a/b`, no trailing slash).
    pub(crate) path: Box<str>,
    /// The backend URL, for the access log.
    pub(crate) backend: Box<str>,
    proxy: ReverseProxy,
}

impl Router {
    /// A router over `(mount path, proxy)` pairs; mount paths are normalized and distinct.
    pub(crate) fn new(routes: impl IntoIterator<Item = (String, ReverseProxy)>) -> Self {
        let mut routes: Vec<Route> = routes
            .into_iter()
            .map(|(path, proxy)| Route {
                backend: proxy.config().backend().to_string().into(),
                path: path.into(),
                proxy,
            })
            .collect();
        // Longest first, so the first match is the longest match.
        routes.sort_by_key(|r| std::cmp::Reverse(r.path.len()));
        Self {
            routes: routes.into(),
            client: None,
        }
    }

    /// A copy for one client connection: its requests reach the proxies with `client` directly,
    /// not through a request extension inserted (allocated, hashed, freed) for every request.
    pub(crate) fn for_client(&self, client: ClientInfo) -> Self {
        Self {
            routes: Arc::clone(&self.routes),
            client: Some(client),
        }
    }

    /// The route serving `path`, if any, by its place: for [`Router::route`] and
    /// [`Router::call_selected`], so a caller that needs the route too looks it up once.
    pub(crate) fn select(&self, path: &str) -> Option<usize> {
        self.routes.iter().position(|r| mounted_at(&r.path, path))
    }

    /// The route [`Router::select`] chose.
    pub(crate) fn route(&self, selected: Option<usize>) -> Option<&Route> {
        selected.and_then(|i| self.routes.get(i))
    }

    /// Serves `req` with the route [`Router::select`] chose for its path (a 404 for none).
    pub(crate) fn call_selected<B>(&self, selected: Option<usize>, req: Request<B>) -> RouterFuture
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        match self.route(selected) {
            Some(route) => RouterFuture::Proxy(match self.client {
                Some(client) => route.proxy.call_with_client(req, client),
                None => tower_service::Service::call(&mut route.proxy.clone(), req),
            }),
            None => RouterFuture::NotFound,
        }
    }
}

/// Whether `path` is under `mount`: equal to it, or continuing it with a `/`. So `/api` serves
/// `/api` and `/api/users` but not `/apiary`.
fn mounted_at(mount: &str, path: &str) -> bool {
    if mount == "/" {
        return true;
    }
    match path.strip_prefix(mount) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

impl<B> Service<Request<B>> for Router
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<RouterBody>;
    type Error = Infallible;
    type Future = RouterFuture;

    fn call(&self, req: Request<B>) -> RouterFuture {
        self.call_selected(self.select(req.uri().path()), req)
    }
}

/// The future of [`Router::call`].
pub(crate) enum RouterFuture {
    Proxy(ResponseFuture),
    NotFound,
}

impl std::fmt::Debug for RouterFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RouterFuture::Proxy(_) => "RouterFuture::Proxy",
            RouterFuture::NotFound => "RouterFuture::NotFound",
        })
    }
}

impl Future for RouterFuture {
    type Output = Result<Response<RouterBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            RouterFuture::Proxy(f) => f
                .as_mut()
                .poll(cx)
                .map(|r| r.map(|resp| resp.map(Either::Left))),
            RouterFuture::NotFound => Poll::Ready(Ok(not_found())),
        }
    }
}

/// The proxy's own 404 for a path no route serves (`text/plain`, like every status the proxy
/// writes itself).
fn not_found() -> Response<RouterBody> {
    const BODY: &str = "Not Found\n";
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from_static(
        BODY.as_bytes(),
    ))));
    *resp.status_mut() = StatusCode::NOT_FOUND;
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(CONTENT_LENGTH, HeaderValue::from(BODY.len()));
    resp
}

#[cfg(test)]
mod tests {
    use super::mounted_at;

    #[test]
    fn mounts_match_whole_segments() {
        assert!(mounted_at("/", "/anything"));
        assert!(mounted_at("/", "/"));
        assert!(mounted_at("/api", "/api"));
        assert!(mounted_at("/api", "/api/"));
        assert!(mounted_at("/api", "/api/users"));
        assert!(!mounted_at("/api", "/apiary"));
        assert!(!mounted_at("/api", "/ap"));
        assert!(!mounted_at("/api", "/other/api"));
        assert!(mounted_at("/api/v1", "/api/v1/x"));
        assert!(!mounted_at("/api/v1", "/api/v2"));
        // Case-sensitive, like paths.
        assert!(!mounted_at("/api", "/API"));
    }
}
