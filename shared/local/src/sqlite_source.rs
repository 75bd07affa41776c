//! The SQLite source. Reads run on a blocking thread that fills row batches and hands them over
//! a bounded channel, so reading and encoding overlap on two cores and at most `IN_FLIGHT`
//! batches are held at once, whatever the table's size.

use async_trait::async_trait;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sluice_core::ports::{row_channel, Query, RenderedQuery, RowSender, RowStream, Source, WatermarkExpr};
use sluice_core::spec::{TableName, UpperBound};
use sluice_core::sql;
use sluice_core::value::{BatchPool, Column, Watermark};
use sluice_core::BoxError;

use crate::error::Error;
use crate::stamp::{self, Layout};

/// A batch is handed over at this many rows or `BATCH_BYTES` of text, whichever comes first;
/// the byte cap keeps a batch's memory the same for narrow and wide rows.
const BATCH_ROWS: usize = 4096;
const BATCH_BYTES: usize = 256 * 1024;
/// Batches queued between the reading thread and the encoder.
const IN_FLIGHT: usize = 4;

/// Where "now" comes from for `upper_bound = "now"`: the machine's clock, or a test's.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

pub struct SqliteSource {
    path: PathBuf,
    clock: Clock,
}

impl SqliteSource {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self::with_clock(path, Arc::new(Utc::now))
    }

    pub fn with_clock(path: impl Into<PathBuf>, clock: Clock) -> Self {
        SqliteSource { path: path.into(), clock }
    }

    fn open(&self) -> Result<Connection, Error> {
        open_read_only(&self.path)
    }
}

fn open_read_only(path: &Path) -> Result<Connection, Error> {
    // Opening never creates the file: a mistyped path is an error, not an empty database.
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|source| Error::Open { path: path.to_path_buf(), source })?;
    // Touch the schema now, so "file is not a database" surfaces here with the path.
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
        .map_err(|source| Error::Open { path: path.to_path_buf(), source })?;
    Ok(conn)
}

fn query_err(sql: &str) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |source| Error::Query { sql: sql.to_string(), source }
}

fn to_sql(w: &Watermark) -> rusqlite::types::Value {
    match w {
        Watermark::Int(v) => rusqlite::types::Value::Integer(*v),
        Watermark::Float(v) => rusqlite::types::Value::Real(*v),
        Watermark::Text(v) => rusqlite::types::Value::Text(v.clone()),
    }
}

fn from_sql(v: ValueRef<'_>) -> Option<Watermark> {
    match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(Watermark::Int(i)),
        ValueRef::Real(f) => Some(Watermark::Float(f)),
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(Watermark::Text(String::from_utf8_lossy(t).into_owned())),
    }
}

/// The smallest and largest non-NULL value of `e`: two index seeks where an index leads with
/// the column, one scan otherwise.
fn extremes(conn: &Connection, t: &str, e: &str) -> Result<(Option<Value>, Option<Value>), Error> {
    let probe = format!("EXPLAIN QUERY PLAN SELECT MIN({e}) FROM {t}");
    let indexed = {
        let mut stmt = conn.prepare(&probe).map_err(query_err(&probe))?;
        let details = stmt
            .query_map([], |r| r.get::<_, String>(3))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(query_err(&probe))?;
        details.iter().any(|d| d.contains("INDEX"))
    };
    let q = if indexed {
        format!("SELECT (SELECT MIN({e}) FROM {t}), (SELECT MAX({e}) FROM {t})")
    } else {
        format!("SELECT MIN({e}), MAX({e}) FROM {t}")
    };
    conn.query_row(&q, [], |r| Ok((owned(r.get_ref(0)?), owned(r.get_ref(1)?)))).map_err(query_err(&q))
}

/// A cell as an owned value; text that is not UTF-8 stays bytes (a BLOB), so it is named as a
/// stamp Sluice cannot read instead of failing the conversion.
fn owned(v: ValueRef<'_>) -> Option<Value> {
    match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(Value::Integer(i)),
        ValueRef::Real(f) => Some(Value::Real(f)),
        ValueRef::Text(t) => Some(match std::str::from_utf8(t) {
            Ok(s) => Value::Text(s.to_string()),
            Err(_) => Value::Blob(t.to_vec()),
        }),
        ValueRef::Blob(b) => Some(Value::Blob(b.to_vec())),
    }
}

/// Integers and reals compare as numbers in SQLite: one class for the layout checks (a column
/// with NUMERIC affinity stores a whole real as an integer).
fn numeric(v: &Value) -> bool {
    matches!(v, Value::Integer(_) | Value::Real(_))
}

fn mixed(table: &TableName, column: &str, a: &Value, b: &Value) -> Error {
    let show = |v: &Value| {
        let layout = Layout::of(ValueRef::from(v))
            .map_or_else(|_| "a layout Sluice does not read as time".into(), |l| l.describe());
        format!("{} ({layout})", stamp::show(v))
    };
    Error::MixedStamps { table: table.to_string(), column: column.to_string(), first: show(a), other: show(b) }
}

fn table_sql(table: &TableName) -> Result<String, Error> {
    if table.parts.len() > 2 {
        return Err(Error::TableName { table: table.to_string(), parts: table.parts.len() });
    }
    Ok(sql::quote_table(table))
}

#[async_trait]
impl Source for SqliteSource {
    async fn columns(&self, table: &TableName) -> Result<Vec<Column>, BoxError> {
        let conn = self.open()?;
        let (schema, name) = match table.parts.as_slice() {
            [t] => ("main".to_string(), t.clone()),
            [s, t] => (s.clone(), t.clone()),
            _ => return Err(Error::TableName { table: table.to_string(), parts: table.parts.len() }.into()),
        };
        let pragma = format!("PRAGMA {}.table_info({})", sql::quote_ident(&schema), sql::quote_ident(&name));
        let mut stmt = conn.prepare(&pragma).map_err(query_err(&pragma))?;
        let cols = stmt
            .query_map([], |r| Ok(Column { name: r.get(1)?, source_type: r.get::<_, String>(2)? }))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(query_err(&pragma))?;
        if cols.is_empty() {
            let list = "SELECT name FROM sqlite_master WHERE type IN ('table','view') ORDER BY name";
            let mut stmt = conn.prepare(list).map_err(query_err(list))?;
            let names = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(query_err(list))?;
            return Err(Error::MissingTable {
                table: table.to_string(),
                path: self.path.clone(),
                available: if names.is_empty() { "(none)".into() } else { names.join(", ") },
            }
            .into());
        }
        Ok(cols)
    }

    async fn upper_bound(
        &self,
        table: &TableName,
        expr: &WatermarkExpr,
        bound: UpperBound,
    ) -> Result<Option<Watermark>, BoxError> {
        let conn = self.open()?;
        let t = table_sql(table)?;
        let e = sql::watermark_expr(expr);
        match bound {
            UpperBound::Now { lag } => {
                let q = format!("SELECT {e} FROM {t} WHERE {e} IS NOT NULL LIMIT 1");
                let sample: Option<Value> = conn
                    .query_row(&q, [], |r| Ok(owned(r.get_ref(0)?)))
                    .or_else(|e| match e {
                        rusqlite::Error::QueryReturnedNoRows => Ok(None),
                        e => Err(e),
                    })
                    .map_err(query_err(&q))?;
                let Some(sample) = sample else { return Ok(None) };
                let layout = Layout::of(ValueRef::from(&sample)).map_err(|seen| Error::StampLayout {
                    table: table.to_string(),
                    column: e.clone(),
                    seen,
                    recognised: stamp::RECOGNISED,
                })?;
                // The sample, the smallest and the largest stamp must share a layout: SQLite
                // orders by storage class first, and text by its characters, so a second
                // layout sorts into the wrong windows (or none). Checking the two ends catches
                // any mix of storage classes or epoch units, whatever lies between them.
                let (min, max) = extremes(&conn, &t, &e)?;
                let mut layout = layout;
                for other in [&min, &max].into_iter().flatten() {
                    match Layout::of(ValueRef::from(other)) {
                        Ok(l) if l.same_family(&layout) => layout = layout.join(&l),
                        _ => return Err(mixed(table, &e, &sample, other).into()),
                    }
                }
                // The unit is guessed from the values' size; the newest stamp read in it must
                // be a plausible time, or the guess is wrong (REAL milliseconds read as seconds,
                // integer YYYYMMDD dates) and windows would never reach the rows, or pass them.
                let clock = (self.clock)();
                if let Some(newest) = max.as_ref() {
                    if let Some(at) = layout.instant(ValueRef::from(newest)) {
                        let plausible = at >= stamp::EARLIEST && at <= clock + ChronoDuration::days(1);
                        if !plausible {
                            return Err(Error::ImplausibleStamps {
                                table: table.to_string(),
                                column: e.clone(),
                                newest: stamp::show(newest),
                                layout: layout.describe(),
                                at: at.to_rfc3339(),
                            }
                            .into());
                        }
                    }
                }
                let lag = ChronoDuration::from_std(lag).unwrap_or(ChronoDuration::MAX);
                let now = clock.checked_sub_signed(lag).unwrap_or(DateTime::<Utc>::MIN_UTC);
                Ok(Some(layout.bound(now)))
            }
            UpperBound::Max => {
                // The maximum needs no layout, but one storage class: a text stamp among
                // numbers sorts above every one of them.
                if let (Some(min), Some(max)) = extremes(&conn, &t, &e)? {
                    if min.data_type() != max.data_type() && !(numeric(&min) && numeric(&max)) {
                        return Err(mixed(table, &e, &min, &max).into());
                    }
                }
                let q = sql::tie_safe_max(&t, expr);
                let v = conn.query_row(&q, [], |r| Ok(from_sql(r.get_ref(0)?))).map_err(query_err(&q))?;
                Ok(v)
            }
        }
    }

    fn render(&self, query: &Query) -> RenderedQuery {
        sql::select(query)
    }

    async fn count(&self, query: &Query) -> Result<u64, BoxError> {
        let conn = self.open()?;
        table_sql(&query.table)?;
        let r = sql::count(query);
        let params: Vec<_> = r.params.iter().map(to_sql).collect();
        let n: i64 =
            conn.query_row(&r.sql, rusqlite::params_from_iter(params), |row| row.get(0)).map_err(query_err(&r.sql))?;
        Ok(n as u64)
    }

    async fn count_null(&self, table: &TableName, expr: &WatermarkExpr) -> Result<u64, BoxError> {
        let conn = self.open()?;
        let q = sql::count_null(&table_sql(table)?, expr);
        let n: i64 = conn.query_row(&q, [], |row| row.get(0)).map_err(query_err(&q))?;
        Ok(n as u64)
    }

    async fn read(&self, query: &Query) -> Result<RowStream, BoxError> {
        table_sql(&query.table)?;
        let rendered = sql::select(query);
        let width = query.columns.len();
        // Open and prepare before streaming, so a bad query fails the call, not the stream.
        let conn = self.open()?;
        conn.prepare(&rendered.sql).map_err(query_err(&rendered.sql))?;
        let (tx, stream) = row_channel(IN_FLIGHT);
        tokio::task::spawn_blocking(move || match stream_rows(&conn, &rendered, width, &tx) {
            Ok(()) => tx.finish(),
            Err(e) => {
                tx.blocking_send(Err(e.into()));
            }
        });
        Ok(stream)
    }
}

/// Runs the query and sends its rows in batches; stops early when the receiver is gone.
fn stream_rows(conn: &Connection, rendered: &RenderedQuery, width: usize, tx: &RowSender) -> Result<(), Error> {
    let err = query_err(&rendered.sql);
    let mut stmt = conn.prepare(&rendered.sql).map_err(&err)?;
    let params: Vec<_> = rendered.params.iter().map(to_sql).collect();
    let mut rows = stmt.query(rusqlite::params_from_iter(params)).map_err(&err)?;
    // In flight, one being filled and one being encoded.
    let pool = BatchPool::new(IN_FLIGHT + 2);
    let mut batch = pool.batch(width, BATCH_ROWS, BATCH_BYTES);
    while let Some(row) = rows.next().map_err(&err)? {
        for i in 0..width {
            match row.get_ref(i).map_err(&err)? {
                ValueRef::Null => batch.push_null(),
                ValueRef::Integer(v) => batch.push_int(v),
                ValueRef::Real(v) => batch.push_float(v),
                ValueRef::Text(t) => batch.push_text(t),
                ValueRef::Blob(b) => batch.push_bytes(b),
            }
        }
        if batch.rows() >= BATCH_ROWS || batch.data_len() >= BATCH_BYTES {
            let full = std::mem::replace(&mut batch, pool.batch(width, BATCH_ROWS, BATCH_BYTES));
            if !tx.blocking_send(Ok(full)) {
                return Ok(());
            }
        }
    }
    if !batch.is_empty() {
        tx.blocking_send(Ok(batch));
    }
    Ok(())
}
