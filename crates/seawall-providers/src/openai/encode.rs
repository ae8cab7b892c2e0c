//! The request: URL, headers and body.

use std::borrow::Cow;

use seawall_core::{
    ChatRequest, ErrorKind, LlmError, Message, ProviderKind, ResponseFormat, ToolChoice,
};
use serde_json::Value;

use super::{KeyHeader, OpenAiDialect, ServerKind};
use crate::dialect::Dialect;
use crate::json::{join_url, merge_extra};
use crate::key::ApiKey;

impl OpenAiDialect {
    /// The URL of `path` under the base URL, with the `api-version` when one is set.
    pub(super) fn url(&self, path: &str) -> Result<String, LlmError> {
        let url = join_url(&self.0.base_url, path);
        let Some(version) = &self.0.api_version else {
            return Ok(url);
        };
        // API versions are dates with an optional suffix (`2025-04-01-preview`): nothing to
        // escape, and anything else is a configuration mistake.
        if version.is_empty()
            || !version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        {
            return Err(LlmError::new(
                ErrorKind::InvalidRequest,
                format!("`{version}` is not an api-version"),
            )
            .with_provider(self.provider()));
        }
        let separator = if url.contains('?') { '&' } else { '?' };
        Ok(format!("{url}{separator}api-version={version}"))
    }

    /// The key and organization headers every request carries.
    pub(super) fn headers(&self) -> Result<Vec<(&'static str, http::HeaderValue)>, LlmError> {
        account_headers(
            self.provider(),
            self.0.api_key.as_ref(),
            self.0.key_header,
            self.0.organization.as_deref(),
            self.0.project.as_deref(),
        )
    }
}

/// The headers naming an OpenAI account, for chat completions and the Responses API alike:
/// the key (in `key_header`, when there is one), `OpenAI-Organization` and
/// `OpenAI-Project`. An organization or project a header cannot carry is left out.
pub(crate) fn account_headers(
    provider: ProviderKind,
    api_key: Option<&ApiKey>,
    key_header: KeyHeader,
    organization: Option<&str>,
    project: Option<&str>,
) -> Result<Vec<(&'static str, http::HeaderValue)>, LlmError> {
    let mut headers = Vec::new();
    if let Some(key) = api_key {
        let (name, prefix) = match key_header {
            KeyHeader::Bearer => ("authorization", "Bearer "),
            KeyHeader::ApiKey => ("api-key", ""),
        };
        headers.push((name, key.header_value(prefix, provider)?));
    }
    for (name, value) in [
        ("openai-organization", organization),
        ("openai-project", project),
    ] {
        if let Some(value) = value.and_then(|v| v.parse().ok()) {
            headers.push((name, value));
        }
    }
    Ok(headers)
}

/// Whether `model` belongs to a family that predates `max_completion_tokens`.
fn legacy_max_tokens(model: &str) -> bool {
    model.starts_with("gpt-3.5")
        || model.starts_with("gpt-35")
        || model == "gpt-4"
        || model.starts_with("gpt-4-")
}

pub(super) fn encode_body(request: &ChatRequest, server: ServerKind) -> Result<Vec<u8>, String> {
    let (max_completion_tokens, max_tokens) = match request.max_output_tokens {
        Some(max)
            if matches!(server, ServerKind::OpenAi | ServerKind::AzureOpenAi)
                && !legacy_max_tokens(&request.model) =>
        {
            (Some(max), None)
        }
        max => (None, max),
    };
    let body = out::Body {
        max_completion_tokens,
        max_tokens,
        messages: out::Messages(&request.messages),
        model: &request.model,
        response_format: match &request.response_format {
            ResponseFormat::Text => None,
            ResponseFormat::JsonObject => Some(out::ResponseFormat {
                json_schema: None,
                kind: "json_object",
            }),
            ResponseFormat::JsonSchema {
                name,
                schema,
                strict,
            } => Some(out::ResponseFormat {
                json_schema: Some(out::JsonSchema {
                    name,
                    schema,
                    strict: *strict,
                }),
                kind: "json_schema",
            }),
        },
        stop: (!request.stop.is_empty()).then_some(&*request.stop),
        stream: request.stream.then_some(true),
        stream_options: request.stream.then_some(out::StreamOptions {
            include_usage: true,
        }),
        // Widened as a `serde_json::Value` widens an `f32`, so the bytes stay the same.
        temperature: request.temperature.map(f64::from),
        tool_choice: request.tool_choice.as_ref().map(|choice| match choice {
            ToolChoice::Auto => out::ToolChoice::Mode("auto"),
            ToolChoice::None => out::ToolChoice::Mode("none"),
            ToolChoice::Required => out::ToolChoice::Mode("required"),
            ToolChoice::Tool(name) => out::ToolChoice::Function {
                function: out::Name { name },
                kind: "function",
            },
        }),
        tools: (!request.tools.is_empty()).then_some(out::Tools(&request.tools)),
        top_p: request.top_p.map(f64::from),
        user: request.user.as_deref(),
    };
    if request.extra.is_empty() {
        serde_json::to_vec(&body)
    } else {
        // Pass-through fields go in among the adapter's own, never over them.
        serde_json::to_value(&body).and_then(|mut body| {
            if let Value::Object(map) = &mut body {
                merge_extra(map, &request.extra);
            }
            serde_json::to_vec(&body)
        })
    }
    .map_err(|e| e.to_string())
}

/// The text of a message, borrowed when it is a single part.
fn joined_text(message: &Message) -> Cow<'_, str> {
    let mut texts = message.texts();
    match (texts.next(), texts.next()) {
        (None, _) => Cow::Borrowed(""),
        (Some(text), None) => Cow::Borrowed(text),
        _ => Cow::Owned(message.joined_text()),
    }
}

/// The request body, as typed structs that borrow from the [`ChatRequest`]. Fields are
/// declared in name order: the order a `serde_json::Map` writes them in, so a body with
/// pass-through fields (written through a map) and one without agree.
mod out {
    use std::borrow::Cow;

    use seawall_core::{
        ContentPart, ImageDetail, ImageSource, Message, Role, ToolCall, ToolDefinition,
    };
    use serde::ser::SerializeMap;
    use serde::{Serialize, Serializer};
    use serde_json::Value;

    #[derive(Serialize)]
    pub(super) struct Body<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) max_completion_tokens: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) max_tokens: Option<u32>,
        pub(super) messages: Messages<'a>,
        pub(super) model: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) response_format: Option<ResponseFormat<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) stop: Option<&'a [String]>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) stream: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) stream_options: Option<StreamOptions>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) temperature: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) tool_choice: Option<ToolChoice<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) tools: Option<Tools<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) top_p: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) user: Option<&'a str>,
    }

    #[derive(Serialize)]
    pub(super) struct ResponseFormat<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) json_schema: Option<JsonSchema<'a>>,
        #[serde(rename = "type")]
        pub(super) kind: &'static str,
    }

    #[derive(Serialize)]
    pub(super) struct JsonSchema<'a> {
        pub(super) name: &'a str,
        pub(super) schema: &'a Value,
        pub(super) strict: bool,
    }

    #[derive(Serialize)]
    pub(super) struct StreamOptions {
        pub(super) include_usage: bool,
    }

    #[derive(Serialize)]
    #[serde(untagged)]
    pub(super) enum ToolChoice<'a> {
        Mode(&'static str),
        Function {
            function: Name<'a>,
            #[serde(rename = "type")]
            kind: &'static str,
        },
    }

    #[derive(Serialize)]
    pub(super) struct Name<'a> {
        pub(super) name: &'a str,
    }

    pub(super) struct Tools<'a>(pub(super) &'a [ToolDefinition]);

    impl Serialize for Tools<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            #[derive(Serialize)]
            struct Tool<'a> {
                function: Function<'a>,
                #[serde(rename = "type")]
                kind: &'static str,
            }
            #[derive(Serialize)]
            struct Function<'a> {
                #[serde(skip_serializing_if = "Option::is_none")]
                description: Option<&'a str>,
                name: &'a str,
                parameters: &'a Value,
            }
            serializer.collect_seq(self.0.iter().map(|tool| Tool {
                function: Function {
                    description: tool.description.as_deref(),
                    name: &tool.name,
                    parameters: &tool.parameters,
                },
                kind: "function",
            }))
        }
    }

    pub(super) struct Messages<'a>(pub(super) &'a [Message]);

    impl Serialize for Messages<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_seq(self.0.iter().map(OutMessage))
        }
    }

    struct OutMessage<'a>(&'a Message);

    impl Serialize for OutMessage<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let message = self.0;
            let mut map = serializer.serialize_map(None)?;
            match message.role {
                Role::System | Role::Tool => {
                    map.serialize_entry("content", &super::joined_text(message))?;
                }
                Role::Assistant => {
                    let text = super::joined_text(message);
                    if text.is_empty() && !message.tool_calls.is_empty() {
                        map.serialize_entry("content", &())?;
                    } else {
                        map.serialize_entry("content", &text)?;
                    }
                }
                Role::User => {
                    let only_text = message
                        .content
                        .iter()
                        .all(|part| matches!(part, ContentPart::Text { .. }));
                    if only_text {
                        map.serialize_entry("content", &super::joined_text(message))?;
                    } else {
                        map.serialize_entry("content", &Parts(&message.content))?;
                    }
                }
            }
            if let Some(name) = &message.name {
                map.serialize_entry("name", name)?;
            }
            map.serialize_entry("role", message.role.as_str())?;
            if let Some(id) = &message.tool_call_id {
                map.serialize_entry("tool_call_id", id)?;
            }
            if !message.tool_calls.is_empty() {
                map.serialize_entry("tool_calls", &ToolCalls(&message.tool_calls))?;
            }
            map.end()
        }
    }

    struct ToolCalls<'a>(&'a [ToolCall]);

    impl Serialize for ToolCalls<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            #[derive(Serialize)]
            struct Call<'a> {
                function: CallFunction<'a>,
                id: &'a str,
                #[serde(rename = "type")]
                kind: &'static str,
            }
            #[derive(Serialize)]
            struct CallFunction<'a> {
                arguments: &'a str,
                name: &'a str,
            }
            serializer.collect_seq(self.0.iter().map(|call| Call {
                function: CallFunction {
                    arguments: &call.arguments,
                    name: &call.name,
                },
                id: &call.id,
                kind: "function",
            }))
        }
    }

    struct Parts<'a>(&'a [ContentPart]);

    impl Serialize for Parts<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            #[derive(Serialize)]
            #[serde(untagged)]
            enum Part<'a> {
                Text {
                    text: &'a str,
                    #[serde(rename = "type")]
                    kind: &'static str,
                },
                Image {
                    image_url: ImageUrl<'a>,
                    #[serde(rename = "type")]
                    kind: &'static str,
                },
            }
            #[derive(Serialize)]
            struct ImageUrl<'a> {
                #[serde(skip_serializing_if = "Option::is_none")]
                detail: Option<&'static str>,
                url: Cow<'a, str>,
            }
            serializer.collect_seq(self.0.iter().map(|part| match part {
                ContentPart::Text { text, .. } => Part::Text { text, kind: "text" },
                ContentPart::Image { source, detail, .. } => Part::Image {
                    image_url: ImageUrl {
                        detail: detail.map(|detail| match detail {
                            ImageDetail::Auto => "auto",
                            ImageDetail::Low => "low",
                            ImageDetail::High => "high",
                        }),
                        url: match source {
                            ImageSource::Url { url } => Cow::Borrowed(url.as_str()),
                            ImageSource::Base64 { media_type, data } => {
                                Cow::Owned(format!("data:{media_type};base64,{data}"))
                            }
                        },
                    },
                    kind: "image_url",
                },
            }))
        }
    }
}
