//! The EventBridge event sink: `ExportSucceeded` / `ExportFailed` with the run summary as the
//! detail, source `sluice`, on a configurable bus. A 200 whose entry failed is a failure, and a
//! summary too large for one entry is cut down (per-table details dropped) rather than lost.

use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;

use sluice_core::ports::{EventDetail, EventSink, RunEvent};
use sluice_core::BoxError;

use crate::error::{boxed, Error};

/// The event source every Sluice event carries.
pub const EVENT_SOURCE: &str = "sluice";
/// EventBridge's limit on one PutEvents entry (source, detail type and detail together).
pub const MAX_ENTRY_BYTES: usize = 256 * 1024;

pub struct EventBridgeSink {
    client: Client,
    bus: String,
}

impl EventBridgeSink {
    /// A sink on the named bus (`default` for the account's default bus).
    pub fn new(client: Client, bus: &str) -> Self {
        EventBridgeSink { client, bus: bus.to_string() }
    }
}

/// The detail as JSON, within the entry limit: when the summary is too large (thousands of
/// tables), per-table outcomes are replaced by their count and `tables_truncated: true`.
pub fn detail_within_limit(event: &RunEvent) -> Result<String, serde_json::Error> {
    let budget = MAX_ENTRY_BYTES - EVENT_SOURCE.len() - event.detail_type.len();
    let detail = serde_json::to_string(&event.detail)?;
    if detail.len() <= budget {
        return Ok(detail);
    }
    let mut value = serde_json::to_value(&event.detail)?;
    if let EventDetail::Integration(_) | EventDetail::Alert(_) = &event.detail {
        // Counts and keys are small; only the error can be long.
        if let Some(err) = value["error"].as_str() {
            let cut: String = err.chars().take(4096).collect();
            value["error"] = cut.into();
        }
        return serde_json::to_string(&value);
    }
    let count = value["tables"].as_array().map_or(0, Vec::len);
    value["tables"] = serde_json::Value::Array(Vec::new());
    value["table_count"] = count.into();
    value["tables_truncated"] = true.into();
    if let Some(err) = value["error"].as_str() {
        let cut: String = err.chars().take(4096).collect();
        value["error"] = cut.into();
    }
    serde_json::to_string(&value)
}

#[async_trait]
impl EventSink for EventBridgeSink {
    async fn publish(&self, event: &RunEvent) -> Result<(), BoxError> {
        let detail = detail_within_limit(event)?;
        let entry = PutEventsRequestEntry::builder()
            .source(EVENT_SOURCE)
            .detail_type(&event.detail_type)
            .detail(detail)
            .event_bus_name(&self.bus)
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| Error::Events { bus: self.bus.clone(), source: boxed(e) })?;
        if out.failed_entry_count() > 0 {
            let first = out.entries().iter().find(|e| e.error_code().is_some());
            return Err(Error::EventRejected {
                bus: self.bus.clone(),
                code: first.and_then(|e| e.error_code()).unwrap_or("unknown").to_string(),
                message: first.and_then(|e| e.error_message()).unwrap_or("").to_string(),
            }
            .into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::run::{ExportRunSummary, TableOutcome};

    fn event(tables: usize) -> RunEvent {
        let outcome = |i: usize| {
            TableOutcome::failed(
                &format!("schema_{i}.a_rather_long_table_name_{i}"),
                sluice_core::strategy::Strategy::Timestamp,
                "x".repeat(200),
            )
        };
        let now = chrono::Utc::now();
        RunEvent {
            detail_type: "ExportFailed".into(),
            detail: EventDetail::Export(ExportRunSummary {
                version: 1,
                export: "e".into(),
                run_id: "r".into(),
                succeeded: false,
                tables: (0..tables).map(outcome).collect(),
                rows: 0,
                bytes: 0,
                parts: 0,
                started_at: now,
                finished_at: now,
                duration_ms: 1,
                error: Some("y".repeat(10_000)),
            }),
        }
    }

    #[test]
    fn a_small_summary_is_sent_whole() {
        let detail: serde_json::Value = serde_json::from_str(&detail_within_limit(&event(3)).unwrap()).unwrap();
        assert_eq!(detail["tables"].as_array().unwrap().len(), 3);
        assert!(detail.get("tables_truncated").is_none());
    }

    #[test]
    fn a_summary_over_the_entry_limit_drops_its_table_list_but_keeps_the_counts() {
        let e = event(2_000);
        assert!(serde_json::to_string(&e.detail).unwrap().len() > MAX_ENTRY_BYTES);
        let detail = detail_within_limit(&e).unwrap();
        assert!(detail.len() + EVENT_SOURCE.len() + e.detail_type.len() <= MAX_ENTRY_BYTES);
        let v: serde_json::Value = serde_json::from_str(&detail).unwrap();
        assert_eq!(v["tables_truncated"], true);
        assert_eq!(v["table_count"], 2_000);
        assert_eq!(v["error"].as_str().unwrap().len(), 4096);
    }
}
