//! Access-log lines gathered and written together: one write for all the lines of a turn of the
//! event loop, not one per request.
//!
//! A write per line cost about a sixth of a small request's CPU time (a system call, or a hand-off
//! to the log thread with its wake-up). Here a request appends its line to a shared buffer; the
//! first line into an empty buffer wakes a task that writes the whole buffer, and that task runs
//! after the tasks already woken, so the lines of everything those did go out together. A buffer
//! that reaches [`BATCH_BYTES`] is written at once, which bounds the memory.

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// The most a buffer of lines holds before it is written without waiting for the flush task:
/// a few hundred lines.
pub(crate) const BATCH_BYTES: usize = 32 * 1024;

/// Where access-log lines go: normally stderr through the log thread (which never blocks a
/// caller, see `init_logs`).
pub(crate) type Output = Box<dyn Write + Send>;

/// The lines waiting to be written and where they go. Lines still buffered when the last handle
/// is dropped are written then.
pub(crate) struct LineBatch {
    state: Mutex<State>,
    /// Shared with the flush task, which holds no strong handle to the batch: the batch's drop
    /// wakes it to end.
    ready: Arc<Notify>,
}

struct State {
    lines: Vec<u8>,
    out: Output,
}

impl std::fmt::Debug for LineBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineBatch").finish_non_exhaustive()
    }
}

impl LineBatch {
    /// A batch writing to `out`, and the task that writes it: spawn the task on the runtime that
    /// serves the requests. The task ends once the batch is dropped.
    pub(crate) fn new(out: Output) -> (Arc<Self>, impl Future<Output = ()> + Send + 'static) {
        let ready = Arc::new(Notify::new());
        let batch = Arc::new(Self {
            state: Mutex::new(State {
                lines: Vec::new(),
                out,
            }),
            ready: Arc::clone(&ready),
        });
        let weak = Arc::downgrade(&batch);
        let flusher = async move {
            loop {
                ready.notified().await;
                let Some(batch) = weak.upgrade() else {
                    return;
                };
                batch.lock().flush();
            }
        };
        (batch, flusher)
    }

    /// Appends one line with `write_line`, then writes the buffer if it is full, or wakes the
    /// flush task if it was empty.
    pub(crate) fn push(&self, write_line: impl FnOnce(&mut Vec<u8>)) {
        let mut state = self.lock();
        let was_empty = state.lines.is_empty();
        write_line(&mut state.lines);
        if state.lines.len() >= BATCH_BYTES {
            state.flush();
        } else if was_empty {
            self.ready.notify_one();
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while a line was being appended leaves at worst a partial line: keep logging.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    fn flush(&mut self) {
        if self.lines.is_empty() {
            return;
        }
        // A log that cannot be written (stderr closed) must not stop the proxy: the lines are
        // dropped.
        let _ = self.out.write_all(&self.lines);
        let _ = self.out.flush();
        self.lines.clear();
        if self.lines.capacity() > BATCH_BYTES {
            // One line far longer than the rest (a huge path) does not keep its buffer.
            self.lines = Vec::new();
        }
    }
}

impl Drop for LineBatch {
    fn drop(&mut self) {
        self.lock().flush();
        self.ready.notify_one();
    }
}

#[cfg(test)]
#[path = "batch/tests.rs"]
mod tests;
