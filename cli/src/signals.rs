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

/// Watches SIGINT and SIGTERM for as long as it lives.
pub struct Signals {
    interrupter: std::sync::Arc<Interrupter>,
    task: tokio::task::JoinHandle<()>,
}

impl Signals {
    /// Starts watching; the runs are given `interrupt()`. Without signal handlers (a platform
    /// that refuses them), runs are simply not interruptible cleanly.
    pub fn watch() -> Signals {
        let (interrupter, _) = interrupt_channel();
        let interrupter = std::sync::Arc::new(interrupter);
        let tx = interrupter.clone();
        let task = tokio::spawn(async move {
            let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
                tracing::warn!("cannot watch SIGINT and SIGTERM; an interrupted run is settled by the next one");
                return;
            };
            let first = tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
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
        Signals { interrupter, task }
    }

    pub fn interrupt(&self) -> Interrupt {
        self.interrupter.subscribe()
    }

    /// The signal that interrupted, if one did.
    pub fn interrupted(&self) -> Option<&'static str> {
        self.interrupter.interrupted()
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        self.task.abort();
    }
}
