//! Sending one batch: mapping its rows, the request with retries and waits, splitting a batch
//! the API refuses as a whole to find the records it refuses, and the failures written per batch
//! and merged into the run's failures file when the delivery ends.

use super::*;

impl Deliverer<'_> {
    pub(super) async fn write_failure_piece(
        &self,
        failures_key: &str,
        seq: u64,
        failures: &[FailedRecord],
    ) -> Result<(), Stop> {
        let key = layout::failure_piece(failures_key, seq);
        let mut bytes = Vec::new();
        for f in failures {
            serde_json::to_writer(&mut bytes, f).map_err(|e| Stop::Store(key.clone(), Box::new(e)))?;
            bytes.push(b'\n');
        }
        let meta = ObjectMeta { content_type: "application/x-ndjson".into(), content_encoding: None };
        self.ports.store.put(&key, bytes, &meta).await.map_err(|e| Stop::Store(key.clone(), e))
    }

    /// Concatenates the pieces, in batch order, into the failures file.
    pub(super) async fn merge_failures(&self, failures_key: &str) -> Result<(), DeliverError> {
        let store = self.ports.store;
        let prefix = layout::failure_pieces(failures_key);
        let pieces = store.list(&prefix).await.map_err(|e| self.store_err("listing", &prefix, e))?;
        let meta = ObjectMeta { content_type: "application/x-ndjson".into(), content_encoding: None };
        let mut out =
            store.create(failures_key, &meta).await.map_err(|e| self.store_err("writing", failures_key, e))?;
        for key in pieces {
            let bytes = match store.get(&key).await {
                Ok(Some(b)) => b,
                Ok(None) => continue,
                Err(e) => {
                    let _ = out.abort().await;
                    return Err(self.store_err("reading", &key, e));
                }
            };
            if let Err(e) = out.write(&bytes).await {
                let _ = out.abort().await;
                return Err(self.store_err("writing", failures_key, e));
            }
        }
        out.finish().await.map_err(|e| self.store_err("writing", failures_key, e))?;
        Ok(())
    }

    /// Maps a batch's rows, sends what can be sent, and says what became of each row.
    pub(super) async fn deliver_batch(
        &self,
        batch: InputBatch,
        mapper: &Mapper,
        columns: &[crate::value::Column],
        key_prefix: &str,
    ) -> Result<BatchResult, Stop> {
        let mut failures = Vec::new();
        let mut outgoing = Vec::with_capacity(batch.rows.len());
        let row_map = |row: &Row| -> Map<String, Value> { super::mapping::typed_row(columns, row) };
        for (i, row) in batch.rows.iter().enumerate() {
            let index = batch.first + i as u64;
            let fail = |stage: &str, error: String| FailedRecord {
                index,
                stage: stage.into(),
                status: None,
                error,
                row: row_map(row),
            };
            if mapper.is_refused_delete(row) {
                let why = match self.api.operations() {
                    Operations::UpsertOnly { delete_refused } => delete_refused,
                    Operations::AsColumn => "a delete (_sluice_op = \"delete\") this API cannot take",
                };
                failures.push(fail("check", why.into()));
                continue;
            }
            match mapper.map(row) {
                Err(e) => failures.push(fail("mapping", e.0)),
                Ok(properties) => {
                    let out = Outgoing { index, properties };
                    match self.api.check(&out) {
                        Err(e) => failures.push(fail("check", e.0)),
                        Ok(()) => outgoing.push(out),
                    }
                }
            }
        }
        let mut rejected: Vec<(u64, Option<u16>, String)> = Vec::new();
        self.send_split(&outgoing, key_prefix, &mut rejected).await?;
        let delivered = outgoing.len() as u64 - rejected.len() as u64;
        for (index, status, error) in rejected {
            let row = &batch.rows[(index - batch.first) as usize];
            failures.push(FailedRecord { index, stage: "api".into(), status, error, row: row_map(row) });
        }
        failures.sort_by_key(|f| f.index);
        Ok(BatchResult { seq: batch.seq, delivered, failures })
    }

    /// Sends records; a batch refused whole is split in halves until the bad records are alone.
    fn send_split<'b>(
        &'b self,
        records: &'b [Outgoing],
        key_prefix: &'b str,
        rejected: &'b mut Vec<(u64, Option<u16>, String)>,
    ) -> futures::future::BoxFuture<'b, Result<(), Stop>> {
        Box::pin(async move {
            if records.is_empty() {
                return Ok(());
            }
            match self.send(records, key_prefix).await? {
                Answer::Accepted { rejected: r } => {
                    for (i, why) in r {
                        rejected.push((records[i].index, None, why));
                    }
                    Ok(())
                }
                Answer::Rejected { status, message } if records.len() == 1 => {
                    rejected.push((records[0].index, Some(status), message));
                    Ok(())
                }
                Answer::Rejected { status, .. } => {
                    debug!(integration = %self.spec.name, status, records = records.len(), "batch refused whole; splitting it");
                    let (left, right) = records.split_at(records.len() / 2);
                    self.send_split(left, key_prefix, rejected).await?;
                    self.send_split(right, key_prefix, rejected).await
                }
                Answer::Retry { .. } | Answer::Fatal { .. } => unreachable!("send resolves retries and stops"),
            }
        })
    }

    /// One request, retried until it is answered for good or the attempts run out.
    async fn send(&self, records: &[Outgoing], key_prefix: &str) -> Result<Answer, Stop> {
        let key = format!("{key_prefix}-{}-{}", records[0].index, records[records.len() - 1].index);
        let batch = Batch { key, records };
        let mut attempt = 0u32;
        loop {
            if self.past_deadline() {
                return Err(Stop::Deadline);
            }
            if let Err(no) = self.pace.acquire(self.opts.stop_by.map(tokio::time::Instant::from_std)).await {
                return Err(match no {
                    NoSlot::Deadline => Stop::Deadline,
                    NoSlot::DailyLimit { limit, day } => Stop::Fatal(format!(
                        "integration {:?} reached its daily_limit of {limit} requests for {day} (UTC); the delivery resumes when it is retried after midnight UTC (raise daily_limit if the API allows more)",
                        self.spec.name
                    )),
                    NoSlot::Ledger(m) => Stop::Exhausted(format!("the shared rate could not be read from the ledger: {m}")),
                });
            }
            let token = self.token();
            let request = self.api.request(&batch, token.as_deref());
            self.requests.fetch_add(1, Ordering::Relaxed);
            let answer = match self.ports.http.send(request, self.spec.timeout).await {
                Ok(response) => self.api.answer(&batch, &response),
                Err(e) => Answer::Retry { status: 0, wait: None, message: e.to_string() },
            };
            match answer {
                Answer::Retry { status, wait, message } => {
                    attempt += 1;
                    if attempt >= self.spec.max_attempts {
                        return Err(Stop::Exhausted(format!("{message} (after {attempt} attempts)")));
                    }
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    let pause = match wait {
                        Some(w) => {
                            self.pace.pause(w).await;
                            w
                        }
                        None => backoff(attempt - 1, self.opts.retry_base, self.opts.retry_cap),
                    };
                    if self.opts.stop_by.is_some_and(|t| Instant::now() + pause >= t) {
                        return Err(Stop::Deadline);
                    }
                    debug!(integration = %self.spec.name, status, attempt, wait_ms = pause.as_millis() as u64, "retrying");
                    tokio::time::sleep(pause).await;
                }
                Answer::Fatal { status: 401 | 403, message } => {
                    if self.reread_token(token.as_deref()).await {
                        continue;
                    }
                    return Err(Stop::Fatal(message));
                }
                Answer::Fatal { message, .. } => return Err(Stop::Fatal(message)),
                other => return Ok(other),
            }
        }
    }
}
