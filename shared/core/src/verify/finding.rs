//! What `verify` finds: each problem says what is wrong, where, and what to do about it.

use serde::Serialize;
use std::fmt;

/// How much a finding matters: a violation breaks the proof (verify exits non-zero); a notice
/// is worth knowing and proves nothing wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Violation,
    Notice,
}

/// One finding, placed: the export, the table (its name from a manifest, else its folder), the
/// run and the key it is about.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub export: String,
    pub table: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub severity: Severity,
    /// A stable name for scripts (`part_missing`, `window_gap`, …).
    pub kind: &'static str,
    /// What is wrong.
    pub problem: String,
    /// What to do about it.
    pub fix: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = match self.severity {
            Severity::Violation => "violation",
            Severity::Notice => "notice",
        };
        write!(f, "{mark}: {}/{}", self.export, self.table)?;
        if let Some(run) = &self.run_id {
            write!(f, " run {run}")?;
        }
        if let Some(key) = &self.key {
            write!(f, " ({key})")?;
        }
        write!(f, ": {} ({})", self.problem, self.fix)
    }
}

/// The problems `verify` knows, each with its kind, severity and fix.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    ManifestUnreadable { error: String },
    ManifestMisplaced { says: String },
    PartMissing,
    PartSize { listed: u64, found: u64 },
    PartHash { listed: String, found: String },
    PartUnreadable { error: String },
    PartsUnhashed { count: usize },
    Totals { what: String },
    ExtraFile,
    StrayFile,
    LinkMissingTarget { target: String },
    LinkSkips { target: String, previous: String },
    LinkHash { target: String },
    LinkAbsent { previous: String },
    WindowGap { previous: String, expected: String, found: String },
    WindowOverlap { previous: String, expected: String, found: String },
    StateMissing,
    Uncommitted { files: usize },
    RunNotRecorded { recorded: Option<String> },
    RunDisagrees { what: String },
    RecordedWithoutManifest,
    WatermarkDisagrees { history: String, files: String },
    HistoryUnreadable { error: String },
    TableMissing { runs: String },
    CursorMoved { what: String },
    ChainStartsHere { target: String },
    PartOutsideFolder,
}

impl Problem {
    pub fn kind(&self) -> &'static str {
        match self {
            Problem::ManifestUnreadable { .. } => "manifest_unreadable",
            Problem::ManifestMisplaced { .. } => "manifest_misplaced",
            Problem::PartMissing => "part_missing",
            Problem::PartSize { .. } => "part_size",
            Problem::PartHash { .. } => "part_hash",
            Problem::PartUnreadable { .. } => "part_unreadable",
            Problem::PartsUnhashed { .. } => "parts_unhashed",
            Problem::Totals { .. } => "totals",
            Problem::ExtraFile => "extra_file",
            Problem::StrayFile => "stray_file",
            Problem::LinkMissingTarget { .. } => "link_missing_target",
            Problem::LinkSkips { .. } => "link_skips",
            Problem::LinkHash { .. } => "link_hash",
            Problem::LinkAbsent { .. } => "link_absent",
            Problem::WindowGap { .. } => "window_gap",
            Problem::WindowOverlap { .. } => "window_overlap",
            Problem::StateMissing => "state_missing",
            Problem::Uncommitted { .. } => "uncommitted",
            Problem::RunNotRecorded { .. } => "run_not_recorded",
            Problem::RunDisagrees { .. } => "run_disagrees",
            Problem::RecordedWithoutManifest => "recorded_without_manifest",
            Problem::WatermarkDisagrees { .. } => "watermark_disagrees",
            Problem::HistoryUnreadable { .. } => "history_unreadable",
            Problem::TableMissing { .. } => "table_missing",
            Problem::CursorMoved { .. } => "cursor_moved",
            Problem::ChainStartsHere { .. } => "chain_starts_here",
            Problem::PartOutsideFolder => "part_outside_folder",
        }
    }

    pub fn severity(&self) -> Severity {
        match self {
            Problem::PartsUnhashed { .. }
            | Problem::Uncommitted { .. }
            | Problem::LinkAbsent { .. }
            | Problem::CursorMoved { .. }
            | Problem::ChainStartsHere { .. } => Severity::Notice,
            _ => Severity::Violation,
        }
    }

    /// What is wrong, in a sentence.
    pub fn problem(&self) -> String {
        match self {
            Problem::ManifestUnreadable { error } => format!("the manifest cannot be read: {error}"),
            Problem::ManifestMisplaced { says } => {
                format!("the manifest says it is {says}, which is not the folder it is in")
            }
            Problem::PartMissing => "a part the manifest lists is missing".into(),
            Problem::PartSize { listed, found } => {
                format!("the part holds {found} bytes; the manifest lists {listed}")
            }
            Problem::PartHash { listed, found } => {
                format!("the part's SHA-256 is {found}; the manifest lists {listed}: its bytes changed after the run")
            }
            Problem::PartUnreadable { error } => format!("the part cannot be read: {error}"),
            Problem::PartsUnhashed { count } => format!(
                "{count} part(s) have no SHA-256 in the manifest (the source unloaded them itself): their presence and sizes are checked, their bytes are not"
            ),
            Problem::Totals { what } => format!("the manifest's totals disagree with its parts: {what}"),
            Problem::ExtraFile => "a file sits in a committed run's folder that its manifest does not list".into(),
            Problem::StrayFile => "a file sits outside any run folder, where no manifest accounts for it".into(),
            Problem::LinkMissingTarget { target } => {
                format!("the manifest links to the previous manifest {target}, which is missing: a committed run's manifest was deleted")
            }
            Problem::LinkSkips { target, previous } => format!(
                "the manifest links to {target}, but the table's previous committed manifest is {previous}"
            ),
            Problem::LinkHash { target } => {
                format!("the previous manifest {target} changed after this manifest linked to it (its SHA-256 differs)")
            }
            Problem::LinkAbsent { previous } => format!(
                "the manifest has no link to the previous one ({previous}), so the chain cannot be followed across it"
            ),
            Problem::WindowGap { previous, expected, found } => format!(
                "the window starts after {found}, but run {previous} ended at {expected}: rows stamped in between were never exported"
            ),
            Problem::WindowOverlap { previous, expected, found } => format!(
                "the window starts after {found}, but run {previous} already exported up to {expected}: rows in between were exported twice"
            ),
            Problem::StateMissing => {
                "the newest check run's state file is missing: the next run has nothing to compare with".into()
            }
            Problem::Uncommitted { files } => format!(
                "a run folder with {files} file(s) and no manifest: not committed (a run in progress, or a failed run's leftovers), so consumers ignore it"
            ),
            Problem::RunNotRecorded { recorded: None } => {
                "the history has no record of this committed run".into()
            }
            Problem::RunNotRecorded { recorded: Some(state) } => {
                format!("the history records this committed run as {state}, not succeeded")
            }
            Problem::RunDisagrees { what } => format!("the history's record of the run disagrees with its manifest: {what}"),
            Problem::RecordedWithoutManifest => {
                "the history records this run as succeeded, but the destination holds no manifest for it".into()
            }
            Problem::WatermarkDisagrees { history, files } => {
                format!("the history's watermark is {history}, but the newest committed manifest says {files}")
            }
            Problem::HistoryUnreadable { error } => format!("the history cannot be read: {error}"),
            Problem::CursorMoved { what } => format!("the table's cursor was moved by hand {what}"),
            Problem::ChainStartsHere { target } => format!(
                "the table's oldest run here links to {target}, which is gone: the runs before it were removed (as the bucket's retention removes old runs), so the chain is proven from this run on"
            ),
            Problem::PartOutsideFolder => {
                "the manifest lists a part outside its own run folder: no run writes its parts elsewhere".into()
            }
            Problem::TableMissing { runs } => {
                format!("the history has a watermark for this table ({runs}), but the destination holds none of its runs")
            }
        }
    }

    /// What to do about it.
    pub fn fix(&self) -> String {
        match self {
            Problem::ManifestUnreadable { .. } | Problem::ManifestMisplaced { .. } => {
                "restore the manifest from a backup or the object's earlier version; consumers must not load this run until then".into()
            }
            Problem::PartMissing | Problem::PartSize { .. } | Problem::PartHash { .. } | Problem::PartUnreadable { .. } => {
                "restore the part from a backup or the object's earlier version, or re-export the table's rows with `sluice run --export EXPORT --full-refresh`".into()
            }
            Problem::PartsUnhashed { .. } => "nothing to do; export without unload to have every part hashed".into(),
            Problem::Totals { .. } => "the manifest was edited: restore it from a backup or the object's earlier version".into(),
            Problem::ExtraFile | Problem::StrayFile => {
                "remove the file, or move it out of the export's folders: consumers of the manifests never read it, and verify cannot vouch for it".into()
            }
            Problem::LinkMissingTarget { .. } | Problem::LinkSkips { .. } | Problem::LinkHash { .. } => {
                "restore the previous manifest from a backup or the object's earlier version; if it is gone for good, tell consumers which runs are unproven".into()
            }
            Problem::LinkAbsent { .. } => {
                "nothing to repair in the files: a full refresh after a lost history starts a new chain; verify from it on with --since RUN to prove the new chain alone".into()
            }
            Problem::WindowGap { .. } => {
                "export the missing window (`sluice run --export EXPORT --full-refresh` re-exports every row, marked as a full copy)".into()
            }
            Problem::WindowOverlap { .. } => {
                "tell consumers to de-duplicate the overlapping window by key; the history was probably lost or rewound".into()
            }
            Problem::StateMissing => "restore the state file, or run once with --full-refresh to start the comparison again".into(),
            Problem::Uncommitted { .. } => {
                "nothing to do while a run is going on; a dead run's files are removed by the export's next run, and the files of a run whose history says failed can be deleted".into()
            }
            Problem::RunNotRecorded { .. } => {
                "if the history was lost, rebuild it with `sluice history rebuild EXPORT`; if the table was since exported afresh with --full-refresh, these older runs predate its history: verify from the full refresh on with --since RUN".into()
            }
            Problem::RunDisagrees { .. } | Problem::RecordedWithoutManifest => {
                "the history and the files disagree: restore the files the history names from a backup, or, if the history is the one that is wrong, rebuild it into an empty history with `sluice history rebuild EXPORT`".into()
            }
            Problem::WatermarkDisagrees { .. } => {
                "the next run exports from the history's watermark: if it was moved by hand, move it back; if the history was lost, rebuild it with `sluice history rebuild EXPORT`".into()
            }
            Problem::HistoryUnreadable { .. } => {
                "check the history's location and permissions, or verify the files alone with --at".into()
            }
            Problem::ChainStartsHere { .. } => {
                "nothing to do if retention removed them; otherwise restore the older runs from a backup".into()
            }
            Problem::PartOutsideFolder => {
                "the manifest was edited: restore it from a backup or the object's earlier version".into()
            }
            Problem::CursorMoved { .. } => {
                "nothing to do: after a move back the next run sends rows again (consumers de-duplicate by key); after a move forward the rows skipped are in no run".into()
            }
            Problem::TableMissing { .. } => {
                "restore the table's folder from a backup or the objects' earlier versions; if it is gone for good, re-export it with `sluice run --export EXPORT --full-refresh`".into()
            }
        }
    }
}
