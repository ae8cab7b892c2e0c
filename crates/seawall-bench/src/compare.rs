//! `--compare URL`: another OpenAI-compatible gateway in the same run as seawall's, so its
//! requests/s, CPU and latency are measured on the same machine, against the same upstream.

use std::net::{SocketAddr, ToSocketAddrs};

/// The gateway to compare: where its chat completions endpoint is, and what each request
/// carries.
#[derive(Debug, Clone)]
pub(crate) struct CompareTarget {
    pub(crate) addr: SocketAddr,
    pub(crate) host: String,
    pub(crate) path: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) model: String,
}

impl CompareTarget {
    /// `url`: `http://host:port/path` of the gateway's chat completions endpoint (plain HTTP:
    /// the comparison runs on this machine).
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("--compare: {url}: only http:// URLs"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/v1/chat/completions"),
        };
        let with_port = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("--compare: {authority}: {e}"))?
            .next()
            .ok_or_else(|| format!("--compare: {authority}: no address"))?;
        Ok(Self {
            addr,
            host: authority.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            model: "gpt-4o-mini".to_owned(),
        })
    }
}

/// `Name: value`, checked as an HTTP header.
pub(crate) fn parse_header(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("--compare-header: {text:?}: expected `Name: value`"))?;
    let (name, value) = (name.trim(), value.trim());
    http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("--compare-header: {name:?} is not a header name"))?;
    http::HeaderValue::from_str(value)
        .map_err(|_| format!("--compare-header: the value of {name} is not a header value"))?;
    Ok((name.to_owned(), value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_headers() {
        let t = CompareTarget::parse("http://127.0.0.1:4000/v1/chat/completions").unwrap();
        assert_eq!(t.addr, "127.0.0.1:4000".parse().unwrap());
        assert_eq!(
            (t.host.as_str(), t.path.as_str()),
            ("127.0.0.1:4000", "/v1/chat/completions")
        );
        let t = CompareTarget::parse("http://127.0.0.1:8787").unwrap();
        assert_eq!(t.path, "/v1/chat/completions");
        assert!(CompareTarget::parse("https://127.0.0.1:4000/v1").is_err());
        assert!(CompareTarget::parse("127.0.0.1:4000").is_err());
        assert_eq!(
            parse_header("Authorization: Bearer sk-1").unwrap(),
            ("Authorization".to_owned(), "Bearer sk-1".to_owned())
        );
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("bad name: x").is_err());
        assert!(parse_header("x-ok: bad\nvalue").is_err());
    }
}
