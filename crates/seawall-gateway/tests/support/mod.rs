//! What the gateway tests share: the demo gateway over loopback, and a raw HTTP/1.1
//! client that shows the bytes on the wire.

#![allow(dead_code, unreachable_pub)]

pub mod openmetrics;
pub mod webhook;

use std::net::SocketAddr;
use std::time::Duration;

use seawall_gateway::{Config, Demo, GatewayBuilder, GatewayHandle};
use seawall_sim::Simulator;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// The `data:` payloads of an SSE body.
    pub fn events(&self) -> Vec<&str> {
        self.body
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .collect()
    }
}

/// One HTTP/1.1 exchange with `Connection: close`; chunked bodies are decoded.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    // Chat calls are JSON; a test that means to send something else says so.
    if method == "POST"
        && !headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
    {
        head.push_str("content-type: application/json\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(body).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    parse(&raw)
}

/// Sends a chat call with `headers` over a connection left open for the caller to read
/// from, or to drop at the moment it chooses.
pub async fn open_chat(addr: SocketAddr, body: &Value, headers: &[(&str, &str)]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let body = serde_json::to_vec(body).expect("json");
    let mut head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(&body).await.expect("write");
    stream
}

pub fn parse(raw: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(raw);
    let (head, rest) = text.split_once("\r\n\r\n").expect("a response head");
    let mut lines = head.lines();
    let status = lines.next().expect("status line")[9..12]
        .parse()
        .expect("status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v == "chunked");
    let body = if chunked {
        let mut body = String::new();
        let mut rest = rest;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if size == 0 || tail.len() < size {
                break;
            }
            body.push_str(&tail[..size]);
            rest = &tail[size + 2..];
        }
        body
    } else {
        rest.to_owned()
    };
    Reply {
        status,
        headers,
        body,
    }
}

/// A chat call with the virtual key `key` as its bearer token.
pub async fn chat_as(addr: SocketAddr, key: &str, body: &Value) -> Reply {
    let auth = format!("Bearer {key}");
    let body = serde_json::to_vec(body).unwrap();
    send(
        addr,
        "POST",
        "/v1/chat/completions",
        &[("authorization", &auth)],
        &body,
    )
    .await
}

pub async fn chat(addr: SocketAddr, body: Value) -> Reply {
    let body = serde_json::to_vec(&body).expect("json");
    send(
        addr,
        "POST",
        "/v1/chat/completions",
        &[("content-type", "application/json")],
        &body,
    )
    .await
}

pub async fn start(adjust: impl FnOnce(&mut Config)) -> (Simulator, GatewayHandle) {
    start_with(adjust, &[]).await
}

pub async fn start_with(
    adjust: impl FnOnce(&mut Config),
    env: &[(&str, &str)],
) -> (Simulator, GatewayHandle) {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    start_built(adjust, |mut b| {
        for (k, v) in env {
            b = b.env(k, v);
        }
        b
    })
    .await
}

/// The demo gateway on `threads` server threads of its own (a runtime and an upstream
/// pool each) instead of the test's runtime.
pub async fn start_threaded(
    threads: usize,
    adjust: impl FnOnce(&mut Config),
) -> (Simulator, GatewayHandle) {
    start_built(adjust, |b| b.threads(threads)).await
}

pub async fn start_built(
    adjust: impl FnOnce(&mut Config),
    builder: impl FnOnce(GatewayBuilder) -> GatewayBuilder,
) -> (Simulator, GatewayHandle) {
    let demo = Demo::start(adjust, builder).await.expect("demo");
    let handle = demo
        .gateway
        .listen("127.0.0.1:0".parse().unwrap())
        .shutdown_grace(Duration::from_secs(5))
        .serve()
        .await
        .expect("serve");
    (demo.simulator, handle)
}

pub fn hello(stream: bool) -> Value {
    json!({"model": "demo", "stream": stream, "messages": [{"role": "user", "content": "hello"}]})
}
