//! A [`ChatRequest`] as a Responses API request body.

use seawall_core::{
    ChatRequest, ContentPart, ErrorKind, ImageDetail, ImageSource, LlmError, Message, ProviderKind,
    ResponseFormat, Role, ToolChoice,
};
use serde_json::{Map, Value, json};

use crate::json::merge_extra;

/// The smallest `max_output_tokens` the API accepts.
const MIN_OUTPUT_TOKENS: u32 = 16;

/// The fields `POST /responses/input_tokens` takes; it refuses any other.
const COUNT_FIELDS: [&str; 11] = [
    "conversation",
    "input",
    "instructions",
    "model",
    "parallel_tool_calls",
    "previous_response_id",
    "reasoning",
    "text",
    "tool_choice",
    "tools",
    "truncation",
];

/// The error of a request the API would refuse (nothing is sent).
pub(super) fn invalid(problem: String) -> LlmError {
    LlmError::new(ErrorKind::InvalidRequest, problem).with_provider(ProviderKind::OpenAiResponses)
}

/// The `POST /responses` body.
pub(super) fn body(request: &ChatRequest) -> Result<Vec<u8>, String> {
    serde_json::to_vec(&Value::Object(fields(request)?)).map_err(|e| e.to_string())
}

/// The `POST /responses/input_tokens` body: the same request, without the fields that only
/// shape the output.
pub(super) fn count_body(request: &ChatRequest) -> Result<Vec<u8>, String> {
    let mut fields = fields(request)?;
    fields.retain(|key, _| COUNT_FIELDS.contains(&key.as_str()));
    serde_json::to_vec(&Value::Object(fields)).map_err(|e| e.to_string())
}

fn fields(request: &ChatRequest) -> Result<Map<String, Value>, String> {
    if !request.stop.is_empty() {
        return Err("the Responses API has no stop sequences; remove `stop`".to_owned());
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(&*request.model));
    let (instructions, input) = input(&request.messages)?;
    if let Some(instructions) = instructions {
        body.insert("instructions".into(), Value::String(instructions));
    }
    body.insert("input".into(), Value::Array(input));
    if let Some(max) = request.max_output_tokens {
        if max < MIN_OUTPUT_TOKENS {
            return Err(format!(
                "max_output_tokens is {max}; the Responses API takes {MIN_OUTPUT_TOKENS} or more"
            ));
        }
        body.insert("max_output_tokens".into(), json!(max));
    }
    // Widened as a `serde_json::Value` widens an `f32`, as the chat encoder does.
    if let Some(temperature) = request.temperature {
        body.insert("temperature".into(), json!(f64::from(temperature)));
    }
    if let Some(top_p) = request.top_p {
        body.insert("top_p".into(), json!(f64::from(top_p)));
    }
    if !request.tools.is_empty() {
        let tools = request
            .tools
            .iter()
            .map(|tool| {
                let mut function = Map::new();
                function.insert("type".into(), json!("function"));
                function.insert("name".into(), json!(tool.name));
                if let Some(description) = &tool.description {
                    function.insert("description".into(), json!(description));
                }
                function.insert("parameters".into(), tool.parameters.clone());
                // The API's default is strict, which refuses most hand-written schemas;
                // chat completions' default is not.
                function.insert("strict".into(), json!(false));
                Value::Object(function)
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = &request.tool_choice {
        let choice = match choice {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Tool(name) => json!({"type": "function", "name": name}),
        };
        body.insert("tool_choice".into(), choice);
    }
    match &request.response_format {
        ResponseFormat::Text => {}
        ResponseFormat::JsonObject => {
            body.insert("text".into(), json!({"format": {"type": "json_object"}}));
        }
        ResponseFormat::JsonSchema {
            name,
            schema,
            strict,
        } => {
            body.insert(
                "text".into(),
                json!({"format": {
                    "type": "json_schema", "name": name, "schema": schema, "strict": strict
                }}),
            );
        }
    }
    if request.stream {
        body.insert("stream".into(), json!(true));
    }
    if let Some(user) = &request.user {
        body.insert("user".into(), json!(&**user));
    }
    merge_extra(&mut body, &request.extra);
    Ok(body)
}

/// The system messages' text (the `instructions`) and the `input` items of the rest.
fn input(messages: &[Message]) -> Result<(Option<String>, Vec<Value>), String> {
    let mut instructions: Option<String> = None;
    let mut items = Vec::with_capacity(messages.len());
    for (i, message) in messages.iter().enumerate() {
        match message.role {
            Role::System => {
                let text = message.joined_text();
                match &mut instructions {
                    Some(all) => {
                        all.push_str("\n\n");
                        all.push_str(&text);
                    }
                    None => instructions = Some(text),
                }
            }
            Role::User => items.push(json!({
                "type": "message",
                "role": "user",
                "content": user_content(&message.content),
            })),
            Role::Assistant => {
                let text = message.joined_text();
                if !text.is_empty() || message.tool_calls.is_empty() {
                    items.push(json!({"type": "message", "role": "assistant", "content": text}));
                }
                for call in &message.tool_calls {
                    items.push(json!({
                        "type": "function_call",
                        "call_id": call.id,
                        "name": call.name,
                        "arguments": call.arguments,
                    }));
                }
            }
            Role::Tool => {
                let Some(call_id) = message.tool_call_id.as_deref().filter(|id| !id.is_empty())
                else {
                    return Err(format!(
                        "messages[{i}]: a tool result needs the id of the call it answers"
                    ));
                };
                items.push(json!({
                    "type": "function_call_output",
                    "call_id": call_id,
                    "output": message.joined_text(),
                }));
            }
        }
    }
    Ok((instructions, items))
}

/// A user message's content: a string when it is only text, `input_text` and
/// `input_image` parts otherwise.
fn user_content(parts: &[ContentPart]) -> Value {
    let only_text = parts.iter().all(|p| matches!(p, ContentPart::Text { .. }));
    if only_text {
        let text: String = parts
            .iter()
            .filter_map(|p| match p {
                ContentPart::Text { text, .. } => Some(text.as_str()),
                ContentPart::Image { .. } => None,
            })
            .collect();
        return Value::String(text);
    }
    let parts = parts
        .iter()
        .map(|part| match part {
            ContentPart::Text { text, .. } => json!({"type": "input_text", "text": text}),
            ContentPart::Image { source, detail, .. } => {
                let url = match source {
                    ImageSource::Url { url } => url.clone(),
                    ImageSource::Base64 { media_type, data } => {
                        format!("data:{media_type};base64,{data}")
                    }
                };
                // `detail` is required on an input image.
                let detail = match detail {
                    Some(ImageDetail::Low) => "low",
                    Some(ImageDetail::High) => "high",
                    Some(ImageDetail::Auto) | None => "auto",
                };
                json!({"type": "input_image", "image_url": url, "detail": detail})
            }
        })
        .collect();
    Value::Array(parts)
}
