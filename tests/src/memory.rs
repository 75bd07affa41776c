//! In-memory adapters: an object store, a history and an event sink in maps, for unit tests of
//! the runner and of code that writes and reads a destination, without a folder, a bucket or a
//! table. Each keeps its port's contract as the real adapters do (the suites in this crate run
//! on them).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_core::ports::{
    ByteStream, EventSink, HistoryStore, Lease, LeaseOwner, ObjectMeta, ObjectStore, ObjectWriter, RunEvent, RunRecord,
    RunState, WatermarkRecord, LEASE_TAKEOVER_MARGIN,
};
use sluice_core::value::Watermark;
use sluice_core::{BoxError, HistoryError};

type Objects = Arc<Mutex<BTreeMap<String, Vec<u8>>>>;

/// Objects by key, shared by clones.
#[derive(Clone, Default)]
pub struct MemoryStore {
    objects: Objects,
}

impl MemoryStore {
    pub fn new() -> Self {
        MemoryStore::default()
    }

    fn objects(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// An object being written: its bytes stay here until `finish` puts them under the key.
struct MemoryWriter {
    key: String,
    bytes: Vec<u8>,
    objects: Objects,
}

#[async_trait]
impl ObjectWriter for MemoryWriter {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), BoxError> {
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }
    async fn finish(self: Box<Self>) -> Result<u64, BoxError> {
        let size = self.bytes.len() as u64;
        self.objects.lock().unwrap_or_else(|p| p.into_inner()).insert(self.key, self.bytes);
        Ok(size)
    }
    async fn abort(self: Box<Self>) -> Result<(), BoxError> {
        Ok(())
    }
}

#[async_trait]
impl ObjectStore for MemoryStore {
    fn location(&self) -> String {
        "memory:".into()
    }
    async fn create(&self, key: &str, _: &ObjectMeta) -> Result<Box<dyn ObjectWriter>, BoxError> {
        Ok(Box::new(MemoryWriter { key: key.to_string(), bytes: Vec::new(), objects: self.objects.clone() }))
    }
    async fn put(&self, key: &str, bytes: Vec<u8>, _: &ObjectMeta) -> Result<(), BoxError> {
        self.objects().insert(key.to_string(), bytes);
        Ok(())
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BoxError> {
        Ok(self.objects().get(key).cloned())
    }
    async fn get_tagged(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, BoxError> {
        Ok(self.objects().get(key).map(|b| (b.clone(), sluice_core::ports::content_tag(b))))
    }
    async fn read(&self, key: &str) -> Result<Option<ByteStream>, BoxError> {
        let Some(bytes) = self.objects().get(key).cloned() else { return Ok(None) };
        // In pieces, as a real stream arrives.
        let chunks: Vec<Result<Vec<u8>, BoxError>> = bytes.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
        Ok(Some(Box::pin(futures::stream::iter(chunks))))
    }
    async fn delete(&self, key: &str) -> Result<(), BoxError> {
        self.objects().remove(key);
        Ok(())
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, BoxError> {
        let keys = self.list(prefix).await?;
        let mut objects = self.objects();
        for k in &keys {
            objects.remove(k);
        }
        Ok(keys.len() as u64)
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, BoxError> {
        // A prefix is a folder, as in the other stores: `e/t` holds `e/t/…`, not `e/t2/…`.
        let folder = prefix.trim_end_matches('/');
        let under = |k: &String| folder.is_empty() || k.strip_prefix(folder).is_some_and(|rest| rest.starts_with('/'));
        Ok(self.objects().keys().filter(|k| under(k)).cloned().collect())
    }
}

// ---------------------------------------------------------------------------------------------
// History
// ---------------------------------------------------------------------------------------------

/// Leases, runs and watermarks in maps, behind one lock so each call is one atomic step, as a
/// transaction is in the history file and a conditional write in DynamoDB. It keeps the
/// `HistoryStore` contract (`history::check_contract` runs on it); the runner's unit tests run
/// on it in milliseconds.
#[derive(Clone, Default)]
pub struct MemoryHistory {
    state: Arc<Mutex<HistoryState>>,
}

#[derive(Default)]
struct HistoryState {
    leases: BTreeMap<String, Lease>,
    /// By (export, table, run id).
    runs: BTreeMap<(String, String, String), RunRecord>,
    /// By (export, table).
    watermarks: BTreeMap<(String, String), WatermarkRecord>,
}

impl MemoryHistory {
    pub fn new() -> Self {
        MemoryHistory::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, HistoryState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl HistoryState {
    fn holds(&self, lease: &Lease) -> bool {
        self.leases.get(&lease.export).is_some_and(|l| l.owner.run_id == lease.owner.run_id)
    }
}

fn expiry(ttl: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(1))
}

#[async_trait]
impl HistoryStore for MemoryHistory {
    async fn acquire_lease(&self, export: &str, owner: &LeaseOwner, ttl: Duration) -> Result<Lease, HistoryError> {
        let mut s = self.state();
        let margin = chrono::Duration::from_std(LEASE_TAKEOVER_MARGIN).unwrap_or_default();
        if let Some(held) = s.leases.get(export).filter(|l| l.owner.run_id != owner.run_id) {
            if held.expires_at > Utc::now() - margin {
                return Err(HistoryError::LeaseHeld {
                    owner: held.owner.to_string(),
                    expires_at: held.expires_at.to_rfc3339(),
                });
            }
        }
        let lease = Lease { export: export.to_string(), owner: owner.clone(), expires_at: expiry(ttl) };
        s.leases.insert(export.to_string(), lease.clone());
        Ok(lease)
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<Lease, HistoryError> {
        let mut s = self.state();
        if !s.holds(lease) {
            return Err(HistoryError::LeaseLost);
        }
        let renewed = Lease { expires_at: expiry(ttl), ..lease.clone() };
        s.leases.insert(lease.export.clone(), renewed.clone());
        Ok(renewed)
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), HistoryError> {
        let mut s = self.state();
        if s.holds(lease) {
            s.leases.remove(&lease.export);
        }
        Ok(())
    }

    async fn lease(&self, export: &str) -> Result<Option<Lease>, HistoryError> {
        Ok(self.state().leases.get(export).filter(|l| l.expires_at > Utc::now()).cloned())
    }

    async fn watermark(&self, export: &str, table: &str) -> Result<Option<WatermarkRecord>, HistoryError> {
        Ok(self.state().watermarks.get(&(export.to_string(), table.to_string())).cloned())
    }

    async fn watermarks(&self, export: &str) -> Result<Vec<WatermarkRecord>, HistoryError> {
        Ok(self.state().watermarks.values().filter(|w| w.export == export).cloned().collect())
    }

    async fn begin_run(&self, lease: &Lease, run: &RunRecord) -> Result<(), HistoryError> {
        let mut s = self.state();
        if !s.holds(lease) {
            return Err(HistoryError::LeaseLost);
        }
        s.runs.insert((run.export.clone(), run.table.clone(), run.run_id.clone()), run.clone());
        Ok(())
    }

    async fn commit_run(
        &self,
        lease: &Lease,
        run: &RunRecord,
        expected: Option<&Watermark>,
        new: Option<&Watermark>,
    ) -> Result<(), HistoryError> {
        let mut s = self.state();
        if !s.holds(lease) {
            return Err(HistoryError::LeaseLost);
        }
        let key = (run.export.clone(), run.table.clone());
        let found = s.watermarks.get(&key).map(|w| w.watermark.clone());
        if found.as_ref() != expected {
            return Err(HistoryError::WatermarkMoved { expected: expected.cloned(), found });
        }
        let mut done = run.clone();
        done.state = RunState::Succeeded;
        s.runs.insert((run.export.clone(), run.table.clone(), run.run_id.clone()), done);
        if let Some(w) = new {
            let record = WatermarkRecord {
                export: run.export.clone(),
                table: run.table.clone(),
                watermark: w.clone(),
                run_id: run.run_id.clone(),
                committed_at: Utc::now(),
            };
            s.watermarks.insert(key, record);
        }
        Ok(())
    }

    async fn fail_run(&self, run: &RunRecord) -> Result<(), HistoryError> {
        let mut s = self.state();
        let key = (run.export.clone(), run.table.clone(), run.run_id.clone());
        if s.runs.get(&key).is_some_and(|r| r.state == RunState::Succeeded) {
            return Ok(());
        }
        s.runs.insert(key, RunRecord { state: RunState::Failed, ..run.clone() });
        Ok(())
    }

    async fn runs(&self, export: &str, limit: usize) -> Result<Vec<RunRecord>, HistoryError> {
        let mut runs: Vec<RunRecord> = self.state().runs.values().filter(|r| r.export == export).cloned().collect();
        runs.sort_by(|a, b| {
            (b.started_at, &b.run_id).cmp(&(a.started_at, &a.run_id)).then_with(|| a.table.cmp(&b.table))
        });
        runs.truncate(limit);
        Ok(runs)
    }

    async fn run(
        &self,
        export: &str,
        table: &str,
        run_id: &str,
        started_at: DateTime<Utc>,
    ) -> Result<Option<RunRecord>, HistoryError> {
        let s = self.state();
        let found = s.runs.get(&(export.to_string(), table.to_string(), run_id.to_string()));
        Ok(found.filter(|r| r.started_at == started_at).cloned())
    }

    async fn open_runs(&self, export: &str) -> Result<Vec<RunRecord>, HistoryError> {
        let mut runs: Vec<RunRecord> = self
            .state()
            .runs
            .values()
            .filter(|r| r.export == export && r.state == RunState::Running)
            .cloned()
            .collect();
        runs.sort_by_key(|r| r.started_at);
        Ok(runs)
    }
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/// Events kept in order, as an EventBridge consumer would receive them (`detail-type`,
/// `source`, `detail`), for tests that check what was announced.
#[derive(Clone, Default)]
pub struct MemoryEvents {
    entries: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl MemoryEvents {
    pub fn new() -> Self {
        MemoryEvents::default()
    }

    /// What was published so far, oldest first.
    pub fn entries(&self) -> Vec<serde_json::Value> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl EventSink for MemoryEvents {
    async fn publish(&self, event: &RunEvent) -> Result<(), BoxError> {
        let entry = serde_json::json!({
            "source": "sluice",
            "detail-type": event.detail_type,
            "detail": serde_json::to_value(&event.detail)?,
        });
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).push(entry);
        Ok(())
    }
}
