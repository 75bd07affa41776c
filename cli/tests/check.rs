//! The `check` strategy through the `sluice` binary: `plan` shows the ordered read and the
//! state it compares with, `run`, `status` and `history` show inserts, updates and deletes.

use std::path::Path;
use std::process::{Command, Output};

use sluice_testkit::{create_contacts, insert_contacts};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

fn sluice(config: &Path, args: &[&str]) -> String {
    let out: Output = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("SLUICE_CONFIG")
        .env_remove("SLUICE_HISTORY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn plan_run_status_and_history_show_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let db = create_contacts(&dir.path().join("source.db"));
    insert_contacts(&db, 1, 30, "2025-06-01 00:00:00");
    let config = dir.path().join("sluice.toml");
    std::fs::write(
        &config,
        "version = 1\n[sources.db]\nkind = \"sqlite\"\npath = \"source.db\"\n\n[[export]]\nname = \"crm\"\nsource = \"db\"\n\
         destination = \"out\"\n\n[[export.table]]\nname = \"contacts\"\n\
         incremental = { strategy = \"check\", key = [\"id\"], columns = [\"email\", \"name\"], deletes = true }\n",
    )
    .unwrap();

    let plan = sluice(&config, &["plan"]);
    assert!(plan.contains("ORDER BY \"id\"") && plan.contains("every row is exported as an insert"), "{plan}");
    let first: serde_json::Value = serde_json::from_str(&sluice(&config, &["--json", "run"])).unwrap();
    assert_eq!(first[0]["tables"][0]["changes"]["inserts"], 30, "{first}");

    // A checked column, an unchecked one (version), a delete.
    db.execute_batch(
        "UPDATE contacts SET email = 'new@example.com' WHERE id = 3;
         UPDATE contacts SET version = version + 1 WHERE id = 4;
         DELETE FROM contacts WHERE id = 5;",
    )
    .unwrap();
    let plan = sluice(&config, &["plan"]);
    assert!(plan.contains("state:     crm/contacts/") && plan.contains("_sluice_op = \"delete\""), "{plan}");
    let second: serde_json::Value = serde_json::from_str(&sluice(&config, &["--json", "run"])).unwrap();
    let changes = &second[0]["tables"][0]["changes"];
    assert_eq!(
        (changes["inserts"].as_u64(), changes["updates"].as_u64(), changes["deletes"].as_u64()),
        (Some(0), Some(1), Some(1))
    );
    assert_eq!(second[0]["rows"], 2, "{second}");

    let status = sluice(&config, &["status"]);
    assert!(status.contains("succeeded (+0 ~1 -1)") && status.contains("state of "), "{status}");
    let history = sluice(&config, &["history", "crm"]);
    assert!(
        history.contains("WINDOW/CHANGES") && history.contains("+0 ~1 -1") && history.contains("+30 ~0 -0"),
        "{history}"
    );
}
