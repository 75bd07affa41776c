//! `sluice migrate`: moves a history table written by Sluice before 0.2 to this version's
//! layout. Two things changed:
//!
//! - managed exports' definitions and audit records moved from `EXPORT#<name>` to their own
//!   partition `CATALOG#<name>` (so the control functions' IAM can be limited to the catalog);
//! - an open run has a marker (`OPEN#…`) beside its record, so finding open runs does not read
//!   the whole run history.
//!
//! One scan of the table. Each item is copied only where its new key is free, and the old one
//! deleted after its copy landed, so running it again (or after an interruption) finishes the
//! job and changes nothing more. Run it with credentials that may write every partition.

use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem};
use std::collections::HashMap;

use sluice_core::ports::{RunRecord, RunState};
use sluice_core::HistoryError;

use crate::dynamo_history::{s, DynamoHistory, Item};

/// What one migration did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Migration {
    /// Definitions and audit records moved to `CATALOG#<name>`.
    pub catalog_items_moved: u64,
    /// Open runs given their marker.
    pub open_markers_added: u64,
}

impl DynamoHistory {
    /// Moves what an earlier layout left where this one does not look; idempotent.
    pub async fn migrate(&self) -> Result<Migration, HistoryError> {
        let mut done = Migration::default();
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .filter_expression(
                "begins_with(pk, :export) AND (begins_with(sk, :def) OR begins_with(sk, :audit) OR (begins_with(sk, :run) AND #state = :running))",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":export", s("EXPORT#"))
            .expression_attribute_values(":def", s("DEFINITION#"))
            .expression_attribute_values(":audit", s("AUDIT#"))
            .expression_attribute_values(":run", s("RUN#"))
            .expression_attribute_values(":running", s(RunState::Running.as_str()))
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| self.err("Scan", e))?;
            let sk = self.text(&item, "sk")?;
            if sk.starts_with("RUN#") {
                let run: RunRecord = serde_json::from_str(&self.text(&item, "record")?)
                    .map_err(|e| self.corrupt(format!("run record {sk}: {e}")))?;
                if self.mark_open(&item, &run).await? {
                    done.open_markers_added += 1;
                }
            } else {
                let pk = self.text(&item, "pk")?;
                let name = pk.trim_start_matches("EXPORT#");
                let mut moved: Item = item.clone();
                moved.insert("pk".into(), crate::dynamo_catalog::versions_pk(name));
                if self.put_if_absent(moved).await? {
                    done.catalog_items_moved += 1;
                }
                self.delete_key(HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])).await?;
            }
        }
        Ok(done)
    }

    /// Puts an open run's marker, in one transaction with a check that its record still says
    /// `running`: a run that commits while the scan reads it gets no marker (its commit removed
    /// none), so the next run never reconciles a committed run. Whether a marker was written.
    async fn mark_open(
        &self,
        run_item: &HashMap<String, AttributeValue>,
        run: &RunRecord,
    ) -> Result<bool, HistoryError> {
        let key =
            HashMap::from([("pk".to_string(), run_item["pk"].clone()), ("sk".to_string(), run_item["sk"].clone())]);
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .condition_expression("#state = :running")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":running", s(RunState::Running.as_str()))
            .build()
            .map_err(|e| self.err("TransactWriteItems", e))?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.open_item(run)?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| self.err("TransactWriteItems", e))?;
        let out = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().condition_check(check).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            // No longer running, or marked already.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_transaction_canceled_exception()) => Ok(false),
            Err(e) => Err(self.err("TransactWriteItems", e)),
        }
    }

    /// Puts `item` unless its key is taken; whether it was written.
    async fn put_if_absent(&self, item: HashMap<String, AttributeValue>) -> Result<bool, HistoryError> {
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(self.err("PutItem", e)),
        }
    }
}
