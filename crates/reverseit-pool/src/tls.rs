//! rustls client configurations: one per [`Target`](crate::Target), built when the target is.
//!
//! Trust anchors are the Mozilla roots from `webpki-roots`, plus the certificates of the route's
//! `ca_file`. The server name sent as SNI (and verified) is the backend's host; for an IP literal
//! rustls sends no SNI and checks the certificate's IP address SAN instead (RFC 6066 §3 forbids IP
//! literals in SNI).
//!
//! `verify_tls = false` installs [`AcceptAnyCert`] for that target only. It accepts any
//! certificate chain for any name, so anyone able to intercept the path to the backend (DNS, ARP,
//! a router) can read and alter all traffic. Handshake signatures are still checked, which keeps the
//! handshake well-formed but proves nothing about who holds the key.

use std::path::Path;
use std::sync::Arc;

use reverseit_core::{ConfigError, InvalidOption};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// ALPN protocol id of HTTP/2 over TLS (RFC 9113 §3.2).
pub(crate) const ALPN_H2: &[u8] = b"h2";
/// ALPN protocol id of HTTP/1.1 (RFC 7301 §6).
pub(crate) const ALPN_HTTP1: &[u8] = b"http/1.1";

/// What a target's TLS connections are built from.
pub(crate) struct TlsSettings {
    pub(crate) connector: tokio_rustls::TlsConnector,
    pub(crate) server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// Builds the client configuration for one target.
///
/// `alpn` lists the protocols offered, most preferred first.
pub(crate) fn settings(
    host: &str,
    verify: bool,
    ca_file: Option<&Path>,
    alpn: &[&[u8]],
) -> Result<TlsSettings, ConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("invariant: the ring provider supports rustls' default protocol versions");
    let mut config = if verify {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(path) = ca_file {
            for cert in load_ca_file(path)? {
                roots.add(cert).map_err(|e| ca_error(path, e.to_string()))?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth()
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let server_name = ServerName::try_from(host.to_owned()).map_err(|e| {
        ConfigError::from(InvalidOption::new(
            "backend",
            host,
            format!("not usable as a TLS server name ({e})"),
        ))
    })?;
    Ok(TlsSettings {
        connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        server_name,
    })
}

/// Reads every certificate of a PEM file; a file without one is an error.
fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| ca_error(path, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ca_error(path, e.to_string()))?;
    if certs.is_empty() {
        return Err(ca_error(path, "the file holds no PEM certificate".into()));
    }
    Ok(certs)
}

fn ca_error(path: &Path, reason: String) -> ConfigError {
    InvalidOption::new(
        "ca_file",
        path.display(),
        format!("cannot load trust anchors: {reason}"),
    )
    .into()
}

/// The verifier behind `verify_tls = false`: every certificate passes (see the module docs for why
/// that is dangerous); handshake signatures are still verified with the provider's algorithms.
#[derive(Debug)]
struct AcceptAnyCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
