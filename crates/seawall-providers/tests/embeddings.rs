//! The adapters' `embed` call against the simulator over loopback: OpenAI (floats and
//! base64, one text and several) and Gemini (`embedContent` and `batchEmbedContents`),
//! errors mapped as the chat call's are, and Anthropic's typed refusal with nothing sent.

use seawall_core::{
    Embedder, EmbeddingEncoding, EmbeddingRequest, EmbeddingsUnsupported, ErrorKind, LlmError,
    ProviderKind, find_error,
};
use seawall_providers::http::{HttpClient, HttpClientConfig};
use seawall_providers::{Anthropic, AnthropicConfig, Gemini, GeminiConfig, OpenAi, OpenAiConfig};
use seawall_sim::{Fault, FaultRule, Provider, Simulator};

fn client() -> HttpClient {
    HttpClientConfig::default().build().unwrap()
}

fn openai(sim: &Simulator) -> OpenAi<HttpClient> {
    OpenAi::new(
        client(),
        OpenAiConfig::new("sk-test").with_base_url(sim.base_url(Provider::OpenAi)),
    )
}

fn gemini(sim: &Simulator) -> Gemini<HttpClient> {
    Gemini::new(
        client(),
        GeminiConfig::new("AIza-test").with_base_url(sim.base_url(Provider::Gemini)),
    )
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn llm_error(error: &seawall_core::BoxError) -> &LlmError {
    find_error::<LlmError>(&**error).expect("an LlmError")
}

#[tokio::test]
async fn openai_embeds_one_text_and_several_in_order() {
    let sim = Simulator::builder().start().await.unwrap();
    let adapter = openai(&sim);
    let one = adapter
        .embed(EmbeddingRequest::new(
            "text-embedding-3-small",
            ["Capital of France?"],
        ))
        .await
        .unwrap();
    assert_eq!(one.provider, ProviderKind::OpenAi);
    assert_eq!(one.model, "text-embedding-3-small");
    assert_eq!(one.vectors.len(), 1);
    assert_eq!(one.vectors[0].len(), 1536);
    assert_eq!(one.prompt_tokens, Some(5));

    let texts = [
        "What is the capital of France?",
        "Capital of France?",
        "A poem about the sea",
    ];
    let many = adapter
        .embed(EmbeddingRequest::new("text-embedding-3-small", texts).with_dimensions(128))
        .await
        .unwrap();
    assert_eq!(many.vectors.len(), 3);
    assert!(many.vectors.iter().all(|v| v.len() == 128));
    assert!(
        cosine(&many.vectors[0], &many.vectors[1]) > cosine(&many.vectors[0], &many.vectors[2])
    );

    // The wire: one text as a string, several as an array, the format named.
    let log = sim.requests_for(Provider::OpenAi);
    assert_eq!(log.len(), 2);
    let first: serde_json::Value = serde_json::from_slice(&log[0].body).unwrap();
    assert_eq!(first["input"], "Capital of France?");
    assert_eq!(first["encoding_format"], "float");
    let second: serde_json::Value = serde_json::from_slice(&log[1].body).unwrap();
    assert_eq!(second["input"].as_array().unwrap().len(), 3);
    assert_eq!(second["dimensions"], 128);
}

#[tokio::test]
async fn openai_base64_decodes_to_the_same_vectors() {
    let sim = Simulator::builder().start().await.unwrap();
    let adapter = openai(&sim);
    let request = EmbeddingRequest::new("text-embedding-3-large", ["hello", "world"]);
    let floats = adapter.embed(request.clone()).await.unwrap();
    let base64 = adapter
        .embed(request.with_encoding(EmbeddingEncoding::Base64))
        .await
        .unwrap();
    assert_eq!(floats.vectors, base64.vectors);
    assert_eq!(base64.vectors[0].len(), 3072);
}

#[tokio::test]
async fn gemini_embeds_through_embed_content_and_batch() {
    let sim = Simulator::builder().start().await.unwrap();
    let adapter = gemini(&sim);
    let one = adapter
        .embed(EmbeddingRequest::new(
            "text-embedding-004",
            ["Capital of France?"],
        ))
        .await
        .unwrap();
    assert_eq!(one.provider, ProviderKind::Gemini);
    assert_eq!(one.model, "text-embedding-004");
    assert_eq!(one.vectors[0].len(), 768);
    assert_eq!(one.prompt_tokens, None);
    let many = adapter
        .embed(
            EmbeddingRequest::new("models/text-embedding-004", ["Capital of France?", "hi"])
                .with_dimensions(64),
        )
        .await
        .unwrap();
    assert_eq!(many.vectors.len(), 2);
    assert_eq!(many.vectors[1].len(), 64);
    let paths: Vec<String> = sim
        .requests_for(Provider::Gemini)
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        paths,
        [
            "/gemini/v1beta/models/text-embedding-004:embedContent",
            "/gemini/v1beta/models/text-embedding-004:batchEmbedContents",
        ]
    );
    // The same text through either method: the same vector, cut to the dimensions asked.
    let full = adapter
        .embed(EmbeddingRequest::new(
            "text-embedding-004",
            ["Capital of France?", "x"],
        ))
        .await
        .unwrap();
    assert_eq!(full.vectors[0], one.vectors[0]);
}

#[tokio::test]
async fn provider_refusals_are_classified_as_the_chat_calls_are() {
    let sim = Simulator::builder().start().await.unwrap();
    let error = openai(&sim)
        .embed(EmbeddingRequest::new("gpt-4o", ["hi"]))
        .await
        .unwrap_err();
    let error = llm_error(&error);
    assert_eq!(error.status(), Some(403));
    assert!(
        error
            .message()
            .contains("not allowed to generate embeddings")
    );

    let error = gemini(&sim)
        .embed(EmbeddingRequest::new("gemini-2.5-flash", ["hi"]))
        .await
        .unwrap_err();
    let error = llm_error(&error);
    assert_eq!(error.status(), Some(404));
    assert_eq!(error.provider(), Some(ProviderKind::Gemini));

    // A scripted overload is retryable, with the provider's shape read.
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::first(1, Fault::status(503))],
    );
    let error = openai(&sim)
        .embed(EmbeddingRequest::new("text-embedding-3-small", ["hi"]))
        .await
        .unwrap_err();
    let verdict = seawall_core::classify(&*error);
    assert_eq!(llm_error(&error).status(), Some(503));
    assert_eq!(verdict.disposition, seawall_core::Disposition::Retry);
}

#[tokio::test]
async fn invalid_requests_and_anthropic_send_nothing() {
    let sim = Simulator::builder().start().await.unwrap();
    let empty: [&str; 0] = [];
    let error = openai(&sim)
        .embed(EmbeddingRequest::new("text-embedding-3-small", empty))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("input"), "{error}");

    let anthropic = Anthropic::new(
        client(),
        AnthropicConfig::new("sk-ant").with_base_url(sim.base_url(Provider::Anthropic)),
    );
    // Through the trait, as the semantic cache calls it.
    let error = Embedder::embed(
        &anthropic,
        EmbeddingRequest::new("claude-sonnet-4-5", ["hi"]),
    )
    .await
    .unwrap_err();
    let unsupported = find_error::<EmbeddingsUnsupported>(&*error).expect("the typed refusal");
    assert_eq!(unsupported.provider, ProviderKind::Anthropic);
    assert_eq!(llm_error(&error).kind(), ErrorKind::InvalidRequest);
    assert!(sim.requests().is_empty(), "nothing was sent");
}
