//! The command line, exactly as `cli.md` fixes it: demo mode, `--backend`, `--config`, `--check`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use reverseit_core::Protocol;

/// The standalone ReverseIt proxy.
///
/// With neither --backend nor --config it runs a demo: a built-in backend behind the proxy.
#[derive(Debug, Parser)]
#[command(name = "reverseit", version, about, long_about = None)]
pub(crate) struct Args {
    /// Proxy every request to this backend (http, https, ws or wss URL), mounted at `/`.
    #[arg(long, value_name = "URL", conflicts_with = "config")]
    pub(crate) backend: Option<String>,

    /// With --backend: a path prefix removed from requests before they are forwarded.
    #[arg(long, value_name = "PREFIX", requires = "backend")]
    pub(crate) strip_path: Option<String>,

    /// With --backend: upstream protocols, comma-separated (http1, http2).
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        value_parser = parse_protocol,
        requires = "backend"
    )]
    pub(crate) protocols: Option<Vec<Protocol>>,

    /// Address to listen on (default 127.0.0.1:8080; overrides the config file's `listen`).
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<SocketAddr>,

    /// Read routes and every option from this TOML file.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// With --config: validate the file and exit (0 when valid, 2 otherwise).
    #[arg(long, requires = "config")]
    pub(crate) check: bool,
}

fn parse_protocol(s: &str) -> Result<Protocol, String> {
    match s.trim() {
        "http1" => Ok(Protocol::Http1),
        "http2" => Ok(Protocol::Http2),
        other => Err(format!("`{other}` is not a protocol: use http1 or http2")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn parses_backend_mode() {
        let a = Args::try_parse_from([
            "reverseit",
            "--backend",
            "http://127.0.0.1:4000",
            "--strip-path",
            "/api",
            "--protocols",
            "http1,http2",
            "--listen",
            "127.0.0.1:0",
        ])
        .unwrap();
        assert_eq!(a.protocols, Some(vec![Protocol::Http1, Protocol::Http2]));
        assert_eq!(a.strip_path.as_deref(), Some("/api"));
    }

    #[test]
    fn refuses_contradictions() {
        for args in [
            &["reverseit", "--check"][..],
            &["reverseit", "--strip-path", "/api"],
            &["reverseit", "--backend", "http://h", "--config", "f.toml"],
            &["reverseit", "--backend", "http://h", "--protocols", "http3"],
            &["reverseit", "--listen", "nowhere"],
        ] {
            let e = Args::try_parse_from(args).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}");
        }
    }
}
