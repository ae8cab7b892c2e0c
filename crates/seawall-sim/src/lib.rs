//! A faithful, fault-injecting simulator of the OpenAI, Anthropic and Gemini HTTP APIs.
//!
//! It serves each provider's wire format on one loopback port, under a path prefix per
//! provider, so that the official SDKs and seawall's own adapters behave against it as against
//! the real service: exact bodies, headers and SSE framing, per-key quotas with real rate-limit
//! headers, and scripted faults.
//!
//! # URLs
//!
//! | provider | base URL to give the SDK | endpoints |
//! |---|---|---|
//! | OpenAI | `http://ADDR/openai/v1` | `POST /chat/completions`, `POST /responses`, `POST /responses/input_tokens`, `POST /embeddings`, `GET /models` |
//! | Anthropic | `http://ADDR/anthropic` | `POST /v1/messages`, `POST /v1/messages/count_tokens` |
//! | Gemini | `http://ADDR/gemini` | `POST /{v1,v1beta}/models/{model}:{generateContent,streamGenerateContent,countTokens,embedContent,batchEmbedContents}` |
//! | Ollama | `http://ADDR/ollama/v1` | as OpenAI, Ollama's quirks |
//! | vLLM | `http://ADDR/vllm/v1` | as OpenAI, vLLM's quirks |
//! | llama.cpp | `http://ADDR/llamacpp/v1` | as OpenAI, llama.cpp's quirks, plus `GET /llamacpp/health` |
//!
//! Azure OpenAI is served by the OpenAI provider: its deployment paths
//! (`http://ADDR/openai/deployments/{deployment}/chat/completions?api-version=...`, 404
//! without an `api-version`) and the v1 path with the key in an `api-key` header
//! (`http://ADDR/openai/v1/chat/completions`). Such a request authenticates with `api-key`
//! (Azure's 401 otherwise), and its stream opens with Azure's chunk of
//! `prompt_filter_results` (empty `id`, `model` and `choices`) and carries
//! `content_filter_results` on its choices.
//!
//! Unprefixed paths also work: `/v1/chat/completions` and `/v1/models` are OpenAI,
//! `/v1/messages` is Anthropic, `/v1beta/models/…` and `/v1/models/…:method` are Gemini.
//! [`Simulator::base_url`] returns the base URL of each. [`SimulatorBuilder::start`] serves
//! on the caller's runtime; [`SimulatorBuilder::start_threaded`] on dedicated threads (the
//! binary's layout, for throughput).
//!
//! # Replies
//!
//! Replies are deterministic: the text depends only on the provider's seed and the
//! conversation (system prompt and messages), so two identical requests get identical text on
//! every provider. A conversation that ends with an assistant message `P` (a prefill) is
//! answered with the rest of the full reply after `P` when `P` is a prefix of it; providers
//! configured with [`ProviderSettings::reject_prefill`] answer the provider's 400 instead.
//! One that ends with an assistant message and then a user message asking to continue (it
//! contains "continue") gets the rest of the reply the assistant message began, after a
//! repeat of its last word, as a model asked to finish a cut answer does.
//! Offered tools are called (with arguments derived from their schema) unless the last message
//! is a tool result or tool use is disabled.
//!
//! **Token rule.** A text of `n` characters counts `ceil(n / 4)` tokens; each message adds 3,
//! the system prompt counts as a message, and every prompt adds 3 for reply priming. Each
//! reply piece (a word with its leading space) is one completion token; a tool call counts
//! `ceil(len(arguments) / 4)`. Usage fields and quotas use these counts.
//!
//! **Embeddings** are deterministic too: a signed hashed bag of words scaled to unit length,
//! so texts that share their words are close in cosine similarity and unrelated texts are
//! near orthogonal. Empty input, too many inputs, a chat model, an unknown model and bad
//! dimensions are refused as the real APIs refuse them. The scheme and the refusals are
//! described in `src/wire/embed.rs`. Faults apply to the embeddings endpoints as to chat.
//!
//! # Faults
//!
//! Each provider has a fault plan: an ordered list of [`FaultRule`]s, installed at start
//! ([`SimulatorBuilder::faults`], the config file), replaced while running with
//! [`Simulator::set_faults`] or `PUT /__sim/faults/{provider}` with a JSON array of rules.
//! Request numbers and time windows count from the moment a plan is installed.
//!
//! # Admin endpoint
//!
//! `GET /__sim/log[?provider=openai]`, `DELETE /__sim/log`, `GET|PUT|DELETE
//! /__sim/faults/{provider}`, `GET|PUT /__sim/quota/{provider}` (a [`QuotaConfig`] as JSON),
//! `PUT /__sim/reject_prefill/{provider}` (`true`/`false`), `PUT /__sim/seed/{provider}` (a
//! number: the seed of that provider's replies), `PUT /__sim/refuse_connections`
//! (`{"ms": N}`: reset new connections for N ms), `POST /__sim/reset`,
//! `GET /__sim/urls`.
//!
//! # Example
//!
//! ```
//! use seawall_sim::{Fault, FaultRule, Provider, Simulator};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let sim = Simulator::builder().seed(7).start().await?;
//! println!("OpenAI at {}", sim.base_url(Provider::OpenAi));
//!
//! // The next request to OpenAI gets a 429 with `retry-after: 1`.
//! sim.set_faults(Provider::OpenAi, vec![FaultRule::first(1, Fault::rate_limited(1))]);
//!
//! let body = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
//! let request = format!(
//!     "POST /openai/v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer sk-test\r\n\
//!      content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
//!     body.len()
//! );
//! let mut stream = tokio::net::TcpStream::connect(sim.addr()).await?;
//! stream.write_all(request.as_bytes()).await?;
//! let mut response = String::new();
//! stream.read_to_string(&mut response).await?;
//! assert!(response.starts_with("HTTP/1.1 429"));
//! assert!(response.contains("retry-after: 1"));
//!
//! // Every request is logged (keys redacted), for asserting call counts and gaps.
//! let log = sim.requests_for(Provider::OpenAi);
//! assert_eq!(log.len(), 1);
//! assert_eq!(log[0].header("authorization"), Some("Bearer [redacted]"));
//! sim.shutdown().await;
//! # Ok(())
//! # }
//! ```

// Provider errors are built on cold paths only; boxing them would add noise, not speed.
#![allow(clippy::result_large_err)]

mod body;
mod config;
mod fault;
mod log;
mod quota;
mod reply;
mod server;
mod timefmt;
mod wire;

pub use config::{Provider, ProviderSettings, QuotaConfig, QuotaRefill, ScriptedReply, SimConfig};
pub use fault::{Fault, FaultRule, RateLimitKind, RetryAfter, RetryHeaders};
pub use log::LoggedRequest;
pub use server::{Simulator, SimulatorBuilder};
