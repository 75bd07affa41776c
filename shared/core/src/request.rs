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
    /// Export one table's bounded window again, outside the chain (see `run::Backfill`).
    #[serde(default)]
    pub backfill: Option<crate::run::Backfill>,
    /// Move one table's cursor instead of running (see `cursor`).
    #[serde(default)]
    pub move_cursor: Option<MoveCursor>,
    /// Verify the export's destination and history instead of running (see `verify`).
    #[serde(default)]
    pub verify: Option<VerifyRequest>,
}

/// A cursor move asked of the export function: `to_run` or `to` (a move back), or `to` with
/// `skip` (a move forward).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveCursor {
    pub table: String,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub to_run: Option<String>,
    #[serde(default)]
    pub skip: bool,
    #[serde(default)]
    pub by: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// A verification asked of the export function.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    #[serde(default)]
    pub table: Option<String>,
    #[serde(default)]
    pub since: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("the event names no export: send {{\"export\": \"<name>\"}} directly, or set it as the schedule's input or in the event's detail")]
    NoExport,
    #[error("the event's request is malformed: {0}; expected {{\"export\": \"<name>\", \"full_refresh\": false, \"tables\": [\"…\"]}}")]
    Malformed(String),
    #[error("the request asks for {0}: ask for one at a time")]
    Several(String),
}

/// Whether the payload asks for the freshness check of every export (`{"check_alerts": true}`,
/// the stack's alerts rule) instead of a run; anything else beside it is refused.
pub fn is_alerts_check(event: &serde_json::Value) -> Result<bool, RequestError> {
    match event.get("check_alerts") {
        None => Ok(false),
        Some(serde_json::Value::Bool(true)) if event.as_object().is_some_and(|o| o.len() == 1) => Ok(true),
        Some(_) => Err(RequestError::Malformed(
            "check_alerts takes true, alone: {\"check_alerts\": true} checks every export's freshness".into(),
        )),
    }
}

impl ExportRequest {
    /// Reads a request from an invocation's payload.
    pub fn from_event(event: &serde_json::Value) -> Result<ExportRequest, RequestError> {
        let parse = |v: &serde_json::Value| {
            serde_json::from_value::<ExportRequest>(v.clone()).map_err(|e| RequestError::Malformed(e.to_string()))
        };
        let one = |r: ExportRequest| {
            let asked: Vec<&str> = [
                ("backfill", r.backfill.is_some()),
                ("move_cursor", r.move_cursor.is_some()),
                ("verify", r.verify.is_some()),
                ("full_refresh", r.full_refresh),
                ("tables", r.tables.is_some() && (r.backfill.is_some() || r.move_cursor.is_some())),
            ]
            .iter()
            .filter(|(_, on)| *on)
            .map(|(k, _)| *k)
            .collect();
            match asked.len() {
                0 | 1 => Ok(r),
                _ => Err(RequestError::Several(asked.join(" and "))),
            }
        };
        if event.get("export").is_some() {
            return parse(event).and_then(one);
        }
        // An EventBridge event: the request is its detail (a scheduled rule's event has an
        // empty detail; its constant input replaces the whole event and lands above).
        match event.get("detail") {
            Some(detail) if detail.get("export").is_some() => parse(detail).and_then(one),
            _ => Err(RequestError::NoExport),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_alerts_check_is_asked_for_alone() {
        assert!(is_alerts_check(&json!({"check_alerts": true})).unwrap());
        assert!(!is_alerts_check(&json!({"export": "crm"})).unwrap());
        assert!(is_alerts_check(&json!({"check_alerts": true, "export": "crm"})).is_err());
        assert!(is_alerts_check(&json!({"check_alerts": "yes"})).is_err());
    }

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
                orchestration: None,
                backfill: None,
                move_cursor: None,
                verify: None,
            }
        );
    }

    #[test]
    fn a_backfill_a_cursor_move_or_a_verification_is_asked_one_at_a_time() {
        let b = json!({"export": "crm", "backfill": {"table": "contacts", "from": "2026-01-01", "to": "2026-01-02"}});
        let r = ExportRequest::from_event(&b).unwrap();
        assert_eq!(r.backfill.unwrap().by, "the export function's caller");
        let m = json!({"export": "crm", "move_cursor": {"table": "contacts", "to_run": "20260101T000000Z-00000000"}});
        assert_eq!(
            ExportRequest::from_event(&m).unwrap().move_cursor.unwrap().to_run.as_deref(),
            Some("20260101T000000Z-00000000")
        );
        let v = json!({"export": "crm", "verify": {}});
        assert_eq!(ExportRequest::from_event(&v).unwrap().verify, Some(VerifyRequest::default()));
        let both = json!({"export": "crm", "verify": {}, "full_refresh": true});
        let e = ExportRequest::from_event(&both).unwrap_err();
        assert_eq!(e.to_string(), "the request asks for verify and full_refresh: ask for one at a time");
        let typo = json!({"export": "crm", "backfill": {"table": "t", "from": "a", "too": "b"}});
        assert!(matches!(ExportRequest::from_event(&typo), Err(RequestError::Malformed(_))));
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
