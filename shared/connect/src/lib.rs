//! Builds the source adapter a config names, so the CLI and the functions agree on what a
//! `[sources.NAME]` means, checks a connection for `sluice check-connection`, and holds the
//! process settings both binaries start with.

mod s3_kind;

pub use s3_kind::{S3Kind, S3Location, S3};

use std::sync::Arc;

use serde::Serialize;
use sluice_core::catalog::Preflight;
use sluice_core::ports::{ObjectMeta, ObjectStore, Secrets, Source};
use sluice_core::spec::{Config, DestinationKind, ExportSpec, Incremental, Kinds, SourceKind, SourceSpec};
use sluice_core::BoxError;

/// The kinds of source this build reads: adding one is its crate and its line here.
pub const SOURCE_KINDS: &[&'static dyn SourceKind] = &[&sluice_local::SQLITE, &sluice_snowflake::SNOWFLAKE];

/// The kinds of destination this build reads: adding one is its crate and its line here.
pub const DESTINATION_KINDS: &[&'static dyn DestinationKind] = &[&sluice_local::FOLDER, &S3];

/// What this build reads configs with.
pub const KINDS: Kinds = Kinds { sources: SOURCE_KINDS, destinations: DESTINATION_KINDS };

/// Reads and validates a config file with the kinds this build has.
pub fn load_config(path: &std::path::Path) -> Result<Config, sluice_core::spec::ConfigError> {
    Config::load(path, KINDS)
}

/// Validates config text as if read from `path`, with the kinds this build has.
pub fn parse_config(path: &std::path::Path, text: &str) -> Result<Config, sluice_core::spec::ConfigError> {
    Config::parse(path, text, KINDS)
}

/// Allocator settings for a process that exports: call first thing in `main`, before any
/// thread is started.
pub fn bound_allocator() {
    // Memory must not grow with the rows exported, and glibc's defaults let it creep:
    // - each thread that allocates gets its own arena and keeps what it frees there, and result
    //   chunks are parsed on whichever blocking thread is free (Snowflake streaming: 43 -> 47 MiB
    //   from 0.3M to 2M rows; one arena: a flat 31 MiB);
    // - the mmap threshold rises after large frees, so 8 MiB upload buffers then come from the
    //   heap and stay (a 1 GB upload to S3: 64 MiB with one arena, 52 MiB with a fixed 1 MiB
    //   threshold, which maps and unmaps them).
    // The threads that allocate are few, so one arena's lock costs little.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any thread is started.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Logging for a Lambda function: JSON lines (CloudWatch reads them as fields), `info` unless
/// `RUST_LOG` says otherwise. Call once, at the start of the function's `main`.
pub fn function_logging() {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
}

/// Opens the source: for Snowflake, reads the credentials and logs in.
pub async fn open_source(spec: &SourceSpec, secrets: &dyn Secrets) -> Result<Arc<dyn Source>, BoxError> {
    spec.open(secrets).await
}

/// Opens an export's destination, or says why it cannot.
pub type StoreFor<'a> = dyn Fn(&ExportSpec) -> Result<Box<dyn ObjectStore>, String> + Send + Sync + 'a;

/// What activating an export checks, wherever it is activated (the CLI, the control
/// function): the source has the tables and columns, each incremental column of a type that
/// orders changes, and the destination takes a write (a probe object under the export's own
/// prefix, removed again).
pub struct ActivationChecks<'a> {
    pub config: &'a Config,
    pub secrets: &'a dyn Secrets,
    pub store: &'a StoreFor<'a>,
}

#[async_trait::async_trait]
impl Preflight for ActivationChecks<'_> {
    async fn check(&self, spec: &ExportSpec) -> Vec<String> {
        let mut problems = Vec::new();
        match self.config.sources.get(&spec.source) {
            Some(source) => match check_connection(spec, source, self.secrets).await {
                Ok(report) => problems.extend(report.problems()),
                Err(e) => problems.push(format!("source {:?}: {e}", spec.source)),
            },
            None => problems.push(format!("source {:?} is not defined in the config", spec.source)),
        }
        match (self.store)(spec) {
            Ok(store) => {
                let key = format!("{}/.sluice-write-check", spec.name);
                let meta = ObjectMeta { content_type: "text/plain".into(), ..Default::default() };
                match store.put(&key, b"sluice".to_vec(), &meta).await {
                    Ok(()) => {
                        // Best effort: a probe left behind is a few bytes, not a run.
                        let _ = store.delete(&key).await;
                    }
                    Err(e) => problems.push(format!("destination {} cannot be written: {e}", spec.destination)),
                }
            }
            Err(e) => problems.push(e),
        }
        problems
    }
}

/// What `check-connection` found for one export.
#[derive(Debug, Serialize)]
pub struct ConnectionReport {
    pub export: String,
    pub source: String,
    pub kind: &'static str,
    /// Who the session is, as the source reports it (a warehouse's user, role, …).
    pub session: Option<serde_json::Value>,
    pub tables: Vec<TableReport>,
}

#[derive(Debug, Serialize)]
pub struct TableReport {
    pub table: String,
    /// Columns the table has.
    pub columns: usize,
    /// Configured columns (exported, incremental, fallback) the table does not have.
    pub missing: Vec<String>,
    /// Incremental columns whose type cannot order rows by change (`COLUMN (TYPE)`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unusable: Vec<String>,
    pub error: Option<String>,
}

impl ConnectionReport {
    pub fn ok(&self) -> bool {
        self.tables.iter().all(|t| t.error.is_none() && t.missing.is_empty() && t.unusable.is_empty())
    }

    /// Each problem as a sentence naming the table, for activation's refusal.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for t in &self.tables {
            if let Some(e) = &t.error {
                out.push(format!("table {}: {e}", t.table));
            }
            if !t.missing.is_empty() {
                out.push(format!("table {}: no column {}", t.table, t.missing.join(", ")));
            }
            for u in &t.unusable {
                out.push(format!(
                    "table {}: the incremental column {u} cannot order changes (use a timestamp, date or number)",
                    t.table
                ));
            }
        }
        out
    }
}

/// Whether a column of this source type can be a watermark: times, dates and numbers order
/// changes; SQLite keeps times as text, so text passes too. Booleans, binary and semi-structured
/// values do not.
pub fn usable_watermark_type(source_type: &str) -> bool {
    let t = source_type.to_ascii_uppercase();
    !["BOOL", "BINARY", "BLOB", "VARBINARY", "VARIANT", "OBJECT", "ARRAY", "GEOGRAPHY", "GEOMETRY", "VECTOR"]
        .iter()
        .any(|bad| t.starts_with(bad))
}

/// Logs in and checks that each of the export's tables and configured columns exists.
pub async fn check_connection(
    export: &ExportSpec,
    spec: &SourceSpec,
    secrets: &dyn Secrets,
) -> Result<ConnectionReport, BoxError> {
    let opened = spec.open_with_session(secrets).await?;
    let (source, session): (Arc<dyn Source>, _) = (opened.source, opened.session);
    let mut tables = Vec::new();
    for t in &export.tables {
        let mut wanted: Vec<&str> = t.columns.iter().flatten().map(String::as_str).collect();
        let mut watermarks: Vec<&str> = Vec::new();
        if let Incremental::Timestamp(ts) = &t.incremental {
            watermarks.push(&ts.column);
            watermarks.extend(ts.fallback_column.as_deref());
        }
        wanted.extend(&watermarks);
        tables.push(match source.columns(&t.table).await {
            Ok(cols) => {
                let find = |w: &str| cols.iter().find(|c| c.name.eq_ignore_ascii_case(w));
                TableReport {
                    table: t.name.clone(),
                    columns: cols.len(),
                    missing: wanted.iter().filter(|w| find(w).is_none()).map(|w| w.to_string()).collect(),
                    unusable: watermarks
                        .iter()
                        .filter_map(|w| find(w))
                        .filter(|c| !usable_watermark_type(&c.source_type))
                        .map(|c| format!("{} ({})", c.name, c.source_type))
                        .collect(),
                    error: None,
                }
            }
            Err(e) => TableReport {
                table: t.name.clone(),
                columns: 0,
                missing: vec![],
                unusable: vec![],
                error: Some(e.to_string()),
            },
        });
    }
    Ok(ConnectionReport {
        export: export.name.clone(),
        source: export.source.clone(),
        kind: spec.kind(),
        session,
        tables,
    })
}
