use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::context::RequestContext;
use crate::provider::ProviderKind;

/// One chat request in the provider-neutral model.
///
/// Cheap to clone: the message list, tool definitions, stop sequences and pass-through fields
/// are shared (`Arc`), so retries and failover clone a request for a few reference-count
/// increments. The [`RequestContext`] travels with it and is not serialized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The model to ask for, as the caller names it. Failover maps it to each target's own
    /// model name.
    pub model: Arc<str>,
    /// The conversation, oldest first.
    pub messages: Arc<[Message]>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "slice_is_empty")]
    pub tools: Arc<[ToolDefinition]>,
    /// Whether and which tool the model must call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// The most output tokens to generate (`max_completion_tokens`, `max_tokens`,
    /// `maxOutputTokens`). Adapters that require one (Anthropic) use their default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    /// Sampling temperature, 0 to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Nucleus sampling mass, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "slice_is_empty")]
    pub stop: Arc<[String]>,
    /// Plain text, any JSON object, or JSON that follows a schema.
    #[serde(default)]
    pub response_format: ResponseFormat,
    /// Whether the response is streamed as [`StreamEvent`](crate::StreamEvent)s.
    #[serde(default)]
    pub stream: bool,
    /// The end user or tenant the request is made for (OpenAI `user`, Anthropic
    /// `metadata.user_id`); budgets and inbound limits key on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Arc<str>>,
    /// Provider-specific fields passed through to the wire body unchanged (for example
    /// `seed`, `logprobs`, `thinking` or `safetySettings`). An adapter merges them into the
    /// top level of its request body.
    #[serde(default, skip_serializing_if = "map_is_empty")]
    pub extra: Arc<Map<String, Value>>,
    /// The wire format the [`extra`](Self::extra) fields were written for: an adapter of
    /// another wire format leaves them out of its body (and names them in the call's
    /// [`Trail::dropped_fields`](crate::Trail::dropped_fields)). `None`, the default: every
    /// adapter merges them. A gateway that relays a client's unmodelled fields sets it to
    /// the client's dialect, so an Anthropic-only field never reaches OpenAI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_for: Option<ProviderKind>,
    /// Per-call context: deadline, attempt, route hint and trail.
    #[serde(skip)]
    pub context: RequestContext,
}

fn slice_is_empty<T>(items: &Arc<[T]>) -> bool {
    items.is_empty()
}

fn map_is_empty(map: &Arc<Map<String, Value>>) -> bool {
    map.is_empty()
}

impl ChatRequest {
    /// A request for `model` with `messages` and every option at its default.
    pub fn new(model: impl Into<Arc<str>>, messages: impl IntoIterator<Item = Message>) -> Self {
        Self {
            model: model.into(),
            messages: messages.into_iter().collect(),
            tools: Arc::new([]),
            tool_choice: None,
            max_output_tokens: None,
            temperature: None,
            top_p: None,
            stop: Arc::new([]),
            response_format: ResponseFormat::Text,
            stream: false,
            user: None,
            extra: Arc::default(),
            extra_for: None,
            context: RequestContext::default(),
        }
    }

    /// Sets the output token cap.
    pub fn with_max_output_tokens(mut self, max: u32) -> Self {
        self.max_output_tokens = Some(max);
        self
    }

    /// Sets the sampling temperature.
    pub fn with_temperature(mut self, temperature: f32) -> Self {
        self.temperature = Some(temperature);
        self
    }

    /// Asks for a streamed response.
    pub fn streaming(mut self) -> Self {
        self.stream = true;
        self
    }

    /// Sets the tools the model may call.
    pub fn with_tools(mut self, tools: impl IntoIterator<Item = ToolDefinition>) -> Self {
        self.tools = tools.into_iter().collect();
        self
    }

    /// Sets the tool choice.
    pub fn with_tool_choice(mut self, choice: ToolChoice) -> Self {
        self.tool_choice = Some(choice);
        self
    }

    /// Sets the response format.
    pub fn with_response_format(mut self, format: ResponseFormat) -> Self {
        self.response_format = format;
        self
    }

    /// Sets the end user or tenant id.
    pub fn with_user(mut self, user: impl Into<Arc<str>>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Adds a provider-specific field passed through to the wire body.
    pub fn with_extra(mut self, key: impl Into<String>, value: Value) -> Self {
        Arc::make_mut(&mut self.extra).insert(key.into(), value);
        self
    }

    /// Marks the [`extra`](Self::extra) fields as written for the `wire` format only.
    pub fn with_extra_for(mut self, wire: ProviderKind) -> Self {
        self.extra_for = Some(wire);
        self
    }

    /// Whether an adapter speaking `wire` merges the [`extra`](Self::extra) fields.
    pub fn extra_applies_to(&self, wire: ProviderKind) -> bool {
        self.extra_for
            .is_none_or(|written_for| written_for.same_wire(wire))
    }

    /// Checks what every provider would reject, so that nothing is sent upstream for a
    /// request already known to be invalid.
    ///
    /// # Errors
    ///
    /// The first problem found, naming the field.
    pub fn validate(&self) -> Result<(), InvalidRequest> {
        let fail = |field: &str, problem: String| {
            Err(InvalidRequest {
                field: field.to_owned(),
                problem,
            })
        };
        if self.model.trim().is_empty() {
            return fail("model", "must not be empty".into());
        }
        if self.messages.is_empty() {
            return fail("messages", "must hold at least one message".into());
        }
        if let Some(max) = self.max_output_tokens
            && max == 0
        {
            return fail("max_output_tokens", "must be at least 1".into());
        }
        if let Some(t) = self.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return fail("temperature", format!("must be between 0 and 2, got {t}"));
        }
        if let Some(p) = self.top_p
            && !(0.0..=1.0).contains(&p)
        {
            return fail("top_p", format!("must be between 0 and 1, got {p}"));
        }
        for (i, message) in self.messages.iter().enumerate() {
            if message.role == Role::Tool && message.tool_call_id.is_none() {
                return fail(
                    &format!("messages[{i}].tool_call_id"),
                    "a tool message must name the tool call it answers".into(),
                );
            }
            if message.role != Role::Assistant && !message.tool_calls.is_empty() {
                return fail(
                    &format!("messages[{i}].tool_calls"),
                    "only assistant messages carry tool calls".into(),
                );
            }
            if message.content.is_empty() && message.tool_calls.is_empty() {
                return fail(
                    &format!("messages[{i}].content"),
                    "must hold text, an image or a tool call".into(),
                );
            }
        }
        for (i, tool) in self.tools.iter().enumerate() {
            if tool.name.trim().is_empty() {
                return fail(&format!("tools[{i}].name"), "must not be empty".into());
            }
        }
        if let Some(ToolChoice::Tool(name)) = &self.tool_choice
            && !self.tools.iter().any(|tool| &tool.name == name)
        {
            return fail(
                "tool_choice",
                format!("names the tool `{name}`, which is not among the tools"),
            );
        }
        Ok(())
    }

    /// All text of the conversation, for estimators and cache keys.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.messages.iter().flat_map(Message::texts)
    }
}

/// A request that no provider would accept, found before anything was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRequest {
    /// The field at fault, such as `messages[2].tool_call_id`.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

impl fmt::Display for InvalidRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid request: `{}` {}", self.field, self.problem)
    }
}

impl std::error::Error for InvalidRequest {}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Instructions (OpenAI `system`/`developer`, Anthropic top-level `system`, Gemini
    /// `systemInstruction`).
    System,
    /// The user.
    User,
    /// The model.
    Assistant,
    /// The result of a tool call.
    Tool,
}

impl Role {
    /// The OpenAI-style name of the role.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User => "user",
            Self::Assistant => "assistant",
            Self::Tool => "tool",
        }
    }
}

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Text and image parts, in order.
    #[serde(default)]
    pub content: Vec<ContentPart>,
    /// An optional participant name (OpenAI `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Tool calls the assistant made in this message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a [`Role::Tool`] message: the id of the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl Message {
    /// A message of `role` holding one text part.
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Self {
            role,
            content: vec![ContentPart::text(text)],
            name: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    /// A system message.
    pub fn system(text: impl Into<String>) -> Self {
        Self::text(Role::System, text)
    }

    /// A user message.
    pub fn user(text: impl Into<String>) -> Self {
        Self::text(Role::User, text)
    }

    /// An assistant message.
    pub fn assistant(text: impl Into<String>) -> Self {
        Self::text(Role::Assistant, text)
    }

    /// An assistant message that calls tools.
    pub fn assistant_tool_calls(calls: impl IntoIterator<Item = ToolCall>) -> Self {
        Self {
            role: Role::Assistant,
            content: Vec::new(),
            name: None,
            tool_calls: calls.into_iter().collect(),
            tool_call_id: None,
        }
    }

    /// The result of the tool call `call_id`.
    pub fn tool_result(call_id: impl Into<String>, result: impl Into<String>) -> Self {
        Self {
            tool_call_id: Some(call_id.into()),
            ..Self::text(Role::Tool, result)
        }
    }

    /// Sets the participant name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Marks the last content part as a prompt-cache breakpoint (Anthropic `cache_control`).
    pub fn with_cache_control(mut self, cache: CacheControl) -> Self {
        if let Some(part) = self.content.last_mut() {
            *part.cache_control_mut() = Some(cache);
        }
        self
    }

    /// The text parts, in order.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.content.iter().filter_map(|part| match part {
            ContentPart::Text { text, .. } => Some(text.as_str()),
            ContentPart::Image { .. } => None,
        })
    }

    /// The text parts joined.
    pub fn joined_text(&self) -> String {
        self.texts().collect()
    }
}

/// One part of a message's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    /// Text.
    Text {
        /// The text.
        text: String,
        /// A prompt-cache breakpoint after this part.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
    /// An image.
    Image {
        /// Where the image comes from.
        source: ImageSource,
        /// The detail level to process it at (OpenAI).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<ImageDetail>,
        /// A prompt-cache breakpoint after this part.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
}

impl ContentPart {
    /// A text part.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text {
            text: text.into(),
            cache_control: None,
        }
    }

    /// An image part from a URL.
    pub fn image_url(url: impl Into<String>) -> Self {
        Self::Image {
            source: ImageSource::Url { url: url.into() },
            detail: None,
            cache_control: None,
        }
    }

    /// The part's prompt-cache marker.
    pub fn cache_control(&self) -> Option<&CacheControl> {
        match self {
            Self::Text { cache_control, .. } | Self::Image { cache_control, .. } => {
                cache_control.as_ref()
            }
        }
    }

    fn cache_control_mut(&mut self) -> &mut Option<CacheControl> {
        match self {
            Self::Text { cache_control, .. } | Self::Image { cache_control, .. } => cache_control,
        }
    }
}

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ImageSource {
    /// An `https:` or `data:` URL.
    Url {
        /// The URL.
        url: String,
    },
    /// Inline bytes, base64-encoded.
    Base64 {
        /// The MIME type, such as `image/png`.
        media_type: String,
        /// The base64 data.
        data: String,
    },
}

impl ImageSource {
    /// The image's MIME type and base64 data when they travel in the request: inline
    /// bytes, or a `data:<type>;base64,<data>` URL (what OpenAI's SDKs send for a local
    /// file). `None` for a URL the provider fetches.
    pub fn inline(&self) -> Option<(&str, &str)> {
        match self {
            Self::Base64 { media_type, data } => Some((media_type, data)),
            Self::Url { url } => {
                let rest = url.strip_prefix("data:")?;
                let (header, data) = rest.split_once(',')?;
                let media_type = header.strip_suffix(";base64")?;
                Some((media_type, data))
            }
        }
    }

    /// Whether this is a `data:` URL that is not base64 (percent-encoded text, such as an
    /// SVG): only OpenAI takes those; Anthropic and Gemini take inline images as base64.
    pub fn is_plain_data_url(&self) -> bool {
        matches!(self, Self::Url { url } if url.starts_with("data:")) && self.inline().is_none()
    }
}

/// The detail level an image is processed at (OpenAI `detail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageDetail {
    /// Let the provider choose.
    Auto,
    /// Low detail, fewer tokens.
    Low,
    /// High detail.
    High,
}

/// A prompt-cache breakpoint (Anthropic `cache_control`), carried through to providers
/// that support it and ignored by the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheControl {
    /// The cache type; Anthropic knows `ephemeral`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The time to live, such as `5m` or `1h`, when not the provider's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

impl CacheControl {
    /// An `ephemeral` breakpoint with the provider's default time to live.
    pub fn ephemeral() -> Self {
        Self {
            kind: "ephemeral".into(),
            ttl: None,
        }
    }
}

/// A tool call made by the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's id of the call, echoed back in the tool result.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments as JSON text, exactly as the model produced them.
    pub arguments: String,
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDefinition {
    /// Its name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON schema of its arguments.
    pub parameters: Value,
    /// A prompt-cache breakpoint after the tool definitions (Anthropic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
}

impl ToolDefinition {
    /// A tool with a name, a description and a JSON schema for its arguments.
    pub fn new(name: impl Into<String>, description: impl Into<String>, parameters: Value) -> Self {
        Self {
            name: name.into(),
            description: Some(description.into()),
            parameters,
            cache_control: None,
        }
    }
}

/// Whether and which tool the model must call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// The model must not call a tool.
    None,
    /// The model must call some tool.
    Required,
    /// The model must call this tool.
    Tool(String),
}

/// The shape of the response text.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Free text.
    #[default]
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON that follows a schema.
    JsonSchema {
        /// The schema's name.
        name: String,
        /// The JSON schema.
        schema: Value,
        /// Whether the provider must follow the schema exactly.
        #[serde(default)]
        strict: bool,
    },
}
