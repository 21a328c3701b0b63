//! Differential tests: our rule evaluator against the `cel` crate's interpreter (cel 0.15,
//! `chrono` on), the reference the issue keeps for this purpose.
//!
//! Both sides see the same inputs, converted here from our `Val`s (never through
//! `cel::to_value`/JSON, which would turn non-negative integers into `uint`). A case agrees
//! when both give equal values — compared structurally, numbers by CEL equality *and* of the
//! same type, since `1` and `1u` behave differently in later arithmetic — or both fail. Our
//! compile-time refusals count as failures: a condition that cannot be compiled never holds.
//!
//! Where the two disagree, `DIVERGENCES` names the reason, checked against the CEL spec
//! (cel-spec `doc/langdef.md` and its conformance suite `tests/simple/testdata`), and pins
//! what our evaluator gives; each such case must still disagree, so a stale exception fails.
//!
//! Three parts: a hand-written table over every feature, the named divergences, and a few
//! thousand generated expressions over random JSON-ish inputs.

use cel::objects::{Key, Map as CelMap};
use cel::{Context, Value as Cel};
use chrono::{TimeZone, Utc};
use oidc_authz_core::rules::compile::compile;
use oidc_authz_core::rules::eval::Request;
use oidc_authz_core::rules::value::Val;
use serde_json::{json, Value as Json};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;

const NANOS: i128 = 1_000_000_000;

// ---------------------------------------------------------------------------------------
// Running both sides

#[derive(Clone)]
struct World {
    claims: Val,
    scopes: Val,
    roles: Val,
    resource: Val,
    context: Val,
}

#[derive(Debug)]
enum Ours {
    Refused(String),
    Failed(String),
    Value(Val),
}

#[derive(Debug)]
#[expect(
    dead_code,
    reason = "the messages are for failure output, through Debug"
)]
enum Theirs {
    Unparsed(String),
    Failed(String),
    Value(Cel),
}

fn ours(expr: &str, w: &World) -> Ours {
    let program = match compile(expr) {
        Ok(p) => p,
        Err(e) => return Ours::Refused(e.to_string()),
    };
    let req = Request {
        claims: &w.claims,
        scopes: &w.scopes,
        roles: &w.roles,
        context: &w.context,
        resource: &w.resource,
    };
    match program.evaluate(&req) {
        Ok(v) => Ours::Value(v),
        Err(e) => Ours::Failed(e.to_string()),
    }
}

fn theirs(expr: &str, w: &World) -> Theirs {
    let program = match cel::Program::compile(expr) {
        Ok(p) => p,
        Err(e) => return Theirs::Unparsed(e.to_string()),
    };
    let mut ctx = Context::default();
    ctx.add_variable_from_value("claims", to_cel(&w.claims));
    ctx.add_variable_from_value("scopes", to_cel(&w.scopes));
    ctx.add_variable_from_value("roles", to_cel(&w.roles));
    ctx.add_variable_from_value("resource", to_cel(&w.resource));
    ctx.add_variable_from_value("context", to_cel(&w.context));
    match program.execute(&ctx) {
        Ok(v) => Theirs::Value(v),
        Err(e) => Theirs::Failed(e.to_string()),
    }
}

fn to_cel(v: &Val) -> Cel {
    match v {
        Val::Null => Cel::Null,
        Val::Bool(b) => Cel::Bool(*b),
        Val::Int(i) => Cel::Int(*i),
        Val::Uint(u) => Cel::UInt(*u),
        Val::Double(d) => Cel::Float(*d),
        Val::Str(s) => Cel::String(Arc::new(s.to_string())),
        Val::List(l) => Cel::List(Arc::new(l.iter().map(to_cel).collect())),
        Val::Map(m) => Cel::Map(CelMap {
            map: Arc::new(
                m.iter()
                    .map(|(k, v)| (Key::String(Arc::new(k.to_string())), to_cel(v)))
                    .collect::<HashMap<_, _>>(),
            ),
        }),
        Val::Timestamp(ns) => {
            let secs = ns.div_euclid(NANOS) as i64;
            let Some(t) = Utc
                .timestamp_opt(secs, ns.rem_euclid(NANOS) as u32)
                .single()
            else {
                unreachable!("a Val timestamp is within CEL's range, which chrono covers")
            };
            Cel::Timestamp(t.fixed_offset())
        }
        Val::Duration(ns) => Cel::Duration(chrono::Duration::nanoseconds(*ns as i64)),
    }
}

/// Equal values: structurally, numbers by value and type, NaN equal to NaN (both sides
/// computed the same NaN; CEL's `NaN != NaN` is about the language, not this comparison).
fn same(a: &Val, b: &Cel) -> bool {
    match (a, b) {
        (Val::Null, Cel::Null) => true,
        (Val::Bool(x), Cel::Bool(y)) => x == y,
        (Val::Int(x), Cel::Int(y)) => x == y,
        (Val::Uint(x), Cel::UInt(y)) => x == y,
        (Val::Double(x), Cel::Float(y)) => x == y || (x.is_nan() && y.is_nan()),
        (Val::Str(x), Cel::String(y)) => **x == **y,
        (Val::List(x), Cel::List(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(a, b)| same(a, b))
        }
        (Val::Map(x), Cel::Map(y)) => {
            x.len() == y.map.len()
                && x.iter().all(|(k, v)| {
                    let key = Key::String(Arc::new(k.to_string()));
                    y.map.get(&key).is_some_and(|w| same(v, w))
                })
        }
        (Val::Timestamp(ns), Cel::Timestamp(t)) => {
            *ns == i128::from(t.timestamp()) * NANOS + i128::from(t.timestamp_subsec_nanos())
        }
        (Val::Duration(ns), Cel::Duration(d)) => d.num_nanoseconds().map(i128::from) == Some(*ns),
        _ => false,
    }
}

fn agree(o: &Ours, t: &Theirs) -> bool {
    match (o, t) {
        (Ours::Value(a), Theirs::Value(b)) => same(a, b),
        (Ours::Refused(_) | Ours::Failed(_), Theirs::Failed(_) | Theirs::Unparsed(_)) => true,
        _ => false,
    }
}

fn obj(v: Json) -> Val {
    Val::from_json(&v)
}

/// The table's world: an authenticated user, a document, a Friday morning.
fn table_world() -> World {
    World {
        claims: obj(json!({
            "sub": "alice", "groups": ["eng", "ops"], "exp": 1_900_000_000, "tenant": "t1",
            "n": 3, "f": 2.5, "admin": true, "nested": {"a": {"b": 1}}, "none": null,
            "big": 18_446_744_073_709_551_615u64, "neg": -5, "empty": [], "s": "Hello, 世界",
            "min": i64::MIN, "max": i64::MAX, "zero": 0
        })),
        scopes: obj(json!(["docs:read", "docs:write"])),
        roles: obj(json!(["editor"])),
        resource: obj(json!({
            "owner": "alice", "labels": ["ops", "x"], "tenant": "t1", "size": 1.5, "count": 2,
            "meta": {"k": "v"}, "mixed": [1, "a", 2.5, null, true]
        })),
        // 2026-11-27T10:00:00.123456789Z
        context: oidc_authz_core::rules::context(
            1_795_773_600 * NANOS + 123_456_789,
            Some("GET"),
            Some("/documents"),
        ),
    }
}

// ---------------------------------------------------------------------------------------
// The table: every feature the issue lists, with the edges of each

#[rustfmt::skip]
const TABLE: &[&str] = &[
    // literals
    "1", "-1", "1u", "1.5", "-0.0", "1e3", "'a'", "\"b\"", "'''tri'''", "r'raw\\n'", "'\\u00e9'",
    "true", "false", "null", "[]", "[1, 'a', 2.5]", "{}", "{'a': 1, 'b': [1]}", "{'a': 1, 'a': 2}",
    "9223372036854775807", "-9223372036854775808", "18446744073709551615u", "0x10", "0x10u",
    "9223372036854775808", "18446744073709551616u",
    // arithmetic, overflow, division by zero
    "1 + 2", "1 + 2u", "1u + 2u", "1 + 2.0", "1.0 + 2.0", "9223372036854775807 + 1",
    "-9223372036854775808 - 1", "0u - 1u", "18446744073709551615u + 1u", "5 / 2", "-5 / 2", "5 % 3",
    "-5 % 3", "5 % -3", "5 / 0", "5 % 0", "5u / 0u", "5u % 0u", "5.0 / 0.0", "-5.0 / 0.0",
    "0.0 / 0.0", "5.0 % 2.0", "-9223372036854775808 / -1", "-9223372036854775808 % -1",
    "9223372036854775807 * 2", "4611686018427387904u * 4u", "-(1u)", "-(-9223372036854775807 - 1)",
    "-(1.5)", "--1", "'a' + 'b'", "'a' + 1", "[1] + [2, 3]", "[1] + 1", "{'a': 1} + {'b': 2}",
    "claims.n * claims.f", "claims.n * 2 + claims.neg", "claims.exp + 60", "claims.big + 1u",
    "claims.big + 1", "claims.max + 1", "claims.min - 1", "claims.f / 0.0",
    "claims.n / claims.zero", "claims.n % claims.zero", "claims.min / -1",
    // comparisons across int, uint, double and other types
    "1 == 1", "1 == 1u", "1 == 1.0", "1u == 1.0", "1 == 2", "1 != 1.0", "1 < 2u", "2u < 1",
    "1 < 1.5", "1.5 < 1", "-1 < 1u", "1u > -1", "18446744073709551615u > 9223372036854775807",
    "18446744073709551615u == 18446744073709551615.0",
    "9223372036854775807 == 9223372036854775808.0", "9223372036854775807 < 9223372036854775808.0",
    "1 == 'a'", "1 != 'a'", "'a' == 'a'", "'a' < 'b'", "'B' < 'a'", "'é' > 'z'", "'' < 'a'",
    "true < false", "false < true", "true == true", "null == null", "null != null", "null == 1",
    "null < 1", "[1, 2] == [1, 2]", "[1, 2] == [1.0, 2u]", "[1, 2] == [2, 1]", "[1] == ['a']",
    "[1] < [2]", "{'a': 1} == {'a': 1.0}", "{'a': 1} == {'a': 2}", "{'a': 1} == {'b': 1}",
    "{'a': 1} < {'a': 2}", "0.0 / 0.0 == 0.0 / 0.0", "0.0 / 0.0 != 0.0 / 0.0", "0.0 / 0.0 < 1.0",
    "0.0 / 0.0 > 1.0", "1 < 0.0 / 0.0", "-0.0 == 0.0", "1 == [1]", "'1' == 1",
    "claims.sub == resource.owner", "claims.n > resource.count", "claims.f <= resource.size",
    "claims.none == null", "claims.big > claims.max", "claims.big == 18446744073709551615u",
    "claims.exp < 1900000001u", "claims.exp == 1900000000.0", "context.time == context.time",
    "context.time < 5", "context.time == 5",
    // logic, with CEL's error absorption
    "true && true", "true && false", "false && true", "true || false", "false || false", "!true",
    "!!false", "!1", "1 && true", "true && 1", "false && 1", "1 && false", "true || 1", "1 || true",
    "false || 1", "1 || false", "false && claims.missing", "claims.missing && false",
    "claims.missing || true", "true || claims.missing", "claims.missing && true",
    "claims.missing || false", "claims.missing && claims.other",
    "claims.n / claims.zero == 0 || true", "claims.n / claims.zero == 0 && false",
    "!claims.missing", "claims.missing || claims.n > 2 || claims.other",
    // conditionals
    "true ? 1 : 2", "false ? 1 : 2", "1 ? 1 : 2", "claims.missing ? 1 : 2",
    "true ? 1 : claims.missing", "false ? claims.missing : 'x'", "true ? 'a' : 1",
    "claims.admin ? resource.owner : 'nobody'", "has(claims.x) ? claims.x : 'default'",
    "has(claims.sub) ? claims.sub : 'default'",
    // `.` and `[]` access, has()
    "claims.sub", "claims['sub']", "claims.nested.a.b", "claims['nested']['a']['b']",
    "claims.nested.a.c", "claims.missing", "claims.missing.deeper", "claims.sub.length",
    "claims.groups[0]", "claims.groups[1]", "claims.groups[2]", "claims.groups[-1]",
    "claims.groups[1u]", "claims.groups[1.0]", "claims.groups[1.5]", "claims.groups['0']",
    "claims[1]", "claims[true]", "claims.none.x", "resource.owner", "resource.missing",
    "resource['owner']", "resource.meta.k", "resource.mixed[3]", "[1, 2, 3][0]", "{'a': 1}['a']",
    "{'a': 1}['b']", "{'a': 1}.a", "{'a': {'b': 2}}.a.b", "has(claims.sub)", "has(claims.missing)",
    "has(claims.none)", "has(claims.nested.a)", "has(claims.nested.a.b)", "has(claims.nested.x.b)",
    "has(claims.sub.x)", "has(claims.groups.x)", "has(resource.owner)", "has(resource.nope)",
    "has(resource.meta.k)", "has({'a': 1}.a)", "has({'a': 1}.b)",
    // in
    "'eng' in claims.groups", "'dev' in claims.groups", "'docs:read' in scopes", "'sub' in claims",
    "'nope' in claims", "1 in [1, 2]", "1.0 in [1, 2]", "1u in [1, 2]", "'1' in [1, 2]",
    "1 in {'a': 1}", "'a' in {'a': 1}", "1 in 'abc'", "'a' in 'abc'", "null in [null]",
    "[1] in [[1], [2]]", "claims.missing in [1]", "1 in claims.missing",
    "resource.owner in [claims.sub]",
    "[1] in {'a': 1}", "null in {'a': 1}", "{} in {}", "{} + scopes", "1.5 in {'a': 1}", "true in {'a': 1}",
    "context.time in {'a': 1}", "claims.nested in claims", "claims.groups in claims",
    "resource + scopes",
    // size()
    "size('abc')", "size('世界')", "size('')", "size([1, 2, 3])", "size({'a': 1})", "size(1)",
    "size(null)", "'abc'.size()", "[1].size()", "size(claims.groups)", "size(claims)",
    "size(claims.s)", "size(claims.missing)",
    // strings
    "'hello'.startsWith('he')", "'hello'.startsWith('lo')", "'hello'.endsWith('lo')",
    "'hello'.contains('ell')", "'hello'.contains('')", "''.startsWith('')", "'hello'.startsWith(1)",
    "1.startsWith('1')", "claims.sub.startsWith('al')", "claims.s.contains('世')",
    "claims.groups.contains('eng')", "context.path.startsWith('/doc')",
    // macros, including errors inside them
    "[1, 2, 3].exists(x, x > 2)", "[1, 2, 3].exists(x, x > 3)", "[].exists(x, x > 0)",
    "[1, 2, 3].all(x, x > 0)", "[1, 2, 3].all(x, x > 1)", "[].all(x, false)",
    "[1, 2, 3].exists_one(x, x > 2)", "[1, 2, 3].exists_one(x, x > 1)", "[1, 2, 3].map(x, x * 2)",
    "[1, 2, 3].filter(x, x % 2 == 1)", "[1, 2, 3].map(x, x > 1, x * 10)",
    "{'a': 1, 'b': 2}.exists(k, k == 'b')", "{'a': 1, 'b': 2}.all(k, k.size() == 1)",
    // (a map's iteration order is unspecified: only order-free uses of map over a map)
    "'b!' in {'a': 1, 'b': 2}.map(k, k + '!')", "size({'a': 1, 'b': 2}.filter(k, k > 'a'))",
    "[0, 1].exists(x, 1 / x > 0)", "[1, 0].exists(x, 1 / x > 0)", "[0, -1].all(x, 1 / x > 0)",
    "[-1, 0].all(x, 1 / x > 0)", "[1, 0].all(x, 1 / x > 0)", "[0, 1].exists_one(x, 1 / x > 0)",
    "[0, 1].map(x, 1 / x)", "[0, 1].filter(x, 1 / x > 0)", "resource.mixed.exists(x, x == 'a')",
    "resource.mixed.exists(x, x > 1)", "resource.mixed.all(x, x != null)",
    "resource.mixed.all(x, x > 100)", "resource.labels.exists(l, l in claims.groups)",
    "resource.labels.all(l, l.startsWith('o'))", "resource.labels.exists_one(l, l == 'x')",
    "resource.labels.map(l, l + '!')", "resource.labels.filter(l, l != 'x')",
    "[[1, 2], [3]].exists(l, l.exists(x, x == 3))", "[[1, 2], [3]].map(l, l.map(x, x * 2))",
    "[1, 2].exists(x, [3, 4].exists(y, x + y == 5))", "[1, 2].map(x, [10, 20].map(y, x + y))",
    "[[0], [1]].map(l, l.exists(x, 1 / x > 0))", "claims.missing.exists(x, true)",
    "1.exists(x, true)", "'abc'.exists(x, true)", "[1, 2].exists(x, x)", "[1, 2].all(x, 'a')",
    "claims.groups.exists(g, g == claims.sub)", "size([1, 2, 3].filter(x, x > 1)) == 2",
    "[1, 2].map(x, x).map(y, y + 1)", "claims.groups.map(g, g + g)",
    // membership inside a macro, the label check of most policies, with errors on each side
    "resource.mixed.exists(x, x in [1])", "resource.mixed.all(x, x in claims.groups)",
    "[1, 'a'].exists(x, x in claims.missing)", "claims.missing.exists(x, x in [1])",
    "resource.labels.all(l, l in resource.meta)", "resource.labels.exists(l, l in resource)",
    "[[1], 'a'].exists(x, x in {'a': 1})", "[1, [1]].exists(x, x in {'a': 1})",
    "[[1], 'b'].all(x, x in {'a': 1})", "claims.groups.exists(g, g in claims.groups)",
    "[].all(x, x in claims.missing)", "scopes.exists(s, s in roles)",
    // timestamps and durations
    "timestamp('2026-11-27T10:00:00Z')", "timestamp('2026-11-27T10:00:00+01:00')",
    "timestamp('2026-11-27T10:00:00.5Z')", "timestamp('2026-11-27T10:00:00.123456789Z')",
    "timestamp('2026-11-27')", "timestamp('yesterday')", "timestamp('0001-01-01T00:00:00Z')",
    "timestamp('9999-12-31T23:59:59.999999999Z')", "timestamp('0000-12-31T23:59:59Z')",
    "timestamp(0)", "timestamp(1795773600)", "timestamp(-62135596801)", "timestamp(253402300800)",
    "timestamp(1.5)", "timestamp(context.time)", "duration('1h')", "duration('1h30m')",
    "duration('-1.5h')", "duration('250ms')", "duration('1us')", "duration('10ns')",
    "duration('0')", "duration('0s')", "duration('')", "duration('1')", "duration('1d')",
    "duration('h')", "duration('1.5s')", "duration('.5s')", "duration('315576000001s')",
    "duration('-315576000001s')", "duration('315576000000s')", "duration('320000000000s')",
    "duration('9223372036s')", "duration('9223372037s')", "duration('100000h1ns')",
    "duration('1.0000000001s')", "duration(1)", "duration(duration('1h'))", "context.time",
    "context.time + duration('1h')", "duration('1h') + context.time",
    "context.time - duration('1h')", "context.time - timestamp('2026-11-27T09:00:00Z')",
    "context.time - timestamp('2026-11-27T09:00:00Z') > duration('30m')",
    "context.time > timestamp('2026-01-01T00:00:00Z')",
    "context.time < timestamp('2027-01-01T00:00:00Z')",
    "timestamp('2026-11-27T10:00:00Z') == timestamp('2026-11-27T11:00:00+01:00')",
    "duration('1h') == duration('60m')", "duration('1h') < duration('61m')",
    "duration('1h') + duration('1m')", "duration('1h') - duration('2h')", "duration('1h') * 2",
    "duration('1h') / 2", "context.time + context.time",
    "timestamp('9999-12-31T23:59:59Z') + duration('1s')",
    "timestamp('0001-01-01T00:00:00Z') - duration('1s')",
    "timestamp('0001-01-01T00:00:00Z') - timestamp('9999-12-31T23:59:59Z')",
    "timestamp('9999-12-31T23:59:59Z') - timestamp('0001-01-01T00:00:00Z')",
    "duration('200000000000s') + duration('200000000000s')",
    "duration('-200000000000s') - duration('200000000000s')", "duration('1h') == 3600",
    "duration('1h') < 1",
    // calendar accessors, in UTC and in time zones (time-of-day rules)
    "context.time.getFullYear()", "context.time.getMonth()", "context.time.getDate()",
    "context.time.getDayOfMonth()", "context.time.getDayOfYear()", "context.time.getDayOfWeek()",
    "context.time.getHours()", "context.time.getMinutes()", "context.time.getSeconds()",
    "context.time.getMilliseconds()", "context.time.getHours('Europe/Berlin')",
    "context.time.getHours('America/New_York')", "context.time.getHours('Asia/Kolkata')",
    "context.time.getMinutes('Asia/Kolkata')", "context.time.getHours('UTC')",
    "context.time.getHours('+05:30')", "context.time.getHours('-08:00')",
    "context.time.getHours('05:30')", "context.time.getHours('-00:00')",
    "context.time.getHours('Mars/Olympus')", "context.time.getHours(1)",
    "context.time.getDayOfWeek('Pacific/Kiritimati')", "context.time.getDate('Pacific/Kiritimati')",
    "context.time.getFullYear('Pacific/Pago_Pago')",
    "timestamp('2026-01-01T00:30:00Z').getFullYear('America/Los_Angeles')",
    "timestamp('2026-01-01T00:30:00Z').getDayOfYear('America/Los_Angeles')",
    "timestamp('2024-12-31T12:00:00Z').getDayOfYear()",
    "timestamp('2026-03-29T01:30:00Z').getHours('Europe/Berlin')",
    "timestamp('2026-11-27T10:00:00.5Z').getMilliseconds()",
    "timestamp('2009-02-13T23:31:30Z').getDayOfMonth('US/Central')", "duration('3h25m').getHours()",
    "duration('3h25m').getMinutes()", "duration('3h25m45s').getSeconds()",
    "duration('-90m').getHours()", "duration('1h').getHours('UTC')",
    "duration('1h').getDayOfWeek()", "1.getHours()", "'x'.getHours()",
    "context.time.getHours() >= 9 && context.time.getHours() < 17",
    "context.time.getDayOfWeek() in [1, 2, 3, 4, 5]",
    "context.time.getHours('Europe/Berlin') >= 9 && context.time.getHours('Europe/Berlin') < 17",
    // conversions
    "int(1.9)", "int(-1.9)", "int(1u)", "int(18446744073709551615u)", "int('42')", "int('-42')",
    "int('+42')", "int('4.2')", "int('')", "int(' 1')", "int('0x10')", "int(9.2e18)", "int(9.3e18)",
    "int(-9.3e18)", "int(9223372036854775807.0)", "int(-9223372036854775808.0)", "int(1e100)",
    "int(0.0 / 0.0)", "int(true)", "int(context.time)", "int(duration('1h'))", "uint(1)",
    "uint(-1)", "uint(1.5)", "uint(-0.5)", "uint('42')", "uint('-1')", "uint(1.8e19)",
    "uint(1.9e19)", "uint(18446744073709551615.0)", "double(1)", "double(1u)", "double('1.5')",
    "double('1e3')", "double('inf')", "double('-Infinity')", "double('NaN')", "double('abc')",
    "double(true)", "string(1)", "string(-1)", "string(1u)", "string(1.5)", "string(1.0)",
    "string(1e20)", "string(1e-7)", "string(0.1)", "string(-4.5e-3)", "string(123456789.0)",
    "string(true)", "string(null)", "string('x')", "string([1])",
    "string(timestamp('2026-11-27T10:00:00Z'))",
    "string(timestamp('9999-12-31T23:59:59.999999999Z'))", "string(duration('1h'))",
    "string(duration('1.5s'))", "string(duration('-90m'))", "string(duration('1ms'))",
    "string(duration('1m1ms'))", "bool('true')", "bool('false')", "bool('TRUE')", "bool('t')",
    "bool('1')", "bool('yes')", "bool(1)", "dyn(1) == 1", "dyn('a')",
    // functions outside our set: refused here, errors there (the crate is built without `regex`)
    "matches('abc', 'a.c')", "'abc'.matches('a.c')", "max(1, 2)",
    // the other variables
    "'editor' in roles", "size(roles) > 0 && roles[0] == 'editor'",
    "scopes.exists(s, s.startsWith('docs:'))", "scopes.all(s, s.contains(':'))", "resource",
    "context", "claims.groups", "context.method == 'GET'", "context.missing", "has(context.method)",
    "has(context.user)", "claims",
];

// ---------------------------------------------------------------------------------------
// Named divergences

/// What our evaluator must give for a divergence case.
#[derive(Debug)]
enum Want {
    Int(i64),
    Str(&'static str),
    Dur(i128),
    /// Refused at compile time, with this in the message.
    Refused(&'static str),
    /// Failed at evaluation, with this in the message.
    Failed(&'static str),
}

struct Divergence {
    name: &'static str,
    why: &'static str,
    cases: &'static [(&'static str, Want)],
}

const DIVERGENCES: &[Divergence] = &[
    Divergence {
        name: "string-keyed maps only",
        why: "our subset: maps come from JSON (string keys) or literals; CEL also allows int, \
              uint and bool keys, as the crate does",
        cases: &[
            ("{1: 'a'}", Want::Refused("map keys must be strings")),
            ("{true: 1}", Want::Refused("map keys must be strings")),
            ("1 in {1: 'a'}", Want::Refused("map keys must be strings")),
        ],
    },
    Divergence {
        name: "constant errors refused when written",
        why: "our design: a constant subexpression is folded when the rule is written, and one \
              that fails (`1 / 0`) refuses the rule with its position, even where `&&`, `||` or \
              `?:` would absorb it at evaluation as the spec and the crate do (conformance \
              logic.textproto short_circuit_error_*); a refused rule never holds",
        cases: &[
            (
                "false && 1 / 0 == 0",
                Want::Refused("division by zero at line 1, column 12"),
            ),
            ("1 / 0 == 0 || true", Want::Refused("division by zero")),
            ("true ? 1 : 1 / 0", Want::Refused("division by zero")),
            (
                "false && (2 / 0 > 3 ? false : true)",
                Want::Refused("division by zero"),
            ),
            (
                "dyn([1, 2, 3][3]) || true",
                Want::Refused("index `3` out of range"),
            ),
        ],
    },
    Divergence {
        name: "no type values",
        why: "our subset: `type()` and type identifiers (`int`, `string`) are not supported; \
              the crate has them (as strings)",
        cases: &[
            ("type(1)", Want::Refused("unknown function `type`")),
            ("type(1) == int", Want::Refused("unknown function `type`")),
            ("int", Want::Refused("unknown variable `int`")),
        ],
    },
    Divergence {
        name: "micro sign in durations",
        why: "the crate lacks it: the spec lists `us`, Go's ParseDuration (cel-go) also takes \
              `µs` and `μs`, and so do we",
        cases: &[
            ("duration('1µs')", Want::Dur(1_000)),
            ("duration('1μs')", Want::Dur(1_000)),
        ],
    },
    Divergence {
        name: "sign inside a duration",
        why: "a crate bug: it reads `1h-30m` as 30 minutes; the spec's duration strings \
              follow Go's `time.ParseDuration` (as cel-go parses them), where only a leading \
              sign is allowed",
        cases: &[(
            "duration('1h-30m')",
            Want::Refused("`duration('1h-30m')`: invalid duration"),
        )],
    },
    Divergence {
        name: "negating a duration",
        why: "the crate lacks it; the spec's overload list has `-int` and `-double` only, \
              cel-go negates durations (Duration.Negate, range-checked) and so do we",
        cases: &[("-duration('1h')", Want::Dur(-3_600 * NANOS))],
    },
    Divergence {
        name: "fixed time zone with a one-digit hour",
        why: "the crate takes `+5:30`; the spec's grammar is `(\"+\" | \"-\") Digit Digit \":\" \
              Digit Digit` (langdef Timezones), so we refuse it",
        cases: &[(
            "context.time.getHours('+5:30')",
            Want::Failed("`context.time.getHours('+5:30')`: unknown time zone"),
        )],
    },
    Divergence {
        name: "milliseconds of a duration",
        why: "the crate gives the whole duration in milliseconds; the spec gives the \
              milliseconds portion (langdef: `duration(\"1.234s\").getMilliseconds() // 234`, \
              conformance timestamps.textproto get_milliseconds)",
        cases: &[
            ("duration('1.234s').getMilliseconds()", Want::Int(234)),
            (
                "duration('123.321456789s').getMilliseconds()",
                Want::Int(321),
            ),
            ("duration('-1.5s').getMilliseconds()", Want::Int(-500)),
        ],
    },
    Divergence {
        name: "adding a map to a list",
        why: "a crate bug: it appends the map's keys; the spec's `+` joins two lists \
              (`list(A) + list(A)`), so we fail",
        cases: &[
            (
                "scopes + resource",
                Want::Failed("no overload of `Add` for list and map"),
            ),
            (
                "[] + claims.nested",
                Want::Failed("no overload of `Add` for list and map"),
            ),
        ],
    },
    Divergence {
        name: "calendar fields of a timestamp written with an offset",
        why: "a crate bug: it keeps the offset a timestamp was written with and reads the \
              fields there; a CEL timestamp is an instant, read in UTC when no time zone is \
              given (langdef: `getHours() -> int` \"(in UTC)\")",
        cases: &[
            (
                "timestamp('2026-11-27T08:30:00+01:00').getHours()",
                Want::Int(7),
            ),
            (
                "timestamp('2026-11-27T00:30:00+01:00').getDate()",
                Want::Int(26),
            ),
        ],
    },
    Divergence {
        name: "fraction digits of string(timestamp)",
        why: "the spec asks only for RFC 3339; we write protobuf JSON's 0, 3, 6 or 9 digits, \
              the crate trims trailing zeros (both parse back to the same instant)",
        cases: &[(
            "string(timestamp('2026-11-27T10:00:00.5Z'))",
            Want::Str("2026-11-27T10:00:00.500Z"),
        )],
    },
];

fn wanted(o: &Ours, want: &Want) -> bool {
    match (o, want) {
        (Ours::Value(Val::Int(a)), Want::Int(b)) => a == b,
        (Ours::Value(Val::Str(a)), Want::Str(b)) => &**a == *b,
        (Ours::Value(Val::Duration(a)), Want::Dur(b)) => a == b,
        (Ours::Refused(m), Want::Refused(part)) | (Ours::Failed(m), Want::Failed(part)) => {
            m.contains(part)
        }
        _ => false,
    }
}

#[test]
fn table_agrees_with_the_reference() {
    let w = table_world();
    let mut disagreements = Vec::new();
    let (mut values, mut errors) = (0, 0);
    for expr in TABLE {
        let (o, t) = (ours(expr, &w), theirs(expr, &w));
        if !agree(&o, &t) {
            disagreements.push(format!("{expr}\n    ours:   {o:?}\n    theirs: {t:?}"));
        } else if matches!(o, Ours::Value(_)) {
            values += 1;
        } else {
            errors += 1;
        }
    }
    println!(
        "table: {} expressions, {values} agree on a value, {errors} agree on an error",
        TABLE.len()
    );
    assert!(
        disagreements.is_empty(),
        "{} disagreements:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}

#[test]
fn named_divergences_hold_and_follow_the_spec() {
    let w = table_world();
    let mut problems = Vec::new();
    let mut cases = 0;
    for d in DIVERGENCES {
        assert!(!d.why.is_empty(), "{}: give the reason", d.name);
        for (expr, want) in d.cases {
            cases += 1;
            assert!(
                !TABLE.contains(expr),
                "{expr}: listed as a divergence and in the table"
            );
            let (o, t) = (ours(expr, &w), theirs(expr, &w));
            if !wanted(&o, want) {
                problems.push(format!("[{}] {expr}: ours {o:?}, want {want:?}", d.name));
            }
            if agree(&o, &t) {
                problems.push(format!(
                    "[{}] {expr}: the crate now agrees ({t:?}); drop the exception",
                    d.name
                ));
            }
        }
    }
    println!("divergences: {} named, {cases} cases", DIVERGENCES.len());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------
// Generated expressions

#[path = "rules_differential/gen.rs"]
mod gen;
use gen::{random_world, Gen, Rng, Ty};

/// What the generated cases came to.
#[derive(Default)]
struct Tally {
    cases: usize,
    values: usize,
    errors: usize,
    /// Refused when compiled for a constant error that evaluation would have absorbed.
    refused_constant: usize,
    /// Disagreements a named divergence explains, by its name.
    explained: BTreeMap<&'static str, usize>,
}

/// The timestamp literal with an offset the generator writes, and the same instant in UTC.
const WITH_OFFSET: (&str, &str) = ("2026-11-27T08:30:00+01:00", "2026-11-27T07:30:00Z");

/// The named divergence that explains a disagreement on a generated case, if one does.
fn explained_by(expr: &str, w: &World, o: &Ours, t: &Theirs) -> Option<&'static str> {
    let failed = |part: &str| matches!(o, Ours::Failed(m) if m.contains(part));
    if failed("`Add` for list and map") && matches!(t, Theirs::Value(_)) {
        return Some("adding a map to a list");
    }
    // Counterfactual: the same instant written in UTC must make the two agree, and leave
    // our result as it was.
    let utc = |v: &Val| match v {
        Val::Str(s) if &**s == WITH_OFFSET.0 => Val::str(WITH_OFFSET.1),
        other => other.clone(),
    };
    let mut context = match &w.context {
        Val::Map(m) => (**m).clone(),
        _ => return None,
    };
    if let Some(Val::List(lits)) = context.get("lits") {
        let lits = Val::List(Rc::new(lits.iter().map(utc).collect()));
        context.insert("lits".into(), lits);
    }
    let in_utc = World {
        context: Val::Map(Rc::new(context)),
        ..w.clone()
    };
    let expr_utc = expr.replace(WITH_OFFSET.0, WITH_OFFSET.1);
    let (o2, t2) = (ours(&expr_utc, &in_utc), theirs(&expr_utc, &in_utc));
    let unchanged = match (o, &o2) {
        (Ours::Value(a), Ours::Value(b)) => a.equals(b),
        (Ours::Value(_), _) | (_, Ours::Value(_)) => false,
        _ => true,
    };
    (agree(&o2, &t2) && unchanged)
        .then_some("calendar fields of a timestamp written with an offset")
}

fn generated(seed: u64, tally: &mut Tally) -> Result<(), String> {
    let mut rng = Rng(seed);
    let depth = 1 + rng.below(4) as u32;
    let ty = rng.pick(&[
        Ty::Bool,
        Ty::Bool,
        Ty::Bool,
        Ty::Int,
        Ty::Str,
        Ty::List,
        Ty::Any,
        Ty::Dur,
    ]);
    let start = rng.0;
    let plain = Gen {
        rng: &mut rng,
        hoist: false,
        lits: Vec::new(),
        locals: Vec::new(),
    }
    .expr(ty, depth);
    let mut rng = Rng(start);
    let mut hoisting = Gen {
        rng: &mut rng,
        hoist: true,
        lits: Vec::new(),
        locals: Vec::new(),
    };
    let hoisted = hoisting.expr(ty, depth);
    let lits = std::mem::take(&mut hoisting.lits);
    let w = random_world(&mut rng, lits);
    tally.cases += 1;

    // The unfoldable spelling: the two must agree, or a named divergence explain why not.
    let (oh, th) = (ours(&hoisted, &w), theirs(&hoisted, &w));
    if !agree(&oh, &th) {
        if let Some(name) = explained_by(&hoisted, &w, &oh, &th) {
            *tally.explained.entry(name).or_default() += 1;
            return Ok(());
        }
        return Err(format!(
            "case {seed}: {hoisted}\n    with {:?}\n    ours:   {oh:?}\n    theirs: {th:?}",
            w.context
        ));
    }
    // The literal spelling: the same, unless we refused a constant error when compiling,
    // where the unfoldable spelling shows that evaluation would have absorbed it.
    let (op, tp) = (ours(&plain, &w), theirs(&plain, &w));
    if agree(&op, &tp) {
        if matches!(op, Ours::Value(_)) {
            tally.values += 1;
        } else {
            tally.errors += 1;
        }
        return Ok(());
    }
    let constant_error = matches!(&op, Ours::Refused(m)
        if !m.contains("unknown variable") && !m.contains("unknown function") && !m.contains("Syntax"));
    if constant_error && agree(&oh, &tp) {
        tally.refused_constant += 1;
        return Ok(());
    }
    Err(format!(
        "case {seed}: {plain}\n    ours:   {op:?}\n    theirs: {tp:?}"
    ))
}

#[test]
fn generated_expressions_agree_with_the_reference() {
    // CASES=… runs more (40 000 were run while writing this; all agreed or were explained).
    let cases: u64 = std::env::var("CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(4_000);
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    for seed in 0..cases {
        if let Err(f) = generated(seed, &mut tally) {
            failures.push(f);
        }
    }
    println!(
        "generated: {} cases, {} agree on a value, {} on an error, {} refused when written \
         (a constant error evaluation would have absorbed), explained by named divergences: {:?}",
        tally.cases, tally.values, tally.errors, tally.refused_constant, tally.explained
    );
    let shown: Vec<String> = failures.iter().take(20).cloned().collect();
    assert!(
        failures.is_empty(),
        "{} of {cases} disagree:\n{}",
        failures.len(),
        shown.join("\n")
    );
    for name in tally.explained.keys() {
        assert!(
            DIVERGENCES.iter().any(|d| d.name == *name),
            "`{name}` is not a named divergence"
        );
    }
    // The generator must keep producing both outcomes, or the comparison says little.
    assert!(
        tally.values > tally.cases / 4,
        "too few values: {}",
        tally.values
    );
    assert!(
        tally.errors > tally.cases / 10,
        "too few errors: {}",
        tally.errors
    );
}
