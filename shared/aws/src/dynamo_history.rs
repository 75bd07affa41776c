//! The history store in one DynamoDB table (on-demand, keys `pk`/`sk`). Per export
//! (`pk = EXPORT#<export>`, a partition only the export function's role may write): the lease
//! (`sk = LEASE`, with an `expires_at` and a TTL attribute), one watermark item per table
//! (`sk = WATERMARK#<table>`), one item per table run (`sk = RUN#<started_at>#<run_id>#<table>`,
//! newest last) and, while a run is open, its marker (`sk = OPEN#<started_at>#<run_id>#<table>`)
//! so finding open runs reads only those. A run's success and its watermark advance are one
//! `TransactWriteItems`, conditioned on the run still holding the lease and on the watermark
//! being the one the run started from; it removes the marker in the same transaction.
//!
//! Run records carry a TTL (`with_record_ttl`, the stack's retention) so the partition does not
//! grow for ever; watermarks, markers and the catalog never expire.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, KeySchemaElement, KeyType, Put,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, SseSpecification, TransactWriteItem,
};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::HashMap;
use std::time::Duration;

use sluice_core::ports::{
    HistoryStore, Lease, LeaseOwner, RunRecord, RunState, WatermarkRecord, LEASE_TAKEOVER_MARGIN,
};
use sluice_core::value::Watermark;
use sluice_core::HistoryError;

use crate::error::{boxed, Error};

pub(crate) type Item = HashMap<String, AttributeValue>;

const LEASE_SK: &str = "LEASE";
/// The lease is held if its row names the run and has not expired, or a takeover may replace it.
const LEASE_FREE: &str = "attribute_not_exists(pk) OR expires_at < :now";
const LEASE_MINE: &str = "run_id = :me";
const WATERMARK_ABSENT: &str = "attribute_not_exists(pk)";
const WATERMARK_IS: &str = "watermark = :expected";
/// DynamoDB deletes expired leases by this attribute (epoch seconds), a day after expiry, so a
/// table never fills with leases of exports that no longer run.
const TTL_ATTRIBUTE: &str = "ttl";

pub struct DynamoHistory {
    pub(crate) client: Client,
    pub(crate) table: String,
    /// How long run and delivery records are kept (their `ttl`); `None` keeps them.
    pub(crate) record_ttl: Option<Duration>,
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
pub(crate) fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
fn pk(export: &str) -> AttributeValue {
    s(format!("EXPORT#{export}"))
}
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}
fn run_sk(run: &RunRecord) -> String {
    format!("RUN#{}", run_suffix(run))
}
fn open_sk(run: &RunRecord) -> String {
    format!("OPEN#{}", run_suffix(run))
}
fn run_suffix(run: &RunRecord) -> String {
    format!("{}#{}#{}", ts(run.started_at), run.run_id, run.table)
}

impl DynamoHistory {
    pub fn new(client: Client, table: &str) -> Self {
        DynamoHistory { client, table: table.to_string(), record_ttl: None }
    }

    /// Run and delivery records expire this long after their last write (DynamoDB's TTL on
    /// `ttl`): the stack passes its retention, so a record lives as long as the files it names.
    pub fn with_record_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.record_ttl = ttl;
        self
    }

    /// The `ttl` attribute of a record written now, when records expire.
    pub(crate) fn record_expiry(&self) -> Option<AttributeValue> {
        self.record_ttl.map(|ttl| n(Utc::now().timestamp() + ttl.as_secs() as i64))
    }

    /// Creates the table as the stack does (for the CLI against a fresh account, and tests).
    pub async fn create_table(client: &Client, table: &str) -> Result<(), Error> {
        let attr = |name: &str| {
            AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build()
        };
        let key = |name: &str, kind| KeySchemaElement::builder().attribute_name(name).key_type(kind).build();
        let err = |e: aws_sdk_dynamodb::error::BuildError| Error::Dynamo {
            op: "CreateTable",
            table: table.into(),
            source: boxed(e),
        };
        client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk").map_err(err)?)
            .attribute_definitions(attr("sk").map_err(err)?)
            .key_schema(key("pk", KeyType::Hash).map_err(err)?)
            .key_schema(key("sk", KeyType::Range).map_err(err)?)
            .sse_specification(SseSpecification::builder().enabled(true).build())
            .send()
            .await
            .map_err(|e| Error::Dynamo { op: "CreateTable", table: table.into(), source: boxed(e) })?;
        Ok(())
    }

    pub(crate) fn err(&self, op: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> HistoryError {
        HistoryError::Other(Box::new(Error::Dynamo { op, table: self.table.clone(), source: boxed(e) }))
    }

    pub(crate) fn corrupt(&self, what: impl Into<String>) -> HistoryError {
        HistoryError::Other(Box::new(Error::Corrupt { table: self.table.clone(), what: what.into() }))
    }

    pub(crate) fn text(&self, item: &Item, name: &str) -> Result<String, HistoryError> {
        match item.get(name) {
            Some(AttributeValue::S(v)) => Ok(v.clone()),
            _ => Err(self.corrupt(format!("attribute {name} is missing or not a string"))),
        }
    }

    pub(crate) fn number(&self, item: &Item, name: &str) -> Result<i64, HistoryError> {
        match item.get(name) {
            Some(AttributeValue::N(v)) => {
                v.parse().map_err(|_| self.corrupt(format!("attribute {name} is not a number")))
            }
            _ => Err(self.corrupt(format!("attribute {name} is missing or not a number"))),
        }
    }

    fn lease_of(&self, export: &str, item: &Item) -> Result<Lease, HistoryError> {
        let millis = self.number(item, "expires_at")?;
        Ok(Lease {
            export: export.to_string(),
            owner: LeaseOwner {
                run_id: self.text(item, "run_id")?,
                host: self.text(item, "host")?,
                pid: self.number(item, "pid")? as u32,
            },
            expires_at: DateTime::from_timestamp_millis(millis).unwrap_or_default(),
        })
    }

    fn lease_key(export: &str) -> Item {
        HashMap::from([("pk".to_string(), pk(export)), ("sk".to_string(), s(LEASE_SK))])
    }

    fn lease_check(&self, lease: &Lease) -> Result<TransactWriteItem, HistoryError> {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(Self::lease_key(&lease.export)))
            .condition_expression(LEASE_MINE)
            .expression_attribute_values(":me", s(&lease.owner.run_id))
            .build()
            .map_err(|e| self.err("TransactWriteItems", e))?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    fn run_put(&self, run: &RunRecord) -> Result<TransactWriteItem, HistoryError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.run_item(run)?))
            .build()
            .map_err(|e| self.err("TransactWriteItems", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn run_item(&self, run: &RunRecord) -> Result<Item, HistoryError> {
        let json = serde_json::to_string(run).map_err(|e| self.corrupt(e.to_string()))?;
        let mut item = HashMap::from([
            ("pk".to_string(), pk(&run.export)),
            ("sk".to_string(), s(run_sk(run))),
            ("state".to_string(), s(run.state.as_str())),
            ("record".to_string(), s(json)),
        ]);
        if let Some(ttl) = self.record_expiry() {
            item.insert(TTL_ATTRIBUTE.into(), ttl);
        }
        Ok(item)
    }

    /// The open-run marker: the record as it began (reconciliation reads it), no TTL.
    pub(crate) fn open_item(&self, run: &RunRecord) -> Result<Item, HistoryError> {
        let json = serde_json::to_string(run).map_err(|e| self.corrupt(e.to_string()))?;
        Ok(HashMap::from([
            ("pk".to_string(), pk(&run.export)),
            ("sk".to_string(), s(open_sk(run))),
            ("record".to_string(), s(json)),
        ]))
    }

    fn open_put(&self, run: &RunRecord) -> Result<TransactWriteItem, HistoryError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.open_item(run)?))
            .build()
            .map_err(|e| self.err("TransactWriteItems", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn open_delete(&self, run: &RunRecord) -> Result<TransactWriteItem, HistoryError> {
        let key = HashMap::from([("pk".to_string(), pk(&run.export)), ("sk".to_string(), s(open_sk(run)))]);
        let delete = aws_sdk_dynamodb::types::Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .build()
            .map_err(|e| self.err("TransactWriteItems", e))?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// Deletes one item by its key (absent is fine).
    pub(crate) async fn delete_key(&self, key: Item) -> Result<(), HistoryError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .send()
            .await
            .map_err(|e| self.err("DeleteItem", e))?;
        Ok(())
    }

    /// One item by its key, read consistently (a conditional write may follow).
    pub(crate) async fn get_item(&self, key: Item) -> Result<Option<Item>, HistoryError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.err("GetItem", e))?;
        Ok(out.item)
    }

    pub(crate) async fn query(
        &self,
        export: &str,
        sk_prefix: &str,
        newest_first: bool,
        limit: Option<usize>,
    ) -> Result<Vec<Item>, HistoryError> {
        self.query_partition(pk(export), sk_prefix, newest_first, limit).await
    }

    /// The items of partition `pk` whose sort key starts with `sk_prefix`, read consistently.
    pub(crate) async fn query_partition(
        &self,
        pk: AttributeValue,
        sk_prefix: &str,
        newest_first: bool,
        limit: Option<usize>,
    ) -> Result<Vec<Item>, HistoryError> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", pk)
            .expression_attribute_values(":prefix", s(sk_prefix))
            .scan_index_forward(!newest_first)
            // Pages no larger than what is wanted: a bounded read costs what it returns.
            .set_limit(limit.map(|l| l.clamp(1, 1000) as i32))
            .into_paginator()
            .items()
            .send();
        let mut items = Vec::new();
        while limit.is_none_or(|l| items.len() < l) {
            match pages.next().await {
                Some(item) => items.push(item.map_err(|e| self.err("Query", e))?),
                None => break,
            }
        }
        Ok(items)
    }

    async fn current_watermark(&self, export: &str, table: &str) -> Result<Option<Watermark>, HistoryError> {
        Ok(self.watermark(export, table).await?.map(|w| w.watermark))
    }
}

#[async_trait]
impl HistoryStore for DynamoHistory {
    async fn acquire_lease(&self, export: &str, owner: &LeaseOwner, ttl: Duration) -> Result<Lease, HistoryError> {
        let now = Utc::now();
        let expires_at = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(1));
        let mut item = Self::lease_key(export);
        item.insert("run_id".into(), s(&owner.run_id));
        item.insert("host".into(), s(&owner.host));
        item.insert("pid".into(), n(owner.pid as i64));
        item.insert("expires_at".into(), n(expires_at.timestamp_millis()));
        item.insert(TTL_ATTRIBUTE.into(), n(expires_at.timestamp() + 86_400));
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(LEASE_FREE)
            // Expired by at least the margin on this clock: see LEASE_TAKEOVER_MARGIN.
            .expression_attribute_values(
                ":now",
                n((now - chrono::Duration::from_std(LEASE_TAKEOVER_MARGIN).unwrap_or_default()).timestamp_millis()),
            )
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match put {
            Ok(_) => Ok(Lease { export: export.to_string(), owner: owner.clone(), expires_at }),
            Err(e) => {
                let held = e.as_service_error().and_then(|s| match s {
                    aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => {
                        Some(c.item().cloned())
                    }
                    _ => None,
                });
                match held {
                    Some(old) => {
                        let holder = match old {
                            Some(item) => Some(self.lease_of(export, &item)?),
                            None => self.lease(export).await?,
                        };
                        // Our own put, landed on an earlier try whose answer was lost (the SDK
                        // retried it): the lease is ours.
                        if let Some(mine) = holder.as_ref().filter(|l| l.owner.run_id == owner.run_id) {
                            return Ok(Lease {
                                export: export.to_string(),
                                owner: owner.clone(),
                                expires_at: mine.expires_at,
                            });
                        }
                        let (owner, expires_at) = holder
                            .map_or(("another run".to_string(), "unknown".to_string()), |l| {
                                (l.owner.to_string(), ts(l.expires_at))
                            });
                        Err(HistoryError::LeaseHeld { owner, expires_at })
                    }
                    None => Err(self.err("PutItem", e)),
                }
            }
        }
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<Lease, HistoryError> {
        let expires_at = Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(1));
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::lease_key(&lease.export)))
            .update_expression("SET expires_at = :e, #ttl = :t")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .condition_expression(LEASE_MINE)
            .expression_attribute_values(":e", n(expires_at.timestamp_millis()))
            .expression_attribute_values(":t", n(expires_at.timestamp() + 86_400))
            .expression_attribute_values(":me", s(&lease.owner.run_id))
            .send()
            .await;
        match out {
            Ok(_) => Ok(Lease { expires_at, ..lease.clone() }),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                Err(HistoryError::LeaseLost)
            }
            Err(e) => Err(self.err("UpdateItem", e)),
        }
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), HistoryError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::lease_key(&lease.export)))
            .condition_expression(LEASE_MINE)
            .expression_attribute_values(":me", s(&lease.owner.run_id))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            // Someone else holds it now: nothing of ours to release.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(()),
            Err(e) => Err(self.err("DeleteItem", e)),
        }
    }

    async fn lease(&self, export: &str) -> Result<Option<Lease>, HistoryError> {
        match self.get_item(Self::lease_key(export)).await? {
            Some(item) => {
                let lease = self.lease_of(export, &item)?;
                Ok((lease.expires_at > Utc::now()).then_some(lease))
            }
            None => Ok(None),
        }
    }

    async fn watermark(&self, export: &str, table: &str) -> Result<Option<WatermarkRecord>, HistoryError> {
        Ok(self.watermarks(export).await?.into_iter().find(|w| w.table == table))
    }

    async fn watermarks(&self, export: &str) -> Result<Vec<WatermarkRecord>, HistoryError> {
        let items = self.query(export, "WATERMARK#", false, None).await?;
        items
            .iter()
            .map(|item| {
                let json = self.text(item, "watermark")?;
                Ok(WatermarkRecord {
                    export: export.to_string(),
                    table: self.text(item, "table_name")?,
                    watermark: serde_json::from_str(&json).map_err(|e| self.corrupt(e.to_string()))?,
                    run_id: self.text(item, "run_id")?,
                    committed_at: DateTime::parse_from_rfc3339(&self.text(item, "committed_at")?)
                        .map(|t| t.with_timezone(&Utc))
                        .unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn begin_run(&self, lease: &Lease, run: &RunRecord) -> Result<(), HistoryError> {
        let out = self
            .client
            .transact_write_items()
            .transact_items(self.lease_check(lease)?)
            .transact_items(self.run_put(run)?)
            .transact_items(self.open_put(run)?)
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_transaction_canceled_exception()) => {
                Err(HistoryError::LeaseLost)
            }
            Err(e) => Err(self.err("TransactWriteItems", e)),
        }
    }

    async fn commit_run(
        &self,
        lease: &Lease,
        run: &RunRecord,
        expected: Option<&Watermark>,
        new: Option<&Watermark>,
    ) -> Result<(), HistoryError> {
        let key = HashMap::from([
            ("pk".to_string(), pk(&run.export)),
            ("sk".to_string(), s(format!("WATERMARK#{}", run.table))),
        ]);
        let (condition, expected_json) = match expected {
            Some(w) => (WATERMARK_IS, Some(serde_json::to_string(w).map_err(|e| self.corrupt(e.to_string()))?)),
            None => (WATERMARK_ABSENT, None),
        };
        let values = expected_json.map(|j| HashMap::from([(":expected".to_string(), s(j))]));
        let watermark_item = match new {
            Some(w) => {
                let mut item = key.clone();
                item.insert("table_name".into(), s(&run.table));
                item.insert("watermark".into(), s(serde_json::to_string(w).map_err(|e| self.corrupt(e.to_string()))?));
                item.insert("last_export".into(), s(w.to_string()));
                item.insert("run_id".into(), s(&run.run_id));
                item.insert("committed_at".into(), s(ts(Utc::now())));
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .condition_expression(condition)
                    .set_expression_attribute_values(values)
                    .build()
                    .map_err(|e| self.err("TransactWriteItems", e))?;
                TransactWriteItem::builder().put(put).build()
            }
            None => {
                let check = ConditionCheck::builder()
                    .table_name(&self.table)
                    .set_key(Some(key))
                    .condition_expression(condition)
                    .set_expression_attribute_values(values)
                    .build()
                    .map_err(|e| self.err("TransactWriteItems", e))?;
                TransactWriteItem::builder().condition_check(check).build()
            }
        };
        let mut done = run.clone();
        done.state = RunState::Succeeded;
        let out = self
            .client
            .transact_write_items()
            .transact_items(self.lease_check(lease)?)
            .transact_items(watermark_item)
            .transact_items(self.run_put(&done)?)
            .transact_items(self.open_delete(run)?)
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) => {
                // Which condition failed, in the order the items were given: lease, watermark.
                let reasons: Vec<Option<String>> = match e.as_service_error() {
                    Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c)) => {
                        c.cancellation_reasons().iter().map(|r| r.code().map(str::to_string)).collect()
                    }
                    _ => return Err(self.err("TransactWriteItems", e)),
                };
                let failed = |i: usize| reasons.get(i).and_then(|c| c.as_deref()) == Some("ConditionalCheckFailed");
                if failed(0) {
                    Err(HistoryError::LeaseLost)
                } else if failed(1) {
                    let found = self.current_watermark(&run.export, &run.table).await?;
                    Err(HistoryError::WatermarkMoved { expected: expected.cloned(), found })
                } else {
                    Err(self.err("TransactWriteItems", e))
                }
            }
        }
    }

    async fn fail_run(&self, run: &RunRecord) -> Result<(), HistoryError> {
        let mut failed = run.clone();
        failed.state = RunState::Failed;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.run_item(&failed)?))
            // A run another process committed (from its manifest) stays committed.
            .condition_expression("attribute_not_exists(pk) OR #state <> :succeeded")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":succeeded", s(RunState::Succeeded.as_str()))
            .build()
            .map_err(|e| self.err("TransactWriteItems", e))?;
        let out = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(self.open_delete(run)?)
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                // Committed already (by another process, from its manifest): the record stays
                // as it is, and a marker left beside it (a migration's) goes.
                Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c))
                    if c.cancellation_reasons().first().and_then(|r| r.code()) == Some("ConditionalCheckFailed") =>
                {
                    self.delete_key(HashMap::from([("pk".to_string(), pk(&run.export)), ("sk".to_string(), s(open_sk(run)))]))
                        .await
                }
                _ => Err(self.err("TransactWriteItems", e)),
            },
        }
    }

    async fn runs(&self, export: &str, limit: usize) -> Result<Vec<RunRecord>, HistoryError> {
        let items = self.query(export, "RUN#", true, Some(limit)).await?;
        items
            .iter()
            .map(|i| serde_json::from_str(&self.text(i, "record")?).map_err(|e| self.corrupt(e.to_string())))
            .collect()
    }

    async fn run(
        &self,
        export: &str,
        table: &str,
        run_id: &str,
        started_at: DateTime<Utc>,
    ) -> Result<Option<RunRecord>, HistoryError> {
        let key = HashMap::from([
            ("pk".to_string(), pk(export)),
            ("sk".to_string(), s(format!("RUN#{}#{run_id}#{table}", ts(started_at)))),
        ]);
        match self.get_item(key).await? {
            Some(item) => {
                serde_json::from_str(&self.text(&item, "record")?).map(Some).map_err(|e| self.corrupt(e.to_string()))
            }
            None => Ok(None),
        }
    }

    async fn open_runs(&self, export: &str) -> Result<Vec<RunRecord>, HistoryError> {
        // The markers only: as many reads as runs left open, however long the history.
        let items = self.query(export, "OPEN#", false, None).await?;
        items
            .iter()
            .map(|i| serde_json::from_str(&self.text(i, "record")?).map_err(|e| self.corrupt(e.to_string())))
            .collect()
    }
}
