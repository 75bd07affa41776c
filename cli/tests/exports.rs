//! Managed exports through the `sluice` binary, on the embedded store (the history file): the
//! lifecycle from draft to deletion, activation refused by the real source, a managed export
//! run and shown by `status`, a stale edit refused, and `sluice apply` as a plan/apply flow.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sluice_testkit::{create_contacts, insert_contacts};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

fn sluice(config: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("SLUICE_CONFIG")
        .env_remove("SLUICE_HISTORY")
        .env("USER", "tester")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}", text(&o));
    o
}

fn json(o: Output) -> Value {
    serde_json::from_slice(&ok(o).stdout).unwrap()
}

/// A sample database with `contacts`, a config declaring it as source `db` (no exports of its
/// own), and a definition file for export `crm`.
fn workspace() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    insert_contacts(&create_contacts(&dir.path().join("source.db")), 1, 40, "2025-06-01 00:00:00");
    let config = dir.path().join("sluice.toml");
    std::fs::write(
        &config,
        "version = 1\nhistory = \"history.db\"\n\n[sources.db]\nkind = \"sqlite\"\npath = \"source.db\"\n",
    )
    .unwrap();
    let definition = dir.path().join("crm.toml");
    std::fs::write(
        &definition,
        "[[export]]\nname = \"crm\"\nsource = \"db\"\ndestination = \"out\"\n\n[[export.table]]\nname = \"contacts\"\n\
         incremental = { strategy = \"timestamp\", column = \"updated_at\" }\n",
    )
    .unwrap();
    (dir, config, definition)
}

#[test]
fn an_export_goes_from_draft_to_active_runs_is_edited_and_deleted_with_every_change_audited() {
    let (dir, cfg, definition) = workspace();
    let e = json(sluice(&cfg, &["--json", "exports", "create", "--from", definition.to_str().unwrap()]));
    assert_eq!((e["state"].as_str(), e["revision"].as_u64()), (Some("draft"), Some(1)));
    assert_eq!(e["updated_by"].as_str().unwrap().split('@').next(), Some("tester"));
    // A draft does not run.
    let out = sluice(&cfg, &["run", "--export", "crm"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    // Activation checks the real source: a table that is not there is refused, by name.
    ok(sluice(
        &cfg,
        &["exports", "edit", "crm", "--add-table", "name = \"orders\"\nincremental = { strategy = \"full\" }"],
    ));
    let out = sluice(&cfg, &["exports", "activate", "crm"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("cannot be activated") && text(&out).contains("table orders"), "{}", text(&out));
    ok(sluice(&cfg, &["exports", "edit", "crm", "--remove-table", "orders"]));
    let e = json(sluice(&cfg, &["--json", "exports", "activate", "crm"]));
    assert_eq!((e["state"].as_str(), e["active_version"].as_u64()), (Some("active"), Some(3)));

    // It runs like an export of the file, and `status` shows it.
    let run = json(sluice(&cfg, &["--json", "run", "--export", "crm"]));
    assert_eq!(run[0]["tables"][0]["rows"], 40, "{run}");
    let status = json(sluice(&cfg, &["--json", "status"]));
    let crm = status.as_array().unwrap().iter().find(|x| x["export"] == "crm").unwrap().clone();
    assert_eq!(crm["state"], "active", "{crm}");
    assert_eq!(crm["managed"]["active_version"], 3, "{crm}");

    // Editing makes a draft; the active version keeps running. A stale revision is refused.
    let e = json(sluice(&cfg, &["--json", "exports", "show", "crm"]));
    let revision = e["entry"]["revision"].as_u64().unwrap().to_string();
    ok(sluice(&cfg, &["exports", "edit", "crm", "--destination", "out2", "--revision", &revision]));
    let out = sluice(&cfg, &["exports", "edit", "crm", "--destination", "out3", "--revision", &revision]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains(&format!("changed since revision {revision}")), "{}", text(&out));
    let shown = String::from_utf8(ok(sluice(&cfg, &["exports", "show", "crm"])).stdout).unwrap();
    assert!(shown.contains("destination = \"out2\"") && shown.contains("active version 3, draft 4"), "{shown}");
    // What `show` prints is a config section: saved to a file, `apply` reads it back unchanged.
    let saved = dir.path().join("shown.toml");
    std::fs::write(&saved, &shown).unwrap();
    let again = String::from_utf8(ok(sluice(&cfg, &["apply", saved.to_str().unwrap(), "--dry-run"])).stdout).unwrap();
    assert!(again.contains("crm: unchanged"), "{again}");
    ok(sluice(&cfg, &["exports", "discard", "crm"]));

    // An orchestration binds it to a schedule; `status` shows it with its next run, and while
    // it exists the export is deleted only with --force.
    let out = sluice(&cfg, &["orchestrations", "create", "crm", "nightly", "--schedule", "cron(0 2 * * *)"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("needs 6"), "{}", text(&out));
    let o = json(sluice(
        &cfg,
        &["--json", "orchestrations", "create", "crm", "nightly", "--schedule", "cron(0 2 * * ? *)"],
    ));
    assert_eq!((o["state"].as_str(), o["schedule"].as_str()), (Some("running"), Some("cron(0 2 * * ? *)")), "{o}");
    let next = o["next_run"].as_str().unwrap();
    assert!(next.contains("T02:00:00"), "{o}");
    let status = String::from_utf8(ok(sluice(&cfg, &["status"])).stdout).unwrap();
    assert!(status.contains("ORCHESTRATION") && status.contains("nightly") && status.contains("02:00 UTC"), "{status}");
    ok(sluice(&cfg, &["orchestrations", "pause", "crm", "nightly"]));
    let listed = json(sluice(&cfg, &["--json", "orchestrations", "list"]));
    assert_eq!((listed[0]["state"].as_str(), listed[0]["next_run"].as_str()), (Some("paused"), None), "{listed}");
    ok(sluice(&cfg, &["orchestrations", "resume", "crm", "nightly"]));
    let out = sluice(&cfg, &["exports", "delete", "crm"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // The way to force it is the CLI's, not the API's.
    let why = text(&out);
    assert!(why.contains("orchestration nightly") && why.contains("sluice exports delete crm --force"), "{why}");
    assert!(!why.contains("?force=true"), "{why}");

    // Pause, resume, delete: exported files and history stay.
    ok(sluice(&cfg, &["exports", "pause", "crm"]));
    let listed = json(sluice(&cfg, &["--json", "orchestrations", "list"]));
    assert_eq!(listed[0]["state"], "export paused", "{listed}");
    ok(sluice(&cfg, &["exports", "resume", "crm"]));
    ok(sluice(&cfg, &["exports", "delete", "crm", "--force"]));
    let listed = json(sluice(&cfg, &["--json", "orchestrations", "list"]));
    assert_eq!(listed, serde_json::json!([]), "the orchestration went with it");
    let out = sluice(&cfg, &["run", "--export", "crm"]);
    assert_eq!(out.status.code(), Some(2), "a deleted export does not run: {}", text(&out));
    assert!(dir.path().join("out/crm/contacts").is_dir());
    let history = json(sluice(&cfg, &["--json", "history", "crm"]));
    assert!(!history.as_array().unwrap().is_empty(), "{history}");

    let audit = String::from_utf8(ok(sluice(&cfg, &["exports", "audit", "crm"])).stdout).unwrap();
    let actions: Vec<&str> =
        audit.lines().filter(|l| l.starts_with("revision")).map(|l| l.split(' ').nth(5).unwrap()).collect();
    assert_eq!(
        actions,
        [
            "delete",
            "resume",
            "pause",
            "resume",
            "pause",
            "orchestrate",
            "discard",
            "edit",
            "activate",
            "edit",
            "edit",
            "create"
        ],
        "{audit}"
    );
    assert!(audit.contains("by tester@") && audit.contains("+ destination = \"out2\""), "{audit}");

    // A deleted export's name: one story. Edit and activate say to create it again; create
    // reuses the name with the next version, its earlier runs and audit trail kept.
    for change in [&["exports", "edit", "crm", "--remove-table", "contacts"][..], &["exports", "activate", "crm"]] {
        let out = sluice(&cfg, change);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(text(&out).contains("is deleted: create it again under its name"), "{change:?}: {}", text(&out));
    }
    let again = json(sluice(&cfg, &["--json", "exports", "create", "--from", definition.to_str().unwrap()]));
    assert_eq!((again["state"].as_str(), again["active_version"].as_u64()), (Some("draft"), None), "{again}");
    assert!(again["draft_version"].as_u64().unwrap() > 1, "the next version: {again}");
    ok(sluice(&cfg, &["exports", "activate", "crm"]));
    assert!(!json(sluice(&cfg, &["--json", "history", "crm"])).as_array().unwrap().is_empty(), "runs kept");
}

#[test]
fn apply_creates_edits_and_activates_what_a_file_declares_and_a_dry_run_changes_nothing() {
    let (_dir, cfg, definition) = workspace();
    let plan =
        String::from_utf8(ok(sluice(&cfg, &["apply", definition.to_str().unwrap(), "--dry-run"])).stdout).unwrap();
    assert!(plan.contains("crm: create"), "{plan}");
    assert_eq!(json(sluice(&cfg, &["--json", "exports", "list"])), serde_json::json!([]));

    let applied = json(sluice(&cfg, &["--json", "apply", definition.to_str().unwrap(), "--activate"]));
    assert_eq!(applied[0]["action"], "create");
    assert_eq!(applied[0]["entry"]["state"], "active");
    // Unchanged the second time; a changed file is an edit with its diff.
    let again = String::from_utf8(ok(sluice(&cfg, &["apply", definition.to_str().unwrap()])).stdout).unwrap();
    assert!(again.contains("crm: unchanged"), "{again}");
    let text_def = std::fs::read_to_string(&definition).unwrap().replace("\"out\"", "\"exports\"");
    std::fs::write(&definition, text_def).unwrap();
    let edit = String::from_utf8(ok(sluice(&cfg, &["apply", definition.to_str().unwrap()])).stdout).unwrap();
    assert!(
        edit.contains("crm: edit")
            && edit.contains("- destination = \"out\"")
            && edit.contains("+ destination = \"exports\""),
        "{edit}"
    );
    let list = json(sluice(&cfg, &["--json", "exports", "list"]));
    assert_eq!((list[0]["active_version"].as_u64(), list[0]["draft_version"].as_u64()), (Some(1), Some(2)));
    // The same file again with --activate: the draft it already is gets activated, not left
    // "unchanged".
    let activated = json(sluice(&cfg, &["--json", "apply", definition.to_str().unwrap(), "--activate"]));
    assert_eq!(activated[0]["action"], "activate", "{activated}");
    let list = json(sluice(&cfg, &["--json", "exports", "list"]));
    assert_eq!((list[0]["active_version"].as_u64(), list[0]["draft_version"].as_u64()), (Some(2), None));

    // A file with an invalid export changes nothing and names the problem.
    let bad = definition.with_file_name("bad.toml");
    std::fs::write(&bad, "[[export]]\nname = \"bad\"\nsource = \"nope\"\ndestination = \"out\"\n[[export.table]]\nname = \"t\"\nincremental = { strategy = \"full\" }\n").unwrap();
    let out = sluice(&cfg, &["apply", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("nope"), "{}", text(&out));
    assert_eq!(json(sluice(&cfg, &["--json", "exports", "list"])).as_array().unwrap().len(), 1);

    // An export the store holds and the file does not is left alone, and said.
    let other = definition.with_file_name("other.toml");
    std::fs::write(&other, std::fs::read_to_string(&definition).unwrap().replace("\"crm\"", "\"crm2\"")).unwrap();
    let plan = String::from_utf8(ok(sluice(&cfg, &["apply", other.to_str().unwrap(), "--dry-run"])).stdout).unwrap();
    assert!(
        plan.contains("crm2: create") && plan.contains("crm: not in") && plan.contains("exports delete crm"),
        "{plan}"
    );
}

#[test]
fn a_managed_export_that_no_longer_validates_is_named_and_the_rest_still_work() {
    let (_dir, cfg, definition) = workspace();
    ok(sluice(&cfg, &["apply", definition.to_str().unwrap(), "--activate"]));
    // The file's source is renamed: the active version names a source that is gone.
    let renamed = std::fs::read_to_string(&cfg).unwrap().replace("[sources.db]", "[sources.warehouse]");
    std::fs::write(&cfg, renamed).unwrap();
    let out = sluice(&cfg, &["status"]);
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("crm") && said.contains("no source named") && said.contains("left out until it is fixed"),
        "{said}"
    );
    // Its definition can still be read and fixed.
    ok(sluice(&cfg, &["exports", "edit", "crm", "--source", "warehouse"]));
    ok(sluice(&cfg, &["exports", "activate", "crm"]));
    let status = json(sluice(&cfg, &["--json", "status"]));
    assert_eq!(status[0]["export"], "crm", "{status}");
}

/// `sluice run --due` on one machine: an export runs when one of its schedules has come round
/// since its last run (a managed export's running orchestration, or a file export's
/// `schedule`), so cron can call it every minute.
#[test]
fn run_due_runs_what_a_schedule_has_come_round_for() {
    let (_dir, cfg, definition) = workspace();
    // A file export with a daily schedule beside the managed one.
    let mut file = std::fs::read_to_string(&cfg).unwrap();
    file.push_str(
        "\n[[export]]\nname = \"daily\"\nsource = \"db\"\ndestination = \"out\"\nschedule = \"rate(1 day)\"\n\n\
         [[export.table]]\nname = \"contacts\"\nincremental = { strategy = \"full\" }\n",
    );
    std::fs::write(&cfg, file).unwrap();
    ok(sluice(&cfg, &["apply", definition.to_str().unwrap(), "--activate"]));
    let names = |v: &Value| -> Vec<String> {
        let mut n: Vec<String> =
            v.as_array().unwrap().iter().map(|s| s["export"].as_str().unwrap().to_string()).collect();
        n.sort();
        n
    };
    // crm has no orchestration yet: only the file's scheduled export is due (it never ran).
    assert_eq!(names(&json(sluice(&cfg, &["--json", "run", "--due"]))), ["daily"]);
    ok(sluice(&cfg, &["orchestrations", "create", "crm", "hourly", "--schedule", "rate(1 hour)"]));
    // One rule for the list and for --due: a rate's first run is one interval after the
    // orchestration was created (as its EventBridge rule's), not at once.
    let listed = json(sluice(&cfg, &["--json", "orchestrations", "list"]));
    let next = chrono::DateTime::parse_from_rfc3339(listed[0]["next_run"].as_str().unwrap()).unwrap();
    assert!(next > chrono::Utc::now() + chrono::Duration::minutes(59), "{listed}");
    let early = String::from_utf8(ok(sluice(&cfg, &["run", "--due"])).stdout).unwrap();
    assert!(early.contains("nothing is due"), "the list says an hour from now: {early}");
    // An hour and a minute later (the orchestration made that long ago), it is due, once.
    let history = rusqlite::Connection::open(cfg.with_file_name("history.db")).unwrap();
    let ago = (chrono::Utc::now() - chrono::Duration::minutes(61)).to_rfc3339();
    history
        .execute(
            "UPDATE catalog SET record = json_set(record, '$.orchestrations[0].created_at', ?1) WHERE name = 'crm'",
            [&ago],
        )
        .unwrap();
    assert_eq!(names(&json(sluice(&cfg, &["--json", "run", "--due"]))), ["crm"], "crm's hour has come; daily just ran");
    let again = String::from_utf8(ok(sluice(&cfg, &["run", "--due"])).stdout).unwrap();
    assert!(again.contains("nothing is due"), "{again}");
    // A paused orchestration is never due.
    ok(sluice(&cfg, &["orchestrations", "pause", "crm", "hourly"]));
    let out = sluice(&cfg, &["run", "--due", "--export", "crm"]);
    assert_eq!(out.status.code(), Some(2), "--due picks the exports itself: {}", text(&out));
}

/// A file of sources only is how managed exports are kept: it is worth a warning only while the
/// catalog has no export either.
#[test]
fn a_file_of_sources_only_warns_of_no_exports_only_while_the_catalog_has_none() {
    let (_dir, cfg, definition) = workspace();
    let before = sluice(&cfg, &["status"]);
    assert!(text(&before).contains("no exports defined in the file"), "{}", text(&before));
    ok(sluice(&cfg, &["exports", "create", "--from", definition.to_str().unwrap()]));
    let after = ok(sluice(&cfg, &["status"]));
    assert!(!text(&after).contains("no exports defined"), "{}", text(&after));
}

/// Errors about a managed export say the state it is in and the command that changes it, not
/// file advice ("set state", "the file defines:" and nothing).
#[test]
fn a_managed_export_that_cannot_run_is_named_with_its_state_and_the_command_that_changes_it() {
    let (_dir, cfg, definition) = workspace();
    ok(sluice(&cfg, &["exports", "create", "--from", definition.to_str().unwrap()]));
    let draft = sluice(&cfg, &["run", "--export", "crm"]);
    assert_eq!(draft.status.code(), Some(2), "{}", text(&draft));
    assert!(
        text(&draft).contains("is a draft and does not run: activate it with `sluice exports activate crm`"),
        "{}",
        text(&draft)
    );
    let none = sluice(&cfg, &["run"]);
    assert_eq!(none.status.code(), Some(2), "{}", text(&none));
    assert!(
        text(&none).contains("sluice exports activate NAME") && !text(&none).contains("set state"),
        "{}",
        text(&none)
    );
    let unknown = sluice(&cfg, &["run", "--export", "nope"]);
    assert!(
        text(&unknown).contains("the file defines: none (`sluice exports list` shows the managed ones)"),
        "{}",
        text(&unknown)
    );
}

/// The `--add-table` example of `exports edit --help` works as written (one line).
#[test]
fn the_add_table_example_in_the_help_works_as_written() {
    let (_dir, cfg, definition) = workspace();
    ok(sluice(&cfg, &["exports", "create", "--from", definition.to_str().unwrap()]));
    let help = String::from_utf8(ok(sluice(&cfg, &["exports", "edit", "--help"])).stdout).unwrap();
    let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
    let example = flat.split("e.g. '").nth(1).and_then(|s| s.split('\'').next()).expect("an example in the help");
    let edited = sluice(&cfg, &["exports", "edit", "crm", "--add-table", &example.replace("contacts", "orders")]);
    assert!(edited.status.success(), "{example}: {}", text(&edited));
    let shown = String::from_utf8(ok(sluice(&cfg, &["exports", "show", "crm"])).stdout).unwrap();
    assert!(shown.contains("name = \"orders\""), "{shown}");
}
