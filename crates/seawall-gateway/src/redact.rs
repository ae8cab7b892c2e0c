//! What of an upstream's error text may reach a client: credentials never do.
//!
//! Providers echo credentials in their error text (OpenAI's 401 shows a key's prefix and
//! suffix; a proxy may echo the request's headers whole), and a client of the gateway is not
//! the owner of the gateway's upstream keys. Words that look like a credential, and every
//! secret the gateway holds, are replaced before any upstream text is relayed.

/// Prefixes of the credentials the providers issue.
const CREDENTIAL_PREFIXES: [&str; 6] = ["sk-", "sk_", "AIza", "ya29.", "key-", "xai-"];

/// `text` with every configured `secret` (and any of its 8-character runs) and every word
/// that looks like a credential replaced by `[redacted]`.
pub(crate) fn redact(text: &str, secrets: &[String]) -> String {
    let mut redacted = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| c.is_ascii_alphanumeric()) {
        redacted.push_str(&rest[..start]);
        let word = &rest[start..];
        let end = word
            .find(|c: char| !(c.is_ascii_alphanumeric() || "-_.*".contains(c)))
            .unwrap_or(word.len());
        let (token, tail) = word.split_at(end);
        if looks_like_credential(token) {
            redacted.push_str("[redacted]");
        } else {
            redacted.push_str(token);
        }
        rest = tail;
    }
    redacted.push_str(rest);
    for secret in secrets.iter().filter(|s| s.len() >= 16) {
        redacted = redacted.replace(secret.as_str(), "[redacted]");
        // A provider may show a secret's start and end around asterisks.
        if secret.is_char_boundary(8) && secret.is_char_boundary(secret.len() - 8) {
            for part in [&secret[..8], &secret[secret.len() - 8..]] {
                redacted = redacted.replace(part, "[redacted]");
            }
        }
    }
    redacted
}

fn looks_like_credential(token: &str) -> bool {
    if CREDENTIAL_PREFIXES
        .iter()
        .any(|prefix| token.starts_with(prefix) && token.len() > prefix.len() + 4)
    {
        return true;
    }
    // A long run of letters and digits mixed (an opaque token), not a word or a number.
    let long = token.len() >= 32;
    let letters = token.chars().any(|c| c.is_ascii_alphabetic());
    let digits = token.chars().any(|c| c.is_ascii_digit());
    long && letters && digits
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn credentials_and_configured_secrets_are_replaced() {
        let secret = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789".to_owned();
        let openai = "Incorrect API key provided: sk-proj-********************************6789. You can find your API key at https://platform.openai.com/account/api-keys.";
        let out = redact(openai, std::slice::from_ref(&secret));
        assert!(!out.contains("sk-proj"), "{out}");
        assert!(
            out.contains("Incorrect API key provided: [redacted]"),
            "{out}"
        );
        assert!(
            out.contains("https://platform.openai.com/account/api-keys"),
            "{out}"
        );

        let echoed =
            format!("headers: authorization: Bearer {secret}, x-goog-api-key: AIzaSyA1b2C3d4E5f6");
        let out = redact(&echoed, std::slice::from_ref(&secret));
        assert!(!out.contains("abcdefgh") && !out.contains("AIza"), "{out}");

        let partial = format!(
            "key {}...{} rejected",
            &secret[..8],
            &secret[secret.len() - 8..]
        );
        let out = redact(&partial, &[secret]);
        assert_eq!(out, "key [redacted] rejected");

        let plain =
            "Rate limit reached for gpt-4o-mini on tokens per min (TPM): Limit 30000, Used 29937.";
        assert_eq!(redact(plain, &[]), plain);
    }
}
