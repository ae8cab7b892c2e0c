//! Property of mid-stream recovery: whatever the answer, wherever the stream breaks and
//! however the fallback answers, the caller gets the whole answer exactly once, or an
//! explicit error after a true prefix of it; never a complete-looking stream with other text.

mod support;

use std::time::Duration;

use proptest::prelude::*;
use seawall::failover::{Failover, Target};
use seawall_core::{
    BoxError, ChatRequest, ChatResponse, ErrorKind, FinishReason, LlmError, Message, Role,
    StreamAccumulator, StreamEvent, Usage,
};
use support::{collect, streamed};
use tower::{ServiceExt, service_fn};

/// `text` cut into `pieces` deltas of about equal length, then the end of message.
fn in_pieces(text: &str, pieces: usize) -> Vec<StreamEvent> {
    let chars: Vec<char> = text.chars().collect();
    let size = chars.len().div_ceil(pieces.max(1)).max(1);
    let mut events = vec![StreamEvent::Start {
        id: None,
        model: None,
    }];
    events.extend(
        chars
            .chunks(size)
            .map(|chunk| StreamEvent::TextDelta(chunk.iter().collect())),
    );
    events.push(StreamEvent::Finish(FinishReason::Stop));
    events.push(StreamEvent::Usage(Usage::new(10, 5)));
    events
}

fn prefill(request: &ChatRequest) -> Option<String> {
    request
        .messages
        .last()
        .filter(|message| message.role == Role::Assistant)
        .map(Message::joined_text)
}

/// How the fallback answers.
#[derive(Debug, Clone, Copy)]
enum Fallback {
    /// Continues the delivered text.
    Continues,
    /// Starts over with the same answer.
    RestartsSame,
    /// Starts over with another answer.
    RestartsOther,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn a_recovered_stream_is_the_whole_answer_or_an_explicit_error(
        answer in "[a-z]{1,8}( [a-z]{1,8}){2,10}",
        pieces in 2usize..8,
        broken_after in 1usize..8,
        fallback_pieces in 1usize..6,
        fallback in prop_oneof![
            Just(Fallback::Continues),
            Just(Fallback::RestartsSame),
            Just(Fallback::RestartsOther),
        ],
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let full = answer.clone();
        let (text, complete, error) = runtime.block_on(async move {
            let mut first = in_pieces(&full, pieces);
            // Start, then `broken_after` deltas (at least one: past the commit point), then
            // the connection breaks.
            let delivered = broken_after.min(first.len() - 3).max(1);
            first.truncate(1 + delivered);
            first.push(StreamEvent::Error(LlmError::new(
                ErrorKind::StreamTruncated,
                "the connection closed before the end of message",
            )));
            let breaking = service_fn(move |request: ChatRequest| {
                let events = first.clone();
                async move {
                    Ok::<_, BoxError>(streamed(&request.model, Duration::from_millis(10), events))
                }
            });
            let answer = full.clone();
            let other = format!("{} and more", full.to_uppercase());
            let finishing = service_fn(move |request: ChatRequest| {
                let text = match (fallback, prefill(&request)) {
                    (Fallback::Continues, Some(prefill)) => answer
                        .strip_prefix(&*prefill)
                        .map(str::to_owned)
                        .unwrap_or_else(|| other.clone()),
                    (Fallback::Continues | Fallback::RestartsSame, _) => answer.clone(),
                    (Fallback::RestartsOther, _) => other.clone(),
                };
                async move {
                    Ok::<ChatResponse, BoxError>(streamed(
                        &request.model,
                        Duration::from_millis(10),
                        in_pieces(&text, fallback_pieces),
                    ))
                }
            });
            let router = Failover::builder()
                .target(Target::new("first", breaking))
                .target(
                    Target::new("fallback", finishing)
                        .accepts_prefill(matches!(fallback, Fallback::Continues)),
                )
                .build();
            let request =
                ChatRequest::new("chat", [Message::user("Tell me about the sea.")]).streaming();
            let mut response = router.oneshot(request).await.unwrap();
            let events = collect(response.stream.take().expect("a stream")).await;
            let mut accumulator = StreamAccumulator::new();
            let mut error = None;
            for event in &events {
                if let Err(e) = accumulator.push(event) {
                    error = Some(e);
                }
            }
            (accumulator.text().to_owned(), accumulator.is_complete(), error)
        });
        if complete {
            prop_assert_eq!(&text, &answer, "a complete stream is the whole answer, once");
        } else {
            prop_assert!(error.is_some(), "an incomplete stream ends with an explicit error");
            prop_assert!(answer.starts_with(&text), "what was delivered is a true prefix: {:?}", text);
        }
        if matches!(fallback, Fallback::Continues | Fallback::RestartsSame) {
            prop_assert!(complete, "a fallback with the same answer finishes it: {:?} {:?}", text, error);
        }
    }
}
