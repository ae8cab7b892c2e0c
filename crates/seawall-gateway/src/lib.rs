//! An OpenAI-compatible HTTP gateway built from the seawall layers, for programs that are
//! not written in Rust.
//!
//! The gateway has not been written yet; this crate holds no code.
