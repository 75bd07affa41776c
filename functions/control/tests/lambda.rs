//! The real control function under `cargo lambda watch`, twice (the configure and the operate
//! function, as the stack deploys them), invoked with function URL events, against moto's S3,
//! DynamoDB and EventBridge: the whole lifecycle, orchestrations as EventBridge rules,
//! concurrent edits, deletion refused while orchestrated, and each permission's refusals.

use aws_sdk_s3::config::{Credentials, Region};
use serde_json::{json, Value};
use sluice_aws::DynamoHistory;
use sluice_testkit::lambda::Watch;
use sluice_testkit::moto::{unique_name, Moto};
use sluice_testkit::{create_contacts, insert_contacts};

const ALICE: &str = "arn:aws:iam::123456789012:user/alice";
const BOB: &str = "arn:aws:iam::123456789012:role/operator";
const EXPORT_FN: &str = "arn:aws:lambda:us-east-1:123456789012:function:sluice-export";

/// A function URL event (payload 2.0) signed by `who`.
fn request(who: &str, method: &str, path: &str, body: Value) -> String {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let params: serde_json::Map<String, Value> =
        query.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect();
    json!({
        "version": "2.0",
        "rawPath": path,
        "rawQueryString": query,
        "queryStringParameters": params,
        "headers": {"content-type": "application/json"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "sluiceurl1",
            "domainName": "sluiceurl1.lambda-url.us-east-1.on.aws",
            "requestId": uuid::Uuid::new_v4().to_string(),
            "timeEpoch": chrono::Utc::now().timestamp_millis(),
            "http": {"method": method, "path": path},
            "authorizer": {"iam": {"userArn": who, "accountId": "123456789012"}}
        },
        "body": body.to_string(),
        "isBase64Encoded": false
    })
    .to_string()
}

/// Sends a request; returns the HTTP status and the parsed body.
fn call(watch: &Watch, who: &str, method: &str, path: &str, body: Value) -> (u64, Value) {
    let (ok, response) = watch.invoke(&request(who, method, path, body));
    assert!(ok, "the function answers every request with an HTTP response: {response}");
    let status = response["statusCode"].as_u64().unwrap_or_else(|| panic!("a status code: {response}"));
    let body = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_and_orchestrations_are_managed_through_the_api_each_change_by_its_own_permission() {
    let moto = Moto::shared();
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&moto.endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .load()
        .await;
    let s3 = sluice_aws::s3_client(&sdk);
    let bucket = unique_name("control");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let table = unique_name("history");
    DynamoHistory::create_table(&ddb, &table).await.unwrap();
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    let prefix = format!("{}-orch-", &unique_name("t")[..10]);

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("source.db");
    insert_contacts(&create_contacts(&db), 1, 100, "2025-06-01 00:00:00");
    let config = format!("version = 1\n[sources.db]\nkind = \"sqlite\"\npath = \"{}\"\n", db.display());
    s3.put_object().bucket(&bucket).key("config/sluice.toml").body(config.into_bytes().into()).send().await.unwrap();

    let env = |grant: &str| {
        vec![
            ("AWS_ENDPOINT_URL", moto.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("SLUICE_CONFIG", format!("s3://{bucket}/config/sluice.toml")),
            ("SLUICE_HISTORY_TABLE", table.clone()),
            ("SLUICE_CONTROL_GRANT", grant.to_string()),
            ("SLUICE_RULE_PREFIX", prefix.clone()),
            ("SLUICE_EXPORT_FUNCTION_ARN", EXPORT_FN.into()),
        ]
    };
    let configure = Watch::start("control", env!("CARGO_BIN_EXE_sluice-control"), &env("configure"));
    let operate = Watch::start("control", env!("CARGO_BIN_EXE_sluice-control"), &env("operate"));

    let definition = format!(
        "name = \"crm\"\nsource = \"db\"\ndestination = \"s3://{bucket}/exports\"\n\n[[table]]\nname = \"contacts\"\n\
         incremental = {{ strategy = \"timestamp\", column = \"updated_at\" }}\n"
    );

    // An operator cannot create an export: the operate endpoint names the permission needed.
    let (status, body) = call(&operate, BOB, "POST", "/exports", json!({ "definition": definition }));
    assert_eq!(status, 403, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("needs the configure permission") && message.contains("ConfigurePolicy"), "{message}");
    assert_eq!(call(&configure, ALICE, "GET", "/exports/crm", json!({})).0, 404, "nothing was created");

    // Create (a draft) and activate, checked against the source and the destination.
    let (status, body) = call(&configure, ALICE, "POST", "/exports", json!({ "definition": definition }));
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["entry"]["state"].as_str(), body["entry"]["revision"].as_u64()), (Some("draft"), Some(1)));
    let (status, body) = call(&configure, ALICE, "POST", "/exports", json!({ "definition": definition }));
    assert_eq!((status, body["error"].as_str()), (409, Some("Conflict")), "the name is taken: {body}");
    let (status, body) = call(&configure, ALICE, "POST", "/exports/crm/activate", json!({"revision": 1}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["entry"]["state"], "active");

    // A draft whose table the source does not have is refused at activation, with the reason.
    let missing = json!({"add_table": "name = \"nope\"\nincremental = { strategy = \"full\" }"});
    let (status, body) = call(&configure, ALICE, "POST", "/exports/crm/edit", missing);
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(&configure, ALICE, "POST", "/exports/crm/activate", json!({}));
    assert_eq!((status, body["error"].as_str()), (422, Some("ChecksFailed")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("nope"), "{body}");
    let (status, body) = call(&configure, ALICE, "POST", "/exports/crm/discard", json!({}));
    assert_eq!((status, body["entry"]["active_version"].as_u64()), (200, Some(1)), "{body}");

    // Two edits made from the same revision: the first lands, the second is stale.
    let revision = body["entry"]["revision"].as_u64().unwrap();
    let switch = json!({"destination": format!("s3://{bucket}/crm"), "revision": revision});
    let (status, body) = call(&configure, ALICE, "POST", "/exports/crm/edit", switch);
    assert_eq!(status, 200, "{body}");
    let other = json!({"remove_table": "contacts", "revision": revision});
    let (status, body) = call(&configure, BOB, "POST", "/exports/crm/edit", other);
    assert_eq!((status, body["error"].as_str()), (409, Some("StaleRevision")), "{body}");
    assert!(body["message"].as_str().unwrap().contains(ALICE), "names who changed it: {body}");
    call(&configure, ALICE, "POST", "/exports/crm/discard", json!({}));

    // Orchestrations are the operator's: the configure endpoint refuses one.
    let hourly = json!({"name": "hourly", "schedule": "rate(1 hour)"});
    let (status, body) = call(&configure, ALICE, "POST", "/exports/crm/orchestrations", hourly.clone());
    assert_eq!(status, 403, "{body}");
    assert!(body["message"].as_str().unwrap().contains("OperatePolicy"), "{body}");
    let (status, body) = call(&operate, BOB, "POST", "/exports/crm/orchestrations", hourly);
    assert_eq!(status, 200, "{body}");
    let rule = format!("{prefix}crm.hourly");
    let described = events.describe_rule().name(&rule).send().await.expect("the rule exists in EventBridge");
    assert_eq!(described.schedule_expression(), Some("rate(1 hour)"));
    assert_eq!(described.state().map(|s| s.as_str()), Some("ENABLED"));
    let targets = events.list_targets_by_rule().rule(&rule).send().await.unwrap();
    let target = &targets.targets()[0];
    assert_eq!(target.arn(), EXPORT_FN);
    let input: Value = serde_json::from_str(target.input().unwrap()).unwrap();
    assert_eq!(input, json!({"export": "crm", "orchestration": "hourly"}));
    let bad = json!({"name": "nightly", "schedule": "cron(0 6 * * *)"});
    let (status, body) = call(&operate, BOB, "POST", "/exports/crm/orchestrations", bad);
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("has 5 fields"), "{body}");

    // Deleting an orchestrated export is refused unless forced.
    let (status, body) = call(&configure, ALICE, "DELETE", "/exports/crm", json!({}));
    assert_eq!((status, body["error"].as_str()), (409, Some("WrongState")), "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("orchestration hourly") && message.contains("DELETE /exports/crm?force=true"), "{body}");

    // Pausing the orchestration, or the export, disables the rule; resuming enables it again.
    let state =
        || async { events.describe_rule().name(&rule).send().await.unwrap().state().unwrap().as_str().to_string() };
    let (status, body) = call(&operate, BOB, "POST", "/exports/crm/orchestrations/hourly/pause", json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(state().await, "DISABLED");
    call(&operate, BOB, "POST", "/exports/crm/orchestrations/hourly/resume", json!({}));
    assert_eq!(state().await, "ENABLED");
    let (status, body) = call(&operate, BOB, "POST", "/exports/crm/pause", json!({}));
    assert_eq!((status, body["entry"]["state"].as_str()), (200, Some("paused")), "{body}");
    assert_eq!(state().await, "DISABLED");
    let (status, _) = call(&configure, ALICE, "POST", "/exports/crm/resume", json!({}));
    assert_eq!(status, 403, "resuming is the operator's");
    call(&operate, BOB, "POST", "/exports/crm/resume", json!({}));
    assert_eq!(state().await, "ENABLED");

    // The status of every export, from either endpoint: state, version, orchestrations, next run.
    let (status, body) = call(&operate, BOB, "GET", "/exports", json!({}));
    assert_eq!(status, 200, "{body}");
    let crm = body["exports"].as_array().unwrap().iter().find(|e| e["export"] == "crm").unwrap().clone();
    assert_eq!(crm["state"], "active");
    assert_eq!(crm["managed"]["active_version"], 1);
    assert_eq!(crm["tables"][0]["table"], "contacts");
    assert_eq!(crm["orchestrations"][0]["state"], "running");
    assert!(crm["next_run"].is_string(), "{crm}");
    let (_, body) = call(&configure, ALICE, "GET", "/orchestrations", json!({}));
    assert_eq!(body["orchestrations"][0]["rule"], rule);

    // Forced, the export is deleted with its orchestration and rule; its audit trail stays,
    // naming each caller's IAM principal.
    let (status, body) = call(&configure, ALICE, "DELETE", "/exports/crm?force=true", json!({}));
    assert_eq!((status, body["entry"]["state"].as_str()), (200, Some("deleted")), "{body}");
    let gone = events.describe_rule().name(&rule).send().await.unwrap_err();
    assert!(gone.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()), "{gone:?}");
    let (_, body) = call(&operate, BOB, "GET", "/exports/crm/audit?limit=100", json!({}));
    let audit = body["audit"].as_array().unwrap();
    assert_eq!(audit[0]["action"], "delete");
    assert_eq!(audit[0]["who"], ALICE);
    assert!(audit.iter().any(|a| a["action"] == "orchestrate" && a["who"] == BOB), "{body}");
    assert_eq!(audit.last().unwrap()["action"], "create");

    // Requests the API cannot take are answered, not crashed on.
    let (status, body) = call(&configure, ALICE, "POST", "/exports/crm/edit", json!({"colour": "blue"}));
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("colour"), "{body}");
    let (status, _) = call(&configure, ALICE, "PATCH", "/exports", json!({}));
    assert_eq!(status, 404);
    let mut unsigned: Value = serde_json::from_str(&request(ALICE, "GET", "/exports", json!({}))).unwrap();
    unsigned["requestContext"]["authorizer"] = Value::Null;
    let (ok, response) = configure.invoke(&unsigned.to_string());
    assert!(ok);
    assert_eq!(response["statusCode"], 401, "{response}");
    // A direct invocation with a made-up caller (no function URL context) changes nothing.
    let mut forged: Value = serde_json::from_str(&request(
        "arn:aws:iam::123456789012:user/nobody",
        "POST",
        "/exports/crm/discard",
        json!({}),
    ))
    .unwrap();
    forged["requestContext"]["domainName"] = Value::Null;
    let before = call(&configure, ALICE, "GET", "/exports/crm/audit", json!({})).1;
    let (ok, response) = configure.invoke(&forged.to_string());
    assert!(ok);
    assert_eq!(response["statusCode"], 403, "{response}");
    assert!(response["body"].as_str().unwrap().contains("NotFromFunctionUrl"), "{response}");
    assert_eq!(call(&configure, ALICE, "GET", "/exports/crm/audit", json!({})).1, before, "nothing written");
}
