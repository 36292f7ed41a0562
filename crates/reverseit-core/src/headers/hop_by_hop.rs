//! Hop-by-hop fields (RFC 9110 §7.6.1) and the list syntax they are named in (RFC 9110 §5.6.1).

use http::header::{CONNECTION, TE};
use http::{HeaderMap, HeaderName, HeaderValue};

/// The fields that only make sense on one connection, whatever `Connection` says (`HDR-1`), in
/// the order of [`hop_by_hop_index`].
///
/// RFC 9110 §7.6.1 names `Connection`, `Proxy-Connection`, `Keep-Alive`, `TE`, `Transfer-Encoding`
/// and `Upgrade`; `Trailer` (its announcement belongs to the framing) and `Proxy-Authenticate` /
/// `Proxy-Authorization` (RFC 9110 §11.7: meant for this proxy, not the next hop) complete the list.
const HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    http::header::PROXY_AUTHENTICATE,
    http::header::PROXY_AUTHORIZATION,
    HeaderName::from_static("proxy-connection"),
    TE,
    http::header::TRAILER,
    http::header::TRANSFER_ENCODING,
    http::header::UPGRADE,
];

/// Whether `name` is one of the fixed hop-by-hop fields of `HDR-1` (RFC 9110 §7.6.1).
///
/// Fields named in a `Connection` line are hop-by-hop too, but only for that message: see
/// [`remove_hop_by_hop`].
///
/// ```
/// use http::header::{CONTENT_TYPE, TRANSFER_ENCODING};
/// use http::HeaderName;
/// use reverseit_core::headers::is_hop_by_hop;
///
/// assert!(is_hop_by_hop(&TRANSFER_ENCODING));
/// assert!(is_hop_by_hop(&HeaderName::from_static("keep-alive")));
/// assert!(!is_hop_by_hop(&CONTENT_TYPE));
/// ```
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    hop_by_hop_index(name).is_some()
}

/// The position of `name` in [`HOP_BY_HOP`]. Names are stored lowercase, so comparing the text is
/// case-insensitive.
///
/// Always inlined: it runs for every header of every message, and out of line (which the compiler
/// chose once the configuration check called it too) it cost about 100 instructions per request.
#[inline(always)]
fn hop_by_hop_index(name: &HeaderName) -> Option<usize> {
    Some(match name.as_str() {
        "connection" => 0,
        "keep-alive" => 1,
        "proxy-authenticate" => 2,
        "proxy-authorization" => 3,
        "proxy-connection" => 4,
        "te" => TE_INDEX,
        "trailer" => 6,
        "transfer-encoding" => TRANSFER_ENCODING_INDEX,
        "upgrade" => 8,
        _ => return None,
    })
}

const TE_INDEX: usize = 5;
const TRANSFER_ENCODING_INDEX: usize = 7;

/// Removes every hop-by-hop field from `headers` (`HDR-1`, RFC 9110 §7.6.1): the fixed list of
/// [`is_hop_by_hop`] and every field named in any `Connection` line (comma-separated,
/// case-insensitive; tokens that are not valid field names are ignored).
///
/// With `keep_te_trailers`, a `TE` field offering `trailers` becomes exactly `te: trailers` instead
/// of being removed: an HTTP/2 backend needs it for gRPC (RFC 9113 §8.2.2 allows no other `TE`
/// value), even when `Connection` names `TE` as RFC 9110 §10.1.4 asks.
///
/// ```
/// use http::HeaderMap;
/// use reverseit_core::headers::remove_hop_by_hop;
///
/// let mut h = HeaderMap::new();
/// h.insert("connection", "keep-alive, X-Session".parse().unwrap());
/// h.insert("x-session", "abc".parse().unwrap());
/// h.insert("te", "trailers, gzip".parse().unwrap());
/// h.insert("accept", "*/*".parse().unwrap());
/// remove_hop_by_hop(&mut h, true);
/// assert_eq!(h.len(), 2);
/// assert_eq!(h["te"], "trailers");
/// assert_eq!(h["accept"], "*/*");
/// ```
pub fn remove_hop_by_hop(headers: &mut HeaderMap, keep_te_trailers: bool) {
    strip(headers, keep_te_trailers);
}

/// What [`strip`] found.
pub(crate) struct Stripped {
    /// The message was framed by `Transfer-Encoding`.
    pub(crate) transfer_encoding: bool,
}

/// [`remove_hop_by_hop`], saying what it removed.
#[inline]
pub(crate) fn strip(headers: &mut HeaderMap, keep_te_trailers: bool) -> Stripped {
    // One scan over the distinct names rather than nine lookups: a message carries one or two of
    // these fields, or none (HTTP/2).
    let mut present = 0u16;
    for name in headers.keys() {
        if let Some(i) = hop_by_hop_index(name) {
            present |= 1 << i;
        }
    }
    let stripped = Stripped {
        transfer_encoding: present & (1 << TRANSFER_ENCODING_INDEX) != 0,
    };
    if present == 0 {
        return stripped;
    }
    let keep_te = keep_te_trailers && present & (1 << TE_INDEX) != 0 && accepts_trailers(headers);
    if present & 1 != 0 {
        remove_connection_options(headers);
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate().skip(1) {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
    if keep_te {
        headers.insert(TE, HeaderValue::from_static("trailers"));
    }
    stripped
}

/// Whether the client offers to accept trailers (`TE: trailers`, RFC 9110 §10.1.4), read before
/// [`remove_hop_by_hop`] removes `TE`: an HTTP/1.1 client gets trailers only then (`HDR-8`).
///
/// ```
/// use http::HeaderMap;
/// use reverseit_core::headers::accepts_trailers;
///
/// let mut h = HeaderMap::new();
/// assert!(!accepts_trailers(&h));
/// h.insert("te", "deflate, Trailers".parse().unwrap());
/// assert!(accepts_trailers(&h));
/// ```
pub fn accepts_trailers(headers: &HeaderMap) -> bool {
    headers.get_all(TE).iter().any(|v| has_token(v, "trailers"))
}

/// Removes `Connection` and every field its lines name (RFC 9110 §7.6.1).
fn remove_connection_options(headers: &mut HeaderMap) {
    let mut lines = headers.get_all(CONNECTION).iter();
    match (lines.next().is_some(), lines.next().is_some()) {
        (false, _) => {}
        // The usual case: one line, moved out of the map without copying.
        (true, false) => {
            if let Some(line) = headers.remove(CONNECTION) {
                remove_named(headers, &line);
            }
        }
        // Rare: several lines. Cloning a `HeaderValue` only bumps a reference count.
        (true, true) => {
            let lines: Vec<HeaderValue> = headers.get_all(CONNECTION).iter().cloned().collect();
            headers.remove(CONNECTION);
            for line in &lines {
                remove_named(headers, line);
            }
        }
    }
}

fn remove_named(headers: &mut HeaderMap, connection_line: &HeaderValue) {
    for token in list_elements(connection_line) {
        // `close` names no field, and the fixed fields are removed by the caller anyway when
        // present: the usual `keep-alive`, `close` and `upgrade` cost no lookup.
        if token.eq_ignore_ascii_case(b"close")
            || HOP_BY_HOP
                .iter()
                .any(|name| token.eq_ignore_ascii_case(name.as_str().as_bytes()))
        {
            continue;
        }
        // Looking a `&str` up lowercases it on the stack and treats an invalid name as absent.
        if let Ok(name) = std::str::from_utf8(token) {
            headers.remove(name);
        }
    }
}

/// The elements of a comma-separated list field line (RFC 9110 §5.6.1), trimmed of whitespace,
/// empty elements skipped.
pub(crate) fn list_elements(value: &HeaderValue) -> impl Iterator<Item = &[u8]> {
    value
        .as_bytes()
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|e| !e.is_empty())
}

/// Whether a list field line has `token` as one of its elements, ignoring case and any
/// `;parameters` after it.
pub(crate) fn has_token(value: &HeaderValue, token: &str) -> bool {
    list_elements(value).any(|e| {
        let name = e.split(|&b| b == b';').next().unwrap_or(e).trim_ascii();
        name.eq_ignore_ascii_case(token.as_bytes())
    })
}
