//! Finding tokens in text that is about to be logged, and blotting them out.
//!
//! Postgres logs statements (`log_statement`, `log_min_duration_statement`, the `STATEMENT:`
//! line of an error) and their bind parameters; a token passed to `set_config('oidc.token',
//! …)` would be written to the server log in full. The extension's `emit_log_hook` runs
//! every log line through [`redact`].
//!
//! What counts as a token: inside a run of base64url characters and dots, a place where
//! the text decodes to something starting with `{` (every JWS and JWE header is a JSON
//! object: `eyJ…`), followed by at least two more dots in the run. That place may be
//! anywhere in the run (`Bearer%20eyJ…`, `xeyJ…`): everything from it to the end of the run
//! is replaced, header, payload and signature alike; the text before it is kept. Too much
//! is better than too little: a dotted run that merely looks like a token is blotted out
//! too.
//!
//! Cost: one pass, a few operations per byte, and no memory beyond the output (which is
//! only built when something is replaced, and never much longer than the input): whatever
//! an attacker puts into a log line, redacting it cannot exhaust memory.

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
        b'-' => Some(62),
        b'_' => Some(63),
        _ => None,
    }
}

/// Whether the base64url text at the start of `text` (up to a dot) decodes to something
/// starting with `{`, after whitespace.
fn decodes_to_object(text: &[u8]) -> bool {
    // 8 characters decode to 6 bytes: enough to see past a little leading whitespace.
    let mut bits: u32 = 0;
    let mut nbits = 0;
    for &c in text.iter().take(8) {
        let Some(v) = b64_value(c) else {
            return false;
        };
        bits = (bits << 6) | u32::from(v);
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            match ((bits >> nbits) & 0xff) as u8 {
                b' ' | b'\t' | b'\r' | b'\n' => continue,
                b'{' => return true,
                _ => return false,
            }
        }
    }
    false
}

/// Where the token in one run of token characters starts, if the run holds one.
fn token_start(run: &[u8]) -> Option<usize> {
    // A token needs two dots after its start: it starts before the second-to-last dot.
    let mut dots = run
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'.')
        .map(|(i, _)| i);
    let (mut last, mut before_last) = (None, None);
    for d in dots.by_ref() {
        before_last = last;
        last = Some(d);
    }
    let limit = before_last?;
    (0..limit).find(|&p| run[p] != b'.' && decodes_to_object(&run[p..]))
}

/// `text` with every token replaced by [`REDACTED`]; `None` when it holds none (the common
/// case, which allocates nothing), or when the copy cannot be allocated (the caller then
/// drops the text rather than log it).
pub fn redact_bytes(text: &[u8]) -> Option<Result<Vec<u8>, OutOfMemory>> {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < text.len() {
        if !is_token_char(text[i]) {
            i += 1;
            continue;
        }
        let run_start = i;
        while i < text.len() && is_token_char(text[i]) {
            i += 1;
        }
        if let Some(offset) = token_start(&text[run_start..i]) {
            let at = run_start + offset;
            let o = match out.as_mut() {
                Some(o) => o,
                None => {
                    let mut v = Vec::new();
                    if v.try_reserve(text.len() + REDACTED.len()).is_err() {
                        return Some(Err(OutOfMemory));
                    }
                    out.insert(v)
                }
            };
            if o.try_reserve(at - copied + REDACTED.len()).is_err() {
                return Some(Err(OutOfMemory));
            }
            o.extend_from_slice(&text[copied..at]);
            o.extend_from_slice(REDACTED.as_bytes());
            copied = i;
        }
    }
    let mut o = out?;
    if o.try_reserve(text.len() - copied).is_err() {
        return Some(Err(OutOfMemory));
    }
    o.extend_from_slice(&text[copied..]);
    Some(Ok(o))
}

/// The copy of a redacted text could not be allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfMemory;

/// [`redact_bytes`] for a string (token characters are ASCII: the result is UTF-8 too).
pub fn redact(text: &str) -> Option<String> {
    match redact_bytes(text.as_bytes())? {
        Ok(bytes) => String::from_utf8(bytes).ok(),
        Err(OutOfMemory) => Some(REDACTED.to_string()),
    }
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
            // Text glued before the token is kept, also without a separator.
            (format!("x.{TOKEN}"), "x.[redacted token]".into()),
            (format!("x{TOKEN}"), "x[redacted token]".into()),
            (
                format!("Bearer%20{TOKEN}"),
                "Bearer%20[redacted token]".into(),
            ),
            (format!("n{TOKEN}"), "n[redacted token]".into()),
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
    fn long_runs_cost_no_memory_beyond_the_output() {
        // 10 MB of dots and of base64 letters: nothing to redact, nothing allocated.
        let dots = vec![b'.'; 10_000_000];
        assert_eq!(redact_bytes(&dots), None);
        let letters = vec![b'A'; 10_000_000];
        assert_eq!(redact_bytes(&letters), None);
        // A token at the end of a long dotted run is still found.
        let mut long = vec![b'.'; 1_000_000];
        long.extend_from_slice(TOKEN.as_bytes());
        let out = redact_bytes(&long).and_then(Result::ok).unwrap_or_default();
        assert!(out.ends_with(REDACTED.as_bytes()));
        // Bytes that are not UTF-8 (a LATIN1 statement) are kept as they are.
        let mut latin1 = b"caf\xe9 ".to_vec();
        latin1.extend_from_slice(TOKEN.as_bytes());
        assert_eq!(
            redact_bytes(&latin1).and_then(Result::ok),
            Some([&b"caf\xe9 "[..], REDACTED.as_bytes()].concat())
        );
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
