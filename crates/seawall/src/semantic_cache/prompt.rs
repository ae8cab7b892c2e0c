//! What is embedded of a request, and the partition its answer may be shared within.

use std::sync::Arc;

use seawall_core::{ChatRequest, ContentPart, Message, Role};

use crate::cache::key::answer_changing;

/// A request reduced to the text embedded and the partition it is compared within.
#[derive(Debug)]
pub(crate) struct Prompt {
    /// The system prompt(s), a blank line, and the last user message.
    pub(crate) text: String,
    /// Everything else that changes the answer, compared exactly: the scope value, the
    /// model, the tools, the sampling and output parameters, the provider pass-through
    /// fields that matter, and every other turn of the conversation.
    pub(crate) partition: Arc<[u8]>,
}

fn text_only(message: &Message) -> bool {
    message
        .content
        .iter()
        .all(|part| matches!(part, ContentPart::Text { .. }))
}

impl Prompt {
    /// The prompt of `request` under scope value `scope`; `None` when the request has no
    /// user message with text, or when that message holds anything but text (an image is
    /// not compared by similarity).
    pub(crate) fn of(request: &ChatRequest, scope: &str) -> Option<Self> {
        let last = request
            .messages
            .iter()
            .rposition(|m| m.role == Role::User)?;
        let user = &request.messages[last];
        if !text_only(user) || !user.tool_calls.is_empty() {
            return None;
        }
        let question = user.joined_text();
        if question.trim().is_empty() {
            return None;
        }
        let system: Vec<String> = request
            .messages
            .iter()
            .filter(|m| m.role == Role::System)
            .map(Message::joined_text)
            .collect();
        let text = if system.is_empty() {
            question
        } else {
            format!("{}\n\n{question}", system.join("\n"))
        };
        // The other turns (before and after the last user message), exactly.
        let turns: Vec<(usize, &Message)> = request
            .messages
            .iter()
            .enumerate()
            .filter(|(i, m)| *i != last && m.role != Role::System)
            .collect();
        let view = (
            scope,
            &*request.model,
            answer_changing(request),
            turns,
            last,
        );
        let partition = serde_json::to_vec(&view).ok()?;
        Some(Self {
            text,
            partition: Arc::from(partition),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_text_is_the_system_prompt_and_the_last_question() {
        let request = ChatRequest::new(
            "gpt-4o",
            [
                Message::system("Answer briefly."),
                Message::user("Hi"),
                Message::assistant("Hello!"),
                Message::user("Capital of France?"),
            ],
        );
        let prompt = Prompt::of(&request, "k").unwrap();
        assert_eq!(prompt.text, "Answer briefly.\n\nCapital of France?");
        let other_history = ChatRequest::new(
            "gpt-4o",
            [
                Message::system("Answer briefly."),
                Message::user("Hey"),
                Message::assistant("Hello!"),
                Message::user("Capital of France?"),
            ],
        );
        assert_ne!(
            Prompt::of(&other_history, "k").unwrap().partition,
            prompt.partition
        );
        assert_ne!(
            Prompt::of(&request, "other").unwrap().partition,
            prompt.partition
        );
        let hotter = request.clone().with_temperature(1.0);
        assert_ne!(
            Prompt::of(&hotter, "k").unwrap().partition,
            prompt.partition
        );
        let no_user = ChatRequest::new("gpt-4o", [Message::system("x")]);
        assert!(Prompt::of(&no_user, "k").is_none());
    }
}
