//! Runtime values of the rule language: CEL's types, minus bytes and protobuf messages.
//!
//! JSON converts without CEL's `uint` surprise: a JSON integer that fits `i64` is an `int`
//! (so `claims.exp + 60` works), a larger one a `uint`, anything else a `double`.

use serde_json::Value as Json;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;

pub type Map = BTreeMap<Rc<str>, Val>;

#[derive(Clone, Debug)]
pub enum Val {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Double(f64),
    Str(Rc<str>),
    List(Rc<Vec<Val>>),
    /// String keys only: maps come from JSON or from literals with string keys.
    Map(Rc<Map>),
    /// Nanoseconds since 1970-01-01T00:00:00Z.
    Timestamp(i128),
    /// Nanoseconds.
    Duration(i128),
}

impl Val {
    pub fn str(s: &str) -> Val {
        Val::Str(Rc::from(s))
    }

    pub fn list_of_strings(items: &[String]) -> Val {
        Val::List(Rc::new(items.iter().map(|s| Val::str(s)).collect()))
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Val::Null => "null",
            Val::Bool(_) => "bool",
            Val::Int(_) => "int",
            Val::Uint(_) => "uint",
            Val::Double(_) => "double",
            Val::Str(_) => "string",
            Val::List(_) => "list",
            Val::Map(_) => "map",
            Val::Timestamp(_) => "timestamp",
            Val::Duration(_) => "duration",
        }
    }

    pub fn from_json(json: &Json) -> Val {
        match json {
            Json::Null => Val::Null,
            Json::Bool(b) => Val::Bool(*b),
            Json::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Val::Int(i)
                } else if let Some(u) = n.as_u64() {
                    Val::Uint(u)
                } else {
                    Val::Double(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Json::String(s) => Val::str(s),
            Json::Array(a) => Val::List(Rc::new(a.iter().map(Val::from_json).collect())),
            Json::Object(o) => Val::Map(Rc::new(
                o.iter()
                    .map(|(k, v)| (Rc::from(k.as_str()), Val::from_json(v)))
                    .collect(),
            )),
        }
    }

    /// JSON for explanations; timestamps and durations as RFC 3339 / seconds strings.
    pub fn to_json(&self) -> Json {
        match self {
            Val::Null => Json::Null,
            Val::Bool(b) => Json::Bool(*b),
            Val::Int(i) => Json::from(*i),
            Val::Uint(u) => Json::from(*u),
            Val::Double(d) => serde_json::Number::from_f64(*d).map_or(Json::Null, Json::Number),
            Val::Str(s) => Json::String(s.to_string()),
            Val::List(l) => Json::Array(l.iter().map(Val::to_json).collect()),
            Val::Map(m) => Json::Object(
                m.iter()
                    .map(|(k, v)| (k.to_string(), v.to_json()))
                    .collect(),
            ),
            Val::Timestamp(_) | Val::Duration(_) => Json::String(self.to_string()),
        }
    }

    /// CEL equality: numbers compare by value across int, uint and double; other values
    /// only equal values of their own type; lists and maps element-wise.
    pub fn equals(&self, other: &Val) -> bool {
        match (self, other) {
            (Val::Null, Val::Null) => true,
            (Val::Bool(a), Val::Bool(b)) => a == b,
            (Val::Str(a), Val::Str(b)) => a == b,
            (Val::List(a), Val::List(b)) => {
                a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| x.equals(y))
            }
            (Val::Map(a), Val::Map(b)) => {
                a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| v.equals(w)))
            }
            (Val::Timestamp(a), Val::Timestamp(b)) | (Val::Duration(a), Val::Duration(b)) => a == b,
            _ => matches!(numeric_cmp(self, other), Some(Ordering::Equal)),
        }
    }

    /// CEL ordering, for `< <= > >=`; `None` when the types cannot be ordered.
    pub fn compare(&self, other: &Val) -> Option<Ordering> {
        match (self, other) {
            (Val::Bool(a), Val::Bool(b)) => Some(a.cmp(b)),
            (Val::Str(a), Val::Str(b)) => Some(a.cmp(b)),
            (Val::Timestamp(a), Val::Timestamp(b)) | (Val::Duration(a), Val::Duration(b)) => {
                Some(a.cmp(b))
            }
            _ => numeric_cmp(self, other),
        }
    }
}

fn numeric_cmp(a: &Val, b: &Val) -> Option<Ordering> {
    match (a, b) {
        (Val::Int(x), Val::Int(y)) => Some(x.cmp(y)),
        (Val::Uint(x), Val::Uint(y)) => Some(x.cmp(y)),
        (Val::Int(x), Val::Uint(y)) => Some(i128::from(*x).cmp(&i128::from(*y))),
        (Val::Uint(x), Val::Int(y)) => Some(i128::from(*x).cmp(&i128::from(*y))),
        (Val::Double(x), Val::Double(y)) => x.partial_cmp(y),
        (Val::Double(x), Val::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Val::Int(x), Val::Double(y)) => (*x as f64).partial_cmp(y),
        (Val::Double(x), Val::Uint(y)) => x.partial_cmp(&(*y as f64)),
        (Val::Uint(x), Val::Double(y)) => (*x as f64).partial_cmp(y),
        _ => None,
    }
}

impl fmt::Display for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Val::Timestamp(ns) => f.write_str(&super::time::format_timestamp(*ns)),
            Val::Duration(ns) => write!(f, "{}s", super::time::format_seconds(*ns)),
            other => write!(f, "{}", other.to_json()),
        }
    }
}
