//! What a table's run carries while its rows stream: the adapters, the lease it keeps renewing,
//! the deadline and interrupt it stops at, the observer it reports progress to, and the errors
//! it names itself in. The runner builds one per table and hands it to the table's strategy.

use std::time::{Duration, Instant};

use crate::error::{BoxError, Error, HistoryError, Result};
use crate::part::PartError;
use crate::ports::{EventSink, HistoryStore, Lease, ObjectStore, Source, TableOutcome};
use crate::spec::export::{ExportSpec, TableSpec};
use crate::stop::{Halt, Stop};
use crate::value::{Column, Window};

/// The adapters a run works with.
#[derive(Clone, Copy)]
pub struct Ports<'a> {
    pub source: &'a dyn Source,
    pub store: &'a dyn ObjectStore,
    pub history: &'a dyn HistoryStore,
    pub events: &'a dyn EventSink,
}

/// Progress for a person watching (a progress bar) or for logs.
pub trait Observer: Send + Sync {
    /// Whether the observer shows a total: the runner then counts the table's rows before it
    /// reads them, one more pass over the source, so only a person watching asks for it.
    fn wants_total(&self) -> bool {
        false
    }
    /// A table's run begins; `total` is the rows it will read, when counted.
    fn table_started(&self, _export: &str, _table: &str, _window: &Window, _total: Option<u64>) {}
    fn progress(&self, _table: &str, _rows: u64, _bytes: u64) {}
    fn table_finished(&self, _outcome: &TableOutcome) {}
}

/// An observer that does nothing.
pub struct Quiet;
impl Observer for Quiet {}

/// Renews the export's lease as a run goes, so a run longer than the lease's TTL keeps it.
pub struct LeaseKeeper<'a> {
    pub lease: &'a Lease,
    pub ttl: Duration,
    pub export: &'a str,
    pub renewed: Instant,
    pub stop: Stop,
}

impl LeaseKeeper<'_> {
    /// Renews once a third of the TTL has passed since the last renewal.
    pub async fn keep(&mut self, history: &dyn HistoryStore) -> Result<()> {
        if self.renewed.elapsed() >= self.ttl / 3 {
            self.renew(history).await?;
        }
        Ok(())
    }

    pub async fn renew(&mut self, history: &dyn HistoryStore) -> Result<()> {
        match history.renew_lease(self.lease, self.ttl).await {
            Ok(_) => {
                self.renewed = Instant::now();
                Ok(())
            }
            Err(HistoryError::LeaseLost) => Err(Error::LeaseLost { export: self.export.to_string() }),
            Err(e) => Err(Error::History { export: self.export.to_string(), source: Box::new(e) }),
        }
    }
}

/// One table's run in progress.
pub struct TableRun<'a> {
    pub export: &'a ExportSpec,
    pub table: &'a TableSpec,
    pub source: &'a dyn Source,
    pub store: &'a dyn ObjectStore,
    pub history: &'a dyn HistoryStore,
    pub observer: &'a dyn Observer,
    pub keeper: LeaseKeeper<'a>,
    /// What the read counted in its own pass (the plan's `checks`), once its stream ended.
    pub counted: Option<crate::ports::Counted>,
}

impl TableRun<'_> {
    /// Where the run must stop: its deadline and its interrupt.
    pub fn stop(&self) -> Stop {
        self.keeper.stop.clone()
    }

    /// Renews the lease when a third of its TTL has passed: called between batches.
    pub async fn keep_lease(&mut self) -> Result<()> {
        self.keeper.keep(self.history).await
    }

    /// Renews the lease now (before the manifest, the commit point).
    pub async fn renew_lease(&mut self) -> Result<()> {
        self.keeper.renew(self.history).await
    }

    /// The table's run stopped early, after `rows` rows.
    pub fn halted(&self, rows: u64, halt: Halt) -> Error {
        halted(self.export, self.table, rows, halt)
    }

    pub fn source_error(&self, source: BoxError) -> Error {
        Error::Source { export: self.export.name.clone(), table: self.table.name.clone(), source }
    }

    pub fn store_error(&self, key: &str, source: BoxError) -> Error {
        Error::Store { export: self.export.name.clone(), table: self.table.name.clone(), key: key.to_string(), source }
    }

    /// A problem with the table's data the strategy found (a NULL key, a key out of order).
    pub fn check_error(&self, problem: String) -> Error {
        Error::Check { export: self.export.name.clone(), table: self.table.name.clone(), problem }
    }

    /// A part that could not be written, naming the column of a value the format cannot hold.
    pub fn part_error(&self, columns: &[Column], e: PartError) -> Error {
        part_error(self.export, self.table, columns, e)
    }
}

/// The error of a table's run stopped early, after `rows` rows.
pub fn halted(export: &ExportSpec, table: &TableSpec, rows: u64, halt: Halt) -> Error {
    let (export, table) = (export.name.clone(), table.name.clone());
    match halt {
        Halt::Deadline => Error::Deadline { export, table, rows },
        Halt::Interrupted(signal) => Error::Interrupted { export, table, rows, signal },
    }
}

pub fn part_error(export: &ExportSpec, table: &TableSpec, columns: &[Column], e: PartError) -> Error {
    match e {
        PartError::Encode { row, problem } => Error::Encode {
            export: export.name.clone(),
            table: table.name.clone(),
            column: columns.get(problem.column).map_or_else(|| format!("#{}", problem.column + 1), |c| c.name.clone()),
            row,
            problem: problem.problem,
        },
        PartError::Store { key, source } => {
            Error::Store { export: export.name.clone(), table: table.name.clone(), key, source }
        }
    }
}
