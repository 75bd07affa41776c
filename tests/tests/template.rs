//! The SAM template (`template.yaml`) as a security review and CloudFormation would see it,
//! offline: cfn-lint and `sam validate --lint` with no error or warning, checkov with no failed
//! check (each skip carries its reason in the template), and the least-privilege facts the
//! design promises, read from the template the SAM translator produces.

use std::path::PathBuf;
use std::process::Command;

use sluice_testkit::moto::repo_root;

fn tool(venv: &str, name: &str) -> PathBuf {
    let bin = repo_root().join(".tools").join(venv).join("bin").join(name);
    assert!(bin.exists(), "{} is missing: run scripts/setup.sh (scripts/test.sh does)", bin.display());
    bin
}

fn run(mut cmd: Command) -> (bool, String) {
    let out = cmd
        .current_dir(repo_root())
        .env("SAM_CLI_TELEMETRY", "0")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("BC_SKIP_MAPPING", "TRUE")
        .output()
        .expect("the tool runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

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
    let mut checkov = Command::new(tool("checkov", "checkov"));
    checkov.args([
        "-f",
        "template.yaml",
        "--framework",
        "cloudformation",
        "--skip-download",
        "--output",
        "json",
        "--quiet",
    ]);
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
    for skipped in report["results"]["skipped_checks"].as_array().into_iter().flatten() {
        let why = skipped["suppress_comment"].as_str().unwrap_or("");
        assert!(why.len() > 20, "{} on {} is skipped without a reason", skipped["check_id"], skipped["resource"]);
    }
}

/// The template after the SAM transform, as CloudFormation deploys it.
fn translated() -> serde_json::Value {
    let script = r#"
import json, sys
from samtranslator.translator.transform import transform
from samtranslator.public.translator import ManagedPolicyLoader
from samtranslator.yaml_helper import yaml_parse
class NoPolicies(ManagedPolicyLoader):
    def __init__(self): pass
    def load(self): return {}
template = yaml_parse(open("template.yaml").read())
# As `sam package` leaves it: code in S3.
for r in template["Resources"].values():
    if r["Type"] == "AWS::Serverless::Function":
        r["Properties"]["CodeUri"] = "s3://artifacts/sluice.zip"
params = {"SourceSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:source",
          "IntegrationTokenSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:token"}
print(json.dumps(transform(template, params, NoPolicies())))
"#;
    let mut py = Command::new(tool("sam", "python"));
    py.args(["-c", script]);
    let (ok, text) = run(py);
    assert!(ok, "the SAM translator failed:\n{text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"))
}

#[test]
fn the_stack_is_encrypted_and_each_function_may_touch_only_its_own_resources() {
    let t = translated();
    let resources = t["Resources"].as_object().unwrap();
    let of_type =
        |ty: &'static str| resources.iter().filter(move |(_, r)| r["Type"] == ty).map(|(n, r)| (n.as_str(), r));

    // Both functions: arm64, provided.al2023, a bootstrap built by cargo-lambda.
    let functions: Vec<_> = of_type("AWS::Lambda::Function").collect();
    assert_eq!(functions.len(), 2);
    for (name, f) in &functions {
        assert_eq!(f["Properties"]["Runtime"], "provided.al2023", "{name}");
        assert_eq!(f["Properties"]["Architectures"], serde_json::json!(["arm64"]), "{name}");
        assert!(f["Properties"]["KmsKeyArn"].is_object(), "{name}: environment encrypted with the key");
    }
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

    // No function statement allows every action or every resource.
    for (name, role) in of_type("AWS::IAM::Role") {
        for policy in role["Properties"]["Policies"].as_array().into_iter().flatten() {
            for st in policy["PolicyDocument"]["Statement"].as_array().into_iter().flatten() {
                let text = st.to_string();
                assert!(!text.contains("\"Resource\":\"*\""), "{name}: {text}");
                assert!(!text.contains(":*\"") || text.contains("Fn::Sub"), "{name}: {text}");
            }
        }
    }
    // The integration function reaches only its integration's ledger items and its export's runs.
    let role = resources.iter().find(|(n, _)| n.starts_with("IntegrationFunctionRole")).unwrap().1.to_string();
    assert!(role.contains("dynamodb:LeadingKeys") && role.contains("INTEGRATION#${IntegrationName}"), "{role}");
    assert!(role.contains("${ExportPrefix}/${ExportName}/*/failures/*"), "{role}");
    assert!(!role.contains("dynamodb:DeleteItem"), "{role}");
    // Configuring and operating are separate policies with nothing in common but the key.
    let configure = resources["ConfigurePolicy"].to_string();
    let operate = resources["OperatePolicy"].to_string();
    assert!(configure.contains("s3:PutObject") && !configure.contains("lambda:InvokeFunction"));
    assert!(operate.contains("lambda:InvokeFunction") && !operate.contains("s3:PutObject"));
}
