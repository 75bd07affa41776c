//! Orchestrations: an active export bound to its destination and a schedule. Each one is a
//! rule in the scheduler (an EventBridge rule in AWS) that invokes the export function with
//! `{"export": …, "orchestration": …}`.
//!
//! The catalog is the truth and the rule its mirror. Every change is written to the export's
//! catalog entry first (so it is versioned, guarded by the entry's revision and audited like a
//! definition change), then to the scheduler. If the scheduler fails after the catalog changed,
//! nothing runs that should not: the export function checks the orchestration in the catalog
//! on every scheduled invocation and skips a paused, deleted or unknown one; and repeating the
//! command brings the rule in line without changing the catalog again.

use chrono::Utc;

pub use crate::catalog::Orchestration;
use crate::catalog::{not_ready, CatalogEntry, CatalogError, Exports, Lifecycle};
use crate::error::{error_chain, BoxError};
pub use crate::ports::scheduler::{RecordOnly, RuleSpec, Scheduler};
use crate::spec::{is_valid_name, ExportSpec};

/// Why a scheduled invocation does not run the export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip(pub String);

/// The scheduler failed after the catalog changed.
fn rule_failed(name: &str, action: &str, e: BoxError) -> CatalogError {
    CatalogError::Scheduler(format!(
        "orchestration {name:?} is {action} in the catalog, but its rule could not be updated: {}; \
         scheduled runs follow the catalog in the meantime: run the same command again to update the rule",
        error_chain(e.as_ref())
    ))
}

impl Exports<'_> {
    /// Binds the export's active version to a schedule. `destination`, when given, must be
    /// the one the export writes to (the destination is part of the export's definition,
    /// changed by editing it, with the configure permission).
    pub async fn orchestrate(
        &self,
        export: &str,
        name: &str,
        schedule: &str,
        destination: Option<&str>,
        scheduler: &dyn Scheduler,
    ) -> Result<CatalogEntry, CatalogError> {
        if !is_valid_name(name) {
            return Err(CatalogError::Edit(format!(
                "invalid orchestration name {name:?}: use 1-64 characters of a-z, 0-9 and _"
            )));
        }
        let schedule = schedule.trim();
        crate::schedule::check(schedule)
            .map_err(|e| CatalogError::Edit(format!("orchestration {name:?}: the schedule {e}")))?;
        not_ready(scheduler)?;
        let entry = self.get(export).await?;
        if entry.state == Lifecycle::Deleted {
            return Err(self.wrong_state(&entry, "a deleted export cannot be orchestrated"));
        }
        let Some(spec) = self.running(&entry).await? else {
            return Err(self.wrong_state(&entry, "only an activated export can be orchestrated: activate it first"));
        };
        let writes_to = spec.destination.to_string();
        if let Some(d) = destination.filter(|d| d.trim_end_matches('/') != writes_to.trim_end_matches('/')) {
            return Err(CatalogError::Edit(format!(
                "export {export:?} writes to {writes_to}, not {d}: change the export's destination first \
                 (sluice exports edit {export} --destination {d}, then activate), or leave the destination out"
            )));
        }
        if let Some(o) = entry.orchestrations.iter().find(|o| o.name == name) {
            if o.schedule == schedule {
                // Already there: only bring the rule in line (a repeat after a failed rule update).
                self.put_rule(&entry, o, scheduler).await.map_err(|e| rule_failed(name, "created", e))?;
                return Ok(entry);
            }
            return Err(CatalogError::Edit(format!(
                "export {export:?} already has an orchestration {name:?} ({}): delete it first, or pick another name",
                o.schedule
            )));
        }
        let rule = scheduler.rule_name(export, name).map_err(|e| CatalogError::Edit(e.0))?;
        let now = Utc::now();
        let o = Orchestration {
            name: name.into(),
            schedule: schedule.into(),
            destination: writes_to.clone(),
            paused: false,
            rule,
            created_at: now,
            created_by: self.who.clone(),
        };
        let mut next = self.bumped(&entry);
        next.orchestrations.push(o.clone());
        let diff = format!("+ orchestration {name}: {schedule} to {writes_to}");
        let next = self.write(next, entry.revision, None, "orchestrate", diff).await?;
        self.put_rule(&next, &o, scheduler).await.map_err(|e| rule_failed(name, "created", e))?;
        Ok(next)
    }

    /// Pauses or resumes one orchestration (its rule disabled or enabled).
    pub async fn set_orchestration_paused(
        &self,
        export: &str,
        name: &str,
        paused: bool,
        scheduler: &dyn Scheduler,
    ) -> Result<CatalogEntry, CatalogError> {
        not_ready(scheduler)?;
        let entry = self.get(export).await?;
        let o = orchestration(&entry, name)?;
        let action = if paused { "paused" } else { "resumed" };
        let entry = if o.paused == paused {
            entry // Already so in the catalog: only bring the rule in line.
        } else {
            let mut next = self.bumped(&entry);
            next.orchestrations.iter_mut().filter(|o| o.name == name).for_each(|o| o.paused = paused);
            let verb = if paused { "pause" } else { "resume" };
            self.write(next, entry.revision, None, &format!("{verb} orchestration"), format!("{name} {action}")).await?
        };
        let o = orchestration(&entry, name)?;
        // Put, not enable: it also brings back a rule whose creation failed.
        self.put_rule(&entry, o, scheduler).await.map_err(|e| rule_failed(name, action, e))?;
        Ok(entry)
    }

    /// Removes an orchestration and its rule; the export and what it exported stay.
    pub async fn unorchestrate(
        &self,
        export: &str,
        name: &str,
        scheduler: &dyn Scheduler,
    ) -> Result<CatalogEntry, CatalogError> {
        not_ready(scheduler)?;
        let entry = self.get(export).await?;
        let Some(o) = entry.orchestrations.iter().find(|o| o.name == name).cloned() else {
            // Gone from the catalog already (a repeat after a failed rule removal, or an
            // export deleted with --force): make sure its rule is gone too. Done, not an error.
            let rule = scheduler.rule_name(export, name).map_err(|e| CatalogError::Edit(e.0))?;
            scheduler.remove(&rule).await.map_err(|e| rule_failed(name, "deleted", e))?;
            return Ok(entry);
        };
        let mut next = self.bumped(&entry);
        next.orchestrations.retain(|o| o.name != name);
        let diff = format!("- orchestration {name}: {}", o.schedule);
        let next = self.write(next, entry.revision, None, "delete orchestration", diff).await?;
        scheduler.remove(&o.rule).await.map_err(|e| rule_failed(name, "deleted", e))?;
        Ok(next)
    }

    /// Every export's orchestrations, by export.
    pub async fn orchestrations(&self) -> Result<Vec<(CatalogEntry, Orchestration)>, CatalogError> {
        let entries = self.catalog.entries().await.map_err(CatalogError::Store)?;
        Ok(entries
            .into_iter()
            .flat_map(|e| e.orchestrations.clone().into_iter().map(move |o| (e.clone(), o)))
            .collect())
    }

    /// What a scheduled invocation runs: the export's active version, or why it is skipped
    /// (the orchestration is paused or gone, or the export is paused). A deleted export or a
    /// draft is refused as for any request.
    pub async fn scheduled(&self, export: &str, orchestration: &str) -> Result<Result<ExportSpec, Skip>, CatalogError> {
        let entry = self.get(export).await?;
        if entry.state == Lifecycle::Deleted {
            // A rule left behind by a delete whose rule removal failed: nothing to run.
            return Ok(Err(Skip(format!(
                "export {export:?} is deleted: remove the leftover rule with \
                 `sluice orchestrations delete {export} {orchestration}`"
            ))));
        }
        let Some(spec) = self.running(&entry).await? else {
            return Err(
                self.wrong_state(&entry, "activate it first (sluice exports activate, or POST /exports/NAME/activate)")
            );
        };
        Ok(match entry.orchestrations.iter().find(|o| o.name == orchestration) {
            None => Err(Skip(format!(
                "export {export:?} has no orchestration {orchestration:?} (deleted?): remove its leftover rule with \
                 `sluice orchestrations delete {export} {orchestration}`"
            ))),
            Some(o) if o.paused => Err(Skip(format!("orchestration {orchestration:?} of export {export:?} is paused"))),
            Some(_) if entry.state == Lifecycle::Paused => Err(Skip(format!("export {export:?} is paused"))),
            Some(_) => Ok(spec),
        })
    }

    async fn put_rule(&self, entry: &CatalogEntry, o: &Orchestration, s: &dyn Scheduler) -> Result<(), BoxError> {
        s.put(&RuleSpec {
            rule: o.rule.clone(),
            export: entry.name.clone(),
            orchestration: o.name.clone(),
            schedule: o.schedule.clone(),
            enabled: runs(entry, o),
        })
        .await
    }

    /// Brings every rule of the export in line with its state (after pause and resume): each
    /// is put again (which also restores one whose creation failed), and every rule is tried
    /// before the failures are reported together.
    pub(crate) async fn sync_rules(&self, entry: &CatalogEntry, s: &dyn Scheduler) -> Result<(), CatalogError> {
        let mut failed = Vec::new();
        for o in &entry.orchestrations {
            if let Err(e) = self.put_rule(entry, o, s).await {
                failed.push(format!("{}: {}", o.name, error_chain(e.as_ref())));
            }
        }
        rules_failed(entry, failed)
    }

    /// Removes the rules of the export's orchestrations (before a forced delete): all are
    /// tried; a rule already gone is not a failure.
    pub(crate) async fn remove_rules(&self, entry: &CatalogEntry, s: &dyn Scheduler) -> Result<(), CatalogError> {
        let mut failed = Vec::new();
        for o in &entry.orchestrations {
            if let Err(e) = s.remove(&o.rule).await {
                failed.push(format!("{}: {}", o.name, error_chain(e.as_ref())));
            }
        }
        rules_failed(entry, failed)
    }
}

fn rules_failed(entry: &CatalogEntry, failed: Vec<String>) -> Result<(), CatalogError> {
    if failed.is_empty() {
        return Ok(());
    }
    Err(CatalogError::Scheduler(format!(
        "export {:?} is {} in the catalog, but the rules of these orchestrations could not be updated: {}; \
         scheduled runs follow the catalog in the meantime: run the same command again to update them",
        entry.name,
        entry.state.as_str(),
        failed.join("; ")
    )))
}

/// A rule fires only for a running orchestration of an active export.
fn runs(entry: &CatalogEntry, o: &Orchestration) -> bool {
    !o.paused && entry.state == Lifecycle::Active
}

fn orchestration<'e>(entry: &'e CatalogEntry, name: &str) -> Result<&'e Orchestration, CatalogError> {
    entry
        .orchestrations
        .iter()
        .find(|o| o.name == name)
        .ok_or_else(|| CatalogError::Edit(format!("export {:?} has no orchestration {name:?}", entry.name)))
}
