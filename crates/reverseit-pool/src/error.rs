//! Turning hyper's exchange errors into the proxy's [`Error`], with the retry rule of `ERR-3`.

use std::error::Error as StdError;

use http::Request;
use reverseit_core::{Error, ErrorKind};

use crate::body::ReqBody;

/// Why a dispatch did not produce a response.
#[derive(Debug)]
pub(crate) enum Failure {
    /// hyper gave the request back unsent (the connection closed first): send it elsewhere.
    /// Boxed: rare, and it would triple the size of every `Result` on the hot path.
    Unsent(Box<(Request<ReqBody>, hyper::Error)>),
    /// The exchange failed.
    Failed(Error),
}

/// Classifies a failed exchange.
///
/// Retryable when the connection had served before (a backend closing an idle keep-alive
/// connection is the common cause, and the failure came before any response) or when an HTTP/2
/// server refused the stream, which guarantees it did not process it (RFC 9113 §8.7).
pub(crate) fn exchange_error(e: hyper::Error, reused: bool) -> Error {
    // A limit or timeout raised by the caller's own body wrapper keeps its kind (`LIM-3`, `TMO-4`).
    if let Some(kind) = core_kind(&e) {
        return Error::new(kind).with_source(e);
    }
    if e.is_parse() || e.is_parse_status() {
        return Error::new(ErrorKind::InvalidResponse).with_source(e);
    }
    if e.is_user() {
        // The request could not be written: most often its body failed, i.e. the client side.
        return Error::new(ErrorKind::ClientGone)
            .with_message("the request body failed while being sent")
            .with_source(e);
    }
    let refused = h2_refused(&e);
    let err = Error::new(ErrorKind::BackendIo).with_source(e);
    if reused || refused {
        err.retryable()
    } else {
        err
    }
}

/// The kind of a `reverseit_core::Error` found in the cause chain.
fn core_kind(e: &(dyn StdError + 'static)) -> Option<ErrorKind> {
    let mut cur = e.source();
    while let Some(c) = cur {
        if let Some(core) = c.downcast_ref::<Error>() {
            return Some(core.kind());
        }
        cur = c.source();
    }
    None
}

/// Whether an HTTP/2 server refused the stream before processing it.
fn h2_refused(e: &(dyn StdError + 'static)) -> bool {
    let mut cur = e.source();
    while let Some(c) = cur {
        if let Some(h2) = c.downcast_ref::<h2::Error>() {
            return h2.reason() == Some(h2::Reason::REFUSED_STREAM)
                || (h2.is_go_away()
                    && h2.is_remote()
                    && h2.reason() == Some(h2::Reason::NO_ERROR));
        }
        cur = c.source();
    }
    false
}
