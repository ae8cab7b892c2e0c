//! Deterministic replies and the simulator's token-counting rule.
//!
//! The reply text is a function of the seed and the conversation only: the same request always
//! produces the same text, on every provider. A request that ends with an assistant message
//! (a prefill `P`) is answered with the continuation: the full reply for the conversation
//! without `P`, minus its first `P.len()` bytes when `P` is a prefix of it. A request that
//! ends with an assistant message `A` and then a user message asking to continue (it
//! contains "continue") is answered as a model asked to finish its cut answer does: the
//! rest of the reply `A` began, after repeating `A`'s last word (or the part of a word `A`
//! ends in), as models often do; models that refuse a prefill are continued this way.
//!
//! Token rule (documented for tests): a text of `n` characters counts `ceil(n / 4)` tokens;
//! each message adds 3 tokens of framing, the system prompt counts as one message, and every
//! prompt adds 3 tokens of reply priming. Each reply piece (one word with its leading space)
//! is one completion token.

use crate::config::ScriptedReply;

/// Words the replies are made of; short, lowercase ASCII so that byte and char offsets agree.
const WORDS: &[&str] = &[
    "the", "tide", "rises", "over", "a", "quiet", "harbor", "while", "gulls", "circle", "above",
    "stone", "walls", "that", "hold", "back", "grey", "water", "and", "boats", "rest", "in",
    "calm", "light", "wind", "turns", "sails", "toward", "open", "sea", "as", "waves", "break",
    "on", "old", "piers", "near", "lanterns", "glow", "softly", "through", "evening", "fog",
    "keepers", "watch", "ships", "return", "home", "before", "night",
];

/// Longest reply, whatever the configuration asks (keeps a typo from exhausting memory).
pub(crate) const MAX_REPLY_TOKENS: u32 = 100_000;

/// FNV-1a, 64 bit: stable across platforms and releases (unlike `DefaultHasher`).
pub(crate) fn fnv1a(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// SplitMix64 step: a tiny, well-mixed deterministic generator.
pub(crate) fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Tokens in a text under the simulator's rule: `ceil(chars / 4)`.
pub(crate) fn text_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// A conversation reduced to what every provider shares.
#[derive(Debug, Default, Clone)]
pub(crate) struct Prompt {
    /// System prompt text, if any.
    pub(crate) system: Option<String>,
    /// `(role, text)` with roles normalized to `user`, `assistant`, `tool`.
    pub(crate) messages: Vec<(String, String)>,
    /// Tools offered: `(name, JSON schema of the parameters)`.
    pub(crate) tools: Vec<(String, serde_json::Value)>,
    /// Forced tool choice: `Some(None)` = any tool, `Some(Some(name))` = that tool.
    pub(crate) forced_tool: Option<Option<String>>,
    /// Tool use disabled by the request (`tool_choice: none`).
    pub(crate) tools_disabled: bool,
}

impl Prompt {
    /// Prompt tokens under the documented rule.
    pub(crate) fn prompt_tokens(&self) -> u64 {
        let system = self.system.as_deref().map_or(0, |s| 3 + text_tokens(s));
        let messages: u64 = self.messages.iter().map(|(_, t)| 3 + text_tokens(t)).sum();
        system + messages + 3
    }

    /// The trailing assistant text, when the conversation ends with an assistant message.
    pub(crate) fn prefill(&self) -> Option<&str> {
        match self.messages.last() {
            Some((role, text)) if role == "assistant" => Some(text),
            _ => None,
        }
    }

    /// The cut answer a trailing user message asks to continue: the assistant message
    /// before a last user message that contains "continue".
    pub(crate) fn continued(&self) -> Option<&str> {
        let [.., (before, answer), (last, ask)] = self.messages.as_slice() else {
            return None;
        };
        (before == "assistant" && last == "user" && ask.to_ascii_lowercase().contains("continue"))
            .then_some(answer.as_str())
    }

    /// Hash of the conversation without a trailing prefill, or without the cut answer and
    /// the request to continue it.
    fn content_hash(&self, seed: u64) -> u64 {
        let mut h = fnv1a(seed, b"seawall-sim");
        let end = self.messages.len()
            - if self.continued().is_some() {
                2
            } else {
                usize::from(self.prefill().is_some())
            };
        if let Some(system) = &self.system {
            h = fnv1a(h, b"system\0");
            h = fnv1a(h, system.as_bytes());
        }
        for (role, text) in &self.messages[..end] {
            h = fnv1a(h, role.as_bytes());
            h = fnv1a(h, b"\0");
            h = fnv1a(h, text.as_bytes());
            h = fnv1a(h, b"\0");
        }
        h
    }
}

/// Why a reply ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finish {
    /// Natural end.
    Stop,
    /// The request's output cap cut the reply.
    Length,
    /// The reply is a tool call.
    ToolCall,
    /// A safety system stopped the reply (a content-filter fault).
    ContentFilter,
}

/// What the model "says".
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    /// Text pieces, one token each, in order; concatenated they are the reply text.
    pub(crate) pieces: Vec<String>,
    /// A tool call instead of text: `(call id, tool name, arguments JSON)`.
    pub(crate) tool_call: Option<(String, String, String)>,
    /// Why it ended.
    pub(crate) finish: Finish,
    /// Prompt tokens of the request.
    pub(crate) prompt_tokens: u64,
    /// Completion tokens (pieces, or argument fragments of a tool call).
    pub(crate) completion_tokens: u64,
}

impl Reply {
    /// The full reply text.
    pub(crate) fn text(&self) -> String {
        self.pieces.concat()
    }
}

/// The full deterministic reply text for a conversation hash, as pieces.
fn full_pieces(hash: u64, len: usize) -> Vec<String> {
    let mut state = hash;
    let mut pieces = Vec::with_capacity(len);
    for i in 0..len {
        let word = WORDS[(splitmix(&mut state) % WORDS.len() as u64) as usize];
        let mut piece = String::with_capacity(word.len() + 2);
        if i == 0 {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                piece.push(first.to_ascii_uppercase());
                piece.push_str(chars.as_str());
            }
        } else {
            piece.push(' ');
            piece.push_str(word);
        }
        if i + 1 == len {
            piece.push('.');
        }
        pieces.push(piece);
    }
    pieces
}

/// Builds the reply for a prompt.
///
/// `reply_tokens` is the configured length; `max_tokens` the request's cap.
pub(crate) fn generate(
    prompt: &Prompt,
    seed: u64,
    reply_tokens: u32,
    max_tokens: Option<u64>,
    scripted: &[ScriptedReply],
) -> Reply {
    let hash = prompt.content_hash(seed);
    let prompt_tokens = prompt.prompt_tokens();
    let last_is_tool_result = prompt.messages.last().is_some_and(|(r, _)| r == "tool");
    if !prompt.tools.is_empty() && !prompt.tools_disabled && !last_is_tool_result {
        let chosen = match &prompt.forced_tool {
            Some(Some(name)) => prompt.tools.iter().find(|(n, _)| n == name),
            _ => prompt.tools.first(),
        };
        if let Some((name, schema)) = chosen {
            let args = arguments_for(schema, hash);
            let completion_tokens = text_tokens(&args).max(1);
            return Reply {
                pieces: Vec::new(),
                tool_call: Some((format!("call_{hash:016x}"), name.clone(), args)),
                finish: Finish::ToolCall,
                prompt_tokens,
                completion_tokens,
            };
        }
    }
    let full = match scripted_text(prompt, scripted) {
        Some(text) => scripted_pieces(text),
        None => full_pieces(hash, reply_tokens.clamp(1, MAX_REPLY_TOKENS) as usize),
    };
    let mut pieces = match (prompt.prefill(), prompt.continued()) {
        (Some(prefill), _) if !prefill.is_empty() => continue_after(&full, prefill),
        (_, Some(cut)) if !cut.is_empty() => continue_repeating(&full, cut, hash),
        _ => full,
    };
    let mut finish = Finish::Stop;
    if let Some(cap) = max_tokens {
        let cap = usize::try_from(cap).unwrap_or(usize::MAX);
        if pieces.len() > cap {
            pieces.truncate(cap);
            finish = Finish::Length;
        }
    }
    Reply {
        completion_tokens: pieces.len() as u64,
        pieces,
        tool_call: None,
        finish,
        prompt_tokens,
    }
}

/// The text of the first scripted reply whose phrase is in the last user message.
fn scripted_text<'a>(prompt: &Prompt, scripted: &'a [ScriptedReply]) -> Option<&'a str> {
    let (_, last_user) = prompt
        .messages
        .iter()
        .rev()
        .find(|(role, _)| role == "user")?;
    scripted
        .iter()
        .find(|reply| last_user.contains(&reply.when_prompt_contains))
        .map(|reply| reply.text.as_str())
}

/// A scripted text as pieces: words, each after the first with its leading space.
fn scripted_pieces(text: &str) -> Vec<String> {
    let mut pieces: Vec<String> = Vec::new();
    for (i, word) in text.split(' ').filter(|w| !w.is_empty()).enumerate() {
        pieces.push(if i == 0 {
            word.to_owned()
        } else {
            format!(" {word}")
        });
    }
    if pieces.is_empty() {
        pieces.push(String::new());
    }
    pieces
}

/// The pieces that follow `prefill` in `full`; the whole reply if `prefill` is not a prefix.
fn continue_after(full: &[String], prefill: &str) -> Vec<String> {
    let text: String = full.concat();
    if !text.starts_with(prefill) {
        return full.to_vec();
    }
    let mut offset = 0;
    let mut out = Vec::new();
    for piece in full {
        let end = offset + piece.len();
        if end <= prefill.len() {
            offset = end;
            continue;
        }
        let start_in_piece = prefill.len().saturating_sub(offset);
        let rest = &piece[start_in_piece..];
        if !rest.is_empty() {
            out.push(rest.to_owned());
        }
        offset = end;
    }
    out
}

/// The pieces that follow `cut` in `full`, led by the word (or the part of a word) `cut`
/// ends in, repeated. A `cut` that is not how this reply begins (another model's answer)
/// is continued all the same, as a model continues any text it is asked to: with words of
/// its own, derived from `cut`.
fn continue_repeating(full: &[String], cut: &str, hash: u64) -> Vec<String> {
    let text: String = full.concat();
    let mut rest = if text.starts_with(cut) {
        continue_after(full, cut)
    } else {
        let mut own = full_pieces(fnv1a(hash, cut.as_bytes()), full.len().max(2));
        if let Some(first) = own.first_mut() {
            *first = format!(" {}", first.to_ascii_lowercase());
        }
        own
    };
    let word_start = cut.rfind(' ').unwrap_or(0);
    let repeat = &cut[word_start..];
    if !repeat.is_empty() {
        rest.insert(0, repeat.to_owned());
    }
    rest
}

/// Deterministic arguments that satisfy the simple parts of a JSON schema.
fn arguments_for(schema: &serde_json::Value, hash: u64) -> String {
    let mut state = hash;
    let mut args = serde_json::Map::new();
    if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
        for (name, prop) in props {
            let value = match prop.get("type").and_then(|t| t.as_str()) {
                Some("integer") => serde_json::json!(splitmix(&mut state) % 100),
                Some("number") => serde_json::json!((splitmix(&mut state) % 1000) as f64 / 10.0),
                Some("boolean") => serde_json::json!(splitmix(&mut state) % 2 == 0),
                Some("array") => serde_json::json!([]),
                Some("object") => serde_json::json!({}),
                _ => match prop.get("enum").and_then(|e| e.as_array()) {
                    Some(options) if !options.is_empty() => {
                        options[(splitmix(&mut state) % options.len() as u64) as usize].clone()
                    }
                    _ => serde_json::json!(
                        WORDS[(splitmix(&mut state) % WORDS.len() as u64) as usize]
                    ),
                },
            };
            args.insert(name.clone(), value);
        }
    }
    serde_json::Value::Object(args).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(messages: &[(&str, &str)]) -> Prompt {
        Prompt {
            messages: messages
                .iter()
                .map(|(r, t)| ((*r).to_owned(), (*t).to_owned()))
                .collect(),
            ..Prompt::default()
        }
    }

    #[test]
    fn same_conversation_same_reply_other_seed_other_reply() {
        let p = prompt(&[("user", "hello there")]);
        let a = generate(&p, 7, 12, None, &[]);
        let b = generate(&p, 7, 12, None, &[]);
        let c = generate(&p, 8, 12, None, &[]);
        assert_eq!(a.text(), b.text());
        assert_ne!(a.text(), c.text());
        assert_eq!(a.pieces.len(), 12);
        assert!(a.text().ends_with('.'));
        assert_eq!(a.finish, Finish::Stop);
    }

    #[test]
    fn a_request_to_continue_gets_the_rest_after_a_repeat_of_the_last_word() {
        let mut prompt = Prompt::default();
        prompt.messages.push(("user".into(), "tell me".into()));
        let full = generate(&prompt, 7, 12, None, &[]).text();
        let cut_at = full[..full.len() / 2].rfind(' ').unwrap() + 3;
        let cut = &full[..cut_at];
        prompt.messages.push(("assistant".into(), cut.into()));
        prompt.messages.push((
            "user".into(),
            "Your answer was cut off. Continue it.".into(),
        ));
        let rest = generate(&prompt, 7, 12, None, &[]).text();
        let repeated = &cut[cut.rfind(' ').unwrap()..];
        assert_eq!(repeated.len(), 3, "a space and two letters of the cut word");
        assert_eq!(rest, format!("{repeated}{}", &full[cut_at..]));
        // Another model's cut answer is continued too, with words of this one.
        prompt.messages[1].1 = "Whales sing bel".into();
        let other = generate(&prompt, 7, 12, None, &[]).text();
        assert!(other.starts_with(" bel "), "{other}");
        prompt.messages[1].1 = cut.into();
        // Not a request to continue: a fresh reply.
        prompt.messages.last_mut().unwrap().1 = "Thanks.".into();
        assert!(
            !generate(&prompt, 7, 12, None, &[])
                .text()
                .starts_with(repeated)
        );
    }

    #[test]
    fn prefill_gets_the_suffix_of_the_full_reply() {
        let p = prompt(&[("user", "tell me")]);
        let full = generate(&p, 1, 10, None, &[]).text();
        for cut in [1, 5, 9, full.len() - 1] {
            let prefill = &full[..cut];
            let p2 = prompt(&[("user", "tell me"), ("assistant", prefill)]);
            let rest = generate(&p2, 1, 10, None, &[]).text();
            assert_eq!(format!("{prefill}{rest}"), full, "cut at {cut}");
        }
        let p3 = prompt(&[("user", "tell me"), ("assistant", "Something else")]);
        assert_eq!(generate(&p3, 1, 10, None, &[]).text(), full);
    }

    #[test]
    fn max_tokens_caps_the_reply() {
        let p = prompt(&[("user", "x")]);
        let r = generate(&p, 1, 10, Some(3), &[]);
        assert_eq!(r.pieces.len(), 3);
        assert_eq!(r.completion_tokens, 3);
        assert_eq!(r.finish, Finish::Length);
    }

    #[test]
    fn scripted_reply_replaces_the_text_of_matching_prompts() {
        let scripted = [ScriptedReply {
            when_prompt_contains: "capital of France".to_owned(),
            text: "Paris, of course.".to_owned(),
        }];
        let p = prompt(&[("user", "What is the capital of France?")]);
        let r = generate(&p, 1, 10, None, &scripted);
        assert_eq!(r.text(), "Paris, of course.");
        assert_eq!(r.completion_tokens, 3);
        let other = prompt(&[("user", "What is the capital of Spain?")]);
        assert_eq!(
            generate(&other, 1, 10, None, &scripted).text(),
            generate(&other, 1, 10, None, &[]).text()
        );
        let capped = generate(&p, 1, 10, Some(1), &scripted);
        assert_eq!(capped.text(), "Paris,");
    }

    #[test]
    fn token_rule() {
        let p = prompt(&[("user", "hello")]);
        // 3 framing + ceil(5/4)=2 + 3 priming
        assert_eq!(p.prompt_tokens(), 8);
    }
}
