//! `verify`: proves from the destination alone that each table's committed runs form one
//! unbroken chain, and that the files are what the manifests say.
//!
//! Per table, in run order:
//! - each manifest links to the table's previous committed manifest by key and SHA-256;
//! - timestamp windows chain: a run starts where the previous one's committed cursor ended
//!   (`high`, or `low` again after an empty window), unless it is a full refresh, which starts
//!   the chain again; anything else is a gap (rows never exported) or an overlap (rows twice);
//! - every part the manifest lists exists with its size and SHA-256, and the totals add up;
//! - nothing else sits in a committed run's folder (but the state and failures files);
//! - with a history: every committed run is recorded as succeeded with the same rows, every run
//!   it records as succeeded has its manifest, and the watermark is where the newest manifest
//!   left it.
//!
//! The destination is listed as a stream and checked a run folder at a time, a bounded number of
//! folders (and each folder's parts) at once, so memory does not grow with the number of runs
//! (but for each table's run ids, kept to match the history against). Run ids order runs by the
//! second they started; runs of one second are put in order by their links.

pub mod finding;
mod folder;
pub mod rebuild;

use futures::stream::{BoxStream, StreamExt};
use serde::Serialize;
use std::collections::HashSet;

pub use finding::{Finding, Problem, Severity};
use folder::{second_of, Checked, Committed};

use crate::error::BoxError;
use crate::layout::{path_segment, RunFolder};
use crate::manifest::Manifest;
use crate::ports::{HistoryStore, ObjectStore, RunState};
use crate::strategy::{choose, Cursor, Strategy};
use crate::value::Watermark;

/// What to verify.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// One export's folder; every export under the destination's root when `None` (a consumer's
    /// copy holds what it was sent).
    pub export: Option<String>,
    /// One table of the export (by its name); every table when `None`.
    pub table: Option<String>,
    /// Runs from this run id on; earlier runs are trusted (their manifests are not read, but
    /// the one just before is, to check the first link).
    pub since: Option<String>,
}

impl Scope {
    /// The folder the scope covers: the export's, the table's in it, or the whole destination.
    pub fn prefix(&self) -> String {
        match (&self.export, &self.table) {
            (Some(e), Some(t)) => format!("{e}/{}", path_segment(t)),
            (Some(e), None) => e.clone(),
            (None, _) => String::new(),
        }
    }
}

/// Folders checked at once, each hashing up to [`PARTS_AT_ONCE`] parts: S3 answers each request
/// in tens of milliseconds, so verifying a thousand runs is bound by how many are in flight.
pub const FOLDERS_AT_ONCE: usize = 8;
pub const PARTS_AT_ONCE: usize = 4;

/// One table's verified chain.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TableReport {
    pub export: String,
    /// The table's name from its manifests (its folder's name when it has none).
    pub table: String,
    /// The table's folder under the export.
    pub folder: String,
    /// Committed runs verified.
    pub runs: u64,
    pub parts: u64,
    pub rows: u64,
    pub bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_run: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run: Option<String>,
    /// The cursor the newest committed run left (the history's watermark should equal it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<Watermark>,
    /// Backfills' runs verified (outside the chain).
    pub backfills: u64,
    pub violations: u64,
    pub notices: u64,
}

/// What verify found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub tables: Vec<TableReport>,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn violations(&self) -> usize {
        self.findings.iter().filter(|f| f.severity == Severity::Violation).count()
    }
}

/// Verifies a destination (and, when given, the history beside it).
pub struct Verifier<'a> {
    pub store: &'a dyn ObjectStore,
    pub history: Option<&'a dyn HistoryStore>,
}

impl Verifier<'_> {
    /// Walks the scope's folders and returns every table's chain and every finding. Fails only
    /// when the destination cannot be listed; a file that cannot be read is a finding.
    pub async fn verify(&self, scope: &Scope) -> Result<Report, BoxError> {
        let mut chains = Chains { verifier: self, scope, report: Report::default(), chain: None, runs: None };
        let prefix = scope.prefix();
        let table_segment = scope.table.as_deref().map(path_segment);
        let mut checked = folder::units(self.store.list_stream(&prefix))
            .filter(|unit| {
                // Without an export, `--table` picks its folder in every export.
                let keep = match (&unit, &table_segment) {
                    (Ok(u), Some(seg)) => &u.segment == seg,
                    _ => true,
                };
                futures::future::ready(keep)
            })
            .map(|unit| async move {
                let unit = unit?;
                // Runs of `--since`'s own second are checked, and put in order before any is
                // skipped: run ids order runs by the second only.
                let before = match (&scope.since, &unit.run_id) {
                    (Some(since), Some(run)) => second_of(run) < second_of(since),
                    _ => false,
                };
                Ok::<_, BoxError>(folder::check(self.store, self.history, unit, before).await)
            })
            .buffered(FOLDERS_AT_ONCE);
        while let Some(next) = checked.next().await {
            chains.take(next?).await;
        }
        chains.finish_chain().await;
        let mut report = chains.report;
        if let (Some(history), Some(export)) = (self.history, &scope.export) {
            report.findings.extend(tables_without_runs(history, export, scope, &report).await);
        }
        Ok(report)
    }

    /// Each table's committed manifests in chain order, read (not their parts): what the
    /// history is rebuilt from once `verify` has passed.
    /// `prefix` is the scope's ([`Scope::prefix`]).
    pub fn manifests<'s>(&'s self, prefix: &'s str) -> BoxStream<'s, Result<(String, Manifest), BoxError>> {
        let store = self.store;
        let read = folder::units(self.store.list_stream(prefix))
            .map(move |unit| async move {
                let unit = unit?;
                let Some(key) = unit.manifest_key() else { return Ok(None) };
                let Some(bytes) = store.get(&key).await? else { return Ok(None) };
                let manifest: Manifest =
                    serde_json::from_slice(&bytes).map_err(|e| format!("reading the manifest {key}: {e}"))?;
                Ok::<_, BoxError>(Some((key, manifest)))
            })
            .buffered(FOLDERS_AT_ONCE)
            .filter_map(|r| futures::future::ready(r.transpose()));
        // Runs of one second are put in order by their links, as verify does.
        Box::pin(folder::in_chain_order(read))
    }
}

/// Tables the history has a watermark for whose folder holds no run at all.
async fn tables_without_runs(history: &dyn HistoryStore, export: &str, scope: &Scope, report: &Report) -> Vec<Finding> {
    let finding = |table: &str, problem: Problem| Finding {
        export: export.to_string(),
        table: table.to_string(),
        run_id: None,
        key: None,
        severity: problem.severity(),
        kind: problem.kind(),
        problem: problem.problem(),
        fix: problem.fix(),
    };
    let marks = match history.watermarks(export).await {
        Ok(marks) => marks,
        Err(e) => return vec![finding("-", Problem::HistoryUnreadable { error: e.to_string() })],
    };
    marks
        .iter()
        .filter(|w| scope.table.as_ref().is_none_or(|t| *t == w.table))
        .filter(|w| !report.tables.iter().any(|t| t.export == export && t.table == w.table))
        .map(|w| {
            let runs = format!("{}, committed by run {}", w.watermark, w.run_id);
            finding(&w.table, Problem::TableMissing { runs })
        })
        .collect()
}

/// The key of a table's newest committed manifest in the destination, by run id (for runs of
/// the same second, any of them): for a run that finds no watermark to ask whether the files
/// know the table, and for a full table's chain when its history is short.
pub async fn newest_manifest(store: &dyn ObjectStore, export: &str, table: &str) -> Result<Option<String>, BoxError> {
    let prefix = format!("{export}/{}", path_segment(table));
    let mut keys = store.list_stream(&prefix);
    // The manifests of the newest second: their links say which is the head.
    let mut last_second: Vec<String> = Vec::new();
    while let Some(key) = keys.next().await {
        let key = key?;
        let run = RunFolder::of_manifest(&key).and_then(|f| f.prefix().rsplit('/').next().map(str::to_string));
        let Some(run) = run.filter(|r| crate::layout::is_run_id(r)) else { continue };
        // Backfills are outside the chain.
        if key.split('/').nth(2) == Some(crate::layout::BACKFILLS_DIR) {
            continue;
        }
        if !last_second.first().is_some_and(|k| k.contains(&format!("/{}", second_of(&run)))) {
            last_second.clear();
        }
        last_second.push(key);
    }
    Ok(match last_second.len() {
        0 => None,
        1 => last_second.pop(),
        _ => Some(last_before(store, last_second).await.key),
    })
}

/// The committed run a chain has reached.
struct Prev {
    key: String,
    sha256: Option<String>,
    /// `None` when the manifest could not be read.
    manifest: Option<Manifest>,
}

/// The table being walked.
struct Chain {
    export: String,
    segment: String,
    report: TableReport,
    prev: Option<Prev>,
    /// The committed manifests of the last second before `--since` (runs of one second are in
    /// no order by their ids): the one no other links to is read when the first run after it is.
    before: Vec<String>,
    /// Committed run ids, to match the history's records against.
    seen: HashSet<String>,
    /// Runs of the second being walked, until the next second shows they are all here.
    second: Vec<Checked>,
    /// Whether the newest committed run's folder holds its state file.
    newest_has_state: bool,
    /// Whether the walk has reached `--since`'s run.
    reached_since: bool,
}

struct Chains<'v, 'a> {
    verifier: &'v Verifier<'a>,
    scope: &'v Scope,
    report: Report,
    chain: Option<Chain>,
    /// The history's recent runs of the export being walked: read once for all its tables.
    runs: Option<(String, Result<Vec<crate::ports::RunRecord>, String>)>,
}

impl Chains<'_, '_> {
    async fn take(&mut self, checked: Checked) {
        let same_table =
            self.chain.as_ref().is_some_and(|c| c.export == checked.unit.export && c.segment == checked.unit.segment);
        if !same_table {
            self.finish_chain().await;
            self.chain = Some(Chain {
                export: checked.unit.export.clone(),
                segment: checked.unit.segment.clone(),
                report: TableReport {
                    export: checked.unit.export.clone(),
                    table: checked.unit.segment.clone(),
                    folder: checked.unit.segment.clone(),
                    ..TableReport::default()
                },
                prev: None,
                before: Vec::new(),
                seen: HashSet::new(),
                second: Vec::new(),
                newest_has_state: false,
                reached_since: false,
            });
        }
        let chain = self.chain.as_mut().expect("set above");
        if checked.unit.backfill {
            // Outside the chain: its files are checked, its window is its own.
            if let Some(m) = checked.committed.as_ref().and_then(|c| c.manifest.as_ref()) {
                chain.report.table = m.table.clone();
                chain.report.backfills += 1;
            }
            chain.seen.insert(checked.unit.run_id.clone().unwrap_or_default());
            for (run_id, key, problem) in checked.findings {
                self.add(run_id, key, problem);
            }
            return;
        }
        let second = |c: &Checked| c.unit.run_id.as_deref().map(|r| second_of(r).to_string());
        if chain.second.first().is_some_and(|first| second(first) != second(&checked)) {
            self.flush_second().await;
        }
        self.chain.as_mut().expect("set above").second.push(checked);
    }

    /// Walks the runs of one second, in the order their links give.
    async fn flush_second(&mut self) {
        let Some(chain) = self.chain.as_mut() else { return };
        let mut second = std::mem::take(&mut chain.second);
        let tail = chain.prev.as_ref().map(|p| p.key.clone());
        folder::order_by_links(&mut second, tail);
        for checked in second {
            self.walk(checked).await;
        }
    }

    async fn walk(&mut self, checked: Checked) {
        let store = self.verifier.store;
        let chain = self.chain.as_mut().expect("a chain is open");
        let Checked { unit, findings, committed, has_state, before } = checked;
        // Before `--since`: in an earlier second, or earlier in the chain within its second.
        let before = before
            || match (&self.scope.since, &unit.run_id) {
                (Some(since), Some(run)) if !chain.reached_since => {
                    chain.reached_since = run == since || second_of(run) > second_of(since);
                    !chain.reached_since
                }
                _ => false,
            };
        if before {
            if let (Some(key), Some(run)) = (unit.manifest_key(), &unit.run_id) {
                let same_second = chain.before.first().is_some_and(|k| k.contains(&format!("/{}", second_of(run))));
                if !same_second {
                    chain.before.clear();
                }
                chain.before.push(key);
                chain.seen.insert(run.clone());
            }
            return;
        }
        let mut found: Vec<(Option<String>, Option<String>, Problem)> = findings;
        if let Some(committed) = committed {
            let run_id = unit.run_id.clone().unwrap_or_default();
            if chain.prev.is_none() && !chain.before.is_empty() {
                chain.prev = Some(last_before(store, std::mem::take(&mut chain.before)).await);
            }
            let Committed { key, sha256, manifest } = committed;
            if let Some(m) = &manifest {
                chain.report.table = m.table.clone();
                link_and_window(store, self.scope, chain.prev.as_ref(), m, &run_id, &key, &mut found).await;
                chain.report.runs += 1;
                chain.report.parts += m.parts.len() as u64;
                chain.report.rows += m.totals.rows;
                chain.report.bytes += m.totals.bytes;
                chain.report.cursor = committed_cursor(m, &RunFolder::new(&unit.export, &unit.segment, &run_id));
            }
            chain.report.first_run.get_or_insert_with(|| run_id.clone());
            chain.report.last_run = Some(run_id.clone());
            chain.seen.insert(run_id);
            chain.newest_has_state = has_state;
            chain.prev = Some(Prev { key, sha256, manifest });
        }
        for (run_id, key, problem) in found {
            self.add(run_id, key, problem);
        }
    }

    fn add(&mut self, run_id: Option<String>, key: Option<String>, problem: Problem) {
        let chain = self.chain.as_mut().expect("a chain is open");
        match problem.severity() {
            Severity::Violation => chain.report.violations += 1,
            Severity::Notice => chain.report.notices += 1,
        }
        self.report.findings.push(Finding {
            export: chain.export.clone(),
            table: chain.report.table.clone(),
            run_id,
            key,
            severity: problem.severity(),
            kind: problem.kind(),
            problem: problem.problem(),
            fix: problem.fix(),
        });
    }

    /// Ends the table being walked: its newest run's state, and its agreement with the history.
    async fn finish_chain(&mut self) {
        self.flush_second().await;
        let Some(chain) = self.chain.as_ref() else { return };
        let newest = chain.prev.as_ref().and_then(|p| p.manifest.clone());
        let mut found = Vec::new();
        if let Some(m) = &newest {
            if m.strategy == Strategy::Check && !chain.newest_has_state {
                let state = RunFolder::new(&chain.export, &chain.segment, &m.run_id).state();
                found.push((Some(m.run_id.clone()), Some(state), Problem::StateMissing));
            }
        }
        if let Some(history) = self.verifier.history {
            if self.runs.as_ref().is_none_or(|(export, _)| *export != chain.export) {
                let runs = history.runs(&chain.export, 1000).await.map_err(|e| e.to_string());
                self.runs = Some((chain.export.clone(), runs));
            }
            let runs = self.runs.as_ref().map(|(_, r)| r).expect("read above");
            found.extend(agree_with_history(history, chain, runs, newest.as_ref(), self.scope).await);
        }
        for (run_id, key, problem) in found {
            self.add(run_id, key, problem);
        }
        if let Some(chain) = self.chain.take() {
            self.report.tables.push(chain.report);
        }
    }
}

/// Reads the committed manifest a chain starts from: of the last second's before `--since`, the
/// one no other of them links to.
async fn last_before(store: &dyn ObjectStore, keys: Vec<String>) -> Prev {
    let mut read = Vec::new();
    for key in keys {
        read.push(match store.get(&key).await {
            Ok(Some(bytes)) => {
                Prev { sha256: Some(folder::sha256(&bytes)), manifest: serde_json::from_slice(&bytes).ok(), key }
            }
            _ => Prev { key, sha256: None, manifest: None },
        });
    }
    let linked: Vec<String> =
        read.iter().filter_map(|p| p.manifest.as_ref()?.previous.as_ref().map(|l| l.key.clone())).collect();
    let head = read.iter().position(|p| !linked.contains(&p.key)).unwrap_or(read.len() - 1);
    read.swap_remove(head)
}

/// The cursor a committed run left for the next one: what the history's watermark holds.
pub fn committed_cursor(m: &Manifest, folder: &RunFolder) -> Option<Watermark> {
    let base = m.window.low.clone().map(Cursor::Value);
    choose::of(m.strategy).cursor_to_commit(&m.window, base.as_ref(), folder).map(|c| c.stored())
}

/// Checks a manifest's link to the previous one, and its window against the previous window.
async fn link_and_window(
    store: &dyn ObjectStore,
    scope: &Scope,
    prev: Option<&Prev>,
    m: &Manifest,
    run_id: &str,
    key: &str,
    found: &mut Vec<(Option<String>, Option<String>, Problem)>,
) {
    let here = |p: Problem| (Some(run_id.to_string()), Some(key.to_string()), p);
    match (&m.previous, prev) {
        (Some(link), Some(p)) if link.key == p.key => {
            if let (Some(linked), Some(actual)) = (&link.sha256, &p.sha256) {
                if linked != actual {
                    found.push(here(Problem::LinkHash { target: link.key.clone() }));
                }
            }
        }
        (Some(link), prev) => {
            let out_of_scope = scope.since.as_deref().is_some_and(|since| {
                RunFolder::of_manifest(&link.key)
                    .and_then(|f| f.prefix().rsplit('/').next().map(|r| second_of(r) <= second_of(since)))
                    .unwrap_or(false)
            });
            if prev.is_none() && out_of_scope {
                // The link leads before `--since`: trusted, as asked.
            } else if matches!(store.get(&link.key).await, Ok(None)) {
                found.push(here(match prev {
                    // The oldest run listed: those before it are gone, as retention removes them.
                    None => Problem::ChainStartsHere { target: link.key.clone() },
                    Some(_) => Problem::LinkMissingTarget { target: link.key.clone() },
                }));
            } else if let Some(p) = prev {
                found.push(here(Problem::LinkSkips { target: link.key.clone(), previous: p.key.clone() }));
            }
        }
        (None, Some(p)) if m.version >= 2 => found.push(here(Problem::LinkAbsent { previous: p.key.clone() })),
        (None, _) => {}
    }
    if let Some(moved) = &m.moved {
        // A cursor moved by hand: the chain says so, and the next run starts from its `to`.
        let reason = moved.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
        found.push(here(Problem::CursorMoved {
            what: format!("from {} to {} by {}{reason}", moved.from, moved.to, moved.by),
        }));
        return;
    }
    let Some(before) = prev.and_then(|p| p.manifest.as_ref()) else { return };
    if m.strategy != Strategy::Timestamp || before.strategy != Strategy::Timestamp || m.full_refresh {
        return;
    }
    // Where the previous run left the cursor: its `high`, or its `low` when its window was empty.
    let expected = if before.window.is_empty() { before.window.low.clone() } else { before.window.high.clone() };
    let show = |w: &Option<Watermark>| w.as_ref().map_or("the beginning".to_string(), |w| w.to_string());
    let order = match (&m.window.low, &expected) {
        (Some(found), Some(expected)) => found.partial_cmp_same_type(expected),
        (None, None) => Some(std::cmp::Ordering::Equal),
        (None, Some(_)) => Some(std::cmp::Ordering::Less),
        (Some(_), None) => Some(std::cmp::Ordering::Greater),
    };
    let (previous, expected, low) = (before.run_id.clone(), show(&expected), show(&m.window.low));
    match order {
        Some(std::cmp::Ordering::Equal) => {}
        Some(std::cmp::Ordering::Less) => found.push(here(Problem::WindowOverlap { previous, expected, found: low })),
        _ => found.push(here(Problem::WindowGap { previous, expected, found: low })),
    }
}

/// The history's view of a table against its files.
async fn agree_with_history(
    history: &dyn HistoryStore,
    chain: &Chain,
    runs: &Result<Vec<crate::ports::RunRecord>, String>,
    newest: Option<&Manifest>,
    scope: &Scope,
) -> Vec<(Option<String>, Option<String>, Problem)> {
    let mut found = Vec::new();
    let table = &chain.report.table;
    let Some(first) = chain.report.first_run.as_deref() else { return found };
    match runs {
        Ok(runs) => {
            for r in runs.iter().filter(|r| &r.table == table && r.state == RunState::Succeeded) {
                // By second: runs of one second are in no order by their ids (those before
                // `--since` in its second are in `seen`).
                let in_scope = second_of(&r.run_id) >= second_of(first)
                    && scope.since.as_deref().is_none_or(|s| second_of(&r.run_id) >= second_of(s));
                if in_scope && !chain.seen.contains(&r.run_id) {
                    found.push((
                        Some(r.run_id.clone()),
                        Some(r.manifest_key.clone()),
                        Problem::RecordedWithoutManifest,
                    ));
                }
            }
        }
        Err(e) => found.push((None, None, Problem::HistoryUnreadable { error: e.clone() })),
    }
    let Some(m) = newest else { return found };
    if m.strategy == Strategy::Full {
        return found;
    }
    let files = chain.report.cursor.clone();
    let recorded = match history.watermark(&chain.export, table).await {
        Ok(w) => w.map(|w| w.watermark),
        Err(e) => {
            found.push((None, None, Problem::HistoryUnreadable { error: e.to_string() }));
            return found;
        }
    };
    if recorded != files {
        let show = |w: &Option<Watermark>| w.as_ref().map_or("absent".to_string(), |w| w.to_string());
        found.push((
            Some(m.run_id.clone()),
            None,
            Problem::WatermarkDisagrees { history: show(&recorded), files: show(&files) },
        ));
    }
    found
}
