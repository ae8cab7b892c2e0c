//! Tests of the Responses dialect: decoding, the response object, the stream writer, and
//! each checked against real recordings (`../../testdata/responses/`, see its README).

use std::collections::BTreeSet;

use serde_json::Value;

mod decode;
mod encode;
mod recorded;
mod stream;

mod shared {
    use serde_json::{Value, json};

    use super::super::{error_body, item_id};

    #[test]
    fn error_bodies_have_all_four_keys() {
        let body: Value = serde_json::from_slice(&error_body(
            429,
            "rate_limit_error",
            Some("rate_limit_exceeded"),
            None,
            "slow down",
        ))
        .unwrap();
        assert_eq!(
            body,
            json!({"error": {"message": "slow down", "type": "rate_limit_error",
                "param": null, "code": "rate_limit_exceeded"}})
        );
        let body: Value = serde_json::from_slice(&error_body(
            400,
            "invalid_request_error",
            None,
            Some("input"),
            "bad",
        ))
        .unwrap();
        assert_eq!(body["error"]["param"], "input");
        assert_eq!(body["error"]["code"], Value::Null);
    }

    #[test]
    fn item_ids_follow_the_response_id() {
        assert_eq!(item_id("msg", "resp_abc", 0), "msg_abc_0");
        assert_eq!(item_id("fc", "other", 3), "fc_other_3");
    }
}

/// One SSE event: its `event:` name and its `data:` JSON.
pub(super) fn sse_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut name = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(rest) = line.strip_prefix("event: ") {
                    name = Some(rest.to_owned());
                } else if let Some(rest) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(rest).expect("data is JSON"));
                } else {
                    panic!("unexpected SSE line {line:?}");
                }
            }
            (name.expect("an event: line"), data.expect("a data: line"))
        })
        .collect()
}

/// The events a writer wrote, checked to be framed as the real API frames them: the
/// `event:` name is the payload's `type`, and `sequence_number` counts from 0.
pub(super) fn written(out: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(out).expect("UTF-8");
    assert!(text.ends_with("\n\n"), "{text}");
    sse_events(text)
        .into_iter()
        .enumerate()
        .map(|(n, (name, data))| {
            assert_eq!(data["type"], name.as_str(), "{data}");
            assert_eq!(data["sequence_number"], n, "{data}");
            data
        })
        .collect()
}

pub(super) fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("?"))
        .collect()
}

/// Asserts that `mine` and `real` have the same keys at every level (object keys, the
/// elements of lists in order), but for the keys in `tolerated`, which either may lack;
/// and that no value is a collection on one side and a scalar (other than `null`) on the
/// other.
pub(super) fn assert_same_shape(mine: &Value, real: &Value, tolerated: &[&str]) {
    fn walk(mine: &Value, real: &Value, tolerated: &[&str], path: &str) {
        match (mine, real) {
            (Value::Object(a), Value::Object(b)) => {
                let a_keys: BTreeSet<&str> = a.keys().map(String::as_str).collect();
                let b_keys: BTreeSet<&str> = b.keys().map(String::as_str).collect();
                let only_mine: Vec<_> = a_keys
                    .difference(&b_keys)
                    .filter(|k| !tolerated.contains(k))
                    .collect();
                let only_real: Vec<_> = b_keys
                    .difference(&a_keys)
                    .filter(|k| !tolerated.contains(k))
                    .collect();
                assert!(
                    only_mine.is_empty() && only_real.is_empty(),
                    "at {path}: keys only in ours {only_mine:?}, only in the recording {only_real:?}"
                );
                for key in a_keys.intersection(&b_keys) {
                    walk(&a[*key], &b[*key], tolerated, &format!("{path}.{key}"));
                }
            }
            (Value::Array(a), Value::Array(b)) => {
                for (i, (x, y)) in a.iter().zip(b).enumerate() {
                    walk(x, y, tolerated, &format!("{path}[{i}]"));
                }
            }
            (Value::Null, _) | (_, Value::Null) => {}
            (a, b) => assert_eq!(
                a.is_object() || a.is_array(),
                b.is_object() || b.is_array(),
                "at {path}: {a} against {b}"
            ),
        }
    }
    walk(mine, real, tolerated, "$");
}
