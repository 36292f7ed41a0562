//! Graceful shutdown of every bridged connection, and the count of live bridges.

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Notify;
use tokio::sync::futures::Notified;

/// A handle the server keeps to close every bridged connection with 1001 on both sides.
///
/// Clones share one state. Every [`bridge`](crate::bridge) given this handle counts itself in
/// [`Shutdown::active`] while it runs; [`Shutdown::trigger`] makes each of them (and every later one)
/// close both sides with 1001 "server shutting down" and return; [`Shutdown::wait_idle`] waits for the
/// count to reach zero.
///
/// ```no_run
/// # async fn demo(io: tokio::io::DuplexStream, backend: tokio::io::DuplexStream) {
/// use reverseit_ws::{BridgeConfig, Shutdown};
///
/// let shutdown = Shutdown::new();
/// let config = BridgeConfig::default();
/// let handle = shutdown.clone();
/// tokio::spawn(async move { reverseit_ws::bridge(io, backend, &config, &handle).await });
/// // ... on SIGTERM:
/// shutdown.trigger();
/// shutdown.wait_idle().await;
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    triggered: AtomicBool,
    /// Wakes the bridges when `triggered` becomes true.
    stop: Notify,
    active: AtomicUsize,
    /// Wakes `wait_idle` callers when `active` drops to zero.
    idle: Notify,
}

impl Shutdown {
    /// A fresh handle: not triggered, no bridge running.
    pub fn new() -> Self {
        Self::default()
    }

    /// Closes every running bridge (and every bridge started later) with 1001 on both sides.
    pub fn trigger(&self) {
        // The flag first: a bridge that starts listening after `notify_waiters` still sees it.
        self.inner.triggered.store(true, Ordering::SeqCst);
        self.inner.stop.notify_waiters();
    }

    /// Whether [`Shutdown::trigger`] was called.
    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::SeqCst)
    }

    /// How many bridges using this handle are running (closing handshakes included).
    pub fn active(&self) -> usize {
        self.inner.active.load(Ordering::SeqCst)
    }

    /// Waits until no bridge using this handle is running.
    pub async fn wait_idle(&self) {
        loop {
            let mut idle = pin!(self.inner.idle.notified());
            // Registered before the check, so a bridge ending in between still wakes us.
            idle.as_mut().enable();
            if self.active() == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Counts one running bridge until the guard is dropped.
    pub(crate) fn enter(&self) -> Active {
        self.inner.active.fetch_add(1, Ordering::SeqCst);
        Active {
            inner: Arc::clone(&self.inner),
        }
    }

    /// A notification of the trigger; check [`Shutdown::is_triggered`] after polling it once.
    pub(crate) fn notified(&self) -> Notified<'_> {
        self.inner.stop.notified()
    }
}

/// One running bridge, counted in [`Shutdown::active`] until dropped.
#[derive(Debug)]
pub(crate) struct Active {
    inner: Arc<Inner>,
}

impl Drop for Active {
    fn drop(&mut self) {
        if self.inner.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.inner.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_bridges_and_wakes_idle_waiters() {
        let shutdown = Shutdown::new();
        shutdown.wait_idle().await;
        let a = shutdown.enter();
        let b = shutdown.clone().enter();
        assert_eq!(shutdown.active(), 2);
        let waiter = tokio::spawn({
            let s = shutdown.clone();
            async move { s.wait_idle().await }
        });
        drop(a);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(b);
        waiter.await.unwrap();
        assert_eq!(shutdown.active(), 0);
    }

    #[tokio::test]
    async fn trigger_wakes_listeners() {
        let shutdown = Shutdown::new();
        let listener = tokio::spawn({
            let s = shutdown.clone();
            async move {
                let mut n = pin!(s.notified());
                n.as_mut().enable();
                if !s.is_triggered() {
                    n.await;
                }
            }
        });
        tokio::task::yield_now().await;
        assert!(!shutdown.is_triggered());
        shutdown.trigger();
        listener.await.unwrap();
        assert!(shutdown.is_triggered());
    }
}
