//! Log redaction (`oidc_authz_core::redact`): any bytes as a log line, and a real token
//! inside generated text.

use super::broken;
use super::keys::{fixture, ISSUERS, NOW};
use arbitrary::{Arbitrary, Unstructured};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use oidc_authz_core::redact::{redact_bytes, REDACTED};
use serde_json::json;
use std::sync::OnceLock;

/// The `redact` target. The bytes as a log line: redacting never panics, and what comes out
/// holds nothing left to redact. Then, read as a structure: a token the fixture's keys sign
/// (its header after up to five bytes of whitespace), between any two texts, never survives.
pub fn redact(data: &[u8]) {
    if let Some(Ok(out)) = redact_bytes(data) {
        assert!(
            redact_bytes(&out).is_none(),
            "redacting twice changes the text"
        );
    }
    let mut u = Unstructured::new(data);
    let (Ok(before), Ok(which), Ok(after)) = (
        Vec::<u8>::arbitrary(&mut u),
        u.choose_index(tokens().len()),
        Vec::<u8>::arbitrary(&mut u),
    ) else {
        return;
    };
    let token = tokens()[which].as_bytes();
    let line = [before.as_slice(), token, after.as_slice()].concat();
    match redact_bytes(&line) {
        Some(Ok(out)) if !contains(&out, token) => {
            assert!(contains(&out, REDACTED.as_bytes()));
        }
        other => broken(format_args!(
            "a token survives redaction: {:?}",
            other.map(|r| r.map(|o| String::from_utf8_lossy(&o).into_owned()))
        )),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Tokens of each issuer's first key, with headers after 0 to 5 bytes of whitespace.
fn tokens() -> &'static [String] {
    static TOKENS: OnceLock<Vec<String>> = OnceLock::new();
    TOKENS.get_or_init(|| {
        let f = fixture();
        let mut out = Vec::new();
        for spec in &ISSUERS {
            let Some(&alg) = spec.key_algs(0).first() else {
                continue;
            };
            let header = json!({"alg": alg.name(), "kid": spec.kid(0), "typ": "JWT"});
            let claims = json!({
                "iss": spec.issuer, "sub": "alice", "aud": spec.audiences, "exp": NOW + 600,
            });
            let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
            for space in ["", " ", "\t\n", "\r\n  ", "     "] {
                let input = format!(
                    "{}.{payload}",
                    URL_SAFE_NO_PAD.encode(format!("{space}{header}"))
                );
                let signature = f.material[spec.key_file(0)].sign(alg, input.as_bytes());
                out.push(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)));
            }
        }
        out
    })
}
