//! Reading the retry and quota hints of one response, as every adapter does on every
//! response: the headers of a recorded OpenAI success (rate-limit family included) and of
//! a response without any rate-limit header.
//!
//! `cargo bench -p seawall-core --bench hints`

use std::hint::black_box;
use std::time::SystemTime;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};
use seawall_core::hints::{quota_snapshot, retry_hints};

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, HeaderValue::from_str(value).expect("a valid value"));
    }
    map
}

fn bench(c: &mut Criterion) {
    // The header set of a recorded OpenAI chat completion.
    let openai = headers(&[
        ("date", "Thu, 21 Aug 2025 12:40:00 GMT"),
        ("content-type", "application/json"),
        ("transfer-encoding", "chunked"),
        ("connection", "keep-alive"),
        ("access-control-expose-headers", "X-Request-ID"),
        ("openai-organization", "user-abc"),
        ("openai-processing-ms", "312"),
        ("openai-project", "proj_abc"),
        ("openai-version", "2020-10-01"),
        ("x-envoy-upstream-service-time", "317"),
        ("x-ratelimit-limit-requests", "5000"),
        ("x-ratelimit-limit-tokens", "800000"),
        ("x-ratelimit-remaining-requests", "4999"),
        ("x-ratelimit-remaining-tokens", "799970"),
        ("x-ratelimit-reset-requests", "12ms"),
        ("x-ratelimit-reset-tokens", "2ms"),
        ("x-request-id", "req_abc"),
        ("strict-transport-security", "max-age=31536000"),
        ("cf-cache-status", "DYNAMIC"),
        ("server", "cloudflare"),
    ]);
    let plain = headers(&[
        ("content-type", "application/json"),
        ("content-length", "512"),
        ("date", "Thu, 21 Aug 2025 12:40:00 GMT"),
    ]);
    let now = SystemTime::now();
    for (name, map) in [("openai_20_headers", &openai), ("plain_3_headers", &plain)] {
        c.bench_function(&format!("quota_snapshot/{name}"), |b| {
            b.iter(|| black_box(quota_snapshot(black_box(map), now)));
        });
        c.bench_function(&format!("retry_hints/{name}"), |b| {
            b.iter(|| black_box(retry_hints(black_box(map), now)));
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
