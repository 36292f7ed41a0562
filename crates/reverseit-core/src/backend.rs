//! The backend URL: scheme, host, port and path prefix, parsed and checked once.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use http::HeaderValue;
use http::uri::{Authority, Scheme as UriScheme, Uri};

use crate::config::{ConfigError, InvalidOption};

/// The scheme of a backend URL.
///
/// `ws` and `http` name the same plain-text backend, `wss` and `https` the same TLS one: a route
/// carries both HTTP and WebSocket traffic whatever its backend's scheme (`WS-10`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendScheme {
    /// `http://`
    Http,
    /// `https://`
    Https,
    /// `ws://`
    Ws,
    /// `wss://`
    Wss,
}

impl BackendScheme {
    /// Whether connections to this backend use TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, BackendScheme::Https | BackendScheme::Wss)
    }

    /// The port used when the URL names none: 443 with TLS, 80 without.
    pub fn default_port(self) -> u16 {
        if self.is_tls() { 443 } else { 80 }
    }

    /// The scheme as written in a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendScheme::Http => "http",
            BackendScheme::Https => "https",
            BackendScheme::Ws => "ws",
            BackendScheme::Wss => "wss",
        }
    }

    /// The HTTP scheme of the same backend (`ws` → `http`, `wss` → `https`).
    pub fn http_scheme(self) -> UriScheme {
        if self.is_tls() {
            UriScheme::HTTPS
        } else {
            UriScheme::HTTP
        }
    }

    /// The WebSocket scheme of the same backend (`http` → `ws`, `https` → `wss`).
    pub fn ws_str(self) -> &'static str {
        if self.is_tls() { "wss" } else { "ws" }
    }
}

/// A validated backend URL such as `http://127.0.0.1:4000/v1` or `wss://[::1]/socket`.
///
/// Userinfo, a query or a fragment are rejected rather than silently dropped (`CFG-2`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Backend {
    scheme: BackendScheme,
    /// The host without IPv6 brackets, as given to DNS, TLS SNI and `connect`.
    host: Box<str>,
    port: u16,
    /// The path prefix without a trailing slash: `""` for none, `"/v1"` for `.../v1/`.
    path_prefix: Box<str>,
    /// `host[:port]` with brackets around IPv6 literals and the port only when not the default.
    authority: Authority,
    host_header: HeaderValue,
}

impl Backend {
    /// Parses and checks a backend URL.
    ///
    /// ```
    /// use reverseit_core::Backend;
    ///
    /// let b = Backend::parse("https://[::1]:8443/v1/").unwrap();
    /// assert_eq!(b.host(), "::1");
    /// assert_eq!(b.port(), 8443);
    /// assert_eq!(b.path_prefix(), "/v1");
    /// assert_eq!(b.host_header(), "[::1]:8443");
    /// ```
    pub fn parse(url: &str) -> Result<Self, ConfigError> {
        parse(url).map_err(|reason| InvalidOption::new("backend", url, reason).into())
    }

    /// The URL's scheme.
    pub fn scheme(&self) -> BackendScheme {
        self.scheme
    }

    /// The host, without brackets for an IPv6 literal.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, explicit or the scheme's default.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether connections use TLS (`https` or `wss`).
    pub fn is_tls(&self) -> bool {
        self.scheme.is_tls()
    }

    /// The path prefix without a trailing slash (`""` when the URL has no path).
    pub fn path_prefix(&self) -> &str {
        &self.path_prefix
    }

    /// `host[:port]` as used in an HTTP/2 `:authority` or an absolute URI.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The `Host` header value sent to the backend (`HDR-4`): IPv6 literals bracketed, the port only
    /// when it is not the scheme's default.
    pub fn host_header(&self) -> &HeaderValue {
        &self.host_header
    }
}

fn parse(url: &str) -> Result<Backend, String> {
    if url.contains('#') {
        return Err("a backend URL must not have a fragment".into());
    }
    let uri = Uri::from_str(url).map_err(|e| format!("not a valid URL ({e})"))?;
    let scheme = match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("http") => BackendScheme::Http,
        Some(s) if s.eq_ignore_ascii_case("https") => BackendScheme::Https,
        Some(s) if s.eq_ignore_ascii_case("ws") => BackendScheme::Ws,
        Some(s) if s.eq_ignore_ascii_case("wss") => BackendScheme::Wss,
        Some(s) => return Err(format!("scheme `{s}` is not one of http, https, ws, wss")),
        None => return Err("the URL has no scheme (http, https, ws or wss)".into()),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| "the URL has no host".to_string())?;
    if authority.as_str().contains('@') {
        return Err("a backend URL must not carry userinfo (user:password@)".into());
    }
    if uri.query().is_some() {
        return Err("a backend URL must not have a query".into());
    }
    let raw_host = authority.host();
    let host = match raw_host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => {
            v6.parse::<Ipv6Addr>()
                .map_err(|_| format!("`{raw_host}` is not a valid IPv6 literal"))?;
            v6
        }
        None => raw_host,
    };
    if host.is_empty() {
        return Err("the URL has no host".into());
    }
    // `Authority::port_u16` hides an out-of-range port, so read what follows the host ourselves.
    let port = match authority.as_str()[raw_host.len()..].strip_prefix(':') {
        None => scheme.default_port(),
        Some(digits) => match digits.parse::<u16>() {
            Ok(0) => return Err("port 0 is not a valid backend port (1..=65535)".into()),
            Ok(p) => p,
            Err(_) => return Err(format!("port `{digits}` is not within 1..=65535")),
        },
    };
    let bracketed = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_ascii_lowercase()
    };
    let host_port = if port == scheme.default_port() {
        bracketed
    } else {
        format!("{bracketed}:{port}")
    };
    let authority_out =
        Authority::from_str(&host_port).map_err(|e| format!("invalid host ({e})"))?;
    let host_header =
        HeaderValue::from_str(&host_port).map_err(|e| format!("invalid host ({e})"))?;
    let path_prefix = uri.path().trim_end_matches('/');
    Ok(Backend {
        scheme,
        host: if host.contains(':') {
            host.into()
        } else {
            host.to_ascii_lowercase().into()
        },
        port,
        path_prefix: path_prefix.into(),
        authority: authority_out,
        host_header,
    })
}

impl FromStr for Backend {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Backend::parse(s)
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme.as_str(),
            self.authority,
            self.path_prefix
        )
    }
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Backend({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ports_and_prefixes() {
        // (url, host, port, prefix, host header)
        let cases = [
            ("http://example.com", "example.com", 80, "", "example.com"),
            (
                "https://example.com/",
                "example.com",
                443,
                "",
                "example.com",
            ),
            ("ws://h:80/v1", "h", 80, "/v1", "h"),
            ("wss://h:443/v1/", "h", 443, "/v1", "h"),
            ("http://h:8080/a/b", "h", 8080, "/a/b", "h:8080"),
            ("https://h:80", "h", 80, "", "h:80"),
            ("http://[::1]:4000", "::1", 4000, "", "[::1]:4000"),
            ("http://[::1]", "::1", 80, "", "[::1]"),
            (
                "HTTP://Example.COM:81",
                "example.com",
                81,
                "",
                "example.com:81",
            ),
        ];
        for (url, host, port, prefix, hh) in cases {
            let b = Backend::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(b.host(), host, "{url}");
            assert_eq!(b.port(), port, "{url}");
            assert_eq!(b.path_prefix(), prefix, "{url}");
            assert_eq!(b.host_header(), hh, "{url}");
        }
    }

    // CFG-2: bad backend URLs name the option, the value and the reason.
    #[test]
    fn cfg_2_rejects_bad_backend_urls() {
        let cases = [
            ("ftp://h", "scheme `ftp`"),
            ("h:80", "scheme"),
            ("http://", "not a valid URL"),
            ("http://user:pw@h", "userinfo"),
            ("http://h/?a=1", "query"),
            ("http://h/#frag", "fragment"),
            ("http://h:0", "port 0"),
            ("http://h:70000", "port `70000`"),
            ("http://[zz::1]", "not a valid"),
            ("/just/a/path", "scheme"),
        ];
        for (url, needle) in cases {
            let err = Backend::parse(url).expect_err(url).to_string();
            assert!(err.contains("backend"), "{url}: {err}");
            assert!(err.contains(url), "{url}: {err}");
            assert!(err.contains(needle), "{url}: {err} (wanted {needle})");
        }
    }

    #[test]
    fn scheme_pairs_name_one_backend() {
        assert_eq!(BackendScheme::Ws.http_scheme(), UriScheme::HTTP);
        assert_eq!(BackendScheme::Wss.http_scheme(), UriScheme::HTTPS);
        assert_eq!(BackendScheme::Https.ws_str(), "wss");
        assert!(!BackendScheme::Ws.is_tls());
    }
}
