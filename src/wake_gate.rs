//! Futures a connection's task waits on beside the connection itself, polled only when they asked
//! to be.
//!
//! A connection's task also waits for the shutdown signal and for the idle watchdog's clock. Polled
//! at every wake-up of the task, which the connection's own traffic causes two or three times per
//! request, they cost a lock each time (tokio's `Notified` re-checks its registration) for events
//! that come once in a connection's life or once per watchdog period: with `tokio::select!`'s own
//! work, 2.4 % of a small request's instructions (callgrind). Behind a [`Gate`] they get a waker of
//! their own and are polled only after it fired. The accept loop waits for signals the same way.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Wake, Waker};

use futures_util::task::AtomicWaker;

/// The waker of the futures behind the gate, and whether it fired.
#[derive(Debug)]
pub(crate) struct Gate {
    flag: Arc<Flag>,
    waker: Waker,
}

#[derive(Debug)]
struct Flag {
    woken: AtomicBool,
    /// The task to wake in turn: the one that last opened the gate.
    task: AtomicWaker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl Gate {
    /// A gate that opens at its first check, so the futures behind it are polled (and register
    /// their wake-ups) once before they are left alone.
    pub(crate) fn new() -> Self {
        let flag = Arc::new(Flag {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        Self {
            waker: Waker::from(Arc::clone(&flag)),
            flag,
        }
    }

    /// The context to poll the futures behind the gate with, if their waker fired since the last
    /// check; `None` means leave them alone. Either way, a later wake-up of theirs wakes the task
    /// polling with `cx`.
    pub(crate) fn open(&self, cx: &Context<'_>) -> Option<Context<'_>> {
        // Registered before the flag is read: a wake-up in between is seen now or wakes the task.
        self.flag.task.register(cx.waker());
        self.flag
            .woken
            .swap(false, Ordering::Acquire)
            .then(|| Context::from_waker(&self.waker))
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::sync::atomic::AtomicUsize;
    use std::task::Poll;

    use super::*;

    /// Counts the task's wake-ups.
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn opens_first_then_only_after_its_own_wake_up_which_wakes_the_task() {
        let task = Arc::new(Counter(AtomicUsize::new(0)));
        let task_waker = Waker::from(Arc::clone(&task));
        let cx = Context::from_waker(&task_waker);
        let gate = Gate::new();

        let inner = gate.open(&cx).expect("open at the first check");
        let behind = inner.waker().clone();
        assert!(gate.open(&cx).is_none(), "closed until its waker fires");
        assert!(gate.open(&cx).is_none());

        behind.wake_by_ref();
        assert_eq!(
            task.0.load(Ordering::Relaxed),
            1,
            "the task was woken in turn"
        );
        assert!(gate.open(&cx).is_some(), "open after the wake-up");
        assert!(gate.open(&cx).is_none(), "and closed again");
    }

    /// A tokio `Notify` behind the gate: its notification reaches the future, through the gate's
    /// waker, even though the future is polled only when the gate opens.
    #[tokio::test]
    async fn a_notification_behind_the_gate_gets_through() {
        let notify = tokio::sync::Notify::new();
        let gate = Gate::new();
        let mut notified = pin!(notify.notified());
        let mut polls = 0;
        let mut notify_sent = false;
        std::future::poll_fn(|cx| {
            if let Some(mut inner) = gate.open(cx) {
                polls += 1;
                if notified.as_mut().poll(&mut inner).is_ready() {
                    return Poll::Ready(());
                }
            }
            if !notify_sent {
                notify_sent = true;
                notify.notify_waiters();
            }
            Poll::Pending
        })
        .await;
        assert_eq!(
            polls, 2,
            "polled once to register, once after the notification"
        );
    }
}
