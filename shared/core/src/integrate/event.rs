//! The events an integration function receives, in the three shapes AWS delivers a new object:
//! an S3 event notification (keys URL-encoded, `+` for a space; an `s3:TestEvent` first), an
//! EventBridge "Object Created" event from S3 (keys as they are), and SQS messages wrapping
//! either, whose failures are reported one by one (`batchItemFailures`). A direct invocation
//! `{"manifest": "s3://bucket/key"}` (or `{"bucket": …, "key": …}`) is accepted for manual runs.

use crate::error::Invalid;
use serde_json::Value;

/// An object an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub bucket: String,
    pub key: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// Objects from one event (possibly none: a test event, another detail type).
    Objects(Vec<ObjectRef>),
    /// SQS messages: each message's id and what its body holds (or why it cannot be read).
    Sqs(Vec<(String, Result<Vec<ObjectRef>, Invalid>)>),
    /// `{"sweep": true}`, from the stack's schedule: deliver whatever committed manifest is
    /// not delivered yet, and report how old the oldest is.
    Sweep,
}

/// Decodes an S3 notification's key: `%XX` escapes, and `+` for a space.
pub fn decode_s3_key(raw: &str) -> Result<String, Invalid> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = raw.get(i + 1..i + 3).ok_or_else(|| format!("key {raw:?} has a cut-off % escape"))?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("key {raw:?} has a bad % escape"))?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| Invalid(format!("key {raw:?} does not decode to UTF-8")))
}

fn str_at<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    v.pointer(path).and_then(Value::as_str)
}

/// The objects one (non-SQS) event is about. Events that are not about a created object are
/// acknowledged with no objects; an event of no known shape is an error saying what came.
pub fn objects_of(event: &Value) -> Result<Vec<ObjectRef>, Invalid> {
    // S3's test event, sent when notifications are configured.
    if str_at(event, "/Event") == Some("s3:TestEvent") {
        return Ok(Vec::new());
    }
    // EventBridge.
    if let Some(detail_type) = str_at(event, "/detail-type") {
        if str_at(event, "/source") != Some("aws.s3") || detail_type != "Object Created" {
            return Ok(Vec::new());
        }
        let bucket = str_at(event, "/detail/bucket/name");
        let key = str_at(event, "/detail/object/key");
        return match (bucket, key) {
            (Some(b), Some(k)) => Ok(vec![ObjectRef { bucket: b.into(), key: k.into() }]),
            _ => Err("an EventBridge \"Object Created\" event without detail.bucket.name and detail.object.key".into()),
        };
    }
    // S3 event notification.
    if let Some(records) = event.get("Records").and_then(Value::as_array) {
        let mut out = Vec::new();
        for r in records {
            if str_at(r, "/eventSource") != Some("aws:s3") {
                return Err(format!(
                    "a record from {:?} where S3 notifications were expected",
                    str_at(r, "/eventSource").unwrap_or("an unnamed source")
                )
                .into());
            }
            if !str_at(r, "/eventName").is_some_and(|n| n.starts_with("ObjectCreated:")) {
                continue;
            }
            let bucket = str_at(r, "/s3/bucket/name").ok_or("an S3 notification record without s3.bucket.name")?;
            let key = str_at(r, "/s3/object/key").ok_or("an S3 notification record without s3.object.key")?;
            out.push(ObjectRef { bucket: bucket.into(), key: decode_s3_key(key)? });
        }
        return Ok(out);
    }
    // A direct invocation.
    if let Some(m) = str_at(event, "/manifest") {
        let rest = m.strip_prefix("s3://").ok_or_else(|| format!("manifest {m:?} is not an s3:// URL"))?;
        let (bucket, key) = rest.split_once('/').ok_or_else(|| format!("manifest {m:?} has no key"))?;
        return Ok(vec![ObjectRef { bucket: bucket.into(), key: key.into() }]);
    }
    if let (Some(b), Some(k)) = (str_at(event, "/bucket"), str_at(event, "/key")) {
        return Ok(vec![ObjectRef { bucket: b.into(), key: k.into() }]);
    }
    let keys: Vec<&str> = event.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
    Err(format!(
        "not an S3 notification, an EventBridge S3 event, an SQS batch, {{\"manifest\": \"s3://…\"}} or {{\"sweep\": true}} (the event's keys: {})",
        keys.join(", ")
    ).into())
}

/// Reads any of the shapes.
pub fn parse(event: &Value) -> Result<Incoming, Invalid> {
    if event.get("sweep") == Some(&Value::Bool(true)) {
        return Ok(Incoming::Sweep);
    }
    let records = event.get("Records").and_then(Value::as_array);
    if let Some(records) = records.filter(|r| r.iter().any(|r| str_at(r, "/eventSource") == Some("aws:sqs"))) {
        let mut out = Vec::new();
        for r in records {
            let id = str_at(r, "/messageId").ok_or("an SQS record without messageId")?.to_string();
            let objects = match str_at(r, "/body") {
                None => Err(Invalid("an SQS message without a body".into())),
                Some(body) => serde_json::from_str::<Value>(body)
                    .map_err(|e| Invalid(format!("the message body is not JSON: {e}")))
                    .and_then(|v| objects_of(&v)),
            };
            out.push((id, objects));
        }
        return Ok(Incoming::Sqs(out));
    }
    objects_of(event).map(Incoming::Objects)
}

/// The key relative to an export destination's prefix, if the object is under it and is a
/// manifest; `None` for anything else (parts, failure files, other buckets), which is ignored.
pub fn manifest_key_under(object: &ObjectRef, bucket: &str, prefix: &str) -> Option<String> {
    let rel = key_under(object, bucket, prefix)?;
    crate::layout::RunFolder::of_manifest(&rel).map(|_| rel)
}

/// The object's key relative to a destination (`bucket`, `prefix`), if it lies under it.
pub fn key_under(object: &ObjectRef, bucket: &str, prefix: &str) -> Option<String> {
    if object.bucket != bucket {
        return None;
    }
    let rel =
        if prefix.is_empty() { object.key.as_str() } else { object.key.strip_prefix(prefix)?.strip_prefix('/')? };
    (!rel.is_empty()).then(|| rel.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn notification(key: &str) -> Value {
        json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "b"}, "object": {"key": key, "eTag": "e"}}}]})
    }

    #[test]
    fn notification_keys_are_url_decoded() {
        let objs = objects_of(&notification("ex%2Fports/my+export/t/r/manifest.json")).unwrap();
        assert_eq!(objs, vec![ObjectRef { bucket: "b".into(), key: "ex/ports/my export/t/r/manifest.json".into() }]);
        assert!(decode_s3_key("bad%2").is_err());
    }

    #[test]
    fn test_events_and_other_detail_types_are_acknowledged_with_nothing_to_do() {
        assert_eq!(
            objects_of(&json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"})).unwrap(),
            vec![]
        );
        let tags = json!({"source": "aws.s3", "detail-type": "Object Tags Added", "detail": {}});
        assert_eq!(objects_of(&tags).unwrap(), vec![]);
        let created = json!({"source": "aws.s3", "detail-type": "Object Created",
            "detail": {"bucket": {"name": "b"}, "object": {"key": "p/e/t/r/manifest.json"}}});
        assert_eq!(objects_of(&created).unwrap()[0].key, "p/e/t/r/manifest.json");
    }

    #[test]
    fn sqs_messages_are_read_one_by_one() {
        let ok = serde_json::to_string(&notification("p/e/t/r/manifest.json")).unwrap();
        let event = json!({"Records": [
            {"messageId": "m1", "eventSource": "aws:sqs", "body": ok},
            {"messageId": "m2", "eventSource": "aws:sqs", "body": "not json"},
        ]});
        let Incoming::Sqs(msgs) = parse(&event).unwrap() else { panic!("an SQS batch") };
        assert_eq!(msgs[0].1.as_ref().unwrap().len(), 1);
        assert!(msgs[1].1.as_ref().unwrap_err().contains("not JSON"));
    }

    #[test]
    fn unknown_shapes_are_named() {
        let err = objects_of(&json!({"hello": 1})).unwrap_err();
        assert!(err.contains("hello"), "{err}");
    }

    #[test]
    fn only_manifests_under_the_destination_are_delivered() {
        let o = |k: &str| ObjectRef { bucket: "b".into(), key: k.into() };
        assert_eq!(
            manifest_key_under(&o("exports/e/t/r/manifest.json"), "b", "exports"),
            Some("e/t/r/manifest.json".into())
        );
        assert_eq!(manifest_key_under(&o("exports/e/t/r/part-00000.csv"), "b", "exports"), None);
        assert_eq!(manifest_key_under(&o("other/e/t/r/manifest.json"), "b", "exports"), None);
        assert_eq!(manifest_key_under(&o("e/t/r/manifest.json"), "b", ""), Some("e/t/r/manifest.json".into()));
        assert_eq!(manifest_key_under(&o("exports/e/t/r/manifest.json"), "c", "exports"), None);
    }
}
