//! The Snowflake `Source`: one session per process, SQL with quoted identifiers and bound
//! values, results streamed chunk by chunk (`next_table`) into pooled batches, and a statement
//! cancelled when its reader goes away early (an error, a deadline).

use std::sync::Arc;

use async_trait::async_trait;
use snowflake_connector_rs::{
    bind::{TimestampNtz, TimestampTz},
    Client, ClientConfig, ColumnType, EndpointConfig, PositionalBinds, QueryCanceller, QueryConfig, ResultCursor,
    SessionConfig, Statement,
};
use tracing::{debug, warn};

use crate::config::SnowflakeSpec;
use sluice_core::error::BoxError;
use sluice_core::manifest::PartInfo;
use sluice_core::ports::{
    row_channel, Query, RenderedQuery, RowStream, Secrets, Source, UnloadTarget, Unloader, WatermarkExpr,
};
use sluice_core::sql;
use sluice_core::value::{BatchPool, Column, Watermark};
use sluice_core::value::{TableName, UpperBound};

use crate::credentials::auth_config;
use crate::error::{query_error, Context, SnowflakeError};
use crate::render::{self, Kind};
use crate::unload;

/// A batch is handed over at this many rows (Snowflake's chunks hold tens of thousands).
const BATCH_ROWS: usize = 4096;
const BATCH_BYTES: usize = 256 * 1024;
/// Batches in flight between the reader task and the encoder.
const IN_FLIGHT: usize = 4;

pub struct SnowflakeSource {
    session: Arc<snowflake_connector_rs::Session>,
    spec: SnowflakeSpec,
    url: String,
    pool: Arc<BatchPool>,
}

/// The session's identity, as Snowflake reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionInfo {
    pub user: Option<String>,
    pub role: Option<String>,
    pub warehouse: Option<String>,
    pub database: Option<String>,
    pub schema: Option<String>,
}

impl SnowflakeSource {
    /// Reads the credentials and logs in. Errors say what to check and never carry a secret.
    pub async fn connect(spec: &SnowflakeSpec, secrets: &dyn Secrets) -> Result<SnowflakeSource, SnowflakeError> {
        let auth = auth_config(spec, secrets).await?;
        let mut session = SessionConfig::new().with_session_parameter("TIMEZONE", serde_json::json!("UTC"));
        if let Some(r) = &spec.role {
            session = session.with_role(r);
        }
        if let Some(w) = &spec.warehouse {
            session = session.with_warehouse(w);
        }
        if let Some(d) = &spec.database {
            session = session.with_database(d);
        }
        if let Some(s) = &spec.schema {
            session = session.with_schema(s);
        }
        let mut config = ClientConfig::new(&spec.user, &spec.account, auth)
            .with_session(session)
            .with_query(QueryConfig::new().with_query_response_timeout(spec.query_timeout));
        let url = match &spec.endpoint {
            Some(e) => {
                let parsed =
                    url::Url::parse(e).map_err(|err| SnowflakeError::Config(format!("endpoint {e:?}: {err}")))?;
                config = config.with_endpoint(EndpointConfig::custom_base_url(parsed));
                e.clone()
            }
            None => format!("https://{}.snowflakecomputing.com", spec.account),
        };
        let client = Client::new(config).map_err(|e| SnowflakeError::Config(e.to_string()))?;
        let session = client.create_session().await.map_err(|e| match e.kind() {
            snowflake_connector_rs::ErrorKind::Network => {
                SnowflakeError::Network { url: url.clone(), message: e.to_string() }
            }
            _ => SnowflakeError::Login {
                account: spec.account.clone(),
                user: spec.user.clone(),
                credentials: spec.credentials.to_string(),
                message: e.snowflake_message().map(str::to_string).unwrap_or_else(|| e.to_string()),
            },
        })?;
        debug!(account = %spec.account, user = %spec.user, "snowflake session opened");
        Ok(SnowflakeSource { session: Arc::new(session), spec: spec.clone(), url, pool: BatchPool::new(IN_FLIGHT + 2) })
    }

    fn ctx<'a>(&'a self, what: impl Into<String>, object: &'a str) -> Context<'a> {
        Context {
            url: &self.url,
            what: what.into(),
            object,
            role: self.spec.role.as_deref().unwrap_or("(the user's default role)"),
            timeout: self.spec.query_timeout,
        }
    }

    async fn run(&self, rendered: &RenderedQuery, what: &str, object: &str) -> Result<ResultCursor, SnowflakeError> {
        let stmt = statement(rendered).map_err(|e| SnowflakeError::Data { what: what.into(), message: e })?;
        self.session.query(stmt).await.map_err(|e| query_error(e, &self.ctx(what, object)))
    }

    /// The first cell of a one-row result, with its column type.
    async fn scalar(
        &self,
        rendered: &RenderedQuery,
        what: &str,
        object: &str,
    ) -> Result<(Option<String>, Option<ColumnType>), SnowflakeError> {
        let mut cursor = self.run(rendered, what, object).await?;
        let ty = cursor.schema().column_at(0).map(|c| c.ty().clone());
        let mut value = None;
        while let Some(table) = cursor.next_table().await.map_err(|e| query_error(e, &self.ctx(what, object)))? {
            if let Some(row) =
                table.rows::<(Option<String>,)>().map_err(|e| query_error(e, &self.ctx(what, object)))?.next()
            {
                value = row.map_err(|e| query_error(e, &self.ctx(what, object)))?.0;
                break;
            }
        }
        Ok((value, ty))
    }

    async fn describe(&self, table: &TableName) -> Result<Vec<(Column, ColumnType)>, SnowflakeError> {
        let q = RenderedQuery { sql: format!("SELECT * FROM {} LIMIT 0", sql::quote_table(table)), params: vec![] };
        let name = table.to_string();
        let cursor = self.run(&q, &format!("reading the columns of {name}"), &name).await?;
        Ok(cursor.schema().columns().iter().map(|c| (render::column(c), c.ty().clone())).collect())
    }

    /// Who the session is: user, role, warehouse, database and schema, as Snowflake reports
    /// them (what `sluice check-connection` prints). Asked one by one, so that a function an
    /// engine lacks (the test stand-in has no CURRENT_WAREHOUSE) shows as unknown, not as a
    /// failed check.
    pub async fn session_info(&self) -> Result<SessionInfo, SnowflakeError> {
        let mut values = Vec::new();
        for f in ["CURRENT_USER()", "CURRENT_ROLE()", "CURRENT_WAREHOUSE()", "CURRENT_DATABASE()", "CURRENT_SCHEMA()"] {
            let q = RenderedQuery { sql: format!("SELECT {f}"), params: vec![] };
            values.push(match self.scalar(&q, &format!("reading {f}"), "the session").await {
                Ok((v, _)) => v,
                // The login worked; a network failure now is worth stopping for.
                Err(e @ SnowflakeError::Network { .. }) => return Err(e),
                Err(e) => {
                    debug!(function = f, error = %e, "session detail unavailable");
                    Some("(unknown)".to_string())
                }
            });
        }
        let mut v = values.into_iter();
        let mut next = || v.next().flatten();
        Ok(SessionInfo { user: next(), role: next(), warehouse: next(), database: next(), schema: next() })
    }
}

/// SQL text plus positional binds for the connector.
fn statement(q: &RenderedQuery) -> Result<Statement<PositionalBinds>, String> {
    let mut stmt = Statement::new_positional(q.sql.clone());
    for p in &q.params {
        stmt = match p {
            Watermark::Int(v) => stmt.bind(*v),
            Watermark::Float(v) => stmt.bind(*v),
            Watermark::Text(s) => bind_text(stmt, s)?,
        };
    }
    Ok(stmt)
}

/// A text watermark bound with the type it spells (timestamps with or without offset, dates),
/// so the comparison is the column's own, not a string comparison.
fn bind_text(stmt: Statement<PositionalBinds>, s: &str) -> Result<Statement<PositionalBinds>, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        let b = TimestampTz::try_from(t).map_err(|e| format!("watermark {s:?}: {e}"))?;
        return Ok(stmt.bind(b));
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        let b = TimestampNtz::try_from(t).map_err(|e| format!("watermark {s:?}: {e}"))?;
        return Ok(stmt.bind(b));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(stmt.bind(d));
    }
    Ok(stmt.bind(s.to_string()))
}

/// A one-cell result as a watermark, typed by its column: integers stay integers, dates and
/// timestamps become their ISO text.
fn watermark(raw: &str, ty: &ColumnType) -> Result<Watermark, String> {
    let kind = Kind::of(ty);
    match (kind, ty) {
        (Kind::Number, ColumnType::Fixed { scale: None | Some(0), .. }) => {
            raw.parse::<i64>().map(Watermark::Int).map_err(|_| format!("{raw:?} does not fit a 64-bit integer"))
        }
        (Kind::Number, _) => raw.parse::<f64>().map(Watermark::Float).map_err(|_| format!("{raw:?} is not a number")),
        (Kind::Bool | Kind::Binary | Kind::Json, _) => {
            Err(format!("a {} column cannot be an incremental column", render::type_name(ty)))
        }
        _ => {
            let mut out = Vec::new();
            // Full precision: the watermark must compare exactly as the column does.
            let kind = match kind {
                Kind::TimestampNtz { .. } => Kind::TimestampNtz { scale: 9 },
                Kind::TimestampLtz { .. } => Kind::TimestampLtz { scale: 9 },
                Kind::TimestampTz { .. } => Kind::TimestampTz { scale: 9 },
                k => k,
            };
            render::render_text(kind, raw.as_bytes(), &mut out).map_err(|_| format!("unexpected value {raw:?}"))?;
            String::from_utf8(out).map(Watermark::Text).map_err(|_| "not UTF-8".to_string())
        }
    }
}

/// `raw` (Snowflake's `seconds.nanoseconds[ offset]`) moved back to the largest value a column
/// of `scale` can hold before the unit `raw` falls in: the column's own unit, or the
/// millisecond for finer columns, since Snowflake's clock ticks in milliseconds and a row
/// stamped in the millisecond still in progress may commit after the read.
fn close_unit(raw: &str, scale: u8) -> Option<String> {
    let (value, offset) = match raw.split_once(' ') {
        Some((v, o)) => (v, Some(o)),
        None => (raw, None),
    };
    let (secs, nanos) = render::parse_epoch(value.as_bytes())?;
    let total = i128::from(secs) * 1_000_000_000 + i128::from(nanos);
    let unit = 10i128.pow(9 - u32::from(scale.min(3)));
    let step = 10i128.pow(9 - u32::from(scale.min(9)));
    let high = total.div_euclid(unit) * unit - step;
    let mut out = format!("{}.{:09}", high.div_euclid(1_000_000_000), high.rem_euclid(1_000_000_000));
    if let Some(o) = offset {
        out.push(' ');
        out.push_str(o);
    }
    Some(out)
}

/// Cancels the statement unless disarmed: a reader that stops early leaves no query running.
struct CancelOnDrop(Option<QueryCanceller>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    if let Err(e) = c.cancel().await {
                        warn!(error = %e, "cancelling the Snowflake statement failed");
                    }
                });
            }
        }
    }
}

#[async_trait]
impl Source for SnowflakeSource {
    async fn columns(&self, table: &TableName) -> Result<Vec<Column>, BoxError> {
        Ok(self.describe(table).await?.into_iter().map(|(c, _)| c).collect())
    }

    async fn upper_bound(
        &self,
        table: &TableName,
        expr: &WatermarkExpr,
        bound: UpperBound,
    ) -> Result<Option<Watermark>, BoxError> {
        let t = sql::quote_table(table);
        let e = sql::watermark_expr(expr);
        let name = table.to_string();
        let what = format!("capturing the upper bound of {name}");
        // The stamp column's own scale, for "now": the cast below answers at scale 9.
        let mut scale = None;
        let q = match bound {
            UpperBound::Max => RenderedQuery {
                // The largest value below the maximum: rows tied with the newest wait a run.
                sql: sql::tie_safe_max(&t, expr),
                params: vec![],
            },
            UpperBound::Now { lag } => {
                let (_, ty) = self
                    .scalar(
                        &RenderedQuery { sql: format!("SELECT {e} FROM {t} LIMIT 0"), params: vec![] },
                        &what,
                        &name,
                    )
                    .await?;
                scale = ty.as_ref().map(Kind::of).and_then(|k| match k {
                    Kind::TimestampNtz { scale } | Kind::TimestampLtz { scale } | Kind::TimestampTz { scale } => {
                        Some(scale)
                    }
                    _ => None,
                });
                // Whole seconds, rounded up (a longer lag is the safe side). The lag is our own
                // integer, not user text: safe to write into the statement.
                let lag = lag.as_millis().div_ceil(1000);
                let now = format!("DATEADD(second, -{lag}, CURRENT_TIMESTAMP())");
                let sql = match ty.unwrap_or(ColumnType::Boolean) {
                    ColumnType::TimestampNtz { .. } => format!("SELECT CAST({now} AS TIMESTAMP_NTZ)"),
                    ColumnType::TimestampLtz { .. } => format!("SELECT CAST({now} AS TIMESTAMP_LTZ)"),
                    ColumnType::TimestampTz { .. } => format!("SELECT CAST({now} AS TIMESTAMP_TZ)"),
                    // Rows can still arrive for today: the window ends with yesterday.
                    ColumnType::Date => format!("SELECT DATEADD(day, -1, CAST({now} AS DATE))"),
                    other => {
                        return Err(Box::new(SnowflakeError::Data {
                            what,
                            message: format!(
                                "upper_bound = \"now\" needs a DATE or TIMESTAMP column, and {} is {}; set incremental.upper_bound = \"max\"",
                                expr.column,
                                render::type_name(&other)
                            ),
                        }));
                    }
                };
                RenderedQuery { sql, params: vec![] }
            }
        };
        let (value, ty) = self.scalar(&q, &what, &name).await?;
        // "Now" is a moment; the bound is the last value the column can hold before the unit
        // that moment is in, so a row stamped in that unit and committed after the read is
        // still ahead of the window (a DATE bound is already yesterday).
        let value = match (scale, value) {
            (Some(scale), Some(raw)) => Some(close_unit(&raw, scale).ok_or_else(|| SnowflakeError::Data {
                what: what.clone(),
                message: format!("unexpected value {raw:?}"),
            })?),
            (_, value) => value,
        };
        match (value, ty) {
            (Some(raw), Some(ty)) => {
                Ok(Some(watermark(&raw, &ty).map_err(|message| SnowflakeError::Data { what, message })?))
            }
            _ => Ok(None),
        }
    }

    fn render(&self, query: &Query) -> RenderedQuery {
        sql::select(query)
    }

    async fn count(&self, query: &Query) -> Result<u64, BoxError> {
        let name = query.table.to_string();
        let what = format!("counting the rows of {name}");
        let (v, _) = self.scalar(&sql::count(query), &what, &name).await?;
        Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    async fn count_null(&self, table: &TableName, expr: &WatermarkExpr) -> Result<u64, BoxError> {
        let name = table.to_string();
        let what = format!("counting the rows of {name} with a NULL incremental column");
        let q = RenderedQuery { sql: sql::count_null(&sql::quote_table(table), expr), params: vec![] };
        let (v, _) = self.scalar(&q, &what, &name).await?;
        Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    async fn read(&self, query: &Query) -> Result<RowStream, BoxError> {
        let rendered = sql::select(query);
        let name = query.table.to_string();
        let what = format!("reading {name}");
        let stmt = statement(&rendered).map_err(|message| SnowflakeError::Data { what: what.clone(), message })?;
        let handle = self.session.query_handle(stmt).map_err(|e| query_error(e, &self.ctx(&what, &name)))?;
        let guard = CancelOnDrop(Some(handle.canceller()));
        let mut cursor = handle.execute().await.map_err(|e| query_error(e, &self.ctx(&what, &name)))?;
        let width = cursor.schema().len();
        let (tx, stream) = row_channel(IN_FLIGHT);
        let pool = self.pool.clone();
        let ctx_role = self.spec.role.clone().unwrap_or_else(|| "(the user's default role)".into());
        let timeout = self.spec.query_timeout;
        let url = self.url.clone();
        tokio::spawn(async move {
            let mut guard = guard;
            let ctx = Context { what, object: &name, role: &ctx_role, timeout, url: &url };
            let mut batch = pool.batch(width, BATCH_ROWS, BATCH_BYTES);
            loop {
                let table = match cursor.next_table().await {
                    Ok(Some(t)) => t,
                    Ok(None) => break,
                    Err(e) => {
                        tx.send(Err(Box::new(query_error(e, &ctx)))).await;
                        return;
                    }
                };
                // Rendering is CPU work on a chunk already in memory; batches go out as they fill.
                let mut full = Vec::new();
                let rendered = render::render_table(&table, batch, BATCH_ROWS, |b| {
                    full.push(b);
                    Some(pool.batch(width, BATCH_ROWS, BATCH_BYTES))
                });
                drop(table);
                for b in full {
                    if !tx.send(Ok(b)).await {
                        return; // the reader is gone: the guard cancels the statement
                    }
                }
                match rendered {
                    Ok(Some(rest)) => batch = rest,
                    Ok(None) => return,
                    Err(e) => {
                        tx.send(Err(Box::new(query_error(e, &ctx)))).await;
                        return;
                    }
                }
            }
            guard.0 = None;
            if batch.is_empty() || tx.send(Ok(batch)).await {
                tx.finish();
            }
        });
        Ok(stream)
    }

    fn unloader(&self) -> Option<&dyn Unloader> {
        Some(self)
    }
}

#[async_trait]
impl Unloader for SnowflakeSource {
    fn render_unload(&self, query: &Query, target: &UnloadTarget) -> Option<RenderedQuery> {
        let stage = self.spec.stage.as_deref()?;
        unload::render(stage, query, target).ok()
    }

    async fn unload(&self, query: &Query, target: &UnloadTarget) -> Result<Vec<PartInfo>, BoxError> {
        let name = query.table.to_string();
        let what = format!("unloading {name}");
        let stage = self.spec.stage.as_deref().ok_or_else(|| SnowflakeError::Data {
            what: what.clone(),
            message: "the source has no stage: set stage = \"@db.schema.stage\"".into(),
        })?;
        let rendered = unload::render(stage, query, target)
            .map_err(|message| SnowflakeError::Data { what: what.clone(), message })?;
        let stmt = statement(&rendered).map_err(|message| SnowflakeError::Data { what: what.clone(), message })?;
        let handle = self.session.query_handle(stmt).map_err(|e| query_error(e, &self.ctx(&what, &name)))?;
        // Dropped at the deadline (the runner stops waiting): the COPY is cancelled.
        let mut guard = CancelOnDrop(Some(handle.canceller()));
        let mut cursor = handle.execute().await.map_err(|e| query_error(e, &self.ctx(&what, &name)))?;
        let mut files = Vec::new();
        while let Some(t) = cursor.next_table().await.map_err(|e| query_error(e, &self.ctx(&what, &name)))? {
            let rows = t.rows::<unload::UnloadedFile>().map_err(|e| query_error(e, &self.ctx(&what, &name)))?;
            for f in rows {
                files.push(f.map_err(|e| query_error(e, &self.ctx(&what, &name)))?);
            }
        }
        guard.0 = None;
        Ok(unload::parts(&target.prefix, files))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use snowflake_connector_rs::bench_support::column_type;

    #[test]
    fn now_closes_at_the_last_unit_that_is_over() {
        // 10:30:15.250123456 UTC (and +02:00 for TIMESTAMP_TZ).
        let now = "1700044215.250123456";
        assert_eq!(close_unit(now, 0).unwrap(), "1700044214.000000000");
        assert_eq!(close_unit(now, 1).unwrap(), "1700044215.100000000");
        assert_eq!(close_unit(now, 3).unwrap(), "1700044215.249000000");
        assert_eq!(close_unit(now, 6).unwrap(), "1700044215.249999000");
        assert_eq!(close_unit(now, 9).unwrap(), "1700044215.249999999");
        assert_eq!(close_unit("1700044215.250123456 1560", 0).unwrap(), "1700044214.000000000 1560");
        assert_eq!(close_unit("-1.5", 0).unwrap(), "-3.000000000");
        assert_eq!(close_unit("x", 0), None);
    }

    #[test]
    fn watermarks_keep_the_columns_type_and_full_precision() {
        let ntz = column_type("timestamp_ntz", None, None, Some(3));
        assert_eq!(
            watermark("1700000000.123456789", &ntz).unwrap(),
            Watermark::Text("2023-11-14T22:13:20.123456789".into())
        );
        assert_eq!(watermark("19723", &ColumnType::Date).unwrap(), Watermark::Text("2024-01-01".into()));
        assert_eq!(watermark("42", &column_type("fixed", None, Some(38), Some(0))).unwrap(), Watermark::Int(42));
        assert!(watermark("1", &ColumnType::Boolean).unwrap_err().contains("BOOLEAN"));
    }

    #[test]
    fn text_watermarks_bind_with_the_type_they_spell() {
        for s in ["2023-11-14T22:13:20.123456789", "2023-11-14T22:13:20Z", "2024-01-01", "abc"] {
            assert!(
                statement(&RenderedQuery { sql: "SELECT ?".into(), params: vec![Watermark::Text(s.into())] }).is_ok()
            );
        }
    }
}
