//! A destination folder on this machine: `destination = "out"` (relative to the config file's
//! folder) or an absolute path. It takes whatever no other kind claims by its scheme.

use std::any::Any;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sluice_core::spec::{DestinationKind, DestinationSettings, Validator};

/// The folder kind, as the binaries list it.
pub static FOLDER: FolderKind = FolderKind;

pub struct FolderKind;

/// A destination folder (resolved path).
#[derive(Debug, Clone, PartialEq)]
pub struct Folder {
    pub path: PathBuf,
}

impl DestinationKind for FolderKind {
    fn name(&self) -> &'static str {
        "folder"
    }

    fn form(&self) -> &'static str {
        "a local folder"
    }

    /// A path has no scheme: a URL (`s3://…`, `sftp://…`) is another kind's, even one this
    /// build lacks, and must not become a folder of that name.
    fn claims(&self, raw: &str) -> bool {
        !raw.contains("://")
    }

    fn parse(
        &self,
        _key: &str,
        raw: &str,
        base_dir: &Path,
        _v: &mut Validator,
    ) -> Option<Arc<dyn DestinationSettings>> {
        let path = PathBuf::from(raw);
        let path = if path.is_absolute() { path } else { base_dir.join(path) };
        Some(Arc::new(Folder { path }))
    }
}

impl DestinationSettings for Folder {
    fn kind(&self) -> &'static str {
        "folder"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn is_local(&self) -> bool {
        true
    }
}

impl fmt::Display for Folder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())
    }
}
