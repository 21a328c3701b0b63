//! Generated values for the structure-aware targets: JSON documents, member names and
//! strings drawn mostly from the vocabulary of the tests' claims, resources and rules (so a
//! generated document meets the conditions the corpus holds), sometimes anything.
//!
//! Every choice's first option is the common one: an exhausted input (`arbitrary` then gives
//! the lowest value of every range) yields plain, well-formed values.

use arbitrary::{Arbitrary, Result, Unstructured};
use serde_json::{Map, Number, Value};

/// Member names of the tests' claims, resources and contexts.
pub const NAMES: [&str; 40] = [
    "sub",
    "groups",
    "tenant",
    "roles",
    "scope",
    "owner",
    "labels",
    "email",
    "realm_access",
    "exp",
    "iat",
    "nbf",
    "n",
    "f",
    "s",
    "admin",
    "suspended",
    "nested",
    "a",
    "b",
    "k",
    "x",
    "meta",
    "mixed",
    "size",
    "count",
    "id",
    "name",
    "public",
    "classification",
    "level",
    "department",
    "tags",
    "region",
    "big",
    "none",
    "scp",
    "https://issuer.test/tenant",
    "a.b",
    "",
];

/// String values of the tests' claims and resources, and texts the rule language converts
/// (timestamps, durations, time zones).
pub const STRINGS: [&str; 28] = [
    "alice",
    "bob",
    "eng",
    "ops",
    "t1",
    "t2",
    "read",
    "write",
    "read write",
    "docs:read",
    "docs:write",
    "editor",
    "reader",
    "admin",
    "x",
    "v",
    "public",
    "secret",
    "alice@example.test",
    "Hello, 世界",
    "2026-11-27T10:00:00Z",
    "1970-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999999Z",
    "1h",
    "-1.5s",
    "Europe/Berlin",
    "GET",
    "",
];

/// A member name: mostly from [`NAMES`].
pub fn name(u: &mut Unstructured) -> Result<String> {
    match u.choose_index(4)? {
        0..=2 => Ok(u.choose(&NAMES)?.to_string()),
        _ => String::arbitrary(u),
    }
}

/// A string value: mostly from [`STRINGS`].
pub fn string(u: &mut Unstructured) -> Result<String> {
    match u.choose_index(4)? {
        0..=2 => Ok(u.choose(&STRINGS)?.to_string()),
        _ => String::arbitrary(u),
    }
}

/// A string value without U+0000 (which a token's claims cannot hold).
pub fn text(u: &mut Unstructured) -> Result<String> {
    Ok(string(u)?.replace('\0', " "))
}

/// A list of strings from [`STRINGS`] (scopes, roles, labels).
pub fn strings(u: &mut Unstructured) -> Result<Vec<String>> {
    let n = u.int_in_range(0..=4)?;
    (0..n).map(|_| string(u)).collect()
}

/// A number: mostly small integers, sometimes any integer or double (which may be out of
/// JSON's range, and is then null).
pub fn number(u: &mut Unstructured) -> Result<Value> {
    Ok(match u.choose_index(5)? {
        0 | 1 => Value::from(u.int_in_range(-3i64..=10)?),
        2 => Value::from(i64::arbitrary(u)?),
        3 => Value::from(u64::arbitrary(u)?),
        _ => Number::from_f64(f64::arbitrary(u)?).map_or(Value::Null, Value::Number),
    })
}

/// Any JSON value, nested at most `depth` containers deep.
pub fn value(u: &mut Unstructured, depth: usize) -> Result<Value> {
    let kinds = if depth == 0 { 5 } else { 7 };
    Ok(match u.choose_index(kinds)? {
        0 => Value::String(string(u)?),
        1 => number(u)?,
        2 => Value::Bool(bool::arbitrary(u)?),
        3 => Value::Null,
        4 => Value::String(String::arbitrary(u)?),
        5 => {
            let n = u.int_in_range(0..=4)?;
            Value::Array((0..n).map(|_| value(u, depth - 1)).collect::<Result<_>>()?)
        }
        _ => object(u, depth - 1)?,
    })
}

/// A JSON object of up to six members, its values nested at most `depth` deep.
pub fn object(u: &mut Unstructured, depth: usize) -> Result<Value> {
    let n = u.int_in_range(0..=6)?;
    let mut map = Map::new();
    for _ in 0..n {
        map.insert(name(u)?, value(u, depth)?);
    }
    Ok(Value::Object(map))
}

/// Whether any string of `v`, a value or a member name, holds U+0000.
pub fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}
