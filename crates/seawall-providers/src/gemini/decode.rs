//! Complete responses, and the finish reasons streams share.

use seawall_core::{AssistantMessage, ChatResponse, FinishReason, ProviderKind, Usage};

use super::wire;

/// The response the first candidate stands for; `None` when there is none.
pub(super) fn candidate_response(body: wire::Response<'_>) -> Option<ChatResponse> {
    let candidate = body.candidates?.into_iter().next()?;
    let mut message = AssistantMessage::default();
    let finish = candidate.finish_reason.clone();
    for part in candidate.parts() {
        match part {
            wire::Read::Text(text) => message.text.push_str(&text),
            wire::Read::Call(call) if !call.is_empty() => {
                let index = message.tool_calls.len();
                message.tool_calls.push(call.tool_call(index));
            }
            wire::Read::Call(_) | wire::Read::Nothing => {}
        }
    }
    let finish = finish_reason(
        finish.as_deref().unwrap_or("STOP"),
        !message.tool_calls.is_empty(),
    );
    let mut response = ChatResponse::new(
        ProviderKind::Gemini,
        body.model_version.unwrap_or_default(),
        message,
        finish,
    )
    .with_id(body.response_id.unwrap_or_default());
    response.usage = body.usage_metadata.map(Usage::from);
    Some(response)
}

pub(super) fn finish_reason(reason: &str, has_calls: bool) -> FinishReason {
    match reason {
        "STOP" if has_calls => FinishReason::ToolCalls,
        "STOP" => FinishReason::Stop,
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION"
        | "MODEL_ARMOR" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}
