//! The catalog of managed exports in the history table. Entries share one partition
//! (`pk = CATALOG`, `sk = EXPORT#<name>`, with `revision` beside the record) so listing them is
//! one query; each export's versions and audit records sit in its own partition
//! (`pk = CATALOG#<name>`, `sk = DEFINITION#<version>` and `AUDIT#<revision>`, zero-padded so
//! they sort). A change is one transaction whose entry put is conditioned on the revision it
//! was made from.
//!
//! The catalog's partitions are apart from the export's runs (`EXPORT#<name>`) because IAM can
//! tell partitions apart (`dynamodb:LeadingKeys`) but not sort keys: the control functions may
//! write `CATALOG*` only, and so cannot forge a run, a watermark or a lease. Sluice before 0.2
//! kept definitions and audit records under `EXPORT#<name>`; `sluice migrate` moves them.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use std::collections::HashMap;

use sluice_core::catalog::{AuditRecord, Catalog, CatalogChange, CatalogEntry, Definition};
use sluice_core::HistoryError;

use crate::dynamo_history::{n, s, DynamoHistory, Item};

const CATALOG_PK: &str = "CATALOG";

/// The partition of one export's definitions and audit records.
pub(crate) fn versions_pk(name: &str) -> AttributeValue {
    s(format!("CATALOG#{name}"))
}

fn entry_key(name: &str) -> Item {
    HashMap::from([("pk".to_string(), s(CATALOG_PK)), ("sk".to_string(), s(format!("EXPORT#{name}")))])
}

fn definition_sk(version: u64) -> String {
    format!("DEFINITION#{version:010}")
}

fn audit_sk(revision: u64) -> String {
    format!("AUDIT#{revision:010}")
}

impl DynamoHistory {
    fn record_of<T: serde::de::DeserializeOwned>(&self, item: &Item) -> Result<T, HistoryError> {
        serde_json::from_str(&self.text(item, "record")?).map_err(|e| self.corrupt(format!("catalog record: {e}")))
    }

    fn json_of<T: serde::Serialize>(&self, v: &T) -> Result<AttributeValue, HistoryError> {
        serde_json::to_string(v).map(s).map_err(|e| self.corrupt(e.to_string()))
    }

    fn put(
        &self,
        item: Item,
        condition: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<TransactWriteItem, HistoryError> {
        let mut put = Put::builder().table_name(&self.table).set_item(Some(item)).condition_expression(condition);
        for (k, v) in values {
            put = put.expression_attribute_values(*k, v.clone());
        }
        let put = put.build().map_err(|e| self.err("TransactWriteItems", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }
}

#[async_trait]
impl Catalog for DynamoHistory {
    async fn entry(&self, name: &str) -> Result<Option<CatalogEntry>, HistoryError> {
        self.get_item(entry_key(name)).await?.as_ref().map(|i| self.record_of(i)).transpose()
    }

    async fn entries(&self) -> Result<Vec<CatalogEntry>, HistoryError> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(CATALOG_PK))
            .into_paginator()
            .items()
            .send();
        let mut entries = Vec::new();
        while let Some(item) = pages.next().await {
            entries.push(self.record_of(&item.map_err(|e| self.err("Query", e))?)?);
        }
        Ok(entries)
    }

    async fn definition(&self, name: &str, version: u64) -> Result<Option<Definition>, HistoryError> {
        let key = HashMap::from([("pk".to_string(), versions_pk(name)), ("sk".to_string(), s(definition_sk(version)))]);
        match self.get_item(key).await? {
            Some(item) => self.record_of(&item).map(Some),
            None => {
                // Not moved yet from where Sluice before 0.2 kept it: say how, rather than
                // treating a managed export as if it had no versions.
                let legacy = HashMap::from([
                    ("pk".to_string(), s(format!("EXPORT#{name}"))),
                    ("sk".to_string(), s(definition_sk(version))),
                ]);
                match self.get_item(legacy).await? {
                    Some(_) => Err(self.corrupt(format!(
                        "export {name:?}'s definitions are in the layout of Sluice before 0.2; run `sluice migrate --history dynamodb://{}` once to move them",
                        self.table
                    ))),
                    None => Ok(None),
                }
            }
        }
    }

    async fn apply(&self, change: &CatalogChange) -> Result<(), HistoryError> {
        let name = &change.entry.name;
        let mut entry = entry_key(name);
        entry.insert("revision".into(), n(change.entry.revision as i64));
        entry.insert("record".into(), self.json_of(&change.entry)?);
        let entry_put = if change.expected_revision == 0 {
            self.put(entry, "attribute_not_exists(pk)", &[])?
        } else {
            self.put(entry, "revision = :expected", &[(":expected", n(change.expected_revision as i64))])?
        };
        let mut tx = self.client.transact_write_items().transact_items(entry_put);
        if let Some(d) = &change.definition {
            let item = HashMap::from([
                ("pk".to_string(), versions_pk(name)),
                ("sk".to_string(), s(definition_sk(d.version))),
                ("record".to_string(), self.json_of(d)?),
            ]);
            tx = tx.transact_items(self.put(item, "attribute_not_exists(pk)", &[])?);
        }
        let audit = HashMap::from([
            ("pk".to_string(), versions_pk(name)),
            ("sk".to_string(), s(audit_sk(change.audit.revision))),
            ("record".to_string(), self.json_of(&change.audit)?),
        ]);
        tx = tx.transact_items(self.put(audit, "attribute_not_exists(pk)", &[])?);
        match tx.send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_transaction_canceled_exception()) => {
                // Someone else's change landed first: say whose.
                let current = self.entry(name).await?;
                Err(HistoryError::Stale {
                    found: current.as_ref().map_or(0, |e| e.revision),
                    by: current.map_or_else(|| "nobody (it does not exist)".into(), |e| e.updated_by),
                })
            }
            Err(e) => Err(self.err("TransactWriteItems", e)),
        }
    }

    async fn audit(&self, name: &str, limit: usize) -> Result<Vec<AuditRecord>, HistoryError> {
        let items = self.query_partition(versions_pk(name), "AUDIT#", true, Some(limit)).await?;
        items.iter().map(|i| self.record_of(i)).collect()
    }
}
