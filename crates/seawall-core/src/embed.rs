//! Embeddings: one request and response model for every provider's embeddings endpoint,
//! and the [`Embedder`] trait that layers (the semantic cache) embed text through.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::{BoxError, ProviderKind, RequestContext};

/// How the provider sends the vectors back. The response is the same either way: the
/// adapters decode base64 into floats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum EmbeddingEncoding {
    /// JSON numbers (OpenAI `encoding_format: "float"`, the default).
    #[default]
    Float,
    /// Little-endian `f32`s in base64 (OpenAI `encoding_format: "base64"`): about a quarter
    /// of the bytes on the wire. Gemini has no such option; its adapter sends floats.
    Base64,
}

/// A request for the embeddings of one or more texts.
///
/// ```
/// use seawall_core::EmbeddingRequest;
///
/// let request = EmbeddingRequest::new("text-embedding-3-small", ["Capital of France?"])
///     .with_dimensions(256);
/// assert!(request.validate().is_ok());
/// assert!(EmbeddingRequest::new("text-embedding-3-small", [""; 0]).validate().is_err());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EmbeddingRequest {
    /// The embedding model (`text-embedding-3-small`, `gemini-embedding-001`, ...).
    pub model: Arc<str>,
    /// The texts, one vector each, in order.
    pub input: Vec<String>,
    /// The length of the vectors asked for (OpenAI `dimensions`, Gemini
    /// `outputDimensionality`); the model's own length when `None`.
    pub dimensions: Option<u32>,
    /// How the vectors travel on the wire (OpenAI only).
    pub encoding: EmbeddingEncoding,
    /// The call's context (deadline, trace parent).
    pub context: RequestContext,
}

impl EmbeddingRequest {
    /// A request for the vectors of `input` from `model`.
    pub fn new<I, T>(model: impl Into<Arc<str>>, input: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        Self {
            model: model.into(),
            input: input.into_iter().map(Into::into).collect(),
            dimensions: None,
            encoding: EmbeddingEncoding::Float,
            context: RequestContext::default(),
        }
    }

    /// Asks for vectors of `dimensions` numbers.
    #[must_use]
    pub fn with_dimensions(mut self, dimensions: u32) -> Self {
        self.dimensions = Some(dimensions);
        self
    }

    /// Asks for the vectors in `encoding` on the wire.
    #[must_use]
    pub fn with_encoding(mut self, encoding: EmbeddingEncoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// Checks what every provider refuses: no input, an empty text, zero dimensions.
    ///
    /// # Errors
    ///
    /// An [`InvalidRequest`](crate::InvalidRequest) naming the field.
    pub fn validate(&self) -> Result<(), crate::InvalidRequest> {
        let invalid = |field: &str, problem: &str| {
            Err(crate::InvalidRequest {
                field: field.to_owned(),
                problem: problem.to_owned(),
            })
        };
        if self.model.is_empty() {
            return invalid("model", "must not be empty");
        }
        if self.input.is_empty() {
            return invalid("input", "must hold at least one text");
        }
        if let Some(i) = self.input.iter().position(String::is_empty) {
            return invalid(&format!("input[{i}]"), "must not be empty");
        }
        if self.dimensions == Some(0) {
            return invalid("dimensions", "must be at least 1");
        }
        Ok(())
    }
}

/// The vectors of an [`EmbeddingRequest`], one per input text, in order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Embeddings {
    /// Who answered.
    pub provider: ProviderKind,
    /// The model, as the provider names it (the request's when it names none).
    pub model: String,
    /// One vector per input, in the order of the input.
    pub vectors: Vec<Vec<f32>>,
    /// The input tokens counted (OpenAI `usage.prompt_tokens`; Gemini reports none).
    pub prompt_tokens: Option<u64>,
}

impl Embeddings {
    /// Vectors from `provider`'s `model`.
    pub fn new(provider: ProviderKind, model: impl Into<String>, vectors: Vec<Vec<f32>>) -> Self {
        Self {
            provider,
            model: model.into(),
            vectors,
            prompt_tokens: None,
        }
    }
}

/// A provider has no embeddings endpoint (Anthropic). It is the source of the
/// [`LlmError`](crate::LlmError) of kind `InvalidRequest` the adapter returns, with nothing
/// sent; find it with [`find_error`](crate::find_error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EmbeddingsUnsupported {
    /// The provider without the endpoint.
    pub provider: ProviderKind,
}

impl EmbeddingsUnsupported {
    /// `provider` has no embeddings endpoint.
    pub fn new(provider: ProviderKind) -> Self {
        Self { provider }
    }
}

impl fmt::Display for EmbeddingsUnsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} has no embeddings endpoint", self.provider)
    }
}

impl std::error::Error for EmbeddingsUnsupported {}

/// Something that turns texts into vectors: a provider adapter (`seawall-providers`
/// implements it for its adapters), a local model, or a test double.
///
/// `embed` takes `&self` and returns a `'static` future, so one embedder is shared by every
/// clone of a layer without a lock.
pub trait Embedder: Send + Sync + 'static {
    /// The future of one call.
    type Future: Future<Output = Result<Embeddings, BoxError>> + Send + 'static;

    /// The vectors of `request`'s texts.
    fn embed(&self, request: EmbeddingRequest) -> Self::Future;
}

impl<E: Embedder> Embedder for Arc<E> {
    type Future = E::Future;

    fn embed(&self, request: EmbeddingRequest) -> Self::Future {
        (**self).embed(request)
    }
}
