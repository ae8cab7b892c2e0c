//! Embeddings on the wire: OpenAI `/v1/embeddings` and Gemini `embedContent` /
//! `batchEmbedContents`: the shape of the answers, their determinism and closeness, and
//! the requests the real APIs refuse.

mod common;

use base64::Engine as _;
use common::*;
use seawall_sim::Simulator;
use serde_json::{Value, json};

async fn openai_embed(sim: &Simulator, body: &Value) -> Resp {
    send(
        sim.addr(),
        "POST",
        "/openai/v1/embeddings",
        &[OAI_AUTH, JSON],
        &body.to_string(),
    )
    .await
}

async fn gemini_embed(sim: &Simulator, model: &str, method: &str, body: &Value) -> Resp {
    send(
        sim.addr(),
        "POST",
        &format!("/gemini/v1beta/models/{model}:{method}"),
        &[("x-goog-api-key", "AIza-test"), JSON],
        &body.to_string(),
    )
    .await
}

fn floats(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .expect("an array of numbers")
        .iter()
        .map(|x| x.as_f64().expect("a number") as f32)
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f32]) -> f32 {
    cosine(a, a).sqrt()
}

#[tokio::test]
async fn openai_list_shape_usage_and_unit_vectors() {
    let sim = Simulator::builder().start().await.unwrap();
    let r = openai_embed(
        &sim,
        &json!({"model": "text-embedding-3-small", "input": ["Capital of France?", "hello there"]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("x-request-id").unwrap().starts_with("req_"));
    let v = r.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "text-embedding-3-small");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["object"], "embedding");
        assert_eq!(item["index"], i);
        let vector = floats(&item["embedding"]);
        assert_eq!(vector.len(), 1536);
        assert!((norm(&vector) - 1.0).abs() < 1e-4);
    }
    // ceil(18 / 4) + ceil(11 / 4) under the simulator's token rule.
    assert_eq!(v["usage"]["prompt_tokens"], 5 + 3);
    assert_eq!(v["usage"]["total_tokens"], 8);
}

#[tokio::test]
async fn openai_vectors_are_deterministic_close_for_paraphrases_and_shortened() {
    let sim = Simulator::builder().seed(1).start().await.unwrap();
    let other = Simulator::builder().seed(99).start().await.unwrap();
    let body = json!({
        "model": "text-embedding-3-large",
        "input": [
            "What is the capital of France?",
            "what's the capital of France",
            "Write a poem about the sea",
        ],
        "dimensions": 256,
    });
    let first = openai_embed(&sim, &body).await.json();
    let again = openai_embed(&other, &body).await.json();
    assert_eq!(
        first["data"], again["data"],
        "the same text, the same vector, on any simulator"
    );
    let vectors: Vec<Vec<f32>> = (0..3)
        .map(|i| floats(&first["data"][i]["embedding"]))
        .collect();
    assert!(vectors.iter().all(|v| v.len() == 256));
    assert!(cosine(&vectors[0], &vectors[1]) > 0.7);
    assert!(cosine(&vectors[0], &vectors[2]) < 0.4);
}

#[tokio::test]
async fn openai_base64_is_the_float_vector_in_little_endian() {
    let sim = Simulator::builder().start().await.unwrap();
    let float = openai_embed(
        &sim,
        &json!({"model": "text-embedding-3-small", "input": "hello", "dimensions": 8}),
    )
    .await
    .json();
    let encoded = openai_embed(
        &sim,
        &json!({"model": "text-embedding-3-small", "input": "hello", "dimensions": 8,
                "encoding_format": "base64"}),
    )
    .await
    .json();
    let text = encoded["data"][0]["embedding"]
        .as_str()
        .expect("a base64 string");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(decoded, floats(&float["data"][0]["embedding"]));
}

#[tokio::test]
async fn openai_token_array_input_is_accepted() {
    let sim = Simulator::builder().start().await.unwrap();
    let r = openai_embed(
        &sim,
        &json!({"model": "text-embedding-3-small", "input": [[1, 2, 3], [4]]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn openai_refuses_what_the_api_refuses() {
    let sim = Simulator::builder().start().await.unwrap();
    let too_many: Vec<String> = (0..2049).map(|i| format!("text {i}")).collect();
    let cases = [
        (
            json!({"model": "text-embedding-3-small", "input": ""}),
            400,
            None,
            "'$.input' is invalid",
        ),
        (
            json!({"model": "text-embedding-3-small", "input": []}),
            400,
            None,
            "'$.input' is invalid",
        ),
        (
            json!({"model": "text-embedding-3-small", "input": ["a", ""]}),
            400,
            None,
            "'$.input' is invalid",
        ),
        (
            json!({"model": "text-embedding-3-small", "input": too_many}),
            400,
            None,
            "'$.input' is invalid",
        ),
        (
            json!({"model": "gpt-4o", "input": "hi"}),
            403,
            None,
            "not allowed to generate embeddings",
        ),
        (
            json!({"model": "text-embedding-9", "input": "hi"}),
            404,
            None,
            "does not exist",
        ),
        (
            json!({"model": "text-embedding-ada-002", "input": "hi", "dimensions": 256}),
            400,
            None,
            "does not support specifying dimensions",
        ),
        (
            json!({"model": "text-embedding-3-small", "input": "hi", "dimensions": 0}),
            400,
            Some("dimensions"),
            "dimensions",
        ),
        (
            json!({"model": "text-embedding-3-small", "input": "hi", "dimensions": 1537}),
            400,
            Some("dimensions"),
            "dimensions",
        ),
        (
            json!({"model": "text-embedding-3-small", "input": "hi", "encoding_format": "int8"}),
            400,
            Some("encoding_format"),
            "Supported values",
        ),
    ];
    for (body, status, param, message) in cases {
        let r = openai_embed(&sim, &body).await;
        assert_eq!(r.status, status, "{body}: {}", r.text());
        let v = r.json();
        assert_eq!(v["error"]["type"], "invalid_request_error", "{body}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(message),
            "{body}: {v}"
        );
        if let Some(param) = param {
            assert_eq!(v["error"]["param"], param, "{body}");
        }
    }
}

#[tokio::test]
async fn gemini_single_and_batch_agree_and_honour_output_dimensionality() {
    let sim = Simulator::builder().start().await.unwrap();
    let one = gemini_embed(
        &sim,
        "text-embedding-004",
        "embedContent",
        &json!({"model": "models/text-embedding-004", "content": {"parts": [{"text": "Capital of France?"}]}}),
    )
    .await;
    assert_eq!(one.status, 200, "{}", one.text());
    assert_eq!(
        one.header("content-type"),
        Some("application/json; charset=UTF-8")
    );
    let single = floats(&one.json()["embedding"]["values"]);
    assert_eq!(single.len(), 768);
    assert!((norm(&single) - 1.0).abs() < 1e-4);

    let batch = gemini_embed(
        &sim,
        "text-embedding-004",
        "batchEmbedContents",
        &json!({"requests": [
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "Capital of France?"}]}},
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "hello"}]},
             "outputDimensionality": 64},
        ]}),
    )
    .await;
    assert_eq!(batch.status, 200, "{}", batch.text());
    let v = batch.json();
    let embeddings = v["embeddings"].as_array().unwrap();
    assert_eq!(embeddings.len(), 2);
    assert_eq!(floats(&embeddings[0]["values"]), single);
    assert_eq!(floats(&embeddings[1]["values"]).len(), 64);
}

#[tokio::test]
async fn gemini_refuses_what_the_api_refuses() {
    let sim = Simulator::builder().start().await.unwrap();
    let text = |t: &str| json!({"content": {"parts": [{"text": t}]}});
    let too_many: Vec<Value> = (0..101).map(|i| text(&format!("t{i}"))).collect();
    let cases = [
        (
            "gemini-2.5-flash",
            "embedContent",
            text("hi"),
            404,
            "NOT_FOUND",
        ),
        (
            "no-such-model",
            "embedContent",
            text("hi"),
            404,
            "NOT_FOUND",
        ),
        (
            "text-embedding-004",
            "embedContent",
            json!({"content": {"parts": []}}),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "text-embedding-004",
            "embedContent",
            text(""),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "text-embedding-004",
            "batchEmbedContents",
            json!({"requests": []}),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "text-embedding-004",
            "batchEmbedContents",
            json!({"requests": too_many}),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "text-embedding-004",
            "embedContent",
            json!({"content": {"parts": [{"text": "hi"}]}, "outputDimensionality": 769}),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "text-embedding-004",
            "embedContent",
            json!({"model": "models/embedding-001", "content": {"parts": [{"text": "hi"}]}}),
            400,
            "INVALID_ARGUMENT",
        ),
    ];
    for (model, method, body, status, kind) in cases {
        let r = gemini_embed(&sim, model, method, &body).await;
        assert_eq!(r.status, status, "{model}:{method} {body}: {}", r.text());
        let v = r.json();
        assert_eq!(v["error"]["status"], kind, "{body}");
        assert_eq!(v["error"]["code"], status, "{body}");
    }
}

#[tokio::test]
async fn anthropic_has_no_embeddings_endpoint() {
    let sim = Simulator::builder().start().await.unwrap();
    let r = send(
        sim.addr(),
        "POST",
        "/anthropic/v1/embeddings",
        &[
            ("x-api-key", "sk-ant"),
            ("anthropic-version", "2023-06-01"),
            JSON,
        ],
        r#"{"model":"claude-sonnet-4-5","input":"hi"}"#,
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["type"], "not_found_error");
}
