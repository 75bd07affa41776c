//! `kind = "sqlite"`: an SQLite database file, read in place. Its one key is `path`.

use async_trait::async_trait;
use serde::Deserialize;
use std::any::Any;
use std::path::PathBuf;
use std::sync::Arc;

use sluice_core::ports::Secrets;
use sluice_core::spec::{Opened, Section, SourceKind, SourceSettings, Validator};
use sluice_core::BoxError;

use crate::SqliteSource;

/// The SQLite kind, as the binaries list it.
pub static SQLITE: SqliteKind = SqliteKind;

pub struct SqliteKind;

/// A `[sources.<name>]` of kind `sqlite`.
#[derive(Debug, Clone, PartialEq)]
pub struct SqliteSettings {
    /// The database file, resolved against the config file's folder.
    pub path: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSqlite {
    path: Option<String>,
}

#[async_trait]
impl SourceKind for SqliteKind {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn settings(&self, section: &Section<'_>, v: &mut Validator) -> Option<Arc<dyn SourceSettings>> {
        let raw: RawSqlite = section.parse("sqlite", &["path"], "", v)?;
        match raw.path {
            Some(p) if !p.is_empty() => Some(Arc::new(SqliteSettings { path: section.resolve(&p) })),
            _ => {
                v.problem(format!("{}.path", section.key), "missing", "give the SQLite database file");
                None
            }
        }
    }

    async fn open(&self, settings: &dyn SourceSettings, _: &dyn Secrets, _: bool) -> Result<Opened, BoxError> {
        let settings =
            settings.as_any().downcast_ref::<SqliteSettings>().ok_or("the settings are not an SQLite source's")?;
        Ok(Opened { source: Arc::new(SqliteSource::new(settings.path.clone())), session: None })
    }
}

impl SourceSettings for SqliteSettings {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
