//! HubSpot's contact upserts and how their answers are read.

use crate::error::Invalid;
use serde_json::{json, Map, Value};

use super::spec::HubspotSpec;
use crate::integrate::api::{by_status, Answer, Api, Batch, HttpRequest, HttpResponse, Operations, Outgoing, Required};

/// HubSpot's batch upsert of contacts (`POST /crm/v3/objects/contacts/batch/upsert`), matched on
/// `id_property`. Each input carries `objectWriteTraceId` = the record's index, which HubSpot
/// echoes in results and in a 207's errors (`context.objectWriteTraceId`): that is how a
/// per-record error finds its record. Property values are sent as strings, as HubSpot expects.
pub struct HubspotContacts(pub HubspotSpec);

fn as_text(v: &Value) -> String {
    crate::integrate::mapping::text_of(v).into_owned()
}

impl Api for HubspotContacts {
    fn operations(&self) -> Operations {
        Operations::UpsertOnly {
            delete_refused: "a delete (_sluice_op = \"delete\"): HubSpot contact updates do not delete contacts; \
                 act on it in HubSpot (archive the contact) or leave deletes = false on the table",
        }
    }

    fn required_property(&self) -> Option<Required<'_>> {
        Some(Required {
            property: &self.0.id_property,
            matches: "contacts",
            hint: "map a column to it in properties, or set id_property",
        })
    }

    fn check(&self, record: &Outgoing) -> Result<(), Invalid> {
        match record.properties.get(&self.0.id_property) {
            Some(v) if !as_text(v).trim().is_empty() && !v.is_null() => Ok(()),
            _ => Err(format!("no {} to match the contact on", self.0.id_property).into()),
        }
    }

    fn request(&self, batch: &Batch, token: Option<&str>) -> HttpRequest {
        let inputs: Vec<Value> = batch
            .records
            .iter()
            .map(|r| {
                let props: Map<String, Value> =
                    r.properties.iter().map(|(k, v)| (k.to_string(), Value::String(as_text(v)))).collect();
                json!({
                    "idProperty": self.0.id_property,
                    "id": r.properties.get(&self.0.id_property).map(as_text).unwrap_or_default(),
                    "properties": props,
                    "objectWriteTraceId": r.index.to_string(),
                })
            })
            .collect();
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        if let Some(t) = token {
            headers.push(("authorization".into(), format!("Bearer {t}")));
        }
        HttpRequest {
            method: "POST".into(),
            url: format!("{}/crm/v3/objects/contacts/batch/upsert", self.0.endpoint),
            headers,
            body: serde_json::to_vec(&json!({ "inputs": inputs })).unwrap_or_default(),
        }
    }

    fn answer(&self, batch: &Batch, response: &HttpResponse) -> Answer {
        let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        if response.status == 429 && body.get("policyName").and_then(Value::as_str) == Some("DAILY") {
            return Answer::Fatal {
                status: 429,
                message: format!("HubSpot's daily API limit is reached; delivery resumes when the event is retried after it resets: {}", response.excerpt()),
            };
        }
        if let Some(a) = by_status(response) {
            return a;
        }
        let position = |trace: &str| batch.records.iter().position(|r| r.index.to_string() == trace);
        let mut answered = vec![false; batch.records.len()];
        for r in body.get("results").and_then(Value::as_array).into_iter().flatten() {
            if let Some(i) = r.get("objectWriteTraceId").and_then(Value::as_str).and_then(position) {
                answered[i] = true;
            }
        }
        let mut rejected = Vec::new();
        let mut unplaced = None;
        for e in body.get("errors").and_then(Value::as_array).into_iter().flatten() {
            let why = format!(
                "{}: {}",
                e.get("category").and_then(Value::as_str).unwrap_or("ERROR"),
                e.get("message").and_then(Value::as_str).unwrap_or("no message")
            );
            let traces = e.pointer("/context/objectWriteTraceId").and_then(Value::as_array);
            let mut placed = false;
            for i in traces.into_iter().flatten().filter_map(Value::as_str).filter_map(position) {
                if !answered[i] {
                    answered[i] = true;
                    rejected.push((i, why.clone()));
                }
                placed = true;
            }
            if !placed {
                unplaced.get_or_insert(why);
            }
        }
        // Inputs with neither a result nor an error of their own: with a 207 they are the ones
        // an unplaced error was about; with a plain 200 and no results listing, all succeeded.
        let listed = body.get("results").is_some() || response.status == 207;
        if listed {
            for (i, done) in answered.iter().enumerate() {
                if !done {
                    let why = unplaced.clone().unwrap_or_else(|| "HubSpot returned no result for this input".into());
                    rejected.push((i, why));
                }
            }
        }
        rejected.sort_by_key(|(i, _)| *i);
        Answer::Accepted { rejected }
    }
}
