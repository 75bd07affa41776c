//! CloudWatch Embedded Metric Format: one JSON log line per run carries its metrics, so a
//! function publishes rows, bytes, parts and duration without an extra API call.

use sluice_core::run::ExportRunSummary;

/// The namespace Sluice's metrics land in.
pub const NAMESPACE: &str = "Sluice";

/// The EMF line for a finished run, dimensioned by export.
pub fn emf_line(summary: &ExportRunSummary) -> String {
    serde_json::json!({
        "_aws": {
            "Timestamp": summary.finished_at.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Export"]],
                "Metrics": [
                    {"Name": "Rows", "Unit": "Count"},
                    {"Name": "Bytes", "Unit": "Bytes"},
                    {"Name": "Parts", "Unit": "Count"},
                    {"Name": "DurationMs", "Unit": "Milliseconds"},
                    {"Name": "FailedRuns", "Unit": "Count"},
                    {"Name": "LateRows", "Unit": "Count"}
                ]
            }]
        },
        "Export": summary.export,
        "RunId": summary.run_id,
        "Rows": summary.rows,
        "Bytes": summary.bytes,
        "Parts": summary.parts,
        "DurationMs": summary.duration_ms,
        "FailedRuns": u32::from(!summary.succeeded),
        // Rows found in committed windows after they closed: missed, to backfill.
        "LateRows": summary.tables.iter().filter_map(|t| t.late_rows.as_ref()).map(|l| l.rows).sum::<u64>()
    })
    .to_string()
}

/// The EMF line of an integration's sweep: how long the oldest committed manifest it has not
/// delivered has waited (0 when none), and how many wait. The stack's alarm watches the age.
pub fn undelivered_emf_line(integration: &str, oldest_age_s: i64, count: usize) -> String {
    serde_json::json!({
        "_aws": {
            "Timestamp": chrono::Utc::now().timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Integration"]],
                "Metrics": [
                    {"Name": "UndeliveredAgeSeconds", "Unit": "Seconds"},
                    {"Name": "Undelivered", "Unit": "Count"}
                ]
            }]
        },
        "Integration": integration,
        "UndeliveredAgeSeconds": oldest_age_s,
        "Undelivered": count
    })
    .to_string()
}
