//! A faithful, fault-injecting simulator of the OpenAI, Anthropic and Gemini HTTP APIs.
//!
//! It serves each provider wire format on a loopback port so that the official SDKs and
//! seawall's own adapters behave against it as against the real service, with quotas, real
//! rate-limit headers and scripted faults.
//!
//! The simulator has not been written yet; this crate holds no code.
