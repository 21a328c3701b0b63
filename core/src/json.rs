//! Strict JSON for untrusted token segments: duplicate member names and deep nesting are
//! refused (RFC 8725 §3.9 / RFC 7515 §5.2), where `serde_json::Value` would keep the last
//! duplicate silently and recurse up to its own limit; so is U+0000 in any string, which
//! Postgres text cannot hold (a claim read as text would end at it).

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::cell::Cell;
use std::fmt;

/// Deepest nesting of arrays and objects accepted in a token's header or payload.
pub const MAX_DEPTH: usize = 32;

/// Why [`parse_strict`] refused its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    /// A string, value or member name, holds U+0000 (as the escape `\u0000`: JSON text
    /// cannot hold a raw control character).
    Nul,
    /// Not one JSON value, a duplicate member, or nesting too deep; the text never quotes
    /// the input beyond a member name.
    Invalid(String),
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonError::Nul => f.write_str("a string contains the character U+0000"),
            JsonError::Invalid(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for JsonError {}

/// Parses `bytes` as one JSON value, refusing duplicate member names, nesting deeper than
/// [`MAX_DEPTH`] and U+0000 in any string. The error text never quotes the input.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, JsonError> {
    // serde hands our visitor's errors back as its own error type: the flag says which
    // refusal it was, so no message text is compared.
    let nul = Cell::new(false);
    let fail = |e: serde_json::Error| {
        if nul.get() {
            JsonError::Nul
        } else {
            JsonError::Invalid(describe(&e))
        }
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Strict {
        depth: 0,
        nul: &nul,
    }
    .deserialize(&mut de)
    .map_err(fail)?;
    de.end().map_err(fail)?;
    Ok(value)
}

fn describe(e: &serde_json::Error) -> String {
    // serde_json's messages carry positions, not content; custom errors are our own texts.
    let text = e.to_string();
    match text.split_once(" at line ") {
        Some((head, _)) => head.to_string(),
        None => text,
    }
}

#[derive(Clone, Copy)]
struct Strict<'f> {
    depth: usize,
    /// Set when a string holds U+0000, before the error that stops the parse.
    nul: &'f Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'f> Strict<'f> {
    fn nested<E: de::Error>(&self) -> Result<Strict<'f>, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format!(
                "JSON nested deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(Strict {
            depth: self.depth + 1,
            nul: self.nul,
        })
    }

    fn no_nul<E: de::Error>(&self, s: &str) -> Result<(), E> {
        if s.contains('\0') {
            self.nul.set(true);
            return Err(E::custom("a string contains the character U+0000"));
        }
        Ok(())
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.no_nul(v)?;
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.no_nul(&v)?;
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self.nested()?)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            self.no_nul(&key)?;
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "duplicate member `{}`",
                    crate::token::quote(&key)
                )));
            }
            let v = map.next_value_seed(self.nested()?)?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_objects() {
        let v = parse_strict(br#"{"a":1,"b":[true,null,"x"],"c":{"d":1.5}}"#).unwrap();
        assert_eq!(v["c"]["d"], 1.5);
    }

    #[test]
    fn refuses_duplicates_at_any_depth() {
        assert!(parse_strict(br#"{"sub":"a","sub":"b"}"#)
            .unwrap_err()
            .to_string()
            .contains("duplicate"));
        assert!(parse_strict(br#"{"x":{"k":1,"k":2}}"#).is_err());
    }

    #[test]
    fn refuses_deep_nesting_without_recursing_far() {
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(parse_strict(deep.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("deeper"));
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse_strict(ok.as_bytes()).is_ok());
    }

    #[test]
    fn refuses_trailing_garbage_and_bad_utf8() {
        assert!(parse_strict(b"{} x").is_err());
        assert!(parse_strict(b"{\"a\":\"\xff\"}").is_err());
    }

    #[test]
    fn refuses_nul_in_any_string() {
        for text in [
            r#""\u0000""#,
            r#"{"sub":"victim\u0000x"}"#,
            r#"{"a":{"b":["ok","x\u0000"]}}"#,
            r#"{"\u0000":1}"#,
            r#"{"a":[{"k\u0000":null}]}"#,
        ] {
            assert_eq!(parse_strict(text.as_bytes()), Err(JsonError::Nul), "{text}");
        }
        // An escaped backslash before `u0000` is six ordinary characters; other escapes are fine.
        let v = parse_strict(br#"{"s":"\\u0000","t":"\u0001\t"}"#).unwrap();
        assert_eq!(v["s"], "\\u0000");
        // A duplicate seen before a NUL is reported as the duplicate.
        assert!(matches!(
            parse_strict(br#"{"a":1,"a":"\u0000"}"#),
            Err(JsonError::Invalid(_))
        ));
    }
}
