//! The cache key: the parts of a request that change its answer, and nothing else.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use seawall_core::ChatRequest;

/// Fields of the provider pass-through map that do not change the answer: who is asking,
/// where to store it, how it is streamed.
const NOT_IN_KEY: [&str; 7] = [
    "metadata",
    "store",
    "stream_options",
    "user",
    "safety_identifier",
    "prompt_cache_key",
    "service_tier",
];

/// A request's cache key: its normalised form (the model, the messages, the tools and every
/// parameter that changes the answer; never the caller or any credential), compared whole
/// on every hit, and its hash.
#[derive(Debug, Clone)]
pub struct CacheKey {
    pub(crate) hash: u64,
    pub(crate) bytes: Box<[u8]>,
}

impl CacheKey {
    /// The key of `request`: the model, the messages, the tools and every parameter that
    /// changes the answer; never the caller (`user`), the stream flag or the context.
    pub fn of(request: &ChatRequest) -> Option<Self> {
        let view = (
            &*request.model,
            &*request.messages,
            answer_changing(request),
        );
        let bytes = serde_json::to_vec(&view).ok()?.into_boxed_slice();
        let mut hasher = DefaultHasher::new();
        bytes.hash(&mut hasher);
        Some(Self {
            hash: hasher.finish(),
            bytes,
        })
    }
}

/// The parameters of `request` that change its answer, besides its model and messages: the
/// tools and sampling, output and format settings, and the pass-through fields not listed
/// in [`NOT_IN_KEY`]. Both caches key on them.
pub(crate) fn answer_changing(request: &ChatRequest) -> impl serde::Serialize + '_ {
    let extra: BTreeMap<&str, &serde_json::Value> = request
        .extra
        .iter()
        .filter(|(name, _)| !NOT_IN_KEY.contains(&name.as_str()))
        .map(|(name, value)| (name.as_str(), value))
        .collect();
    (
        &*request.tools,
        &request.tool_choice,
        request.max_output_tokens,
        request.temperature,
        request.top_p,
        &*request.stop,
        &request.response_format,
        extra,
    )
}

impl CacheKey {
    /// The normalised request: a store outside the process keys on a digest of it.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}
