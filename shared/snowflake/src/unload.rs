//! Server-side unload: `COPY INTO @stage/<run folder>/part FROM (SELECT … WHERE <window>)` with
//! the export's CSV format, for tables too big to stream through a function. Snowflake writes the
//! files straight into the stage (whose URL is the export's destination) and reports each one
//! (`DETAILED_OUTPUT = TRUE`); Sluice turns that report into the manifest.

use sluice_core::format::{Compression, CsvFormat, QuoteStyle};
use sluice_core::manifest::PartInfo;
use sluice_core::ports::{Query, RenderedQuery, UnloadTarget};
use sluice_core::spec::TableName;
use sluice_core::sql;
use snowflake_connector_rs::{
    error::{PlanBuildResult, RowDecodeResult},
    CellPlan, FromRow, RowPlanContext, RowRef,
};

/// One file `COPY INTO … DETAILED_OUTPUT = TRUE` reports.
#[derive(Debug, Clone, PartialEq)]
pub struct UnloadedFile {
    pub name: String,
    pub size: u64,
    pub rows: u64,
}

pub struct FilePlan {
    name: CellPlan<String>,
    size: CellPlan<i64>,
    rows: CellPlan<i64>,
}

impl FromRow for UnloadedFile {
    type Plan = FilePlan;

    fn build_plan(ctx: RowPlanContext<'_>) -> PlanBuildResult<FilePlan> {
        Ok(FilePlan {
            name: CellPlan::by_name(ctx, "FILE_NAME")?,
            size: CellPlan::by_name(ctx, "FILE_SIZE")?,
            rows: CellPlan::by_name(ctx, "ROW_COUNT")?,
        })
    }

    fn from_row_with_plan(row: RowRef<'_>, plan: &FilePlan) -> RowDecodeResult<Self> {
        Ok(UnloadedFile {
            name: row.get_with_plan(&plan.name)?,
            size: row.get_with_plan(&plan.size)?.max(0) as u64,
            rows: row.get_with_plan(&plan.rows)?.max(0) as u64,
        })
    }
}

/// A string literal for Snowflake's SQL: quotes and backslashes escaped, control characters
/// written as their escapes.
fn literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The `FILE_FORMAT = (…)` options that write what the export's CSV format describes.
pub fn file_format(f: &CsvFormat) -> Result<String, String> {
    if f.quote_style == QuoteStyle::Always {
        return Err(
            "Snowflake's unload cannot quote every value: use quote_style = \"needed\" or mode = \"stream\"".into()
        );
    }
    let enclosed = match f.quote {
        Some(q) => literal(&(q as char).to_string()),
        None => "NONE".into(),
    };
    // The first NULL_IF value is what an unload writes for NULL.
    let nulls = std::iter::once(&f.null).chain(f.null_if.iter()).map(|n| literal(n)).collect::<Vec<_>>().join(", ");
    let compression = match f.compression {
        Compression::None => "NONE",
        Compression::Gzip { .. } => "GZIP",
        Compression::Zstd { .. } => "ZSTD",
    };
    // Dates and times in ISO 8601 as streamed runs write them (the session's output formats
    // would otherwise apply). One TIMESTAMP_FORMAT serves all three kinds: every unloaded
    // timestamp carries its offset, TIMESTAMP_NTZ as +00:00.
    Ok(format!(
        "TYPE = CSV FIELD_DELIMITER = {} RECORD_DELIMITER = {} FIELD_OPTIONALLY_ENCLOSED_BY = {enclosed} \
         ESCAPE_UNENCLOSED_FIELD = NONE NULL_IF = ({nulls}) EMPTY_FIELD_AS_NULL = {} COMPRESSION = {compression} \
         DATE_FORMAT = 'YYYY-MM-DD' TIME_FORMAT = 'HH24:MI:SS.FF9' \
         TIMESTAMP_FORMAT = 'YYYY-MM-DD\"T\"HH24:MI:SS.FF9TZH:TZM' BINARY_FORMAT = HEX",
        literal(&(f.delimiter as char).to_string()),
        literal(&f.record_terminator),
        if f.empty_field_as_null { "TRUE" } else { "FALSE" },
    ))
}

/// `@"DB"."SCHEMA"."STAGE"` from the config's `@DB.SCHEMA.STAGE`.
fn stage_ref(stage: &str) -> Result<String, String> {
    let name = stage.strip_prefix('@').and_then(TableName::parse).ok_or_else(|| format!("invalid stage {stage:?}"))?;
    Ok(format!("@{}", sql::quote_table(&name)))
}

/// The whole `COPY INTO` statement, with the window's values bound.
pub fn render(stage: &str, query: &Query, target: &UnloadTarget) -> Result<RenderedQuery, String> {
    // The run folder is pasted into the statement (a stage path cannot be bound): it is built by
    // Sluice from validated names, and checked here again.
    if target.prefix.is_empty()
        || !target.prefix.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'))
        || target.prefix.contains("..")
    {
        return Err(format!("unexpected run folder {:?}", target.prefix));
    }
    let select = sql::select(query);
    let sql = format!(
        "COPY INTO {}/{}/part FROM ({}) FILE_FORMAT = ({}) MAX_FILE_SIZE = {} HEADER = {} OVERWRITE = TRUE \
         DETAILED_OUTPUT = TRUE",
        stage_ref(stage)?,
        target.prefix,
        select.sql,
        file_format(&target.format)?,
        target.format.max_file_size,
        if target.format.header { "TRUE" } else { "FALSE" },
    );
    Ok(RenderedQuery { sql, params: select.params })
}

/// The manifest's parts from what Snowflake reported, keyed under the run folder.
pub fn parts(prefix: &str, files: Vec<UnloadedFile>) -> Vec<PartInfo> {
    let mut parts: Vec<PartInfo> = files
        .into_iter()
        .map(|f| {
            // Snowflake reports names relative to the COPY's path; some versions repeat the path.
            let name = f.name.trim_start_matches('/');
            let key =
                if name.starts_with(&format!("{prefix}/")) { name.to_string() } else { format!("{prefix}/{name}") };
            PartInfo { key, rows: f.rows, bytes: f.size, sha256: None }
        })
        .collect();
    parts.sort_by(|a, b| a.key.cmp(&b.key));
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::ports::Filter;
    use sluice_core::value::Watermark;

    fn query() -> Query {
        Query {
            table: TableName::parse("ANALYTICS.PUBLIC.CONTACTS").unwrap(),
            columns: vec!["ID".into(), "EMAIL".into()],
            filter: Filter::Window {
                expr: sluice_core::ports::WatermarkExpr { column: "UPDATED_AT".into(), fallback: None },
                low: Some(Watermark::Text("2024-01-01T00:00:00".into())),
                high: Watermark::Text("2024-01-02T00:00:00".into()),
            },
            order_by: vec![],
        }
    }

    fn target(format: CsvFormat) -> UnloadTarget {
        UnloadTarget { prefix: "contacts/analytics.public.contacts/20240102T000000Z-ab12".into(), format }
    }

    #[test]
    fn the_reference_format_unloads_as_one_statement_with_bound_values() {
        let r = render("@ANALYTICS.PUBLIC.EXPORTS", &query(), &target(CsvFormat::default())).unwrap();
        assert_eq!(
            r.sql,
            "COPY INTO @\"ANALYTICS\".\"PUBLIC\".\"EXPORTS\"/contacts/analytics.public.contacts/20240102T000000Z-ab12/part \
             FROM (SELECT \"ID\", \"EMAIL\" FROM \"ANALYTICS\".\"PUBLIC\".\"CONTACTS\" WHERE \"UPDATED_AT\" > ? AND \"UPDATED_AT\" <= ?) \
             FILE_FORMAT = (TYPE = CSV FIELD_DELIMITER = '|' RECORD_DELIMITER = '\\n' FIELD_OPTIONALLY_ENCLOSED_BY = '\"' \
             ESCAPE_UNENCLOSED_FIELD = NONE NULL_IF = ('') EMPTY_FIELD_AS_NULL = TRUE COMPRESSION = GZIP \
             DATE_FORMAT = 'YYYY-MM-DD' TIME_FORMAT = 'HH24:MI:SS.FF9' \
             TIMESTAMP_FORMAT = 'YYYY-MM-DD\"T\"HH24:MI:SS.FF9TZH:TZM' BINARY_FORMAT = HEX) \
             MAX_FILE_SIZE = 67108864 HEADER = TRUE OVERWRITE = TRUE DETAILED_OUTPUT = TRUE"
        );
        assert_eq!(r.params.len(), 2);
    }

    #[test]
    fn every_file_format_option_reaches_the_statement() {
        let f = CsvFormat {
            delimiter: b'\t',
            quote: None,
            null: "\\N".into(),
            null_if: vec!["NULL".into(), "it's".into()],
            empty_field_as_null: false,
            record_terminator: "\r\n".into(),
            compression: Compression::Zstd { level: 3 },
            max_file_size: 5 * 1024 * 1024,
            ..CsvFormat::default()
        };
        let ff = file_format(&f).unwrap();
        for want in [
            "FIELD_DELIMITER = '\\t'",
            "RECORD_DELIMITER = '\\r\\n'",
            "FIELD_OPTIONALLY_ENCLOSED_BY = NONE",
            "NULL_IF = ('\\\\N', 'NULL', 'it\\'s')",
            "EMPTY_FIELD_AS_NULL = FALSE",
            "COMPRESSION = ZSTD",
        ] {
            assert!(ff.contains(want), "{want} not in {ff}");
        }
        assert!(file_format(&CsvFormat { compression: Compression::None, ..CsvFormat::default() })
            .unwrap()
            .contains("COMPRESSION = NONE"));
        let always = CsvFormat { quote_style: QuoteStyle::Always, ..CsvFormat::default() };
        assert!(file_format(&always).unwrap_err().contains("quote_style"));
        let r = render("@S", &query(), &target(CsvFormat { header: false, ..f })).unwrap();
        assert!(r.sql.contains("MAX_FILE_SIZE = 5242880") && r.sql.contains("HEADER = FALSE"), "{}", r.sql);
    }

    #[test]
    fn an_unsafe_run_folder_or_stage_is_refused() {
        let mut t = target(CsvFormat::default());
        t.prefix = "x/../y".into();
        assert!(render("@S", &query(), &t).is_err());
        t.prefix = "x'; DROP".into();
        assert!(render("@S", &query(), &t).is_err());
        assert!(render("S", &query(), &target(CsvFormat::default())).is_err());
    }

    #[test]
    fn reported_files_become_parts_under_the_run_folder() {
        let files = vec![
            UnloadedFile { name: "part_0_1_0.csv.gz".into(), size: 20, rows: 2 },
            UnloadedFile { name: "r/part_0_0_0.csv.gz".into(), size: 10, rows: 1 },
        ];
        let p = parts("r", files);
        assert_eq!(
            p.iter().map(|p| p.key.as_str()).collect::<Vec<_>>(),
            ["r/part_0_0_0.csv.gz", "r/part_0_1_0.csv.gz"]
        );
        assert_eq!(p[0].rows, 1);
        assert!(p[0].sha256.is_none());
    }
}
