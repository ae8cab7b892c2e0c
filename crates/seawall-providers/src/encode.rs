//! Checks every encoder makes before it writes a request (what a provider would refuse is
//! refused here, with nothing sent), and the conversions those checks guard.

use seawall_core::{ChatRequest, ContentPart, ErrorKind, LlmError, ProviderKind, ToolCall};
use serde_json::Value;

/// Refuses a request with an image in a `data:` URL that is not base64: `provider` takes
/// inline images as base64 only.
pub(crate) fn refuse_plain_data_urls(
    request: &ChatRequest,
    provider: ProviderKind,
) -> Result<(), LlmError> {
    let plain = request
        .messages
        .iter()
        .enumerate()
        .find_map(|(i, message)| {
            message.content.iter().position(|part| {
            matches!(part, ContentPart::Image { source, .. } if source.is_plain_data_url())
        })
        .map(|j| (i, j))
        });
    match plain {
        None => Ok(()),
        Some((i, j)) => Err(LlmError::new(
            ErrorKind::InvalidRequest,
            format!(
                "messages[{i}].content[{j}]: {provider:?} takes an inline image as base64 \
                 (data:<type>;base64,...), not a plain data: URL"
            ),
        )
        .with_provider(provider)),
    }
}

/// The arguments of `call`, made by the assistant message `messages[index]`, as the JSON
/// object a provider that takes them structured (not as a string) wants: empty arguments
/// are `{}`; text that is not JSON is refused, as `provider` would.
pub(crate) fn tool_call_arguments(
    index: usize,
    call: &ToolCall,
    provider: ProviderKind,
) -> Result<Value, LlmError> {
    if call.arguments.trim().is_empty() {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    serde_json::from_str(&call.arguments).map_err(|e| {
        LlmError::new(
            ErrorKind::InvalidRequest,
            format!(
                "messages[{index}]: the arguments of tool call `{}` are not JSON: {e}",
                call.id
            ),
        )
        .with_provider(provider)
    })
}
