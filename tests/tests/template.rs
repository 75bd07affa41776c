//! The SAM template (`template.yaml`) as a security review and CloudFormation would see it,
//! offline: cfn-lint and `sam validate --lint` with no error or warning, checkov with no failed
//! check (each skip carries its reason in the template), and the least-privilege facts the
//! design promises, read from the template the SAM translator produces.

use std::process::Command;

use sluice_testkit::moto::repo_root;
use sluice_testkit::stack::{run, synthesized, tool, translated, Synthesized};

#[test]
fn cfn_lint_and_sam_validate_find_nothing() {
    let mut lint = Command::new(tool("sam", "cfn-lint"));
    lint.arg("template.yaml");
    let (ok, text) = run(lint);
    assert!(ok && text.trim().is_empty(), "cfn-lint:\n{text}");

    let mut validate = Command::new(tool("sam", "sam"));
    validate.args(["validate", "--lint", "-t", "template.yaml"]);
    let (ok, text) = run(validate);
    assert!(ok && text.contains("is a valid SAM Template"), "sam validate --lint:\n{text}");
}

#[test]
fn checkov_fails_no_check_and_every_skip_says_why() {
    // Not --quiet: that leaves the skipped checks, and so their reasons, out of the report.
    let mut checkov = Command::new(tool("checkov", "checkov"));
    checkov.args(["-f", "template.yaml", "--framework", "cloudformation", "--skip-download", "--output", "json"]);
    let (_, text) = run(checkov);
    let start = text.find('{').unwrap_or_else(|| panic!("no JSON from checkov:\n{text}"));
    let report: serde_json::Value = serde_json::Deserializer::from_str(&text[start..])
        .into_iter()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("checkov's JSON did not parse:\n{text}"));
    let failed = report["results"]["failed_checks"].as_array().cloned().unwrap_or_default();
    let names: Vec<String> =
        failed.iter().map(|c| format!("{} {} on {}", c["check_id"], c["check_name"], c["resource"])).collect();
    assert!(failed.is_empty(), "checkov failed checks:\n{}", names.join("\n"));
    assert!(report["summary"]["passed"].as_u64().unwrap_or(0) > 30, "{}", report["summary"]);
    let skipped = report["results"]["skipped_checks"].as_array().cloned().unwrap_or_default();
    assert_eq!(skipped.len() as u64, report["summary"]["skipped"].as_u64().unwrap_or(0), "{}", report["summary"]);
    for skipped in &skipped {
        let why = skipped["check_result"]["suppress_comment"].as_str().unwrap_or("");
        assert!(why.len() > 20, "{} on {} is skipped without a reason", skipped["check_id"], skipped["resource"]);
    }
}

#[test]
fn the_stack_is_encrypted_and_each_function_may_touch_only_its_own_resources() {
    let t = translated(&repo_root().join("template.yaml"));
    let resources = t["Resources"].as_object().unwrap();
    let of_type =
        |ty: &'static str| resources.iter().filter(move |(_, r)| r["Type"] == ty).map(|(n, r)| (n.as_str(), r));

    // Every function (export, integrate, and the control API's two): arm64, provided.al2023,
    // a bootstrap built by cargo-lambda.
    let functions: Vec<_> = of_type("AWS::Lambda::Function").collect();
    assert_eq!(functions.len(), 4);
    for (name, f) in &functions {
        assert_eq!(f["Properties"]["Runtime"], "provided.al2023", "{name}");
        assert_eq!(f["Properties"]["Architectures"], serde_json::json!(["arm64"]), "{name}");
        assert!(f["Properties"]["KmsKeyArn"].is_object(), "{name}: environment encrypted with the key");
    }
    // A failed (or already running) scheduled run is not retried by Lambda: the next scheduled
    // run is the retry, and the event goes to the export's dead-letter queue at once.
    let retries = &resources["ExportFunctionEventInvokeConfig"]["Properties"];
    assert_eq!(retries["MaximumRetryAttempts"], 0, "{retries}");
    assert_eq!(
        resources["ExportFunction"]["Properties"]["DeadLetterConfig"]["TargetArn"]["Fn::GetAtt"][0],
        "ExportDeadLetters"
    );
    let table = &resources["HistoryTable"]["Properties"];
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], true);
    assert_eq!(table["TimeToLiveSpecification"]["AttributeName"], "ttl");
    assert_eq!(table["SSESpecification"]["SSEType"], "KMS");
    let bucket = &resources["ExportBucket"]["Properties"];
    assert_eq!(bucket["NotificationConfiguration"]["EventBridgeConfiguration"]["EventBridgeEnabled"], true);
    assert_eq!(
        bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
            ["SSEAlgorithm"],
        "aws:kms"
    );
    for q in of_type("AWS::SQS::Queue") {
        assert!(q.1["Properties"]["KmsMasterKeyId"].is_object(), "{} encrypted", q.0);
    }
    let mapping = of_type("AWS::Lambda::EventSourceMapping").next().expect("the SQS event source").1;
    assert_eq!(mapping["Properties"]["FunctionResponseTypes"], serde_json::json!(["ReportBatchItemFailures"]));
    assert!(mapping["Properties"]["ScalingConfig"]["MaximumConcurrency"].is_object());
    // One manifest per invocation, so a message's visibility clock runs only while its own
    // manifest is delivered; a delivery that reaches its deadline with progress continues in a
    // fresh message on its own queue (the queue URL).
    assert_eq!(mapping["Properties"]["BatchSize"], 1, "{mapping}");
    let integration = &resources["IntegrationFunction"]["Properties"];
    assert_eq!(
        integration["Environment"]["Variables"]["SLUICE_CONTINUATION_QUEUE"],
        serde_json::json!({"Ref": "IntegrationQueue"}),
        "{integration}"
    );
    // The sweep: every 15 minutes the integration function delivers what is still undelivered;
    // a sweep that fails is not retried, the next sweep is the retry.
    let sweep = &resources["IntegrationSweepSchedule"]["Properties"];
    assert_eq!(sweep["ScheduleExpression"], "rate(15 minutes)", "{sweep}");
    assert_eq!(sweep["State"], "ENABLED", "{sweep}");
    assert_eq!(sweep["Targets"][0]["Arn"]["Fn::GetAtt"][0], "IntegrationFunction", "{sweep}");
    let input: serde_json::Value = serde_json::from_str(sweep["Targets"][0]["Input"].as_str().unwrap()).unwrap();
    assert_eq!(input, serde_json::json!({"sweep": true}));
    let invoke = &resources["IntegrationSweepSchedulePermission"]["Properties"];
    assert_eq!(invoke["SourceArn"]["Fn::GetAtt"][0], "IntegrationSweepSchedule", "{invoke}");
    assert_eq!(invoke["FunctionName"]["Ref"], "IntegrationFunction", "{invoke}");
    let retries = &resources["IntegrationFunctionEventInvokeConfig"]["Properties"];
    assert_eq!(retries["MaximumRetryAttempts"], 0, "{retries}");
    assert_eq!(retries["MaximumEventAgeInSeconds"], 900, "{retries}");
    // Run and delivery records expire with the files they name.
    for f in ["ExportFunction", "IntegrationFunction"] {
        let env = &resources[f]["Properties"]["Environment"]["Variables"];
        assert_eq!(env["SLUICE_RECORD_TTL_DAYS"]["Ref"], "RetentionDays", "{f}: {env}");
    }

    // No function statement allows every action or every resource, but for X-Ray, which has no
    // resource-level permissions; no function role carries an AWS managed policy (SAM's
    // defaults for SQS and tracing allow every queue and more).
    for (name, role) in of_type("AWS::IAM::Role") {
        assert!(
            role["Properties"].get("ManagedPolicyArns").is_none(),
            "{name}: {}",
            role["Properties"]["ManagedPolicyArns"]
        );
        for policy in role["Properties"]["Policies"].as_array().into_iter().flatten() {
            for st in policy["PolicyDocument"]["Statement"].as_array().into_iter().flatten() {
                let list = |v: &serde_json::Value| match v {
                    serde_json::Value::Array(a) => a.clone(),
                    other => vec![other.clone()],
                };
                let (actions, resources) = (list(&st["Action"]), list(&st["Resource"]));
                if st["Sid"] == "Tracing" {
                    assert!(actions.iter().all(|a| a.as_str().unwrap().starts_with("xray:")), "{name}: {st}");
                    continue;
                }
                assert!(actions.iter().all(|a| !a.as_str().unwrap().contains('*')), "{name}: {st}");
                assert!(resources.iter().all(|r| r != "*"), "{name}: {st}");
            }
        }
    }
    // The integration function reaches only its integration's ledger items and its export's runs.
    let role = resources["IntegrationRole"].to_string();
    assert!(role.contains("dynamodb:LeadingKeys") && role.contains("INTEGRATION#${IntegrationName}"), "{role}");
    assert!(role.contains("${ExportPrefix}/${ExportName}/*/failures/*"), "{role}");
    assert!(!role.contains("dynamodb:DeleteItem"), "{role}");
    // The history table by partition (dynamodb:LeadingKeys on every statement that reaches it):
    // each function writes only its own partitions, and reads others' with GetItem and Query.
    let list = |v: &serde_json::Value| match v {
        serde_json::Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    };
    let inline = |name: &str| -> Vec<serde_json::Value> {
        resources[name]["Properties"]["Policies"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|p| list(&p["PolicyDocument"]["Statement"]))
            .collect()
    };
    let sub = |text: &str| serde_json::json!({ "Fn::Sub": text });
    let catalog = serde_json::json!(["CATALOG", "CATALOG#*"]);
    let status = serde_json::json!(["EXPORT#*", "INTEGRATION#*"]);
    // Each role's writing statements, each on these partitions (all of them written).
    for (name, writes, reads) in [
        ("ExportRole", vec![serde_json::json!(["EXPORT#*", "ALERTS#*"])], catalog.clone()),
        (
            "IntegrationRole",
            vec![
                serde_json::json!([sub("INTEGRATION#${IntegrationName}")]),
                serde_json::json!([sub("ALERTS#${ExportName}")]),
            ],
            serde_json::json!([sub("EXPORT#${ExportName}")]),
        ),
        ("ConfigureApiRole", vec![catalog.clone()], status.clone()),
        ("OperateApiRole", vec![catalog.clone()], status.clone()),
    ] {
        let on_table: Vec<_> =
            inline(name).into_iter().filter(|st| st["Resource"]["Fn::GetAtt"][0] == "HistoryTable").collect();
        let keys = |st: &serde_json::Value| st["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"].clone();
        let writing = |st: &serde_json::Value| {
            list(&st["Action"]).iter().any(|a| a != "dynamodb:GetItem" && a != "dynamodb:Query")
        };
        for st in &on_table {
            assert!(keys(st).is_array(), "{name}: no dynamodb:LeadingKeys on {st}");
            if writing(st) {
                assert!(writes.contains(&keys(st)), "{name} writes only its own partitions: {st}");
            } else {
                assert!(writes.contains(&keys(st)) || keys(st) == reads, "{name}: {st}");
            }
        }
        for w in &writes {
            assert!(on_table.iter().any(|st| writing(st) && &keys(st) == w), "{name} writes {w}");
        }
        assert!(on_table.iter().any(|st| !writing(st) && keys(st) == reads), "{name} reads {reads}");
    }
    // Every queue refuses requests without TLS, as the bucket does.
    for (name, _) in of_type("AWS::SQS::Queue") {
        let policy = resources
            .values()
            .find(|r| r["Type"] == "AWS::SQS::QueuePolicy" && r["Properties"]["Queues"][0]["Ref"] == name);
        let policy = policy.unwrap_or_else(|| panic!("{name} has no queue policy")).to_string();
        assert!(policy.contains("aws:SecureTransport") && policy.contains("Deny"), "{name}: {policy}");
    }
    // Configuring and operating are separate policies with nothing in common but the key.
    let configure = resources["ConfigurePolicy"].to_string();
    let operate = resources["OperatePolicy"].to_string();
    assert!(configure.contains("s3:PutObject") && !operate.contains("s3:PutObject"));
    // Operators run exports now; configurers invoke only their API, and only through its URL.
    let statements = |policy: &str| -> Vec<serde_json::Value> {
        resources[policy]["Properties"]["PolicyDocument"]["Statement"].as_array().unwrap().clone()
    };
    for st in statements("ConfigurePolicy").iter().filter(|st| st["Action"] == "lambda:InvokeFunction") {
        assert_eq!(st["Condition"]["Bool"]["lambda:InvokedViaFunctionUrl"], "true", "{st}");
        assert_eq!(st["Resource"]["Fn::GetAtt"][0], "ConfigureApiFunction", "{st}");
    }
    assert!(statements("OperatePolicy").iter().any(|st| st["Sid"] == "RunNow"));
    // The control API: each policy may call one function's URL, IAM-authenticated, and that
    // function serves that permission's changes only.
    for (policy, function, grant) in
        [(&configure, "ConfigureApiFunction", "configure"), (&operate, "OperateApiFunction", "operate")]
    {
        assert!(
            policy.contains("lambda:InvokeFunctionUrl") && policy.contains(&format!("[\"{function}\",\"Arn\"]")),
            "{policy}"
        );
        assert!(policy.contains("lambda:FunctionUrlAuthType"), "{policy}");
        assert!(
            policy.contains("lambda:InvokedViaFunctionUrl"),
            "{policy}: URLs made since October 2025 need InvokeFunction too"
        );
        let url = &resources[&format!("{function}Url")]["Properties"];
        assert_eq!(url["AuthType"], "AWS_IAM", "{function}");
        let env = &resources[function]["Properties"]["Environment"]["Variables"];
        assert_eq!(env["SLUICE_CONTROL_GRANT"], grant);
    }
    assert!(!configure.contains("OperateApiFunction") && !operate.contains("ConfigureApiFunction"));
    // Only the operator's function changes rules, and only the stack's orchestration rules;
    // both reach the catalog's items only.
    let (configure_role, operate_role) =
        (resources["ConfigureApiRole"].to_string(), resources["OperateApiRole"].to_string());
    assert!(operate_role.contains("events:PutRule") && !configure_role.contains("events:PutRule"));
    // Its rules can target the export function only.
    assert!(
        operate_role.contains("events:TargetArn") && !configure_role.contains("events:PutTargets"),
        "{operate_role}"
    );
    // Every named target, with a set operator and the key required; rules without an event pattern.
    assert!(operate_role.contains("ForAllValues:ArnEquals") && operate_role.contains("\"Null\""), "{operate_role}");
    assert!(operate_role.contains("events:source") && operate_role.contains("events:detail-type"), "{operate_role}");
    for role in [&configure_role, &operate_role] {
        assert!(role.contains("rule/${AWS::StackName}-orch-*") && role.contains("dynamodb:LeadingKeys"), "{role}");
        assert!(!role.contains("dynamodb:DeleteItem") && !role.contains("dynamodb:UpdateItem"), "{role}");
    }

    // Only Sluice's roles write under the export prefix (a manifest written by anyone else
    // would be delivered to the API with the production token): exactly the roles whose IAM
    // lets them write there.
    let deny = statements("ExportBucketPolicy")
        .into_iter()
        .find(|st| st["Sid"] == "OnlySluiceWritesRuns")
        .expect("the bucket policy's OnlySluiceWritesRuns statement");
    assert_eq!(deny["Effect"], "Deny", "{deny}");
    assert_eq!(deny["Principal"], serde_json::json!({"AWS": "*"}), "{deny}");
    assert_eq!(deny["Action"], serde_json::json!(["s3:PutObject", "s3:DeleteObject"]), "{deny}");
    assert_eq!(deny["Resource"], serde_json::json!({"Fn::Sub": "${ExportBucket.Arn}/${ExportPrefix}/*"}), "{deny}");
    let writers: Vec<&str> = deny["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]
        .as_array()
        .unwrap_or_else(|| panic!("{deny}"))
        .iter()
        .map(|arn| arn["Fn::GetAtt"][0].as_str().unwrap())
        .collect();
    assert_eq!(writers, ["ExportRole", "IntegrationRole", "ConfigureApiRole"], "{deny}");
    for (name, role) in of_type("AWS::IAM::Role") {
        assert_eq!(role.to_string().contains("s3:PutObject"), writers.contains(&name), "{name}");
    }

    // Alarms beside the functions' errors: manifests' events the rule could not put on the
    // queue, scheduled runs in the export's dead-letter queue, and manifests waiting too long
    // for delivery (the sweep's metric).
    for (alarm, namespace, metric, dimension) in [
        (
            "ManifestRuleFailuresAlarm",
            "AWS/Events",
            "FailedInvocations",
            serde_json::json!({"Name": "RuleName", "Value": {"Ref": "ManifestRule"}}),
        ),
        (
            "ExportDeadLettersAlarm",
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            serde_json::json!({"Name": "QueueName", "Value": {"Fn::GetAtt": ["ExportDeadLetters", "QueueName"]}}),
        ),
        (
            "UndeliveredAlarm",
            "Sluice",
            "UndeliveredAgeSeconds",
            serde_json::json!({"Name": "Integration", "Value": {"Ref": "IntegrationName"}}),
        ),
    ] {
        let p = &resources[alarm]["Properties"];
        assert_eq!(p["Namespace"], namespace, "{alarm}");
        assert_eq!(p["MetricName"], metric, "{alarm}");
        assert_eq!(p["Dimensions"], serde_json::json!([dimension]), "{alarm}");
        assert_eq!(p["AlarmActions"]["Fn::If"][0], "HasAlarmTopic", "{alarm}");
    }
    // A sweep that stops reporting is a problem in itself: missing data is breaching.
    let undelivered = &resources["UndeliveredAlarm"]["Properties"];
    assert_eq!(undelivered["Threshold"], serde_json::json!({"Ref": "UndeliveredAlarmSeconds"}), "{undelivered}");
    assert_eq!(undelivered["ComparisonOperator"], "GreaterThanThreshold", "{undelivered}");
    assert_eq!(undelivered["TreatMissingData"], "breaching", "{undelivered}");
    assert_eq!(undelivered["Period"], 900, "{undelivered}");
    assert_eq!(undelivered["EvaluationPeriods"], 2, "{undelivered}");
    assert_eq!(undelivered["DatapointsToAlarm"], 2, "{undelivered}");
    assert_eq!(t["Parameters"]["UndeliveredAlarmSeconds"]["MinValue"], 900);
}

// ---------------------------------------------------------------------------------------------
// infra/ (the CDK app) must deploy the same stack as template.yaml.
// ---------------------------------------------------------------------------------------------

#[test]
fn the_cdk_app_synthesizes_offline_clean_under_cdk_nag_and_deploys_the_same_stack_as_template_yaml() {
    let Synthesized { template: cdk, report, metadata } = synthesized(&[]);
    let sam = translated(&repo_root().join("template.yaml"));

    // CloudFormation's own checks (the validation report) and cdk-nag's AwsSolutions pack
    // (annotations: an error fails the synth): nothing left, every acknowledgement with its
    // reason in the code.
    for plugin in report["pluginReports"].as_array().unwrap() {
        assert_eq!(plugin["conclusion"], "success", "{}", plugin);
        assert!(plugin["violations"].as_array().unwrap().is_empty(), "{}", plugin["violations"]);
        for ack in plugin["suppressedViolations"].as_array().into_iter().flatten() {
            assert!(
                ack["reason"].as_str().unwrap_or("").len() > 30,
                "{} acknowledged without a reason",
                ack["ruleName"]
            );
        }
    }
    let app = std::fs::read_to_string(repo_root().join("infra/bin/sluice.ts")).unwrap();
    assert!(app.contains("Validations.of(app).addPlugins(new AwsSolutionsChecks(app))"), "cdk-nag is not on");
    let mut acknowledged = 0;
    for (path, entries) in metadata.as_object().unwrap() {
        for e in entries.as_array().unwrap() {
            let kind = e["type"].as_str().unwrap();
            assert!(kind != "aws:cdk:error" && kind != "aws:cdk:warning", "{path}: {e}");
            if kind == "aws:cdk:acknowledged-rules" {
                for (rule, reason) in e["data"].as_object().unwrap() {
                    assert!(reason.as_str().unwrap().len() > 30, "{path}: {rule} acknowledged without a reason");
                    acknowledged += rule.contains("AwsSolutions") as usize;
                }
            }
        }
    }
    assert!((5..30).contains(&acknowledged), "{acknowledged} cdk-nag findings acknowledged");

    sluice_testkit::stack::assert_same_stack(&cdk, &sam);
}

/// `sam build` as a team runs it before `sam deploy`: cargo-lambda (from .tools/venv, with
/// ziglang) cross-compiles each function's `bootstrap` for arm64 into cargo's target directory.
/// In debug mode (`SAM_BUILD_MODE=debug`, without debug info): the toolchain, the template's
/// build metadata and the cross-compilation are what is checked, and a release build with LTO
/// would relink both functions after every change to the core (8 minutes here). A release
/// `sam build` from cold took 12m39s on this 2-core machine.
#[test]
fn sam_build_makes_an_arm64_bootstrap_for_every_function() {
    let dir = tempfile::tempdir().unwrap();
    let venv_bin = repo_root().join(".tools/venv/bin");
    let path = format!("{}:{}", venv_bin.display(), std::env::var("PATH").unwrap_or_default());
    let mut build = Command::new(tool("sam", "sam"));
    build
        .args(["build", "--beta-features", "-t", "template.yaml", "--build-dir"])
        .arg(dir.path())
        .env("PATH", path)
        .env("SAM_BUILD_MODE", "debug")
        .env("CARGO_PROFILE_DEV_DEBUG", "false");
    let started = std::time::SystemTime::now() - std::time::Duration::from_secs(2);
    let (ok, text) = run(build);
    assert!(ok && text.contains("Build Succeeded"), "sam build:\n{text}");
    for function in ["ExportFunction", "IntegrationFunction", "ConfigureApiFunction", "OperateApiFunction"] {
        let bootstrap = dir.path().join(function).join("bootstrap");
        let elf = std::fs::read(&bootstrap).unwrap_or_else(|e| panic!("{}: {e}\n{text}", bootstrap.display()));
        // Built now, not copied from an earlier build's leftovers in target/lambda.
        let built = std::fs::metadata(&bootstrap).and_then(|m| m.modified()).unwrap();
        assert!(built >= started, "{function}: the bootstrap is older than this build\n{text}");
        assert_eq!(&elf[..4], b"\x7fELF", "{function}: not an executable");
        // e_machine, little-endian at offset 18: 183 is EM_AARCH64.
        assert_eq!(u16::from_le_bytes([elf[18], elf[19]]), 183, "{function}: not built for arm64");
    }
}
