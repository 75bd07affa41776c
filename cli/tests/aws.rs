//! `sluice` against AWS (the `aws` feature): an export to `s3://` with the history in DynamoDB
//! and events on EventBridge, all on moto's server, configured only through the standard AWS
//! environment (`AWS_ENDPOINT_URL`, static test credentials, region).
#![cfg(feature = "aws")]

use std::process::Command;

use sluice_testkit::moto::{repo_root, unique_name, Moto};
use sluice_testkit::{create_contacts, insert_contacts};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

/// Creates the bucket and the history table with boto3 from the test venv.
fn provision(endpoint: &str, bucket: &str, table: &str) {
    let script = format!(
        r#"
import boto3
kw = dict(endpoint_url="{endpoint}", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
boto3.client("s3", **kw).create_bucket(Bucket="{bucket}")
boto3.client("dynamodb", **kw).create_table(TableName="{table}", BillingMode="PAY_PER_REQUEST",
    AttributeDefinitions=[{{"AttributeName": "pk", "AttributeType": "S"}}, {{"AttributeName": "sk", "AttributeType": "S"}}],
    KeySchema=[{{"AttributeName": "pk", "KeyType": "HASH"}}, {{"AttributeName": "sk", "KeyType": "RANGE"}}])
"#
    );
    let ok = Command::new(repo_root().join(".tools/venv/bin/python")).arg("-c").arg(script).status().unwrap();
    assert!(ok.success());
}

#[test]
fn run_status_and_history_work_against_s3_and_dynamodb() {
    let moto = Moto::shared();
    let (bucket, table) = (unique_name("b"), unique_name("history"));
    provision(&moto.endpoint, &bucket, &table);

    let dir = tempfile::tempdir().unwrap();
    insert_contacts(&create_contacts(&dir.path().join("source.db")), 1, 250, "2025-06-01 00:00:00");
    let config = dir.path().join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "version = 1\n[sources.db]\nkind = \"sqlite\"\npath = \"source.db\"\n[[export]]\nname = \"contacts\"\nsource = \"db\"\n\
             destination = \"s3://{bucket}/exports\"\n[[export.table]]\nname = \"contacts\"\n\
             incremental = {{ strategy = \"timestamp\", column = \"updated_at\" }}\n"
        ),
    )
    .unwrap();
    let sluice = |args: &[&str]| {
        Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .args(["--history", &format!("dynamodb://{table}"), "--event-bus", "default"])
            .args(args)
            .current_dir(dir.path())
            .env("AWS_ENDPOINT_URL", &moto.endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .output()
            .unwrap()
    };

    let run = sluice(&["run", "--json"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(summary[0]["rows"], 250);
    assert!(summary[0]["tables"][0]["manifest_key"].as_str().unwrap().ends_with("manifest.json"));

    let status: serde_json::Value = serde_json::from_slice(&sluice(&["status", "--json"]).stdout).unwrap();
    assert_eq!(status[0]["tables"][0]["last_result"], "succeeded");
    assert_eq!(status[0]["tables"][0]["watermark"]["type"], "text");
    assert_eq!(status[0]["destination"], format!("s3://{bucket}/exports"));

    let again: serde_json::Value = serde_json::from_slice(&sluice(&["run", "--json"]).stdout).unwrap();
    assert_eq!(again[0]["rows"], 0, "the watermark in DynamoDB carried over");
}

/// A rule's state in moto's EventBridge (`ENABLED`, `DISABLED`), or `missing`.
fn rule_state(endpoint: &str, rule: &str) -> String {
    let script = format!(
        r#"
import boto3
kw = dict(endpoint_url="{endpoint}", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
events = boto3.client("events", **kw)
try:
    r = events.describe_rule(Name="{rule}")
    targets = events.list_targets_by_rule(Rule="{rule}")["Targets"]
    print(r["State"], r["ScheduleExpression"], targets[0]["Arn"], targets[0]["Input"])
except events.exceptions.ResourceNotFoundException:
    print("missing")
"#
    );
    let out = Command::new(repo_root().join(".tools/venv/bin/python")).arg("-c").arg(script).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn managed_exports_and_their_orchestrations_live_in_dynamodb_and_eventbridge() {
    let moto = Moto::shared();
    let (bucket, table) = (unique_name("b"), unique_name("history"));
    provision(&moto.endpoint, &bucket, &table);
    let dir = tempfile::tempdir().unwrap();
    insert_contacts(&create_contacts(&dir.path().join("source.db")), 1, 20, "2025-06-01 00:00:00");
    let config = dir.path().join("sluice.toml");
    std::fs::write(&config, "version = 1\n[sources.db]\nkind = \"sqlite\"\npath = \"source.db\"\n").unwrap();
    let definition = dir.path().join("crm.toml");
    std::fs::write(
        &definition,
        format!(
            "[[export]]\nname = \"crm\"\nsource = \"db\"\ndestination = \"s3://{bucket}/exports\"\n[[export.table]]\n\
             name = \"contacts\"\nincremental = {{ strategy = \"timestamp\", column = \"updated_at\" }}\n"
        ),
    )
    .unwrap();
    let prefix = format!("{}-orch-", &unique_name("s")[..8]);
    let export_fn = "arn:aws:lambda:us-east-1:123456789012:function:sluice-export";
    let sluice = |rules: bool, args: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config")
            .arg(&config)
            .args(["--history", &format!("dynamodb://{table}")])
            .args(args)
            .current_dir(dir.path())
            .env("AWS_ENDPOINT_URL", &moto.endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env_remove("SLUICE_RULE_PREFIX")
            .env_remove("SLUICE_EXPORT_FUNCTION_ARN");
        if rules {
            cmd.env("SLUICE_RULE_PREFIX", &prefix).env("SLUICE_EXPORT_FUNCTION_ARN", export_fn);
        }
        cmd.output().unwrap()
    };
    let ok = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };

    ok(sluice(false, &["exports", "create", "--from", definition.to_str().unwrap()]));
    // Activation writes a probe to the S3 destination (and removes it).
    let active = ok(sluice(false, &["exports", "activate", "crm"]));
    assert!(active.contains("crm active"), "{active}");

    // Without the stack's outputs in the environment the CLI says which settings it needs.
    let out = sluice(false, &["orchestrations", "create", "crm", "hourly", "--schedule", "rate(1 hour)"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SLUICE_RULE_PREFIX") && err.contains("ExportFunctionArn"), "{err}");
    assert_eq!(rule_state(&moto.endpoint, &format!("{prefix}crm.hourly")), "missing");

    ok(sluice(true, &["orchestrations", "create", "crm", "hourly", "--schedule", "rate(1 hour)"]));
    let rule = format!("{prefix}crm.hourly");
    assert_eq!(
        rule_state(&moto.endpoint, &rule),
        format!("ENABLED rate(1 hour) {export_fn} {{\"export\":\"crm\",\"orchestration\":\"hourly\"}}")
    );
    ok(sluice(true, &["exports", "pause", "crm"]));
    assert!(rule_state(&moto.endpoint, &rule).starts_with("DISABLED"));
    ok(sluice(true, &["exports", "resume", "crm"]));
    assert!(rule_state(&moto.endpoint, &rule).starts_with("ENABLED"));
    let out = sluice(true, &["exports", "delete", "crm"]);
    assert_eq!(out.status.code(), Some(2), "refused while orchestrated");
    ok(sluice(true, &["exports", "delete", "crm", "--force"]));
    assert_eq!(rule_state(&moto.endpoint, &rule), "missing");
    let audit = ok(sluice(false, &["exports", "audit", "crm"]));
    assert!(audit.contains("orchestrate") && audit.contains("- orchestration hourly"), "{audit}");
}
