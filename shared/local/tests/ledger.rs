//! The delivery ledger in the history file: the contract every ledger keeps, and the take-over
//! of a claim whose process on this machine is gone.

use std::time::Duration;

use sluice_core::ports::{Claim, DeliveryId, DeliveryLedger};
use sluice_local::SqliteHistory;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delivery_ledger_in_the_history_file_keeps_its_contract() {
    let dir = tempfile::tempdir().unwrap();
    let history = SqliteHistory::open(&dir.path().join("history.db"), "test-host").unwrap();
    sluice_testkit::ledger::check_contract(&history).await;
}

#[tokio::test]
async fn a_claim_of_a_process_that_is_gone_is_taken_over_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let history = SqliteHistory::open(&dir.path().join("history.db"), "test-host").unwrap();
    let id = DeliveryId { integration: "hook".into(), manifest_key: "e/t/r/manifest.json".into(), etag: "x".into() };
    let ttl = Duration::from_secs(3600);
    // pid 999999999 cannot exist; a live one (this process) holds on.
    assert!(matches!(history.claim(&id, "test-host:999999999:a", ttl, 1).await.unwrap(), Claim::Mine(_)));
    assert!(matches!(history.claim(&id, "test-host:1:b", ttl, 1).await.unwrap(), Claim::Mine(_)));
    let me = format!("test-host:{}:c", std::process::id());
    let other = DeliveryId { etag: "y".into(), ..id };
    assert!(matches!(history.claim(&other, &me, ttl, 1).await.unwrap(), Claim::Mine(_)));
    assert!(matches!(history.claim(&other, "test-host:1:d", ttl, 1).await.unwrap(), Claim::Held { .. }));
}
