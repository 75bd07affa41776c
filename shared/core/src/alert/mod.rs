//! Alerts: what is wrong with an export, announced once when it starts and once when it ends.
//!
//! The rules (`rules.rs`) say, after each run, each delivery, and on the freshness check's own
//! schedule, whether each alert of the export is firing. `Watch::settle` compares that with the
//! alert's record (the `AlertStore` port) and, only where the state changes, saves the record
//! conditionally and announces the change: an `ExportAlert` event, and a message to the
//! export's webhook when it has one. Two processes seeing the same change race on the record's
//! revision, and only the one that saved announces it.

pub mod notify;
pub mod rules;

use chrono::{DateTime, Utc};

use crate::catalog::{Catalog, CatalogEntry, Lifecycle};
use crate::error::{error_chain, HistoryError};
pub use crate::ports::{AlertEvent, AlertKind};
use crate::ports::{
    AlertRecord, AlertState, AlertStore, DeliverySummary, EventDetail, EventSink, ExportRunSummary, HistoryStore,
    RunEvent,
};
use crate::spec::{AlertSpec, Config, ExportSpec};

pub use notify::{Notify, Webhook};

/// The event's detail type.
pub const ALERT_EVENT: &str = "ExportAlert";
/// The alert event's schema version.
pub const ALERT_VERSION: u32 = 1;
/// The most table run records the rules read, whatever their settings ask for.
const RECORDS_READ: usize = 2000;
/// Runs read back besides those the settings need (a failed run or two among them).
const RUNS_SPARE: usize = 10;

/// What a rule says now about one alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The alert's record key: the kind, and `:<integration>:<table>` for a delivery's.
    pub key: String,
    pub kind: AlertKind,
    pub firing: bool,
    pub what: String,
    pub why: String,
    pub run_id: Option<String>,
    /// The manifest's key under the export's destination.
    pub manifest: Option<String>,
}

/// An export as the alerts see it: its spec, the schedules it runs on (its `schedule`, or a
/// managed export's orchestrations), and whether it is meant to be running now.
#[derive(Debug, Clone)]
pub struct Watched {
    pub export: ExportSpec,
    pub schedules: Vec<String>,
    /// Meant to run (active, and a managed export's entry too): only then can it go stale.
    /// Without a schedule it goes stale only by an explicit `freshness`.
    pub active: bool,
    /// The earliest its freshness counts from: a managed export's last change (it may have
    /// just been activated or resumed, and its next run is not due yet).
    pub since: Option<DateTime<Utc>>,
}

impl Watched {
    /// An export of the config file: its `schedule`, if it is active.
    pub fn of(export: &ExportSpec) -> Watched {
        Watched {
            export: export.clone(),
            schedules: export.schedule.iter().cloned().collect(),
            active: export.state == crate::spec::ExportState::Active,
            since: None,
        }
    }

    /// A managed export: the schedules of its running orchestrations, while it is active.
    pub fn managed(export: &ExportSpec, entry: &CatalogEntry) -> Watched {
        let schedules: Vec<String> =
            entry.orchestrations.iter().filter(|o| !o.paused).map(|o| o.schedule.clone()).collect();
        Watched {
            export: export.clone(),
            active: entry.state == Lifecycle::Active && export.state == crate::spec::ExportState::Active,
            since: Some(entry.updated_at),
            schedules,
        }
    }

    fn spec(&self) -> &AlertSpec {
        &self.export.alerts
    }

    /// The table run records the rules need: the runs their settings look back over, each of
    /// every table, plus a few.
    fn records_needed(&self) -> usize {
        let spec = self.spec();
        let runs =
            spec.rows_band.map_or(0, |b| b.runs as usize + 1).max(spec.zero_rows.unwrap_or(0) as usize) + RUNS_SPARE;
        (runs * self.export.tables.len().max(1)).min(RECORDS_READ)
    }

    /// The run alerts its settings turn off: an open one of these is resolved, not left open.
    fn disabled(&self) -> Vec<AlertKind> {
        let s = self.spec();
        [
            (AlertKind::FailedRun, s.failed_run),
            (AlertKind::ZeroRows, s.zero_rows.is_some()),
            (AlertKind::RowsBand, s.rows_band.is_some()),
            (AlertKind::SlowRun, s.slower_than.is_some()),
            (AlertKind::LateRows, s.late_rows),
            (AlertKind::RejectedRows, s.rejected_share.is_some()),
        ]
        .into_iter()
        .filter(|(_, on)| !on)
        .map(|(k, _)| k)
        .collect()
    }
}

/// One export as the alerts see it: managed (its catalog entry, unless deleted) or the file's.
pub async fn watched(catalog: &dyn Catalog, export: &ExportSpec) -> Result<Watched, HistoryError> {
    Ok(match catalog.entry(&export.name).await?.filter(|e| e.state != Lifecycle::Deleted) {
        Some(entry) => Watched::managed(export, &entry),
        None => Watched::of(export),
    })
}

/// Every export that can run (`config` with the catalog's runnable exports merged in, as
/// `Exports::with_runnable` gives it), as the freshness check sees it.
pub async fn targets(catalog: &dyn Catalog, config: &Config) -> Result<Vec<Watched>, HistoryError> {
    let entries = catalog.entries().await?;
    Ok(config
        .exports
        .iter()
        .map(|e| match entries.iter().find(|x| x.name == e.name && x.state != Lifecycle::Deleted) {
            Some(entry) => Watched::managed(e, entry),
            None => Watched::of(e),
        })
        .collect())
}

/// The ports alerts read, save and announce through.
pub struct Watch<'a> {
    pub history: &'a dyn HistoryStore,
    pub alerts: &'a dyn AlertStore,
    pub events: &'a dyn EventSink,
    /// Posts to an export's webhook; `None` where no webhook can be reached (alerts are then
    /// events only, and a webhook in the config is logged as not sent).
    pub notify: Option<&'a dyn Notify>,
}

impl Watch<'_> {
    /// After a run: failed, slow, zero rows, out of band, late rows; a success also ends a
    /// freshness incident.
    pub async fn after_run(
        &self,
        target: &Watched,
        summary: &ExportRunSummary,
    ) -> Result<Vec<AlertEvent>, HistoryError> {
        let records = self.history.runs(&summary.export, target.records_needed()).await?;
        let past = rules::past_runs(&records, target.export.tables.len());
        // A run of some tables only, or a backfill, can open a failure but not end one: the
        // tables it left out may still be failing.
        let complete =
            target.export.tables.iter().all(|t| summary.tables.iter().any(|o| o.table == t.name && !o.backfill));
        let mut conditions = rules::after_run(target.spec(), summary, &past, complete);
        for c in conditions.iter_mut() {
            // Point at the first table's manifest: enough to find the run's folder.
            c.manifest = summary.tables.iter().find_map(|t| t.manifest_key.clone());
        }
        let saved = self.alerts.alerts(&target.export.name).await?;
        // An open alert whose rule was turned off since resolves: nothing else would end it.
        let off = target.disabled();
        for r in saved.iter().filter(|r| r.state == AlertState::Firing) {
            let kind = r.key.split(':').next().unwrap_or_default();
            if let Some(k) = off.iter().find(|k| k.as_str() == kind) {
                conditions.push(Condition {
                    key: r.key.clone(),
                    kind: *k,
                    firing: false,
                    what: format!("{} is no longer watched on export {}", r.key, target.export.name),
                    why: "its rule was turned off in [export.alerts]".into(),
                    run_id: Some(summary.run_id.clone()),
                    manifest: None,
                });
            }
        }
        self.settle_with(target, conditions, summary.finished_at, saved).await
    }

    /// A run that could not start (the source unreachable, the history unreadable): a failed
    /// run with that error. The caller leaves out a run refused because another holds the
    /// lease: that is not a failure.
    pub async fn after_run_error(
        &self,
        target: &Watched,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<AlertEvent>, HistoryError> {
        if !target.spec().failed_run {
            return Ok(vec![]);
        }
        let name = &target.export.name;
        let c = Condition {
            key: AlertKind::FailedRun.as_str().into(),
            kind: AlertKind::FailedRun,
            firing: true,
            what: format!("export {name}'s run could not start"),
            why: error.to_string(),
            run_id: None,
            manifest: None,
        };
        self.settle(target, vec![c], now).await
    }

    /// After a delivery: did it reject more rows than the export allows.
    pub async fn after_delivery(
        &self,
        target: &Watched,
        summary: &DeliverySummary,
    ) -> Result<Vec<AlertEvent>, HistoryError> {
        match rules::after_delivery(target.spec(), summary) {
            Some(c) => self.settle(target, vec![c], summary.finished_at).await,
            None => Ok(vec![]),
        }
    }

    /// Freshness, on its own schedule: no successful run within the limit (an export that
    /// never succeeded counts from when this first watched it).
    pub async fn check(&self, target: &Watched, now: DateTime<Utc>) -> Result<Vec<AlertEvent>, HistoryError> {
        let name = &target.export.name;
        let Some(limit) = rules::freshness_limit(target.spec(), &target.schedules, now) else { return Ok(vec![]) };
        if !target.active {
            return Ok(vec![]);
        }
        // The records first, then the history: a run that resolved freshness in between is
        // then in the history read, instead of a stale verdict overwriting its resolution.
        let saved = self.alerts.alerts(name).await?;
        let records = self.history.runs(name, target.records_needed()).await?;
        let past = rules::past_runs(&records, target.export.tables.len());
        let last = past.iter().find(|r| r.succeeded);
        let current = saved.iter().find(|r| r.key == AlertKind::Freshness.as_str());
        let since = match (last, current) {
            (Some(run), _) => run.finished_at.unwrap_or(run.started_at),
            (None, Some(r)) if r.state == AlertState::Firing => return Ok(vec![]),
            (None, Some(r)) => r.resolved_at.unwrap_or(r.since),
            (None, None) => {
                // Nothing to measure from yet: start the clock, announcing nothing.
                let watch = AlertRecord {
                    export: name.clone(),
                    key: AlertKind::Freshness.as_str().into(),
                    state: AlertState::Watching,
                    since: now,
                    resolved_at: None,
                    what: format!("export {name} has not run yet"),
                    why: format!("watched from {now}"),
                    run_id: None,
                    manifest: None,
                    revision: 1,
                };
                return match self.alerts.save_alert(&watch, 0).await {
                    Ok(()) | Err(HistoryError::Stale { .. }) => Ok(vec![]),
                    Err(e) => Err(e),
                };
            }
        };
        // Not before the export last changed (activated, resumed): its next run may not be due.
        let since = target.since.map_or(since, |s| s.max(since));
        let firing = rules::stale(limit, since, now);
        let age = rules::human((now - since).to_std().unwrap_or_default());
        let c = Condition {
            key: AlertKind::Freshness.as_str().into(),
            kind: AlertKind::Freshness,
            firing,
            what: match (firing, last) {
                (true, Some(_)) => format!("export {name} has not succeeded for {age}"),
                (true, None) => format!("export {name} has not succeeded since it was first watched, {age} ago"),
                (false, _) => format!("export {name} is fresh"),
            },
            why: match last {
                Some(run) => format!(
                    "its last successful run, {}, finished {age} ago; freshness allows {} (a schedule that stopped firing, or runs failing, leave it stale)",
                    run.run_id,
                    rules::human(limit)
                ),
                None => format!("no successful run in {age}; freshness allows {}", rules::human(limit)),
            },
            run_id: last.map(|r| r.run_id.clone()),
            manifest: None,
        };
        self.settle_with(target, vec![c], now, saved).await
    }

    async fn settle(
        &self,
        target: &Watched,
        conditions: Vec<Condition>,
        now: DateTime<Utc>,
    ) -> Result<Vec<AlertEvent>, HistoryError> {
        let saved = self.alerts.alerts(&target.export.name).await?;
        self.settle_with(target, conditions, now, saved).await
    }

    /// Saves and announces each condition that changes its alert's state.
    async fn settle_with(
        &self,
        target: &Watched,
        conditions: Vec<Condition>,
        now: DateTime<Utc>,
        saved: Vec<AlertRecord>,
    ) -> Result<Vec<AlertEvent>, HistoryError> {
        let export = &target.export.name;
        let location = target.export.destination.to_string();
        let mut announced = Vec::new();
        for c in conditions {
            let current = saved.iter().find(|r| r.key == c.key);
            let open = current.is_some_and(|r| r.state == AlertState::Firing);
            if c.firing == open {
                continue;
            }
            let (expected, revision) = current.map_or((0, 1), |r| (r.revision, r.revision + 1));
            let manifest = c.manifest.as_ref().map(|m| format!("{}/{m}", location.trim_end_matches('/')));
            let record = if c.firing {
                AlertRecord {
                    export: export.clone(),
                    key: c.key.clone(),
                    state: AlertState::Firing,
                    since: now,
                    resolved_at: None,
                    what: c.what.clone(),
                    why: c.why.clone(),
                    run_id: c.run_id.clone(),
                    manifest: manifest.clone(),
                    revision,
                }
            } else {
                // The incident's record keeps what it was; the event says what ended it.
                let was = current.expect("an open alert has a record");
                AlertRecord { state: AlertState::Resolved, resolved_at: Some(now), revision, ..was.clone() }
            };
            match self.alerts.save_alert(&record, expected).await {
                Ok(()) => {}
                // Another process saw the same change first and announced it.
                Err(HistoryError::Stale { .. }) => continue,
                Err(e) => return Err(e),
            }
            let event = AlertEvent {
                version: ALERT_VERSION,
                export: export.clone(),
                alert: c.kind,
                key: c.key,
                status: record.state,
                what: c.what,
                why: cut(&c.why),
                since: record.since,
                resolved_at: record.resolved_at,
                run_id: c.run_id,
                manifest,
            };
            self.announce(target, &event).await;
            announced.push(event);
        }
        Ok(announced)
    }

    /// The event, then the webhook; neither failing undoes the saved state (the record says
    /// what is open, and the log says what could not be sent).
    async fn announce(&self, target: &Watched, event: &AlertEvent) {
        tracing::warn!(export = %event.export, alert = event.alert.as_str(), status = event.status.as_str(), what = %event.what, "alert");
        let run_event = RunEvent { detail_type: ALERT_EVENT.into(), detail: EventDetail::Alert(event.clone()) };
        if let Err(e) = self.events.publish(&run_event).await {
            tracing::warn!(export = %event.export, error = %error_chain(e.as_ref()), "publishing the alert event failed");
        }
        if let Some(source) = &target.spec().webhook {
            match self.notify {
                Some(n) => {
                    if let Err(e) = n.notify(source, event).await {
                        tracing::warn!(export = %event.export, error = %e, "posting the alert to the webhook failed");
                    }
                }
                None => {
                    tracing::warn!(export = %event.export, "the export names a webhook, but this process cannot post to one")
                }
            }
        }
    }
}

/// An error's text within an event's budget.
fn cut(s: &str) -> String {
    const MAX: usize = 4000;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
