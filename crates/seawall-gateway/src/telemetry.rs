//! OTLP trace export (`[telemetry]`): the gateway's request spans and the layers' call and
//! attempt spans (OpenTelemetry GenAI attribute names), sent to a collector over OTLP/HTTP
//! with protobuf.
//!
//! Off unless `otlp_endpoint` is set: then nothing here is built, no thread is started and
//! the gateway creates no request span. On, spans end into a bounded queue that a batching
//! thread drains every few seconds (a full queue drops spans, a request never waits), and
//! [`Telemetry::shutdown`] sends what is left. A request span continues the caller's W3C
//! trace (`traceparent`, `tracestate`), and each attempt's `traceparent` upstream names the
//! attempt's span, so a provider that traces joins the same trace.
//!
//! ```no_run
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use seawall_gateway::Config;
//! use seawall_gateway::telemetry::Telemetry;
//!
//! let config = Config::from_toml(r#"
//!     [telemetry]
//!     otlp_endpoint = "http://127.0.0.1:4318"
//! "#)?;
//! let telemetry = Telemetry::from_config(&config.telemetry, &|name| std::env::var(name).ok())?;
//! let _log = seawall_gateway::access::init_from_env_with(telemetry.as_ref());
//! // ... serve, then on the way out:
//! if let Some(telemetry) = telemetry {
//!     telemetry.shutdown();
//! }
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_http::{HeaderExtractor, HeaderInjector, HttpClient, HttpError};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::registry::LookupSpan;

use crate::config::{ConfigError, TelemetryConfig, problem};

/// The target of the gateway's request spans.
pub const SPAN_TARGET: &str = "seawall_gateway::http";

/// The `service.name` when the config names none.
pub const DEFAULT_SERVICE_NAME: &str = "seawall-gateway";

/// How long one export may take, response included.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The most spans waiting for export; more are dropped (a request never waits).
const MAX_QUEUE: usize = 8_192;

/// The most spans in one export request.
const MAX_BATCH: usize = 512;

/// Checks `[telemetry]`: the endpoint's URL, the ratio, the header names and values, and
/// that every `headers_env` variable is set.
pub(crate) fn validate(
    config: &TelemetryConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    let Some(endpoint) = &config.otlp_endpoint else {
        return Ok(());
    };
    traces_url(endpoint)?;
    if let Some(ratio) = config.sample_ratio
        && !(0.0..=1.0).contains(&ratio)
    {
        return Err(problem(
            "telemetry.sample_ratio",
            format!("must be from 0 to 1 (found {ratio})"),
        ));
    }
    if config.service_name.as_deref().is_some_and(str::is_empty) {
        return Err(problem("telemetry.service_name", "must not be empty"));
    }
    headers(config, env).map(drop)
}

/// The traces URL for `endpoint`: `http(s)://host[:port]` gets `/v1/traces`.
fn traces_url(endpoint: &str) -> Result<String, ConfigError> {
    let bad = |why: String| problem("telemetry.otlp_endpoint", why);
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|e| bad(format!("{endpoint:?} is not a URL: {e}")))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => {
            return Err(bad(format!(
                "{endpoint:?} must start with http:// or https://"
            )));
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad(format!("{endpoint:?} names no host")));
    }
    if uri.query().is_some() {
        return Err(bad(format!("{endpoint:?} must not have a query")));
    }
    Ok(match uri.path() {
        "" | "/" => format!("{}://{}/v1/traces", uri.scheme_str().unwrap_or("http"), {
            uri.authority().map_or("", |a| a.as_str())
        }),
        _ => endpoint.to_owned(),
    })
}

/// The export headers: `headers`, then `headers_env` read from the environment.
fn headers(
    config: &TelemetryConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<HashMap<String, String>, ConfigError> {
    let mut out = HashMap::new();
    let literal = config
        .headers
        .iter()
        .map(|(name, value)| (name, Some(value.clone()), "telemetry.headers"));
    let from_env = config.headers_env.iter().map(|(name, variable)| {
        (
            name,
            env(variable).filter(|v| !v.is_empty()),
            "telemetry.headers_env",
        )
    });
    for (name, value, section) in literal.chain(from_env) {
        let key = format!("{section}.{name:?}");
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(problem(key, "is not a valid header name"));
        }
        let Some(value) = value else {
            let variable = &config.headers_env[name];
            return Err(problem(
                key,
                format!("the environment variable {variable:?} is not set"),
            ));
        };
        // The value is never named: it may be a credential.
        if http::HeaderValue::from_str(&value).is_err() {
            return Err(problem(key, "the value is not a valid header value"));
        }
        if out.insert(name.to_ascii_lowercase(), value).is_some() {
            return Err(problem(key, "the header is set twice"));
        }
    }
    Ok(out)
}

/// The trace exporter: a tracer provider with a batching span processor on its own thread.
/// Dropping it without [`shutdown`](Self::shutdown) also flushes, less visibly.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

impl Telemetry {
    /// The exporter `config` describes, or `None` (nothing built, no thread) when it sets no
    /// `otlp_endpoint`. `env` looks up the `headers_env` variables.
    ///
    /// # Errors
    ///
    /// A config error as [`Config::validate`](crate::Config::validate) reports it, or the
    /// exporter's own refusal.
    pub fn from_config(
        config: &TelemetryConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, ConfigError> {
        let Some(endpoint) = &config.otlp_endpoint else {
            return Ok(None);
        };
        validate(config, env)?;
        Self::build(config, &traces_url(endpoint)?, headers(config, env)?).map(Some)
    }

    fn build(
        config: &TelemetryConfig,
        url: &str,
        headers: HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let client = Upstream::new().map_err(|e| problem("telemetry", e.to_string()))?;
        let exporter = SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url)
            .with_timeout(EXPORT_TIMEOUT)
            .with_headers(headers)
            .with_http_client(client)
            .build()
            .map_err(|e| problem("telemetry", e.to_string()))?;
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(MAX_QUEUE)
            .with_max_export_batch_size(MAX_BATCH);
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(batch.build())
            .build();
        let ratio = config.sample_ratio.unwrap_or(1.0);
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                ratio,
            ))))
            .with_resource(
                Resource::builder_empty()
                    .with_service_name(
                        config
                            .service_name
                            .clone()
                            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned()),
                    )
                    .build(),
            )
            .build();
        Ok(Self { provider })
    }

    /// The layer that turns the gateway's request spans and the layers' spans (targets
    /// `seawall_gateway::http` and `seawall::*`, level `info` and above) into exported spans;
    /// it has its own filter, so `RUST_LOG` changes only the log lines.
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("seawall-gateway"))
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_level(false)
            .with_target(false)
            .with_context_activation(false)
            .with_filter(
                Targets::new()
                    .with_target(SPAN_TARGET, LevelFilter::INFO)
                    // A prefix: `seawall::` and not `seawall`, which would take in
                    // `seawall_gateway::access` and the other crates too.
                    .with_target("seawall::", LevelFilter::INFO),
            )
    }

    /// Sends the spans still queued and stops the export thread. Blocks until the last
    /// export ends (at most its timeout): call it outside an async task
    /// (`tokio::task::spawn_blocking`).
    pub fn shutdown(self) {
        let _ = self.provider.shutdown();
    }
}

/// A chat call's server span, continuing the caller's trace when its `traceparent` is
/// valid. The virtual key's name and the status are recorded on it later.
pub(crate) fn server_span(headers: &http::HeaderMap) -> tracing::Span {
    let span = tracing::info_span!(
        target: SPAN_TARGET,
        "POST /v1/chat/completions",
        "otel.kind" = "server",
        "http.request.method" = "POST",
        "http.route" = "/v1/chat/completions",
        "url.path" = "/v1/chat/completions",
        "http.response.status_code" = tracing::field::Empty,
        "otel.status_code" = tracing::field::Empty,
        "error.type" = tracing::field::Empty,
        "seawall.key.name" = tracing::field::Empty,
    );
    if headers.contains_key("traceparent") {
        let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
        if parent.span().span_context().is_valid() {
            // Fails only when the span is disabled: then there is nothing to parent.
            let _ = span.set_parent(parent);
        }
    }
    span
}

/// Records the reply's status on a server span (5xx marks it failed).
pub(crate) fn record_status(span: &tracing::Span, status: u16) {
    // Signed: an unsigned field reaches the exporter as text.
    span.record("http.response.status_code", i64::from(status));
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", tracing::field::display(status));
    }
}

/// Puts the current span's context (the attempt's, while a target's call is made) on an
/// upstream request as its `traceparent` (and `tracestate`), in place of the caller's.
pub(crate) fn inject_current(headers: &mut http::HeaderMap) {
    let context = tracing::Span::current().context();
    if context.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
    }
}

/// The exporter's HTTP client: the adapters' hyper client (HTTP and HTTPS), driven by a
/// single-threaded runtime of its own on the export thread, which is not a tokio thread.
/// Built on the first export and dropped with the exporter, on that thread.
struct Upstream {
    client: seawall_providers::http::HttpClient,
    runtime: OnceLock<tokio::runtime::Runtime>,
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream").finish_non_exhaustive()
    }
}

impl Upstream {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            // One connection per export (every few seconds): none is kept idle between
            // exports, when nothing drives this runtime.
            client: seawall_providers::http::HttpClientConfig {
                pool_max_idle_per_host: 0,
                ..Default::default()
            }
            .build()?,
            runtime: OnceLock::new(),
        })
    }

    fn runtime(&self) -> Result<&tokio::runtime::Runtime, HttpError> {
        if let Some(runtime) = self.runtime.get() {
            return Ok(runtime);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(self.runtime.get_or_init(|| runtime))
    }
}

#[async_trait::async_trait]
impl HttpClient for Upstream {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, HttpError> {
        // The batch processor calls this on its own thread, outside any runtime; a call
        // from inside one would block that runtime's thread, so it is refused.
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err("the OTLP export ran inside a tokio runtime".into());
        }
        let (parts, body) = request.into_parts();
        let request = http::Request::from_parts(parts, Full::new(body));
        let client = self.client.clone();
        self.runtime()?.block_on(async move {
            let response = tokio::time::timeout(EXPORT_TIMEOUT, async {
                let response = client.request(request).await?;
                let (parts, body) = response.into_parts();
                let body = http_body_util::Limited::new(body, 1 << 20)
                    .collect()
                    .await?
                    .to_bytes();
                Ok::<_, HttpError>(http::Response::from_parts(parts, body))
            })
            .await
            .map_err(|_| "the OTLP export timed out")??;
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(endpoint: &str) -> TelemetryConfig {
        TelemetryConfig {
            otlp_endpoint: Some(endpoint.to_owned()),
            ..TelemetryConfig::default()
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn a_bare_endpoint_gets_the_traces_path_and_a_bad_one_is_named() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318").unwrap(),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("https://otel.example:4318/").unwrap(),
            "https://otel.example:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://c:4318/otlp/v1/traces").unwrap(),
            "http://c:4318/otlp/v1/traces"
        );
        for bad in ["", "collector:4318", "ftp://c/x", "http://", "not a url"] {
            let error = validate(&config(bad), &no_env).unwrap_err();
            assert_eq!(error.key, "telemetry.otlp_endpoint", "{bad:?}");
        }
    }

    #[test]
    fn ratios_headers_and_their_variables_are_checked_and_values_never_shown() {
        let mut c = config("http://127.0.0.1:4318");
        c.sample_ratio = Some(1.5);
        assert_eq!(
            validate(&c, &no_env).unwrap_err().key,
            "telemetry.sample_ratio"
        );
        c.sample_ratio = Some(0.25);
        c.headers_env
            .insert("authorization".into(), "OTLP_TOKEN".into());
        let error = validate(&c, &no_env).unwrap_err();
        assert!(error.problem.contains("OTLP_TOKEN"), "{error}");
        let env = |name: &str| (name == "OTLP_TOKEN").then(|| "Bearer otlp-secret-1".to_owned());
        validate(&c, &env).unwrap();
        assert_eq!(
            headers(&c, &env).unwrap()["authorization"],
            "Bearer otlp-secret-1"
        );
        c.headers.insert("x-tenant".into(), "bad\nvalue".into());
        let error = validate(&c, &env).unwrap_err();
        assert!(!error.to_string().contains("bad\nvalue"), "{error}");
        c.headers.clear();
        c.headers
            .insert("x-token".into(), "literal-secret-2".into());
        let shown = format!("{c:?}");
        assert!(!shown.contains("literal-secret-2") && shown.contains("x-token"));
    }

    #[test]
    fn the_section_parses_with_every_key_and_refuses_an_unknown_one() {
        let config = crate::Config::from_toml(
            r#"
            [telemetry]
            otlp_endpoint = "http://127.0.0.1:4318"
            service_name = "edge-gateway"
            sample_ratio = 0.5
            headers = { "x-scope-orgid" = "team-a" }
            headers_env = { authorization = "OTLP_AUTH" }
            "#,
        )
        .unwrap();
        let env = |name: &str| (name == "OTLP_AUTH").then(|| "Bearer t".to_owned());
        validate(&config.telemetry, &env).unwrap();
        assert!(config.telemetry.enabled());
        assert_eq!(config.telemetry.sample_ratio, Some(0.5));
        let unknown = crate::Config::from_toml("[telemetry]\notlp_endpont = \"http://c\"\n");
        assert!(unknown.unwrap_err().problem.contains("otlp_endpont"));
        let bad =
            crate::Config::from_toml("[telemetry]\notlp_endpoint = \"collector:4318\"\n").unwrap();
        let bad = validate(&bad.telemetry, &no_env).unwrap_err();
        assert_eq!(bad.key, "telemetry.otlp_endpoint");
        assert!(!crate::Config::default().telemetry.enabled());
    }

    /// Without an endpoint nothing is built: no exporter, so no batch thread (which names
    /// itself `OpenTelemetry.Traces.BatchProcessor`; no other test here builds one).
    #[test]
    fn without_an_endpoint_nothing_is_built_and_no_thread_started() {
        let exporter_threads = || {
            std::fs::read_dir("/proc/self/task")
                .map(|tasks| {
                    tasks
                        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                        .filter(|name| name.starts_with("OpenTelemetry"))
                        .count()
                })
                .unwrap_or(0)
        };
        let off = Telemetry::from_config(&TelemetryConfig::default(), &no_env).unwrap();
        assert!(off.is_none());
        assert_eq!(exporter_threads(), 0);
        let mut no_endpoint = config("http://127.0.0.1:9");
        no_endpoint.otlp_endpoint = None;
        no_endpoint.sample_ratio = Some(7.0);
        assert!(
            Telemetry::from_config(&no_endpoint, &no_env)
                .unwrap()
                .is_none(),
            "the rest of the section is not even read"
        );
        let on = Telemetry::from_config(&config("http://127.0.0.1:9"), &no_env).unwrap();
        on.expect("an exporter").shutdown();
    }
}
