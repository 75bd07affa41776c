//! Where a run's files live in a destination: the one place object keys are built, and parsed
//! back. Everything else asks a [`RunFolder`] for a key or for what a key is.
//!
//! ```text
//! <export>/<table segment>/<run id>/
//!     part-00000.<ext>, part-00001.<ext>, …     the rows, in order
//!     _sluice_state.bin                          a `check` run's state (before the manifest)
//!     manifest.json                              written last: the commit point
//!     failures/<integration>.jsonl               records an integration's API refused
//!     failures/<integration>.pieces/batch-….jsonl   those records per batch, until merged
//! <export>/<table segment>/backfills/<run id>/   a backfill's run: the same files, outside the chain
//! ```
//!
//! A run id (`new_run_id`) is the folder's last segment.
//!
//! Keys are relative to the destination's root (its folder, or the S3 prefix). The layout is
//! on disk and in every manifest written so far: changing a name here is a migration.

use chrono::{DateTime, Utc};

/// The manifest's name inside a run's folder.
pub const MANIFEST_FILE: &str = "manifest.json";
/// A `check` run's state file inside its folder.
pub const STATE_FILE: &str = "_sluice_state.bin";
/// The folder of a run's failures files.
const FAILURES_DIR: &str = "failures";
/// The folder, beside a table's runs, of its backfills' run folders: outside the chain.
pub const BACKFILLS_DIR: &str = "backfills";

/// One table's run folder: `<export>/<table segment>/<run id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFolder {
    prefix: String,
}

impl RunFolder {
    /// The folder of `table`'s run `run_id` of `export`.
    pub fn of(export: &str, table: &str, run_id: &str) -> RunFolder {
        RunFolder::new(export, &path_segment(table), run_id)
    }

    /// The folder from its parts: the export's name, the table's path segment
    /// ([`path_segment`]), the run id.
    pub fn new(export: &str, segment: &str, run_id: &str) -> RunFolder {
        RunFolder { prefix: format!("{export}/{segment}/{run_id}") }
    }

    /// The folder of `table`'s backfill `run_id` of `export`:
    /// `<export>/<table segment>/backfills/<run id>`.
    pub fn backfill(export: &str, table: &str, run_id: &str) -> RunFolder {
        RunFolder { prefix: format!("{export}/{}/{BACKFILLS_DIR}/{run_id}", path_segment(table)) }
    }

    /// A folder as a run record names it.
    pub fn at(prefix: &str) -> RunFolder {
        RunFolder { prefix: prefix.trim_end_matches('/').to_string() }
    }

    /// The run folder a manifest key is in, if it is a manifest's key (and not a file of that
    /// name inside a failures folder).
    pub fn of_manifest(key: &str) -> Option<RunFolder> {
        let prefix = key.strip_suffix(MANIFEST_FILE)?.strip_suffix('/')?;
        let inside_failures =
            prefix.rsplit('/').next() == Some(FAILURES_DIR) || prefix.contains(&format!("/{FAILURES_DIR}/"));
        (!prefix.is_empty() && !inside_failures).then(|| RunFolder::at(prefix))
    }

    /// The run folder and integration of a failures file's key
    /// (`<run folder>/failures/<integration>.jsonl`).
    pub fn of_failures(key: &str) -> Option<(RunFolder, String)> {
        let (prefix, file) = key.rsplit_once(&format!("/{FAILURES_DIR}/"))?;
        let integration = file.strip_suffix(".jsonl")?;
        (!prefix.is_empty() && !integration.is_empty() && !integration.contains('/'))
            .then(|| (RunFolder::at(prefix), integration.to_string()))
    }

    /// Whether `key` is a `check` state file's key: what a `check` table's committed cursor is.
    pub fn is_state(key: &str) -> bool {
        key.ends_with(&format!("/{STATE_FILE}"))
    }

    /// The folder's key prefix, without a trailing slash.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn manifest(&self) -> String {
        format!("{}/{MANIFEST_FILE}", self.prefix)
    }

    /// The `index`th part (from 0), with the format's extension (`csv.gz`, `jsonl`, …).
    pub fn part(&self, index: usize, extension: &str) -> String {
        format!("{}/part-{index:05}.{extension}", self.prefix)
    }

    pub fn state(&self) -> String {
        format!("{}/{STATE_FILE}", self.prefix)
    }

    /// The failures file of `integration`'s delivery of this run.
    pub fn failures(&self, integration: &str) -> String {
        format!("{}/{FAILURES_DIR}/{integration}.jsonl", self.prefix)
    }
}

/// The folder (with its trailing slash) of the pieces the failures file `failures` is merged
/// from: one per batch, written as the batch settles, so a delivery killed part-way loses none.
pub fn failure_pieces(failures: &str) -> String {
    format!("{}.pieces/", failures.trim_end_matches(".jsonl"))
}

/// The piece of batch `seq` of the failures file `failures`.
pub fn failure_piece(failures: &str, seq: u64) -> String {
    format!("{}batch-{seq:010}.jsonl", failure_pieces(failures))
}

/// Where the records of the failures file `failures` that fail again when sent again go.
pub fn failures_retried(failures: &str, tag: &str) -> String {
    format!("{}.retry-{tag}.jsonl", failures.trim_end_matches(".jsonl"))
}

/// The folder name of a table under its export: lower case, anything but `[a-z0-9_.-]` as `_`.
pub fn path_segment(table: &str) -> String {
    table
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A new run id: sortable by time, unique by its random tail.
pub fn new_run_id(now: DateTime<Utc>) -> String {
    let tail = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{}", now.format("%Y%m%dT%H%M%SZ"), &tail[..8])
}

/// Whether `id` has the shape [`new_run_id`] gives: `YYYYMMDDTHHMMSSZ-` and 8 hex digits.
pub fn is_run_id(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 25
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && &b[15..17] == b"Z-"
        && b[17..].iter().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_a_run_folder_and_back() {
        let f = RunFolder::new("crm", "contacts", "20261130T000000Z-0000abcd");
        assert_eq!(f.prefix(), "crm/contacts/20261130T000000Z-0000abcd");
        assert_eq!(f.manifest(), "crm/contacts/20261130T000000Z-0000abcd/manifest.json");
        assert_eq!(f.part(3, "csv.gz"), "crm/contacts/20261130T000000Z-0000abcd/part-00003.csv.gz");
        assert_eq!(f.state(), "crm/contacts/20261130T000000Z-0000abcd/_sluice_state.bin");
        assert_eq!(f.failures("hub"), "crm/contacts/20261130T000000Z-0000abcd/failures/hub.jsonl");
        assert_eq!(failure_pieces(&f.failures("hub")), "crm/contacts/20261130T000000Z-0000abcd/failures/hub.pieces/");
        assert_eq!(
            failure_piece(&f.failures("hub"), 7),
            "crm/contacts/20261130T000000Z-0000abcd/failures/hub.pieces/batch-0000000007.jsonl"
        );
        assert_eq!(
            failures_retried(&f.failures("hub"), "x1"),
            "crm/contacts/20261130T000000Z-0000abcd/failures/hub.retry-x1.jsonl"
        );
        assert_eq!(RunFolder::of_manifest(&f.manifest()), Some(f.clone()));
        assert_eq!(RunFolder::of_failures(&f.failures("hub")), Some((f.clone(), "hub".into())));
        assert!(RunFolder::is_state(&f.state()));
        assert!(!RunFolder::is_state("2026-01-01 00:00:00"));
        assert_eq!(RunFolder::at("crm/contacts/r/"), RunFolder::at("crm/contacts/r"));
    }

    #[test]
    fn keys_that_are_not_what_they_are_asked_for_are_not_parsed() {
        assert_eq!(RunFolder::of_manifest("e/t/r/part-00000.csv"), None);
        assert_eq!(RunFolder::of_manifest("manifest.json"), None);
        assert_eq!(RunFolder::of_manifest("e/t/r/failures/manifest.json"), None);
        assert_eq!(RunFolder::of_manifest("e/t/r/failures/x/manifest.json"), None);
        assert_eq!(RunFolder::of_manifest("e/t/r/notmanifest.json"), None);
        assert_eq!(RunFolder::of_failures("e/t/r/manifest.json"), None);
        assert_eq!(RunFolder::of_failures("e/t/r/failures/hub.pieces/batch-1.jsonl"), None);
    }
}
