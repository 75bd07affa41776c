//! SQL text for sources that speak ANSI-quoted SQL (SQLite, Snowflake): identifiers are always
//! quoted, values are always bound as parameters, never pasted into the text.

use crate::ports::{Filter, Query, RenderedQuery, WatermarkExpr};
use crate::value::{TableName, Watermark};

/// `name` as a quoted identifier: `"a""b"` for `a"b`.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"db"."schema"."table"`.
pub fn quote_table(table: &TableName) -> String {
    table.parts.iter().map(|p| quote_ident(p)).collect::<Vec<_>>().join(".")
}

/// The watermark expression: the column, or `COALESCE(column, fallback)`.
pub fn watermark_expr(expr: &WatermarkExpr) -> String {
    match &expr.fallback {
        None => quote_ident(&expr.column),
        Some(f) => format!("COALESCE({}, {})", quote_ident(&expr.column), quote_ident(f)),
    }
}

/// The WHERE clause of a query (with a leading space) and its parameters.
pub fn where_clause(filter: &Filter) -> RenderedQuery {
    match filter {
        Filter::All => RenderedQuery { sql: String::new(), params: Vec::new() },
        Filter::Window { expr, low, high } => {
            let w = window_condition(expr, low.as_ref(), high);
            RenderedQuery { sql: format!(" WHERE {}", w.sql), params: w.params }
        }
    }
}

/// `low < expr <= high` as a condition (no lower bound when `low` is `None`), and its parameters.
pub fn window_condition(expr: &WatermarkExpr, low: Option<&Watermark>, high: &Watermark) -> RenderedQuery {
    let e = watermark_expr(expr);
    match low {
        Some(low) => RenderedQuery { sql: format!("{e} > ? AND {e} <= ?"), params: vec![low.clone(), high.clone()] },
        None => RenderedQuery { sql: format!("{e} <= ?"), params: vec![high.clone()] },
    }
}

/// `SELECT <columns> FROM <table> [WHERE <window>] [ORDER BY <key>]`.
pub fn select(query: &Query) -> RenderedQuery {
    let cols = query.columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ");
    let w = where_clause(&query.filter);
    let order = match query.order_by.as_slice() {
        [] => String::new(),
        keys => format!(" ORDER BY {}", keys.iter().map(|k| quote_ident(k)).collect::<Vec<_>>().join(", ")),
    };
    RenderedQuery { sql: format!("SELECT {cols} FROM {}{}{order}", quote_table(&query.table), w.sql), params: w.params }
}

/// `SELECT COUNT(*) FROM <table> [WHERE <window>]`.
pub fn count(query: &Query) -> RenderedQuery {
    let w = where_clause(&query.filter);
    RenderedQuery { sql: format!("SELECT COUNT(*) FROM {}{}", quote_table(&query.table), w.sql), params: w.params }
}

/// The largest value of the watermark expression below its maximum (`upper_bound = "max"`):
/// rows tied with the newest value wait for the next run. `table` is already quoted.
pub fn tie_safe_max(table: &str, expr: &WatermarkExpr) -> String {
    let e = watermark_expr(expr);
    format!("SELECT MAX({e}) FROM {table} WHERE {e} < (SELECT MAX({e}) FROM {table})")
}

/// How many rows have a NULL watermark expression. `table` is already quoted.
pub fn count_null(table: &str, expr: &WatermarkExpr) -> String {
    format!("SELECT COUNT(*) FROM {table} WHERE {} IS NULL", watermark_expr(expr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_and_values_bound() {
        let q = Query {
            table: TableName::parse("main.con\"tacts").unwrap(),
            columns: vec!["id".into(), "na me".into()],
            filter: Filter::Window {
                expr: WatermarkExpr { column: "updated_at".into(), fallback: Some("created_at".into()) },
                low: Some(Watermark::Text("x'; DROP TABLE t; --".into())),
                high: Watermark::Int(5),
            },
            order_by: vec![],
        };
        let r = select(&q);
        assert_eq!(
            r.sql,
            "SELECT \"id\", \"na me\" FROM \"main\".\"con\"\"tacts\" WHERE COALESCE(\"updated_at\", \"created_at\") > ? AND COALESCE(\"updated_at\", \"created_at\") <= ?"
        );
        assert_eq!(r.params.len(), 2);
        let keyed = Query { filter: Filter::All, order_by: vec!["id".into(), "k\"2".into()], ..q };
        assert_eq!(
            select(&keyed).sql,
            "SELECT \"id\", \"na me\" FROM \"main\".\"con\"\"tacts\" ORDER BY \"id\", \"k\"\"2\""
        );
    }
}
