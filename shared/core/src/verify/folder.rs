//! One run folder at a time: the listing grouped into folders, and each folder checked on its
//! own (its manifest read, its parts hashed, its extra files named).

use futures::stream::{BoxStream, Stream, StreamExt};
use std::collections::HashSet;

use super::Problem;
use crate::error::BoxError;
use crate::layout::{is_run_id, RunFolder, BACKFILLS_DIR};
use crate::manifest::Manifest;
use crate::ports::{HistoryStore, KeyStream, ObjectStore, RunState};
use crate::verify::PARTS_AT_ONCE;

/// A listed run folder with its keys, or a file outside any run folder (alone).
#[derive(Debug, Clone)]
pub(super) struct Unit {
    pub export: String,
    pub segment: String,
    /// `None` for a stray file.
    pub run_id: Option<String>,
    /// A backfill's run folder (`<segment>/backfills/<run id>`): checked, outside the chain.
    pub backfill: bool,
    pub keys: Vec<String>,
}

impl Unit {
    /// Where a key belongs: `<export>/<segment>/<run id>/…` is a run folder's.
    fn of(key: String) -> Unit {
        let mut parts = key.splitn(4, '/');
        let export = parts.next().unwrap_or_default().to_string();
        let (segment, run, rest) = (parts.next(), parts.next(), parts.next());
        if let (Some(segment), Some(BACKFILLS_DIR), Some(rest)) = (segment, run, rest) {
            if let Some((run, _)) = rest.split_once('/').filter(|(r, _)| is_run_id(r)) {
                let (segment, run_id) = (segment.to_string(), Some(run.to_string()));
                return Unit { export, segment, run_id, backfill: true, keys: vec![key] };
            }
        }
        let run_id = match (run, rest) {
            (Some(run), Some(_)) if is_run_id(run) => Some(run.to_string()),
            _ => None,
        };
        // A file directly under the export, or under a table folder but in no run folder.
        let segment = match (segment, run) {
            (Some(s), Some(_)) => s.to_string(),
            _ => String::new(),
        };
        Unit { export, segment, run_id, backfill: false, keys: vec![key] }
    }

    fn holds(&self, other: &Unit) -> bool {
        self.run_id.is_some()
            && self.run_id == other.run_id
            && self.backfill == other.backfill
            && self.segment == other.segment
            && self.export == other.export
    }

    fn folder(&self) -> Option<RunFolder> {
        let run = self.run_id.as_deref()?;
        Some(match self.backfill {
            // A segment is its own path segment, so the layout builds the folder from it.
            true => RunFolder::backfill(&self.export, &self.segment, run),
            false => RunFolder::new(&self.export, &self.segment, run),
        })
    }

    /// Its manifest's key, if the folder holds one.
    pub fn manifest_key(&self) -> Option<String> {
        let key = self.folder()?.manifest();
        self.keys.contains(&key).then_some(key)
    }
}

/// The listing's keys grouped into run folders (a sorted listing keeps each folder's keys
/// together).
pub(super) fn units(keys: KeyStream<'_>) -> BoxStream<'_, Result<Unit, BoxError>> {
    Box::pin(futures::stream::unfold(Some((keys, None::<Unit>)), |state| async move {
        let (mut keys, mut current) = state?;
        loop {
            match keys.next().await {
                None => return current.map(|u| (Ok(u), None)),
                Some(Err(e)) => return Some((Err(e), None)),
                Some(Ok(key)) => {
                    let unit = Unit::of(key);
                    match &mut current {
                        Some(open) if open.holds(&unit) => open.keys.extend(unit.keys),
                        _ => {
                            if let Some(done) = current.replace(unit) {
                                return Some((Ok(done), Some((keys, current))));
                            }
                        }
                    }
                }
            }
        }
    }))
}

/// A committed run's manifest as read.
pub(super) struct Committed {
    pub key: String,
    pub sha256: Option<String>,
    /// `None` when it could not be read (a finding says why).
    pub manifest: Option<Manifest>,
}

/// A folder, checked.
pub(super) struct Checked {
    pub unit: Unit,
    /// (run id, key, problem) found inside the folder.
    pub findings: Vec<(Option<String>, Option<String>, Problem)>,
    pub committed: Option<Committed>,
    pub has_state: bool,
    /// Before `--since`: not checked.
    pub before: bool,
}

pub(super) fn sha256(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// Checks one folder: its manifest, its parts, its extra files, and the history's record of it.
pub(super) async fn check(
    store: &dyn ObjectStore,
    history: Option<&dyn HistoryStore>,
    unit: Unit,
    before: bool,
) -> Checked {
    let mut checked = Checked { findings: Vec::new(), committed: None, has_state: false, before, unit };
    let Some(folder) = checked.unit.folder() else {
        let key = checked.unit.keys.first().cloned();
        checked.findings.push((None, key, Problem::StrayFile));
        return checked;
    };
    let run_id = checked.unit.run_id.clone();
    checked.has_state = checked.unit.keys.contains(&folder.state());
    let Some(key) = checked.unit.manifest_key() else {
        if !before {
            let files = checked.unit.keys.len();
            checked.findings.push((run_id, Some(folder.prefix().to_string()), Problem::Uncommitted { files }));
        }
        return checked;
    };
    if before {
        return checked;
    }
    let at = |key: &str, p: Problem| (run_id.clone(), Some(key.to_string()), p);
    let (sha, manifest) = match store.get(&key).await {
        Ok(Some(bytes)) => {
            let sha = sha256(&bytes);
            match serde_json::from_slice::<Manifest>(&bytes) {
                Ok(m) => (Some(sha), Some(m)),
                Err(e) => {
                    checked.findings.push(at(&key, Problem::ManifestUnreadable { error: e.to_string() }));
                    (Some(sha), None)
                }
            }
        }
        Ok(None) => {
            checked.findings.push(at(&key, Problem::ManifestUnreadable { error: "it vanished while listed".into() }));
            (None, None)
        }
        Err(e) => {
            checked.findings.push(at(&key, Problem::ManifestUnreadable { error: e.to_string() }));
            (None, None)
        }
    };
    if let Some(m) = &manifest {
        let expected = match m.backfill {
            Some(_) => RunFolder::backfill(&m.export, &m.table, &m.run_id),
            None => RunFolder::of(&m.export, &m.table, &m.run_id),
        };
        if expected != folder {
            let says = format!("run {} of table {:?} of export {:?}", m.run_id, m.table, m.export);
            checked.findings.push(at(&key, Problem::ManifestMisplaced { says }));
        }
        let inside = format!("{}/", folder.prefix());
        for part in m.parts.iter().filter(|p| !p.key.starts_with(&inside)) {
            checked.findings.push(at(&part.key, Problem::PartOutsideFolder));
        }
        check_parts(store, m, &key, &mut checked.findings, &at).await;
        let listed: HashSet<&str> = m.parts.iter().map(|p| p.key.as_str()).collect();
        let failures = format!("{}/failures/", folder.prefix());
        let state = folder.state();
        for extra in checked
            .unit
            .keys
            .iter()
            .filter(|k| **k != key && **k != state && !listed.contains(k.as_str()) && !k.starts_with(&failures))
        {
            checked.findings.push(at(extra, Problem::ExtraFile));
        }
        if let Some(history) = history {
            if let Some(p) = agree_with_record(history, m).await {
                checked.findings.push(at(&key, p));
            }
        }
    }
    checked.committed = Some(Committed { key, sha256: sha, manifest });
    checked
}

/// Each listed part, read and hashed (a few at a time), and the totals against the parts.
async fn check_parts(
    store: &dyn ObjectStore,
    m: &Manifest,
    manifest_key: &str,
    findings: &mut Vec<(Option<String>, Option<String>, Problem)>,
    at: &impl Fn(&str, Problem) -> (Option<String>, Option<String>, Problem),
) {
    let mut hashed = futures::stream::iter(m.parts.iter())
        .map(|part| async move { (part, hash_object(store, &part.key).await) })
        .buffer_unordered(PARTS_AT_ONCE);
    let mut unhashed = 0;
    while let Some((part, read)) = hashed.next().await {
        match read {
            Ok(None) => findings.push(at(&part.key, Problem::PartMissing)),
            Err(e) => findings.push(at(&part.key, Problem::PartUnreadable { error: e.to_string() })),
            Ok(Some((bytes, sha))) => {
                if bytes != part.bytes {
                    findings.push(at(&part.key, Problem::PartSize { listed: part.bytes, found: bytes }));
                }
                match &part.sha256 {
                    Some(listed) if *listed != sha => {
                        findings.push(at(&part.key, Problem::PartHash { listed: listed.clone(), found: sha }))
                    }
                    Some(_) => {}
                    None => unhashed += 1,
                }
            }
        }
    }
    if unhashed > 0 {
        findings.push((Some(m.run_id.clone()), None, Problem::PartsUnhashed { count: unhashed }));
    }
    let (rows, bytes) = m.parts.iter().fold((0u64, 0u64), |(r, b), p| (r + p.rows, b + p.bytes));
    let mut wrong = Vec::new();
    if rows != m.totals.rows {
        wrong.push(format!("rows {} against {rows} in the parts", m.totals.rows));
    }
    if bytes != m.totals.bytes {
        wrong.push(format!("bytes {} against {bytes} in the parts", m.totals.bytes));
    }
    if m.totals.parts as usize != m.parts.len() {
        wrong.push(format!("parts {} against {} listed", m.totals.parts, m.parts.len()));
    }
    if !wrong.is_empty() {
        findings.push(at(manifest_key, Problem::Totals { what: wrong.join(", ") }));
    }
}

/// An object's size and SHA-256, streamed; `None` when absent.
async fn hash_object(store: &dyn ObjectStore, key: &str) -> Result<Option<(u64, String)>, BoxError> {
    use sha2::{Digest, Sha256};
    let Some(mut chunks) = store.read(key).await? else { return Ok(None) };
    let (mut hash, mut size) = (Sha256::new(), 0u64);
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        size += chunk.len() as u64;
        hash.update(&chunk);
    }
    Ok(Some((size, hex::encode(hash.finalize()))))
}

/// The history's record of a committed run, against its manifest.
async fn agree_with_record(history: &dyn HistoryStore, m: &Manifest) -> Option<Problem> {
    let record = match history.run(&m.export, &m.table, &m.run_id, m.started_at).await {
        Ok(r) => r,
        Err(e) => return Some(Problem::HistoryUnreadable { error: e.to_string() }),
    };
    let Some(r) = record else { return Some(Problem::RunNotRecorded { recorded: None }) };
    if r.state != RunState::Succeeded {
        return Some(Problem::RunNotRecorded { recorded: Some(r.state.as_str().to_string()) });
    }
    let mut wrong = Vec::new();
    if r.rows != m.totals.rows {
        wrong.push(format!("{} rows recorded, {} in the manifest", r.rows, m.totals.rows));
    }
    if r.parts != m.totals.parts {
        wrong.push(format!("{} parts recorded, {} in the manifest", r.parts, m.totals.parts));
    }
    if r.window != m.window {
        wrong.push(format!("window {} recorded, {} in the manifest", r.window, m.window));
    }
    (!wrong.is_empty()).then(|| Problem::RunDisagrees { what: wrong.join("; ") })
}

/// Puts the runs of one second in chain order: from the chain's tail, each next run is the one
/// that links to the run before it; a run no other links to goes by when it started. `key` is
/// a run's manifest key (none for a folder without a manifest), `link` its `previous` key.
/// Returns the runs in order and the new tail.
fn link_order<T, K: Ord>(
    mut batch: Vec<T>,
    mut tail: Option<String>,
    started: impl Fn(&T) -> K,
    key: impl Fn(&T) -> Option<String>,
    link: impl Fn(&T) -> Option<String>,
) -> (Vec<T>, Option<String>) {
    batch.sort_by_key(|t| started(t));
    let mut ordered = Vec::with_capacity(batch.len());
    while !batch.is_empty() {
        let next = batch.iter().position(|t| tail.is_some() && link(t) == tail).unwrap_or(0);
        let t = batch.remove(next);
        if let Some(k) = key(&t) {
            tail = Some(k);
        }
        ordered.push(t);
    }
    (ordered, tail)
}

/// A second's folders in chain order (see [`link_order`]).
pub(super) fn order_by_links(second: &mut Vec<Checked>, tail: Option<String>) {
    fn manifest(c: &Checked) -> Option<&Manifest> {
        c.committed.as_ref().and_then(|m| m.manifest.as_ref())
    }
    let (ordered, _) = link_order(
        std::mem::take(second),
        tail,
        |c| manifest(c).map(|m| m.started_at),
        |c| c.committed.as_ref().map(|m| m.key.clone()),
        |c| manifest(c).and_then(|m| m.previous.as_ref()).map(|l| l.key.clone()),
    );
    *second = ordered;
}

/// The second a run id names (`YYYYMMDDTHHMMSSZ`).
pub(super) fn second_of(run_id: &str) -> &str {
    run_id.get(..16).unwrap_or(run_id)
}

/// Manifests (with their keys) in chain order: each table's runs of one second ordered by
/// their links, as `verify` walks them.
pub(super) fn in_chain_order<'s>(
    manifests: impl Stream<Item = Result<(String, Manifest), BoxError>> + Send + 's,
) -> impl Stream<Item = Result<(String, Manifest), BoxError>> + Send + 's {
    struct Order<S> {
        input: std::pin::Pin<Box<S>>,
        /// The runs of the second being read, of `table`.
        second: Vec<(String, Manifest)>,
        table: Option<String>,
        /// The key of the last manifest given out for `table`.
        tail: Option<String>,
        out: std::collections::VecDeque<Result<(String, Manifest), BoxError>>,
        done: bool,
    }
    impl<S> Order<S> {
        fn flush(&mut self) {
            let (ordered, tail) = link_order(
                std::mem::take(&mut self.second),
                self.tail.take(),
                |(_, m)| m.started_at,
                |(key, _)| Some(key.clone()),
                |(_, m)| m.previous.as_ref().map(|l| l.key.clone()),
            );
            self.tail = tail;
            self.out.extend(ordered.into_iter().map(Ok));
        }
    }
    let order = Order {
        input: Box::pin(manifests),
        second: vec![],
        table: None,
        tail: None,
        out: Default::default(),
        done: false,
    };
    futures::stream::unfold(order, |mut o| async move {
        loop {
            if let Some(item) = o.out.pop_front() {
                return Some((item, o));
            }
            if o.done {
                return None;
            }
            match o.input.next().await {
                None => {
                    o.flush();
                    o.done = true;
                }
                Some(Err(e)) => {
                    o.flush();
                    o.out.push_back(Err(e));
                    o.done = true;
                }
                Some(Ok((key, m))) => {
                    let new_table = o.table.as_deref() != Some(m.table.as_str());
                    let new_second =
                        o.second.first().is_some_and(|(_, f)| second_of(&f.run_id) != second_of(&m.run_id));
                    if new_table || new_second {
                        o.flush();
                    }
                    if new_table {
                        o.table = Some(m.table.clone());
                        o.tail = None;
                    }
                    o.second.push((key, m));
                }
            }
        }
    })
}
