//! The `AlertStore` contract, and alerts settled on top of it, run against every store (the
//! history file, and DynamoDB on moto): a save is conditioned on the revision read (of
//! concurrent saves from one revision exactly one lands), and an alert is announced once when it
//! opens and once when it resolves, however many processes see the change at once.

use chrono::{Duration as Span, Utc};
use std::path::Path;

use sluice_core::alert::{Watch, Watched};
use sluice_core::ports::{AlertRecord, AlertState, AlertStore, ExportRunSummary, HistoryStore, RunState, TableOutcome};
use sluice_core::spec::Config;
use sluice_core::strategy::Strategy;
use sluice_core::HistoryError;

use crate::memory::MemoryEvents;

fn record(export: &str, key: &str, state: AlertState, revision: u64) -> AlertRecord {
    AlertRecord {
        export: export.into(),
        key: key.into(),
        state,
        since: Utc::now(),
        resolved_at: None,
        what: format!("{key} of {export}"),
        why: "a test".into(),
        run_id: Some("20261130T000000Z-abc".into()),
        manifest: None,
        revision,
    }
}

/// The config the alert scenarios run: one export on a 15-minute schedule, failing once.
pub fn config(dir: &Path) -> Config {
    let text = "version = 1\n\n[sources.db]\nkind = \"sqlite\"\npath = \"source.db\"\n\n\
                [[export]]\nname = \"orders\"\nsource = \"db\"\ndestination = \"out\"\nschedule = \"rate(15 minutes)\"\n\
                [[export.table]]\nname = \"orders\"\nincremental = { strategy = \"full\" }\n";
    Config::parse(&dir.join("sluice.toml"), text, sluice_local::KINDS).expect("the alerts config is valid")
}

/// A finished run's summary, failed or not.
pub fn summary(run_id: &str, succeeded: bool) -> ExportRunSummary {
    let mut table = TableOutcome::failed("orders", Strategy::Full, "the source is gone".into());
    if succeeded {
        table.state = RunState::Succeeded;
        table.error = None;
        table.manifest_key = Some(format!("orders/orders/{run_id}/_manifest.json"));
    }
    ExportRunSummary {
        version: 2,
        export: "orders".into(),
        run_id: run_id.into(),
        succeeded,
        tables: vec![table],
        rows: 0,
        bytes: 0,
        parts: 0,
        started_at: Utc::now(),
        finished_at: Utc::now(),
        duration_ms: 5,
        error: (!succeeded).then(|| "table orders: the source is gone".into()),
    }
}

pub async fn check_contract<S: AlertStore + HistoryStore>(store: &S, dir: &Path) {
    // The port: a first save needs revision 0, each later one the revision it read.
    assert!(store.alerts("first").await.unwrap().is_empty());
    store.save_alert(&record("first", "failed_run", AlertState::Firing, 1), 0).await.unwrap();
    let again = store.save_alert(&record("first", "failed_run", AlertState::Firing, 1), 0).await;
    assert!(matches!(again, Err(HistoryError::Stale { .. })), "a second first save is stale: {again:?}");
    let wrong = store.save_alert(&record("first", "failed_run", AlertState::Resolved, 3), 2).await;
    assert!(matches!(wrong, Err(HistoryError::Stale { .. })), "a save from a revision never read is stale");
    store.save_alert(&record("first", "failed_run", AlertState::Resolved, 2), 1).await.unwrap();
    store.save_alert(&record("first", "freshness", AlertState::Watching, 1), 0).await.unwrap();
    store.save_alert(&record("other", "failed_run", AlertState::Firing, 1), 0).await.unwrap();
    let saved = store.alerts("first").await.unwrap();
    let keys: Vec<(&str, AlertState, u64)> = saved.iter().map(|r| (r.key.as_str(), r.state, r.revision)).collect();
    assert_eq!(keys, [("failed_run", AlertState::Resolved, 2), ("freshness", AlertState::Watching, 1)]);
    assert_eq!(saved[0].run_id.as_deref(), Some("20261130T000000Z-abc"), "the record comes back whole");

    // Concurrent saves from one revision: exactly one lands.
    let race = record("race", "k", AlertState::Firing, 1);
    let tries = futures::future::join_all((0..4).map(|_| store.save_alert(&race, 0))).await;
    assert_eq!(tries.iter().filter(|r| r.is_ok()).count(), 1, "{tries:?}");

    // Alerts on top: a failed run fires once, however many see it at once; a success resolves.
    let config = config(dir);
    let export = config.export("orders").unwrap();
    let target = Watched::of(export);
    let events = MemoryEvents::new();
    let watch = Watch { history: store, alerts: store, events: &events, notify: None };
    let failed = summary("20261130T010000Z-aaa", false);
    let announced = futures::future::join_all((0..4).map(|_| watch.after_run(&target, &failed))).await;
    let opened: usize = announced.iter().map(|a| a.as_ref().unwrap().len()).sum();
    assert_eq!(opened, 1, "one announcement of a failed run seen four times at once: {announced:?}");
    assert!(watch.after_run(&target, &summary("20261130T011500Z-bbb", false)).await.unwrap().is_empty());
    let sent = events.entries();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["detail-type"], "ExportAlert");
    assert_eq!(sent[0]["detail"]["alert"], "failed_run");
    assert_eq!(sent[0]["detail"]["status"], "firing");
    assert_eq!(sent[0]["detail"]["run_id"], "20261130T010000Z-aaa");
    assert!(sent[0]["detail"]["why"].as_str().unwrap().contains("the source is gone"), "{}", sent[0]);
    // Turned off while open: the next run resolves it, saying why; turned on again, it opens.
    let mut off = target.clone();
    off.export.alerts.failed_run = false;
    let closed = watch.after_run(&off, &summary("20261130T011600Z-off", false)).await.unwrap();
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_eq!((closed[0].key.as_str(), closed[0].status), ("failed_run", AlertState::Resolved));
    assert!(closed[0].why.contains("turned off"), "{}", closed[0].why);
    let reopened = watch.after_run(&target, &summary("20261130T011700Z-on", false)).await.unwrap();
    assert_eq!(reopened.len(), 1);
    let sent = events.entries().len();
    assert_eq!(sent, 3);
    let resolved = watch.after_run(&target, &summary("20261130T013000Z-ccc", true)).await.unwrap();
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].status, AlertState::Resolved);
    assert_eq!(resolved[0].run_id.as_deref(), Some("20261130T013000Z-ccc"));
    assert_eq!(
        resolved[0].manifest.as_deref().map(|m| m.ends_with("out/orders/orders/20261130T013000Z-ccc/_manifest.json")),
        Some(true),
        "the pointer is the manifest where the export's files are: {:?}",
        resolved[0].manifest
    );
    assert!(watch.after_run(&target, &summary("20261130T014500Z-ddd", true)).await.unwrap().is_empty());

    // Freshness of an export that never ran: the first check starts the clock, announcing
    // nothing; past twice the schedule's interval it fires once, and stays open.
    let never = store.alerts("orders").await.unwrap();
    assert!(never.iter().all(|r| r.key != "freshness"));
    let now = Utc::now();
    assert!(watch.check(&target, now).await.unwrap().is_empty());
    let watching = store.alerts("orders").await.unwrap();
    assert_eq!(watching.iter().find(|r| r.key == "freshness").map(|r| r.state), Some(AlertState::Watching));
    assert!(watch.check(&target, now + Span::minutes(29)).await.unwrap().is_empty(), "within twice 15 minutes");
    let stale = futures::future::join_all((0..3).map(|_| watch.check(&target, now + Span::minutes(31)))).await;
    let fired: Vec<_> = stale.into_iter().flat_map(Result::unwrap).collect();
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!((fired[0].key.as_str(), fired[0].status), ("freshness", AlertState::Firing));
    assert!(watch.check(&target, now + Span::minutes(60)).await.unwrap().is_empty(), "an open incident stays quiet");
    // A paused export (or one without a schedule) is never stale.
    let mut paused = export.clone();
    paused.state = sluice_core::spec::ExportState::Paused;
    let quiet = Watch { history: store, alerts: store, events: &events, notify: None };
    assert!(quiet.check(&Watched::of(&paused), now + Span::days(3)).await.unwrap().is_empty());
}
