//! `X-Forwarded-*` toward the backend (`HDR-3`).

use std::cell::RefCell;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::thread::LocalKey;

use bytes::Bytes;
use http::header::FORWARDED;
use http::header::{Entry, OccupiedEntry};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::ClientInfo;
use crate::ForwardedHeaders;

/// `X-Forwarded-For`: the chain of client addresses.
pub(super) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`: the scheme the client used.
pub(super) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`: the client's `Host` (or `:authority`).
pub(super) const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `X-Forwarded-Port`: the port the client connected to.
pub(super) const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");

/// Writes the forwarding headers for `mode`. Runs after hop-by-hop removal, so a client cannot make
/// the proxy drop its own lines by naming them in `Connection`.
pub(super) fn apply(
    mode: ForwardedHeaders,
    headers: &mut HeaderMap,
    client: &ClientInfo,
    client_host: Option<&HeaderValue>,
) {
    let append = match mode {
        ForwardedHeaders::Off => return,
        ForwardedHeaders::Append => true,
        ForwardedHeaders::Replace => false,
    };
    let ip = address_value(client.peer);
    if append {
        // One lookup for reading the incoming chain and writing the new one.
        match headers.entry(X_FORWARDED_FOR) {
            Entry::Vacant(slot) => {
                slot.insert(ip);
            }
            Entry::Occupied(mut lines) => {
                let chain = appended_chain(&lines, ip.as_bytes());
                lines.insert(chain.unwrap_or(ip));
            }
        }
    } else {
        for name in [
            &X_FORWARDED_PROTO,
            &X_FORWARDED_HOST,
            &X_FORWARDED_PORT,
            &FORWARDED,
        ] {
            headers.remove(name);
        }
        // Drops every client-sent X-Forwarded-For line.
        headers.insert(X_FORWARDED_FOR, ip);
    }
    let proto = if client.tls { "https" } else { "http" };
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    if let Some(host) = client_host {
        headers.insert(X_FORWARDED_HOST, host.clone());
    }
    headers.insert(X_FORWARDED_PORT, port_value(client.port));
}

/// Never used in practice: an IP address always is a valid header value.
const UNKNOWN: HeaderValue = HeaderValue::from_static("unknown");

/// Every incoming `X-Forwarded-For` line in order, then `ip`, joined with ", " into one value built
/// with a single exactly-sized allocation. `None` when there is no incoming chain.
fn appended_chain(incoming: &OccupiedEntry<'_, HeaderValue>, ip: &[u8]) -> Option<HeaderValue> {
    let lines = || {
        incoming
            .iter()
            .map(|v| v.as_bytes().trim_ascii())
            .filter(|v| !v.is_empty())
    };
    let (count, len) = lines().fold((0, 0), |(n, len), v| (n + 1, len + v.len()));
    if count == 0 {
        return None;
    }
    let mut buf = Vec::with_capacity(len + 2 * count + ip.len());
    for line in lines() {
        buf.extend_from_slice(line);
        buf.extend_from_slice(b", ");
    }
    buf.extend_from_slice(ip);
    // Joining valid values with ", " and an address keeps the value valid; checked all the same.
    HeaderValue::from_maybe_shared(Bytes::from(buf)).ok()
}

fn port_value(port: u16) -> HeaderValue {
    match port {
        80 => HeaderValue::from_static("80"),
        443 => HeaderValue::from_static("443"),
        p => remembered(&LAST_PORT, p, |p| {
            let mut text = ShortText::empty();
            // Cannot fail: five digits at most.
            let _ = write!(text, "{p}");
            owned_value(text)
        }),
    }
}

/// The client address as a header value.
fn address_value(peer: IpAddr) -> HeaderValue {
    remembered(&LAST_ADDRESS, peer, |peer| {
        owned_value(ShortText::new(peer))
    })
}

/// The last value written on this thread, with what it was written for.
type Memo<K> = RefCell<Option<(K, HeaderValue)>>;

thread_local! {
    // Consecutive requests mostly come from one address (a keep-alive client, a load balancer)
    // to one listener port, and a copy of a value only counts a reference, where writing one
    // formats the text and allocates its buffer.
    static LAST_ADDRESS: Memo<IpAddr> = const { RefCell::new(None) };
    static LAST_PORT: Memo<u16> = const { RefCell::new(None) };
}

/// The value for `key`: the one `memo` holds if it was made for `key`, else a new one from
/// `make`, which `memo` then holds. Without the memo (as the thread ends), made each time.
fn remembered<K: Copy + PartialEq>(
    memo: &'static LocalKey<Memo<K>>,
    key: K,
    make: impl Fn(K) -> HeaderValue,
) -> HeaderValue {
    memo.try_with(|cell| {
        let mut last = cell.borrow_mut();
        match &*last {
            Some((seen, value)) if *seen == key => value.clone(),
            _ => {
                let value = make(key);
                *last = Some((key, value.clone()));
                value
            }
        }
    })
    .unwrap_or_else(|_| make(key))
}

/// A header value that owns its text. Unlike a value made from a `Vec` (which `Bytes` turns into
/// a shared allocation on its first clone), its clones, such as the copy a proxy keeps to resend
/// a request, only count references.
fn owned_value(text: ShortText) -> HeaderValue {
    HeaderValue::from_maybe_shared(Bytes::from_owner(text)).unwrap_or(UNKNOWN)
}

/// A short value written on the stack: a port, or an IP address (IPv6 without brackets, an
/// IPv4-mapped IPv6 address as the IPv4 address it is).
struct ShortText {
    // The longest IPv6 text is 45 bytes ("ffff:...:255.255.255.255").
    buf: [u8; 48],
    len: usize,
}

impl ShortText {
    fn empty() -> Self {
        ShortText {
            buf: [0; 48],
            len: 0,
        }
    }

    fn new(ip: IpAddr) -> Self {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let mut text = ShortText::empty();
        match ip {
            // The common case, written without the formatting machinery.
            IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        text.push(b'.');
                    }
                    if octet >= 100 {
                        text.push(b'0' + octet / 100);
                    }
                    if octet >= 10 {
                        text.push(b'0' + octet / 10 % 10);
                    }
                    text.push(b'0' + octet % 10);
                }
            }
            // Cannot fail: the buffer holds the longest address.
            IpAddr::V6(v6) => {
                let _ = write!(text, "{v6}");
            }
        }
        text
    }

    /// Appends one byte; the callers stay within the 15 bytes of an IPv4 address.
    fn push(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl AsRef<[u8]> for ShortText {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl std::fmt::Write for ShortText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
