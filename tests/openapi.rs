use std::time::Duration;

use serde_json::Value;

use crate::util::sse::SseClient;
use crate::util::{FeedServer, TestEnv, http, wait_until};

/// Resolves a `$ref` into the document.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap();
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

/// Checks `value` against the parts of `schema` the document uses for answers: required
/// properties, and the same for array items and nested objects one level down.
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) {
    let schema = resolve(doc, schema);
    if let Some(required) = schema["required"].as_array() {
        for name in required {
            let name = name.as_str().unwrap();
            assert!(
                value.get(name).is_some(),
                "{at}: required property {name:?} missing in {value}"
            );
        }
    }
    if let Some(props) = schema["properties"].as_object() {
        for (name, sub) in props {
            if let Some(v) = value.get(name) {
                if let (Some(items), Some(list)) = (sub.get("items"), v.as_array()) {
                    for item in list {
                        conforms(doc, items, item, &format!("{at}.{name}[]"));
                    }
                }
                if let Some(allowed) = sub["enum"].as_array() {
                    assert!(allowed.contains(v), "{at}.{name}: {v} not in {allowed:?}");
                }
            }
        }
    }
}

#[test]
fn every_documented_operation_answers_as_documented() {
    let doc: Value = serde_json::from_str(include_str!("../src/api/openapi.json")).unwrap();
    let server = FeedServer::start();
    server.serve_fixture("herald.rss");
    server.serve_fixture("kell.atom");
    let env = TestEnv::new(&format!(
        "[api]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"token\"\n[poll]\nhost_gap = \"0s\"\n[[feeds]]\nurl = \"{}\"\n",
        server.url("/herald.rss")
    ));
    let daemon = env.start_daemon();
    let addr = env.api_addr();
    let token = std::fs::read_to_string(env.dir.path().join("token")).unwrap();
    let token = Some(token.trim());
    wait_until(Duration::from_secs(20), "two articles", || {
        env.records(&["articles"]).len() == 2
    });
    let article_id = env.records(&["articles"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let kell = server.url("/kell.atom");

    // Every operation, in an order where each finds what it needs (DELETE last).
    let mut operations: Vec<(String, String, Value)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations.push((path.clone(), method.clone(), op.clone()));
        }
    }
    let rank = |m: &str| match m {
        "get" => 1,
        "post" => 0,
        "patch" => 2,
        _ => 3,
    };
    operations.sort_by_key(|(p, m, _)| (rank(m), p.clone()));
    assert!(operations.len() >= 18, "{} operations", operations.len());

    let mut feed_id = String::new();
    for (path, method, op) in &operations {
        let op_id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path}: no operationId"));
        let mut concrete = path.replace("{name}", "openapi-check").replace(
            "{id}",
            if path.starts_with("/v1/articles/") {
                &article_id
            } else {
                &feed_id
            },
        );
        if op_id == "explain" {
            concrete.push_str(&format!("?target={article_id}"));
        }
        let body = match op_id {
            "addFeed" => Some(format!(r#"{{"url": "{kell}", "tags": ["science"]}}"#)),
            "updateFeed" => Some(r#"{"name": "Kell"}"#.to_string()),
            "consumerAck" => Some(r#"{"seq": 1}"#.to_string()),
            _ => None,
        };
        let (status, answer) = if op_id == "stream" {
            let client = SseClient::connect(&addr, &concrete, None).unwrap();
            assert!(
                client
                    .headers
                    .to_ascii_lowercase()
                    .contains("content-type: text/event-stream")
            );
            (client.status, String::new())
        } else {
            http(
                &addr,
                &method.to_uppercase(),
                &concrete,
                token,
                body.as_deref(),
            )
        };
        let documented = &op["responses"][status.to_string()];
        assert!(
            documented.is_object(),
            "{method} {concrete} ({op_id}) answered {status}, which is not documented: {answer}"
        );
        assert!((200..300).contains(&status), "{op_id}: {status} {answer}");
        if let Some(schema) = documented["content"]["application/json"]["schema"].as_object() {
            let value: Value = serde_json::from_str(&answer)
                .unwrap_or_else(|e| panic!("{op_id}: not JSON ({e}): {answer}"));
            conforms(&doc, &Value::Object(schema.clone()), &value, op_id);
        }
        if op_id == "addFeed" {
            feed_id = serde_json::from_str::<Value>(&answer).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string();
        }
    }

    // And what is not documented is not served.
    assert_eq!(http(&addr, "GET", "/v1/secret", None, None).0, 404);
    assert_eq!(http(&addr, "PUT", "/v1/articles", token, None).0, 405);
    assert_eq!(daemon.stop().code(), Some(0));
}
