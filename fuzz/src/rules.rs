//! Rule conditions: compiled from any text, evaluated against a fixed or a generated world.
//!
//! Properties of a condition that compiles, for each of two resources:
//! - evaluating it never panics and ends (libFuzzer's `-timeout` catches a loop the step
//!   budget should have cut);
//! - a resource that answers `==` and `exists`/`all` membership in place, as the extension's
//!   do, gives the same result as the converted resource;
//! - as a permit it allows exactly when the condition is `true`, as a forbid (beside an
//!   unconditional permit) it denies unless the condition is `false`: failing closed on
//!   errors, out of steps or not a bool; `decide` (whose memo carries the part that does not
//!   read the resource from the first row to the second) and `explain` agree.
//!
//! A condition that does not compile is refused as a row: its permit grants nothing and its
//! forbid denies.

use super::gen;
use arbitrary::{Arbitrary, Result, Unstructured};
use oidc_authz_core::rules::eval::{strings_membership, EvalError, Request, Resource};
use oidc_authz_core::rules::value::Val;
use oidc_authz_core::rules::{context, lint, residual, residual_text, RuleSet};
use serde_json::json;

const NANOS: i128 = 1_000_000_000;
/// 2026-11-27T10:00:00.123456789Z, a Friday, as `rules_cel.rs` has it.
const NOW_NS: i128 = 1_795_773_600 * NANOS + 123_456_789;
/// CEL's timestamp range, in seconds: 0001-01-01 to 9999-12-31T23:59:59.
const SECONDS: std::ops::RangeInclusive<i64> = -62_135_596_800..=253_402_300_799;

/// What conditions are evaluated against.
struct World {
    claims: Val,
    scopes: Val,
    roles: Val,
    context: Val,
    resources: [Val; 2],
}

impl World {
    /// The world of `core/tests/rules_cel.rs`, and a second resource.
    fn fixed() -> World {
        World {
            claims: Val::from_json(&json!({
                "sub": "alice", "groups": ["eng", "ops"], "exp": 1_900_000_000, "tenant": "t1",
                "n": 3, "f": 2.5, "admin": true, "suspended": false, "nested": {"a": {"b": 1}},
                "none": null, "big": 18_446_744_073_709_551_615u64, "s": "Hello, 世界",
                "roles": ["editor"], "scope": "docs:read docs:write",
            })),
            scopes: Val::from_json(&json!(["docs:read", "docs:write"])),
            roles: Val::from_json(&json!(["editor"])),
            context: context(NOW_NS, Some("GET"), Some("/documents")),
            resources: [
                Val::from_json(&json!({
                    "owner": "alice", "labels": ["ops", "x"], "tenant": "t1", "size": 1.5,
                    "count": 2, "meta": {"k": "v"}, "mixed": [1, "a", 2.5, null, true],
                })),
                Val::from_json(&json!({
                    "owner": "bob", "labels": [], "tenant": "t2", "public": true, "count": -1,
                })),
            ],
        }
    }

    fn generated(u: &mut Unstructured) -> Result<World> {
        let claims = Val::from_json(&gen::object(u, 3)?);
        let scopes = Val::list_of_strings(&gen::strings(u)?);
        let roles = Val::list_of_strings(&gen::strings(u)?);
        let time = match u.choose_index(3)? {
            0 => NOW_NS + i128::from(u.int_in_range(-1_000_000_000i64..=1_000_000_000)?),
            1 => i128::from(u.int_in_range(SECONDS)?) * NANOS,
            _ => i128::from(u.int_in_range(SECONDS)?) * NANOS + i128::from(u32::arbitrary(u)?),
        };
        let text = |u: &mut Unstructured| -> Result<Option<String>> {
            Ok(if bool::arbitrary(u)? {
                None
            } else {
                Some(gen::string(u)?)
            })
        };
        let method = text(u)?;
        let path = text(u)?;
        let context = context(
            time.min(*SECONDS.end() as i128 * NANOS),
            method.as_deref(),
            path.as_deref(),
        );
        let resource = |u: &mut Unstructured| -> Result<Val> {
            Ok(Val::from_json(&match u.choose_index(4)? {
                0..=2 => gen::object(u, 3)?,
                _ => gen::value(u, 2)?,
            }))
        };
        Ok(World {
            claims,
            scopes,
            roles,
            context,
            resources: [resource(u)?, resource(u)?],
        })
    }

    fn request<'a>(&'a self, resource: &'a dyn Resource) -> Request<'a> {
        Request {
            claims: &self.claims,
            scopes: &self.scopes,
            roles: &self.roles,
            context: &self.context,
            resource,
        }
    }
}

/// A resource that decides `resource.x == "…"` and `resource.xs.exists(x, x in set)` (or
/// `.all`) in place when it can, as the extension's `jsonb` and column resources do.
struct InPlace<'v>(&'v Val);

impl Resource for InPlace<'_> {
    fn field(&self, name: &str) -> Option<Val> {
        self.0.field(name)
    }

    fn whole(&self) -> Val {
        self.0.whole()
    }

    fn field_equals(&self, name: &str, value: &Val) -> Option<bool> {
        match self.0.field(name)? {
            Val::Str(s) => Some(matches!(value, Val::Str(v) if *v == s)),
            _ => None,
        }
    }

    fn membership(
        &self,
        name: &str,
        set: &std::result::Result<Val, EvalError>,
        all: bool,
    ) -> Option<(std::result::Result<bool, EvalError>, usize)> {
        let Some(Val::List(list)) = self.0.field(name) else {
            return None;
        };
        let strings = list.iter().map(|v| match v {
            Val::Str(s) => Some(&**s),
            _ => None,
        });
        strings_membership(strings, list.len(), set, all)
    }
}

/// The `rule_compile` target: the bytes as a condition, in the fixed world.
pub fn rule_compile(data: &[u8]) {
    if let Ok(source) = std::str::from_utf8(data) {
        check_condition(source, &World::fixed());
    }
}

/// The `rule_eval` target: a condition (the bytes up to the first NUL, which a condition
/// cannot hold), in a world generated from the rest.
pub fn rule_eval(data: &[u8]) {
    let (source, rest) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(source) = std::str::from_utf8(source) else {
        return;
    };
    let Ok(world) = World::generated(&mut Unstructured::new(rest)) else {
        return;
    };
    check_condition(source, &world);
}

/// A result as compared: the value's debug form, or the error's text.
fn shown(r: &std::result::Result<Val, EvalError>) -> std::result::Result<String, String> {
    match r {
        Ok(v) => Ok(format!("{v:?}")),
        Err(e) => Err(e.to_string()),
    }
}

fn check_condition(source: &str, world: &World) {
    // The condition as a permit (`read`), and as a forbid beside a permit that always holds
    // (`write`); compiled once each, by the rows (the parser is most of the cost).
    let row = |name: &str, effect: &str, action: &str, condition: Option<&str>| {
        json!({
            "name": name, "effect": effect, "actions": [action], "resource_type": "doc",
            "condition": condition,
        })
    };
    let (set, errors) = RuleSet::from_rows(&[
        row("p", "permit", "read", Some(source)),
        row("always", "permit", "write", None),
        row("f", "forbid", "write", Some(source)),
    ]);
    let empty = source.trim().is_empty();
    let program = set.by_name("p").and_then(|(_, r)| r.program.as_ref());
    assert_eq!(
        errors.is_empty(),
        program.is_some() || empty,
        "a refused row has a program"
    );
    for e in &errors {
        let _ = e.to_string();
    }
    // What the condition gives for each resource: `Some(b)` for a bool, `None` otherwise.
    let mut values: [Option<bool>; 2] = [None, None];
    if let Some(program) = program {
        let _ = lint::resource_attributes(program);
        for (r, value) in world.resources.iter().zip(values.iter_mut()) {
            let plain = program.evaluate(&world.request(r));
            let in_place = program.evaluate(&world.request(&InPlace(r)));
            assert_eq!(shown(&plain), shown(&in_place), "in-place resource differs");
            *value = match plain {
                Ok(Val::Bool(b)) => Some(b),
                _ => None,
            };
            if let Some(t) = residual::translate(program) {
                if let Ok(fixed) = t.fixed_values(&world.request(r)) {
                    let _ = residual_text::render(&t.residual, &fixed);
                }
            }
        }
    }
    // A permit holds only for `true`; a forbid denies unless `false`, and a row that does not
    // load denies as a forbid and grants nothing as a permit.
    decide(
        &set,
        "read",
        world,
        values.map(|v| empty || v == Some(true)),
    );
    let loaded = program.is_some();
    decide(
        &set,
        "write",
        world,
        values.map(|v| !empty && loaded && v == Some(false)),
    );
}

/// `decide` over both resources with one `Matching` (its memo carried from the first to the
/// second), and `explain` for each, must give `want`.
fn decide(set: &RuleSet, action: &str, world: &World, want: [bool; 2]) {
    let m = set.matching(action, "doc");
    for (r, want) in world.resources.iter().zip(want) {
        let req = world.request(r);
        let verdict = set.decide(&m, &req);
        let explained = set.explain(action, "doc", &req);
        assert_eq!(verdict.allowed, want, "decide: {:?}", explained.to_json());
        assert_eq!(
            explained.allowed,
            want,
            "explain: {:?}",
            explained.to_json()
        );
    }
}
