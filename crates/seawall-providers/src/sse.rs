//! An incremental server-sent events decoder.
//!
//! Bytes go in as they arrive, in chunks of any size; events come out once their closing
//! blank line has arrived. Where the chunk boundaries fall does not matter: a line, a
//! `\r\n` pair or a multi-byte character may be split across chunks. Lines end with `\n`,
//! `\r\n` or `\r`; `:` comment lines and unknown fields are ignored; `event:` names the
//! event; several `data:` lines join with `\n` (the WHATWG rules, as the providers' own SDKs
//! apply them).
//!
//! ```
//! use seawall_providers::sse::SseDecoder;
//!
//! let mut decoder = SseDecoder::new();
//! let mut events = Vec::new();
//! decoder.feed(b"event: ping\r\nda", &mut events);
//! decoder.feed(b"ta: {}\r\n\r\n: a comment\n\ndata: [DONE]\n", &mut events);
//! decoder.feed(b"\n", &mut events);
//! assert_eq!(events.len(), 2);
//! assert_eq!(events[0].event.as_deref(), Some("ping"));
//! assert_eq!(events[0].data, "{}");
//! assert_eq!(events[1].data, "[DONE]");
//! ```

use std::fmt;

/// The largest event (all of its lines) the decoder buffers before it gives up on the stream.
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// One dispatched server-sent event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` name, if the server sent one.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The `id:` field, if any.
    pub id: Option<String>,
}

/// An event grew beyond [`MAX_EVENT_BYTES`] without a closing blank line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTooLarge;

impl fmt::Display for EventTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a server-sent event exceeded {MAX_EVENT_BYTES} bytes")
    }
}

impl std::error::Error for EventTooLarge {}

/// Decodes a byte stream into [`SseEvent`]s, whatever the chunk boundaries.
#[derive(Debug, Default)]
pub struct SseDecoder {
    /// The current, unfinished line.
    line: Vec<u8>,
    /// The last chunk ended in `\r`: a `\n` that starts the next one belongs to it.
    after_cr: bool,
    /// Whether a line was processed, to strip a leading byte-order mark from the first.
    started: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
    id: Option<String>,
    too_large: bool,
}

impl SseDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next chunk of the body and appends the events it completes to `out`.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<SseEvent>) {
        if bytes.is_empty() {
            // Nothing to learn; in particular a pending `\r` still waits for its `\n`.
            return;
        }
        if self.after_cr {
            self.after_cr = false;
            if let Some(rest) = bytes.strip_prefix(b"\n".as_slice()) {
                bytes = rest;
            }
        }
        while let Some(end) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            let terminator = bytes[end];
            if self.line.is_empty() {
                self.process_line(&bytes[..end], out);
            } else {
                self.line.extend_from_slice(&bytes[..end]);
                let line = std::mem::take(&mut self.line);
                self.process_line(&line, out);
                self.line = line;
                self.line.clear();
            }
            bytes = &bytes[end + 1..];
            if terminator == b'\r' {
                match bytes.first() {
                    Some(b'\n') => bytes = &bytes[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        self.line.extend_from_slice(bytes);
        if self.line.len() + self.data.len() > MAX_EVENT_BYTES {
            self.too_large = true;
        }
    }

    /// The body ended: processes an unterminated last line and dispatches an event whose
    /// closing blank line never came (a lenient reading: a cut in the middle of an event
    /// yields partial data, which then fails to parse).
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, out);
        }
        self.dispatch(out);
    }

    /// Whether an event outgrew [`MAX_EVENT_BYTES`]; the stream should be abandoned.
    pub fn check_size(&self) -> Result<(), EventTooLarge> {
        if self.too_large {
            Err(EventTooLarge)
        } else {
            Ok(())
        }
    }

    fn process_line(&mut self, mut line: &[u8], out: &mut Vec<SseEvent>) {
        if !self.started {
            self.started = true;
            line = line
                .strip_prefix(b"\xEF\xBB\xBF".as_slice())
                .unwrap_or(line);
        }
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
            }
            b"event" => self.event = Some(value.into_owned()),
            b"id" => self.id = Some(value.into_owned()),
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if !self.has_data {
            // An event without data is not dispatched (WHATWG); its name is dropped too.
            self.event = None;
            return;
        }
        self.has_data = false;
        out.push(SseEvent {
            event: self.event.take(),
            data: std::mem::take(&mut self.data),
            id: self.id.clone(),
        });
    }
}
