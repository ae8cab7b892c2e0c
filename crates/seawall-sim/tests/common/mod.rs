//! A raw HTTP/1.1 client, so tests see the exact bytes the simulator writes.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response as it arrived.
#[derive(Debug)]
pub struct Resp {
    /// 0 when the server closed without answering.
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// De-chunked body.
    pub body: Vec<u8>,
    /// Whether the chunked body ended with its terminating chunk (always true otherwise).
    pub complete: bool,
    /// Number of HTTP chunks (0 when not chunked): one per body write of the server.
    pub chunks: usize,
    /// Time from sending to the first byte received, and to the end.
    pub first_byte: Duration,
    pub total: Duration,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }
}

/// Sends one request on a fresh connection (`connection: close`) and reads to EOF.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let start = Instant::now();
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 16384];
    let mut first_byte = None;
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                first_byte.get_or_insert_with(|| start.elapsed());
                raw.extend_from_slice(&buf[..n]);
            }
        }
    }
    let total = start.elapsed();
    parse(&raw, first_byte.unwrap_or(total), total)
}

fn parse(raw: &[u8], first_byte: Duration, total: Duration) -> Resp {
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Resp {
            status: 0,
            headers: Vec::new(),
            body: raw.to_vec(),
            complete: false,
            chunks: 0,
            first_byte,
            total,
        };
    };
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    if !chunked {
        return Resp {
            status,
            headers,
            body: rest.to_vec(),
            complete: true,
            chunks: 0,
            first_byte,
            total,
        };
    }
    let mut body = Vec::new();
    let mut pos = 0;
    let mut complete = false;
    let mut chunks = 0;
    while let Some(eol) = rest[pos..].windows(2).position(|w| w == b"\r\n") {
        let size_line = String::from_utf8_lossy(&rest[pos..pos + eol]).into_owned();
        let Ok(size) = usize::from_str_radix(size_line.trim(), 16) else {
            break;
        };
        pos += eol + 2;
        if size == 0 {
            complete = rest[pos..].starts_with(b"\r\n");
            break;
        }
        if pos + size > rest.len() {
            body.extend_from_slice(&rest[pos..]);
            break;
        }
        body.extend_from_slice(&rest[pos..pos + size]);
        chunks += 1;
        pos += size + 2;
    }
    Resp {
        status,
        headers,
        body,
        complete,
        chunks,
        first_byte,
        total,
    }
}

pub const OAI_BODY: &str =
    r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}"#;
pub const ANT_BODY: &str =
    r#"{"model":"claude-x","max_tokens":64,"messages":[{"role":"user","content":"hello"}]}"#;
pub const GEM_BODY: &str = r#"{"contents":[{"role":"user","parts":[{"text":"hello"}]}]}"#;

pub const OAI_AUTH: (&str, &str) = ("authorization", "Bearer sk-test");
pub const JSON: (&str, &str) = ("content-type", "application/json");

pub async fn openai(addr: SocketAddr, body: &str) -> Resp {
    send(
        addr,
        "POST",
        "/openai/v1/chat/completions",
        &[OAI_AUTH, JSON],
        body,
    )
    .await
}

pub async fn anthropic(addr: SocketAddr, body: &str) -> Resp {
    send(
        addr,
        "POST",
        "/anthropic/v1/messages",
        &[
            ("x-api-key", "sk-ant"),
            ("anthropic-version", "2023-06-01"),
            JSON,
        ],
        body,
    )
    .await
}

pub async fn gemini(addr: SocketAddr, path_tail: &str, body: &str) -> Resp {
    send(
        addr,
        "POST",
        &format!("/gemini/v1beta/models/gemini-x:{path_tail}"),
        &[("x-goog-api-key", "AIza-test"), JSON],
        body,
    )
    .await
}

/// SSE `data:` payloads of an OpenAI/Gemini stream, framing checked.
pub fn data_frames(body: &str, separator: &str) -> Vec<String> {
    assert!(
        body.ends_with(separator),
        "stream does not end with {separator:?}: {body:?}"
    );
    body.split(separator)
        .filter(|f| !f.is_empty())
        .map(|f| {
            f.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("frame without `data: `: {f:?}"))
                .to_owned()
        })
        .collect()
}
