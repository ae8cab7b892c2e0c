//! The `seawall-sim` binary: flags, config file, the URL lines on stdout.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use common::*;

#[tokio::test]
async fn prints_one_url_per_provider_and_serves_the_config() {
    let dir = std::env::temp_dir().join(format!("seawall-sim-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("sim.toml");
    std::fs::File::create(&config)
        .unwrap()
        .write_all(b"[openai]\nreply_tokens = 2\n")
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_seawall-sim"))
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut urls = Vec::new();
    for _ in 0..7 {
        let line = lines.next().unwrap().unwrap();
        let (name, url) = line.split_once(' ').unwrap();
        urls.push((name.to_owned(), url.to_owned()));
    }
    let names: Vec<&str> = urls.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "openai",
            "anthropic",
            "gemini",
            "ollama",
            "vllm",
            "llamacpp",
            "admin"
        ]
    );
    let openai_url = &urls[0].1;
    assert!(openai_url.ends_with("/openai/v1"), "{openai_url}");
    let authority = openai_url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap();
    let addr: SocketAddr = authority.parse().unwrap();
    assert_ne!(addr.port(), 0);
    let v = openai(addr, OAI_BODY).await.json();
    assert_eq!(v["usage"]["completion_tokens"], 2, "config file applied");
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_flags_exit_with_usage() {
    for args in [
        &["--listen", "not-an-address"][..],
        &["--bogus"],
        &["--config", "/no/such/file.toml"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_seawall-sim"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty());
        assert!(!out.stderr.is_empty());
    }
}
