//! Finding tokens in text that is about to be logged, and blotting them out.
//!
//! Postgres logs statements (`log_statement`, `log_min_duration_statement`, the `STATEMENT:`
//! line of an error) and their bind parameters; a token passed to `set_config('oidc.token',
//! …)` would be written to the server log in full. The extension's `emit_log_hook` runs
//! every log line through [`redact`].
//!
//! What counts as a token: a run of base64url characters and dots with at least three
//! segments, one of which (the header) decodes to text starting with `{` (every JWS and JWE
//! header is a JSON object: `eyJ…`). Everything from that segment to the end of the run is
//! replaced, signature and payload alike, so neither a whole token nor a piece of one is
//! left; the text before it is kept. Too much is better than too little: a dotted run that
//! merely looks like a token is blotted out too.

/// What a token is replaced with.
pub const REDACTED: &str = "[redacted token]";

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'
}

fn b64_value(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'-' | b'+' => Some(62),
        b'_' | b'/' => Some(63),
        _ => None,
    }
}

/// Whether `segment` is base64url whose decoded text starts with `{` (after whitespace).
fn decodes_to_object(segment: &[u8]) -> bool {
    // Enough bytes to see past a little leading whitespace: 8 characters decode to 6 bytes.
    let mut bits: u32 = 0;
    let mut nbits = 0;
    for &c in segment.iter().take(8) {
        let Some(v) = b64_value(c) else {
            return false;
        };
        bits = (bits << 6) | u32::from(v);
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            let byte = ((bits >> nbits) & 0xff) as u8;
            match byte {
                b' ' | b'\t' | b'\r' | b'\n' => continue,
                b'{' => return true,
                _ => return false,
            }
        }
    }
    false
}

/// Where the token in one run of token characters starts, if the run holds one: the first
/// segment that decodes to an object and is followed by at least two more segments.
fn token_start(run: &[u8]) -> Option<usize> {
    let mut start = 0;
    let mut starts = Vec::new();
    for (i, &b) in run.iter().enumerate() {
        if b == b'.' {
            starts.push((start, i));
            start = i + 1;
        }
    }
    starts.push((start, run.len()));
    let count = starts.len();
    starts
        .iter()
        .enumerate()
        .take(count.saturating_sub(2))
        .find(|(_, (s, e))| e > s && decodes_to_object(&run[*s..*e]))
        .map(|(_, (s, _))| *s)
}

/// `text` with every token replaced by [`REDACTED`]; `None` when it holds none (the common
/// case, which allocates nothing).
pub fn redact(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if !is_token_char(bytes[i]) {
            i += 1;
            continue;
        }
        let run_start = i;
        while i < bytes.len() && is_token_char(bytes[i]) {
            i += 1;
        }
        if let Some(offset) = token_start(&bytes[run_start..i]) {
            let at = run_start + offset;
            // Token characters are ASCII, so `at` and `i` are char boundaries.
            let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
            o.push_str(&text[copied..at]);
            o.push_str(REDACTED);
            copied = i;
        }
    }
    let mut o = out?;
    o.push_str(&text[copied..]);
    Some(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";

    #[test]
    fn tokens_are_blotted_out() {
        let cases = [
            (
                format!("statement: select set_config('oidc.token', '{TOKEN}', true)"),
                "statement: select set_config('oidc.token', '[redacted token]', true)".to_string(),
            ),
            (
                format!("parameters: $1 = '{TOKEN}'"),
                "parameters: $1 = '[redacted token]'".into(),
            ),
            (
                format!("{{\"authorization\": \"Bearer {TOKEN}\"}}"),
                "{\"authorization\": \"Bearer [redacted token]\"}".into(),
            ),
            (
                format!("{TOKEN} and {TOKEN}"),
                "[redacted token] and [redacted token]".into(),
            ),
            // Unsigned, and a JWE's five segments.
            (
                "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.".into(),
                "[redacted token]".into(),
            ),
            (
                "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d".into(),
                "[redacted token]".into(),
            ),
            // A header with leading whitespace: `{ "alg"…` is `eyAi…`.
            (
                "eyAiYWxnIjoiSFMyNTYifQ.e30.c2ln".into(),
                "[redacted token]".into(),
            ),
            // Text glued before the token is kept.
            (format!("x.{TOKEN}"), "x.[redacted token]".into()),
        ];
        for (input, want) in cases {
            assert_eq!(redact(&input).as_deref(), Some(want.as_str()), "{input}");
        }
    }

    #[test]
    fn other_text_is_left_alone() {
        for text in [
            "select * from docs where owner = 'alice'",
            "www.example.com",
            "a.b.c",
            "1.2.3.4",
            "eyJhbGciOiJSUzI1NiJ9.only-two",
            "pg_catalog.pg_class.relname",
            "",
            "ünïcödé.text.here",
        ] {
            assert_eq!(redact(text), None, "{text}");
        }
    }

    #[test]
    fn no_piece_of_a_token_survives() {
        let text = format!("DETAIL: parameters: $1 = '{TOKEN}', $2 = 'x'");
        let out = redact(&text).unwrap_or_default();
        for piece in TOKEN.split('.') {
            assert!(!out.contains(piece), "{out}");
        }
        assert!(out.ends_with("$2 = 'x'"));
    }
}
