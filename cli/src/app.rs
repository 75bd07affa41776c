//! Wiring: builds the adapters a config names. The embedded ones (SQLite source, folder
//! destination, history file) are the default; other kinds are refused with what to do.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;

use sluice_core::ports::{ObjectStore, Source};
use sluice_core::spec::{Config, Destination, ExportSpec, SourceSpec};
use sluice_local::{DirectoryStore, JsonlEventLog, SqliteHistory, SqliteSource};

pub struct App {
    pub config: Config,
    pub history: SqliteHistory,
    pub events: JsonlEventLog,
    pub host: String,
}

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // gethostname fills a NUL-terminated name; on failure the lease just says "localhost".
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    if ok && end > 0 {
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "localhost".into()
    }
}

impl App {
    pub fn open(config: Config, history: Option<PathBuf>) -> Result<App> {
        let history_path = history.unwrap_or_else(|| config.history_path());
        let host = hostname();
        let store = SqliteHistory::open(&history_path, &host)
            .with_context(|| format!("opening the history file {}", history_path.display()))?;
        let events = JsonlEventLog::new(history_path.with_file_name("events.jsonl"));
        Ok(App { config, history: store, events, host })
    }

    pub fn source(&self, export: &ExportSpec) -> Result<Box<dyn Source>> {
        match self.config.sources.get(&export.source) {
            Some(SourceSpec::Sqlite { path }) => Ok(Box::new(SqliteSource::new(path.clone()))),
            None => {
                bail!("export {:?} names source {:?}, which the config does not define", export.name, export.source)
            }
        }
    }

    pub fn store(&self, export: &ExportSpec) -> Result<Box<dyn ObjectStore>> {
        match &export.destination {
            Destination::Local(dir) => Ok(Box::new(DirectoryStore::new(dir.clone()))),
            Destination::S3 { .. } => bail!(
                "export {:?} writes to {}, but this build of sluice has only the embedded adapters; use a local folder as destination",
                export.name,
                export.destination
            ),
        }
    }
}
