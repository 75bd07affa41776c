//! When a run must stop before it is done: at a deadline (a Lambda invocation's, less a margin
//! for cleaning up) or on an interrupt (SIGINT or SIGTERM on one machine, the Lambda runtime's
//! shutdown signal). Either way the run stops at its next step: it stops reading, aborts the part
//! it was writing, records the table's run as failed, and releases the lease.

use std::future::Future;
use std::time::Instant;
use tokio::sync::watch;

/// The sending end: a signal handler calls [`Interrupter::interrupt`] with the signal's name.
#[derive(Debug)]
pub struct Interrupter(watch::Sender<Option<&'static str>>);

/// The receiving end, given to a run in its options.
#[derive(Debug, Clone)]
pub struct Interrupt(watch::Receiver<Option<&'static str>>);

/// A pair: what a signal handler keeps and what runs watch.
pub fn interrupt_channel() -> (Interrupter, Interrupt) {
    let (tx, rx) = watch::channel(None);
    (Interrupter(tx), Interrupt(rx))
}

impl Interrupter {
    /// Asks every run watching to stop; the first signal's name is the one reported.
    pub fn interrupt(&self, signal: &'static str) {
        self.0.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(signal);
                true
            } else {
                false
            }
        });
    }

    /// The signal that interrupted, if any.
    pub fn interrupted(&self) -> Option<&'static str> {
        *self.0.borrow()
    }

    /// Whether any run is watching (holds a receiving end).
    pub fn watched(&self) -> bool {
        self.0.receiver_count() > 0
    }

    /// Another receiving end, for another run.
    pub fn subscribe(&self) -> Interrupt {
        Interrupt(self.0.subscribe())
    }
}

impl Interrupt {
    pub fn interrupted(&self) -> Option<&'static str> {
        *self.0.borrow()
    }

    /// Resolves with the signal's name once interrupted (never, if the sender is gone first).
    async fn wait(&self) -> &'static str {
        let mut rx = self.0.clone();
        loop {
            if let Some(signal) = *rx.borrow_and_update() {
                return signal;
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }
}

/// Why a run stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Halt {
    Deadline,
    Interrupted(&'static str),
}

/// A run's deadline and interrupt, checked between steps and raced against slow ones.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    pub deadline: Option<Instant>,
    pub interrupt: Option<Interrupt>,
}

impl Stop {
    /// Whether the run must stop now.
    pub fn check(&self) -> Result<(), Halt> {
        if let Some(signal) = self.interrupt.as_ref().and_then(Interrupt::interrupted) {
            return Err(Halt::Interrupted(signal));
        }
        match self.deadline {
            Some(t) if Instant::now() >= t => Err(Halt::Deadline),
            _ => Ok(()),
        }
    }

    /// `fut`'s output, unless the deadline passes or an interrupt comes first. Dropping the
    /// pending future is how a source learns to cancel its statement.
    pub async fn until<F: Future>(&self, fut: F) -> Result<F::Output, Halt> {
        self.check()?;
        let deadline = async {
            match self.deadline {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        let interrupt = async {
            match &self.interrupt {
                Some(i) => i.wait().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            out = fut => Ok(out),
            signal = interrupt => Err(Halt::Interrupted(signal)),
            () = deadline => Err(Halt::Deadline),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn an_interrupt_stops_a_pending_step_and_every_later_check() {
        let (tx, rx) = interrupt_channel();
        let stop = Stop { deadline: None, interrupt: Some(rx) };
        assert_eq!(stop.check(), Ok(()));
        let pending = stop.until(std::future::pending::<()>());
        tx.interrupt("SIGINT");
        tx.interrupt("SIGTERM");
        assert_eq!(pending.await, Err(Halt::Interrupted("SIGINT")));
        assert_eq!(stop.check(), Err(Halt::Interrupted("SIGINT")));
        assert_eq!(tx.interrupted(), Some("SIGINT"));
    }

    #[tokio::test]
    async fn a_deadline_stops_a_pending_step() {
        let stop = Stop { deadline: Some(Instant::now() + Duration::from_millis(20)), interrupt: None };
        assert_eq!(stop.until(async { 1 }).await, Ok(1));
        assert_eq!(stop.until(std::future::pending::<()>()).await, Err(Halt::Deadline));
    }
}
