//! The default HTTP client: hyper-util's pooled client over rustls (the `ring` provider,
//! the operating system's root certificates), HTTP/1.1 and HTTP/2 (chosen by ALPN), with a
//! connect timeout and TCP keepalive. Plain `http://` URLs work too, for local servers and
//! the simulator.
//!
//! ```no_run
//! use seawall_providers::http::HttpClientConfig;
//! use seawall_providers::{ApiKey, OpenAi, OpenAiConfig};
//!
//! # fn main() -> std::io::Result<()> {
//! let client = HttpClientConfig::default().build()?;
//! let openai = OpenAi::new(client, OpenAiConfig::new(ApiKey::new("sk-...")));
//! # Ok(())
//! # }
//! ```

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// The default HTTP client type of the adapters. Cheap to clone (clones share the pool);
/// always ready.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Settings of the default client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpClientConfig {
    /// How long to wait for a TCP connection (and its TLS handshake to start).
    pub connect_timeout: Duration,
    /// TCP keepalive idle time on pooled connections.
    pub tcp_keepalive: Duration,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// The most idle connections kept per host.
    pub pool_max_idle_per_host: usize,
}

impl Default for HttpClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            tcp_keepalive: Duration::from_secs(60),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 32,
        }
    }
}

impl HttpClientConfig {
    /// Builds the client. Must be called inside a tokio runtime's context only when the
    /// first request is made (the pool timer and executor are tokio's).
    ///
    /// # Errors
    ///
    /// When the operating system's root certificates cannot be loaded.
    pub fn build(self) -> std::io::Result<HttpClient> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(self.connect_timeout));
        http.set_keepalive(Some(self.tcp_keepalive));
        http.set_nodelay(true);
        let https = HttpsConnectorBuilder::new()
            .with_native_roots()?
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http);
        Ok(Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(self.pool_idle_timeout)
            .pool_max_idle_per_host(self.pool_max_idle_per_host)
            .build(https))
    }
}

/// The default client with [`HttpClientConfig::default`].
///
/// # Errors
///
/// When the operating system's root certificates cannot be loaded.
pub fn default_client() -> std::io::Result<HttpClient> {
    HttpClientConfig::default().build()
}
