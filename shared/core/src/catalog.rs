//! Managed exports: definitions kept in the state store (the history file on one machine,
//! DynamoDB in AWS) instead of only in the config file, so a team can create, change, activate,
//! pause and delete an export without editing and redeploying a file.
//!
//! Each change writes, in one conditional step, the export's entry (state and which version is
//! active or drafted), a new immutable version of its definition when the definition changed,
//! and an audit record (who, what, when, the diff). The entry's `revision` is the optimistic
//! lock: a change names the revision it was made from, and one made from a stale revision is
//! refused, so two people editing at once cannot overwrite each other.
//!
//! A definition is the body of an `[[export]]` section as TOML, checked against the config
//! file's sources exactly as if it were written there ([`Config::parse_export`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::HistoryError;
use crate::ports::scheduler::Scheduler;
use crate::spec::{Config, ConfigError, ExportSpec, ExportState};

/// Where an export is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    /// Never activated: only a draft exists, nothing runs.
    Draft,
    /// Its active version runs (a draft of the next version may exist beside it).
    Active,
    /// Its active version is kept but does not run on schedules.
    Paused,
    /// Deleted: nothing runs; its versions, runs and audit records are kept.
    Deleted,
}

impl Lifecycle {
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Draft => "draft",
            Lifecycle::Active => "active",
            Lifecycle::Paused => "paused",
            Lifecycle::Deleted => "deleted",
        }
    }
}

/// An export's record in the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogEntry {
    pub name: String,
    /// Bumped by every change; a change is refused unless made from the current one.
    pub revision: u64,
    pub state: Lifecycle,
    /// The version that runs (None until first activated).
    pub active_version: Option<u64>,
    /// The version being prepared (None when there is no pending change).
    pub draft_version: Option<u64>,
    /// The highest version ever written (versions are never reused).
    pub latest_version: u64,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
    /// Its schedules (`orchestrate`): part of the entry, so binding, pausing and
    /// removing one is versioned, guarded by the revision and audited like any other change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orchestrations: Vec<Orchestration>,
}

/// One immutable version of an export's definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    pub export: String,
    pub version: u64,
    /// The keys of the `[[export]]` section, as TOML.
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

/// Who changed what, when: one per change, kept after the export is deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub export: String,
    /// The entry's revision this change produced.
    pub revision: u64,
    pub at: DateTime<Utc>,
    /// An IAM principal's ARN in AWS, `user@host` on one machine.
    pub who: String,
    /// create, edit, activate, discard, pause, resume, delete.
    pub action: String,
    /// What changed: the definition's lines removed (`-`) and added (`+`), or the state change.
    pub diff: String,
}

/// A change, written all or nothing.
#[derive(Debug, Clone)]
pub struct CatalogChange {
    pub entry: CatalogEntry,
    /// The revision the change was made from; 0 when creating (the name must be free).
    pub expected_revision: u64,
    pub definition: Option<Definition>,
    pub audit: AuditRecord,
}

/// The state store's side of the catalog. Implementations: `SqliteHistory` (sluice-local),
/// `DynamoHistory` (sluice-aws); both pass `sluice_testkit::catalog::check_contract`.
#[async_trait]
pub trait Catalog: Send + Sync {
    async fn entry(&self, name: &str) -> Result<Option<CatalogEntry>, HistoryError>;
    /// Every entry, deleted ones included, by name.
    async fn entries(&self) -> Result<Vec<CatalogEntry>, HistoryError>;
    async fn definition(&self, name: &str, version: u64) -> Result<Option<Definition>, HistoryError>;
    /// Writes the entry, the definition (if any) and the audit record together if the entry's
    /// revision is still `expected_revision`; otherwise [`HistoryError::Stale`] and nothing.
    async fn apply(&self, change: &CatalogChange) -> Result<(), HistoryError>;
    /// The export's audit records, newest first.
    async fn audit(&self, name: &str, limit: usize) -> Result<Vec<AuditRecord>, HistoryError>;
}

/// What activation checks beyond the definition itself: the source and the destination, as
/// they are now. Implemented where adapters are wired (the CLI, the control function).
#[async_trait]
pub trait Preflight: Send + Sync {
    /// Every problem found (tables or columns missing, an incremental column of no usable
    /// type, a destination that cannot be written), or none.
    async fn check(&self, spec: &ExportSpec) -> Vec<String>;
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("no export named {0:?} in the catalog (sluice exports list, or GET /exports, shows them)")]
    NotFound(String),
    #[error("an export named {0:?} already exists: pick another name, or edit it")]
    Exists(String),
    #[error("export {name:?} is defined in {path}: remove it there first, or let `sluice apply {path}` manage it")]
    InFile { name: String, path: String },
    #[error(
        "export {name:?} changed since revision {expected} (it is at revision {found}, by {by}): \
         look at it again (sluice exports show {name}) and redo the change from there"
    )]
    Stale { name: String, expected: u64, found: u64, by: String },
    #[error("export {name:?} is {state}: {hint}")]
    WrongState { name: String, state: &'static str, hint: String },
    /// A delete refused while orchestrations use the export; each front end says how to force
    /// it (`--force`, `?force=true`).
    #[error(
        "export {name:?} is used by {users}: remove those first, or force the delete (it removes their rules too)"
    )]
    InUse { name: String, users: String },
    #[error("export {name:?} is not valid: {source}")]
    Invalid { name: String, source: ConfigError },
    #[error("export {name:?} cannot be activated:\n  - {}", problems.join("\n  - "))]
    Preflight { name: String, problems: Vec<String> },
    #[error("{0}")]
    Edit(String),
    /// The scheduler (EventBridge) failed or is not configured: not the caller's input.
    #[error("{0}")]
    Scheduler(String),
    #[error(transparent)]
    Store(HistoryError),
}

/// A table's keys as an edit gives them: lines of an `[[export.table]]` section, or one inline
/// table (`{ name = "orders", incremental = { … } }`), which fits on a command line.
fn table_keys(text: &str) -> Result<toml::Table, CatalogError> {
    let invalid = |e: toml::de::Error| {
        CatalogError::Edit(format!(
            "the table is not valid TOML: {e}; give its keys on lines of their own, or on one line as {{ name = \"orders\", incremental = {{ … }} }}"
        ))
    };
    if text.trim_start().starts_with('{') {
        let mut wrapped: toml::Table = toml::from_str(&format!("t = {text}")).map_err(invalid)?;
        return match wrapped.remove("t") {
            Some(toml::Value::Table(t)) => Ok(t),
            _ => Err(CatalogError::Edit("the table is not an inline table".into())),
        };
    }
    toml::from_str(text).map_err(invalid)
}

/// What to do with a deleted export's name: one story for every change refused on it.
const DELETED_HINT: &str =
    "create it again under its name (a new draft, with the next version; its deleted versions, runs and audit trail stay)";

/// An edit to the definition being prepared (the draft, or a copy of the active version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Add a table: the keys of an `[[export.table]]` section, as TOML.
    AddTable(String),
    RemoveTable(String),
    /// Switch the database: the tables are checked against the new source at activation.
    SetSource(String),
    SetDestination(String),
    /// The whole definition, as `sluice apply` writes it.
    Replace(String),
}

/// The lifecycle operations, over a catalog and the config file that names the sources.
pub struct Exports<'a> {
    pub catalog: &'a dyn Catalog,
    pub config: &'a Config,
    /// Who is acting, as audit records name them.
    pub who: String,
}

impl Exports<'_> {
    pub async fn get(&self, name: &str) -> Result<CatalogEntry, CatalogError> {
        self.catalog.entry(name).await.map_err(CatalogError::Store)?.ok_or_else(|| CatalogError::NotFound(name.into()))
    }

    async fn body(&self, name: &str, version: u64) -> Result<String, CatalogError> {
        let d = self.catalog.definition(name, version).await.map_err(CatalogError::Store)?;
        d.map(|d| d.body).ok_or_else(|| {
            CatalogError::Store(HistoryError::Other(
                format!("export {name:?} has no version {version} in the store").into(),
            ))
        })
    }

    /// The definition a change starts from: the draft, else the active version.
    pub async fn working_body(&self, entry: &CatalogEntry) -> Result<String, CatalogError> {
        match entry.draft_version.or(entry.active_version) {
            Some(v) => self.body(&entry.name, v).await,
            None => Err(CatalogError::WrongState {
                name: entry.name.clone(),
                state: entry.state.as_str(),
                hint: "it has no definition".into(),
            }),
        }
    }

    /// Creates a draft (version 1). The name must be free in the file, and in the catalog
    /// unless its export was deleted: then the name is reused, the draft taking the next
    /// version (the deleted versions, runs and audit records stay under the name).
    pub async fn create(&self, body: &str) -> Result<CatalogEntry, CatalogError> {
        let body = canonical(body)?;
        let spec = self.validate("(new export)", &body)?;
        let name = spec.name.clone();
        if self.config.exports.iter().any(|e| e.name == name) {
            return Err(CatalogError::InFile { name, path: self.config.path.display().to_string() });
        }
        match self.catalog.entry(&name).await.map_err(CatalogError::Store)? {
            None => {}
            Some(deleted) if deleted.state == Lifecycle::Deleted => {
                let version = deleted.latest_version + 1;
                let next = CatalogEntry {
                    state: Lifecycle::Draft,
                    active_version: None,
                    draft_version: Some(version),
                    latest_version: version,
                    orchestrations: Vec::new(),
                    ..self.bumped(&deleted)
                };
                let d = diff("", &body);
                return self.write(next, deleted.revision, Some(body), "create", d).await;
            }
            Some(_) => return Err(CatalogError::Exists(name)),
        }
        let now = Utc::now();
        let entry = CatalogEntry {
            name: name.clone(),
            revision: 1,
            state: Lifecycle::Draft,
            active_version: None,
            draft_version: Some(1),
            latest_version: 1,
            updated_at: now,
            updated_by: self.who.clone(),
            orchestrations: Vec::new(),
        };
        let diff = diff("", &body);
        self.write(entry, 0, Some(body), "create", diff).await
    }

    /// Changes the draft, creating one from the active version if there is none; the active
    /// version keeps running until the draft is activated.
    pub async fn edit(&self, name: &str, edit: &Edit, expected: Option<u64>) -> Result<CatalogEntry, CatalogError> {
        let entry = self.current(name, expected).await?;
        if entry.state == Lifecycle::Deleted {
            return Err(self.wrong_state(&entry, DELETED_HINT));
        }
        let before = self.working_body(&entry).await?;
        let after = apply_edit(&before, edit)?;
        if after == before {
            return Err(CatalogError::Edit(format!("that changes nothing in export {name:?}")));
        }
        self.validate(name, &after)?;
        let version = entry.latest_version + 1;
        let next = CatalogEntry { draft_version: Some(version), latest_version: version, ..self.bumped(&entry) };
        let d = diff(&before, &after);
        self.write(next, entry.revision, Some(after), "edit", d).await
    }

    /// Makes the draft the version that runs, once the source and destination accept it.
    pub async fn activate(
        &self,
        name: &str,
        expected: Option<u64>,
        preflight: &dyn Preflight,
    ) -> Result<CatalogEntry, CatalogError> {
        let entry = self.current(name, expected).await?;
        if entry.state == Lifecycle::Deleted {
            return Err(self.wrong_state(&entry, DELETED_HINT));
        }
        let Some(draft) = entry.draft_version else {
            return Err(CatalogError::WrongState {
                name: name.into(),
                state: entry.state.as_str(),
                hint: "there is no draft to activate (edit it first)".into(),
            });
        };
        let body = self.body(name, draft).await?;
        let spec = self.validate(name, &body)?;
        let problems = preflight.check(&spec).await;
        if !problems.is_empty() {
            return Err(CatalogError::Preflight { name: name.into(), problems });
        }
        let state = if entry.state == Lifecycle::Paused { Lifecycle::Paused } else { Lifecycle::Active };
        let next = CatalogEntry { state, active_version: Some(draft), draft_version: None, ..self.bumped(&entry) };
        let d = match entry.active_version {
            Some(v) => format!("version {v} -> {draft}"),
            None => format!("version {draft}"),
        };
        self.write(next, entry.revision, None, "activate", d).await
    }

    /// Drops the draft; the active version, if any, is untouched. A never-activated export
    /// has nothing left and is deleted.
    pub async fn discard(&self, name: &str, expected: Option<u64>) -> Result<CatalogEntry, CatalogError> {
        let entry = self.current(name, expected).await?;
        let Some(draft) = entry.draft_version else {
            return Err(CatalogError::WrongState {
                name: name.into(),
                state: entry.state.as_str(),
                hint: "there is no draft to discard".into(),
            });
        };
        let state = if entry.active_version.is_none() { Lifecycle::Deleted } else { entry.state };
        let next = CatalogEntry { state, draft_version: None, ..self.bumped(&entry) };
        self.write(next, entry.revision, None, "discard", format!("draft version {draft} discarded")).await
    }

    /// Stops (pause) or restarts (resume) an active export's scheduled runs: its
    /// orchestrations' rules are disabled or enabled with it.
    pub async fn set_paused(
        &self,
        name: &str,
        paused: bool,
        expected: Option<u64>,
        scheduler: &dyn Scheduler,
    ) -> Result<CatalogEntry, CatalogError> {
        let entry = self.current(name, expected).await?;
        if !entry.orchestrations.is_empty() {
            not_ready(scheduler)?;
        }
        let (from, to, action) = if paused {
            (Lifecycle::Active, Lifecycle::Paused, "pause")
        } else {
            (Lifecycle::Paused, Lifecycle::Active, "resume")
        };
        if entry.state == to && expected.is_none() {
            // Already so: only bring the rules in line (a repeat after a failed rule update).
            self.sync_rules(&entry, scheduler).await?;
            return Ok(entry);
        }
        if entry.state != from {
            return Err(self.wrong_state(&entry, &format!("only an {} export can be {action}d", from.as_str())));
        }
        let next = CatalogEntry { state: to, ..self.bumped(&entry) };
        let next =
            self.write(next, entry.revision, None, action, format!("{} -> {}", from.as_str(), to.as_str())).await?;
        self.sync_rules(&next, scheduler).await?;
        Ok(next)
    }

    /// Deletes an export: nothing runs any more; exported data, runs, versions and audit
    /// records are kept. An export its orchestrations still use is deleted only with `force`,
    /// which removes them (and their rules) too.
    pub async fn delete(
        &self,
        name: &str,
        force: bool,
        expected: Option<u64>,
        scheduler: &dyn Scheduler,
    ) -> Result<CatalogEntry, CatalogError> {
        let entry = self.current(name, expected).await?;
        if entry.state == Lifecycle::Deleted {
            return Err(self.wrong_state(&entry, "it is already deleted"));
        }
        let in_use: Vec<String> = entry.orchestrations.iter().map(|o| format!("orchestration {}", o.name)).collect();
        if !in_use.is_empty() && !force {
            return Err(CatalogError::InUse { name: name.into(), users: in_use.join(", ") });
        }
        // The rules go first: if that fails, nothing changed and the delete can be repeated.
        // (If the write below then fails, the rules are gone while the catalog still lists the
        // orchestrations: resuming one puts its rule back.)
        if !entry.orchestrations.is_empty() {
            not_ready(scheduler)?;
            self.remove_rules(&entry, scheduler).await?;
        }
        let next = CatalogEntry {
            state: Lifecycle::Deleted,
            draft_version: None,
            orchestrations: Vec::new(),
            ..self.bumped(&entry)
        };
        let from = entry.state.as_str();
        let mut diff = format!("{from} -> deleted");
        for o in &entry.orchestrations {
            diff += &format!("\n- orchestration {}: {}", o.name, o.schedule);
        }
        self.write(next, entry.revision, None, "delete", diff).await
    }

    /// The managed export of this name as it runs now (its active version), read at the moment
    /// of the call so an activation takes effect without a redeploy; None when the catalog
    /// does not hold it (it may be the config file's). A draft or a deleted export is refused.
    pub async fn active(&self, name: &str) -> Result<Option<ExportSpec>, CatalogError> {
        let Some(entry) = self.catalog.entry(name).await.map_err(CatalogError::Store)? else { return Ok(None) };
        match self.running(&entry).await? {
            Some(spec) => Ok(Some(spec)),
            None if entry.state == Lifecycle::Deleted => Err(self.wrong_state(&entry, "it no longer runs")),
            None => {
                Err(self
                    .wrong_state(&entry, "activate it first (sluice exports activate, or POST /exports/NAME/activate)"))
            }
        }
    }

    /// The exports that run: active and paused ones, at their active version.
    pub async fn runnable(&self) -> Result<Vec<ExportSpec>, CatalogError> {
        let mut specs = Vec::new();
        for entry in self.catalog.entries().await.map_err(CatalogError::Store)? {
            specs.extend(self.running(&entry).await?);
        }
        Ok(specs)
    }

    /// The config with the exports that run from the catalog merged in: a managed export of
    /// the same name as one of the file's replaces it. Also returns what to warn about: the
    /// names shadowed, and each managed export whose active version no longer validates against
    /// the file (a source removed, say), left out so the others still run and show.
    pub async fn with_runnable(&self) -> Result<(Config, Vec<String>, Vec<CatalogError>), CatalogError> {
        let mut config = self.config.clone();
        let (mut shadowed, mut invalid) = (Vec::new(), Vec::new());
        for entry in self.catalog.entries().await.map_err(CatalogError::Store)? {
            let spec = match self.running(&entry).await {
                Ok(Some(spec)) => spec,
                Ok(None) => continue,
                Err(e @ CatalogError::Invalid { .. }) => {
                    invalid.push(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let Some(i) = config.exports.iter().position(|e| e.name == spec.name) {
                shadowed.push(spec.name.clone());
                config.exports.remove(i);
            }
            config.exports.push(spec);
        }
        Ok((config, shadowed, invalid))
    }

    /// An entry's active version as a spec, with its state; None for drafts and deleted ones.
    pub(crate) async fn running(&self, entry: &CatalogEntry) -> Result<Option<ExportSpec>, CatalogError> {
        let (Some(v), Lifecycle::Active | Lifecycle::Paused) = (entry.active_version, entry.state) else {
            return Ok(None);
        };
        let mut spec = self.validate(&entry.name, &self.body(&entry.name, v).await?)?;
        spec.state = if entry.state == Lifecycle::Paused { ExportState::Paused } else { ExportState::Active };
        Ok(Some(spec))
    }

    fn validate(&self, name: &str, body: &str) -> Result<ExportSpec, CatalogError> {
        self.config.parse_export(body).map_err(|source| CatalogError::Invalid { name: name.into(), source })
    }

    async fn current(&self, name: &str, expected: Option<u64>) -> Result<CatalogEntry, CatalogError> {
        let entry = self.get(name).await?;
        match expected {
            Some(r) if r != entry.revision => Err(CatalogError::Stale {
                name: name.into(),
                expected: r,
                found: entry.revision,
                by: entry.updated_by.clone(),
            }),
            _ => Ok(entry),
        }
    }

    pub(crate) fn bumped(&self, entry: &CatalogEntry) -> CatalogEntry {
        CatalogEntry {
            revision: entry.revision + 1,
            updated_at: Utc::now(),
            updated_by: self.who.clone(),
            ..entry.clone()
        }
    }

    pub(crate) fn wrong_state(&self, entry: &CatalogEntry, hint: &str) -> CatalogError {
        CatalogError::WrongState { name: entry.name.clone(), state: entry.state.as_str(), hint: hint.into() }
    }

    pub(crate) async fn write(
        &self,
        entry: CatalogEntry,
        expected: u64,
        body: Option<String>,
        action: &str,
        diff: String,
    ) -> Result<CatalogEntry, CatalogError> {
        let definition = body.map(|body| Definition {
            export: entry.name.clone(),
            version: entry.latest_version,
            body,
            created_at: entry.updated_at,
            created_by: self.who.clone(),
        });
        let audit = AuditRecord {
            export: entry.name.clone(),
            revision: entry.revision,
            at: entry.updated_at,
            who: self.who.clone(),
            action: action.into(),
            diff,
        };
        let change = CatalogChange { entry: entry.clone(), expected_revision: expected, definition, audit };
        match self.catalog.apply(&change).await {
            Ok(()) => Ok(entry),
            // Someone else's change landed between our read and our write.
            Err(HistoryError::Stale { found, by }) => {
                Err(CatalogError::Stale { name: entry.name, expected, found, by })
            }
            Err(e) => Err(CatalogError::Store(e)),
        }
    }
}

/// A definition in one spelling: parsed and written back, so an unchanged definition compares
/// equal however it was formatted, and diffs show real changes only.
pub fn canonical(body: &str) -> Result<String, CatalogError> {
    let table: toml::Table =
        toml::from_str(body).map_err(|e| CatalogError::Edit(format!("the definition is not valid TOML: {e}")))?;
    toml::to_string(&table).map_err(|e| CatalogError::Edit(e.to_string()))
}

fn apply_edit(body: &str, edit: &Edit) -> Result<String, CatalogError> {
    let mut table: toml::Table = toml::from_str(body).map_err(|e| CatalogError::Edit(e.to_string()))?;
    match edit {
        Edit::Replace(new) => return canonical(new),
        Edit::SetSource(s) => {
            table.insert("source".into(), toml::Value::String(s.clone()));
        }
        Edit::SetDestination(d) => {
            table.insert("destination".into(), toml::Value::String(d.clone()));
        }
        Edit::AddTable(t) => {
            let t = table_keys(t)?;
            let tables = table.entry("table").or_insert_with(|| toml::Value::Array(vec![]));
            let toml::Value::Array(list) = tables else {
                return Err(CatalogError::Edit("`table` is not a list".into()));
            };
            list.push(toml::Value::Table(t));
        }
        Edit::RemoveTable(name) => {
            let Some(toml::Value::Array(list)) = table.get_mut("table") else {
                return Err(CatalogError::Edit("the export has no tables".into()));
            };
            let before = list.len();
            list.retain(|t| t.get("name").and_then(toml::Value::as_str) != Some(name.as_str()));
            if list.len() == before {
                return Err(CatalogError::Edit(format!("the export has no table {name:?}")));
            }
        }
    }
    toml::to_string(&table).map_err(|e| CatalogError::Edit(e.to_string()))
}

/// The lines of `before` that are not in `after` (`- `) and those of `after` not in `before`
/// (`+ `): enough to see what an edit did to a definition of a few dozen lines.
pub fn diff(before: &str, after: &str) -> String {
    let old: Vec<&str> = before.lines().collect();
    let new: Vec<&str> = after.lines().collect();
    let mut out = String::new();
    for l in old.iter().filter(|l| !new.contains(l)) {
        out += &format!("- {l}\n");
    }
    for l in new.iter().filter(|l| !old.contains(l)) {
        out += &format!("+ {l}\n");
    }
    out
}

/// One schedule of one export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Orchestration {
    pub name: String,
    /// An EventBridge expression: `rate(…)` or `cron(…)`, in UTC.
    pub schedule: String,
    /// Where its runs land: the export's destination when it was bound.
    pub destination: String,
    pub paused: bool,
    /// The scheduler's name for its rule.
    pub rule: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

/// Missing settings are the caller's to fix (like a bad command line), not a failure.
pub(crate) fn not_ready(scheduler: &dyn Scheduler) -> Result<(), CatalogError> {
    scheduler.ready().map_err(|e| CatalogError::Edit(e.0))
}
