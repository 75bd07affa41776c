//! The manifest chain's previous link: the table's last committed manifest, found before the
//! table's run starts, so its columns can be compared with the source's (schema drift) and its
//! key and hash recorded in the new manifest.

use tracing::warn;

use crate::layout::RunFolder;
use crate::manifest::{Manifest, ManifestLink};
use crate::ports::{HistoryStore, ObjectStore, RunState};
use crate::spec::export::{ExportSpec, TableSpec};
use crate::strategy::Strategy;

/// The table's last committed manifest: the link to record, and the manifest as read (`None`
/// when it could not be read).
#[derive(Debug, Clone)]
pub struct Previous {
    pub link: ManifestLink,
    pub manifest: Option<Manifest>,
}

/// The table's last committed manifest, with the hash of its bytes. Every committed timestamp
/// or check run moves the watermark, and `committed_by` (read with it when the table's run
/// started) names that run; a full run leaves the watermark alone (it may name the last run of
/// another strategy), so a full table's last run is found among the export's recent run
/// records, or else in the destination's listing. A store that cannot be read leaves the hash
/// out rather than failing the run: the link is recorded, unproven (`verify` reports it).
pub async fn previous_manifest(
    history: &dyn HistoryStore,
    store: &dyn ObjectStore,
    export: &ExportSpec,
    table: &TableSpec,
    committed_by: Option<&str>,
) -> Option<Previous> {
    let from_watermark = match table.incremental.strategy() {
        Strategy::Full => None,
        _ => committed_by.map(|run_id| RunFolder::of(&export.name, &table.name, run_id).manifest()),
    };
    let key = match from_watermark {
        Some(key) => key,
        None => {
            let runs = match history.runs(&export.name, 500).await {
                Ok(runs) => runs,
                Err(e) => {
                    warn!(export = %export.name, table = %table.name, error = %e, "reading the runs for the manifest chain failed; the manifest has no link");
                    return None;
                }
            };
            match runs.iter().find(|r| r.table == table.name && r.state == RunState::Succeeded) {
                Some(last) => last.manifest_key.clone(),
                // Older than the runs read: the destination's listing names it.
                None => match crate::verify::newest_manifest(store, &export.name, &table.name).await {
                    Ok(Some(key)) => key,
                    Ok(None) => return None,
                    Err(e) => {
                        warn!(export = %export.name, table = %table.name, error = %e, "listing the table's runs for the manifest chain failed; the manifest has no link");
                        return None;
                    }
                },
            }
        }
    };
    let (sha256, manifest) = match store.get(&key).await {
        Ok(Some(bytes)) => {
            use sha2::{Digest, Sha256};
            let manifest = serde_json::from_slice::<Manifest>(&bytes)
                .map_err(|e| warn!(export = %export.name, table = %table.name, key = %key, error = %e, "the previous manifest cannot be read; its columns are not compared"))
                .ok();
            (Some(hex::encode(Sha256::digest(&bytes))), manifest)
        }
        Ok(None) => (None, None),
        Err(e) => {
            warn!(export = %export.name, table = %table.name, key = %key, error = %e, "reading the previous manifest failed; its link is recorded without a hash");
            (None, None)
        }
    };
    Some(Previous { link: ManifestLink { key, sha256 }, manifest })
}
