//! The request body: system blocks, turns, tools and cache markers.

use seawall_core::{
    CacheControl, ChatRequest, ContentPart, ImageSource, LlmError, ProviderKind, Role, ToolChoice,
};
use serde_json::{Map, Value, json};

use crate::encode::{refuse_plain_data_urls, tool_call_arguments};
use crate::json::merge_extra;

fn cache_control(cache: Option<&CacheControl>) -> Option<Value> {
    cache.map(|cache| {
        let mut value = Map::new();
        value.insert("type".into(), cache.kind.clone().into());
        if let Some(ttl) = &cache.ttl {
            value.insert("ttl".into(), ttl.clone().into());
        }
        Value::Object(value)
    })
}

fn with_cache(mut block: Value, cache: Option<&CacheControl>) -> Value {
    if let (Some(cache), Some(object)) = (cache_control(cache), block.as_object_mut()) {
        object.insert("cache_control".into(), cache);
    }
    block
}

fn encode_part(part: &ContentPart) -> Option<Value> {
    match part {
        ContentPart::Text {
            text,
            cache_control,
        } => (!text.is_empty()).then(|| {
            with_cache(
                json!({"type": "text", "text": text}),
                cache_control.as_ref(),
            )
        }),
        ContentPart::Image {
            source,
            cache_control,
            ..
        } => {
            // Bytes in the request (inline, or a base64 `data:` URL) are a base64 source;
            // Anthropic fetches only `http(s)` URLs.
            let source = match (source.inline(), source) {
                (Some((media_type, data)), _) => {
                    json!({"type": "base64", "media_type": media_type, "data": data})
                }
                (None, ImageSource::Url { url }) => json!({"type": "url", "url": url}),
                (None, ImageSource::Base64 { .. }) => return None,
            };
            Some(with_cache(
                json!({"type": "image", "source": source}),
                cache_control.as_ref(),
            ))
        }
    }
}

pub(super) fn encode_body(
    request: &ChatRequest,
    default_max_tokens: u32,
) -> Result<Value, LlmError> {
    refuse_plain_data_urls(request, ProviderKind::Anthropic)?;
    let mut system = Vec::new();
    // (role, blocks) turns; consecutive turns of one role merge (tool results join the user
    // turn that follows the assistant's calls).
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, message) in request.messages.iter().enumerate() {
        let (role, blocks): (&'static str, Vec<Value>) = match message.role {
            Role::System => {
                system.extend(message.content.iter().filter_map(encode_part));
                continue;
            }
            Role::User => (
                "user",
                message.content.iter().filter_map(encode_part).collect(),
            ),
            Role::Assistant => {
                let mut blocks: Vec<Value> =
                    message.content.iter().filter_map(encode_part).collect();
                for call in &message.tool_calls {
                    let input = tool_call_arguments(i, call, ProviderKind::Anthropic)?;
                    blocks.push(
                        json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input}),
                    );
                }
                ("assistant", blocks)
            }
            Role::Tool => {
                let content: Vec<Value> = message.content.iter().filter_map(encode_part).collect();
                let cache = message.content.last().and_then(ContentPart::cache_control);
                let block = json!({
                    "type": "tool_result",
                    "tool_use_id": message.tool_call_id.clone().unwrap_or_default(),
                    "content": content,
                });
                ("user", vec![with_cache(block, cache)])
            }
        };
        match turns.last_mut() {
            Some((last_role, last_blocks)) if *last_role == role => last_blocks.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), Value::from(&*request.model));
    body.insert(
        "max_tokens".into(),
        request
            .max_output_tokens
            .unwrap_or(default_max_tokens)
            .into(),
    );
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    body.insert(
        "messages".into(),
        turns
            .into_iter()
            .map(|(role, content)| json!({"role": role, "content": content}))
            .collect(),
    );
    if !request.tools.is_empty() {
        let tools = request
            .tools
            .iter()
            .map(|tool| {
                let mut out = Map::new();
                out.insert("name".into(), tool.name.clone().into());
                if let Some(description) = &tool.description {
                    out.insert("description".into(), description.clone().into());
                }
                out.insert("input_schema".into(), tool.parameters.clone());
                if let Some(cache) = cache_control(tool.cache_control.as_ref()) {
                    out.insert("cache_control".into(), cache);
                }
                Value::Object(out)
            })
            .collect();
        body.insert("tools".into(), tools);
    }
    if let Some(choice) = &request.tool_choice {
        let choice = match choice {
            ToolChoice::Auto => json!({"type": "auto"}),
            ToolChoice::None => json!({"type": "none"}),
            ToolChoice::Required => json!({"type": "any"}),
            ToolChoice::Tool(name) => json!({"type": "tool", "name": name}),
        };
        body.insert("tool_choice".into(), choice);
    }
    if !request.stop.is_empty() {
        body.insert("stop_sequences".into(), json!(&*request.stop));
    }
    if let Some(t) = request.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(p) = request.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if request.stream {
        body.insert("stream".into(), true.into());
    }
    if let Some(user) = &request.user {
        body.insert("metadata".into(), json!({"user_id": &**user}));
    }
    merge_extra(&mut body, &request.extra);
    Ok(Value::Object(body))
}
