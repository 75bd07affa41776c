//! The alert rules as pure functions: what a finished run, a finished delivery or the time since
//! the last success says about each rule. Each rule gives a `Condition` (firing or clear) or
//! nothing when it has no verdict (too few runs to take a median of).

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::time::Duration;

use super::{AlertKind, Condition};
use crate::ports::{DeliverySummary, ExportRunSummary, RunRecord, RunState};
use crate::spec::{AlertSpec, Freshness};

/// One export run as the history holds it: its tables' records added up.
#[derive(Debug, Clone, PartialEq)]
pub struct PastRun {
    pub run_id: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub rows: u64,
    pub succeeded: bool,
    /// How many of the export's tables it ran.
    pub tables: usize,
}

/// The export's runs of all its `tables`, newest first, from their table records. A run's
/// tables share its id but each has its own start, so records are grouped by id. Backfills
/// and runs of some tables only (`--table`) are left out: they are asked for by hand, and
/// say nothing about the schedule's runs.
pub fn past_runs(records: &[RunRecord], tables: usize) -> Vec<PastRun> {
    let mut by_id: BTreeMap<String, PastRun> = BTreeMap::new();
    for r in records.iter().filter(|r| !r.backfill) {
        let run = by_id.entry(r.run_id.clone()).or_insert_with(|| PastRun {
            run_id: r.run_id.clone(),
            started_at: r.started_at,
            finished_at: r.finished_at,
            rows: 0,
            succeeded: true,
            tables: 0,
        });
        run.rows += r.rows;
        run.succeeded &= r.state == RunState::Succeeded;
        run.started_at = run.started_at.min(r.started_at);
        run.finished_at = run.finished_at.max(r.finished_at);
        run.tables += 1;
    }
    let mut runs: Vec<PastRun> = by_id.into_values().filter(|r| r.tables >= tables).collect();
    runs.sort_by(|a, b| (b.started_at, &b.run_id).cmp(&(a.started_at, &a.run_id)));
    runs
}

fn condition(kind: AlertKind, firing: bool, what: String, why: String, run_id: Option<&str>) -> Condition {
    Condition {
        key: kind.as_str().to_string(),
        kind,
        firing,
        what,
        why,
        run_id: run_id.map(str::to_string),
        manifest: None,
    }
}

/// What a finished run says: failed, slow, zero rows in a row, rows out of the band, late rows.
/// `history` is the export's runs, newest first, this one among them.
/// `complete`: every table of the export ran (not a backfill or a `--table` run), so a success
/// may resolve a failed run.
pub fn after_run(spec: &AlertSpec, summary: &ExportRunSummary, history: &[PastRun], complete: bool) -> Vec<Condition> {
    let export = &summary.export;
    let id = summary.run_id.as_str();
    let mut out = Vec::new();
    if spec.failed_run && (complete || !summary.succeeded) {
        out.push(if summary.succeeded {
            condition(
                AlertKind::FailedRun,
                false,
                format!("export {export} ran successfully"),
                format!("run {id} succeeded"),
                Some(id),
            )
        } else {
            let failed: Vec<&str> =
                summary.tables.iter().filter(|t| t.state != RunState::Succeeded).map(|t| t.table.as_str()).collect();
            condition(
                AlertKind::FailedRun,
                true,
                format!("export {export}'s run {id} failed ({})", failed.join(", ")),
                // Each failed table's own error: the summary's says only how many failed.
                match summary.tables.iter().filter_map(|t| t.error.as_deref()).collect::<Vec<_>>() {
                    errors if errors.is_empty() => {
                        summary.error.clone().unwrap_or_else(|| "a table's run failed".into())
                    }
                    errors => errors.join("; "),
                },
                Some(id),
            )
        });
    }
    // A backfill, or a run of some tables, is asked for by hand: whether it failed matters,
    // its rows and time say nothing of the export's runs.
    if !complete {
        return out;
    }
    if summary.succeeded {
        out.push(condition(
            AlertKind::Freshness,
            false,
            format!("export {export} is fresh again"),
            format!("run {id} succeeded"),
            Some(id),
        ));
    }
    // A failed run's time says nothing of speed (a source refusing at once is quick).
    if let (Some(limit), true) = (spec.slower_than, summary.succeeded) {
        let took = Duration::from_millis(summary.duration_ms);
        let firing = took > limit;
        out.push(condition(
            AlertKind::SlowRun,
            firing,
            if firing {
                format!("export {export}'s run {id} took {}", human(took))
            } else {
                format!("export {export}'s runs are within {} again", human(limit))
            },
            format!("run {id} took {}; slower_than is {}", human(took), human(limit)),
            Some(id),
        ));
    }
    let succeeded: Vec<&PastRun> = history.iter().filter(|r| r.succeeded).collect();
    if let (Some(n), true) = (spec.zero_rows, summary.succeeded) {
        let recent: Vec<&&PastRun> = succeeded.iter().take(n as usize).collect();
        let firing = recent.len() == n as usize && recent.iter().all(|r| r.rows == 0);
        if firing || summary.rows > 0 {
            out.push(condition(
                AlertKind::ZeroRows,
                firing,
                if firing {
                    format!("export {export} exported no row in its last {n} runs")
                } else {
                    format!("export {export} exports rows again")
                },
                if firing {
                    format!("runs {} to {id} each exported 0 rows; zero_rows is {n}", recent[n as usize - 1].run_id)
                } else {
                    format!("run {id} exported {} rows", summary.rows)
                },
                Some(id),
            ));
        }
    }
    if let (Some(band), true) = (spec.rows_band, summary.succeeded) {
        let earlier: Vec<u64> =
            succeeded.iter().filter(|r| r.run_id != id).take(band.runs as usize).map(|r| r.rows).collect();
        if earlier.len() >= 3 {
            let median = median(&earlier);
            let (low, high) = (median * (1.0 - band.share), median * (1.0 + band.share));
            let rows = summary.rows as f64;
            let firing = rows < low || rows > high;
            out.push(condition(
                AlertKind::RowsBand,
                firing,
                if firing {
                    format!("export {export}'s run {id} exported {} rows, outside {low:.0} to {high:.0}", summary.rows)
                } else {
                    format!("export {export}'s row counts are within the band again")
                },
                format!(
                    "the median of the {} runs before {id} is {median:.0} rows; rows_band is {} ({} rows)",
                    earlier.len(),
                    band.share,
                    summary.rows
                ),
                Some(id),
            ));
        }
    }
    if spec.late_rows && summary.succeeded {
        let late: Vec<String> = summary
            .tables
            .iter()
            .filter_map(|t| t.late_rows.as_ref().filter(|l| l.rows > 0).map(|l| (t, l)))
            .map(|(t, l)| format!("{} rows of table {} in run {}'s window", l.rows, t.table, l.run_id))
            .collect();
        let firing = !late.is_empty();
        out.push(condition(
            AlertKind::LateRows,
            firing,
            if firing {
                format!("export {export}'s run {id} found rows written after their window closed")
            } else {
                format!("export {export}'s run {id} found no late rows")
            },
            if firing {
                format!(
                    "{}: they were missed; `sluice backfill {export} -t <table> --from … --to …` exports them (docs/history.md#recovering-late-rows)",
                    late.join("; ")
                )
            } else {
                format!("run {id} counted its previous windows again and found nothing new")
            },
            Some(id),
        ));
    }
    out
}

/// What a finished delivery says: did the API reject more than the allowed share of rows.
pub fn after_delivery(spec: &AlertSpec, summary: &DeliverySummary) -> Option<Condition> {
    let share = spec.rejected_share?;
    // A replay of a failures file is a handful of rows sent again: no verdict on the table.
    if !summary.done || summary.rows == 0 || summary.manifest_key.contains("/failures/") {
        return None;
    }
    let rejected = summary.failed as f64 / summary.rows as f64;
    let firing = summary.failed > 0 && rejected > share;
    let (i, run) = (&summary.integration, &summary.run_id);
    Some(Condition {
        // One incident per integration and table: each table's manifest is its own delivery.
        key: format!("{}:{i}:{}", AlertKind::RejectedRows.as_str(), summary.table),
        kind: AlertKind::RejectedRows,
        firing,
        what: if firing {
            format!("integration {i} rejected {} of {} rows of run {run}", summary.failed, summary.rows)
        } else {
            format!("integration {i} delivers again")
        },
        why: if firing {
            format!(
                "{:.1}% rejected, above rejected_share {}; the rows are in {} (`sluice integrate {i} --retry-failures …` sends them again)",
                rejected * 100.0,
                share,
                summary.failures_key.as_deref().unwrap_or("the failures file")
            )
        } else {
            format!("run {run}: {} of {} rows delivered", summary.delivered, summary.rows)
        },
        run_id: Some(run.clone()),
        manifest: Some(summary.manifest_key.clone()),
    })
}

/// The longest an export may go without a success: `freshness`, or twice the longest interval
/// between its schedules' next runs.
pub fn freshness_limit(spec: &AlertSpec, schedules: &[String], now: DateTime<Utc>) -> Option<Duration> {
    match spec.freshness {
        Freshness::Off => None,
        Freshness::After(d) => Some(d),
        Freshness::FromSchedule => schedules.iter().filter_map(|s| longest_interval(s, now)).min().map(|d| d * 2),
    }
}

/// The longest gap between a schedule's runs over the coming eight days (a weekday cron's
/// weekend, an office-hours cron's night), or its next gap when it runs less often than that.
fn longest_interval(schedule: &str, now: DateTime<Utc>) -> Option<Duration> {
    let mut at = crate::schedule::next_after(schedule, now, now)?;
    let horizon = now + chrono::Duration::days(8);
    let mut longest = Duration::ZERO;
    for _ in 0..20_000 {
        let Some(next) = crate::schedule::next_after(schedule, now, at) else { break };
        longest = longest.max((next - at).to_std().unwrap_or_default());
        if next > horizon {
            break;
        }
        at = next;
    }
    (!longest.is_zero()).then_some(longest)
}

/// Whether an export whose last success (or, never having succeeded, whose watch) began at
/// `since` is stale at `now`.
pub fn stale(limit: Duration, since: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    (now - since).to_std().is_ok_and(|age| age > limit)
}

fn median(values: &[u64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_unstable();
    let mid = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) as f64 / 2.0
    } else {
        v[mid] as f64
    }
}

/// A duration as people write it: `1h 5m`, `42s`, `350ms`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        1..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::RowsBand;

    fn run(id: &str, rows: u64, ok: bool) -> PastRun {
        PastRun { run_id: id.into(), started_at: Utc::now(), finished_at: None, rows, succeeded: ok, tables: 1 }
    }

    #[test]
    fn a_runs_tables_are_one_run_and_partial_runs_are_left_out() {
        let record = |id: &str, table: &str, rows: u64, state: RunState, at: i64| RunRecord {
            export: "orders".into(),
            table: table.into(),
            run_id: id.into(),
            state,
            strategy: crate::strategy::Strategy::Full,
            full_refresh: false,
            window: Default::default(),
            base_watermark: None,
            rows,
            bytes: 0,
            parts: 0,
            null_rows: 0,
            prefix: String::new(),
            manifest_key: String::new(),
            // Each table starts on its own.
            started_at: chrono::DateTime::from_timestamp(at, 0).unwrap(),
            finished_at: None,
            error: None,
            changes: None,
            late_rows: 0,
            backfill: false,
        };
        let ok = RunState::Succeeded;
        let records = [
            record("r3", "a", 5, ok, 300),
            record("r2", "b", 0, RunState::Failed, 201),
            record("r2", "a", 500, ok, 200),
            record("r1", "b", 7, ok, 101),
            record("r1", "a", 3, ok, 100),
        ];
        let runs = past_runs(&records, 2);
        let seen: Vec<(&str, u64, bool)> = runs.iter().map(|r| (r.run_id.as_str(), r.rows, r.succeeded)).collect();
        assert_eq!(seen, [("r2", 500, false), ("r1", 10, true)], "r3 ran one table of two");
    }

    #[test]
    fn rejections_are_judged_per_table_and_a_replay_is_not_judged() {
        let mut d = DeliverySummary {
            version: 1,
            integration: "crm".into(),
            kind: "webhook".into(),
            export: "orders".into(),
            table: "contacts".into(),
            run_id: "r".into(),
            manifest_key: "orders/contacts/r/manifest.json".into(),
            rows: 10,
            delivered: 9,
            failed: 1,
            failures_key: None,
            done: true,
            requests: 1,
            retries: 0,
            started_at: Utc::now(),
            finished_at: Utc::now(),
            duration_ms: 1,
            error: None,
        };
        assert_eq!(after_delivery(&AlertSpec::default(), &d).unwrap().key, "rejected_rows:crm:contacts");
        d.manifest_key = "orders/contacts/r/failures/crm.jsonl".into();
        assert!(after_delivery(&AlertSpec::default(), &d).is_none());
    }

    fn summary(id: &str, rows: u64, ok: bool, ms: u64) -> ExportRunSummary {
        ExportRunSummary {
            version: 2,
            export: "orders".into(),
            run_id: id.into(),
            succeeded: ok,
            tables: vec![],
            rows,
            bytes: 0,
            parts: 0,
            started_at: Utc::now(),
            finished_at: Utc::now(),
            duration_ms: ms,
            error: (!ok).then(|| "boom".into()),
        }
    }

    fn after_run_all(spec: &AlertSpec, s: &ExportRunSummary, h: &[PastRun]) -> Vec<Condition> {
        after_run(spec, s, h, true)
    }

    #[test]
    fn a_partial_run_opens_a_failure_but_does_not_end_one() {
        let spec = AlertSpec::default();
        assert_eq!(firing(&after_run(&spec, &summary("r", 0, false, 1), &[], false), AlertKind::FailedRun), Some(true));
        assert_eq!(firing(&after_run(&spec, &summary("r", 0, true, 1), &[], false), AlertKind::FailedRun), None);
    }

    fn firing(c: &[Condition], kind: AlertKind) -> Option<bool> {
        c.iter().find(|c| c.kind == kind).map(|c| c.firing)
    }

    #[test]
    fn a_failed_run_fires_and_a_success_clears_it_and_freshness() {
        let spec = AlertSpec::default();
        let c = after_run_all(&spec, &summary("r2", 0, false, 10), &[run("r2", 0, false)]);
        assert_eq!(firing(&c, AlertKind::FailedRun), Some(true));
        assert_eq!(firing(&c, AlertKind::Freshness), None, "a failure says nothing of freshness");
        let c = after_run_all(&spec, &summary("r3", 5, true, 10), &[run("r3", 5, true)]);
        assert_eq!(firing(&c, AlertKind::FailedRun), Some(false));
        assert_eq!(firing(&c, AlertKind::Freshness), Some(false));
        assert_eq!(firing(&c, AlertKind::SlowRun), None, "off by default");
    }

    #[test]
    fn zero_rows_fires_only_after_n_empty_runs_in_a_row() {
        let spec = AlertSpec { zero_rows: Some(3), ..AlertSpec::default() };
        let two = [run("r3", 0, true), run("r2", 0, true), run("r1", 9, true)];
        assert_eq!(firing(&after_run_all(&spec, &summary("r3", 0, true, 1), &two), AlertKind::ZeroRows), None);
        let three = [run("r4", 0, true), run("r3", 0, true), run("r2", 0, true), run("r1", 9, true)];
        assert_eq!(firing(&after_run_all(&spec, &summary("r4", 0, true, 1), &three), AlertKind::ZeroRows), Some(true));
        let back = [run("r5", 4, true)];
        assert_eq!(firing(&after_run_all(&spec, &summary("r5", 4, true, 1), &back), AlertKind::ZeroRows), Some(false));
    }

    #[test]
    fn the_band_is_around_the_median_of_earlier_runs_and_needs_three() {
        let spec = AlertSpec { rows_band: Some(RowsBand { share: 0.5, runs: 10 }), ..AlertSpec::default() };
        let few = [run("r3", 1, true), run("r2", 100, true), run("r1", 100, true)];
        assert_eq!(firing(&after_run_all(&spec, &summary("r3", 1, true, 1), &few), AlertKind::RowsBand), None);
        let hist = [run("r5", 1, true), run("r4", 100, true), run("r3", 90, true), run("r2", 5000, true)];
        assert_eq!(firing(&after_run_all(&spec, &summary("r5", 1, true, 1), &hist), AlertKind::RowsBand), Some(true));
        assert_eq!(
            firing(&after_run_all(&spec, &summary("r5", 120, true, 1), &hist), AlertKind::RowsBand),
            Some(false)
        );
        assert_eq!(firing(&after_run_all(&spec, &summary("r5", 151, true, 1), &hist), AlertKind::RowsBand), Some(true));
    }

    #[test]
    fn slow_runs_and_rejections_compare_with_their_limits() {
        let spec = AlertSpec { slower_than: Some(Duration::from_secs(1)), ..AlertSpec::default() };
        assert_eq!(firing(&after_run_all(&spec, &summary("r", 0, true, 1001), &[]), AlertKind::SlowRun), Some(true));
        assert_eq!(
            firing(&after_run_all(&spec, &summary("r", 0, false, 1), &[]), AlertKind::SlowRun),
            None,
            "a quick failure"
        );
        assert_eq!(firing(&after_run_all(&spec, &summary("r", 0, true, 1000), &[]), AlertKind::SlowRun), Some(false));
        let d = |failed, done| DeliverySummary {
            version: 1,
            integration: "crm".into(),
            kind: "webhook".into(),
            export: "orders".into(),
            table: "t".into(),
            run_id: "r".into(),
            manifest_key: "m".into(),
            rows: 100,
            delivered: 100 - failed,
            failed,
            failures_key: None,
            done,
            requests: 1,
            retries: 0,
            started_at: Utc::now(),
            finished_at: Utc::now(),
            duration_ms: 1,
            error: None,
        };
        let spec = AlertSpec::default();
        assert!(after_delivery(&spec, &d(1, true)).unwrap().firing, "any rejected row by default");
        assert!(!after_delivery(&spec, &d(0, true)).unwrap().firing);
        assert!(after_delivery(&spec, &d(1, false)).is_none(), "an unfinished delivery has no verdict");
        let tolerant = AlertSpec { rejected_share: Some(0.05), ..spec };
        assert!(!after_delivery(&tolerant, &d(5, true)).unwrap().firing);
        assert!(after_delivery(&tolerant, &d(6, true)).unwrap().firing);
    }

    #[test]
    fn freshness_defaults_to_twice_the_longest_interval_of_the_schedule() {
        let now = "2026-11-27T12:00:00Z".parse().unwrap();
        let spec = AlertSpec::default();
        assert_eq!(freshness_limit(&spec, &["rate(15 minutes)".into()], now), Some(Duration::from_secs(1800)));
        // Weekdays at 06:00: the weekend's gap is three days.
        let weekdays = ["cron(0 6 ? * MON-FRI *)".to_string()];
        assert_eq!(freshness_limit(&spec, &weekdays, now), Some(Duration::from_secs(6 * 86_400)));
        // Hourly on weekdays, asked on a Saturday: the weekend still counts.
        let saturday = "2026-11-28T12:00:00Z".parse().unwrap();
        let hourly = ["cron(0 * ? * MON-FRI *)".to_string()];
        assert_eq!(freshness_limit(&spec, &hourly, saturday), Some(Duration::from_secs(2 * 49 * 3600)));
        assert_eq!(freshness_limit(&spec, &[], now), None, "no schedule, no expectation");
        let off = AlertSpec { freshness: Freshness::Off, ..AlertSpec::default() };
        assert_eq!(freshness_limit(&off, &["rate(1 hour)".into()], now), None);
    }
}
