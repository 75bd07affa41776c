//! The SQLite source. Reads run on a blocking thread that fills row batches and hands them over
//! a bounded channel, so reading and encoding overlap on two cores and at most `IN_FLIGHT`
//! batches are held at once, whatever the table's size.

use async_trait::async_trait;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sluice_core::ports::{
    count_checks, row_channel, Counted, Filter, Query, RenderedQuery, RowSender, RowStream, Source, Tally,
    WatermarkExpr, WindowChecks,
};
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

/// Whether an index leads with the stamp expression `e` (the column, or an index on the same
/// `COALESCE`): then its extremes are two seeks and its counts read the index, not the table.
fn indexed(conn: &Connection, t: &str, e: &str) -> Result<bool, Error> {
    let probe = format!("EXPLAIN QUERY PLAN SELECT MIN({e}) FROM {t}");
    let mut stmt = conn.prepare(&probe).map_err(query_err(&probe))?;
    let details = stmt
        .query_map([], |r| r.get::<_, String>(3))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(query_err(&probe))?;
    // A seek (`SEARCH … USING … INDEX`); a scan of some covering index is still a pass.
    Ok(details.iter().any(|d| d.contains("SEARCH") && d.contains("INDEX")))
}

/// One non-NULL stamp, to recognise the column's layout by: the first the table yields.
fn sample(conn: &Connection, t: &str, e: &str) -> Result<Option<Value>, Error> {
    let q = format!("SELECT {e} FROM {t} WHERE {e} IS NOT NULL LIMIT 1");
    conn.query_row(&q, [], |r| Ok(owned(r.get_ref(0)?)))
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })
        .map_err(query_err(&q))
}

/// Whether the table's (or view's) SQL names a collation anywhere: then `MAX` may not order
/// as the bytes do. Erring towards yes costs passes, never a wrong bound.
fn declares_collation(conn: &Connection, table: &TableName) -> Result<bool, Error> {
    let (schema, name) = match table.parts.as_slice() {
        [schema, name] => (schema.as_str(), name.as_str()),
        [name] => ("main", name.as_str()),
        _ => return Ok(true),
    };
    let q = format!("SELECT sql FROM {}.sqlite_master WHERE name = ?1 COLLATE NOCASE", sql::quote_ident(schema));
    let text: Option<String> = conn
        .query_row(&q, [name], |r| r.get(0))
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })
        .map_err(query_err(&q))?;
    Ok(text.is_none_or(|sql| sql.to_ascii_uppercase().contains("COLLATE")))
}

/// The stamp of the row written last (the largest rowid with one): a seek from the end of the
/// table. `None` for a table without rowids (or a view), or when it cannot tell.
fn newest_written(conn: &Connection, t: &str, e: &str) -> Option<Value> {
    let q = format!("SELECT {e} FROM {t} WHERE {e} IS NOT NULL ORDER BY rowid DESC LIMIT 1");
    conn.query_row(&q, [], |r| Ok(owned(r.get_ref(0)?))).ok().flatten()
}

/// The smallest and largest non-NULL value of `e`: two index seeks where an index leads with
/// the column, one scan otherwise.
fn extremes(conn: &Connection, t: &str, e: &str) -> Result<(Option<Value>, Option<Value>), Error> {
    let q = if indexed(conn, t, e)? {
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

fn mixed(table: impl std::fmt::Display, column: &str, a: &Value, b: &Value) -> Error {
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
                let Some(sample) = sample(&conn, &t, &e)? else { return Ok(None) };
                let layout = Layout::of(ValueRef::from(&sample)).map_err(|seen| Error::StampLayout {
                    table: table.to_string(),
                    column: e.clone(),
                    seen,
                    recognised: stamp::RECOGNISED,
                })?;
                // The sample, the smallest and the largest stamp must share a layout: SQLite
                // orders by storage class first, and text by its characters, so a second
                // layout sorts into the wrong windows (or none). Checking the two ends catches
                // any mix of storage classes or epoch units, whatever lies between them. Where
                // no index gives the ends in two seeks, finding them would be a pass over the
                // table of its own: the stamp written last stands in for them here (its
                // fraction is the current writers'), and the run's read looks at every row's
                // class, unit and separator, and at every stamp above the bound, in its one
                // pass (`read_counting`).
                let (min, max) = match indexed(&conn, &t, &e)? {
                    true => extremes(&conn, &t, &e)?,
                    false => match newest_written(&conn, &t, &e) {
                        Some(newest) => (None, Some(newest)),
                        // A view or a table without rowids: the ends, though they cost a pass.
                        None => extremes(&conn, &t, &e)?,
                    },
                };
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
                let check = |min: Option<Value>, max: Option<Value>| match (min, max) {
                    (Some(min), Some(max))
                        if min.data_type() != max.data_type() && !(numeric(&min) && numeric(&max)) =>
                    {
                        Err(mixed(table, &e, &min, &max))
                    }
                    _ => Ok(()),
                };
                // The aggregate compares as the BINARY collation does; a column declared with
                // another is left to SQL's own `MAX`, whatever it costs.
                if indexed(&conn, &t, &e)? || declares_collation(&conn, table)? {
                    let (min, max) = extremes(&conn, &t, &e)?;
                    check(min, max)?;
                    let q = sql::tie_safe_max(&t, expr);
                    return conn
                        .query_row(&q, [], |r| Ok(from_sql(r.get_ref(0)?)))
                        .map_err(|s| query_err(&q)(s).into());
                }
                // Without an index SQL's tie-safe maximum is two passes (the maximum, then the
                // largest value below it) beside the ends' one: here all three are one.
                conn.create_aggregate_function(
                    BELOW_MAX,
                    1,
                    rusqlite::functions::FunctionFlags::SQLITE_UTF8
                        | rusqlite::functions::FunctionFlags::SQLITE_DETERMINISTIC
                        | rusqlite::functions::FunctionFlags::SQLITE_DIRECTONLY,
                    BelowMax,
                )
                .map_err(query_err(BELOW_MAX))?;
                let q = format!("SELECT MIN({e}), MAX({e}), {BELOW_MAX}({e}) FROM {t}");
                let (min, max, below) = conn
                    .query_row(&q, [], |r| Ok((owned(r.get_ref(0)?), owned(r.get_ref(1)?), from_sql(r.get_ref(2)?))))
                    .map_err(query_err(&q))?;
                check(min, max)?;
                Ok(below)
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
        tokio::task::spawn_blocking(move || match stream_rows(&conn, &rendered, width, None, &tx) {
            Ok(()) => tx.finish(),
            Err(e) => {
                tx.blocking_send(Err(e.into()));
            }
        });
        Ok(stream)
    }

    /// Where an index leads with the stamp, the checks are counted from it first (cheap), then
    /// the window is read. Where none does, each count would be a pass over the table of its
    /// own: the read's one statement counts them instead, as it steps through the table.
    fn counts_in_read(&self) -> bool {
        true
    }

    async fn read_counting(&self, query: &Query, checks: &WindowChecks) -> Result<(RowStream, Tally), BoxError> {
        let t = table_sql(&query.table)?;
        let conn = self.open()?;
        let e = sql::watermark_expr(&checks.expr);
        let one_pass =
            matches!(&query.filter, Filter::Window { expr, .. } if expr == &checks.expr) && !indexed(&conn, &t, &e)?;
        // The layout `upper_bound` learnt from a sample (the column has one, or it would have
        // refused); with `"max"` the stamps need be no time at all.
        let layout = match (one_pass, checks.times) {
            (true, true) => sample(&conn, &t, &e)?.and_then(|v| Layout::of(ValueRef::from(&v)).ok().map(|l| (l, v))),
            _ => None,
        };
        let pass = match &query.filter {
            Filter::Window { low, high, .. } if one_pass => {
                OnePass::new(query, checks, &t, &e, low.as_ref(), high, layout.as_ref().map(|(l, _)| l.floor_sql()))
            }
            _ => None,
        };
        let Some(pass) = pass else {
            let counted = count_checks(self, checks).await?;
            let stream = self.read(query).await?;
            return Ok((stream, Arc::new(std::sync::OnceLock::from(counted))));
        };
        let found = Arc::new(std::sync::Mutex::new(Found::default()));
        let seen = found.clone();
        let known = layout.clone();
        let clock = (self.clock)();
        conn.create_scalar_function(
            TALLY,
            2,
            rusqlite::functions::FunctionFlags::SQLITE_UTF8 | rusqlite::functions::FunctionFlags::SQLITE_DIRECTONLY,
            move |ctx| {
                let kind: i64 = ctx.get(0)?;
                let mut found = seen.lock().unwrap_or_else(|p| p.into_inner());
                found.note(kind, ctx.get_raw(1), known.as_ref().map(|(l, _)| l), clock);
                Ok(0)
            },
        )
        .map_err(query_err(&pass.rendered.sql))?;
        conn.prepare(&pass.rendered.sql).map_err(query_err(&pass.rendered.sql))?;
        let width = query.columns.len();
        let tally: Tally = Arc::new(std::sync::OnceLock::new());
        let filled = tally.clone();
        let table = query.table.to_string();
        let (tx, stream) = row_channel(IN_FLIGHT);
        tokio::task::spawn_blocking(move || {
            // The window's own stamps, which the statement returns after the columns: each is
            // looked at on this thread as it passes (a few byte tests, `Layout::of` only when
            // those fail).
            let mut other: Option<Value> = None;
            let mut implausible: Option<(Value, DateTime<Utc>)> = None;
            let mut look = |stamp: ValueRef<'_>| {
                let Some((layout, _)) = &layout else { return };
                if other.is_none()
                    && !layout.looks_like(stamp)
                    && Layout::of(stamp).map_or(true, |l| !l.same_family(layout))
                {
                    other = owned(stamp);
                }
                // Of a guessed unit (epochs), each stamp must be a time that can be.
                if let (None, Some(at)) = (&implausible, layout.instant(stamp)) {
                    if at < stamp::EARLIEST || at > clock + ChronoDuration::days(1) {
                        implausible = owned(stamp).map(|v| (v, at));
                    }
                }
            };
            let result = stream_rows(&conn, &pass.rendered, width, Some(&mut look), &tx).and_then(|()| {
                let mut found = std::mem::take(&mut *found.lock().unwrap_or_else(|p| p.into_inner()));
                found.other = found.other.take().or(other);
                found.implausible = found.implausible.take().or(implausible);
                found.verdict(&table, &e, layout.as_ref().map(|(_, v)| v), pass.counts_previous)
            });
            match result {
                Ok(counted) => {
                    let _ = filled.set(counted);
                    tx.finish();
                }
                Err(e) => {
                    tx.blocking_send(Err(e.into()));
                }
            }
        });
        Ok((stream, tally))
    }
}

/// `sluice_below_max(e)`: the largest value below the maximum (ties with the maximum wait for
/// the next run), found in the one pass that also finds the ends. Values compare as SQLite
/// compares them within a storage class (numbers by value, text and blobs by their bytes: the
/// BINARY collation); a column mixing classes is refused from its ends, read in the same pass.
const BELOW_MAX: &str = "sluice_below_max";

struct BelowMax;

/// The largest value seen, and the largest below it, as SQLite holds them (text as its bytes,
/// whatever their encoding: a stamp that is not UTF-8 still compares as text).
#[derive(Default)]
struct TopTwo {
    max: Option<Key>,
    below: Option<Key>,
}

#[derive(Debug, Clone, PartialEq)]
enum Key {
    Int(i64),
    Real(f64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

impl Key {
    fn of(v: ValueRef<'_>) -> Option<Key> {
        match v {
            ValueRef::Null => None,
            ValueRef::Integer(i) => Some(Key::Int(i)),
            ValueRef::Real(f) => Some(Key::Real(f)),
            ValueRef::Text(t) => Some(Key::Text(t.to_vec())),
            ValueRef::Blob(b) => Some(Key::Blob(b.to_vec())),
        }
    }

    fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Key::Int(i) => ValueRef::Integer(*i),
            Key::Real(f) => ValueRef::Real(*f),
            Key::Text(t) => ValueRef::Text(t),
            Key::Blob(b) => ValueRef::Blob(b),
        }
    }
}

/// SQLite's order of two non-NULL values with the BINARY collation: numbers, then text, then
/// blobs.
fn sqlite_cmp(a: ValueRef<'_>, b: ValueRef<'_>) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let rank = |v: ValueRef<'_>| match v {
        ValueRef::Null => 0,
        ValueRef::Integer(_) | ValueRef::Real(_) => 1,
        ValueRef::Text(_) => 2,
        ValueRef::Blob(_) => 3,
    };
    match (a, b) {
        (ValueRef::Integer(x), ValueRef::Integer(y)) => x.cmp(&y),
        (ValueRef::Real(x), ValueRef::Real(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        // Stamps are far below 2^53, where an integer is exactly a double.
        (ValueRef::Integer(x), ValueRef::Real(y)) => (x as f64).partial_cmp(&y).unwrap_or(Ordering::Equal),
        (ValueRef::Real(x), ValueRef::Integer(y)) => x.partial_cmp(&(y as f64)).unwrap_or(Ordering::Equal),
        (ValueRef::Text(x), ValueRef::Text(y)) | (ValueRef::Blob(x), ValueRef::Blob(y)) => x.cmp(y),
        (a, b) => rank(a).cmp(&rank(b)),
    }
}

impl rusqlite::functions::Aggregate<TopTwo, Option<Value>> for BelowMax {
    fn init(&self, _: &mut rusqlite::functions::Context<'_>) -> rusqlite::Result<TopTwo> {
        Ok(TopTwo::default())
    }

    fn step(&self, ctx: &mut rusqlite::functions::Context<'_>, top: &mut TopTwo) -> rusqlite::Result<()> {
        use std::cmp::Ordering;
        let v = ctx.get_raw(0);
        if v == ValueRef::Null {
            return Ok(());
        }
        match top.max.as_ref().map(|max| sqlite_cmp(v, max.as_ref())) {
            None => top.max = Key::of(v),
            Some(Ordering::Greater) => top.below = std::mem::replace(&mut top.max, Key::of(v)),
            Some(Ordering::Equal) => {}
            Some(Ordering::Less) => {
                if top.below.as_ref().is_none_or(|below| sqlite_cmp(v, below.as_ref()) == Ordering::Greater) {
                    top.below = Key::of(v);
                }
            }
        }
        Ok(())
    }

    fn finalize(
        &self,
        _: &mut rusqlite::functions::Context<'_>,
        top: Option<TopTwo>,
    ) -> rusqlite::Result<Option<Value>> {
        Ok(top.and_then(|t| t.below).map(|k| match k {
            Key::Int(i) => Value::Integer(i),
            Key::Real(f) => Value::Real(f),
            Key::Text(t) => Value::Text(String::from_utf8_lossy(&t).into_owned()),
            Key::Blob(b) => Value::Blob(b),
        }))
    }
}

/// The SQL function the one-pass read calls for the rows outside its window it must count or
/// check (`kind`, the stamp): never for a row of the window, so the rows read cost nothing more.
const TALLY: &str = "sluice_tally";
const NULL_STAMP: i64 = 0;
const PREVIOUS_WINDOW: i64 = 1;
const ABOVE_BOUND: i64 = 2;
const BELOW_FAMILY: i64 = 3;

/// The one statement of a window read `(low, high]` that also counts and checks, its
/// conditions ordered so that a row outside the window costs what it costs the plain read
/// (one comparison), or one more where the stamps are times (the family's floor), and the SQL
/// function is called only for the rows it counts or looks at (it returns 0, so none of them
/// is returned):
///
/// ```sql
/// SELECT <columns>, <e> FROM <table>
/// WHERE CASE WHEN <e> > <previous low> THEN 1         -- newer rows go on
///            WHEN <e> >= <floor> THEN 0               -- older rows out
///            WHEN <e> IS NULL THEN sluice_tally(0, NULL)  -- NULL stamps counted
///            ELSE sluice_tally(3, <e>) END            -- below the family: another class or unit
///   AND (<e> > <low> OR sluice_tally(1, NULL))        -- the previous window's rows counted
///   AND (<e> <= <high> OR sluice_tally(2, <e>))       -- rows past the bound looked at
/// ```
///
/// Without a previous window the first condition is on `<low>` and the second goes; without a
/// floor (`upper_bound = "max"`: any ordered values) the first is `COALESCE(<e> > <previous
/// low>, sluice_tally(0, NULL))`. A previous window without a lower end (the table's first) is
/// every older row, a call for each of them, on the table's second run only. The stamp
/// returned after the columns is the window's, for the reader to look at.
struct OnePass {
    rendered: RenderedQuery,
    counts_previous: bool,
}

impl OnePass {
    /// `None` where one statement cannot count the previous window: when it does not end
    /// where this window starts (a full refresh reads from the start).
    fn new(
        query: &Query,
        checks: &WindowChecks,
        t: &str,
        e: &str,
        low: Option<&Watermark>,
        high: &Watermark,
        floor: Option<&'static str>,
    ) -> Option<OnePass> {
        let cols = query.columns.iter().map(|c| sql::quote_ident(c)).collect::<Vec<_>>().join(", ");
        let (mut terms, mut params) = (Vec::new(), Vec::new());
        let null = format!("{TALLY}({NULL_STAMP}, NULL)");
        let previous = format!("{TALLY}({PREVIOUS_WINDOW}, NULL)");
        // Rows at or below `start`, given what to do with those of the family.
        let mut older = |start: &Watermark, family: &str| match &floor {
            Some(floor) => {
                terms.push(format!(
                    "CASE WHEN {e} > ? THEN 1 WHEN {e} >= {floor} THEN {family} WHEN {e} IS NULL THEN {null} \
                     ELSE {TALLY}({BELOW_FAMILY}, {e}) END"
                ));
                params.push(start.clone());
            }
            None if family == "0" => {
                terms.push(format!("COALESCE({e} > ?, {null})"));
                params.push(start.clone());
            }
            None => {
                terms.push(format!("CASE WHEN {e} > ? THEN 1 WHEN {e} IS NULL THEN {null} ELSE {family} END"));
                params.push(start.clone());
            }
        };
        match (&checks.previous, low) {
            (Some((_, end)), Some(low)) if end != low => return None,
            (Some(_), None) => return None,
            (Some((Some(start), _)), Some(low)) => {
                older(start, "0");
                terms.push(format!("({e} > ? OR {previous})"));
                params.push(low.clone());
            }
            (Some((None, _)), Some(low)) => older(low, &previous),
            (None, Some(low)) => older(low, "0"),
            (None, None) => terms.push(format!("({e} IS NOT NULL OR {null})")),
        }
        terms.push(format!("({e} <= ? OR {TALLY}({ABOVE_BOUND}, {e}))"));
        params.push(high.clone());
        Some(OnePass {
            rendered: RenderedQuery {
                sql: format!("SELECT {cols}, {e} FROM {t} WHERE {}", terms.join(" AND ")),
                params,
            },
            counts_previous: checks.previous.is_some(),
        })
    }
}

/// What the one-pass read's function saw.
#[derive(Default)]
struct Found {
    null_rows: u64,
    previous_window: u64,
    /// The first stamp of another layout than the sample's.
    other: Option<Value>,
    /// The first stamp above the bound that is not a plausible time in the sample's layout.
    implausible: Option<(Value, DateTime<Utc>)>,
}

impl Found {
    fn note(&mut self, kind: i64, stamp: ValueRef<'_>, layout: Option<&Layout>, clock: DateTime<Utc>) {
        match kind {
            NULL_STAMP => self.null_rows += 1,
            PREVIOUS_WINDOW => self.previous_window += 1,
            _ => {
                // Past the bound another class or unit sorts (text above numbers, milliseconds
                // above seconds), and so does a stamp of a guessed unit that is wrong; stamps of
                // the family are there only while the lag runs. Below the family's floor
                // another sorts too (numbers below text, seconds below milliseconds).
                let Some(layout) = layout else { return };
                if !Layout::of(stamp).is_ok_and(|l| l.same_family(layout)) {
                    if self.other.is_none() {
                        self.other = owned(stamp);
                    }
                    return;
                }
                let at = layout.instant(stamp);
                if self.implausible.is_none() && at.is_some_and(|at| at > clock + ChronoDuration::days(1)) {
                    self.implausible = owned(stamp).zip(at);
                }
            }
        }
    }

    /// The counts, or the error a stamp of another layout (or an implausible one) makes:
    /// the run fails before its commit, as the ends' check fails it where an index finds them.
    fn verdict(self, table: &str, e: &str, sample: Option<&Value>, counts_previous: bool) -> Result<Counted, Error> {
        if let (Some(other), Some(sample)) = (&self.other, sample) {
            return Err(mixed(table, e, sample, other));
        }
        if let (Some((newest, at)), Some(sample)) = (&self.implausible, sample) {
            let layout = Layout::of(ValueRef::from(sample)).map(|l| l.describe()).unwrap_or_default();
            return Err(Error::ImplausibleStamps {
                table: table.to_string(),
                column: e.to_string(),
                newest: stamp::show(newest),
                layout,
                at: at.to_rfc3339(),
            });
        }
        Ok(Counted { null_rows: self.null_rows, previous_window: counts_previous.then_some(self.previous_window) })
    }
}

/// Runs the query and sends its rows in batches; stops early when the receiver is gone.
/// With `stamp`, the statement returns one column more, after the `width` exported: it is
/// handed to `stamp` and not sent.
fn stream_rows(
    conn: &Connection,
    rendered: &RenderedQuery,
    width: usize,
    mut stamp: Option<&mut dyn FnMut(ValueRef<'_>)>,
    tx: &RowSender,
) -> Result<(), Error> {
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
        if let Some(look) = stamp.as_mut() {
            look(row.get_ref(width).map_err(&err)?);
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
