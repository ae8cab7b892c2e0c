//! `[semantic_cache]` (feature `semantic-cache`): the semantic cache in front of every
//! group's router, embedding prompts through one configured target's embeddings endpoint.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use seawall::budget::Scope;
use seawall::failover::Failover;
use seawall::semantic_cache::{SemanticCache, SemanticCacheLayer};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use seawall_core::{BoxError, Embedder, EmbeddingRequest, Embeddings};
use seawall_providers::{ApiKey, Gemini, OpenAi};
use serde::Deserialize;
use tower::Layer;
use tower::util::Either;
use tower_service::Service;

use crate::config::{Config, ConfigError, ProviderConfig, duration, problem};
use crate::server::UpstreamClient;

/// `[semantic_cache]`: answers a call with the stored answer of a similar earlier one, by
/// the cosine similarity of the prompts' embeddings (see `seawall::semantic_cache`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SemanticCacheConfig {
    /// `target`: the `[[targets]]` entry whose provider, base URL and key the embeddings
    /// are asked of: an `openai`, `openai_compatible` or `gemini` target (Anthropic has no
    /// embeddings endpoint).
    pub target: String,
    /// `model`: the embedding model (`text-embedding-3-small`, `text-embedding-004`, ...).
    pub model: String,
    /// `dimensions`: the length of the vectors asked for; the model's own when absent.
    #[serde(default)]
    pub dimensions: Option<u32>,
    /// `threshold`: the least cosine similarity for a stored answer to serve (default 0.95).
    #[serde(default = "default_threshold")]
    pub threshold: f32,
    /// `ttl`: how long an answer may serve (default `"10m"`).
    #[serde(default = "default_ttl", deserialize_with = "duration")]
    pub ttl: Duration,
    /// `max_entries`: the most answers held (default 10000); the oldest go first.
    #[serde(default = "default_max_entries")]
    pub max_entries: usize,
    /// `scope`: whose answers may serve whom: `"key"` (default; the same virtual key only,
    /// needs `[[keys]]`), `"user"` (the request's `user` field), or `"global"`.
    #[serde(default)]
    pub scope: SemanticScopeConfig,
    /// `embed_timeout`: how long to wait for an embedding before the call goes upstream
    /// without the cache (default `"2s"`).
    #[serde(default = "default_embed_timeout", deserialize_with = "duration")]
    pub embed_timeout: Duration,
}

/// `[semantic_cache] scope`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SemanticScopeConfig {
    /// The caller's virtual key.
    #[default]
    Key,
    /// The request's `user` field.
    User,
    /// Every caller shares one cache.
    Global,
}

fn default_threshold() -> f32 {
    0.95
}

fn default_ttl() -> Duration {
    Duration::from_secs(600)
}

fn default_max_entries() -> usize {
    10_000
}

fn default_embed_timeout() -> Duration {
    Duration::from_secs(2)
}

/// Checks `[semantic_cache]` against the targets and keys.
pub(crate) fn validate(config: &Config) -> Result<(), ConfigError> {
    let Some(semantic) = &config.semantic_cache else {
        return Ok(());
    };
    let target = config
        .targets
        .iter()
        .find(|t| t.name == semantic.target)
        .ok_or_else(|| {
            problem(
                "semantic_cache.target",
                format!("no target is named {:?}", semantic.target),
            )
        })?;
    if target.provider == ProviderConfig::Anthropic {
        return Err(problem(
            "semantic_cache.target",
            "Anthropic has no embeddings endpoint: name an openai, openai_compatible or gemini target",
        ));
    }
    if semantic.model.trim().is_empty() {
        return Err(problem(
            "semantic_cache.model",
            "must name an embedding model",
        ));
    }
    if !(semantic.threshold > 0.0 && semantic.threshold <= 1.0) {
        return Err(problem(
            "semantic_cache.threshold",
            "must be above 0 and at most 1",
        ));
    }
    if semantic.max_entries == 0 {
        return Err(problem("semantic_cache.max_entries", "must be at least 1"));
    }
    if semantic.ttl.is_zero() {
        return Err(problem("semantic_cache.ttl", "must be above zero"));
    }
    if semantic.dimensions == Some(0) {
        return Err(problem("semantic_cache.dimensions", "must be at least 1"));
    }
    if semantic.scope == SemanticScopeConfig::Key && config.keys.is_empty() {
        return Err(problem(
            "semantic_cache.scope",
            "\"key\" needs [[keys]]; without virtual keys use scope = \"global\"",
        ));
    }
    Ok(())
}

/// The embedder of `[semantic_cache]`: the target's adapter, over the gateway's client.
#[derive(Clone, Debug)]
pub(crate) enum TargetEmbedder<H> {
    OpenAi(OpenAi<H>),
    Gemini(Gemini<H>),
}

type HttpRequest = http::Request<Full<Bytes>>;

impl<H, B> Embedder for TargetEmbedder<H>
where
    H: Service<HttpRequest, Response = http::Response<B>> + Clone + Send + Sync + 'static,
    H::Error: Into<BoxError>,
    H::Future: Send,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Future = EmbedEither<<OpenAi<H> as Embedder>::Future, <Gemini<H> as Embedder>::Future>;

    fn embed(&self, request: EmbeddingRequest) -> Self::Future {
        match self {
            Self::OpenAi(adapter) => EmbedEither::OpenAi {
                future: Embedder::embed(adapter, request),
            },
            Self::Gemini(adapter) => EmbedEither::Gemini {
                future: Embedder::embed(adapter, request),
            },
        }
    }
}

pin_project! {
    /// The embedding call of one of the two adapters.
    #[project = EmbedEitherProj]
    pub(crate) enum EmbedEither<A, B> {
        OpenAi { #[pin] future: A },
        Gemini { #[pin] future: B },
    }
}

impl<A, B> Future for EmbedEither<A, B>
where
    A: Future<Output = Result<Embeddings, BoxError>>,
    B: Future<Output = Result<Embeddings, BoxError>>,
{
    type Output = Result<Embeddings, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            EmbedEitherProj::OpenAi { future } => future.poll(cx),
            EmbedEitherProj::Gemini { future } => future.poll(cx),
        }
    }
}

/// The layer of `[semantic_cache]`, if present, embedding through `http`.
pub(crate) fn layer(
    config: &Config,
    env: &dyn Fn(&str) -> Option<String>,
    http: UpstreamClient,
) -> Result<Option<SemanticCacheLayer<TargetEmbedder<UpstreamClient>>>, ConfigError> {
    let Some(semantic) = &config.semantic_cache else {
        return Ok(None);
    };
    let target = config
        .targets
        .iter()
        .find(|t| t.name == semantic.target)
        .ok_or_else(|| problem("semantic_cache.target", "no such target"))?;
    let key = target.api_key_env.as_deref().and_then(env).map(ApiKey::new);
    let key = key.as_ref();
    let embedder = match target.provider {
        ProviderConfig::Openai | ProviderConfig::OpenaiCompatible => TargetEmbedder::OpenAi(
            OpenAi::new(http, crate::upstream::openai_config(target, key)),
        ),
        ProviderConfig::AzureOpenai => TargetEmbedder::OpenAi(OpenAi::new(
            http,
            crate::upstream::azure_config(target, key),
        )),
        ProviderConfig::Gemini => TargetEmbedder::Gemini(Gemini::new(
            http,
            crate::upstream::gemini_config(target, key),
        )),
        ProviderConfig::Anthropic | ProviderConfig::OpenaiResponses => {
            return Err(problem(
                "semantic_cache.target",
                "use an openai, openai_compatible, azure_openai or gemini target: this provider's API has no embeddings endpoint",
            ));
        }
    };
    let scope = match semantic.scope {
        SemanticScopeConfig::Key => Scope::VirtualKey,
        SemanticScopeConfig::User => Scope::User,
        SemanticScopeConfig::Global => Scope::Global,
    };
    let mut builder = SemanticCacheLayer::builder(embedder, semantic.model.as_str())
        .threshold(semantic.threshold)
        .ttl(semantic.ttl)
        .max_entries(semantic.max_entries)
        .scope(scope)
        .embed_timeout(semantic.embed_timeout);
    if let Some(dimensions) = semantic.dimensions {
        builder = builder.dimensions(dimensions);
    }
    builder
        .build()
        .map(Some)
        .map_err(|e| problem("semantic_cache", e.to_string()))
}

/// A group's router behind the semantic cache, when configured.
pub(crate) type Routed = Either<SemanticCache<Failover, TargetEmbedder<UpstreamClient>>, Failover>;

/// Puts `router` behind `layer`, if there is one.
pub(crate) fn route(
    layer: Option<&SemanticCacheLayer<TargetEmbedder<UpstreamClient>>>,
    router: Failover,
) -> Routed {
    match layer {
        Some(layer) => Either::Left(layer.layer(router)),
        None => Either::Right(router),
    }
}
