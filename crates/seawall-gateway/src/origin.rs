//! Who may call the gateway from where: the `Host` a request names and the `Origin` a
//! browser sends, checked before anything else.
//!
//! A gateway on a loopback address with no virtual keys is reachable from every web page the
//! machine's browser opens: a cross-site "simple" POST (text/plain) or a DNS-rebinding
//! request (an attacker's name resolving to 127.0.0.1) would spend its credits. A loopback
//! gateway therefore answers only requests that name a loopback host, and a browser's
//! request only from an allowed origin; chat calls must say `application/json`, which a
//! cross-site page cannot send without the browser asking first.

use std::net::SocketAddr;

use http::HeaderMap;
use http::header::{HOST, ORIGIN};

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No `Host`, or more than one.
    Host,
    /// A `Host` the gateway does not answer to.
    ForeignHost,
    /// An `Origin` that is not allowed.
    ForeignOrigin,
}

/// The hosts and origins the gateway answers to.
#[derive(Debug, Clone, Default)]
pub(crate) struct Allowed {
    /// Host names (without port), lower-case; empty with `any_host`.
    hosts: Vec<String>,
    /// Origins (`scheme://host[:port]`), lower-case.
    origins: Vec<String>,
    any_host: bool,
}

const LOOPBACK_NAMES: [&str; 4] = ["localhost", "127.0.0.1", "[::1]", "::1"];

impl Allowed {
    /// The configured `hosts` and `origins`; with no hosts configured, the loopback names
    /// when bound to a loopback address, any host otherwise (the names a non-loopback
    /// address is reached by cannot be known: configure them to restrict it).
    pub(crate) fn new(hosts: &[String], origins: &[String], bound: SocketAddr) -> Self {
        let lower = |items: &[String]| -> Vec<String> {
            items.iter().map(|item| item.to_ascii_lowercase()).collect()
        };
        let mut allowed = Self {
            hosts: lower(hosts),
            origins: lower(origins),
            any_host: false,
        };
        if allowed.hosts.is_empty() {
            if bound.ip().is_loopback() {
                allowed.hosts = LOOPBACK_NAMES.iter().map(|h| (*h).to_owned()).collect();
            } else {
                allowed.any_host = true;
            }
        }
        allowed
    }

    fn host_allowed(&self, host: &str) -> bool {
        self.any_host || self.hosts.iter().any(|allowed| allowed == host)
    }

    /// Checks a request's `Host` and `Origin`.
    pub(crate) fn check(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let mut hosts = headers.get_all(HOST).iter();
        let (Some(host), None) = (hosts.next(), hosts.next()) else {
            return Err(Refusal::Host);
        };
        let host = host
            .to_str()
            .map_err(|_| Refusal::Host)?
            .to_ascii_lowercase();
        if !self.host_allowed(host_name(&host)) {
            return Err(Refusal::ForeignHost);
        }
        if let Some(origin) = headers.get(ORIGIN) {
            let origin = origin
                .to_str()
                .map_err(|_| Refusal::ForeignOrigin)?
                .to_ascii_lowercase();
            let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
            let listed = self.origins.contains(&origin);
            if !listed && (self.any_host || !self.host_allowed(host_name(origin_host))) {
                return Err(Refusal::ForeignOrigin);
            }
        }
        Ok(())
    }
}

/// The host part of `host[:port]` (an IPv6 literal keeps its brackets).
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::{Allowed, Refusal};

    fn headers(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn a_loopback_gateway_answers_loopback_hosts_and_no_foreign_page() {
        let allowed = Allowed::new(&[], &[], "127.0.0.1:8080".parse().unwrap());
        for host in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST",
            "[::1]:8080",
        ] {
            assert_eq!(allowed.check(&headers(&[("host", host)])), Ok(()), "{host}");
        }
        assert_eq!(
            allowed.check(&headers(&[("host", "evil.example:8080")])),
            Err(Refusal::ForeignHost)
        );
        assert_eq!(allowed.check(&headers(&[])), Err(Refusal::Host));
        assert_eq!(
            allowed.check(&headers(&[("host", "localhost"), ("host", "localhost")])),
            Err(Refusal::Host)
        );
        assert_eq!(
            allowed.check(&headers(&[
                ("host", "localhost:8080"),
                ("origin", "https://evil.example")
            ])),
            Err(Refusal::ForeignOrigin)
        );
        assert_eq!(
            allowed.check(&headers(&[
                ("host", "localhost:8080"),
                ("origin", "http://localhost:3000")
            ])),
            Ok(())
        );
    }

    #[test]
    fn configured_hosts_and_origins_are_the_only_ones() {
        let allowed = Allowed::new(
            &["gw.internal".to_owned()],
            &["https://app.example".to_owned()],
            "0.0.0.0:8080".parse().unwrap(),
        );
        assert_eq!(allowed.check(&headers(&[("host", "gw.internal")])), Ok(()));
        assert_eq!(
            allowed.check(&headers(&[("host", "other.internal")])),
            Err(Refusal::ForeignHost)
        );
        assert_eq!(
            allowed.check(&headers(&[
                ("host", "gw.internal"),
                ("origin", "https://app.example")
            ])),
            Ok(())
        );
        // Bound to every address with no hosts configured: any host, but no browser origin
        // that was not allowed.
        let open = Allowed::new(&[], &[], "0.0.0.0:8080".parse().unwrap());
        assert_eq!(open.check(&headers(&[("host", "anything:1")])), Ok(()));
        assert_eq!(
            open.check(&headers(&[
                ("host", "anything:1"),
                ("origin", "https://evil.example")
            ])),
            Err(Refusal::ForeignOrigin)
        );
    }
}
