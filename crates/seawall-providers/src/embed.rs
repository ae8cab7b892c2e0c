//! The embeddings wire formats: OpenAI `POST {base_url}/embeddings` and Gemini
//! `models/{model}:embedContent` / `:batchEmbedContents`. Anthropic has none: its dialect
//! keeps the [`Dialect`](crate::Dialect) defaults, which refuse with
//! [`EmbeddingsUnsupported`] before anything is sent.

use base64::Engine as _;
use bytes::Bytes;
use http::HeaderValue;
use http_body_util::Full;
use seawall_core::{
    EmbeddingEncoding, EmbeddingRequest, Embeddings, EmbeddingsUnsupported, ErrorKind, LlmError,
    ProviderKind,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::error::decode_error;
use crate::json::{join_url, post};

/// The error of a provider without an embeddings endpoint.
pub(crate) fn unsupported(provider: ProviderKind) -> LlmError {
    let source = EmbeddingsUnsupported::new(provider);
    LlmError::new(ErrorKind::InvalidRequest, source.to_string())
        .with_provider(provider)
        .with_source(source)
}

fn invalid(provider: ProviderKind, problem: impl Into<String>) -> LlmError {
    LlmError::new(ErrorKind::InvalidRequest, problem).with_provider(provider)
}

/// `POST {base_url}/embeddings` (the whole `url`): one text is sent as a string, several as
/// an array.
pub(crate) fn openai_request(
    provider: ProviderKind,
    url: &str,
    request: &EmbeddingRequest,
    headers: Vec<(&'static str, HeaderValue)>,
) -> Result<http::Request<Full<Bytes>>, LlmError> {
    let mut body = Map::new();
    body.insert("model".into(), json!(&*request.model));
    let input = match request.input.as_slice() {
        [one] => json!(one),
        many => json!(many),
    };
    body.insert("input".into(), input);
    if let Some(dimensions) = request.dimensions {
        body.insert("dimensions".into(), json!(dimensions));
    }
    let format = match request.encoding {
        EmbeddingEncoding::Base64 => "base64",
        _ => "float",
    };
    body.insert("encoding_format".into(), json!(format));
    post(url, &Value::Object(body), false, headers).map_err(|e| invalid(provider, e))
}

#[derive(Deserialize)]
struct OpenAiBody {
    data: Vec<OpenAiItem>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<OpenAiUsage>,
}

#[derive(Deserialize)]
struct OpenAiItem {
    #[serde(default)]
    index: Option<usize>,
    embedding: Vector,
}

#[derive(Deserialize)]
struct OpenAiUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
}

/// A vector as JSON numbers, or as base64 of little-endian `f32`s.
#[derive(Deserialize)]
#[serde(untagged)]
enum Vector {
    Floats(Vec<f32>),
    Base64(String),
}

impl Vector {
    fn floats(self) -> Result<Vec<f32>, String> {
        match self {
            Self::Floats(values) => Ok(values),
            Self::Base64(text) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(text.as_bytes())
                    .map_err(|e| format!("an embedding is not base64: {e}"))?;
                if bytes.len() % 4 != 0 {
                    return Err(format!(
                        "a base64 embedding holds {} bytes, not a whole number of f32s",
                        bytes.len()
                    ));
                }
                Ok(bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect())
            }
        }
    }
}

/// The vectors of an OpenAI `list` body, put in input order by their `index`.
pub(crate) fn openai_response(
    provider: ProviderKind,
    model: &str,
    expected: usize,
    body: &[u8],
) -> Result<Embeddings, LlmError> {
    let parsed: OpenAiBody =
        serde_json::from_slice(body).map_err(|e| decode_error(provider, "embeddings", e))?;
    let mut slots: Vec<Option<Vec<f32>>> = vec![None; parsed.data.len()];
    for (position, item) in parsed.data.into_iter().enumerate() {
        let index = item.index.unwrap_or(position);
        let vector = item
            .embedding
            .floats()
            .map_err(|e| decode_error(provider, "embeddings", e))?;
        match slots.get_mut(index) {
            Some(slot @ None) => *slot = Some(vector),
            _ => {
                return Err(decode_error(
                    provider,
                    "embeddings",
                    format!("`data[{position}].index` {index} is out of place"),
                ));
            }
        }
    }
    let vectors = collect(provider, slots, expected)?;
    let mut embeddings = Embeddings::new(
        provider,
        parsed.model.unwrap_or_else(|| model.into()),
        vectors,
    );
    embeddings.prompt_tokens = parsed.usage.and_then(|u| u.prompt_tokens);
    Ok(embeddings)
}

fn collect(
    provider: ProviderKind,
    slots: Vec<Option<Vec<f32>>>,
    expected: usize,
) -> Result<Vec<Vec<f32>>, LlmError> {
    if slots.len() != expected {
        return Err(decode_error(
            provider,
            "embeddings",
            format!("{} vectors for {expected} inputs", slots.len()),
        ));
    }
    slots
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| decode_error(provider, "embeddings", "a vector is missing"))
}

/// Gemini: `:embedContent` for one text, `:batchEmbedContents` for several.
pub(crate) fn gemini_request(
    base_url: &str,
    api_version: &str,
    request: &EmbeddingRequest,
    key: HeaderValue,
) -> Result<http::Request<Full<Bytes>>, LlmError> {
    let provider = ProviderKind::Gemini;
    let model = request.model.trim_start_matches("models/");
    if model.contains(['/', '?', '#', ':']) {
        return Err(invalid(
            provider,
            format!("`{model}` is not a Gemini model name"),
        ));
    }
    let one = |text: &str| {
        let mut item = Map::new();
        item.insert("model".into(), json!(format!("models/{model}")));
        item.insert("content".into(), json!({ "parts": [{ "text": text }] }));
        if let Some(dimensions) = request.dimensions {
            item.insert("outputDimensionality".into(), json!(dimensions));
        }
        Value::Object(item)
    };
    let (method, body) = match request.input.as_slice() {
        [text] => ("embedContent", one(text)),
        many => (
            "batchEmbedContents",
            json!({ "requests": many.iter().map(|text| one(text)).collect::<Vec<_>>() }),
        ),
    };
    let url = join_url(base_url, &format!("{api_version}/models/{model}:{method}"));
    post(&url, &body, false, [("x-goog-api-key", key)]).map_err(|e| invalid(provider, e))
}

#[derive(Deserialize)]
struct GeminiBody {
    #[serde(default)]
    embedding: Option<GeminiVector>,
    #[serde(default)]
    embeddings: Option<Vec<GeminiVector>>,
}

#[derive(Deserialize)]
struct GeminiVector {
    values: Vec<f32>,
}

/// The vectors of a Gemini `embedding` or `embeddings` body.
pub(crate) fn gemini_response(
    model: &str,
    expected: usize,
    body: &[u8],
) -> Result<Embeddings, LlmError> {
    let provider = ProviderKind::Gemini;
    let parsed: GeminiBody =
        serde_json::from_slice(body).map_err(|e| decode_error(provider, "embeddings", e))?;
    let vectors: Vec<Option<Vec<f32>>> = match (parsed.embedding, parsed.embeddings) {
        (Some(one), None) => vec![Some(one.values)],
        (None, Some(many)) => many.into_iter().map(|v| Some(v.values)).collect(),
        _ => {
            return Err(decode_error(
                provider,
                "embeddings",
                "neither `embedding` nor `embeddings` in the body",
            ));
        }
    };
    let vectors = collect(provider, vectors, expected)?;
    Ok(Embeddings::new(
        provider,
        model.trim_start_matches("models/"),
        vectors,
    ))
}
