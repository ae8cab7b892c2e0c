//! Fault modes, quotas, the admin endpoint, the request log and shutdown.

mod common;

use std::time::Duration;

use common::*;
use seawall_sim::{
    Fault, FaultRule, Provider, QuotaConfig, RateLimitKind, RetryAfter, RetryHeaders, Simulator,
};
use serde_json::{Value, json};

const OAI_STREAM: &str =
    r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hello"}]}"#;
const ANT_STREAM: &str = r#"{"model":"claude-x","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hello"}]}"#;

async fn sim() -> Simulator {
    Simulator::builder().reply_tokens(6).start().await.unwrap()
}

#[tokio::test]
async fn status_faults_carry_each_retry_header_form() {
    let sim = sim().await;
    let cases = [
        (RetryAfter::Seconds(2), "2"),
        (RetryAfter::Float(0.5), "0.5"),
        (RetryAfter::Raw("soon".into()), "soon"),
    ];
    for (ra, expected) in cases {
        sim.set_faults(
            Provider::OpenAi,
            vec![FaultRule::first(
                1,
                Fault::status(429).with_retry(RetryHeaders {
                    retry_after: Some(ra),
                    retry_after_ms: Some(300),
                    should_retry: Some(false),
                }),
            )],
        );
        let r = openai(sim.addr(), OAI_BODY).await;
        assert_eq!(r.status, 429);
        assert_eq!(r.header("retry-after"), Some(expected));
        assert_eq!(r.header("retry-after-ms"), Some("300"));
        assert_eq!(r.header("x-should-retry"), Some("false"));
        let e = r.json();
        assert_eq!(e["error"]["code"], "rate_limit_exceeded");
        assert_eq!(
            openai(sim.addr(), OAI_BODY).await.status,
            200,
            "only the first request"
        );
    }
    sim.set_faults(
        Provider::Anthropic,
        vec![FaultRule::first(
            1,
            Fault::status(429).with_retry(RetryHeaders {
                retry_after: Some(RetryAfter::HttpDateIn(30)),
                ..RetryHeaders::default()
            }),
        )],
    );
    let r = anthropic(sim.addr(), ANT_BODY).await;
    let date = httpdate::parse_http_date(r.header("retry-after").unwrap()).expect("an HTTP date");
    let ahead = date.duration_since(std::time::SystemTime::now()).unwrap();
    assert!(
        ahead > Duration::from_secs(27) && ahead <= Duration::from_secs(30),
        "{ahead:?}"
    );
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
}

#[tokio::test]
async fn any_status_gets_the_providers_body() {
    let sim = sim().await;
    for (provider, status, key, value) in [
        (Provider::OpenAi, 500, "/error/type", "server_error"),
        (Provider::OpenAi, 404, "/error/code", "model_not_found"),
        (Provider::Anthropic, 413, "/error/type", "request_too_large"),
        (Provider::Anthropic, 500, "/error/type", "api_error"),
        (Provider::Anthropic, 402, "/error/type", "billing_error"),
        (Provider::Gemini, 504, "/error/status", "DEADLINE_EXCEEDED"),
        (Provider::Gemini, 403, "/error/status", "PERMISSION_DENIED"),
    ] {
        sim.set_faults(provider, vec![FaultRule::always(Fault::status(status))]);
        let r = match provider {
            Provider::OpenAi => openai(sim.addr(), OAI_BODY).await,
            Provider::Anthropic => anthropic(sim.addr(), ANT_BODY).await,
            _ => gemini(sim.addr(), "generateContent", GEM_BODY).await,
        };
        assert_eq!(r.status, status);
        assert_eq!(
            r.json().pointer(key).unwrap(),
            value,
            "{provider:?} {status}"
        );
        sim.clear_faults(provider);
    }
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::Status {
            status: 400,
            error_type: Some("invalid_request_error".into()),
            message: Some("custom".into()),
            code: Some("context_length_exceeded".into()),
            retry: RetryHeaders::default(),
        })],
    );
    let e = openai(sim.addr(), OAI_BODY).await.json();
    assert_eq!(
        e,
        json!({"error": {"message": "custom", "type": "invalid_request_error", "param": null, "code": "context_length_exceeded"}})
    );
}

#[tokio::test]
async fn overload_is_provider_specific() {
    let sim = sim().await;
    for p in Provider::ALL {
        sim.set_faults(p, vec![FaultRule::always(Fault::overloaded())]);
    }
    let r = anthropic(sim.addr(), ANT_BODY).await;
    assert_eq!(r.status, 529);
    assert_eq!(
        r.json()["error"],
        json!({"type": "overloaded_error", "message": "Overloaded"})
    );
    let r = openai(sim.addr(), OAI_BODY).await;
    assert_eq!(r.status, 503);
    let r = gemini(sim.addr(), "generateContent", GEM_BODY).await;
    assert_eq!(r.status, 503);
    assert_eq!(
        r.json()["error"],
        json!({"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"})
    );
    let r = send(sim.addr(), "GET", "/llamacpp/health", &[], "").await;
    assert_eq!(r.status, 503);
    assert_eq!(
        r.json(),
        json!({"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}})
    );
}

#[tokio::test]
async fn non_retryable_429_variants() {
    let sim = sim().await;
    let quota = |p| {
        sim.set_faults(
            p,
            vec![FaultRule::always(Fault::RateLimited {
                limit: RateLimitKind::QuotaExhausted,
                retry: RetryHeaders::default(),
            })],
        )
    };
    quota(Provider::OpenAi);
    quota(Provider::Anthropic);
    quota(Provider::Gemini);
    let e = openai(sim.addr(), OAI_BODY).await.json();
    assert_eq!(
        (e["error"]["type"].clone(), e["error"]["code"].clone()),
        (json!("insufficient_quota"), json!("insufficient_quota"))
    );
    let e = anthropic(sim.addr(), ANT_BODY).await.json();
    assert_eq!(
        e["error"]["details"]["error_code"],
        "enforced_spend_limit_reached"
    );
    let e = gemini(sim.addr(), "generateContent", GEM_BODY).await.json();
    assert_eq!(
        e["error"]["details"][0]["violations"][0]["quotaId"],
        "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
    );
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::RateLimited {
            limit: RateLimitKind::RequestTooLarge,
            retry: RetryHeaders::default(),
        })],
    );
    let e = openai(sim.addr(), OAI_BODY).await.json();
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Request too large")
    );
    // Gemini retryable 429 carries RetryInfo in the body, not a header.
    sim.set_faults(
        Provider::Gemini,
        vec![FaultRule::always(Fault::RateLimited {
            limit: RateLimitKind::Requests,
            retry: RetryHeaders {
                retry_after: Some(RetryAfter::Float(34.4)),
                ..RetryHeaders::default()
            },
        })],
    );
    let r = gemini(sim.addr(), "generateContent", GEM_BODY).await;
    assert!(r.header("retry-after").is_none());
    let details = r.json()["error"]["details"].clone();
    assert_eq!(
        details[2],
        json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "34.4s"})
    );
}

#[tokio::test]
async fn stream_cut_after_n_events_is_an_abrupt_close() {
    let sim = sim().await;
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::CutAfter { events: 3 })],
    );
    let r = openai(sim.addr(), OAI_STREAM).await;
    assert_eq!(r.status, 200);
    assert!(!r.complete, "no terminating chunk");
    let text = r.text();
    assert_eq!(text.matches("data: ").count(), 3);
    assert!(!text.contains("[DONE]"));
    // Non-streaming: half a body, then the close.
    let r = openai(sim.addr(), OAI_BODY).await;
    assert!(!r.complete);
    assert!(serde_json::from_slice::<Value>(&r.body).is_err());
}

#[tokio::test]
async fn stream_clean_end_without_terminal_marker() {
    let sim = sim().await;
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::EndWithoutTerminal {
            events: None,
        })],
    );
    sim.set_faults(
        Provider::Anthropic,
        vec![FaultRule::always(Fault::EndWithoutTerminal {
            events: None,
        })],
    );
    sim.set_faults(
        Provider::Gemini,
        vec![FaultRule::always(Fault::EndWithoutTerminal {
            events: None,
        })],
    );
    let r = openai(sim.addr(), OAI_STREAM).await;
    assert!(r.complete, "a clean chunked end");
    let text = r.text();
    assert!(!text.contains("[DONE]") && !text.contains("\"finish_reason\":\"stop\""));
    assert_eq!(
        text.matches("data: ").count(),
        7,
        "role chunk + 6 content chunks"
    );
    let r = anthropic(sim.addr(), ANT_STREAM).await;
    assert!(r.complete);
    assert!(!r.text().contains("message_stop") && !r.text().contains("message_delta"));
    assert!(r.text().contains("content_block_stop"));
    let r = gemini(sim.addr(), "streamGenerateContent?alt=sse", GEM_BODY).await;
    assert!(r.complete);
    assert!(!r.text().contains("finishReason"));
    assert_eq!(r.text().matches("data: ").count(), 5);
}

#[tokio::test]
async fn error_frames_mid_stream() {
    let sim = sim().await;
    for p in [Provider::OpenAi, Provider::Anthropic, Provider::Gemini] {
        sim.set_faults(
            p,
            vec![FaultRule::always(Fault::ErrorFrameAfter { events: 2 })],
        );
    }
    let r = openai(sim.addr(), OAI_STREAM).await;
    assert_eq!(r.status, 200);
    let frames = data_frames(&r.text(), "\n\n");
    assert_eq!(frames.len(), 3);
    let err: Value = serde_json::from_str(&frames[2]).unwrap();
    assert_eq!(err["error"]["type"], "server_error");
    assert_eq!(err["error"]["code"], Value::Null);
    let r = anthropic(sim.addr(), ANT_STREAM).await;
    let text = r.text();
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    let data = last
        .strip_prefix("event: error\ndata: ")
        .expect("an error event");
    assert_eq!(
        serde_json::from_str::<Value>(data).unwrap(),
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    );
    assert!(text.ends_with("\n\n"));
    let r = gemini(sim.addr(), "streamGenerateContent?alt=sse", GEM_BODY).await;
    let frames = data_frames(&r.text(), "\r\n\r\n");
    assert!(
        frames[2].starts_with(r#"{"error":{"code":503"#),
        "{}",
        frames[2]
    );
}

#[tokio::test]
async fn duplicate_first_event() {
    let sim = sim().await;
    sim.set_faults(
        Provider::Anthropic,
        vec![FaultRule::always(Fault::DuplicateFirstEvent)],
    );
    let r = anthropic(sim.addr(), ANT_STREAM).await;
    assert_eq!(r.text().matches("event: message_start\n").count(), 2);
    assert!(
        r.text()
            .ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
    );
}

#[tokio::test]
async fn api_keys_never_appear_in_debug_output() {
    let sim = Simulator::builder()
        .configure(Provider::OpenAi, |s| {
            s.valid_keys = Some(vec!["sk-secret-value".into()])
        })
        .start()
        .await
        .unwrap();
    let _ = send(
        sim.addr(),
        "POST",
        "/openai/v1/chat/completions",
        &[("authorization", "Bearer sk-secret-value"), JSON],
        OAI_BODY,
    )
    .await;
    let debug = format!("{sim:?} {:?}", sim.requests());
    assert!(!debug.contains("sk-secret-value"), "{debug}");
}

#[tokio::test]
async fn malformed_chunk_then_the_rest() {
    let sim = sim().await;
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::MalformedChunkAfter { events: 1 })],
    );
    let r = openai(sim.addr(), OAI_STREAM).await;
    let frames = data_frames(&r.text(), "\n\n");
    assert!(
        serde_json::from_str::<Value>(&frames[1]).is_err(),
        "{}",
        frames[1]
    );
    assert_eq!(frames.last().unwrap(), "[DONE]");
}

#[tokio::test]
async fn stall_slow_first_byte_and_hang() {
    let sim = sim().await;
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::StallAfter { events: 2, ms: 500 })],
    );
    let r = openai(sim.addr(), OAI_STREAM).await;
    assert!(
        r.first_byte < Duration::from_millis(400),
        "headers and first events come at once"
    );
    assert!(r.total >= Duration::from_millis(500));
    assert!(r.text().ends_with("data: [DONE]\n\n"));
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::SlowFirstByte { ms: 200 })],
    );
    let r = openai(sim.addr(), OAI_BODY).await;
    assert!(r.first_byte >= Duration::from_millis(200));
    assert_eq!(r.status, 200);
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::Hang { ms: Some(200) })],
    );
    let r = openai(sim.addr(), OAI_BODY).await;
    assert_eq!(r.status, 0, "nothing is ever sent");
    assert!(r.total >= Duration::from_millis(200));
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::Hang { ms: None })],
    );
    let hung = tokio::time::timeout(Duration::from_millis(300), openai(sim.addr(), OAI_BODY)).await;
    assert!(hung.is_err(), "still hanging");
}

#[tokio::test]
async fn first_token_and_chunk_interval() {
    let sim = Simulator::builder()
        .reply_tokens(4)
        .first_token(Duration::from_millis(100))
        .chunk_interval(Duration::from_millis(40))
        .start()
        .await
        .unwrap();
    let r = openai(sim.addr(), OAI_STREAM).await;
    // 8 frames: role, 4 pieces, finish, [DONE] … one after the first token, 6 after intervals.
    assert!(
        r.total >= Duration::from_millis(100 + 40 * 6),
        "{:?}",
        r.total
    );
    let r = openai(sim.addr(), OAI_BODY).await;
    assert!(
        r.first_byte >= Duration::from_millis(100 + 40 * 4),
        "{:?}",
        r.first_byte
    );
}

#[tokio::test]
async fn html_page_empty_body_and_disconnect() {
    let sim = sim().await;
    sim.set_faults(
        Provider::OpenAi,
        vec![
            FaultRule::first(1, Fault::HtmlPage { status: 502 }),
            FaultRule::nth(2, Fault::EmptyBody { status: 504 }),
            FaultRule::nth(3, Fault::Disconnect),
        ],
    );
    let r = openai(sim.addr(), OAI_BODY).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.header("content-type"), Some("text/html"));
    assert!(r.text().starts_with("<html>"));
    let r = openai(sim.addr(), OAI_BODY).await;
    assert_eq!((r.status, r.body.len()), (504, 0));
    let r = openai(sim.addr(), OAI_BODY).await;
    assert_eq!(
        (r.status, r.body.len()),
        (0, 0),
        "closed without a response"
    );
    assert_eq!(openai(sim.addr(), OAI_BODY).await.status, 200);
}

#[tokio::test]
async fn split_events_still_frame_correctly() {
    let sim = Simulator::builder()
        .configure(Provider::Anthropic, |s| s.split_events = true)
        .start()
        .await
        .unwrap();
    let r = anthropic(sim.addr(), ANT_STREAM).await;
    let events = r.text().matches("\n\n").count();
    assert_eq!(r.chunks, 2 * events, "every event is written in two pieces");
    assert!(
        r.text()
            .ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
    );
}

#[tokio::test]
async fn rules_by_time_window_probability_and_times() {
    let sim = sim().await;
    // Windows count from installation: one that opens an hour from now is closed, one
    // that opened at installation is open (the window arithmetic itself is unit-tested
    // with explicit times; no wall-clock slice is judged here).
    let hour = Duration::from_secs(3_600);
    sim.set_faults(
        Provider::OpenAi,
        vec![
            FaultRule::during(hour, 2 * hour, Fault::status(502)),
            FaultRule::during(Duration::ZERO, hour, Fault::status(500)),
        ],
    );
    assert_eq!(openai(sim.addr(), OAI_BODY).await.status, 500);
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::during(hour, 2 * hour, Fault::status(500))],
    );
    assert_eq!(openai(sim.addr(), OAI_BODY).await.status, 200);

    let run = || async {
        sim.set_faults(
            Provider::OpenAi,
            vec![FaultRule::with_probability(0.5, 42, Fault::status(503))],
        );
        let mut out = Vec::new();
        for _ in 0..24 {
            out.push(openai(sim.addr(), OAI_BODY).await.status);
        }
        out
    };
    let a = run().await;
    assert_eq!(a, run().await, "seeded: the same sequence every time");
    let failures = a.iter().filter(|s| **s == 503).count();
    assert!((4..=20).contains(&failures), "{failures}");

    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::status(500)).times(2)],
    );
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(openai(sim.addr(), OAI_BODY).await.status);
    }
    assert_eq!(got, [500, 500, 200, 200]);
    // Faults are per provider.
    sim.set_faults(
        Provider::Anthropic,
        vec![FaultRule::always(Fault::overloaded())],
    );
    assert_eq!(openai(sim.addr(), OAI_BODY).await.status, 200);
}

#[tokio::test]
async fn quotas_requests_and_tokens_per_window() {
    let sim = Simulator::builder()
        .quota(
            Provider::OpenAi,
            QuotaConfig {
                requests: 2,
                tokens: 1_000,
                window_ms: 1000,
                ..QuotaConfig::default()
            },
        )
        .quota(
            Provider::Anthropic,
            QuotaConfig {
                requests: 100,
                tokens: 30,
                window_ms: 1000,
                ..QuotaConfig::default()
            },
        )
        .quota(
            Provider::Gemini,
            QuotaConfig {
                requests: 1,
                tokens: 1_000,
                window_ms: 1500,
                ..QuotaConfig::default()
            },
        )
        .reply_tokens(6)
        .start()
        .await
        .unwrap();
    let a = openai(sim.addr(), OAI_BODY).await;
    assert_eq!(a.header("x-ratelimit-remaining-requests"), Some("1"));
    assert_eq!(a.header("x-ratelimit-remaining-tokens"), Some("986"));
    let b = openai(sim.addr(), OAI_BODY).await;
    assert_eq!(b.header("x-ratelimit-remaining-requests"), Some("0"));
    let c = openai(sim.addr(), OAI_BODY).await;
    assert_eq!(c.status, 429);
    assert_eq!(c.header("retry-after"), Some("1"));
    assert_eq!(c.json()["error"]["code"], "rate_limit_exceeded");
    assert_eq!(c.json()["error"]["type"], "requests");
    let message = c.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("(RPM): Limit 2, Used 2, Requested 1."),
        "the configured limit, not a fixed one: {message}"
    );
    let reset = c.header("x-ratelimit-reset-requests").unwrap();
    assert!(reset.ends_with("ms"), "{reset}");
    // Another key has its own bucket.
    let other = send(
        sim.addr(),
        "POST",
        "/openai/v1/chat/completions",
        &[("authorization", "Bearer sk-other"), JSON],
        OAI_BODY,
    )
    .await;
    assert_eq!(other.status, 200);
    tokio::time::sleep(Duration::from_millis(1020)).await;
    assert_eq!(
        openai(sim.addr(), OAI_BODY).await.status,
        200,
        "the window reset"
    );

    // Anthropic: 14 tokens per request, 30 per window: the third is refused for tokens.
    assert_eq!(
        anthropic(sim.addr(), ANT_BODY)
            .await
            .header("anthropic-ratelimit-tokens-remaining"),
        Some("16")
    );
    assert_eq!(anthropic(sim.addr(), ANT_BODY).await.status, 200);
    let r = anthropic(sim.addr(), ANT_BODY).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
    assert!(r.header("retry-after").is_some());
    assert_eq!(r.header("anthropic-ratelimit-tokens-remaining"), Some("2"));

    // Gemini: RetryInfo from the quota.
    assert_eq!(
        gemini(sim.addr(), "generateContent", GEM_BODY).await.status,
        200
    );
    let r = gemini(sim.addr(), "generateContent", GEM_BODY).await;
    assert_eq!(r.status, 429);
    let details = r.json()["error"]["details"].clone();
    let delay = details
        .as_array()
        .unwrap()
        .iter()
        .find_map(|d| d["retryDelay"].as_str())
        .unwrap()
        .to_owned();
    assert!(
        delay.ends_with('s') && delay.trim_end_matches('s').parse::<f64>().unwrap() <= 1.5,
        "{delay}"
    );

    // Quotas can change while running.
    sim.set_quota(
        Provider::Gemini,
        QuotaConfig {
            requests: 5,
            tokens: 1_000,
            window_ms: 1000,
            ..QuotaConfig::default()
        },
    );
    assert_eq!(
        gemini(sim.addr(), "generateContent", GEM_BODY).await.status,
        200
    );
}

#[tokio::test]
async fn admin_endpoint_scripts_faults_quotas_and_reads_the_log() {
    let sim = sim().await;
    let addr = sim.addr();
    let rules = r#"[{"fault":{"kind":"status","status":503,"retry_after":{"seconds":1}},"from_request":1,"to_request":1},{"fault":{"kind":"overloaded"},"probability":0.0}]"#;
    let r = send(addr, "PUT", "/__sim/faults/openai", &[JSON], rules).await;
    assert_eq!(r.status, 204);
    let got = send(addr, "GET", "/__sim/faults/openai", &[], "")
        .await
        .json();
    assert_eq!(got[0]["fault"]["status"], 503);
    assert_eq!(sim.faults(Provider::OpenAi).len(), 2);
    let r = openai(addr, OAI_BODY).await;
    assert_eq!((r.status, r.header("retry-after")), (503, Some("1")));
    assert_eq!(openai(addr, OAI_BODY).await.status, 200);
    assert_eq!(
        send(addr, "DELETE", "/__sim/faults/openai", &[], "")
            .await
            .status,
        204
    );
    assert!(sim.faults(Provider::OpenAi).is_empty());

    // Bad admin input: 400/404 with a message, never a crash.
    let r = send(
        addr,
        "PUT",
        "/__sim/faults/openai",
        &[JSON],
        r#"[{"fault":{"kind":"explode"}}]"#,
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("invalid fault rules")
    );
    assert_eq!(
        send(addr, "PUT", "/__sim/faults/nobody", &[JSON], "[]")
            .await
            .status,
        404
    );
    assert_eq!(send(addr, "GET", "/__sim/what", &[], "").await.status, 404);

    // Quota through the admin endpoint.
    let r = send(
        addr,
        "PUT",
        "/__sim/quota/openai",
        &[JSON],
        r#"{"requests":1,"tokens":100,"window_ms":60000}"#,
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(openai(addr, OAI_BODY).await.status, 200);
    assert_eq!(openai(addr, OAI_BODY).await.status, 429);

    // The log, as JSON, keys redacted, filtered by provider.
    let _ = anthropic(addr, ANT_BODY).await;
    let log = send(addr, "GET", "/__sim/log?provider=openai", &[], "")
        .await
        .json();
    let entries = log.as_array().unwrap();
    assert_eq!(entries.len(), 4);
    let first = &entries[0];
    assert_eq!(first["method"], "POST");
    assert_eq!(first["path"], "/openai/v1/chat/completions");
    assert_eq!(first["body"], OAI_BODY);
    let headers: Vec<(String, String)> = serde_json::from_value(first["headers"].clone()).unwrap();
    assert!(headers.contains(&("authorization".into(), "Bearer [redacted]".into())));
    assert!(
        !log.to_string().contains("sk-test"),
        "keys never appear in the log"
    );
    let times: Vec<f64> = entries.iter().map(|e| e["at"].as_f64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    let rust_log = sim.requests_for(Provider::Anthropic);
    assert_eq!(rust_log.len(), 1);
    assert_eq!(rust_log[0].header("x-api-key"), Some("[redacted]"));
    assert_eq!(rust_log[0].body_json().unwrap()["model"], "claude-x");

    // Reset restores the configured state.
    assert_eq!(
        send(addr, "POST", "/__sim/reset", &[], "").await.status,
        204
    );
    assert!(sim.requests().is_empty());
    assert_eq!(
        openai(addr, OAI_BODY).await.status,
        200,
        "quota restored to its configured value"
    );
    let urls = send(addr, "GET", "/__sim/urls", &[], "").await.json();
    assert_eq!(urls["openai"], sim.base_url(Provider::OpenAi));
}

#[tokio::test]
async fn refused_connections_for_a_while() {
    let sim = sim().await;
    let r = send(
        sim.addr(),
        "PUT",
        "/__sim/refuse_connections",
        &[JSON],
        r#"{"ms":300}"#,
    )
    .await;
    assert_eq!(r.status, 204);
    let r = openai(sim.addr(), OAI_BODY).await;
    assert_eq!(
        (r.status, r.body.len()),
        (0, 0),
        "reset before any response"
    );
    assert!(
        sim.requests().iter().all(|e| e.provider.is_none()),
        "nothing reached a provider"
    );
    tokio::time::sleep(Duration::from_millis(320)).await;
    assert_eq!(openai(sim.addr(), OAI_BODY).await.status, 200);
    sim.refuse_connections(Duration::from_millis(200));
    assert_eq!(openai(sim.addr(), OAI_BODY).await.status, 0);
}

#[tokio::test]
async fn shutdown_and_drop_close_the_port() {
    let sim = sim().await;
    let addr = sim.addr();
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::Hang { ms: None })],
    );
    let hanging = tokio::spawn(openai(addr, OAI_BODY));
    tokio::time::sleep(Duration::from_millis(50)).await;
    sim.shutdown().await;
    let r = tokio::time::timeout(Duration::from_secs(2), hanging)
        .await
        .expect("hung request ends")
        .unwrap();
    assert_eq!(r.status, 0);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "nothing listens any more"
    );

    let sim = Simulator::builder().start().await.unwrap();
    let addr = sim.addr();
    drop(sim);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn config_file_sets_everything() {
    let config = seawall_sim::SimConfig::from_toml(
        r#"
log_capacity = 3
[openai]
seed = 5
reply_tokens = 3
quota = { requests = 7, tokens = 1000, window_ms = 1000 }
[[openai.faults]]
from_request = 2
to_request = 2
fault = { kind = "status", status = 418 }
[anthropic]
reject_prefill = true
"#,
    )
    .unwrap();
    let sim = Simulator::builder().config(config).start().await.unwrap();
    let r = openai(sim.addr(), OAI_BODY).await;
    assert_eq!(r.header("x-ratelimit-limit-requests"), Some("7"));
    assert_eq!(r.json()["usage"]["completion_tokens"], 3);
    assert_eq!(openai(sim.addr(), OAI_BODY).await.status, 418);
    for _ in 0..3 {
        let _ = openai(sim.addr(), OAI_BODY).await;
    }
    assert_eq!(sim.requests().len(), 3, "log capacity");
    assert!(seawall_sim::SimConfig::from_toml("[openai]\nnope = 1").is_err());
}

#[test]
fn threaded_layout_shares_faults_log_and_stops_on_drop() {
    let sim = Simulator::builder().start_threaded(2).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr = sim.addr();
    rt.block_on(async {
        sim.set_faults(
            Provider::OpenAi,
            vec![FaultRule::first(3, Fault::status(500))],
        );
        let mut statuses = Vec::new();
        for _ in 0..5 {
            statuses.push(openai(addr, OAI_BODY).await.status);
        }
        assert_eq!(
            statuses,
            [500, 500, 500, 200, 200],
            "one plan across threads"
        );
        assert_eq!(sim.requests_for(Provider::OpenAi).len(), 5);
    });
    drop(sim);
    // The listener closes as the threads stop: poll, within a bound, until it refuses.
    let refused = (0..500).any(|_| {
        let refused = std::net::TcpStream::connect(addr).is_err();
        if !refused {
            std::thread::sleep(Duration::from_millis(10));
        }
        refused
    });
    assert!(refused, "threads stopped within 5 s");
}

#[tokio::test]
async fn content_filter_outcomes() {
    let sim = sim().await;
    for p in [Provider::OpenAi, Provider::Anthropic, Provider::Gemini] {
        sim.set_faults(p, vec![FaultRule::always(Fault::ContentFiltered)]);
    }
    let v = openai(sim.addr(), OAI_BODY).await.json();
    assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(
        v["usage"]["completion_tokens"], 3,
        "half of the 6-token reply"
    );
    let r = openai(sim.addr(), OAI_STREAM).await;
    assert!(r.text().contains(r#""finish_reason":"content_filter""#));
    let v = anthropic(sim.addr(), ANT_BODY).await.json();
    assert_eq!(v["stop_reason"], "refusal");
    assert_eq!(v["stop_details"]["type"], "refusal");
    let r = anthropic(sim.addr(), ANT_STREAM).await;
    assert!(r.text().contains(r#""stop_reason":"refusal""#));
    let v = gemini(sim.addr(), "generateContent", GEM_BODY).await.json();
    assert_eq!(v["candidates"][0]["finishReason"], "SAFETY");
}

#[tokio::test]
async fn periodic_pings() {
    let sim = Simulator::builder()
        .reply_tokens(6)
        .configure(Provider::Anthropic, |s| s.ping_every = Some(2))
        .configure(Provider::OpenAi, |s| s.ping_every = Some(3))
        .start()
        .await
        .unwrap();
    let r = anthropic(sim.addr(), ANT_STREAM).await;
    // 10 events before the terminal ones (start, block start, first ping, 6 deltas, block stop)
    // → 5 extra pings, plus the first one.
    assert_eq!(r.text().matches("event: ping\n").count(), 6);
    let r = openai(sim.addr(), OAI_STREAM).await;
    assert_eq!(
        r.text().matches(": ping\n\n").count(),
        2,
        "7 events → 2 comments"
    );
    assert!(r.text().ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn absurd_settings_never_panic() {
    let sim = Simulator::builder()
        .reply_tokens(u32::MAX)
        .quota(
            Provider::Anthropic,
            QuotaConfig {
                requests: u64::MAX,
                tokens: u64::MAX,
                window_ms: u64::MAX,
                ..QuotaConfig::default()
            },
        )
        .start()
        .await
        .unwrap();
    let r = anthropic(sim.addr(), ANT_BODY).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["usage"]["output_tokens"],
        64,
        "max_tokens still caps"
    );
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::status(429).with_retry(
            RetryHeaders {
                retry_after: Some(RetryAfter::HttpDateIn(u64::MAX)),
                retry_after_ms: Some(u64::MAX),
                should_retry: None,
            },
        ))],
    );
    let r = openai(sim.addr(), OAI_BODY).await;
    assert_eq!(r.status, 429);
    assert!(httpdate::parse_http_date(r.header("retry-after").unwrap()).is_ok());
    for status in [0, 99, 1000, 204] {
        sim.set_faults(
            Provider::Gemini,
            vec![FaultRule::always(Fault::status(status))],
        );
        let r = gemini(sim.addr(), "generateContent", GEM_BODY).await;
        assert!(r.status >= 200, "answered: {status} -> {}", r.status);
    }
}

#[tokio::test]
async fn the_seed_changes_while_running_and_a_reset_restores_it() {
    let sim = sim().await;
    let addr = sim.addr();
    let text = |body: serde_json::Value| {
        body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let first = text(openai(addr, OAI_BODY).await.json());
    assert_eq!(
        text(openai(addr, OAI_BODY).await.json()),
        first,
        "deterministic"
    );

    let r = send(addr, "PUT", "/__sim/seed/openai", &[JSON], "42").await;
    assert_eq!(r.status, 204);
    let reseeded = text(openai(addr, OAI_BODY).await.json());
    assert_ne!(reseeded, first, "another seed gives other text");
    sim.set_seed(Provider::OpenAi, 42);
    assert_eq!(text(openai(addr, OAI_BODY).await.json()), reseeded);

    let r = send(addr, "PUT", "/__sim/seed/openai", &[JSON], "\"x\"").await;
    assert_eq!(r.status, 400);
    assert_eq!(
        send(addr, "POST", "/__sim/reset", &[], "").await.status,
        204
    );
    assert_eq!(
        text(openai(addr, OAI_BODY).await.json()),
        first,
        "reset restores the seed"
    );
}
