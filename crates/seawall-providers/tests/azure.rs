//! Azure OpenAI: deployment and v1 URLs, the `api-key` header, and Azure's content-filter
//! finish reasons, stream chunks and errors, over a canned HTTP service.

mod support;

use seawall_core::{
    ChatRequest, EmbeddingRequest, ErrorKind, FinishReason, Message, ProviderKind, StreamEvent,
};
use seawall_providers::{ApiKey, KeyHeader, OpenAi, OpenAiConfig};
use support::{Canned, ChunkedBody, events, llm_error};
use tower::ServiceExt;

const KEY: &str = "azure-secret-key-0123";

const OK: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-2024-11-20",
  "prompt_filter_results":[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}],
  "choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"Hi"},
    "content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}],
  "usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10}}"#;

fn deployment() -> OpenAiConfig {
    OpenAiConfig::azure(
        "https://my-resource.openai.azure.com/",
        "gpt-4o-prod",
        "2024-10-21",
        ApiKey::new(KEY),
    )
}

#[tokio::test]
async fn a_deployment_call_goes_to_its_url_with_the_api_version_and_the_key_in_api_key() {
    let http = Canned::json(200, OK);
    let azure = OpenAi::new(http.clone(), deployment());
    let request = ChatRequest::new("gpt-4o", [Message::user("Hello")]).with_max_output_tokens(50);
    let response = azure.oneshot(request).await.unwrap();
    assert_eq!(response.text(), "Hi");
    assert_eq!(response.provider, ProviderKind::AzureOpenAi);

    let sent = http.last();
    assert_eq!(
        sent.uri,
        "https://my-resource.openai.azure.com/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(sent.header("api-key"), Some(KEY));
    assert!(sent.headers["api-key"].is_sensitive());
    assert_eq!(sent.header("authorization"), None);
    assert_eq!(sent.json()["max_completion_tokens"], 50);
}

#[tokio::test]
async fn the_v1_api_takes_the_deployment_as_the_model() {
    let http = Canned::json(200, OK);
    let azure = OpenAi::new(
        http.clone(),
        OpenAiConfig::azure_v1("https://my-resource.openai.azure.com", ApiKey::new(KEY)),
    );
    azure
        .oneshot(ChatRequest::new("gpt-4o-prod", [Message::user("Hello")]))
        .await
        .unwrap();
    let sent = http.last();
    assert_eq!(
        sent.uri,
        "https://my-resource.openai.azure.com/openai/v1/chat/completions"
    );
    assert_eq!(sent.json()["model"], "gpt-4o-prod");
    assert_eq!(sent.header("api-key"), Some(KEY));
}

#[tokio::test]
async fn an_entra_token_goes_as_a_bearer_token() {
    let http = Canned::json(200, OK);
    let azure = OpenAi::new(
        http.clone(),
        deployment().with_key_header(KeyHeader::Bearer),
    );
    azure
        .oneshot(ChatRequest::new("gpt-4o", [Message::user("Hello")]))
        .await
        .unwrap();
    let sent = http.last();
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(sent.header("api-key"), None);
}

#[test]
fn the_key_never_shows_in_debug_output() {
    let config = deployment();
    let dialect = seawall_providers::OpenAiDialect::new(config.clone());
    for shown in [format!("{config:?}"), format!("{dialect:?}")] {
        assert!(!shown.contains(KEY), "{shown}");
    }
}

#[tokio::test]
async fn an_api_version_a_url_cannot_carry_is_refused_before_sending() {
    let http = Canned::json(200, OK);
    let azure = OpenAi::new(
        http.clone(),
        deployment().with_api_version("2024-10-21&x=1"),
    );
    let error = llm_error(
        azure
            .oneshot(ChatRequest::new("gpt-4o", [Message::user("Hello")]))
            .await
            .unwrap_err(),
    );
    assert_eq!(error.kind(), ErrorKind::InvalidRequest);
    assert_eq!(http.count(), 0, "nothing is sent");
}

#[tokio::test]
async fn embeddings_carry_the_api_version_too() {
    let http = Canned::json(
        200,
        r#"{"object":"list","model":"text-embedding-3-small","data":[{"object":"embedding","index":0,"embedding":[0.5,0.25]}],
           "usage":{"prompt_tokens":1,"total_tokens":1}}"#,
    );
    let azure = OpenAi::new(
        http.clone(),
        OpenAiConfig::azure(
            "https://r.openai.azure.com",
            "embed",
            "2024-10-21",
            ApiKey::new(KEY),
        ),
    );
    let embeddings = azure
        .embed(EmbeddingRequest::new("text-embedding-3-small", ["hi"]))
        .await
        .unwrap();
    assert_eq!(embeddings.vectors.len(), 1);
    assert_eq!(
        http.last().uri,
        "https://r.openai.azure.com/openai/deployments/embed/embeddings?api-version=2024-10-21"
    );
}

#[tokio::test]
async fn a_completion_stopped_by_the_content_filter_says_so() {
    let body = r#"{"id":"chatcmpl-2","object":"chat.completion","model":"gpt-4o-2024-11-20",
      "choices":[{"index":0,"finish_reason":"content_filter","message":{"role":"assistant","content":"Here is"},
        "content_filter_results":{"violence":{"filtered":true,"severity":"high"}}}],
      "usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}"#;
    let azure = OpenAi::new(Canned::json(200, body), deployment());
    let response = azure
        .oneshot(ChatRequest::new("gpt-4o", [Message::user("Hello")]))
        .await
        .unwrap();
    assert_eq!(response.finish_reason, Some(FinishReason::ContentFilter));
    assert_eq!(response.text(), "Here is");
}

#[tokio::test]
async fn a_stream_cut_by_the_content_filter_finishes_as_content_filter() {
    // Azure's stream: the prompt-filter chunk first, then choices with filter results, and
    // the output filter's verdict as the finish reason.
    let sse = concat!(
        "data: {\"choices\":[],\"created\":0,\"id\":\"\",\"model\":\"\",\"object\":\"\",\"prompt_filter_results\":[{\"prompt_index\":0,\"content_filter_results\":{\"hate\":{\"filtered\":false,\"severity\":\"safe\"}}}]}\n\n",
        "data: {\"choices\":[{\"content_filter_results\":{},\"delta\":{\"content\":\"\",\"role\":\"assistant\"},\"finish_reason\":null,\"index\":0}],\"created\":1,\"id\":\"chatcmpl-3\",\"model\":\"gpt-4o-2024-11-20\",\"object\":\"chat.completion.chunk\"}\n\n",
        "data: {\"choices\":[{\"content_filter_results\":{\"violence\":{\"filtered\":false,\"severity\":\"safe\"}},\"delta\":{\"content\":\"Once\"},\"finish_reason\":null,\"index\":0}],\"created\":1,\"id\":\"chatcmpl-3\",\"model\":\"gpt-4o-2024-11-20\",\"object\":\"chat.completion.chunk\"}\n\n",
        "data: {\"choices\":[{\"content_filter_results\":{\"violence\":{\"filtered\":true,\"severity\":\"high\"}},\"delta\":{},\"finish_reason\":\"content_filter\",\"index\":0}],\"created\":1,\"id\":\"chatcmpl-3\",\"model\":\"gpt-4o-2024-11-20\",\"object\":\"chat.completion.chunk\"}\n\n",
        "data: [DONE]\n\n",
    );
    let azure = OpenAi::new(Canned::sse(ChunkedBody::whole(sse)), deployment());
    let mut request = ChatRequest::new("gpt-4o", [Message::user("Hello")]);
    request.stream = true;
    let events = events(azure.oneshot(request).await.unwrap()).await;
    assert_eq!(
        events,
        vec![
            StreamEvent::Start {
                id: Some("chatcmpl-3".into()),
                model: Some("gpt-4o-2024-11-20".into()),
            },
            StreamEvent::TextDelta("Once".into()),
            StreamEvent::Finish(FinishReason::ContentFilter),
        ]
    );
}

#[tokio::test]
async fn a_prompt_refused_by_the_content_filter_is_content_filtered_and_names_the_categories() {
    let body = r#"{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.","type":null,"param":"prompt","code":"content_filter","status":400,
      "innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{
        "hate":{"filtered":false,"severity":"safe"},"jailbreak":{"filtered":true,"detected":true},
        "violence":{"filtered":true,"severity":"high"}}}}}"#;
    let azure = OpenAi::new(Canned::json(400, body), deployment());
    let error = llm_error(
        azure
            .oneshot(ChatRequest::new("gpt-4o", [Message::user("Hello")]))
            .await
            .unwrap_err(),
    );
    assert_eq!(error.kind(), ErrorKind::ContentFiltered);
    assert_eq!(error.code(), Some("content_filter"));
    assert_eq!(error.status(), Some(400));
    assert_eq!(error.provider(), Some(ProviderKind::AzureOpenAi));
    assert!(
        error
            .message()
            .ends_with("[filtered: jailbreak, violence (high)]"),
        "{}",
        error.message()
    );
    assert!(!error.to_string().contains(KEY));
}
