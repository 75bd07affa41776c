//! What a run was asked for, whoever asked: an EventBridge schedule (the export named in the
//! rule's constant input, or in the event's `detail`) or a direct invocation
//! (`{"export": …, "full_refresh": false, "tables": […]}`).

use serde::Deserialize;

/// One export run to do.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    pub export: String,
    #[serde(default)]
    pub full_refresh: bool,
    /// Only these tables; all when absent.
    #[serde(default)]
    pub tables: Option<Vec<String>>,
    /// Set by an orchestration's rule: the run is skipped unless the orchestration and the
    /// export are running (see `sluice_core::orchestrate`).
    #[serde(default)]
    pub orchestration: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("the event names no export: send {{\"export\": \"<name>\"}} directly, or set it as the schedule's input or in the event's detail")]
    NoExport,
    #[error("the event's request is malformed: {0}; expected {{\"export\": \"<name>\", \"full_refresh\": false, \"tables\": [\"…\"]}}")]
    Malformed(String),
}

impl ExportRequest {
    /// Reads a request from an invocation's payload.
    pub fn from_event(event: &serde_json::Value) -> Result<ExportRequest, RequestError> {
        let parse = |v: &serde_json::Value| {
            serde_json::from_value::<ExportRequest>(v.clone()).map_err(|e| RequestError::Malformed(e.to_string()))
        };
        if event.get("export").is_some() {
            return parse(event);
        }
        // An EventBridge event: the request is its detail (a scheduled rule's event has an
        // empty detail; its constant input replaces the whole event and lands above).
        match event.get("detail") {
            Some(detail) if detail.get("export").is_some() => parse(detail),
            _ => Err(RequestError::NoExport),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn direct_invocations_and_schedule_inputs_name_the_export_at_the_top() {
        let r =
            ExportRequest::from_event(&json!({"export": "crm", "full_refresh": true, "tables": ["contacts"]})).unwrap();
        assert_eq!(
            r,
            ExportRequest {
                export: "crm".into(),
                full_refresh: true,
                tables: Some(vec!["contacts".into()]),
                orchestration: None
            }
        );
    }

    #[test]
    fn eventbridge_events_name_it_in_their_detail() {
        let e = json!({"version": "0", "detail-type": "Run Export", "source": "custom", "detail": {"export": "crm"}});
        assert_eq!(ExportRequest::from_event(&e).unwrap().export, "crm");
    }

    #[test]
    fn a_scheduled_event_without_input_or_a_typo_is_a_clear_error() {
        let scheduled = json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
        assert_eq!(ExportRequest::from_event(&scheduled), Err(RequestError::NoExport));
        let typo = ExportRequest::from_event(&json!({"export": "crm", "full_refrsh": true})).unwrap_err();
        assert!(typo.to_string().contains("full_refrsh"), "{typo}");
        assert!(ExportRequest::from_event(&json!("crm")).is_err());
    }
}
