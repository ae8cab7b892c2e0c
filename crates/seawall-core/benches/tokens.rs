//! Token estimation per request: the heuristic upper bound and the exact tiktoken count.
//!
//! `cargo bench -p seawall-core --bench tokens`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use seawall_core::tokens::{HeuristicEstimator, TiktokenEstimator, TokenEstimator, warm_up};
use seawall_core::{ChatRequest, Message};

fn requests() -> [(&'static str, ChatRequest); 2] {
    let short = ChatRequest::new(
        "gpt-4o",
        [
            Message::system("You answer geography questions in one word."),
            Message::user("What is the capital of France?"),
        ],
    );
    // About 4 KB of prose over 8 messages.
    let paragraph = "The quick brown fox jumps over the lazy dog while the committee \
        reviews the quarterly figures and drafts a reply to the regional office. ";
    let long = ChatRequest::new(
        "gpt-4o",
        (0..8).map(|i| {
            let text = paragraph.repeat(4);
            if i % 2 == 0 {
                Message::user(text)
            } else {
                Message::assistant(text)
            }
        }),
    );
    [("short", short), ("long_4kb", long)]
}

fn estimation(c: &mut Criterion) {
    warm_up();
    let heuristic = HeuristicEstimator::default();
    let exact = TiktokenEstimator::new();
    for (name, request) in requests() {
        c.bench_function(&format!("tokens/heuristic/{name}"), |b| {
            b.iter(|| heuristic.prompt_tokens(black_box(&request)));
        });
        c.bench_function(&format!("tokens/tiktoken/{name}"), |b| {
            b.iter(|| exact.prompt_tokens(black_box(&request)));
        });
    }
}

criterion_group!(benches, estimation);
criterion_main!(benches);
