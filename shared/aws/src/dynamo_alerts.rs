//! Alert records in the history table: one item per export and alert (`pk = ALERTS#<export>`,
//! `sk = ALERT#<key>`), saved with a condition on the revision read, so of two processes seeing the
//! same change exactly one saves (and announces) it. Alert items never expire: an open incident
//! stays open until something resolves it.

use async_trait::async_trait;
use std::collections::HashMap;

use sluice_core::ports::{AlertRecord, AlertStore};
use sluice_core::HistoryError;

use crate::dynamo_history::{n, s, DynamoHistory};

fn pk(export: &str) -> aws_sdk_dynamodb::types::AttributeValue {
    s(format!("ALERTS#{export}"))
}

#[async_trait]
impl AlertStore for DynamoHistory {
    async fn alerts(&self, export: &str) -> Result<Vec<AlertRecord>, HistoryError> {
        let items = self.query_partition(pk(export), "ALERT#", false, None).await?;
        items
            .iter()
            .map(|i| {
                serde_json::from_str(&self.text(i, "record")?).map_err(|e| self.corrupt(format!("alert record: {e}")))
            })
            .collect()
    }

    async fn save_alert(&self, record: &AlertRecord, expected: u64) -> Result<(), HistoryError> {
        let json = serde_json::to_string(record).map_err(|e| self.corrupt(e.to_string()))?;
        let item = HashMap::from([
            ("pk".to_string(), pk(&record.export)),
            ("sk".to_string(), s(format!("ALERT#{}", record.key))),
            ("revision".to_string(), n(record.revision as i64)),
            ("record".to_string(), s(json)),
        ]);
        let put = self.client.put_item().table_name(&self.table).set_item(Some(item));
        let put = if expected == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("revision = :expected")
                .expression_attribute_values(":expected", n(expected as i64))
        };
        match put.send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                Err(HistoryError::Stale { found: expected + 1, by: "another process".into() })
            }
            Err(e) => Err(self.err("PutItem", e)),
        }
    }
}
