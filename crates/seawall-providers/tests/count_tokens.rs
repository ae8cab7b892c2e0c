//! Exact token counts against the simulator: Anthropic `count_tokens`, Gemini `countTokens`
//! and the Responses API's `input_tokens` agree with the input tokens the same request's
//! usage reports; OpenAI Chat Completions refuses before sending anything.

mod support;

use seawall_core::{ChatRequest, ErrorKind, LlmError, Message, ProviderKind, ToolDefinition};
use seawall_providers::http::{HttpClient, HttpClientConfig};
use seawall_providers::{
    Adapter, Anthropic, AnthropicConfig, Dialect, Gemini, GeminiConfig, OpenAi, OpenAiConfig,
    OpenAiResponses, ResponsesConfig,
};
use seawall_sim::{Provider, Simulator};
use serde_json::Value;
use support::{Canned, ChunkedBody, llm_error};
use tower::ServiceExt;

fn client() -> HttpClient {
    HttpClientConfig::default().build().unwrap()
}

fn request() -> ChatRequest {
    ChatRequest::new(
        "model-1",
        [
            Message::system("You answer questions about geography, briefly."),
            Message::user("What is the capital of France?"),
            Message::assistant("Paris."),
            Message::user("And of Italy? Answer in one word, please."),
        ],
    )
    .with_max_output_tokens(64)
    .with_temperature(0.5)
    .with_tools([ToolDefinition::new(
        "lookup",
        "Look something up",
        serde_json::json!({"type": "object", "properties": {"q": {"type": "string"}}}),
    )])
    .with_tool_choice(seawall_core::ToolChoice::None)
}

/// The count, then the input tokens of the same request's (non-streamed) usage.
async fn count_and_usage<D: Dialect>(mut adapter: Adapter<D, HttpClient>) -> (u64, u64) {
    let count = adapter
        .count_tokens(&request())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let response = adapter.oneshot(request()).await.unwrap();
    (count, response.usage.unwrap().input_tokens)
}

fn last_request(sim: &Simulator, provider: Provider) -> (String, Value) {
    let requests = sim.requests_for(provider);
    let last = requests.last().expect("a request");
    (
        last.path.clone(),
        serde_json::from_slice(&last.body).unwrap(),
    )
}

#[tokio::test]
async fn anthropic_counts_what_the_call_then_uses() {
    let sim = Simulator::builder().start().await.unwrap();
    let base = sim.base_url(Provider::Anthropic);
    let adapter = Anthropic::new(
        client(),
        AnthropicConfig::new("sk-test").with_base_url(base),
    );
    let (count, used) = count_and_usage(adapter).await;
    assert!(count > 0);
    assert_eq!(count, used);
    let requests = sim.requests_for(Provider::Anthropic);
    let counted = &requests[0];
    assert_eq!(counted.path, "/anthropic/v1/messages/count_tokens");
    assert_eq!(counted.header("x-api-key"), Some("[redacted]"));
    let body: Value = serde_json::from_slice(&counted.body).unwrap();
    // The endpoint refuses the output fields as extra inputs.
    for refused in ["max_tokens", "stream", "temperature"] {
        assert!(body.get(refused).is_none(), "{refused} in {body}");
    }
    assert_eq!(
        body["system"][0]["text"],
        "You answer questions about geography, briefly."
    );
    assert_eq!(body["tools"][0]["name"], "lookup");
}

#[tokio::test]
async fn gemini_counts_the_whole_generate_request() {
    let sim = Simulator::builder().start().await.unwrap();
    let base = sim.base_url(Provider::Gemini);
    let mut request = request();
    request.model = "gemini-2.5-flash".into();
    let mut adapter = Gemini::new(client(), GeminiConfig::new("sk-test").with_base_url(base));
    let count = adapter.count_tokens(&request).await.unwrap();
    let used = adapter.oneshot(request).await.unwrap().usage.unwrap();
    assert_eq!(
        count, used.input_tokens,
        "the system instruction counts too"
    );
    let requests = sim.requests_for(Provider::Gemini);
    assert_eq!(
        requests[0].path,
        "/gemini/v1beta/models/gemini-2.5-flash:countTokens"
    );
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    let inner = &body["generateContentRequest"];
    assert_eq!(inner["model"], "models/gemini-2.5-flash");
    assert!(inner["systemInstruction"].is_object(), "{body}");
    assert_eq!(inner["contents"].as_array().map(Vec::len), Some(3));
}

#[tokio::test]
async fn the_responses_api_counts_input_tokens() {
    let sim = Simulator::builder().start().await.unwrap();
    let base = sim.base_url(Provider::OpenAi);
    let adapter = OpenAiResponses::new(
        client(),
        ResponsesConfig::new("sk-test").with_base_url(base),
    );
    let (count, used) = count_and_usage(adapter).await;
    assert!(count > 0);
    assert_eq!(count, used);
    let requests = sim.requests_for(Provider::OpenAi);
    assert_eq!(requests[0].path, "/openai/v1/responses/input_tokens");
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    // The endpoint refuses the output fields as unknown parameters.
    for refused in ["max_output_tokens", "stream", "temperature"] {
        assert!(body.get(refused).is_none(), "{refused} in {body}");
    }
    assert_eq!(
        body["instructions"],
        "You answer questions about geography, briefly."
    );
    let (path, _) = last_request(&sim, Provider::OpenAi);
    assert_eq!(path, "/openai/v1/responses");
}

#[tokio::test]
async fn a_refused_count_is_the_providers_error() {
    let http = Canned::new(
        429,
        &[("content-type", "application/json"), ("retry-after", "7")],
        ChunkedBody::whole(
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"},"request_id":"req_011"}"#,
        ),
    );
    let mut adapter = Anthropic::new(http.clone(), AnthropicConfig::new("sk-test"));
    let error = llm_error(adapter.count_tokens(&request()).await.unwrap_err());
    assert_eq!(error.kind(), ErrorKind::RateLimited);
    assert_eq!(error.status(), Some(429));
    assert_eq!(error.provider(), Some(ProviderKind::Anthropic));
    assert_eq!(error.request_id(), Some("req_011"));
    assert_eq!(
        error.hints().retry_after,
        Some(std::time::Duration::from_secs(7))
    );
    assert_eq!(
        http.last().uri,
        "https://api.anthropic.com/v1/messages/count_tokens"
    );
}

#[tokio::test]
async fn a_count_body_without_a_count_is_a_decode_error() {
    let http = Canned::json(200, r#"{"object":"response.input_tokens"}"#);
    let mut adapter = OpenAiResponses::new(http, ResponsesConfig::new("sk-test"));
    let error = llm_error(adapter.count_tokens(&request()).await.unwrap_err());
    assert_eq!(error.kind(), ErrorKind::Decode);
    assert_eq!(error.provider(), Some(ProviderKind::OpenAiResponses));
}

#[tokio::test]
async fn chat_completions_has_no_count_and_sends_nothing() {
    let sim = Simulator::builder().start().await.unwrap();
    let base = sim.base_url(Provider::OpenAi);
    let mut adapter = OpenAi::new(client(), OpenAiConfig::new("sk-test").with_base_url(base));
    let error = adapter.count_tokens(&request()).await.unwrap_err();
    let error = error.downcast::<LlmError>().unwrap();
    assert_eq!(error.kind(), ErrorKind::InvalidRequest);
    assert!(
        error.message().contains("token counting unsupported"),
        "{error}"
    );
    assert_eq!(error.provider(), Some(ProviderKind::OpenAi));
    assert!(sim.requests().is_empty(), "nothing sent");
}

#[tokio::test]
async fn an_invalid_request_is_not_counted() {
    let sim = Simulator::builder().start().await.unwrap();
    let base = sim.base_url(Provider::Anthropic);
    let mut adapter = Anthropic::new(
        client(),
        AnthropicConfig::new("sk-test").with_base_url(base),
    );
    let empty = ChatRequest::new("model-1", []);
    let error = adapter.count_tokens(&empty).await.unwrap_err();
    assert!(error.to_string().contains("messages"), "{error}");
    assert!(sim.requests().is_empty(), "nothing sent");
}
