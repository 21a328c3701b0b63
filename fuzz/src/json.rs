//! Strict JSON and claim paths.

use super::broken;
use super::gen;
use arbitrary::{Arbitrary, Unstructured};
use oidc_authz_core::json::{parse_strict, MAX_DEPTH};
use oidc_authz_core::path::lookup;
use serde_json::Value;

/// The `json` target: [`parse_strict`] on any bytes. What it accepts `serde_json` accepts
/// too, as the same value, nested at most [`MAX_DEPTH`] deep, with no U+0000 anywhere; what
/// `serde_json` refuses it refuses; a refusal for U+0000 is of a text that holds one.
/// Its output, printed, parses back to itself.
pub fn json(data: &[u8]) {
    let strict = parse_strict(data);
    let loose = serde_json::from_slice::<Value>(data);
    match (&strict, &loose) {
        (Ok(s), Ok(l)) => {
            assert_eq!(s, l, "strict and serde_json read different values");
            assert!(depth(s) <= MAX_DEPTH, "accepted nesting {}", depth(s));
            assert!(!gen::has_nul(s), "accepted a U+0000");
            // Printed, it parses back; to the same value unless it holds a fraction, which
            // serde_json (without its `float_roundtrip` feature) may read 1 ULP off.
            let printed = parse_strict(s.to_string().as_bytes());
            assert!(printed.is_ok(), "printed value does not parse back");
            if !has_fraction(s) {
                assert_eq!(
                    printed.ok().as_ref(),
                    Some(s),
                    "printed value reads otherwise"
                );
            }
        }
        (Ok(_), Err(e)) => broken(format_args!("strict accepts what serde_json refuses: {e}")),
        // JSON text holds U+0000 only as the escape `\u0000` (serde_json may have dropped
        // it with an earlier duplicate member).
        (Err(oidc_authz_core::json::JsonError::Nul), _) => assert!(
            data.windows(6).any(|w| w == b"\\u0000"),
            "refused for U+0000 without one"
        ),
        _ => {}
    }
    if let Err(e) = &strict {
        let _ = e.to_string();
    }
}

/// Whether `v` holds a number that is no integer.
fn has_fraction(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_f64(),
        Value::Array(a) => a.iter().any(has_fraction),
        Value::Object(m) => m.values().any(has_fraction),
        _ => false,
    }
}

/// How deep arrays and objects nest in `v` (a scalar is 0).
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The `claim_path` target: a generated document, a path of any text (never panics), and a
/// walk down the document by its own member names and indexes, spelled as a dotted path and
/// as a JSON Pointer, each of which must find exactly the value the walk reached.
pub fn claim_path(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(doc) = gen::value(&mut u, 4) else {
        return;
    };
    let Ok(path) = String::arbitrary(&mut u) else {
        return;
    };
    let _ = lookup(&doc, &path);
    assert!(lookup(&doc, "").is_some_and(|v| std::ptr::eq(v, &doc)));

    let mut at = &doc;
    let mut dotted: Vec<String> = Vec::new();
    let mut pointer = String::new();
    let mut dotted_ok = true;
    while let Ok(step) = u.arbitrary::<u16>() {
        let next = match at {
            Value::Object(m) if !m.is_empty() => {
                let Some((k, v)) = m.iter().nth(usize::from(step) % m.len()) else {
                    break;
                };
                // A dotted path cannot name a member with a dot (a pointer can).
                dotted_ok &= !k.contains('.');
                dotted.push(k.clone());
                pointer.push('/');
                pointer.push_str(&k.replace('~', "~0").replace('/', "~1"));
                v
            }
            Value::Array(a) if !a.is_empty() => {
                let i = usize::from(step) % a.len();
                dotted.push(i.to_string());
                pointer.push('/');
                pointer.push_str(&i.to_string());
                &a[i]
            }
            _ => break,
        };
        at = next;
    }
    let found = lookup(&doc, &pointer);
    assert!(
        found.is_some_and(|v| std::ptr::eq(v, at)),
        "pointer `{pointer}` missed its value"
    );
    // A dotted path starting with `/` is read as a pointer, and an empty one is the root.
    let dotted = dotted.join(".");
    if dotted_ok && !dotted.starts_with('/') && !dotted.is_empty() {
        let found = lookup(&doc, &dotted);
        assert!(
            found.is_some_and(|v| std::ptr::eq(v, at)),
            "dotted path `{dotted}` missed its value"
        );
    }
}
