//! The path sent to the backend: `strip_path` removed (`PATH-1`), the backend's path prefix added
//! (`PATH-2`), bytes and query otherwise untouched (`PATH-3`), dot segments refused (`PATH-4`).

use bytes::Bytes;
use http::Uri;
use http::uri::PathAndQuery;

use crate::{Error, ErrorKind, RouteConfig};

/// Whether a request path has a `.` or `..` segment (`PATH-4`), which could climb out of the
/// backend's path prefix once the backend normalises it (RFC 3986 §5.2.4).
///
/// A segment counts when it is made of one or two dots, each written `.` or `%2e` (any case). Segments
/// are separated by `/` and also by `\`, `%2f` and `%5c`, which some backends decode or treat as
/// separators, so `..%2f` and `..\` are caught. A segment's `;parameters` are ignored (`..;x` is
/// `..` to servlet containers). The query, after the first `?`, is not part of the path.
///
/// ```
/// use reverseit_core::path::has_dot_segment;
///
/// assert!(has_dot_segment("/a/../b"));
/// assert!(has_dot_segment("/a/%2E%2e/b"));
/// assert!(has_dot_segment("/a/..%2fb"));
/// assert!(!has_dot_segment("/a/.well-known/b"));
/// assert!(!has_dot_segment("/a?x=/../"));
/// ```
pub fn has_dot_segment(path: &str) -> bool {
    let b = path.as_bytes();
    let end = b.iter().position(|&c| c == b'?').unwrap_or(b.len());
    let mut i = 0;
    // The current segment: how many dots so far, and whether anything else was seen.
    let mut dots = 0u8;
    let mut other = false;
    let mut in_params = false;
    loop {
        let step = if i >= end {
            Step::Separator(0)
        } else {
            match b[i] {
                b'/' | b'\\' => Step::Separator(1),
                b'%' if i + 3 <= end => match (b[i + 1], b[i + 2].to_ascii_lowercase()) {
                    (b'2', b'e') => Step::Dot(3),
                    (b'2', b'f') | (b'5', b'c') => Step::Separator(3),
                    _ => Step::Other(1),
                },
                b'.' => Step::Dot(1),
                b';' => Step::Params,
                _ => Step::Other(1),
            }
        };
        match step {
            Step::Separator(n) => {
                if !other && (dots == 1 || dots == 2) {
                    return true;
                }
                if n == 0 {
                    return false;
                }
                (dots, other, in_params) = (0, false, false);
                i += n;
            }
            Step::Params => {
                in_params = true;
                i += 1;
            }
            Step::Dot(n) | Step::Other(n) if in_params => i += n,
            Step::Dot(n) => {
                dots = dots.saturating_add(1);
                i += n;
            }
            Step::Other(n) => {
                other = true;
                i += n;
            }
        }
    }
}

/// One lexical step of [`has_dot_segment`], with the bytes it consumes.
enum Step {
    Separator(usize),
    Dot(usize),
    Other(usize),
    Params,
}

/// A route's path rewrite: `strip_path`, then the backend's path prefix.
///
/// ```
/// use reverseit_core::PathRewrite;
///
/// let rw = PathRewrite::new(Some("/api"), "/v1");
/// assert_eq!(rw.rewrite("/api/users", Some("page=2")).unwrap(), "/v1/users?page=2");
/// assert_eq!(rw.rewrite("/api", None).unwrap(), "/v1/");
/// assert_eq!(rw.rewrite("/apiary", None).unwrap(), "/v1/apiary");
/// assert!(rw.rewrite("/api/../admin", None).is_err());
/// ```
#[derive(Debug, Clone)]
pub struct PathRewrite {
    /// Without a trailing slash; `None` when nothing is stripped.
    strip: Option<Box<str>>,
    /// Empty, or starting with `/` and without a trailing slash.
    prefix: Box<str>,
}

impl PathRewrite {
    /// The rewrite of `route`: its `strip_path` and its backend URL's path prefix.
    pub fn from_route(route: &RouteConfig) -> Self {
        Self::new(route.strip_path(), route.backend().path_prefix())
    }

    /// A rewrite that strips `strip` (on a segment boundary) and then prepends `prefix`.
    ///
    /// Trailing slashes of both are ignored; `None`, `""` or `"/"` strip nothing and `""` or `"/"`
    /// add no prefix. A prefix without a leading `/` gets one.
    pub fn new(strip: Option<&str>, prefix: &str) -> Self {
        let strip = strip
            .map(|s| s.trim_end_matches('/'))
            .filter(|s| !s.is_empty())
            .map(Into::into);
        let prefix = prefix.trim_end_matches('/');
        let prefix = if prefix.is_empty() || prefix.starts_with('/') {
            prefix.into()
        } else {
            format!("/{prefix}").into()
        };
        Self { strip, prefix }
    }

    /// Whether the rewrite never changes a path: nothing to strip and no prefix.
    pub fn is_identity(&self) -> bool {
        self.strip.is_none() && self.prefix.is_empty()
    }

    /// The backend's path and query for a request's `path` and raw `query`.
    ///
    /// 1. A dot segment ([`has_dot_segment`]) → [`ErrorKind::InvalidPath`] (`PATH-4`).
    /// 2. A path not starting with `/`, or with `?` or `#` in the path or `#` in the query →
    ///    [`ErrorKind::BadRequest`].
    /// 3. `strip_path` removed on a segment boundary only, case-sensitive: `/api/users` → `/users`,
    ///    `/api` and `/api/` → `/`, `/apiary` unchanged (`PATH-1`).
    /// 4. The prefix joined with exactly one slash, the trailing slash kept: `/v1` + `/users/` →
    ///    `/v1/users/`, `/v1` + `/` → `/v1/` (`PATH-2`).
    /// 5. Path bytes and query passed through unchanged, no decoding; `?query` appended when `query`
    ///    is `Some`, even empty (`PATH-3`).
    ///
    /// Characters a URI cannot carry give [`ErrorKind::BadRequest`].
    pub fn rewrite(&self, path: &str, query: Option<&str>) -> Result<PathAndQuery, Error> {
        let rest = self.check_and_strip(path, query)?;
        self.build(rest, query)
    }

    /// Like [`Self::rewrite`] on a request URI's path and query, but when the rewrite changes nothing
    /// the URI's own path-and-query is returned, shared rather than copied.
    ///
    /// ```
    /// use http::Uri;
    /// use reverseit_core::PathRewrite;
    ///
    /// let uri: Uri = "/users?id=1".parse().unwrap();
    /// assert_eq!(PathRewrite::new(None, "").rewrite_uri(&uri).unwrap(), "/users?id=1");
    /// assert_eq!(PathRewrite::new(None, "/v1").rewrite_uri(&uri).unwrap(), "/v1/users?id=1");
    /// ```
    pub fn rewrite_uri(&self, uri: &Uri) -> Result<PathAndQuery, Error> {
        let (path, query) = (uri.path(), uri.query());
        let rest = self.check_and_strip(path, query)?;
        match uri.path_and_query() {
            // Nothing stripped, nothing added: the URI's own bytes are the answer.
            Some(pq) if self.prefix.is_empty() && rest.len() == path.len() => Ok(pq.clone()),
            _ => self.build(rest, query),
        }
    }

    /// Step 4 and 5 of [`Self::rewrite`]: prefix, path, query, in one exactly-sized allocation handed
    /// to `PathAndQuery` without a copy.
    fn build(&self, rest: &str, query: Option<&str>) -> Result<PathAndQuery, Error> {
        let len = self.prefix.len() + rest.len() + query.map_or(0, |q| q.len() + 1);
        let mut buf = Vec::with_capacity(len);
        buf.extend_from_slice(self.prefix.as_bytes());
        buf.extend_from_slice(rest.as_bytes());
        if let Some(q) = query {
            buf.push(b'?');
            buf.extend_from_slice(q.as_bytes());
        }
        PathAndQuery::from_maybe_shared(Bytes::from(buf))
            .map_err(|e| Error::new(ErrorKind::BadRequest).with_source(e))
    }

    /// Steps 1–3 of [`Self::rewrite`]: the checks, then the path left after `strip_path`.
    fn check_and_strip<'p>(&self, path: &'p str, query: Option<&str>) -> Result<&'p str, Error> {
        if has_dot_segment(path) {
            return Err(Error::new(ErrorKind::InvalidPath));
        }
        if !path.starts_with('/') {
            return Err(
                Error::new(ErrorKind::BadRequest).with_message("the path must start with `/`")
            );
        }
        if path.contains(['?', '#']) || query.is_some_and(|q| q.contains('#')) {
            return Err(Error::new(ErrorKind::BadRequest).with_message("`?` or `#` in the path"));
        }
        Ok(self.strip(path))
    }

    /// `path` without `strip_path` when it starts with it on a segment boundary (`PATH-1`).
    fn strip<'p>(&self, path: &'p str) -> &'p str {
        let Some(strip) = self.strip.as_deref() else {
            return path;
        };
        match path.strip_prefix(strip) {
            Some("") => "/",
            Some(rest) if rest.starts_with('/') => rest,
            _ => path,
        }
    }
}

#[cfg(test)]
mod tests;
