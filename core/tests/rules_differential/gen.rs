//! The expression generator of the differential tests: random JSON-ish worlds, and random
//! expressions over them, each written twice from the same seed (see `Gen`).

use super::{obj, World, NANOS, WITH_OFFSET};
use oidc_authz_core::rules::value::Val;
use serde_json::{json, Value as Json};
use std::rc::Rc;

/// splitmix64: deterministic, so a failing case is reproducible from its number.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    pub(super) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

// What random values and generated literals are drawn from: edges (0, -0.0, the ends of
// each integer type, the range of timestamps) and values that look like other types.
#[rustfmt::skip]
const INTS: [i64; 12] = [0, 1, -1, 2, 3, 7, -5, 60, 100, 1_900_000_000, i64::MAX, i64::MIN];
const UINTS: [u64; 5] = [0, 1, 7, 1 << 63, u64::MAX];
const DOUBLES: [f64; 8] = [0.0, -0.0, 0.5, 1.5, -2.25, 1e20, 3.0, 0.1];
#[rustfmt::skip]
const STRINGS: [&str; 13] = [
    "alice", "bob", "eng", "ops", "", "Hello, 世界", "docs:read", "t1", "x",
    "2026-11-27T10:00:00Z", "1h30m", "42", "true",
];
#[rustfmt::skip]
const KEYS: [&str; 10] = [
    "sub", "n", "f", "groups", "admin", "tenant", "exp", "nested", "big", "labels",
];
#[rustfmt::skip]
const TIMESTAMPS: [&str; 7] = [
    "2026-11-27T10:00:00Z", WITH_OFFSET.0, "2000-01-01T00:00:00.250Z", "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00Z", "2026-13-01T00:00:00Z", "now",
];
/// Valid and invalid; no `µs` nor `1h-30m` (named divergences, covered above).
#[rustfmt::skip]
const DURATIONS: [&str; 10] = ["1h", "30m", "-1.5h", "90s", "250ms", "0", "1h30m", "1us", "x", "5"];
/// No `+5:30` (a named divergence).
#[rustfmt::skip]
const ZONES: [&str; 8] = [
    "UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "+05:30", "-08:00", "02:00",
    "Mars/Olympus",
];
#[rustfmt::skip]
const ACCESSORS: [&str; 10] = [
    "getFullYear", "getMonth", "getDate", "getDayOfMonth", "getDayOfYear", "getDayOfWeek",
    "getHours", "getMinutes", "getSeconds", "getMilliseconds",
];

fn random_json(rng: &mut Rng, depth: u32) -> Json {
    match rng.below(if depth == 0 { 6 } else { 8 }) {
        0 => Json::Null,
        1 => json!(rng.chance(50)),
        2 => json!(rng.pick(&INTS)),
        3 => json!(rng.pick(&UINTS)),
        4 => json!(rng.pick(&DOUBLES)),
        5 => json!(rng.pick(&STRINGS)),
        6 => Json::Array(
            (0..rng.below(4))
                .map(|_| random_json(rng, depth - 1))
                .collect(),
        ),
        _ => Json::Object(
            (0..rng.below(4))
                .map(|_| (rng.pick(&KEYS).to_string(), random_json(rng, depth - 1)))
                .collect(),
        ),
    }
}

/// A value for `key`, usually of the type a real token or row would have there.
fn typical(rng: &mut Rng, key: &str) -> Json {
    if rng.chance(25) {
        return random_json(rng, 2);
    }
    match key {
        "n" | "exp" => json!(rng.pick(&INTS)),
        "f" => json!(rng.pick(&DOUBLES)),
        "admin" => json!(rng.chance(50)),
        "big" => json!(rng.pick(&UINTS)),
        "groups" | "labels" => json!((0..rng.below(4))
            .map(|_| rng.pick(&STRINGS))
            .collect::<Vec<_>>()),
        "nested" => random_json(rng, 2),
        _ => json!(rng.pick(&STRINGS)),
    }
}

/// A random principal, row and instant; `lits` (hoisted literals) go in as `context.lits`.
pub(super) fn random_world(rng: &mut Rng, lits: Vec<Val>) -> World {
    let map = |rng: &mut Rng| {
        let mut m = serde_json::Map::new();
        for key in KEYS {
            if rng.chance(70) {
                m.insert(key.to_string(), typical(rng, key));
            }
        }
        obj(Json::Object(m))
    };
    let claims = map(rng);
    let resource = map(rng);
    let list = |rng: &mut Rng| {
        obj(json!((0..rng.below(3))
            .map(|_| rng.pick(&STRINGS))
            .collect::<Vec<_>>()))
    };
    let (scopes, roles) = (list(rng), list(rng));
    // Any instant from 1970 to 2033, to the nanosecond.
    let time =
        i128::from(rng.next() % 2_000_000_000) * NANOS + i128::from(rng.next() % 1_000_000_000);
    let Val::Map(mut ctx) = oidc_authz_core::rules::context(time, Some("GET"), Some("/documents"))
    else {
        unreachable!("context() gives a map")
    };
    Rc::make_mut(&mut ctx).insert("lits".into(), Val::List(Rc::new(lits)));
    World {
        claims,
        scopes,
        roles,
        resource,
        context: Val::Map(ctx),
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
pub(super) enum Ty {
    Bool,
    Int,
    Uint,
    Double,
    Str,
    List,
    Map,
    Time,
    Dur,
    Any,
}

/// Types a generated operand may take instead of the one asked for, to provoke type errors.
/// Timestamps and durations are left out: they reach the two divergences that are about
/// them (negating a duration, a duration's milliseconds) only through such a swap.
const SWAPS: [Ty; 8] = [
    Ty::Bool,
    Ty::Int,
    Ty::Uint,
    Ty::Double,
    Ty::Str,
    Ty::List,
    Ty::Map,
    Ty::Any,
];

/// Writes a random expression. Run twice from the same seed it makes the same choices;
/// with `hoist` every literal is written as `context.lits[i]` instead, which the
/// compiler cannot fold — so the two spellings must evaluate alike.
pub(super) struct Gen<'a> {
    pub(super) rng: &'a mut Rng,
    pub(super) hoist: bool,
    pub(super) lits: Vec<Val>,
    pub(super) locals: Vec<&'static str>,
}

impl Gen<'_> {
    fn lit(&mut self, value: Val, source: String) -> String {
        if self.hoist {
            self.lits.push(value);
            format!("context.lits[{}]", self.lits.len() - 1)
        } else {
            source
        }
    }

    /// A list literal; an empty one is a literal too, hoisted like the others.
    fn list_of(&mut self, items: Vec<String>) -> String {
        if items.is_empty() {
            self.lit(Val::List(Rc::default()), "[]".into())
        } else {
            format!("[{}]", items.join(", "))
        }
    }

    fn int(&mut self) -> String {
        let i = self.rng.pick(&INTS);
        self.lit(Val::Int(i), format!("{i}"))
    }
    fn string(&mut self, s: &str) -> String {
        let quoted = format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"));
        self.lit(Val::str(s), quoted)
    }

    fn leaf(&mut self, ty: Ty) -> String {
        let key = self.rng.pick(&KEYS);
        match ty {
            Ty::Bool => match self.rng.below(3) {
                0 => {
                    let b = self.rng.chance(50);
                    self.lit(Val::Bool(b), b.to_string())
                }
                1 => "claims.admin".into(),
                _ => format!("has(claims.{key})"),
            },
            Ty::Int => match self.rng.below(3) {
                0 | 1 => self.int(),
                _ => self
                    .rng
                    .pick(&["claims.n", "claims.exp", "resource.n"])
                    .into(),
            },
            Ty::Uint => {
                if self.rng.chance(70) {
                    let u = self.rng.pick(&UINTS);
                    self.lit(Val::Uint(u), format!("{u}u"))
                } else {
                    "claims.big".into()
                }
            }
            Ty::Double => {
                if self.rng.chance(70) {
                    let d = self.rng.pick(&DOUBLES);
                    self.lit(Val::Double(d), format!("{d:?}"))
                } else {
                    "claims.f".into()
                }
            }
            Ty::Str => match self.rng.below(3) {
                0 | 1 => {
                    let s = self.rng.pick(&STRINGS);
                    self.string(s)
                }
                _ => self
                    .rng
                    .pick(&[
                        "claims.sub",
                        "resource.tenant",
                        "context.method",
                        "claims.tenant",
                    ])
                    .into(),
            },
            Ty::List => match self.rng.below(4) {
                0 => self.lit(Val::List(Rc::new(Vec::new())), "[]".into()),
                1 => self
                    .rng
                    .pick(&["scopes", "roles", "claims.groups", "resource.labels"])
                    .into(),
                _ => {
                    let items: Vec<String> =
                        (0..self.rng.below(4)).map(|_| self.leaf(Ty::Any)).collect();
                    self.list_of(items)
                }
            },
            Ty::Map => match self.rng.below(3) {
                0 => self
                    .rng
                    .pick(&["claims", "resource", "claims.nested"])
                    .into(),
                _ => {
                    let mut keys: Vec<&str> = (0..self.rng.below(3))
                        .map(|_| self.rng.pick(&KEYS))
                        .collect();
                    keys.sort_unstable();
                    keys.dedup();
                    let entries: Vec<String> = keys
                        .into_iter()
                        .map(|k| {
                            let k = self.string(k);
                            format!("{k}: {}", self.leaf(Ty::Any))
                        })
                        .collect();
                    if entries.is_empty() {
                        self.lit(Val::Map(Rc::default()), "{}".into())
                    } else {
                        format!("{{{}}}", entries.join(", "))
                    }
                }
            },
            Ty::Time => {
                if self.rng.chance(50) {
                    "context.time".into()
                } else {
                    let t = self.rng.pick(&TIMESTAMPS);
                    format!("timestamp({})", self.string(t))
                }
            }
            Ty::Dur => {
                let d = self.rng.pick(&DURATIONS);
                format!("duration({})", self.string(d))
            }
            Ty::Any => {
                if !self.locals.is_empty() && self.rng.chance(50) {
                    return self.rng.pick(&self.locals).into();
                }
                match self.rng.below(6) {
                    0 => format!("claims.{key}"),
                    1 => format!("claims[{}]", self.string(key)),
                    2 => format!("resource.{key}"),
                    _ => {
                        let ty = self.rng.pick(&SWAPS[..7]);
                        self.leaf(ty)
                    }
                }
            }
        }
    }

    pub(super) fn expr(&mut self, ty: Ty, depth: u32) -> String {
        let ty = if self.rng.chance(6) {
            self.rng.pick(&SWAPS)
        } else {
            ty
        };
        if depth == 0 || self.rng.chance(20) {
            return self.leaf(ty);
        }
        let d = depth - 1;
        match ty {
            Ty::Bool => match self.rng.below(9) {
                0 => format!("({} && {})", self.expr(Ty::Bool, d), self.expr(Ty::Bool, d)),
                1 => format!("({} || {})", self.expr(Ty::Bool, d), self.expr(Ty::Bool, d)),
                2 => format!("!{}", self.expr(Ty::Bool, d)),
                3 | 4 => {
                    let op = self.rng.pick(&["==", "!=", "<", "<=", ">", ">="]);
                    let (a, b) = match self.rng.below(4) {
                        0 => (
                            self.rng.pick(&[Ty::Int, Ty::Uint, Ty::Double]),
                            self.rng.pick(&[Ty::Int, Ty::Uint, Ty::Double]),
                        ),
                        1 => (Ty::Str, Ty::Str),
                        2 => (Ty::Time, Ty::Time),
                        _ => (Ty::Any, self.rng.pick(&SWAPS)),
                    };
                    format!("({} {op} {})", self.expr(a, d), self.expr(b, d))
                }
                5 => match self.rng.below(2) {
                    0 => format!("({} in {})", self.expr(Ty::Any, d), self.expr(Ty::List, d)),
                    _ => format!("({} in {})", self.expr(Ty::Str, d), self.expr(Ty::Map, d)),
                },
                6 => {
                    let f = self.rng.pick(&["startsWith", "endsWith", "contains"]);
                    format!("{}.{f}({})", self.expr(Ty::Str, d), self.expr(Ty::Str, d))
                }
                7 => {
                    let m = self.rng.pick(&["exists", "all", "exists_one"]);
                    self.macro_call(m, Ty::Bool, d)
                }
                _ => format!(
                    "({} ? {} : {})",
                    self.expr(Ty::Bool, d),
                    self.expr(Ty::Bool, d),
                    self.expr(Ty::Bool, d)
                ),
            },
            Ty::Int => match self.rng.below(6) {
                0 | 1 => {
                    let op = self.rng.pick(&["+", "-", "*", "/", "%"]);
                    format!("({} {op} {})", self.expr(Ty::Int, d), self.expr(Ty::Int, d))
                }
                2 => {
                    let of = self.rng.pick(&[Ty::Str, Ty::List, Ty::Map]);
                    format!("size({})", self.expr(of, d))
                }
                3 => {
                    let of = self.rng.pick(&[Ty::Double, Ty::Uint, Ty::Str, Ty::Time]);
                    format!("int({})", self.expr(of, d))
                }
                4 => {
                    let a = self.rng.pick(&ACCESSORS);
                    let t = self.expr(Ty::Time, d);
                    if self.rng.chance(50) {
                        let z = self.rng.pick(&ZONES);
                        format!("{t}.{a}({})", self.string(z))
                    } else {
                        format!("{t}.{a}()")
                    }
                }
                _ => {
                    let a = self.rng.pick(&["getHours", "getMinutes", "getSeconds"]);
                    format!("{}.{a}()", self.expr(Ty::Dur, d))
                }
            },
            Ty::Uint => match self.rng.below(2) {
                0 => {
                    let op = self.rng.pick(&["+", "-", "*", "/", "%"]);
                    format!(
                        "({} {op} {})",
                        self.expr(Ty::Uint, d),
                        self.expr(Ty::Uint, d)
                    )
                }
                _ => {
                    let of = self.rng.pick(&[Ty::Int, Ty::Double, Ty::Str]);
                    format!("uint({})", self.expr(of, d))
                }
            },
            Ty::Double => match self.rng.below(3) {
                0 => {
                    let op = self.rng.pick(&["+", "-", "*", "/"]);
                    format!(
                        "({} {op} {})",
                        self.expr(Ty::Double, d),
                        self.expr(Ty::Double, d)
                    )
                }
                1 => format!("(-{})", self.leaf(Ty::Double)),
                _ => {
                    let of = self.rng.pick(&[Ty::Int, Ty::Uint, Ty::Str]);
                    format!("double({})", self.expr(of, d))
                }
            },
            Ty::Str => match self.rng.below(3) {
                0 => format!("({} + {})", self.expr(Ty::Str, d), self.expr(Ty::Str, d)),
                1 => {
                    let of = self
                        .rng
                        .pick(&[Ty::Int, Ty::Uint, Ty::Double, Ty::Bool, Ty::Dur]);
                    format!("string({})", self.expr(of, d))
                }
                _ => format!(
                    "({} ? {} : {})",
                    self.expr(Ty::Bool, d),
                    self.expr(Ty::Str, d),
                    self.expr(Ty::Str, d)
                ),
            },
            Ty::List => match self.rng.below(4) {
                0 => format!("({} + {})", self.expr(Ty::List, d), self.expr(Ty::List, d)),
                1 => self.macro_call("map", Ty::Any, d),
                2 => self.macro_call("filter", Ty::Bool, d),
                _ => {
                    let items: Vec<String> = (0..self.rng.below(4))
                        .map(|_| self.expr(Ty::Any, d))
                        .collect();
                    self.list_of(items)
                }
            },
            Ty::Map => self.leaf(Ty::Map),
            Ty::Time => match self.rng.below(3) {
                0 => format!("({} + {})", self.expr(Ty::Time, d), self.expr(Ty::Dur, d)),
                1 => format!("({} - {})", self.expr(Ty::Time, d), self.expr(Ty::Dur, d)),
                _ => format!("timestamp({})", self.expr(Ty::Int, d)),
            },
            Ty::Dur => match self.rng.below(3) {
                0 => format!("({} - {})", self.expr(Ty::Time, d), self.expr(Ty::Time, d)),
                1 => {
                    let op = self.rng.pick(&["+", "-"]);
                    format!("({} {op} {})", self.expr(Ty::Dur, d), self.expr(Ty::Dur, d))
                }
                _ => self.leaf(Ty::Dur),
            },
            Ty::Any => match self.rng.below(3) {
                0 => format!("{}[{}]", self.expr(Ty::List, d), self.expr(Ty::Int, d)),
                1 => format!("{}[{}]", self.expr(Ty::Map, d), self.expr(Ty::Str, d)),
                _ => self.leaf(Ty::Any),
            },
        }
    }

    /// A range that is surely a list: `map` and `filter` over a map's keys give them in an
    /// unspecified order (ours sorted, the crate's by hash), so they only get lists.
    fn list_range(&mut self, depth: u32) -> String {
        match self.rng.below(if depth == 0 { 3 } else { 4 }) {
            0 => self.rng.pick(&["scopes", "roles"]).into(),
            1 | 2 => {
                let items: Vec<String> =
                    (0..self.rng.below(4)).map(|_| self.leaf(Ty::Any)).collect();
                self.list_of(items)
            }
            _ => {
                let m = self.rng.pick(&["map", "filter"]);
                let body = if m == "map" { Ty::Any } else { Ty::Bool };
                self.macro_call(m, body, depth - 1)
            }
        }
    }

    /// `range.m(x, body)`, the loop variable usable in the body (only there).
    fn macro_call(&mut self, m: &str, body: Ty, depth: u32) -> String {
        let range = if m == "map" || m == "filter" {
            self.list_range(depth)
        } else if self.rng.chance(80) {
            self.expr(Ty::List, depth)
        } else {
            self.expr(Ty::Map, depth)
        };
        let var = ["x", "y", "z", "w"][self.locals.len().min(3)];
        self.locals.push(var);
        let body = if m != "map" && self.rng.chance(30) {
            // `x in set`, the label check policies write most (and that an evaluator may
            // well special-case): the set a list or a map, maybe failing, maybe using `x`
            let set = if self.rng.chance(70) {
                Ty::List
            } else {
                Ty::Map
            };
            format!("{var} in {}", self.expr(set, depth))
        } else {
            self.expr(body, depth)
        };
        self.locals.pop();
        format!("{range}.{m}({var}, {body})")
    }
}
