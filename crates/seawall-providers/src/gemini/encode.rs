//! The request body: contents, system instruction, tools and generation config.

use seawall_core::{
    ChatRequest, ContentPart, ImageSource, LlmError, ProviderKind, ResponseFormat, Role, ToolChoice,
};
use serde_json::{Map, Value, json};

use crate::encode::{refuse_plain_data_urls, tool_call_arguments};
use crate::json::merge_extra;

fn encode_part(part: &ContentPart) -> Option<Value> {
    match part {
        ContentPart::Text { text, .. } => (!text.is_empty()).then(|| json!({"text": text})),
        // Bytes in the request (inline, or a base64 `data:` URL) are `inlineData`;
        // `fileData` is for files Gemini fetches.
        ContentPart::Image { source, .. } => Some(match (source.inline(), source) {
            (Some((media_type, data)), _) => {
                json!({"inlineData": {"mimeType": media_type, "data": data}})
            }
            (None, ImageSource::Url { url }) => json!({"fileData": {"fileUri": url}}),
            (None, ImageSource::Base64 { .. }) => return None,
        }),
    }
}

pub(super) fn encode_body(request: &ChatRequest) -> Result<Value, LlmError> {
    refuse_plain_data_urls(request, ProviderKind::Gemini)?;
    let mut system = Vec::new();
    let mut contents: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, message) in request.messages.iter().enumerate() {
        let (role, parts): (&'static str, Vec<Value>) = match message.role {
            Role::System => {
                system.extend(message.content.iter().filter_map(encode_part));
                continue;
            }
            Role::User => (
                "user",
                message.content.iter().filter_map(encode_part).collect(),
            ),
            Role::Assistant => {
                let mut parts: Vec<Value> =
                    message.content.iter().filter_map(encode_part).collect();
                for call in &message.tool_calls {
                    let args = tool_call_arguments(i, call, ProviderKind::Gemini)?;
                    parts.push(json!({"functionCall": {"name": call.name, "args": args}}));
                }
                ("model", parts)
            }
            Role::Tool => {
                let id = message.tool_call_id.as_deref().unwrap_or_default();
                // The response names the function; find it from the call being answered.
                let name = request.messages[..i]
                    .iter()
                    .rev()
                    .flat_map(|m| m.tool_calls.iter())
                    .find(|call| call.id == id)
                    .map_or(id, |call| call.name.as_str());
                let text = message.joined_text();
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(object @ Value::Object(_)) => object,
                    _ => json!({"result": text}),
                };
                (
                    "user",
                    vec![json!({"functionResponse": {"name": name, "response": response}})],
                )
            }
        };
        match contents.last_mut() {
            Some((last_role, last_parts)) if *last_role == role => last_parts.extend(parts),
            _ => contents.push((role, parts)),
        }
    }
    let mut body = Map::new();
    body.insert(
        "contents".into(),
        contents
            .into_iter()
            .map(|(role, parts)| json!({"role": role, "parts": parts}))
            .collect(),
    );
    if !system.is_empty() {
        body.insert("systemInstruction".into(), json!({"parts": system}));
    }
    let mut config = Map::new();
    if let Some(max) = request.max_output_tokens {
        config.insert("maxOutputTokens".into(), max.into());
    }
    if let Some(t) = request.temperature {
        config.insert("temperature".into(), json!(t));
    }
    if let Some(p) = request.top_p {
        config.insert("topP".into(), json!(p));
    }
    if !request.stop.is_empty() {
        config.insert("stopSequences".into(), json!(&*request.stop));
    }
    match &request.response_format {
        ResponseFormat::Text => {}
        ResponseFormat::JsonObject => {
            config.insert("responseMimeType".into(), "application/json".into());
        }
        ResponseFormat::JsonSchema { schema, .. } => {
            config.insert("responseMimeType".into(), "application/json".into());
            config.insert("responseJsonSchema".into(), schema.clone());
        }
    }
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }
    if !request.tools.is_empty() {
        let declarations: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                let mut out = Map::new();
                out.insert("name".into(), tool.name.clone().into());
                if let Some(description) = &tool.description {
                    out.insert("description".into(), description.clone().into());
                }
                out.insert("parametersJsonSchema".into(), tool.parameters.clone());
                Value::Object(out)
            })
            .collect();
        body.insert(
            "tools".into(),
            json!([{"functionDeclarations": declarations}]),
        );
    }
    if let Some(choice) = &request.tool_choice {
        let config = match choice {
            ToolChoice::Auto => json!({"mode": "AUTO"}),
            ToolChoice::None => json!({"mode": "NONE"}),
            ToolChoice::Required => json!({"mode": "ANY"}),
            ToolChoice::Tool(name) => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
        };
        body.insert(
            "toolConfig".into(),
            json!({"functionCallingConfig": config}),
        );
    }
    merge_extra(&mut body, &request.extra);
    Ok(Value::Object(body))
}
