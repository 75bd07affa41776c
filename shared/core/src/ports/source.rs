//! The source port: a table's columns, its upper bound, counts, and its rows as a stream of
//! batches. Warehouse-only abilities (an unload written by the warehouse itself) are a separate
//! port a source may offer ([`Unloader`]).

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::Serialize;

use crate::error::BoxError;
use crate::format::csv::options::CsvFormat;
use crate::manifest::PartInfo;
use crate::value::{Column, RowBatch, TableName, UpperBound, Watermark};

/// The expression a window filters on: the incremental column, or `COALESCE(column, fallback)`.
#[derive(Debug, Clone, PartialEq)]
pub struct WatermarkExpr {
    pub column: String,
    pub fallback: Option<String>,
}

/// Which rows of a table a query reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    All,
    /// `low < expr <= high` (no lower bound when `low` is `None`).
    Window {
        expr: WatermarkExpr,
        low: Option<Watermark>,
        high: Watermark,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub table: TableName,
    pub columns: Vec<String>,
    pub filter: Filter,
    /// Columns the rows must arrive sorted by (the `check` strategy's key); none: any order.
    pub order_by: Vec<String>,
}

/// A query as the source would send it: SQL with placeholders, and the values bound to them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RenderedQuery {
    pub sql: String,
    pub params: Vec<Watermark>,
}

/// What a timestamp run counts beside its window: the rows whose stamp is NULL (they are in no
/// window) and the rows now in the previous run's window (more than it exported arrived late).
#[derive(Debug, Clone, PartialEq)]
pub struct WindowChecks {
    pub table: TableName,
    pub expr: WatermarkExpr,
    /// The previous run's window `(low, high]`, counted again; `None`: nothing to count.
    pub previous: Option<(Option<Watermark>, Watermark)>,
    /// The stamps are read as times (`upper_bound = "now"`): a source that learnt their layout
    /// may check every stamp it passes against it. With `"max"` they may be any ordered values.
    pub times: bool,
}

/// What [`WindowChecks`] counted. `previous_window` is `None` when there was nothing to count,
/// or its count failed (the run goes on without a late-row figure).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counted {
    pub null_rows: u64,
    pub previous_window: Option<u64>,
}

/// Where a reader leaves what it counted in the read's own pass: set before the stream ends
/// cleanly, read by the runner after the last batch.
pub type Tally = std::sync::Arc<std::sync::OnceLock<Counted>>;

/// The checks counted by statements of their own: what [`Source::read_counting`] does by
/// default, and what a run whose window is empty (nothing to read) does. A failed NULL count
/// fails the run; a failed count of the previous window is logged and left out.
pub async fn count_checks<S: Source + ?Sized>(source: &S, checks: &WindowChecks) -> Result<Counted, BoxError> {
    let null_rows = source.count_null(&checks.table, &checks.expr).await?;
    let previous_window = match &checks.previous {
        None => None,
        Some((low, high)) => {
            let query = Query {
                table: checks.table.clone(),
                columns: vec![],
                filter: Filter::Window { expr: checks.expr.clone(), low: low.clone(), high: high.clone() },
                order_by: vec![],
            };
            match source.count(&query).await {
                Ok(n) => Some(n),
                Err(e) => {
                    tracing::warn!(table = %checks.table, error = %e, "counting the previous window again for late rows failed");
                    None
                }
            }
        }
    };
    Ok(Counted { null_rows, previous_window })
}

/// Rows arrive in batches; a source keeps only a bounded number of batches in flight.
pub type RowStream = BoxStream<'static, Result<RowBatch, BoxError>>;

/// The reader's end of `row_channel`: a source's reader task or thread sends batches through it.
pub struct RowSender {
    tx: tokio::sync::mpsc::Sender<Result<RowBatch, BoxError>>,
    finished: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl RowSender {
    /// Sends from async code; `false` when the stream was dropped (stop reading).
    pub async fn send(&self, item: Result<RowBatch, BoxError>) -> bool {
        self.tx.send(item).await.is_ok()
    }

    /// Sends from a blocking thread; `false` when the stream was dropped (stop reading).
    pub fn blocking_send(&self, item: Result<RowBatch, BoxError>) -> bool {
        self.tx.blocking_send(item).is_ok()
    }

    /// Every row was sent: the stream ends cleanly.
    pub fn finish(self) {
        self.finished.store(true, std::sync::atomic::Ordering::Release);
    }
}

/// A bounded channel from a source's reader to the runner. A reader that stops without
/// `finish` (a panic, a forgotten path) ends the stream with an error, never with a clean end
/// that would commit a window with rows missing.
pub fn row_channel(capacity: usize) -> (RowSender, RowStream) {
    use futures::StreamExt;
    let (tx, rx) = tokio::sync::mpsc::channel(capacity);
    let finished = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = finished.clone();
    let stream = futures::stream::unfold(Some(rx), move |rx| {
        let done = done.clone();
        async move {
            let mut rx = rx?;
            match rx.recv().await {
                Some(item) => Some((item, Some(rx))),
                None if done.load(std::sync::atomic::Ordering::Acquire) => None,
                None => {
                    Some((Err("the source's reader stopped before the last row; nothing is committed".into()), None))
                }
            }
        }
    });
    (RowSender { tx, finished }, stream.boxed())
}

#[async_trait]
pub trait Source: Send + Sync {
    /// The table's columns in order, with the types the source declares. A missing table is an
    /// error that names it and says what to check.
    async fn columns(&self, table: &TableName) -> Result<Vec<Column>, BoxError>;

    /// Captures a run's `high` before it reads. `None` when the table has no value to bound by.
    async fn upper_bound(
        &self,
        table: &TableName,
        expr: &WatermarkExpr,
        bound: UpperBound,
    ) -> Result<Option<Watermark>, BoxError>;

    /// The exact SQL and parameters `read` would run.
    fn render(&self, query: &Query) -> RenderedQuery;

    /// How many rows the query would return.
    async fn count(&self, query: &Query) -> Result<u64, BoxError>;

    /// How many rows have a NULL watermark expression: they are in no window.
    async fn count_null(&self, table: &TableName, expr: &WatermarkExpr) -> Result<u64, BoxError>;

    /// Streams the query's rows.
    async fn read(&self, query: &Query) -> Result<RowStream, BoxError>;

    /// Streams a timestamp window's rows and counts its checks. By default the checks are
    /// counted first, each by a statement of its own (cheap where an index covers the stamp, a
    /// pass over the table each where none does); a source that can count them in the read's
    /// own pass overrides this and fills the tally before its stream ends.
    async fn read_counting(&self, query: &Query, checks: &WindowChecks) -> Result<(RowStream, Tally), BoxError> {
        let counted = count_checks(self, checks).await?;
        let stream = self.read(query).await?;
        Ok((stream, std::sync::Arc::new(std::sync::OnceLock::from(counted))))
    }

    /// Whether `read_counting` counts in the read's own pass: then a run whose window is empty
    /// still reads (a window that holds no row) to count, rather than count by statements of
    /// their own.
    fn counts_in_read(&self) -> bool {
        false
    }

    /// The source's server-side unload, if it has one (a warehouse's own `COPY INTO`); most
    /// sources have none and stream every row through Sluice.
    fn unloader(&self) -> Option<&dyn Unloader> {
        None
    }
}

/// A warehouse that writes a query's rows as files itself (Snowflake's `COPY INTO @stage`), as
/// `mode = "unload"` asks. Sluice then writes the manifest and commits the history as for a
/// streamed run.
#[async_trait]
pub trait Unloader: Send + Sync {
    /// The statement `unload` would run, for `sluice plan`; `None` when it cannot unload (no stage).
    fn render_unload(&self, query: &Query, target: &UnloadTarget) -> Option<RenderedQuery>;

    /// Writes the query's rows as CSV parts under `target.prefix` of the export's destination,
    /// and reports them.
    async fn unload(&self, query: &Query, target: &UnloadTarget) -> Result<Vec<PartInfo>, BoxError>;
}

/// Where and how an unload writes its parts.
#[derive(Debug, Clone)]
pub struct UnloadTarget {
    /// The run's folder, relative to the destination (`<export>/<table>/<run_id>`).
    pub prefix: String,
    pub format: CsvFormat,
}

#[cfg(test)]
mod row_channel_tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn a_reader_that_stops_without_finishing_ends_the_stream_with_an_error() {
        let (tx, mut stream) = row_channel(2);
        assert!(tx.send(Ok(RowBatch::new(1))).await);
        drop(tx); // as a panicking reader would
        assert!(stream.next().await.unwrap().is_ok());
        let err = stream.next().await.unwrap().unwrap_err().to_string();
        assert!(err.contains("stopped before the last row"), "{err}");
        assert!(stream.next().await.is_none());

        let (tx, mut stream) = row_channel(2);
        assert!(tx.send(Ok(RowBatch::new(1))).await);
        tx.finish();
        assert!(stream.next().await.unwrap().is_ok());
        assert!(stream.next().await.is_none(), "a finished reader ends the stream cleanly");
    }
}
