//! Checks every encoder makes before it writes a request: what a provider would refuse is
//! refused here, with nothing sent.

use seawall_core::{ChatRequest, ContentPart, ErrorKind, LlmError, ProviderKind};

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
