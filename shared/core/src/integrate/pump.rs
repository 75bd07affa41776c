//! Reading a manifest's parts for a delivery: a blocking thread parses them into batches of
//! rows, up to `max_in_flight` batches are sent at once, and each settled batch joins the
//! record's progress, checkpointed as it goes.

use super::*;

impl Deliverer<'_> {
    /// Reads the parts in a blocking thread and keeps up to `max_in_flight` batches in flight,
    /// settling them into the record's progress and checkpointing it as they finish.
    pub(super) async fn pump(
        &self,
        manifest: &Manifest,
        reading: &PartReading,
        mapper: &Mapper,
        record: &mut DeliveryRecord,
        failures_key: &str,
        key_prefix: &str,
    ) -> Result<(), Stop> {
        let columns = manifest.columns.clone();
        let batch_size = record.progress.batch_size;
        let rows_total = manifest.totals.rows;
        let skip: BTreeSet<u64> = record.progress.ahead.iter().map(|b| b.seq).collect();
        let from_row = record.progress.settled_rows;

        // Parts to read: those with rows at or past the first unsettled one.
        let mut first_row = 0u64;
        let mut wanted = Vec::new();
        for part in &manifest.parts {
            if first_row + part.rows > from_row && part.rows > 0 {
                wanted.push((first_row, part.clone()));
            }
            first_row += part.rows;
        }
        if first_row != rows_total {
            return Err(Stop::Fatal(format!(
                "the manifest's parts hold {first_row} rows but its totals say {rows_total}; it is not a Sluice manifest"
            )));
        }

        let (batch_tx, mut batch_rx) =
            tokio::sync::mpsc::channel::<Result<InputBatch, ReadError>>(self.spec.max_in_flight * 2);
        let (part_tx, mut part_rx) = tokio::sync::mpsc::channel::<PartFeed>(1);
        let part_columns = manifest.columns.clone();
        let reading = reading.clone();
        let parser = tokio::task::spawn_blocking(move || {
            let mut current: Option<InputBatch> = None;
            while let Some((first, part, bytes)) = part_rx.blocking_recv() {
                let reader = ChannelReader { rx: bytes, chunk: Vec::new(), pos: 0 };
                let mut send_failed = false;
                let result = read_part(&part, &part_columns, &reading, reader, |i, row| {
                    let index = first + i;
                    let seq = index / batch_size;
                    if index < from_row || skip.contains(&seq) {
                        return true;
                    }
                    if let Some(full) = current.take_if(|b| b.seq != seq) {
                        if batch_tx.blocking_send(Ok(full)).is_err() {
                            send_failed = true;
                            return false;
                        }
                    }
                    current.get_or_insert_with(|| InputBatch { seq, first: index, rows: Vec::new() }).rows.push(row);
                    true
                });
                if send_failed {
                    return;
                }
                if let Err(e) = result {
                    let _ = batch_tx.blocking_send(Err(e));
                    return;
                }
            }
            if let Some(b) = current.take() {
                let _ = batch_tx.blocking_send(Ok(b));
            }
        });

        // Streams each wanted part's bytes to the parser, one part at a time.
        let store = self.ports.store;
        let feeder = async move {
            for (first, part) in wanted {
                let (tx, rx) = tokio::sync::mpsc::channel(4);
                let key = part.key.clone();
                if part_tx.send((first, part, rx)).await.is_err() {
                    return Ok(());
                }
                let mut stream = match store.read(&key).await {
                    Ok(Some(s)) => s,
                    Ok(None) => return Err(Stop::Fatal(format!("part {key} listed in the manifest is missing"))),
                    Err(e) => return Err(Stop::Store(key, e)),
                };
                while let Some(chunk) = stream.next().await {
                    let failed = chunk.is_err();
                    if tx.send(chunk).await.is_err() || failed {
                        return Ok(());
                    }
                }
            }
            Ok(())
        };

        let consumer = async {
            let mut inflight = FuturesUnordered::new();
            let mut input_done = false;
            let mut stop: Option<Stop> = None;
            let mut last_checkpoint = Instant::now();
            // The claim is renewed on a timer too, so a delivery waiting in retries longer than
            // the claim lasts is not taken over while it still runs.
            let renew_every = (self.opts.claim_ttl / 3).max(Duration::from_millis(10));
            let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + renew_every, renew_every);
            renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let room = inflight.len() < self.spec.max_in_flight && !input_done && stop.is_none();
                tokio::select! {
                    _ = renew.tick(), if !inflight.is_empty() && stop.is_none() => {
                        record.updated_at = Utc::now();
                        if let Err(e) = self.ports.ledger.save(record, &self.opts.owner, Some(self.opts.claim_ttl)).await {
                            stop.get_or_insert(Stop::Fatal(format!("renewing the claim failed (was it taken over?): {e}")));
                        }
                    }
                    done = inflight.next(), if !inflight.is_empty() => {
                        match done {
                            Some(Ok(result)) => {
                                let result: BatchResult = result;
                                if !result.failures.is_empty() {
                                    if let Err(e) = self.write_failure_piece(failures_key, result.seq, &result.failures).await {
                                        stop.get_or_insert(e);
                                        continue;
                                    }
                                }
                                record.progress.ahead.push(SettledBatch {
                                    seq: result.seq,
                                    delivered: result.delivered,
                                    failed: result.failures.len() as u64,
                                });
                                settle(&mut record.progress, rows_total);
                                if last_checkpoint.elapsed() >= CHECKPOINT_EVERY || !result.failures.is_empty() {
                                    record.updated_at = Utc::now();
                                    if let Err(e) = self.ports.ledger.save(record, &self.opts.owner, Some(self.opts.claim_ttl)).await {
                                        stop.get_or_insert(Stop::Fatal(format!("saving progress failed (was the claim taken over?): {e}")));
                                    }
                                    last_checkpoint = Instant::now();
                                }
                            }
                            Some(Err(s)) => { stop.get_or_insert(s); }
                            None => {}
                        }
                    }
                    next = batch_rx.recv(), if room => match next {
                        Some(Ok(batch)) => {
                            if self.past_deadline() {
                                stop.get_or_insert(Stop::Deadline);
                            } else {
                                inflight.push(self.deliver_batch(batch, mapper, &columns, key_prefix));
                            }
                        }
                        Some(Err(e)) => { stop.get_or_insert(Stop::Fatal(error_chain(&e))); }
                        None => input_done = true,
                    },
                    else => break,
                }
            }
            drop(batch_rx);
            match stop {
                Some(s) => Err(s),
                None => Ok(()),
            }
        };

        let (fed, consumed) = futures::join!(feeder, consumer);
        let _ = parser.await;
        // A part that could not be fetched is the cause of whatever the parser then reported.
        fed?;
        consumed?;
        if record.progress.settled_rows != rows_total {
            return Err(Stop::Fatal(format!(
                "{} of {rows_total} rows settled after reading every part; the parts do not match the manifest",
                record.progress.settled_rows
            )));
        }
        Ok(())
    }
}

/// A blocking `Read` over chunks sent from async code.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, BoxError>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
