//! The local event sink: one JSON line per event (`ExportSucceeded`, `IntegrationFailed`, …), appended to a file
//! beside the history, where a script can tail it as a consumer of EventBridge would.

use async_trait::async_trait;
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;

use sluice_core::ports::{EventSink, RunEvent};
use sluice_core::BoxError;

use crate::error::Error;

pub struct JsonlEventLog {
    path: PathBuf,
}

impl JsonlEventLog {
    pub fn new(path: PathBuf) -> Self {
        JsonlEventLog { path }
    }
}

/// The shape of an EventBridge entry, so local consumers see what AWS ones will.
#[derive(Serialize)]
struct Entry<'a> {
    source: &'static str,
    #[serde(rename = "detail-type")]
    detail_type: &'a str,
    time: chrono::DateTime<chrono::Utc>,
    detail: &'a sluice_core::ports::EventDetail,
}

#[async_trait]
impl EventSink for JsonlEventLog {
    async fn publish(&self, event: &RunEvent) -> Result<(), BoxError> {
        let entry = Entry {
            source: "sluice",
            detail_type: &event.detail_type,
            time: chrono::Utc::now(),
            detail: &event.detail,
        };
        let mut line = serde_json::to_vec(&entry)?;
        line.push(b'\n');
        let io = |source| Error::Io { op: "appending an event to", path: self.path.clone(), source };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.path).map_err(io)?;
        f.write_all(&line).map_err(io)?;
        Ok(())
    }
}
