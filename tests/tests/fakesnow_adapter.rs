//! The fakesnow adapter's own tests (`tests/fakesnow/test_adapter.py`), run by the project venv's
//! Python so that `cargo nextest` covers the harness as well as the code it tests.

use std::process::Command;

use sluice_testkit::moto::repo_root;

#[test]
fn the_fakesnow_adapter_passes_its_own_tests() {
    let python = repo_root().join(".tools/venv/bin/python");
    assert!(python.exists(), "{} is missing: run scripts/setup.sh (scripts/test.sh does)", python.display());
    let out = Command::new(python)
        .args(["-m", "unittest", "discover", "-s"])
        .arg(repo_root().join("tests/fakesnow"))
        .output()
        .expect("python runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "adapter tests failed:\n{stderr}");
    assert!(stderr.contains("OK"), "{stderr}");
}
