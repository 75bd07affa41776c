//! The `Source` contract, on a table every adapter is given with the same rows
//! ([`FIXTURE`]): its columns in order, the upper bound below the newest value, counts of a
//! window and of rows in none, rows read whole (NULL, the empty string and delimiters kept
//! apart), windows bounded as `low < expr <= high`, values bound rather than written into the
//! SQL, and a bad identifier refused without touching the table. It runs on SQLite and on
//! Snowflake (fakesnow).

use futures::StreamExt;

use sluice_core::ports::{Filter, Query, Source, WatermarkExpr};
use sluice_core::value::{Cell, RowBatch, TableName, UpperBound, Watermark};

/// The table every adapter's suite reads, as SQL both SQLite and Snowflake run.
pub const FIXTURE: &[&str] = &[
    "CREATE TABLE contract_items (id INTEGER, name TEXT, updated_at TEXT)",
    "INSERT INTO contract_items VALUES \
     (1, 'plain', '2026-01-01 00:00:01'), \
     (2, NULL, '2026-01-01 00:00:02'), \
     (3, 'a|b\"c', '2026-01-01 00:00:03'), \
     (4, '', '2026-01-01 00:00:03'), \
     (5, 'no stamp', NULL)",
];

fn stamp(s: &str) -> Watermark {
    Watermark::Text(format!("2026-01-01 00:00:0{s}"))
}

/// A cell as text (numbers as written), `None` for NULL: what every adapter must agree on.
fn text(batch: &RowBatch, cell: &Cell) -> Option<String> {
    match *cell {
        Cell::Null => None,
        Cell::Bool(b) => Some(b.to_string()),
        Cell::Int(i) => Some(i.to_string()),
        Cell::Float(f) => Some(f.to_string()),
        Cell::Text(s, l) | Cell::Number(s, l) | Cell::Bytes(s, l) => {
            Some(String::from_utf8_lossy(batch.slice(s, l)).into_owned())
        }
    }
}

async fn rows(source: &dyn Source, query: &Query) -> Vec<Vec<Option<String>>> {
    let mut stream = source.read(query).await.expect("the query reads");
    let mut out = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch.expect("every batch arrives");
        for r in 0..batch.rows() {
            out.push(batch.row(r).iter().map(|c| text(&batch, c)).collect());
        }
    }
    out
}

/// The contract, on `source` holding [`FIXTURE`] as `table` (spelled as the source spells it).
pub async fn check_contract(source: &dyn Source, table: &TableName) {
    // Columns, in the table's order, as the source names them.
    let columns = source.columns(table).await.expect("the table's columns");
    let names: Vec<String> = columns.iter().map(|c| c.name.to_ascii_lowercase()).collect();
    assert_eq!(names, ["id", "name", "updated_at"], "columns in the table's order");
    let [id, name, updated_at] = [0, 1, 2].map(|i| columns[i].name.clone());

    // A missing table is an error naming it.
    let missing = TableName::parse("no_such_table").unwrap();
    let err = source.columns(&missing).await.expect_err("a missing table is an error");
    let chain = sluice_core::error::error_chain(err.as_ref()).to_ascii_lowercase();
    assert!(chain.contains("no_such_table"), "the error names the table: {chain}");

    // The bound below the newest value: rows tied with the newest wait for the next run.
    let expr = WatermarkExpr { column: updated_at.clone(), fallback: None };
    let high = source.upper_bound(table, &expr, UpperBound::Max).await.expect("the upper bound");
    assert_eq!(high, Some(stamp("2")), "the largest value below the maximum");

    // Counts: every row, a window, and the rows in no window.
    let all = Query {
        table: table.clone(),
        columns: vec![id.clone(), name.clone()],
        filter: Filter::All,
        order_by: vec![id.clone()],
    };
    assert_eq!(source.count(&all).await.unwrap(), 5);
    let window = |low: Option<Watermark>, high: Watermark| Query {
        table: table.clone(),
        columns: vec![id.clone(), name.clone(), updated_at.clone()],
        filter: Filter::Window { expr: expr.clone(), low, high },
        order_by: vec![id.clone()],
    };
    assert_eq!(source.count(&window(None, stamp("2"))).await.unwrap(), 2, "no lower bound: up to high");
    assert_eq!(source.count(&window(Some(stamp("1")), stamp("3"))).await.unwrap(), 3, "low < expr <= high");
    assert_eq!(source.count_null(table, &expr).await.unwrap(), 1, "the row without a stamp is in no window");

    // Rows read whole and in the order asked: NULL, the empty string and delimiters apart.
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        rows(source, &all).await,
        vec![
            vec![s("1"), s("plain")],
            vec![s("2"), None],
            vec![s("3"), s("a|b\"c")],
            vec![s("4"), s("")],
            vec![s("5"), s("no stamp")],
        ]
    );
    let read: Vec<Option<String>> =
        rows(source, &window(Some(stamp("1")), stamp("3"))).await.into_iter().map(|r| r[0].clone()).collect();
    assert_eq!(read, [s("2"), s("3"), s("4")], "the window's rows, by id");

    // Values are bound, never written into the statement.
    let rendered = source.render(&window(Some(stamp("1")), stamp("3")));
    assert!(!rendered.sql.contains("2026-01-01"), "values are bound: {}", rendered.sql);
    assert_eq!(rendered.params, [stamp("1"), stamp("3")]);

    // An identifier that tries to end its quotes is refused or read as a name, never run.
    let hostile = TableName::parse("x\"; DROP TABLE contract_items; --").unwrap();
    assert!(source.columns(&hostile).await.is_err(), "no such table");
    assert_eq!(source.count(&all).await.unwrap(), 5, "the table is still there");
}
