//! The small value types that options take: protocol sets, size limits, the forwarded-headers mode
//! and the error response.

use std::fmt;

use http::StatusCode;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// One upstream protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.1.
    Http1,
    /// HTTP/2: by ALPN over TLS, or prior-knowledge h2c when it is the only protocol (`POOL-4`).
    Http2,
}

/// A non-empty set of upstream protocols (`protocols`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Protocols {
    http1: bool,
    http2: bool,
}

impl Protocols {
    /// HTTP/1.1 only: the default.
    pub const HTTP1: Protocols = Protocols {
        http1: true,
        http2: false,
    };
    /// HTTP/2 only: prior-knowledge h2c on a plain backend, ALPN `h2` only over TLS.
    pub const HTTP2: Protocols = Protocols {
        http1: false,
        http2: true,
    };
    /// Both: ALPN chooses over TLS; a plain backend gets HTTP/1.1.
    pub const BOTH: Protocols = Protocols {
        http1: true,
        http2: true,
    };

    /// The set of the given protocols, or `None` for an empty list.
    pub fn from_list(list: &[Protocol]) -> Option<Protocols> {
        let p = Protocols {
            http1: list.contains(&Protocol::Http1),
            http2: list.contains(&Protocol::Http2),
        };
        (p.http1 || p.http2).then_some(p)
    }

    /// Whether HTTP/1.1 may be spoken.
    pub fn http1(self) -> bool {
        self.http1
    }

    /// Whether HTTP/2 may be spoken.
    pub fn http2(self) -> bool {
        self.http2
    }
}

impl Default for Protocols {
    fn default() -> Self {
        Protocols::HTTP1
    }
}

impl fmt::Debug for Protocols {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Protocols {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.http1, self.http2) {
            (true, true) => f.write_str("[http1, http2]"),
            (false, true) => f.write_str("[http2]"),
            _ => f.write_str("[http1]"),
        }
    }
}

/// How `X-Forwarded-*` headers are written toward the backend (`forwarded_headers`, `HDR-3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ForwardedHeaders {
    /// Append the client address to the existing `X-Forwarded-For` chain. The default.
    #[default]
    Append,
    /// Drop every client-sent forwarding header and write the proxy's own: for an edge proxy.
    Replace,
    /// Leave forwarding headers as the client sent them (`false` in the original).
    Off,
}

impl<'de> Deserialize<'de> for ForwardedHeaders {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ForwardedHeaders;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"append\", \"replace\" or false")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                if v {
                    Err(E::invalid_value(de::Unexpected::Bool(true), &self))
                } else {
                    Ok(ForwardedHeaders::Off)
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v {
                    "append" => Ok(ForwardedHeaders::Append),
                    "replace" => Ok(ForwardedHeaders::Replace),
                    "false" => Ok(ForwardedHeaders::Off),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A size limit in bytes, or no limit (`"infinity"`, the original's `:infinity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SizeLimit {
    /// At most this many bytes.
    Bytes(u64),
    /// No limit.
    Infinity,
}

impl SizeLimit {
    /// Whether `size` bytes exceed the limit.
    #[inline]
    pub fn exceeded_by(self, size: u64) -> bool {
        match self {
            SizeLimit::Bytes(max) => size > max,
            SizeLimit::Infinity => false,
        }
    }

    /// The limit in bytes, `None` for no limit.
    pub fn bytes(self) -> Option<u64> {
        match self {
            SizeLimit::Bytes(b) => Some(b),
            SizeLimit::Infinity => None,
        }
    }
}

impl fmt::Display for SizeLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SizeLimit::Bytes(b) => write!(f, "{b}"),
            SizeLimit::Infinity => f.write_str("\"infinity\""),
        }
    }
}

impl<'de> Deserialize<'de> for SizeLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = SizeLimit;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size in bytes or \"infinity\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(SizeLimit::Bytes(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v)
                    .map(SizeLimit::Bytes)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                if v == "infinity" {
                    Ok(SizeLimit::Infinity)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// The answer for a backend that cannot be reached or fails before responding (`error_response`,
/// `ERR-1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorResponse {
    status: StatusCode,
    body: Box<str>,
}

impl ErrorResponse {
    /// The status sent (400..=599).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The `text/plain` body sent.
    pub fn body(&self) -> &str {
        &self.body
    }

    pub(crate) fn new(status: StatusCode, body: impl Into<Box<str>>) -> Self {
        Self {
            status,
            body: body.into(),
        }
    }
}

impl Default for ErrorResponse {
    fn default() -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            super::defaults::ERROR_RESPONSE_BODY,
        )
    }
}
