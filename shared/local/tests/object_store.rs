//! The folder destination keeps the `ObjectStore` contract every store keeps.

use sluice_local::DirectoryStore;

#[tokio::test]
async fn the_folder_store_keeps_the_object_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    sluice_testkit::object_store::check_contract(&DirectoryStore::new(dir.path().join("out"))).await;
}
