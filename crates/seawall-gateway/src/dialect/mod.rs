//! Request and response codecs for the API dialects the gateway speaks besides OpenAI Chat
//! Completions (which lives in [`crate::wire`]).

pub(crate) mod responses;
