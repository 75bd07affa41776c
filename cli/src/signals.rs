//! Ctrl-C and SIGTERM during `sluice run`. The first asks the runs to stop cleanly: each stops
//! reading at its next step, aborts the part it was writing, records the table's run as failed
//! ("interrupted"), releases its lease, and `sluice` exits 130 (SIGINT) or 143 (SIGTERM). A
//! second signal, or `GRACE` passing without the runs having stopped, exits at once, leaving
//! what a killed run leaves (the next run settles it).

use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

use sluice_core::stop::{interrupt_channel, Interrupt, Interrupter};

/// How long a clean stop may take before `sluice` exits anyway.
pub const GRACE: Duration = Duration::from_secs(10);

/// The exit code for a run stopped by `signal`, as shells report a process it ended.
pub fn exit_code(signal: &str) -> u8 {
    match signal {
        "SIGTERM" => 143,
        _ => 130,
    }
}

/// Watches SIGINT and SIGTERM until the process exits: once tokio handles a signal it does not
/// give it back to the default action, so the watch is never stopped.
pub struct Signals {
    interrupter: std::sync::Arc<Interrupter>,
}

impl Signals {
    /// Starts watching (once per process; later calls share the watch); the runs are given
    /// `interrupt()`. Without signal handlers (a platform that refuses them), runs are simply
    /// not interruptible cleanly.
    pub fn watch() -> Signals {
        static WATCH: std::sync::OnceLock<std::sync::Arc<Interrupter>> = std::sync::OnceLock::new();
        let interrupter = WATCH.get_or_init(|| {
            let (interrupter, _) = interrupt_channel();
            let interrupter = std::sync::Arc::new(interrupter);
            Self::spawn(interrupter.clone());
            interrupter
        });
        Signals { interrupter: interrupter.clone() }
    }

    fn spawn(tx: std::sync::Arc<Interrupter>) {
        tokio::spawn(async move {
            let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
                tracing::warn!("cannot watch SIGINT and SIGTERM; an interrupted run is settled by the next one");
                return;
            };
            let first = tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
            if !tx.watched() {
                // No run under way (between exports, delivering, the demo waiting): nothing to
                // stop cleanly, so exit as the signal would have.
                std::process::exit(i32::from(exit_code(first)));
            }
            tx.interrupt(first);
            eprintln!(
                "{first}: stopping at the next step and recording the run as interrupted (again to exit at once)"
            );
            tokio::select! {
                _ = int.recv() => eprintln!("second signal: exiting at once; the next run settles this one"),
                _ = term.recv() => eprintln!("second signal: exiting at once; the next run settles this one"),
                _ = tokio::time::sleep(GRACE) => {
                    eprintln!("not stopped within {}s: exiting; the next run settles this one", GRACE.as_secs())
                }
            }
            std::process::exit(i32::from(exit_code(first)));
        });
    }

    pub fn interrupt(&self) -> Interrupt {
        self.interrupter.subscribe()
    }

    /// The signal that interrupted, if one did.
    pub fn interrupted(&self) -> Option<&'static str> {
        self.interrupter.interrupted()
    }
}
