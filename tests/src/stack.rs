//! The deployable stack as the tests read it: template.yaml through the SAM translator and
//! infra/ through `cdk synth`, both offline with the tools scripts/setup.sh installs into
//! .tools/ and infra/node_modules, and helpers that compare two CloudFormation templates by
//! meaning rather than by spelling.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::moto::repo_root;

pub fn tool(venv: &str, name: &str) -> PathBuf {
    let bin = repo_root().join(".tools").join(venv).join("bin").join(name);
    assert!(bin.exists(), "{} is missing: run scripts/setup.sh (scripts/test.sh does)", bin.display());
    bin
}

pub fn run(mut cmd: Command) -> (bool, String) {
    let out = cmd
        .current_dir(repo_root())
        .env("SAM_CLI_TELEMETRY", "0")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("BC_SKIP_MAPPING", "TRUE")
        .output()
        .expect("the tool runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

/// A SAM template after the SAM transform, as CloudFormation deploys it (with the two secret
/// parameters set, the rest at their defaults).
pub fn translated(template: &Path) -> serde_json::Value {
    let script = r#"
import json, sys
from samtranslator.translator.transform import transform
from samtranslator.public.translator import ManagedPolicyLoader
from samtranslator.yaml_helper import yaml_parse
class NoPolicies(ManagedPolicyLoader):
    def __init__(self): pass
    def load(self): return {}
template = yaml_parse(open(sys.argv[1]).read())
# As `sam package` leaves it: code in S3.
for r in template["Resources"].values():
    if r["Type"] == "AWS::Serverless::Function":
        r["Properties"]["CodeUri"] = "s3://artifacts/sluice.zip"
params = {"SourceSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:source",
          "IntegrationTokenSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:token"}
print(json.dumps(transform(template, params, NoPolicies())))
"#;
    let mut py = Command::new(tool("sam", "python"));
    py.args(["-c", script]).arg(template);
    let (ok, text) = run(py);
    assert!(ok, "the SAM translator failed:\n{text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"))
}

/// What `cdk synth` of infra/ leaves: the template, the validation report (CloudFormation's
/// checks) and the metadata (cdk-nag's annotations and acknowledgements).
pub struct Synthesized {
    pub template: serde_json::Value,
    pub report: serde_json::Value,
    pub metadata: serde_json::Value,
}

/// `cdk synth` of infra/ with placeholder bootstraps (the code is not what is compared) and
/// these extra `-c key=value` context values.
pub fn synthesized(context: &[String]) -> Synthesized {
    let infra = repo_root().join("infra");
    let cdk = infra.join("node_modules/.bin/cdk");
    assert!(cdk.exists(), "{} is missing: run scripts/setup.sh (scripts/test.sh does)", cdk.display());
    let dir = tempfile::tempdir().unwrap();
    for f in ["sluice-export", "sluice-integrate", "sluice-control"] {
        std::fs::create_dir_all(dir.path().join("assets").join(f)).unwrap();
        std::fs::write(dir.path().join("assets").join(f).join("bootstrap"), b"#!/bin/sh\n").unwrap();
    }
    let out = dir.path().join("cdk.out");
    let mut synth = Command::new(cdk);
    synth
        .args(["synth", "--no-notices", "-q", "-c"])
        .arg(format!("assets={}", dir.path().join("assets").display()))
        .arg("-o")
        .arg(&out)
        .args(context.iter().flat_map(|c| ["-c", c.as_str()]))
        .current_dir(&infra)
        .env("CDK_DISABLE_VERSION_CHECK", "1")
        .env("CDK_DISABLE_CLI_TELEMETRY", "true");
    let output = synth.output().expect("cdk runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "cdk synth failed:\n{text}");
    let read = |name: &str| -> serde_json::Value {
        let raw = std::fs::read_to_string(out.join(name)).unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
        serde_json::from_str(&raw).unwrap()
    };
    Synthesized {
        template: read("Sluice.template.json"),
        report: read("validation-report.json"),
        metadata: read("Sluice.metadata.json"),
    }
}

/// A value with every intrinsic function written out as the `Fn::Sub` text it stands for, and
/// every scalar as a string, so `!Sub "${Bucket.Arn}/x"` and CDK's
/// `Fn::Join ["", [{Fn::GetAtt: [Bucket, Arn]}, "/x"]]` compare equal.
pub fn render(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    let text = |v: &Value| match render(v) {
        Value::String(s) => s,
        other => panic!("not text: {other}"),
    };
    match v {
        Value::Object(m) if m.len() == 1 => {
            let (k, arg) = m.iter().next().unwrap();
            match (k.as_str(), arg) {
                ("Ref", Value::String(name)) => Value::String(format!("${{{name}}}")),
                ("Fn::GetAtt", Value::Array(a)) => Value::String(format!("${{{}.{}}}", text(&a[0]), text(&a[1]))),
                ("Fn::GetAtt", Value::String(s)) => Value::String(format!("${{{s}}}")),
                ("Fn::Sub", Value::String(s)) => Value::String(s.clone()),
                ("Fn::Sub", Value::Array(a)) => {
                    let mut s = text(&a[0]);
                    for (name, value) in a[1].as_object().unwrap() {
                        s = s.replace(&format!("${{{name}}}"), &text(value));
                    }
                    Value::String(s)
                }
                ("Fn::Join", Value::Array(a)) => {
                    Value::String(a[1].as_array().unwrap().iter().map(text).collect::<Vec<_>>().join(&text(&a[0])))
                }
                _ => Value::Object(m.iter().map(|(k, v)| (k.clone(), render(v))).collect()),
            }
        }
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), render(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(render).collect()),
        Value::Number(n) => Value::String(n.to_string()),
        Value::Bool(b) => Value::String(b.to_string()),
        other => other.clone(),
    }
}

/// What a policy document allows or denies, one (effect, principal, action, resource,
/// condition) per line, sorted: the same permissions compare equal however they are grouped
/// into statements, named (Sid) or ordered.
pub fn permissions(document: &serde_json::Value) -> std::collections::BTreeSet<String> {
    let list = |v: &serde_json::Value| match render(v) {
        serde_json::Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_owned()).collect::<Vec<_>>(),
        serde_json::Value::String(s) => vec![s],
        other => panic!("not an action or resource list: {other}"),
    };
    let mut out = std::collections::BTreeSet::new();
    for st in document["Statement"].as_array().unwrap() {
        let principal = match render(&st["Principal"]) {
            serde_json::Value::String(s) if s == "*" => serde_json::json!({"AWS": "*"}),
            p => p,
        };
        let resources = if st.get("Resource").is_some() { list(&st["Resource"]) } else { vec![String::new()] };
        for action in list(&st["Action"]) {
            for resource in &resources {
                out.insert(format!(
                    "{} {principal} {action} {resource} {}",
                    st["Effect"].as_str().unwrap(),
                    render(&st["Condition"])
                ));
            }
        }
    }
    out
}

/// Asserts that a CDK-synthesized template deploys the same stack as a SAM-translated one:
/// the same parameters, conditions and outputs; the same resources under the same logical IDs
/// with the same properties, deletion policies and resource policies; each role with the same
/// permissions however they are split into policies; the same invokers of each function.
pub fn assert_same_stack(cdk: &serde_json::Value, sam: &serde_json::Value) {
    use serde_json::{json, Value};
    // The same parameters (CDK adds its bootstrap version).
    let params = |t: &Value, skip: &str| -> std::collections::BTreeMap<String, Value> {
        t["Parameters"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| *k != skip)
            .map(|(k, v)| (k.clone(), render(v)))
            .collect()
    };
    assert_eq!(params(cdk, "BootstrapVersion"), params(sam, ""));
    assert_eq!(render(&cdk["Conditions"]), render(&sam["Conditions"]));
    assert_eq!(cdk["Description"], sam["Description"]);
    assert_eq!(
        cdk["Outputs"].as_object().unwrap().iter().map(|(k, v)| (k, render(&v["Value"]))).collect::<Vec<_>>(),
        sam["Outputs"].as_object().unwrap().iter().map(|(k, v)| (k, render(&v["Value"]))).collect::<Vec<_>>()
    );

    let resources = |t: &Value| t["Resources"].as_object().unwrap().clone();
    let (c, s) = (resources(cdk), resources(sam));
    // Resources by logical ID: the same set, but for how each tool names a function's
    // permission for its schedule, and CDK's extra policies on the roles (compared below).
    let keyed = |r: &serde_json::Map<String, Value>| -> std::collections::BTreeSet<String> {
        r.iter()
            .filter(|(_, v)| v["Type"] != "AWS::Lambda::Permission" && v["Type"] != "AWS::IAM::Policy")
            .map(|(k, v)| format!("{k} {}", v["Type"].as_str().unwrap()))
            .collect()
    };
    assert_eq!(keyed(&c), keyed(&s));

    for (id, sam_resource) in &s {
        let ty = sam_resource["Type"].as_str().unwrap();
        if ty == "AWS::Lambda::Permission" {
            continue;
        }
        let cdk_resource = &c[id];
        let policy = |r: &Value, key: &str| r.get(key).and_then(Value::as_str).unwrap_or("Delete").to_owned();
        for key in ["DeletionPolicy", "UpdateReplacePolicy"] {
            assert_eq!(policy(cdk_resource, key), policy(sam_resource, key), "{key} of {id}");
        }
        assert_eq!(cdk_resource.get("Condition"), sam_resource.get("Condition"), "Condition of {id}");
        let mut want = render(&sam_resource["Properties"]);
        let mut got = render(&cdk_resource["Properties"]);
        for p in [&mut want, &mut got] {
            let m = p.as_object_mut().unwrap();
            // Compared as permissions below; the code and tags are each tool's own.
            for key in ["PolicyDocument", "KeyPolicy", "Policies", "AssumeRolePolicyDocument", "Code", "Tags"] {
                m.remove(key);
            }
            // A rule's targets: what they invoke and with what input, not their IDs.
            if let Some(Value::Array(targets)) = m.get_mut("Targets") {
                for t in targets {
                    let t = t.as_object_mut().unwrap();
                    t.remove("Id");
                    if let Some(Value::String(input)) = t.get("Input") {
                        let input: Value = serde_json::from_str(input).unwrap();
                        t.insert("Input".into(), input);
                    }
                }
            }
        }
        assert_eq!(got, want, "{id} ({ty}) differs:\nCDK: {got:#}\nSAM: {want:#}");
        for key in ["PolicyDocument", "KeyPolicy", "AssumeRolePolicyDocument"] {
            if let Some(doc) = sam_resource["Properties"].get(key) {
                assert_eq!(permissions(&cdk_resource["Properties"][key]), permissions(doc), "{key} of {id}");
            }
        }
    }

    // Each function's role: the same permissions, whether inline or in policies attached to it.
    let role_permissions = |r: &serde_json::Map<String, Value>, role: &str| {
        let mut all = std::collections::BTreeSet::new();
        for p in r[role]["Properties"]["Policies"].as_array().into_iter().flatten() {
            all.extend(permissions(&p["PolicyDocument"]));
        }
        for (_, p) in r.iter().filter(|(_, v)| v["Type"] == "AWS::IAM::Policy") {
            if render(&p["Properties"]["Roles"]) == json!([format!("${{{role}}}")]) {
                all.extend(permissions(&p["Properties"]["PolicyDocument"]));
            }
        }
        assert!(r[role]["Properties"].get("ManagedPolicyArns").is_none(), "{role} has AWS managed policies");
        all
    };
    for role in ["ExportRole", "IntegrationRole", "ConfigureApiRole", "OperateApiRole"] {
        let (got, want) = (role_permissions(&c, role), role_permissions(&s, role));
        assert_eq!(
            got,
            want,
            "{role}: only in CDK {:#?}, only in SAM {:#?}",
            got.difference(&want).collect::<Vec<_>>(),
            want.difference(&got).collect::<Vec<_>>()
        );
    }

    // Who may invoke each function: the same, however each tool names the permission.
    let invokers = |r: &serde_json::Map<String, Value>| -> std::collections::BTreeSet<String> {
        r.values()
            .filter(|v| v["Type"] == "AWS::Lambda::Permission")
            .map(|v| {
                let p = render(&v["Properties"]);
                let function = p["FunctionName"].as_str().unwrap().replace(".Arn}", "}");
                format!("{function} {} {} {}", p["Action"], p["Principal"], p["SourceArn"])
            })
            .collect()
    };
    assert_eq!(invokers(&c), invokers(&s));
}
