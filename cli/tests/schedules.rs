//! `sluice schedules`: the schedules section of template.yaml written from a config, checked the
//! way a deployment would check it (cfn-lint, the SAM translator) and compared with what the CDK
//! app deploys from `sluice schedules --json`.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};
use sluice_testkit::moto::repo_root;
use sluice_testkit::stack::{assert_same_stack, run, synthesized, tool, translated};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

fn sluice(config: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("SLUICE_CONFIG")
        .env_remove("SLUICE_HISTORY")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

const EXPORTS: &str = r#"
[[export]]
name = "crm_updates"
source = "db"
destination = "s3://acme-exports/exports"
schedule = "rate(15 minutes)"
[[export.table]]
name = "contacts"
incremental = { strategy = "full" }

[[export]]
name = "nightly_orders"
source = "db"
destination = "s3://acme-exports/exports"
schedule = "cron(0 6 * * ? *)"
state = "paused"
[[export.table]]
name = "orders"
incremental = { strategy = "full" }

[[export]]
name = "accounts"
source = "db"
destination = "s3://acme-exports/exports"
[[export.table]]
name = "accounts"
incremental = { strategy = "full" }

[[export]]
name = "sketch"
source = "db"
destination = "s3://acme-exports/exports"
state = "draft"
[[export.table]]
name = "contacts"
incremental = { strategy = "full" }

[[export]]
name = "on_my_laptop"
source = "db"
destination = "out"
schedule = "rate(1 hour)"
[[export.table]]
name = "contacts"
incremental = { strategy = "full" }
"#;

fn config(dir: &Path, exports: &str) -> std::path::PathBuf {
    let path = dir.join("sluice.toml");
    let head = "version = 1\n\n[sources.db]\nkind = \"sqlite\"\npath = \"source.db\"\n";
    std::fs::write(&path, format!("{head}{exports}")).unwrap();
    path
}

#[test]
fn the_section_lists_each_schedulable_export_and_says_why_the_others_are_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), EXPORTS);
    let out = sluice(&cfg, &["schedules"]);
    assert!(out.status.success(), "{}", text(&out));
    let yaml = String::from_utf8(out.stdout.clone()).unwrap();
    for id in ["ScheduleCrmUpdates", "ScheduleNightlyOrders", "ScheduleAccounts"] {
        assert!(yaml.contains(&format!("  {id}:\n")) && yaml.contains(&format!("  {id}Permission:\n")), "{yaml}");
    }
    assert!(!yaml.contains("Sketch") && !yaml.contains("OnMyLaptop"), "{yaml}");
    assert!(yaml.contains("ScheduleExpression: \"cron(0 6 * * ? *)\"\n      State: DISABLED"), "{yaml}");
    assert!(yaml.contains("ScheduleExpression: !Ref ExportSchedule\n      State: !Ref ScheduleState"), "{yaml}");
    let notes = String::from_utf8_lossy(&out.stderr);
    assert!(notes.contains("\"sketch\" gets no rule in the stack: it is a draft"), "{notes}");
    assert!(notes.contains("\"on_my_laptop\" gets no rule in the stack: it writes to the local folder"), "{notes}");
    assert!(!notes.contains("has no schedule"), "{notes}");
    assert!(notes.contains("\"accounts\" has no `schedule`: it runs on the stack's ExportSchedule"), "{notes}");

    // JSON, for the CDK app.
    let out = sluice(&cfg, &["--json", "schedules"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        list,
        json!([
            {"id": "ScheduleCrmUpdates", "export": "crm_updates", "schedule": "rate(15 minutes)", "paused": false},
            {"id": "ScheduleNightlyOrders", "export": "nightly_orders", "schedule": "cron(0 6 * * ? *)", "paused": true},
            {"id": "ScheduleAccounts", "export": "accounts", "schedule": null, "paused": false},
        ])
    );
}

#[test]
fn written_into_template_yaml_it_deploys_the_same_rules_as_the_cdk_app_given_the_json() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), EXPORTS);
    let template = dir.path().join("template.yaml");
    let original = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    std::fs::write(&template, &original).unwrap();
    let out = sluice(&cfg, &["schedules", "--write", template.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("wrote 3 schedule(s)"), "{}", text(&out));
    let written = std::fs::read_to_string(&template).unwrap();
    // Only the section changed, and writing it again changes nothing.
    let outside = |t: &str| {
        let (head, rest) = t.split_once("# BEGIN sluice schedules").unwrap();
        let (_, tail) = rest.split_once("# END sluice schedules").unwrap();
        (head.to_owned(), tail.to_owned())
    };
    assert_eq!(outside(&written), outside(&original));
    assert!(sluice(&cfg, &["schedules", "--write", template.to_str().unwrap()]).status.success());
    assert_eq!(std::fs::read_to_string(&template).unwrap(), written);

    // A valid template: cfn-lint finds nothing.
    let mut lint = Command::new(tool("sam", "cfn-lint"));
    lint.arg(&template);
    let (ok, lint_text) = run(lint);
    assert!(ok && lint_text.trim().is_empty(), "cfn-lint:\n{lint_text}");

    let sam = translated(&template);
    let rules: Vec<&Value> = sam["Resources"]
        .as_object()
        .unwrap()
        .values()
        .filter(|r| r["Type"] == "AWS::Events::Rule" && r["Properties"].get("ScheduleExpression").is_some())
        // The exports' rules: the integration's sweep is a scheduled rule too, and so is the
        // freshness check (its input asks for no export).
        .filter(|r| r["Properties"]["Targets"][0]["Arn"]["Fn::GetAtt"][0] == "ExportFunction")
        .filter(|r| !r["Properties"]["Targets"][0]["Input"].as_str().unwrap_or_default().contains("check_alerts"))
        .collect();
    assert_eq!(rules.len(), 3);
    let inputs: Vec<Value> = rules
        .iter()
        .map(|r| serde_json::from_str(r["Properties"]["Targets"][0]["Input"].as_str().unwrap()).unwrap())
        .collect();
    assert!(inputs.contains(&json!({"export": "nightly_orders"})), "{inputs:?}");

    // The CDK app, given the same schedules as JSON, deploys the same stack.
    let list = sluice(&cfg, &["--json", "schedules"]);
    let json_file = dir.path().join("schedules.json");
    std::fs::write(&json_file, &list.stdout).unwrap();
    let cdk = synthesized(&[format!("schedules={}", json_file.display())]);
    assert_same_stack(&cdk.template, &sam);
}

#[test]
fn a_bad_schedule_a_template_without_the_section_and_nothing_to_schedule_are_named() {
    let dir = tempfile::tempdir().unwrap();
    // A bad schedule is an error where the file is read, naming the key: `run --due` would
    // otherwise never run the export, and exit 0.
    let cfg = config(dir.path(), &EXPORTS.replace("rate(15 minutes)", "cron(0 25 * * ? *)"));
    let says = "export.crm_updates.schedule: cron(0 25 * * ? *): 25 is out of range for hours";
    for command in [&["validate"][..], &["schedules"], &["run", "--due"]] {
        let out = sluice(&cfg, command);
        assert_eq!(out.status.code(), Some(2), "{command:?}: {}", text(&out));
        assert!(text(&out).contains(says), "{command:?}: {}", text(&out));
    }

    let cfg = config(dir.path(), EXPORTS);
    let out = sluice(&cfg, &["--json", "schedules", "--write", "t.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("give one of them"), "{}", text(&out));

    // Two exports whose IDs would collide get distinct ones.
    let twins = EXPORTS.replace("name = \"accounts\"\nsource", "name = \"crm_updates_permission\"\nsource");
    let out = sluice(&config(dir.path(), &twins), &["schedules"]);
    let yaml = String::from_utf8_lossy(&out.stdout);
    assert!(
        yaml.contains("  ScheduleCrmUpdatesPermission:") && yaml.contains("  ScheduleCrmUpdatesPermission2:"),
        "{yaml}"
    );
    assert!(yaml.contains("  ScheduleCrmUpdatesPermission2Permission:"), "{yaml}");

    let bare = dir.path().join("bare.yaml");
    std::fs::write(&bare, "Resources: {}\n").unwrap();
    let out = sluice(&cfg, &["schedules", "--write", bare.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no `# BEGIN sluice schedules` line"), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&bare).unwrap(), "Resources: {}\n");

    let only_local = EXPORTS.split("[[export]]").last().unwrap();
    let cfg = config(dir.path(), &format!("[[export]]{only_local}"));
    let out = sluice(&cfg, &["schedules"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no export in") && text(&out).contains("can be scheduled"), "{}", text(&out));
}
