//! `[semantic_cache]` in the gateway (feature `semantic-cache`): prompts embedded through
//! the simulator's OpenAI `/v1/embeddings`, a paraphrase answered from the cache (whole
//! and streamed) with no chat call upstream, an unrelated prompt sent on, and the
//! configuration checks.

use seawall_gateway::{Config, SemanticCacheConfig, SemanticScopeConfig};
use seawall_sim::{Fault, FaultRule, Provider};
use serde_json::{Value, json};

mod support;
use support::{chat, start};

fn ask(text: &str, stream: bool) -> Value {
    json!({"model": "demo", "stream": stream, "messages": [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": text},
    ]})
}

fn semantic(text: &str) -> SemanticCacheConfig {
    toml::from_str(text).expect("a [semantic_cache] table")
}

const CONFIG: &str = r#"
    target = "sim-openai"
    model = "text-embedding-3-small"
    dimensions = 256
    threshold = 0.8
    ttl = "10m"
    max_entries = 1000
    scope = "global"
"#;

fn paths(sim: &seawall_sim::Simulator, path: &str) -> usize {
    sim.requests_for(Provider::OpenAi)
        .iter()
        .filter(|r| r.path == path)
        .count()
}

#[tokio::test]
async fn a_paraphrase_is_answered_from_the_semantic_cache() {
    let (sim, gw) = start(|c| c.semantic_cache = Some(semantic(CONFIG))).await;
    let addr = gw.local_addr();

    let first = chat(addr, ask("What is the capital of France?", false)).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.header("x-seawall-cache"), Some("miss"));
    let paraphrase = chat(addr, ask("what's the capital of France", false)).await;
    assert_eq!(paraphrase.status, 200, "{}", paraphrase.body);
    assert_eq!(paraphrase.header("x-seawall-cache"), Some("hit"));
    assert_eq!(
        paraphrase.json()["choices"][0]["message"]["content"],
        first.json()["choices"][0]["message"]["content"]
    );
    let streamed = chat(addr, ask("What's the capital of France?", true)).await;
    assert_eq!(streamed.header("x-seawall-cache"), Some("hit"));
    assert_eq!(streamed.events().last(), Some(&"[DONE]"));

    let unrelated = chat(addr, ask("Write a poem about the sea", false)).await;
    assert_eq!(unrelated.header("x-seawall-cache"), Some("miss"));
    assert_eq!(paths(&sim, "/openai/v1/chat/completions"), 2);
    assert_eq!(paths(&sim, "/openai/v1/embeddings"), 4);
    // The embedding request carried the configured model and dimensions.
    let embedded: Value = serde_json::from_slice(
        &sim.requests_for(Provider::OpenAi)
            .iter()
            .find(|r| r.path == "/openai/v1/embeddings")
            .expect("an embeddings request")
            .body,
    )
    .unwrap();
    assert_eq!(embedded["model"], "text-embedding-3-small");
    assert_eq!(embedded["dimensions"], 256);
    assert_eq!(
        embedded["input"],
        "Answer in one word.\n\nWhat is the capital of France?"
    );
}

#[tokio::test]
async fn behind_the_exact_cache_a_semantic_hit_is_still_a_hit() {
    let (sim, gw) = start(|c| {
        c.cache = Some(seawall_gateway::CacheConfig {
            ttl: std::time::Duration::from_secs(600),
            stale_if_error: None,
            max_bytes: 1 << 20,
        });
        c.semantic_cache = Some(semantic(CONFIG));
    })
    .await;
    let addr = gw.local_addr();
    let first = chat(addr, ask("What is the capital of France?", false)).await;
    assert_eq!(first.header("x-seawall-cache"), Some("miss"));
    // The exact cache misses, the semantic cache below it hits.
    let paraphrase = chat(addr, ask("what's the capital of France", false)).await;
    assert_eq!(paraphrase.header("x-seawall-cache"), Some("hit"));
    // The exact cache answers a repeat itself: no embedding asked.
    let embeddings = paths(&sim, "/openai/v1/embeddings");
    let repeat = chat(addr, ask("What is the capital of France?", false)).await;
    assert_eq!(repeat.header("x-seawall-cache"), Some("hit"));
    assert_eq!(paths(&sim, "/openai/v1/embeddings"), embeddings);
    assert_eq!(paths(&sim, "/openai/v1/chat/completions"), 1);
}

#[tokio::test]
async fn a_failing_embeddings_endpoint_never_fails_a_call() {
    let (sim, gw) = start(|c| c.semantic_cache = Some(semantic(CONFIG))).await;
    let addr = gw.local_addr();
    // The first OpenAI request fails with a 500: the first call's embedding.
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::first(1, Fault::status(500))],
    );
    let first = chat(addr, ask("Capital of France?", false)).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.header("x-seawall-cache"), Some("miss"));
    let logged = sim.requests_for(Provider::OpenAi);
    assert_eq!(
        logged[0].path, "/openai/v1/embeddings",
        "the embedding came first and failed"
    );
    // Nothing was stored under a vector it did not have: the same prompt goes upstream.
    let again = chat(addr, ask("Capital of France?", false)).await;
    assert_eq!(again.header("x-seawall-cache"), Some("miss"));
    let third = chat(addr, ask("Capital of France?", false)).await;
    assert_eq!(third.header("x-seawall-cache"), Some("hit"));
}

#[test]
fn the_configuration_is_checked() {
    let check = |adjust: &dyn Fn(&mut Config)| {
        let mut config: Config = toml::from_str(
            r#"
            [[targets]]
            name = "oa"
            provider = "openai"
            model = "gpt-4o-mini"
            api_key_env = "KEY"

            [[targets]]
            name = "claude"
            provider = "anthropic"
            model = "claude-sonnet-4-5"
            api_key_env = "KEY"

            [[groups]]
            name = "chat"
            targets = ["oa"]

            [semantic_cache]
            target = "oa"
            model = "text-embedding-3-small"
            scope = "global"
            "#,
        )
        .expect("parses");
        adjust(&mut config);
        config
            .validate(&|_| Some("sk-test".to_owned()))
            .map_err(|e| e.key)
    };
    assert_eq!(check(&|_| {}), Ok(()));
    let semantic = |c: &mut Config| c.semantic_cache.as_mut().expect("present").clone();
    let set = |f: fn(&mut SemanticCacheConfig)| {
        move |c: &mut Config| {
            let mut s = semantic(c);
            f(&mut s);
            c.semantic_cache = Some(s);
        }
    };
    assert_eq!(
        check(&set(|s| s.target = "claude".into())).unwrap_err(),
        "semantic_cache.target"
    );
    assert_eq!(
        check(&set(|s| s.target = "nope".into())).unwrap_err(),
        "semantic_cache.target"
    );
    assert_eq!(
        check(&set(|s| s.threshold = 1.5)).unwrap_err(),
        "semantic_cache.threshold"
    );
    assert_eq!(
        check(&set(|s| s.max_entries = 0)).unwrap_err(),
        "semantic_cache.max_entries"
    );
    assert_eq!(
        check(&set(|s| s.scope = SemanticScopeConfig::Key)).unwrap_err(),
        "semantic_cache.scope",
        "scope = key needs virtual keys"
    );
    // Defaults: 0.95, ten minutes, 10000 entries, per key.
    let defaults = semantic_defaults();
    assert_eq!(defaults.threshold, 0.95);
    assert_eq!(defaults.ttl, std::time::Duration::from_secs(600));
    assert_eq!(defaults.max_entries, 10_000);
    assert_eq!(defaults.scope, SemanticScopeConfig::Key);
    assert!(
        toml::from_str::<SemanticCacheConfig>("target = \"oa\"\nmodel = \"m\"\nthreshhold = 0.9")
            .is_err()
    );
}

fn semantic_defaults() -> SemanticCacheConfig {
    semantic("target = \"oa\"\nmodel = \"text-embedding-3-small\"")
}
