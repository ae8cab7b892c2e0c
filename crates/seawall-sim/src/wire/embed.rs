//! Embeddings: OpenAI `POST /v1/embeddings`, Gemini `models/{model}:embedContent` and
//! `:batchEmbedContents`.
//!
//! # The vectors
//!
//! Deterministic, with no model: a **signed hashed bag of words**. A text is lower-cased
//! and split on every character that is not a letter or a digit; a word longer than three
//! letters loses one trailing `s` (so `capital` and `capitals` are one word). Each word
//! adds ±1 at position `h % dimensions`, where `h` is the word's FNV-1a hash and the sign
//! is the hash's top bit. The vector is then scaled to unit length (a text with no word
//! hashes the whole text as one word). Two texts that share most of their words are close
//! in cosine similarity; texts with no word in common are near orthogonal. The same text
//! always gets the same vector, whatever the seed or the request order.
//!
//! # What is refused, as the real APIs refuse it
//!
//! | request | OpenAI | Gemini |
//! |---|---|---|
//! | no input, an empty text | 400 `'$.input' is invalid` | 400 `INVALID_ARGUMENT` |
//! | too many inputs | more than 2048: 400 `'$.input' is invalid` | more than 100 requests: 400 `INVALID_ARGUMENT` |
//! | a chat model | 403 `You are not allowed to generate embeddings from this model` | 404 `NOT_FOUND` (not supported for embedContent) |
//! | an unknown model | 404 `model_not_found` | 404 `NOT_FOUND` |
//! | `dimensions` on `text-embedding-ada-002` | 400 `This model does not support specifying dimensions.` | – |
//! | dimensions below 1 or above the model's | 400, `param: dimensions` | 400 `INVALID_ARGUMENT` |
//! | `encoding_format` other than `float`/`base64` | 400, `param: encoding_format` | – |

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Value, json};

use super::ApiError;
use crate::reply::{fnv1a, text_tokens};

/// OpenAI's most inputs in one request.
pub(crate) const OPENAI_MAX_INPUTS: usize = 2048;
/// Gemini's most requests in one batch.
pub(crate) const GEMINI_MAX_BATCH: usize = 100;

/// The vector of `text`, `dimensions` long, of unit length.
pub(crate) fn vector(text: &str, dimensions: usize) -> Vec<f32> {
    let mut out = vec![0.0_f32; dimensions.max(1)];
    let len = out.len() as u64;
    let mut add = |word: &str| {
        let h = fnv1a(0, word.as_bytes());
        let index = usize::try_from(h % len).unwrap_or(0);
        out[index] += if h >> 63 == 1 { -1.0 } else { 1.0 };
    };
    let lower = text.to_lowercase();
    let mut words = 0;
    for word in lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let word = match word.strip_suffix('s') {
            Some(stem) if word.chars().count() > 3 => stem,
            _ => word,
        };
        add(word);
        words += 1;
    }
    if words == 0 {
        add(&lower);
    }
    let norm = out.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in &mut out {
            *x /= norm;
        }
    } else {
        // Words that cancelled out: still a unit vector, and still the same for the text.
        out[0] = 1.0;
    }
    out
}

fn openai_input_error() -> ApiError {
    ApiError::new(
        400,
        "invalid_request_error",
        "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
    )
}

/// The length of an OpenAI embedding model's vectors, and whether it takes `dimensions`.
fn openai_model(model: &str) -> Result<(usize, bool), ApiError> {
    match model {
        "text-embedding-3-small" => Ok((1536, true)),
        "text-embedding-3-large" => Ok((3072, true)),
        "text-embedding-ada-002" => Ok((1536, false)),
        m if m.starts_with("gpt-")
            || m.starts_with("chatgpt-")
            || m.starts_with("o1")
            || m.starts_with("o3")
            || m.starts_with("o4") =>
        {
            Err(ApiError::new(
                403,
                "invalid_request_error",
                "You are not allowed to generate embeddings from this model",
            ))
        }
        m => Err(ApiError::new(
            404,
            "invalid_request_error",
            format!("The model `{m}` does not exist or you do not have access to it."),
        )
        .code("model_not_found")),
    }
}

/// The texts of an OpenAI `input`: a string, an array of strings, an array of token ids
/// (one text) or an array of such arrays. Token ids are hashed as words `t<id>`.
fn openai_texts(input: &Value) -> Result<Vec<String>, ApiError> {
    let tokens = |items: &[Value]| -> Option<String> {
        let ids: Option<Vec<u64>> = items.iter().map(Value::as_u64).collect();
        let ids = ids?;
        (!ids.is_empty()).then(|| {
            ids.iter()
                .map(|id| format!("t{id}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
    };
    let texts = match input {
        Value::String(text) if !text.is_empty() => vec![text.clone()],
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_string) => items
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect(),
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_u64) => {
            vec![tokens(items).ok_or_else(openai_input_error)?]
        }
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_array) => items
            .iter()
            .map(|v| tokens(v.as_array().map(Vec::as_slice).unwrap_or_default()))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(openai_input_error)?,
        _ => return Err(openai_input_error()),
    };
    if texts.len() > OPENAI_MAX_INPUTS || texts.iter().any(String::is_empty) {
        return Err(openai_input_error());
    }
    Ok(texts)
}

/// The body of an OpenAI `/v1/embeddings` answer, or the error the API gives.
pub(crate) fn openai(body: &Value) -> Result<Bytes, ApiError> {
    let model = body.get("model").and_then(Value::as_str).ok_or_else(|| {
        ApiError::new(
            400,
            "invalid_request_error",
            "you must provide a model parameter",
        )
    })?;
    let input = body.get("input").ok_or_else(|| {
        ApiError::new(
            400,
            "invalid_request_error",
            "Missing required parameter: 'input'.",
        )
        .param("input")
    })?;
    let base64 = match body.get("encoding_format") {
        None | Some(Value::Null) => false,
        Some(Value::String(f)) if f == "float" => false,
        Some(Value::String(f)) if f == "base64" => true,
        Some(other) => {
            return Err(ApiError::new(
                400,
                "invalid_request_error",
                format!("Invalid value: {other}. Supported values are: 'float' and 'base64'."),
            )
            .param("encoding_format")
            .code("invalid_value"));
        }
    };
    let (native, takes_dimensions) = openai_model(model)?;
    let dimensions = match body.get("dimensions") {
        None | Some(Value::Null) => native,
        Some(_) if !takes_dimensions => {
            return Err(ApiError::new(
                400,
                "invalid_request_error",
                "This model does not support specifying dimensions.",
            ));
        }
        Some(value) => {
            match value.as_u64().and_then(|d| usize::try_from(d).ok()) {
                Some(d) if (1..=native).contains(&d) => d,
                _ => {
                    return Err(ApiError::new(
                    400,
                    "invalid_request_error",
                    format!("Invalid value for 'dimensions' = {value}. Must be between 1 and {native}."),
                )
                .param("dimensions"));
                }
            }
        }
    };
    let texts = openai_texts(input)?;
    let prompt_tokens: u64 = texts.iter().map(|t| text_tokens(t)).sum();
    let data: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let values = vector(text, dimensions);
            let embedding = if base64 {
                let bytes: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(values)
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    let answer = json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": { "prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens },
    });
    Ok(Bytes::from(answer.to_string()))
}

fn gemini_invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "INVALID_ARGUMENT", message)
}

/// The length of a Gemini embedding model's vectors.
fn gemini_model(model: &str, method: &str) -> Result<usize, ApiError> {
    match model {
        "gemini-embedding-001" => Ok(3072),
        "text-embedding-004" | "embedding-001" => Ok(768),
        m => Err(ApiError::new(
            404,
            "NOT_FOUND",
            format!(
                "models/{m} is not found for API version v1beta, or is not supported for \
                 {method}. Call ListModels to see the list of available models and their \
                 supported methods."
            ),
        )),
    }
}

/// The vector of one `EmbedContentRequest`; `at` names it in errors.
fn gemini_one(request: &Value, model: &str, native: usize, at: &str) -> Result<Vec<f32>, ApiError> {
    if let Some(named) = request.get("model").and_then(Value::as_str)
        && named.trim_start_matches("models/") != model
    {
        return Err(gemini_invalid(format!(
            "* {at}model: the model must be models/{model}, the model of the call"
        )));
    }
    let parts = request
        .get("content")
        .and_then(|c| c.get("parts"))
        .and_then(Value::as_array)
        .filter(|parts| !parts.is_empty())
        .ok_or_else(|| {
            gemini_invalid(format!(
                "* {at}content.parts: contents.parts must not be empty."
            ))
        })?;
    let text: String = parts
        .iter()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    if text.trim().is_empty() {
        return Err(gemini_invalid(format!(
            "* {at}content.parts: the content holds no text to embed."
        )));
    }
    let dimensions = match request.get("outputDimensionality") {
        None | Some(Value::Null) => native,
        Some(value) => match value.as_u64().and_then(|d| usize::try_from(d).ok()) {
            Some(d) if (1..=native).contains(&d) => d,
            _ => {
                return Err(gemini_invalid(format!(
                    "* {at}output_dimensionality: must be between 1 and {native}, got {value}."
                )));
            }
        },
    };
    Ok(vector(&text, dimensions))
}

/// The body of a Gemini `:embedContent` answer.
pub(crate) fn gemini_single(body: &Value, model: &str) -> Result<Bytes, ApiError> {
    let native = gemini_model(model, "embedContent")?;
    let values = gemini_one(body, model, native, "EmbedContentRequest.")?;
    Ok(Bytes::from(
        json!({ "embedding": { "values": values } }).to_string(),
    ))
}

/// The body of a Gemini `:batchEmbedContents` answer.
pub(crate) fn gemini_batch(body: &Value, model: &str) -> Result<Bytes, ApiError> {
    let native = gemini_model(model, "batchEmbedContents")?;
    let requests = body
        .get("requests")
        .and_then(Value::as_array)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            gemini_invalid("* BatchEmbedContentsRequest.requests: requests must not be empty.")
        })?;
    if requests.len() > GEMINI_MAX_BATCH {
        return Err(gemini_invalid(format!(
            "* BatchEmbedContentsRequest.requests: at most {GEMINI_MAX_BATCH} requests can be in one batch"
        )));
    }
    let embeddings = requests
        .iter()
        .enumerate()
        .map(|(i, request)| {
            gemini_one(
                request,
                model,
                native,
                &format!("BatchEmbedContentsRequest.requests[{i}]."),
            )
            .map(|values| json!({ "values": values }))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Bytes::from(json!({ "embeddings": embeddings }).to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn vectors_are_unit_length_deterministic_and_close_for_similar_texts() {
        let a = vector("What is the capital of France?", 256);
        let b = vector("what is the capital of france", 256);
        let c = vector("What's the capital city of France?", 256);
        let d = vector("Write a haiku about autumn leaves", 256);
        assert_eq!(a.len(), 256);
        assert!((cosine(&a, &a) - 1.0).abs() < 1e-5);
        assert_eq!(a, vector("What is the capital of France?", 256));
        assert!(
            (cosine(&a, &b) - 1.0).abs() < 1e-5,
            "case and punctuation do not count"
        );
        assert!(
            cosine(&a, &c) > 0.7,
            "a paraphrase is close: {}",
            cosine(&a, &c)
        );
        assert!(
            cosine(&a, &d) < 0.3,
            "an unrelated text is far: {}",
            cosine(&a, &d)
        );
    }

    #[test]
    fn a_text_without_words_still_gets_a_unit_vector() {
        let v = vector("?!", 8);
        assert!((cosine(&v, &v) - 1.0).abs() < 1e-5);
    }
}
