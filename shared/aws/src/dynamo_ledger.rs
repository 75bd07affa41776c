//! The delivery ledger in the history table: per integration (`pk = INTEGRATION#<name>`) one item
//! per manifest version (`sk = DELIVERY#<manifest key>#<etag>`), with the claim's `owner` and
//! `expires_at` beside the record. A claim reads the item, then writes it conditioned on it not
//! having changed since (`updated_at`), so two invocations given the same event cannot both win.
//! Every claim, and every save that ends or stops a delivery, also writes the record to
//! `sk = LAST` (checkpoints do not), so `status` reads the latest
//! delivery with one `GetItem` however many the ledger holds. The integration's shared rate is
//! one more item (`sk = RATE`): `last_us`, the last send slot any process took, moved on by an
//! atomic `ADD` of the spacing, and one request count per UTC day (`day_<YYYY-MM-DD>`). Delivery records carry the
//! history's record TTL; a manifest past retention is gone from the destination too.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::time::Duration;

use sluice_core::ports::{expires_in, Claim, DeliveryId, DeliveryLedger, DeliveryRecord, DeliveryState, SendSlot};
use sluice_core::HistoryError;

use crate::dynamo_history::{n, s, ts, DynamoHistory, Item};

fn pk(integration: &str) -> AttributeValue {
    s(format!("INTEGRATION#{integration}"))
}

fn key(id: &DeliveryId) -> Item {
    HashMap::from([
        ("pk".to_string(), pk(&id.integration)),
        ("sk".to_string(), s(format!("DELIVERY#{}#{}", id.manifest_key, id.etag))),
    ])
}

fn last_key(integration: &str) -> Item {
    HashMap::from([("pk".to_string(), pk(integration)), ("sk".to_string(), s("LAST"))])
}

fn is_condition_failure<E, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error().and_then(|s| s.code()) == Some("ConditionalCheckFailedException")
}

impl DynamoHistory {
    async fn delivery_item(&self, id: &DeliveryId) -> Result<Option<Item>, HistoryError> {
        self.get_item(key(id)).await
    }

    fn delivery_record(&self, item: &Item) -> Result<DeliveryRecord, HistoryError> {
        serde_json::from_str(&self.text(item, "record")?).map_err(|e| self.corrupt(format!("delivery record: {e}")))
    }

    /// Counts a request against `day` (dropping the count of `gone`, two days before) and, with
    /// a spacing, moves the integration's last send slot on by it: one atomic update, whose
    /// new values it returns.
    async fn count_request(
        &self,
        key: &Item,
        day: &str,
        gone: &str,
        spacing_us: Option<i64>,
    ) -> Result<Item, HistoryError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key.clone()))
            .expression_attribute_names("#day", day)
            .expression_attribute_names("#gone", gone)
            .expression_attribute_values(":one", n(1))
            // All of it: the new values whatever else changed meanwhile.
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew);
        let update = match spacing_us {
            Some(sp) => update
                .update_expression("ADD last_us :spacing, #day :one REMOVE #gone")
                .expression_attribute_values(":spacing", n(sp)),
            None => update.update_expression("ADD #day :one REMOVE #gone"),
        };
        let out = update.send().await.map_err(|e| self.err("UpdateItem", e))?;
        Ok(out.attributes.unwrap_or_default())
    }

    /// Records `json` as the integration's latest delivery (the last write wins).
    async fn put_last(&self, integration: &str, json: String) -> Result<(), HistoryError> {
        let mut item = last_key(integration);
        item.insert("record".into(), s(json));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| self.err("PutItem", e))?;
        Ok(())
    }
}

#[async_trait]
impl DeliveryLedger for DynamoHistory {
    async fn claim(&self, id: &DeliveryId, owner: &str, ttl: Duration, rows: u64) -> Result<Claim, HistoryError> {
        // A lost race (the item changed between the read and the write) is read again: the
        // winner's claim is then what the loser reports.
        for _ in 0..3 {
            let now = Utc::now();
            let found = self.delivery_item(id).await?;
            let (mut record, seen) = match &found {
                Some(item) => {
                    let record = self.delivery_record(item)?;
                    if record.state == DeliveryState::Done {
                        return Ok(Claim::Done(record));
                    }
                    if let (Some(AttributeValue::S(holder)), Some(AttributeValue::N(expires))) =
                        (item.get("owner"), item.get("expires_at"))
                    {
                        let expires_at = DateTime::from_timestamp_millis(expires.parse().unwrap_or(0)).unwrap_or(now);
                        if expires_at > now && holder != owner {
                            return Ok(Claim::Held { owner: holder.clone(), expires_at });
                        }
                    }
                    (record, Some(self.text(item, "updated_at")?))
                }
                None => (DeliveryRecord::new(id, rows, now), None),
            };
            record.attempts += 1;
            record.updated_at = now;
            let json = serde_json::to_string(&record).map_err(|e| self.corrupt(e.to_string()))?;
            let mut item = key(id);
            item.insert("state".into(), s(record.state.as_str()));
            item.insert("owner".into(), s(owner));
            item.insert("expires_at".into(), n(expires_in(ttl).timestamp_millis()));
            item.insert("updated_at".into(), s(ts(now)));
            item.insert("record".into(), s(json.clone()));
            if let Some(ttl) = self.record_expiry() {
                item.insert("ttl".into(), ttl);
            }
            let put = self.client.put_item().table_name(&self.table).set_item(Some(item));
            let put = match seen {
                None => put.condition_expression("attribute_not_exists(pk)"),
                Some(at) => put.condition_expression("updated_at = :seen").expression_attribute_values(":seen", s(at)),
            };
            match put.send().await {
                Ok(_) => {
                    self.put_last(&id.integration, json).await?;
                    return Ok(Claim::Mine(record));
                }
                Err(e) if is_condition_failure(&e) => continue,
                Err(e) => return Err(self.err("PutItem", e)),
            }
        }
        let item = self.delivery_item(id).await?;
        match item {
            Some(item) => {
                let record = self.delivery_record(&item)?;
                if record.state == DeliveryState::Done {
                    return Ok(Claim::Done(record));
                }
                let owner = self.text(&item, "owner").unwrap_or_else(|_| "another invocation".into());
                let expires = self.number(&item, "expires_at").unwrap_or(0);
                Ok(Claim::Held { owner, expires_at: DateTime::from_timestamp_millis(expires).unwrap_or_default() })
            }
            None => Err(self.corrupt("a delivery item vanished while being claimed")),
        }
    }

    async fn save(&self, record: &DeliveryRecord, owner: &str, hold: Option<Duration>) -> Result<(), HistoryError> {
        let json = serde_json::to_string(record).map_err(|e| self.corrupt(e.to_string()))?;
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&record.id)))
            .condition_expression("#owner = :me")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(":state", s(record.state.as_str()))
            .expression_attribute_values(":updated", s(ts(record.updated_at)))
            .expression_attribute_values(":record", s(json.clone()));
        let update = match hold {
            Some(ttl) => update
                .update_expression("SET #state = :state, updated_at = :updated, #record = :record, expires_at = :exp")
                .expression_attribute_values(":exp", n(expires_in(ttl).timestamp_millis())),
            None => update.update_expression(
                "SET #state = :state, updated_at = :updated, #record = :record REMOVE #owner, expires_at",
            ),
        }
        .expression_attribute_names("#record", "record");
        match update.send().await {
            // Checkpoints (a claim kept) are not copied: the copy is of a delivery as it
            // started, finished or stopped, so the hot path pays one write, not two.
            Ok(_) if hold.is_some() => Ok(()),
            Ok(_) => self.put_last(&record.id.integration, json).await,
            Err(e) if is_condition_failure(&e) => Err(HistoryError::LeaseLost),
            Err(e) => Err(self.err("UpdateItem", e)),
        }
    }

    async fn delivery(&self, id: &DeliveryId) -> Result<Option<DeliveryRecord>, HistoryError> {
        self.delivery_item(id).await?.map(|item| self.delivery_record(&item)).transpose()
    }

    async fn take_send_slot(
        &self,
        integration: &str,
        spacing: Duration,
        not_before: DateTime<Utc>,
    ) -> Result<SendSlot, HistoryError> {
        let key = HashMap::from([("pk".to_string(), pk(integration)), ("sk".to_string(), s("RATE"))]);
        let floor = not_before.timestamp_micros();
        let spacing_us = spacing.as_micros() as i64;
        let day = format!("day_{}", not_before.format("%Y-%m-%d"));
        let gone = format!("day_{}", (not_before - chrono::Duration::days(2)).format("%Y-%m-%d"));
        if spacing_us == 0 {
            // A daily quota without a rate: a count only.
            let attrs = self.count_request(&key, &day, &gone, None).await?;
            return Ok(SendSlot { at: not_before, day_count: self.number(&attrs, &day)? as u64 });
        }
        // An ADD never fails and never hands two callers the same value. When the last slot is
        // in the past (nobody sent for a while) the value it gives is stale: the slot is moved
        // up to now, only forward (so no slot handed out comes closer than the spacing to a
        // later one), and taken again.
        for _ in 0..8 {
            let attrs = self.count_request(&key, &day, &gone, Some(spacing_us)).await?;
            let at_us = self.number(&attrs, "last_us")?;
            if at_us >= floor {
                let at = DateTime::from_timestamp_micros(at_us).unwrap_or(not_before);
                return Ok(SendSlot { at, day_count: self.number(&attrs, &day)? as u64 });
            }
            // The stale take is not a request: its count is taken back with the move (or alone,
            // when another caller moved the slot first).
            let moved = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key.clone()))
                .update_expression("SET last_us = :to ADD #day :minus")
                .condition_expression("last_us < :to")
                .expression_attribute_names("#day", &day)
                .expression_attribute_values(":to", n(floor - spacing_us))
                .expression_attribute_values(":minus", n(-1))
                .send()
                .await;
            match moved {
                Ok(_) => {}
                Err(e) if is_condition_failure(&e) => {
                    self.client
                        .update_item()
                        .table_name(&self.table)
                        .set_key(Some(key.clone()))
                        .update_expression("ADD #day :minus")
                        .expression_attribute_names("#day", &day)
                        .expression_attribute_values(":minus", n(-1))
                        .send()
                        .await
                        .map_err(|e| self.err("UpdateItem", e))?;
                }
                Err(e) => return Err(self.err("UpdateItem", e)),
            }
        }
        Err(self.corrupt(format!("integration {integration}'s send slot kept moving under eight tries")))
    }

    async fn last_delivery(&self, integration: &str) -> Result<Option<DeliveryRecord>, HistoryError> {
        self.get_item(last_key(integration)).await?.map(|item| self.delivery_record(&item)).transpose()
    }
}
