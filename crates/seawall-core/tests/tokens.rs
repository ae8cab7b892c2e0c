//! Token estimation: the cookbook's API-verified count, and the heuristic as an upper bound.

use seawall_core::tokens::{
    HeuristicEstimator, OpenAiEncoding, TiktokenEstimator, TokenEstimator, warm_up,
};
use seawall_core::{ChatRequest, ContentPart, Message, ToolDefinition};
use serde_json::json;

/// The example of OpenAI's "How to count tokens with tiktoken" notebook, whose total the
/// notebook verified against the API: 124 for gpt-4o and gpt-4o-mini, 129 for gpt-4.
fn cookbook_messages() -> Vec<Message> {
    vec![
        Message::system(
            "You are a helpful, pattern-following assistant that translates corporate jargon into plain English.",
        ),
        Message::system("New synergies will help drive top-line growth.").with_name("example_user"),
        Message::system("Things working well together will increase revenue.")
            .with_name("example_assistant"),
        Message::system(
            "Let's circle back when we have more time to touch base on opportunities for increased leverage.",
        )
        .with_name("example_user"),
        Message::system("Let's talk later when we're less busy about how to do better.")
            .with_name("example_assistant"),
        Message::user(
            "This late pivot means we don't have time to boil the ocean for the client deliverable.",
        ),
    ]
}

#[test]
fn cookbook_example_counts_exactly_as_the_api_did() {
    warm_up();
    let estimator = TiktokenEstimator::new();
    for (model, expected) in [
        ("gpt-4o", 124),
        ("gpt-4o-mini", 124),
        ("openai/gpt-4o", 124),
        ("gpt-4-0613", 129),
        ("gpt-3.5-turbo", 129),
    ] {
        let request = ChatRequest::new(model, cookbook_messages());
        assert_eq!(estimator.prompt_tokens(&request), expected, "{model}");
    }
}

#[test]
fn encodings_are_chosen_by_model_family() {
    for model in [
        "gpt-4o",
        "gpt-4.1-mini",
        "gpt-5",
        "o3-mini",
        "o1",
        "gpt-oss-20b",
    ] {
        assert_eq!(
            OpenAiEncoding::for_model(model),
            Some(OpenAiEncoding::O200kBase),
            "{model}"
        );
    }
    for model in ["gpt-4", "gpt-4-0613", "gpt-3.5-turbo", "gpt-35-turbo"] {
        assert_eq!(
            OpenAiEncoding::for_model(model),
            Some(OpenAiEncoding::Cl100kBase),
            "{model}"
        );
    }
    for model in ["claude-sonnet-4-5", "gemini-2.5-flash", "llama3.1:8b"] {
        assert_eq!(OpenAiEncoding::for_model(model), None, "{model}");
    }
}

#[test]
fn other_models_fall_back_to_the_heuristic() {
    let request = ChatRequest::new("claude-sonnet-4-5", cookbook_messages());
    assert_eq!(
        TiktokenEstimator::new().prompt_tokens(&request),
        HeuristicEstimator::default().prompt_tokens(&request)
    );
}

fn weather_tool() -> ToolDefinition {
    ToolDefinition::new(
        "get_current_weather",
        "Get the current weather in a given location",
        json!({
            "type": "object",
            "properties": {
                "location": {
                    "type": "string",
                    "description": "The city and state, e.g. San Francisco, CA",
                },
                "unit": {"type": "string", "description": "The unit of temperature to return", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        }),
    )
}

#[test]
fn tool_definitions_are_counted_with_the_cookbook_constants() {
    let estimator = TiktokenEstimator::new();
    let messages = [Message::user("What's the weather like in San Francisco?")];
    let bare = ChatRequest::new("gpt-4o", messages.clone());
    let with_tool = ChatRequest::new("gpt-4o", messages).with_tools([weather_tool()]);
    let encoding = OpenAiEncoding::O200kBase;
    let count = |text: &str| TiktokenEstimator::text_tokens(encoding, text);
    // func_init 7, name:description, prop_init 3; per property prop_key 3 and
    // key:type:description; an enum adds enum_init (-3) plus enum_item (3) and the text of
    // each item; func_end 12.
    let (func_init, prop_init, prop_key, func_end) = (7, 3, 3, 12);
    let enum_items = count("celsius") + count("fahrenheit") + 2 * 3 - 3;
    let expected_tools = func_init
        + count("get_current_weather:Get the current weather in a given location")
        + prop_init
        + prop_key
        + count("location:string:The city and state, e.g. San Francisco, CA")
        + prop_key
        + enum_items
        + count("unit:string:The unit of temperature to return")
        + func_end;
    assert_eq!(
        estimator.prompt_tokens(&with_tool) - estimator.prompt_tokens(&bare),
        expected_tools
    );
}

#[test]
fn heuristic_is_an_upper_bound_of_the_exact_count() {
    let exact = TiktokenEstimator::new();
    let heuristic = HeuristicEstimator::default();
    let texts = [
        "The quick brown fox jumps over the lazy dog.",
        "fn main() { println!(\"{}\", (1..=10).map(|x| x * x).sum::<u32>()); }",
        "東京は日本の首都です。人口は約千四百万人です。",
        "Привет, как дела? Всё хорошо, спасибо.",
        "🙂🚀🎉 emoji heavy text ✨🔥",
        "{\"key\": [1, 2, 3], \"nested\": {\"a\": null, \"b\": true}}",
        "",
    ];
    for model in ["gpt-4o", "gpt-4"] {
        for text in texts {
            let request =
                ChatRequest::new(model, [Message::user(text)]).with_tools([weather_tool()]);
            let upper = heuristic.prompt_tokens(&request);
            let real = exact.prompt_tokens(&request);
            assert!(
                upper >= real,
                "{model} {text:?}: heuristic {upper} < exact {real}"
            );
        }
    }
    let cookbook = ChatRequest::new("gpt-4o", cookbook_messages());
    assert!(heuristic.prompt_tokens(&cookbook) >= 124);
}

#[test]
fn images_and_reserved_output_are_charged() {
    let heuristic = HeuristicEstimator::default();
    let mut message = Message::user("What is in this picture?");
    message
        .content
        .push(ContentPart::image_url("https://example.com/cat.png"));
    let with_image = ChatRequest::new("gemini-2.5-flash", [message]);
    let without = ChatRequest::new(
        "gemini-2.5-flash",
        [Message::user("What is in this picture?")],
    );
    assert_eq!(
        heuristic.prompt_tokens(&with_image) - heuristic.prompt_tokens(&without),
        heuristic.per_image
    );

    let estimate = heuristic.estimate(&without, 512);
    assert_eq!(
        estimate.reserved_output, 512,
        "default output when the request has no cap"
    );
    let capped = heuristic.estimate(&without.clone().with_max_output_tokens(64), 512);
    assert_eq!(capped.reserved_output, 64);
    assert_eq!(capped.total(), capped.prompt + 64);
}

#[test]
fn heuristic_text_tokens_round_up_and_count_each_non_ascii_character() {
    assert_eq!(HeuristicEstimator::text_tokens(""), 0);
    assert_eq!(HeuristicEstimator::text_tokens("a"), 1);
    assert_eq!(HeuristicEstimator::text_tokens("abc"), 1);
    assert_eq!(HeuristicEstimator::text_tokens("abcd"), 2);
    assert_eq!(HeuristicEstimator::text_tokens("日本"), 2);
    assert_eq!(HeuristicEstimator::text_tokens("ab日"), 2);
}

/// Counts its calls; weighs alike with every other instance.
#[derive(Debug, Default)]
struct Counting(std::sync::atomic::AtomicU64);

impl TokenEstimator for Counting {
    fn prompt_tokens(&self, request: &ChatRequest) -> u64 {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        HeuristicEstimator::default().prompt_tokens(request)
    }

    fn weighs_alike(&self) -> Option<[u64; 3]> {
        Some([99, 0, 0])
    }
}

#[test]
fn a_call_with_a_trail_counts_its_prompt_once_for_estimators_that_weigh_alike() {
    use seawall_core::LlmRequest as _;

    let counting = Counting::default();
    let mut request = ChatRequest::new("gpt-4o", [Message::user("Capital of France?")]);
    request.context.trail();
    let first = request.estimate_once(&counting, 100);
    // A clone (a retry, a failover attempt) shares the call's recorder.
    let clone = request.clone();
    assert_eq!(clone.estimate_once(&counting, 10).prompt, first.prompt);
    assert_eq!(clone.estimate_once(&counting, 10).reserved_output, 10);
    assert_eq!(counting.0.load(std::sync::atomic::Ordering::Relaxed), 1);

    // Other messages, or another way of counting, are counted afresh.
    let mut changed = request.clone();
    changed.messages = [Message::user("Capital of Italy?")].into_iter().collect();
    changed.estimate_once(&counting, 10);
    assert_eq!(counting.0.load(std::sync::atomic::Ordering::Relaxed), 2);
    let heuristic = HeuristicEstimator::default();
    assert_eq!(
        request.estimate_once(&heuristic, 100),
        heuristic.estimate(&request, 100)
    );

    // Without a trail there is nowhere to keep the count.
    let alone = ChatRequest::new("gpt-4o", [Message::user("Capital of France?")]);
    alone.estimate_once(&counting, 100);
    alone.estimate_once(&counting, 100);
    assert_eq!(counting.0.load(std::sync::atomic::Ordering::Relaxed), 4);
}
