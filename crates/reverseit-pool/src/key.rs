//! What makes two targets share connections.

use std::path::PathBuf;

use reverseit_core::{Backend, Protocols};

/// The identity of a pooled backend: two targets with equal keys share one set of connections.
///
/// Everything that changes what a connection *is* belongs here (where it goes, whether and how the
/// peer was verified, which protocols were offered); per-route timeouts do not, as they only
/// change how long a caller waits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    tls: bool,
    host: Box<str>,
    port: u16,
    verify_tls: bool,
    /// The extra trust anchors, by file: routes naming the same `ca_file` trust the same roots.
    ca_file: Option<PathBuf>,
    protocols: Protocols,
}

impl Key {
    pub(crate) fn new(
        backend: &Backend,
        verify_tls: bool,
        ca_file: Option<PathBuf>,
        protocols: Protocols,
    ) -> Self {
        let tls = backend.is_tls();
        Self {
            tls,
            host: backend.host().into(),
            port: backend.port(),
            // Without TLS these settings change nothing: do not split the pool on them.
            verify_tls: verify_tls || !tls,
            ca_file: ca_file.filter(|_| tls),
            protocols,
        }
    }
}
