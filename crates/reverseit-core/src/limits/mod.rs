//! Checks on a request or response head, done before a body byte moves: size limits (`LIM-1`,
//! `LIM-2`, `LIM-3`, `LIM-5`, `HDR-7`) and the RFC 9112 framing rules a proxy must enforce itself
//! (`ERR-6`).

use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::uri::Authority;
use http::{HeaderMap, HeaderValue, StatusCode, Uri, Version};

use crate::config::defaults as d;
use crate::headers::list_elements;
use crate::{Error, ErrorKind, RouteConfig, SizeLimit};

/// A route's request limits, copied out of its configuration.
///
/// ```
/// use http::{HeaderMap, Uri};
/// use reverseit_core::{ErrorKind, RequestLimits, RouteConfig};
///
/// let route = RouteConfig::builder("http://backend:4000")
///     .max_request_target_bytes(16)
///     .build()
///     .unwrap();
/// let limits = RequestLimits::from_route(&route);
/// let headers = HeaderMap::new();
/// assert!(limits.check_head(&Uri::from_static("/short"), &headers).is_ok());
/// let err = limits
///     .check_head(&Uri::from_static("/a/much/longer/path"), &headers)
///     .unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::UriTooLong);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    max_target: usize,
    max_line: usize,
    max_total: usize,
    max_count: usize,
    max_body: SizeLimit,
}

impl Default for RequestLimits {
    /// The defaults of [`crate::config::defaults`].
    fn default() -> Self {
        Self {
            max_target: d::MAX_REQUEST_TARGET_BYTES,
            max_line: d::MAX_REQUEST_HEADER_LINE_BYTES,
            max_total: d::MAX_REQUEST_HEADER_BYTES,
            max_count: d::MAX_REQUEST_HEADERS,
            max_body: SizeLimit::Bytes(d::MAX_REQUEST_BODY_SIZE),
        }
    }
}

impl RequestLimits {
    /// The limits of `route`: `max_request_target_bytes`, `max_request_header_line_bytes`,
    /// `max_request_header_bytes`, `max_request_headers` and `max_request_body_size`.
    pub fn from_route(route: &RouteConfig) -> Self {
        Self {
            max_target: route.max_request_target_bytes(),
            max_line: route.max_request_header_line_bytes(),
            max_total: route.max_request_header_bytes(),
            max_count: route.max_request_headers(),
            max_body: route.max_request_body_size(),
        }
    }

    /// The largest request body accepted (`max_request_body_size`).
    pub fn max_body(&self) -> SizeLimit {
        self.max_body
    }

    /// Checks a request head against the limits, in one pass over the headers:
    ///
    /// - `LIM-1`: path, `?` and query over `max_request_target_bytes` → [`ErrorKind::UriTooLong`]
    ///   (414). The scheme and authority of an absolute-form target are not counted.
    /// - `LIM-2`: more than `max_request_headers` lines, one line (name + 2 + value) over
    ///   `max_request_header_line_bytes`, or all lines together over `max_request_header_bytes` →
    ///   [`ErrorKind::HeadersTooLarge`] (431).
    pub fn check_head(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), Error> {
        let target = uri.path_and_query().map_or(0, |pq| pq.as_str().len());
        if target > self.max_target {
            return Err(Error::new(ErrorKind::UriTooLong).with_message(format!(
                "request target of {target} bytes, limit {}",
                self.max_target
            )));
        }
        // `len` counts lines, not names: an O(1) answer before the walk.
        if headers.len() > self.max_count {
            return Err(too_large(format!(
                "{} header lines, limit {}",
                headers.len(),
                self.max_count
            )));
        }
        let mut total = 0usize;
        for (name, value) in headers {
            let line = field_line_len(name.as_str(), value);
            if line > self.max_line {
                return Err(too_large(format!(
                    "header line `{name}` of {line} bytes, limit {}",
                    self.max_line
                )));
            }
            total += line;
            if total > self.max_total {
                return Err(too_large(format!(
                    "header block over {} bytes",
                    self.max_total
                )));
            }
        }
        Ok(())
    }

    /// [`request_body_length`] with this route's `max_request_body_size`.
    pub fn check_body_length(&self, headers: &HeaderMap) -> Result<Option<u64>, Error> {
        request_body_length(headers, self.max_body)
    }
}

fn too_large(message: String) -> Error {
    Error::new(ErrorKind::HeadersTooLarge).with_message(message)
}

/// A field line's size as counted by the limits: `name: value` without the line ending.
fn field_line_len(name: &str, value: &HeaderValue) -> usize {
    name.len() + 2 + value.len()
}

/// The request body's declared length, checked (`LIM-3`, `ERR-6`; RFC 9112 §6.1–§6.3):
///
/// - `Content-Length` must be digits only; several lines or a comma list are accepted only when
///   every value is the same (RFC 9110 §8.6), otherwise [`ErrorKind::BadRequest`] (400).
/// - `Content-Length` together with `Transfer-Encoding` → `BadRequest` (a smuggling vector).
/// - A `Transfer-Encoding` whose final coding is not `chunked`, or that applies `chunked` twice →
///   `BadRequest`.
/// - A declared length over `max_body` → [`ErrorKind::BodyTooLarge`] (413), before any body byte
///   is read.
///
/// Returns the declared length: `None` for a chunked body or no framing header (no body in HTTP/1.1;
/// HTTP/2 ends a stream by flag).
///
/// ```
/// use http::HeaderMap;
/// use reverseit_core::limits::request_body_length;
/// use reverseit_core::{ErrorKind, SizeLimit};
///
/// let mut h = HeaderMap::new();
/// h.insert("content-length", "1024".parse().unwrap());
/// assert_eq!(request_body_length(&h, SizeLimit::Bytes(4096)).unwrap(), Some(1024));
/// let err = request_body_length(&h, SizeLimit::Bytes(1000)).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::BodyTooLarge);
/// ```
pub fn request_body_length(headers: &HeaderMap, max_body: SizeLimit) -> Result<Option<u64>, Error> {
    let bad = |why: &'static str| Error::new(ErrorKind::BadRequest).with_message(why);
    if headers.contains_key(TRANSFER_ENCODING) {
        if headers.contains_key(CONTENT_LENGTH) {
            return Err(bad("both Content-Length and Transfer-Encoding"));
        }
        return match chunked_is_last(headers) {
            Ok(Codings::ChunkedOnly) => Ok(None),
            // Framed correctly, but the other codings would be lost: the body goes on with a
            // length, decoded of `chunked` only.
            Ok(Codings::MoreThanChunked) => Err(Error::new(ErrorKind::UnsupportedTransferCoding)
                .with_message("a transfer coding other than chunked")),
            Err(why) => Err(bad(why)),
        };
    }
    let Some(len) = content_length(headers).map_err(bad)? else {
        return Ok(None);
    };
    if max_body.exceeded_by(len) {
        return Err(Error::new(ErrorKind::BodyTooLarge)
            .with_message(format!("Content-Length {len} over the limit of {max_body}")));
    }
    Ok(Some(len))
}

/// What a valid `Transfer-Encoding` holds.
enum Codings {
    ChunkedOnly,
    /// Other codings before `chunked`, such as `gzip, chunked`.
    MoreThanChunked,
}

/// Checks that every coding before the last is not `chunked` and the last is (RFC 9112 §6.1).
fn chunked_is_last(headers: &HeaderMap) -> Result<Codings, &'static str> {
    let mut last: Option<&[u8]> = None;
    let mut count = 0usize;
    for coding in headers
        .get_all(TRANSFER_ENCODING)
        .iter()
        .flat_map(list_elements)
    {
        if last.is_some_and(is_chunked) {
            return Err("chunked applied more than once or not last");
        }
        last = Some(coding);
        count += 1;
    }
    match last {
        Some(c) if is_chunked(c) && count == 1 => Ok(Codings::ChunkedOnly),
        Some(c) if is_chunked(c) => Ok(Codings::MoreThanChunked),
        Some(_) => Err("Transfer-Encoding does not end in chunked"),
        None => Err("empty Transfer-Encoding"),
    }
}

fn is_chunked(coding: &[u8]) -> bool {
    coding.eq_ignore_ascii_case(b"chunked")
}

/// The `Content-Length` value: `Ok(None)` when absent, an error when invalid or conflicting.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, &'static str> {
    let mut found: Option<u64> = None;
    for line in headers.get_all(CONTENT_LENGTH) {
        add_length_line(&mut found, line)?;
    }
    Ok(found)
}

/// Adds one `Content-Length` line to what the earlier ones said.
fn add_length_line(found: &mut Option<u64>, line: &HeaderValue) -> Result<(), &'static str> {
    // Every element is checked, empty ones included: "5," is not a length.
    for element in line.as_bytes().split(|&b| b == b',') {
        let n = parse_length(element.trim_ascii()).ok_or("invalid Content-Length")?;
        match *found {
            Some(prev) if prev != n => return Err("differing Content-Length values"),
            _ => *found = Some(n),
        }
    }
    Ok(())
}

/// `1*DIGIT` as a `u64` (RFC 9110 §8.6): no sign, no space, no overflow.
fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// Checks the request's `Host` (`ERR-6`, RFC 9112 §3.2, RFC 9113 §8.3.1), which hyper's server
/// leaves to the application:
///
/// - HTTP/1.1: exactly one `Host` line. HTTP/1.0: at most one.
/// - HTTP/2 and later: an `:authority` in the URI, or exactly one `Host` line; both present must
///   agree.
/// - A `Host` that is not a valid `host[:port]` (empty, spaces, userinfo `@`, a port over 65535)
///   is rejected.
///
/// Every failure is [`ErrorKind::BadRequest`] (400).
///
/// ```
/// use http::{HeaderMap, Uri, Version};
/// use reverseit_core::limits::check_host;
///
/// let mut h = HeaderMap::new();
/// let uri = Uri::from_static("/");
/// assert!(check_host(Version::HTTP_11, &uri, &h).is_err());
/// assert!(check_host(Version::HTTP_10, &uri, &h).is_ok());
/// h.insert("host", "example.com:8080".parse().unwrap());
/// assert!(check_host(Version::HTTP_11, &uri, &h).is_ok());
/// ```
pub fn check_host(version: Version, uri: &Uri, headers: &HeaderMap) -> Result<(), Error> {
    let bad = |why: &'static str| Err(Error::new(ErrorKind::BadRequest).with_message(why));
    let mut lines = headers.get_all(HOST).iter();
    let host = match (lines.next(), lines.next()) {
        (_, Some(_)) => return bad("repeated Host"),
        (host, None) => host,
    };
    let host = match (host, version) {
        (Some(h), _) => h,
        (None, Version::HTTP_09 | Version::HTTP_10) => return Ok(()),
        (None, Version::HTTP_11) => return bad("missing Host"),
        // HTTP/2 and HTTP/3 carry the authority in a pseudo-header.
        (None, _) if uri.authority().is_some() => return Ok(()),
        (None, _) => return bad("missing :authority and Host"),
    };
    // An HTTP/1.1 absolute-form target overrides Host (RFC 9112 §3.2.2); HTTP/2 wants them equal.
    let http2_or_later = !matches!(
        version,
        Version::HTTP_09 | Version::HTTP_10 | Version::HTTP_11
    );
    let uri_authority = uri.authority().filter(|_| http2_or_later);
    if uri_authority.is_none() && is_plain_host(host.as_bytes()) {
        // The usual `name[:port]`, checked without building an `Authority` (which copies).
        return Ok(());
    }
    let Some(authority) = parse_host(host) else {
        return bad("Host is not a valid host[:port]");
    };
    match uri_authority {
        Some(uri_authority) if uri_authority != &authority => bad("Host differs from :authority"),
        _ => Ok(()),
    }
}

/// Whether `host` is a non-empty run of letters, digits, dots and hyphens, then nothing or `:` and
/// a port that fits a `u16` (possibly empty): a subset of what [`parse_host`] accepts, decided in
/// one pass over the bytes, with no allocation.
fn is_plain_host(host: &[u8]) -> bool {
    let name_len = host
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || b == b'.' || b == b'-'))
        .unwrap_or(host.len());
    if name_len == 0 {
        return false;
    }
    match host[name_len..].split_first() {
        None => true,
        Some((b':', port)) => {
            port.len() <= 5
                && port.iter().all(u8::is_ascii_digit)
                && port
                    .iter()
                    .try_fold(0u32, |n, &d| Some(n * 10 + u32::from(d - b'0')))
                    .is_some_and(|n| n <= u32::from(u16::MAX))
        }
        Some(_) => false,
    }
}

/// `uri-host [ ":" port ]` (RFC 9112 §3.2): an authority without userinfo, with a valid port.
fn parse_host(value: &HeaderValue) -> Option<Authority> {
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.contains(&b'@') {
        return None;
    }
    let authority = Authority::try_from(bytes).ok()?;
    let host = authority.host();
    if host.is_empty() {
        return None;
    }
    // What follows the host (IPv6 brackets included) is nothing or `:` and the port, which must be
    // digits that fit a `u16`; an empty port is allowed (RFC 3986 §3.2.3).
    let port_ok = match authority.as_str()[host.len()..].strip_prefix(':') {
        None => authority.as_str().len() == host.len(),
        Some(p) => {
            p.bytes().all(|b| b.is_ascii_digit()) && (p.is_empty() || p.parse::<u16>().is_ok())
        }
    };
    port_ok.then_some(authority)
}

/// Checks a backend response head before anything reaches the client:
///
/// - `HDR-7`: the header block (name + 2 + value per line) over `max_header_bytes` →
///   [`ErrorKind::InvalidResponse`] (502).
/// - An invalid or conflicting `Content-Length` → `InvalidResponse`.
/// - `LIM-5`: a `Content-Length` over `max_body` → [`ErrorKind::ResponseTooLarge`] (502 "Bad
///   Gateway: Response too large"), except for a response without a body: to a HEAD request
///   (`head_request`), 1xx, 204 or 304. Their `Content-Length` describes a body not sent.
///
/// ```
/// use http::{HeaderMap, StatusCode};
/// use reverseit_core::limits::check_response_head;
/// use reverseit_core::{ErrorKind, SizeLimit};
///
/// let mut h = HeaderMap::new();
/// h.insert("content-length", "5000".parse().unwrap());
/// let max = SizeLimit::Bytes(1000);
/// let err = check_response_head(StatusCode::OK, &h, 65_536, max, false).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::ResponseTooLarge);
/// assert!(check_response_head(StatusCode::OK, &h, 65_536, max, true).is_ok());
/// ```
pub fn check_response_head(
    status: StatusCode,
    headers: &HeaderMap,
    max_header_bytes: usize,
    max_body: SizeLimit,
    head_request: bool,
) -> Result<(), Error> {
    let mut total = 0usize;
    // Read in the same pass as the sizes, rather than looked up again.
    let mut len = None;
    for (name, value) in headers {
        total += field_line_len(name.as_str(), value);
        if total > max_header_bytes {
            return Err(Error::new(ErrorKind::InvalidResponse).with_message(format!(
                "response header block over {max_header_bytes} bytes"
            )));
        }
        if name == CONTENT_LENGTH {
            add_length_line(&mut len, value)
                .map_err(|why| Error::new(ErrorKind::InvalidResponse).with_message(why))?;
        }
    }
    let has_body = !(head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED);
    match len {
        Some(len) if has_body && max_body.exceeded_by(len) => {
            Err(Error::new(ErrorKind::ResponseTooLarge)
                .with_message(format!("Content-Length {len} over the limit of {max_body}")))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
