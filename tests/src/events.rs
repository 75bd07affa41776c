//! The `EventSink` contract: what a sink publishes arrives as an EventBridge consumer sees it:
//! `source` `"sluice"`, the `detail-type`, and the summary whole as its `detail`. It runs on the
//! local event log, on EventBridge (moto, through a rule to a queue) and in memory.

use futures::future::BoxFuture;
use serde_json::Value;

use sluice_core::ports::{DeliverySummary, EventDetail, EventSink, ExportRunSummary, RunEvent, RunState, TableOutcome};
use sluice_core::strategy::Strategy;

fn export_summary() -> ExportRunSummary {
    let now = chrono::Utc::now();
    ExportRunSummary {
        version: 1,
        export: "contract".into(),
        run_id: "20260101T000000Z-0123abcd".into(),
        succeeded: true,
        tables: vec![TableOutcome {
            table: "contacts".into(),
            strategy: Strategy::Timestamp,
            state: RunState::Succeeded,
            window: Default::default(),
            rows: 3,
            bytes: 42,
            parts: 1,
            null_rows: 0,
            manifest_key: Some("contract/contacts/20260101T000000Z-0123abcd/manifest.json".into()),
            error: None,
            changes: None,
            added_columns: vec![],
            late_rows: None,
            backfill: false,
        }],
        rows: 3,
        bytes: 42,
        parts: 1,
        started_at: now,
        finished_at: now,
        duration_ms: 5,
        error: None,
    }
}

fn delivery_summary() -> DeliverySummary {
    let now = chrono::Utc::now();
    DeliverySummary {
        version: 1,
        integration: "crm".into(),
        kind: "webhook".into(),
        export: "contract".into(),
        table: "contacts".into(),
        run_id: "20260101T000000Z-0123abcd".into(),
        manifest_key: "contract/contacts/20260101T000000Z-0123abcd/manifest.json".into(),
        rows: 3,
        delivered: 2,
        failed: 1,
        failures_key: Some("contract/contacts/20260101T000000Z-0123abcd/failures/crm.jsonl".into()),
        done: true,
        requests: 1,
        retries: 0,
        started_at: now,
        finished_at: now,
        duration_ms: 7,
        error: Some("1 record refused".into()),
    }
}

/// The contract, on a fresh `sink` whose published entries `received` returns (waiting for
/// both, for sinks that deliver asynchronously).
pub async fn check_contract<'a>(sink: &dyn EventSink, received: &'a dyn Fn() -> BoxFuture<'a, Vec<Value>>) {
    let export = export_summary();
    let delivery = delivery_summary();
    sink.publish(&RunEvent { detail_type: "ExportSucceeded".into(), detail: EventDetail::Export(export.clone()) })
        .await
        .expect("an export's event is published");
    sink.publish(&RunEvent {
        detail_type: "IntegrationFailed".into(),
        detail: EventDetail::Integration(delivery.clone()),
    })
    .await
    .expect("a delivery's event is published");

    let entries = received().await;
    let find = |kind: &str| {
        entries
            .iter()
            .find(|e| e["detail-type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} event among {entries:?}"))
            .clone()
    };
    for (kind, detail) in [
        ("ExportSucceeded", serde_json::to_value(&export).unwrap()),
        ("IntegrationFailed", serde_json::to_value(&delivery).unwrap()),
    ] {
        let entry = find(kind);
        assert_eq!(entry["source"], "sluice", "{kind}: the source consumers match on");
        assert_eq!(entry["detail"], detail, "{kind}: the summary arrives whole");
    }
    let back: ExportRunSummary = serde_json::from_value(find("ExportSucceeded")["detail"].clone()).unwrap();
    assert_eq!(back, export, "a consumer reads the summary back as it was");
}
