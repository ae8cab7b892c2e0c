//! Typed adapters for LLM provider HTTP APIs.
//!
//! Each adapter is a `tower::Service<ChatRequest, Response = ChatResponse>` over an HTTP
//! service: it translates the unified model of `seawall-core` to the provider wire format and
//! back, decodes server-sent events incrementally, and maps status codes, error bodies and
//! rate-limit headers to `LlmError` and `QuotaSnapshot`.
//!
//! The adapters arrive provider by provider; this crate holds none yet.
