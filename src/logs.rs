//! Where log lines go: stderr, written by a thread of their own that starts with the first line.
//!
//! Lines are formatted where they happen and queued for the writer thread, which writes what has
//! queued up since its last write in one system call: with the access log on, a write per request
//! on the proxy's thread cost about a sixth of a small request's CPU time. The queue is bounded,
//! and when it is full (stderr is a pipe nobody reads, a terminal scrolled back) lines are dropped
//! rather than stalling the proxy: traffic comes before its log.
//!
//! The thread starts with the first line actually written, not before: a process with a thread
//! besides the runtime's pays for it in every system call (glibc's cancellation bookkeeping, about
//! 1 % of a small request's instructions), which a proxy run with logs off (`RUST_LOG=warn`) need
//! not pay.

use std::io::{self, BufWriter, IsTerminal, Write};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Writes waiting for the writer thread at most: a line each, or a batch of access-log lines of at
/// most `access_log::BATCH_BYTES`, so about 32 MiB at most when stderr takes nothing.
const LOG_LINES_QUEUED: usize = 1024;
/// The most the writer thread writes in one system call.
const LOG_WRITE_BYTES: usize = 64 * 1024;

/// stderr through the writer thread, started by the first write. Clones share the thread.
#[derive(Clone, Default)]
pub(crate) struct Stderr {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    writer: OnceLock<NonBlocking>,
    /// Dropping it drains the queue and ends the thread (see [`Stderr::finish`]).
    guard: Mutex<Option<WorkerGuard>>,
}

impl Stderr {
    /// The writer thread's queue, the thread started on first use.
    fn queue(&self) -> &NonBlocking {
        self.inner.writer.get_or_init(|| {
            let (writer, guard) = NonBlockingBuilder::default()
                .lossy(true)
                .buffered_lines_limit(LOG_LINES_QUEUED)
                .thread_name("reverseit-log")
                .finish(BufWriter::with_capacity(LOG_WRITE_BYTES, io::stderr()));
            *self.lock_guard() = Some(guard);
            writer
        })
    }

    /// Writes out every queued line and ends the writer thread, if it started. Lines written
    /// afterwards are dropped.
    pub(crate) fn finish(&self) {
        drop(self.lock_guard().take());
    }

    fn lock_guard(&self) -> std::sync::MutexGuard<'_, Option<WorkerGuard>> {
        self.inner
            .guard
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.queue().clone().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = NonBlocking;

    fn make_writer(&'a self) -> NonBlocking {
        self.queue().clone()
    }
}

/// Installs the log subscriber: `RUST_LOG` sets the filter, `info` by default (which includes the
/// access log). Returns the output, for the access log and for [`Stderr::finish`] at exit.
pub(crate) fn init() -> Stderr {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let out = Stderr::default();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(out.clone())
        // Colours only for a person at a terminal, not in files or log collectors.
        .with_ansi(io::stderr().is_terminal())
        .init();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_thread_starts_with_the_first_write_and_ends_with_finish() {
        let mut out = Stderr::default();
        let clone = out.clone();
        // Nothing written: no thread, nothing to finish.
        assert!(out.inner.writer.get().is_none());
        clone.finish();
        assert!(out.inner.writer.get().is_none());
        // An empty write shows nothing on the test's stderr but starts the thread, once, for
        // every clone.
        assert_eq!(out.write(b"").unwrap(), 0);
        assert!(clone.inner.writer.get().is_some());
        assert!(clone.lock_guard().is_some());
        let _ = clone.make_writer();
        out.finish();
        assert!(clone.lock_guard().is_none(), "finish ends the thread");
    }
}
