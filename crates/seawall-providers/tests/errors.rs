//! Every status and error body of WIRE.md mapped to its `ErrorKind`, with hints, quota,
//! request id and code; stream endings and in-band errors over a canned HTTP service.

mod support;

use std::time::{Duration, SystemTime};

use seawall_core::{
    ChatRequest, Disposition, ErrorKind, FinishReason, LlmError, Message, ProviderKind,
    StreamEvent, Usage, classify,
};
use seawall_providers::{
    Anthropic, AnthropicConfig, Gemini, GeminiConfig, MalformedPolicy, OpenAi, OpenAiConfig,
    ServerKind,
};
use support::{Canned, ChunkedBody, events, llm_error};
use tower::ServiceExt;

#[derive(Clone, Copy, Debug)]
enum Target {
    OpenAi,
    Compat(ServerKind),
    Anthropic,
    Gemini,
}

async fn error_for(target: Target, status: u16, headers: &[(&str, &str)], body: &str) -> LlmError {
    let http = Canned::new(status, headers, ChunkedBody::whole(body.to_owned()));
    let request = ChatRequest::new("model-x", [Message::user("hi")]);
    let result = match target {
        Target::OpenAi => {
            OpenAi::new(http, OpenAiConfig::new("sk-test"))
                .oneshot(request)
                .await
        }
        Target::Compat(server) => {
            OpenAi::new(
                http,
                OpenAiConfig::compatible("http://127.0.0.1:1/v1", server),
            )
            .oneshot(request)
            .await
        }
        Target::Anthropic => {
            Anthropic::new(http, AnthropicConfig::new("sk-test"))
                .oneshot(request)
                .await
        }
        Target::Gemini => {
            Gemini::new(http, GeminiConfig::new("sk-test"))
                .oneshot(request)
                .await
        }
    };
    llm_error(result.expect_err("an error status fails the call"))
}

const JSON: (&str, &str) = ("content-type", "application/json");

/// (target, status, headers, body, kind, code)
#[allow(clippy::type_complexity)]
fn table() -> Vec<(
    Target,
    u16,
    Vec<(&'static str, &'static str)>,
    &'static str,
    ErrorKind,
    Option<&'static str>,
)> {
    use ErrorKind::*;
    use Target::{Anthropic as A, Gemini as G, OpenAi as O};
    vec![
        // OpenAI (§2e).
        (
            O,
            401,
            vec![JSON],
            r#"{"error":{"message":"Incorrect API key provided: sk-….","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
            Auth,
            Some("invalid_api_key"),
        ),
        (
            O,
            429,
            vec![JSON],
            r#"{"error":{"message":"Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, Used 29937, Requested 385. Please try again in 644ms.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#,
            RateLimited,
            Some("rate_limit_exceeded"),
        ),
        (
            O,
            429,
            vec![JSON],
            r#"{"error":{"message":"Request too large for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, Requested 31538. The input or output tokens must be reduced in order to run successfully.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#,
            RequestTooLarge,
            Some("rate_limit_exceeded"),
        ),
        (
            O,
            429,
            vec![JSON],
            r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#,
            QuotaExhausted,
            Some("insufficient_quota"),
        ),
        (
            O,
            400,
            vec![JSON],
            r#"{"error":{"message":"This model's maximum context length is 4097 tokens. However, your messages resulted in 4294 tokens. Please reduce the length of the messages.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
            ContextLengthExceeded,
            Some("context_length_exceeded"),
        ),
        (
            O,
            400,
            vec![JSON],
            r#"{"error":{"message":"Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.","type":"invalid_request_error","param":"max_tokens","code":"unsupported_parameter"}}"#,
            InvalidRequest,
            Some("unsupported_parameter"),
        ),
        (
            O,
            400,
            vec![JSON],
            r#"{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation"}}}"#,
            ContentFiltered,
            Some("content_filter"),
        ),
        (
            O,
            403,
            vec![JSON],
            r#"{"error":{"message":"Country, region, or territory not supported","type":"request_forbidden","param":null,"code":"unsupported_country_region_territory"}}"#,
            Permission,
            Some("unsupported_country_region_territory"),
        ),
        (
            O,
            404,
            vec![JSON],
            r#"{"error":{"message":"The model `gpt-9` does not exist","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#,
            NotFound,
            Some("model_not_found"),
        ),
        (
            O,
            500,
            vec![JSON],
            r#"{"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}"#,
            Server,
            Some("server_error"),
        ),
        (
            O,
            503,
            vec![JSON],
            r#"{"error":{"message":"The server is overloaded.","type":"service_unavailable_error","param":null,"code":"server_is_overloaded"}}"#,
            Overloaded,
            Some("server_is_overloaded"),
        ),
        (
            O,
            502,
            vec![("content-type", "text/html")],
            "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>cloudflare</center></body></html>",
            Server,
            None,
        ),
        (O, 503, vec![], "", Overloaded, None),
        (
            O,
            504,
            vec![("content-type", "text/plain")],
            "upstream request timeout",
            Timeout,
            None,
        ),
        (O, 408, vec![], "", Transient, None),
        (
            O,
            409,
            vec![JSON],
            r#"{"error":{"message":"conflict","type":"invalid_request_error","param":null,"code":null}}"#,
            Transient,
            Some("invalid_request_error"),
        ),
        // OpenAI-compatible local servers (§7).
        (
            Target::Compat(ServerKind::Vllm),
            400,
            vec![JSON],
            r#"{"error":{"message":"This model's maximum context length is 8192 tokens. However, your request has 9000 input tokens. Please reduce the length of the input messages.","type":"BadRequestError","param":"input_tokens","code":400}}"#,
            ContextLengthExceeded,
            Some("BadRequestError"),
        ),
        (
            Target::Compat(ServerKind::Vllm),
            404,
            vec![JSON],
            r#"{"object":"error","message":"The model `x` does not exist.","type":"NotFoundError","param":null,"code":404}"#,
            NotFound,
            Some("NotFoundError"),
        ),
        (
            Target::Compat(ServerKind::LlamaCpp),
            400,
            vec![JSON],
            r#"{"error":{"code":400,"message":"request (13392 tokens) exceeds the available context size (8192 tokens), try increasing it","type":"exceed_context_size_error","n_prompt_tokens":13392,"n_ctx":8192}}"#,
            ContextLengthExceeded,
            Some("exceed_context_size_error"),
        ),
        (
            Target::Compat(ServerKind::LlamaCpp),
            503,
            vec![JSON],
            r#"{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}"#,
            Overloaded,
            Some("unavailable_error"),
        ),
        (
            Target::Compat(ServerKind::Ollama),
            404,
            vec![JSON],
            r#"{"error":{"message":"model \"llama9\" not found, try pulling it first","type":"not_found_error","param":null,"code":null}}"#,
            NotFound,
            Some("not_found_error"),
        ),
        (
            Target::Compat(ServerKind::Ollama),
            400,
            vec![JSON],
            r#"{"error":{"message":"[] is too short - 'messages'","type":"invalid_request_error","param":null,"code":null}}"#,
            InvalidRequest,
            Some("invalid_request_error"),
        ),
        (
            Target::Compat(ServerKind::Other),
            500,
            vec![JSON],
            r#"{"error":"model runner crashed"}"#,
            Server,
            None,
        ),
        // Anthropic (§3d).
        (
            A,
            529,
            vec![JSON],
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded","details":null},"request_id":"req_011CZAYNHHZc2dXw6vchbkhw"}"#,
            Overloaded,
            Some("overloaded_error"),
        ),
        (
            A,
            429,
            vec![JSON],
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed the rate limit for your organization of 20,000 input tokens per minute."}}"#,
            RateLimited,
            Some("rate_limit_error"),
        ),
        (
            A,
            429,
            vec![JSON],
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"You have reached your specified API usage limits.","details":{"error_code":"enforced_spend_limit_reached"}},"request_id":"req_1"}"#,
            QuotaExhausted,
            Some("enforced_spend_limit_reached"),
        ),
        (
            A,
            400,
            vec![JSON],
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 207791 tokens > 200000 maximum"},"request_id":"req_2"}"#,
            ContextLengthExceeded,
            Some("invalid_request_error"),
        ),
        (
            A,
            400,
            vec![JSON],
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"input length and `max_tokens` exceed context limit: 178959 + 64000 > 200000, decrease input length or `max_tokens` and try again"}}"#,
            ContextLengthExceeded,
            Some("invalid_request_error"),
        ),
        (
            A,
            400,
            vec![JSON],
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"messages: roles must alternate"}}"#,
            InvalidRequest,
            Some("invalid_request_error"),
        ),
        (
            A,
            401,
            vec![JSON],
            r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
            Auth,
            Some("authentication_error"),
        ),
        (
            A,
            403,
            vec![JSON],
            r#"{"type":"error","error":{"type":"permission_error","message":"no access"}}"#,
            Permission,
            Some("permission_error"),
        ),
        (
            A,
            404,
            vec![JSON],
            r#"{"error":{"message":"model: claude-does-not-exist","type":"not_found_error"},"request_id":"req_011CVEA3SF7rnb3DuBZytqQa","type":"error"}"#,
            NotFound,
            Some("not_found_error"),
        ),
        (
            A,
            413,
            vec![JSON],
            r#"{"type":"error","error":{"type":"request_too_large","message":"Request exceeds the maximum allowed number of bytes."}}"#,
            RequestTooLarge,
            Some("request_too_large"),
        ),
        (
            A,
            413,
            vec![("content-type", "text/html")],
            "<html><title>413 Request Entity Too Large</title></html>",
            RequestTooLarge,
            None,
        ),
        (
            A,
            500,
            vec![JSON],
            r#"{"type":"error","error":{"type":"api_error","message":"Internal server error"}}"#,
            Server,
            Some("api_error"),
        ),
        (
            A,
            402,
            vec![JSON],
            r#"{"type":"error","error":{"type":"billing_error","message":"Your credit balance is too low."}}"#,
            QuotaExhausted,
            Some("billing_error"),
        ),
        (
            A,
            504,
            vec![JSON],
            r#"{"type":"error","error":{"type":"timeout_error","message":"Request timed out"}}"#,
            Timeout,
            Some("timeout_error"),
        ),
        // Gemini (§4d).
        (
            G,
            429,
            vec![JSON],
            r#"{"error":{"code":429,"message":"You exceeded your current quota.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]}]}}"#,
            QuotaExhausted,
            Some("RESOURCE_EXHAUSTED"),
        ),
        (
            G,
            429,
            vec![JSON],
            r#"{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED"}}"#,
            RateLimited,
            Some("RESOURCE_EXHAUSTED"),
        ),
        (
            G,
            400,
            vec![JSON],
            r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}"#,
            Auth,
            Some("INVALID_ARGUMENT"),
        ),
        (
            G,
            400,
            vec![JSON],
            r#"{"error":{"code":400,"message":"The input token count (3475108) exceeds the maximum number of tokens allowed (1048576).","status":"INVALID_ARGUMENT"}}"#,
            ContextLengthExceeded,
            Some("INVALID_ARGUMENT"),
        ),
        (
            G,
            400,
            vec![JSON],
            r#"{"error":{"code":400,"message":"* GenerateContentRequest.contents: contents is not specified","status":"INVALID_ARGUMENT"}}"#,
            InvalidRequest,
            Some("INVALID_ARGUMENT"),
        ),
        (
            G,
            400,
            vec![JSON],
            r#"{"error":{"code":400,"message":"User location is not supported for the API use.","status":"FAILED_PRECONDITION"}}"#,
            Permission,
            Some("FAILED_PRECONDITION"),
        ),
        (
            G,
            403,
            vec![JSON],
            r#"{"error":{"code":403,"message":"Method doesn't allow unregistered callers.","status":"PERMISSION_DENIED"}}"#,
            Permission,
            Some("PERMISSION_DENIED"),
        ),
        (
            G,
            404,
            vec![JSON],
            r#"{"error":{"code":404,"message":"models/gemini-9 is not found","status":"NOT_FOUND"}}"#,
            NotFound,
            Some("NOT_FOUND"),
        ),
        (
            G,
            500,
            vec![JSON],
            r#"{"error":{"code":500,"message":"An internal error has occurred.","status":"INTERNAL"}}"#,
            Server,
            Some("INTERNAL"),
        ),
        (
            G,
            503,
            vec![JSON],
            r#"{"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}"#,
            Overloaded,
            Some("UNAVAILABLE"),
        ),
        (
            G,
            504,
            vec![JSON],
            r#"{"error":{"code":504,"message":"Deadline expired before operation could complete.","status":"DEADLINE_EXCEEDED"}}"#,
            Timeout,
            Some("DEADLINE_EXCEEDED"),
        ),
        (
            G,
            502,
            vec![("content-type", "text/html; charset=UTF-8")],
            "<!DOCTYPE html><html><title>Error 502 (Server Error)!!1</title></html>",
            Server,
            None,
        ),
    ]
}

#[tokio::test]
async fn every_error_status_and_body_maps_to_its_kind() {
    for (target, status, headers, body, kind, code) in table() {
        let error = error_for(target, status, &headers, body).await;
        let case = format!("{target:?} {status} {body}");
        assert_eq!(error.kind(), kind, "{case}");
        assert_eq!(error.status(), Some(status), "{case}");
        assert_eq!(error.code(), code, "{case}");
        assert!(!error.message().is_empty(), "{case}");
        let provider = match target {
            Target::OpenAi => ProviderKind::OpenAi,
            Target::Compat(_) => ProviderKind::OpenAiCompatible,
            Target::Anthropic => ProviderKind::Anthropic,
            Target::Gemini => ProviderKind::Gemini,
        };
        assert_eq!(error.provider(), Some(provider), "{case}");
    }
}

#[tokio::test]
async fn non_json_bodies_keep_a_useful_message() {
    let html = error_for(
        Target::OpenAi,
        502,
        &[("content-type", "text/html")],
        "<html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>",
    )
    .await;
    assert_eq!(html.message(), "Bad Gateway (HTML page: 502 Bad Gateway)");
    let empty = error_for(Target::Anthropic, 503, &[], "").await;
    assert_eq!(empty.message(), "Service Unavailable (empty body)");
    assert_eq!(empty.kind(), ErrorKind::Overloaded);
}

#[tokio::test]
async fn non_retryable_429s_fail_over_instead_of_retrying() {
    for (target, body) in [
        (
            Target::OpenAi,
            r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#,
        ),
        (
            Target::OpenAi,
            r#"{"error":{"message":"Request too large for gpt-4o on tokens per min (TPM): Limit 30000, Requested 31538.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#,
        ),
        (
            Target::Anthropic,
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"limit","details":{"error_code":"enforced_spend_limit_reached"}}}"#,
        ),
        (
            Target::Gemini,
            r#"{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]}]}}"#,
        ),
    ] {
        let error = error_for(target, 429, &[JSON], body).await;
        let verdict = classify(&error);
        assert_eq!(
            verdict.disposition,
            Disposition::Failover,
            "{target:?} {body}"
        );
    }
    let retryable = error_for(
        Target::OpenAi,
        429,
        &[JSON],
        r#"{"error":{"message":"Rate limit reached for requests","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#,
    )
    .await;
    assert_eq!(classify(&retryable).disposition, Disposition::Retry);
}

#[tokio::test]
async fn error_headers_become_hints_quota_and_request_id() {
    let error = error_for(
        Target::OpenAi,
        429,
        &[
            JSON,
            ("retry-after", "2"),
            ("x-request-id", "req_abc"),
            ("x-ratelimit-limit-tokens", "30000"),
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-tokens", "6m0s"),
            ("x-ratelimit-limit-requests", "500"),
            ("x-ratelimit-remaining-requests", "499"),
            ("x-ratelimit-reset-requests", "120ms"),
        ],
        r#"{"error":{"message":"Rate limit reached","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#,
    )
    .await;
    assert_eq!(error.hints().retry_after, Some(Duration::from_secs(2)));
    assert_eq!(error.hints().quota_reset, Some(Duration::from_secs(360)));
    assert_eq!(error.request_id(), Some("req_abc"));
    let quota = error.quota().unwrap();
    assert_eq!(quota.tokens.unwrap().remaining, Some(0));
    assert_eq!(
        quota.requests.unwrap().reset_after,
        Some(Duration::from_millis(120))
    );
    let verdict = classify(&error);
    assert_eq!(verdict.retry_after, Some(Duration::from_secs(2)));
    assert_eq!(verdict.quota_reset, Some(Duration::from_secs(360)));

    // retry-after-ms wins over retry-after; x-should-retry is kept.
    let error = error_for(
        Target::OpenAi,
        503,
        &[
            ("retry-after-ms", "300"),
            ("retry-after", "5"),
            ("x-should-retry", "false"),
        ],
        "",
    )
    .await;
    assert_eq!(error.hints().retry_after, Some(Duration::from_millis(300)));
    assert_eq!(error.hints().should_retry, Some(false));
    assert_eq!(classify(&error).disposition, Disposition::Failover);

    // An HTTP date.
    let at = httpdate_in(Duration::from_secs(30));
    let error = error_for(Target::OpenAi, 429, &[("retry-after", at.as_str())], "").await;
    let wait = error.hints().retry_after.unwrap();
    assert!(
        wait <= Duration::from_secs(30) && wait >= Duration::from_secs(28),
        "{wait:?}"
    );

    // Anthropic: RFC 3339 resets and the request id from the body.
    let reset = rfc3339_in(Duration::from_secs(45));
    let error = error_for(
        Target::Anthropic,
        429,
        &[
            JSON,
            ("retry-after", "7"),
            ("request-id", "req_header"),
            ("anthropic-ratelimit-input-tokens-limit", "20000"),
            ("anthropic-ratelimit-input-tokens-remaining", "0"),
            ("anthropic-ratelimit-input-tokens-reset", reset.as_str()),
        ],
        r#"{"type":"error","error":{"type":"rate_limit_error","message":"input tokens per minute"},"request_id":"req_body"}"#,
    )
    .await;
    assert_eq!(error.kind(), ErrorKind::RateLimited);
    assert_eq!(error.hints().retry_after, Some(Duration::from_secs(7)));
    assert_eq!(error.request_id(), Some("req_body"));
    let input = error.quota().unwrap().input_tokens.unwrap();
    assert_eq!((input.limit, input.remaining), (Some(20_000), Some(0)));
    let reset_after = input.reset_after.unwrap();
    assert!(reset_after <= Duration::from_secs(45) && reset_after >= Duration::from_secs(43));

    // Gemini: RetryInfo in the body, no header.
    let error = error_for(
        Target::Gemini,
        429,
        &[JSON],
        r#"{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"26s"}]}}"#,
    )
    .await;
    assert_eq!(error.hints().retry_after, Some(Duration::from_secs(26)));
    assert_eq!(classify(&error).retry_after, Some(Duration::from_secs(26)));
}

fn httpdate_in(wait: Duration) -> String {
    // RFC 7231 IMF-fixdate via the same parser's counterpart.
    let at = SystemTime::now() + wait;
    let secs = at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = seawall_core::calendar::civil_from_days(days as i64);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(m - 1) as usize];
    format!(
        "{weekday}, {d:02} {month} {y} {:02}:{:02}:{:02} GMT",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn rfc3339_in(wait: Duration) -> String {
    let secs = (SystemTime::now() + wait)
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = seawall_core::calendar::civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[tokio::test]
async fn success_headers_become_the_response_quota() {
    let http = Canned::new(
        200,
        &[
            JSON,
            ("anthropic-ratelimit-requests-limit", "1000"),
            ("anthropic-ratelimit-requests-remaining", "999"),
            ("anthropic-ratelimit-output-tokens-limit", "16000"),
            ("anthropic-ratelimit-output-tokens-remaining", "15000"),
        ],
        ChunkedBody::whole(
            r#"{"id":"m","type":"message","role":"assistant","model":"claude","content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1}}"#,
        ),
    );
    let response = Anthropic::new(http, AnthropicConfig::new("k"))
        .oneshot(ChatRequest::new("claude", [Message::user("hi")]))
        .await
        .unwrap();
    let quota = response.quota.unwrap();
    assert_eq!(quota.requests.unwrap().remaining, Some(999));
    assert_eq!(quota.output_tokens.unwrap().limit, Some(16_000));

    // A streamed response carries the snapshot of its headers too.
    let http = Canned::new(
        200,
        &[
            ("content-type", "text/event-stream"),
            ("x-ratelimit-remaining-requests", "41"),
        ],
        ChunkedBody::whole("data: [DONE]\n\n"),
    );
    let response = OpenAi::new(http, OpenAiConfig::new("k"))
        .oneshot(ChatRequest::new("gpt-4o", [Message::user("hi")]).streaming())
        .await
        .unwrap();
    assert_eq!(
        response.quota.unwrap().requests.unwrap().remaining,
        Some(41)
    );
}

async fn stream_of(
    target: Target,
    body: ChunkedBody,
    policy: MalformedPolicy,
) -> (Vec<StreamEvent>, u64) {
    let http = Canned::sse(body);
    let request = ChatRequest::new("model-x", [Message::user("hi")]).streaming();
    macro_rules! run {
        ($adapter:expr) => {{
            let adapter = $adapter.with_malformed_policy(policy);
            let metrics = adapter.stream_metrics().clone();
            let response = adapter.oneshot(request).await.expect("headers arrive");
            (events(response).await, metrics.malformed_skipped())
        }};
    }
    match target {
        Target::OpenAi | Target::Compat(_) => run!(OpenAi::new(http, OpenAiConfig::new("k"))),
        Target::Anthropic => run!(Anthropic::new(http, AnthropicConfig::new("k"))),
        Target::Gemini => run!(Gemini::new(http, GeminiConfig::new("k"))),
    }
}

fn last_error(events: &[StreamEvent]) -> &LlmError {
    match events.last() {
        Some(StreamEvent::Error(error)) => error,
        other => panic!("expected an error event last, got {other:?}"),
    }
}

const OA_TEXT: &str = "data: {\"id\":\"c1\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"finish_reason\":null}],\"usage\":null}\n\n";
const OA_FINISH: &str = "data: {\"id\":\"c1\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n";
const OA_USAGE: &str = "data: {\"id\":\"c1\",\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1,\"total_tokens\":6}}\n\n";

#[tokio::test]
async fn openai_stream_endings() {
    let usage = StreamEvent::Usage(Usage::new(5, 1));
    let finish = StreamEvent::Finish(FinishReason::Stop);
    // finish_reason, usage, [DONE]: Finish then Usage.
    let (events, _) = stream_of(
        Target::OpenAi,
        ChunkedBody::whole(format!("{OA_TEXT}{OA_FINISH}{OA_USAGE}data: [DONE]\n\n")),
        MalformedPolicy::Skip,
    )
    .await;
    assert_eq!(events[events.len() - 2..], [finish.clone(), usage.clone()]);
    // No [DONE] after finish_reason and a clean end: tolerated, the trailing usage kept.
    let (events, _) = stream_of(
        Target::OpenAi,
        ChunkedBody::whole(format!("{OA_TEXT}{OA_FINISH}{OA_USAGE}")),
        MalformedPolicy::Skip,
    )
    .await;
    assert_eq!(events[events.len() - 2..], [finish, usage]);
    // A cut after the finish_reason (transport error): not complete.
    let (events, _) = stream_of(
        Target::OpenAi,
        ChunkedBody::whole(format!("{OA_TEXT}{OA_FINISH}")).then_fail(),
        MalformedPolicy::Skip,
    )
    .await;
    assert_eq!(last_error(&events).kind(), ErrorKind::StreamTruncated);
    assert!(!events.iter().any(|e| matches!(e, StreamEvent::Finish(_))));
    // A clean end with no finish_reason.
    let (events, _) = stream_of(
        Target::OpenAi,
        ChunkedBody::whole(OA_TEXT),
        MalformedPolicy::Skip,
    )
    .await;
    assert_eq!(last_error(&events).kind(), ErrorKind::StreamTruncated);
    assert_eq!(events[1], StreamEvent::TextDelta("Hel".into()));
    // [DONE] with no finish_reason.
    let (events, _) = stream_of(
        Target::OpenAi,
        ChunkedBody::whole(format!("{OA_TEXT}data: [DONE]\n\n")),
        MalformedPolicy::Skip,
    )
    .await;
    assert_eq!(last_error(&events).kind(), ErrorKind::StreamTruncated);
    // An in-band error frame: the kind its body maps to, and nothing after it.
    let (events, _) = stream_of(
        Target::OpenAi,
        ChunkedBody::whole(format!(
            "{OA_TEXT}data: {{\"error\":{{\"message\":\"You exceeded your current quota\",\"type\":\"insufficient_quota\",\"param\":null,\"code\":\"insufficient_quota\"}}}}\n\n{OA_FINISH}"
        )),
        MalformedPolicy::Skip,
    )
    .await;
    let error = last_error(&events);
    assert_eq!(error.kind(), ErrorKind::QuotaExhausted);
    assert_eq!(error.status(), None, "the HTTP status was 200");
    let (events, _) = stream_of(
        Target::OpenAi,
        ChunkedBody::whole(format!(
            "{OA_TEXT}data: {{\"error\":{{\"message\":\"The server had an error processing your request.\",\"type\":\"server_error\",\"param\":null,\"code\":null}}}}\n\n"
        )),
        MalformedPolicy::Skip,
    )
    .await;
    assert_eq!(last_error(&events).kind(), ErrorKind::Server);
    // vLLM's in-band error carries the status in an integer code.
    let (events, _) = stream_of(
        Target::Compat(ServerKind::Vllm),
        ChunkedBody::whole(format!(
            "{OA_TEXT}data: {{\"error\":{{\"message\":\"engine dead\",\"type\":\"InternalServerError\",\"param\":null,\"code\":500}}}}\n\n"
        )),
        MalformedPolicy::Skip,
    )
    .await;
    assert_eq!(last_error(&events).kind(), ErrorKind::Server);
    assert_eq!(last_error(&events).status(), Some(500));
}

#[tokio::test]
async fn malformed_events_are_skipped_and_counted_or_fail_the_stream() {
    let body = format!("{OA_TEXT}data: {{\"id\": oops}}\n\n{OA_FINISH}data: [DONE]\n\n");
    let (events, skipped) = stream_of(
        Target::OpenAi,
        ChunkedBody::whole(body.clone()),
        MalformedPolicy::Skip,
    )
    .await;
    assert_eq!(skipped, 1);
    assert_eq!(
        events.last(),
        Some(&StreamEvent::Finish(FinishReason::Stop))
    );
    let (events, skipped) = stream_of(
        Target::OpenAi,
        ChunkedBody::whole(body),
        MalformedPolicy::Fail,
    )
    .await;
    assert_eq!(skipped, 0);
    assert_eq!(last_error(&events).kind(), ErrorKind::Decode);
    assert!(!events.iter().any(|e| matches!(e, StreamEvent::Finish(_))));
}

#[tokio::test]
async fn anthropic_stream_endings_and_error_event() {
    let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude\",\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: ping\ndata: {\"type\": \"ping\"}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n";
    let end = "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"},\"usage\":{\"output_tokens\":12}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    let (events, _) = stream_of(
        Target::Anthropic,
        ChunkedBody::whole(format!("{start}{end}")),
        MalformedPolicy::Skip,
    )
    .await;
    assert_eq!(
        events[events.len() - 2..],
        [
            StreamEvent::Usage(Usage::new(9, 12)),
            StreamEvent::Finish(FinishReason::Length)
        ]
    );
    // message_delta arrived but no message_stop: truncated.
    let (events, _) = stream_of(
        Target::Anthropic,
        ChunkedBody::whole(format!(
            "{start}{}",
            &end[..end.find("event: message_stop").unwrap()]
        )),
        MalformedPolicy::Skip,
    )
    .await;
    assert_eq!(last_error(&events).kind(), ErrorKind::StreamTruncated);
    // An overloaded error event after a 200.
    let (events, _) = stream_of(
        Target::Anthropic,
        ChunkedBody::whole(format!(
            "{start}event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}}}\n\n"
        )),
        MalformedPolicy::Skip,
    )
    .await;
    let error = last_error(&events);
    assert_eq!(error.kind(), ErrorKind::Overloaded);
    assert_eq!(error.code(), Some("overloaded_error"));
    assert_eq!(classify(error).disposition, Disposition::Retry);
}

#[tokio::test]
async fn gemini_stream_endings_error_frame_and_prompt_block() {
    let chunk = |text: &str, finish: Option<&str>| {
        let finish = finish.map_or(String::new(), |f| format!(",\"finishReason\":\"{f}\""));
        format!(
            "data: {{\"candidates\":[{{\"content\":{{\"role\":\"model\",\"parts\":[{{\"text\":\"{text}\"}}]}}{finish}}}],\"usageMetadata\":{{\"promptTokenCount\":4,\"candidatesTokenCount\":2}},\"modelVersion\":\"gemini-x\",\"responseId\":\"r1\"}}\r\n\r\n"
        )
    };
    let (events, _) = stream_of(
        Target::Gemini,
        ChunkedBody::whole(format!(
            "{}{}",
            chunk("a", None),
            chunk("b", Some("SAFETY"))
        )),
        MalformedPolicy::Skip,
    )
    .await;
    assert_eq!(
        events.last(),
        Some(&StreamEvent::Finish(FinishReason::ContentFilter))
    );
    let (events, _) = stream_of(
        Target::Gemini,
        ChunkedBody::whole(chunk("a", None)),
        MalformedPolicy::Skip,
    )
    .await;
    assert_eq!(last_error(&events).kind(), ErrorKind::StreamTruncated);
    let (events, _) = stream_of(
        Target::Gemini,
        ChunkedBody::whole(format!(
            "{}data: {{\"error\":{{\"code\":503,\"message\":\"The model is overloaded.\",\"status\":\"UNAVAILABLE\"}}}}\r\n\r\n",
            chunk("a", None)
        )),
        MalformedPolicy::Skip,
    )
    .await;
    let error = last_error(&events);
    assert_eq!(error.kind(), ErrorKind::Overloaded);
    assert_eq!(error.status(), Some(503));
    let (events, _) = stream_of(
        Target::Gemini,
        ChunkedBody::whole(
            "data: {\"promptFeedback\":{\"blockReason\":\"SAFETY\"},\"usageMetadata\":{\"promptTokenCount\":9}}\r\n\r\n",
        ),
        MalformedPolicy::Skip,
    )
    .await;
    assert_eq!(last_error(&events).kind(), ErrorKind::ContentFiltered);
}

#[tokio::test]
async fn a_transport_failure_before_the_response_is_a_connect_error() {
    let http = tower::service_fn(
        |_request: http::Request<http_body_util::Full<bytes::Bytes>>| async {
            Err::<http::Response<http_body_util::Full<bytes::Bytes>>, _>(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "connection refused",
            ))
        },
    );
    let error = llm_error(
        OpenAi::new(http, OpenAiConfig::new("k"))
            .oneshot(ChatRequest::new("gpt-4o", [Message::user("hi")]))
            .await
            .unwrap_err(),
    );
    assert_eq!(error.kind(), ErrorKind::Connect);
    assert_eq!(classify(&error).disposition, Disposition::Retry);
}

#[tokio::test]
async fn openai_stream_reads_the_first_choice_and_groq_usage() {
    let body = "data: {\"id\":\"c\",\"model\":\"llama\",\"choices\":[{\"index\":1,\"delta\":{\"content\":\"other\"},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"c\",\"model\":\"llama\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"first\"},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"c\",\"model\":\"llama\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}],\"x_groq\":{\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":8,\"total_tokens\":11}}}\n\n\
data: [DONE]\n\n";
    let (events, _) = stream_of(
        Target::Compat(ServerKind::Groq),
        ChunkedBody::whole(body),
        MalformedPolicy::Skip,
    )
    .await;
    let texts: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta(text) => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["first"]);
    assert_eq!(
        events[events.len() - 2..],
        [
            StreamEvent::Finish(FinishReason::Length),
            StreamEvent::Usage(Usage::new(3, 8))
        ]
    );
}

#[tokio::test]
async fn an_openai_chunk_with_unexpected_field_types_is_still_read() {
    // `id` as a number and `index` as a string: not the typed shape, still the reply.
    let body = "data: {\"id\":42,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"kept\"},\"finish_reason\":null}]}\n\n\
data: {\"id\":42,\"choices\":[{\"index\":\"0\",\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n\
data: [DONE]\n\n";
    let (events, skipped) = stream_of(
        Target::Compat(ServerKind::Other),
        ChunkedBody::whole(body),
        MalformedPolicy::Skip,
    )
    .await;
    assert_eq!(skipped, 0);
    assert!(events.contains(&StreamEvent::TextDelta("kept".into())));
    assert_eq!(
        events.last(),
        Some(&StreamEvent::Finish(FinishReason::Stop))
    );
}

#[tokio::test]
async fn stream_metrics_count_started_completed_failed_and_skipped() {
    let adapter = OpenAi::new(
        Canned::sse(ChunkedBody::whole(format!(
            "{OA_TEXT}data: not json\n\n{OA_FINISH}data: [DONE]\n\n"
        ))),
        OpenAiConfig::new("k"),
    );
    let metrics = adapter.stream_metrics().clone();
    let request = ChatRequest::new("gpt-4o", [Message::user("hi")]).streaming();
    for _ in 0..2 {
        events(adapter.clone().oneshot(request.clone()).await.unwrap()).await;
    }
    let cut = OpenAi::new(
        Canned::sse(ChunkedBody::whole(OA_TEXT).then_fail()),
        OpenAiConfig::new("k"),
    );
    // A different adapter has its own counters.
    let cut_metrics = cut.stream_metrics().clone();
    events(cut.oneshot(request).await.unwrap()).await;
    assert_eq!(
        (
            metrics.started(),
            metrics.completed(),
            metrics.failed(),
            metrics.malformed_skipped()
        ),
        (2, 2, 0, 2)
    );
    assert_eq!(
        (
            cut_metrics.started(),
            cut_metrics.completed(),
            cut_metrics.failed()
        ),
        (1, 0, 1)
    );
}

#[tokio::test]
async fn stream_errors_carry_the_response_request_id() {
    let http = Canned::new(
        200,
        &[
            ("content-type", "text/event-stream"),
            ("request-id", "req_stream_1"),
        ],
        ChunkedBody::whole(
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
        ),
    );
    let response = Anthropic::new(http, AnthropicConfig::new("k"))
        .oneshot(ChatRequest::new("claude", [Message::user("hi")]).streaming())
        .await
        .unwrap();
    let first = events(response).await;
    assert_eq!(last_error(&first).request_id(), Some("req_stream_1"));

    let http = Canned::new(
        200,
        &[
            ("content-type", "text/event-stream"),
            ("x-request-id", "req_cut"),
        ],
        ChunkedBody::whole(OA_TEXT).then_fail(),
    );
    let response = OpenAi::new(http, OpenAiConfig::new("k"))
        .oneshot(ChatRequest::new("gpt-4o", [Message::user("hi")]).streaming())
        .await
        .unwrap();
    let second = events(response).await;
    assert_eq!(last_error(&second).kind(), ErrorKind::StreamTruncated);
    assert_eq!(last_error(&second).request_id(), Some("req_cut"));
}
