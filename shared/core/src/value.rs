//! Rows as they travel from a source to an encoder: batches of cells over one byte buffer, so a
//! batch of thousands of rows costs two allocations rather than one per value.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One value. Text and bytes point into the batch's buffer (`start`, `len`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(u32, u32),
    /// A number as the source wrote it (`12.50`, `-1e+20`): exact, whatever its precision.
    Number(u32, u32),
    Bytes(u32, u32),
}

/// A column of the exported table: its name and the type the source declares for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub source_type: String,
}

/// A batch of rows, `width` cells each, row-major.
#[derive(Debug, Clone, Default)]
pub struct RowBatch {
    width: usize,
    cells: Vec<Cell>,
    data: Vec<u8>,
    /// Where the buffers go back to when the batch is dropped.
    pool: Option<Arc<BatchPool>>,
}

/// Buffers of dropped batches, handed out again. A source fills batches on one thread and the
/// encoder drops them on another; without reuse the allocator's per-thread arenas keep freed
/// buffers around and memory creeps up with the table's size.
#[derive(Debug)]
pub struct BatchPool {
    free: Mutex<Vec<(Vec<Cell>, Vec<u8>)>>,
    keep: usize,
}

impl BatchPool {
    /// A pool that keeps at most `keep` sets of buffers.
    pub fn new(keep: usize) -> Arc<BatchPool> {
        Arc::new(BatchPool { free: Mutex::new(Vec::new()), keep })
    }

    /// An empty batch, on reused buffers when there are some.
    pub fn batch(self: &Arc<Self>, width: usize, rows: usize, bytes: usize) -> RowBatch {
        let reused = self.free.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let (cells, data) = reused.unwrap_or_else(|| (Vec::with_capacity(rows * width), Vec::with_capacity(bytes)));
        RowBatch { width, cells, data, pool: Some(self.clone()) }
    }
}

impl Drop for RowBatch {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            let mut free = pool.free.lock().unwrap_or_else(|p| p.into_inner());
            if free.len() < pool.keep {
                let (mut cells, mut data) = (std::mem::take(&mut self.cells), std::mem::take(&mut self.data));
                cells.clear();
                data.clear();
                free.push((cells, data));
            }
        }
    }
}

impl RowBatch {
    pub fn new(width: usize) -> Self {
        Self::with_capacity(width, 0, 0)
    }

    pub fn with_capacity(width: usize, rows: usize, bytes: usize) -> Self {
        Self { width, cells: Vec::with_capacity(rows * width), data: Vec::with_capacity(bytes), pool: None }
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn rows(&self) -> usize {
        self.cells.len().checked_div(self.width).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// Bytes of text and binary values held; sources use it to cap a batch's size.
    pub fn data_len(&self) -> usize {
        self.data.len()
    }

    pub fn row(&self, index: usize) -> &[Cell] {
        &self.cells[index * self.width..(index + 1) * self.width]
    }

    /// The bytes a `Text`, `Number` or `Bytes` cell points at.
    #[inline]
    pub fn slice(&self, start: u32, len: u32) -> &[u8] {
        &self.data[start as usize..start as usize + len as usize]
    }

    pub fn push_null(&mut self) {
        self.cells.push(Cell::Null);
    }
    pub fn push_bool(&mut self, v: bool) {
        self.cells.push(Cell::Bool(v));
    }
    pub fn push_int(&mut self, v: i64) {
        self.cells.push(Cell::Int(v));
    }
    pub fn push_float(&mut self, v: f64) {
        self.cells.push(Cell::Float(v));
    }
    pub fn push_text(&mut self, v: &[u8]) {
        let (start, len) = self.push_data(v);
        self.cells.push(Cell::Text(start, len));
    }
    /// A number's text, kept exactly as the source wrote it (NUMBER(38,10) fits no f64).
    pub fn push_number(&mut self, v: &[u8]) {
        let (start, len) = self.push_data(v);
        self.cells.push(Cell::Number(start, len));
    }
    /// Text rendered straight into the batch's buffer by `render` (no intermediate copy).
    pub fn push_text_with(&mut self, render: impl FnOnce(&mut Vec<u8>)) {
        let start = self.data.len();
        render(&mut self.data);
        self.cells.push(Cell::Text(start as u32, (self.data.len() - start) as u32));
    }

    pub fn push_bytes(&mut self, v: &[u8]) {
        let (start, len) = self.push_data(v);
        self.cells.push(Cell::Bytes(start, len));
    }

    /// Empties the batch, keeping its buffers.
    pub fn clear(&mut self) {
        self.cells.clear();
        self.data.clear();
    }

    /// Appends a copy of `cell`, which belongs to `src` (its text and bytes are copied over).
    pub fn push_from(&mut self, src: &RowBatch, cell: &Cell) {
        match *cell {
            Cell::Text(s, l) => self.push_text(src.slice(s, l)),
            Cell::Number(s, l) => self.push_number(src.slice(s, l)),
            Cell::Bytes(s, l) => self.push_bytes(src.slice(s, l)),
            other => self.cells.push(other),
        }
    }

    fn push_data(&mut self, v: &[u8]) -> (u32, u32) {
        // A batch is flushed by its source long before 4 GiB; the assert documents the bound.
        let start = u32::try_from(self.data.len()).expect("a row batch holds less than 4 GiB");
        self.data.extend_from_slice(v);
        (start, v.len() as u32)
    }
}

/// The last exported value of a table's incremental column, typed as the source stores it, so
/// the next run's bound compares the way the source's own `>` does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
pub enum Watermark {
    Int(i64),
    Float(f64),
    Text(String),
}

impl Watermark {
    /// Reads `raw` (a command line's, a request's) as a value of `like`'s type.
    pub fn parse_like(raw: &str, like: &Watermark) -> Option<Watermark> {
        match like {
            Watermark::Int(_) => raw.trim().parse().ok().map(Watermark::Int),
            Watermark::Float(_) => raw.trim().parse().ok().map(Watermark::Float),
            Watermark::Text(_) => Some(Watermark::Text(raw.to_string())),
        }
    }

    /// Orders two watermarks of the same type as SQL does (text by bytes, as SQLite's BINARY
    /// collation and Snowflake's default do); values of different types do not compare.
    pub fn partial_cmp_same_type(&self, other: &Watermark) -> Option<Ordering> {
        match (self, other) {
            (Watermark::Int(a), Watermark::Int(b)) => Some(a.cmp(b)),
            (Watermark::Float(a), Watermark::Float(b)) => a.partial_cmp(b),
            (Watermark::Int(a), Watermark::Float(b)) => (*a as f64).partial_cmp(b),
            (Watermark::Float(a), Watermark::Int(b)) => a.partial_cmp(&(*b as f64)),
            (Watermark::Text(a), Watermark::Text(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
            _ => None,
        }
    }
}

impl fmt::Display for Watermark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Watermark::Int(v) => write!(f, "{v}"),
            Watermark::Float(v) => write!(f, "{v}"),
            Watermark::Text(v) => write!(f, "{v}"),
        }
    }
}

/// The rows a run exports: `low < column <= high`. `low` is absent on a first run or a full
/// refresh; `high` is absent when the table has no value to bound by (then nothing is read).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Window {
    pub low: Option<Watermark>,
    pub high: Option<Watermark>,
}

impl Window {
    /// True when no row can satisfy `low < x <= high`.
    pub fn is_empty(&self) -> bool {
        match (&self.low, &self.high) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(low), Some(high)) => !matches!(high.partial_cmp_same_type(low), Some(Ordering::Greater) | None),
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let low = self.low.as_ref().map_or("-inf".to_string(), |w| w.to_string());
        let high = self.high.as_ref().map_or("(none)".to_string(), |w| w.to_string());
        write!(f, "({low}, {high}]")
    }
}

/// A table reference: `[database.][schema.]table`, each part quoted on its own in SQL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableName {
    pub parts: Vec<String>,
}

impl TableName {
    pub fn parse(raw: &str) -> Option<TableName> {
        let parts: Vec<String> = raw.split('.').map(str::to_string).collect();
        if parts.len() > 3 || parts.iter().any(|p| p.is_empty() || p.chars().any(char::is_control)) {
            return None;
        }
        Some(TableName { parts })
    }

    /// The last part: the table itself.
    pub fn table(&self) -> &str {
        self.parts.last().map(String::as_str).unwrap_or_default()
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.parts.join("."))
    }
}

/// How `high` is captured before a run reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UpperBound {
    /// The source's clock minus `lag`: rows stamped within the lag wait for a later run, so a
    /// transaction that commits late (with an older stamp) is still inside a future window.
    Now { lag: Duration },
    /// The largest value below the column's current maximum: rows tied with the newest value
    /// wait for the next run, so a late row tied on the boundary is never skipped.
    Max,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_with_high_not_above_low_is_empty() {
        let w = |l: Option<i64>, h: Option<i64>| Window { low: l.map(Watermark::Int), high: h.map(Watermark::Int) };
        assert!(w(Some(5), Some(5)).is_empty());
        assert!(w(Some(5), Some(4)).is_empty());
        assert!(!w(Some(5), Some(6)).is_empty());
        assert!(!w(None, Some(1)).is_empty());
        assert!(w(None, None).is_empty());
    }

    #[test]
    fn watermark_json_is_tagged_with_its_type() {
        let json = serde_json::to_string(&Watermark::Text("2024-01-01 00:00:00".into())).unwrap();
        assert_eq!(json, r#"{"type":"text","value":"2024-01-01 00:00:00"}"#);
        let back: Watermark = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Watermark::Text("2024-01-01 00:00:00".into()));
    }

    #[test]
    fn a_dropped_pooled_batch_lends_its_buffers_to_the_next() {
        let pool = BatchPool::new(2);
        let mut b = pool.batch(1, 10, 100);
        b.push_text(b"hello");
        let ptr = b.data.as_ptr();
        drop(b);
        let again = pool.batch(1, 10, 100);
        assert!(again.is_empty() && again.data_len() == 0);
        assert_eq!(again.data.as_ptr(), ptr);
    }

    #[test]
    fn batch_rows_point_into_one_buffer() {
        let mut b = RowBatch::new(2);
        b.push_int(1);
        b.push_text(b"a|b");
        b.push_null();
        b.push_text(b"");
        assert_eq!(b.rows(), 2);
        match b.row(0)[1] {
            Cell::Text(s, l) => assert_eq!(b.slice(s, l), b"a|b"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
