//! Residuals decide exactly as the evaluator does: a generated corpus of conditions over
//! every translatable shape (and some that are not), principals with and without the claims
//! they read, rows with NULLs, missing attributes and values of other types.

use oidc_authz_core::rules::compile::compile;
use oidc_authz_core::rules::context;
use oidc_authz_core::rules::eval::{Request, Resource};
use oidc_authz_core::rules::residual::{translate, Tri};
use oidc_authz_core::rules::value::Val;
use serde_json::json;

/// splitmix64: deterministic, so a failing case is reproducible from its seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Conditions reading the row in a shape that translates.
const ROW: &[&str] = &[
    "resource.owner == claims.sub",
    "claims.sub == resource.owner",
    "resource.owner != 'bob'",
    "resource.tenant == claims.tenant",
    "resource.level > 3",
    "resource.level <= claims.level",
    "2.5 < resource.level",
    "resource.owner in ['alice', 'bob']",
    "resource.owner in claims.groups",
    "claims.team in resource.labels",
    "'eng' in resource.labels",
    "resource.labels.exists(l, l in claims.groups)",
    "resource.labels.exists(l, l in ['eng', 'ops'])",
    "has(resource.archived)",
    "resource.path.startsWith('/pub')",
    "resource.path.startsWith(claims.home)",
    "resource.archived == true",
    "resource.archived",
];
/// Conditions of the principal or context only.
const FIXED: &[&str] = &[
    "'editor' in roles",
    "claims.suspended == true",
    "scopes.exists(s, s == 'write')",
    "claims.level > 2",
    "context.method == 'GET'",
    "true",
    "false",
    "claims.missing == 1",
    "int(claims.sub) > 0",
];
/// Conditions reading the row in a shape that does not translate.
const OPAQUE: &[&str] = &[
    "resource.labels.exists(l, l.startsWith('e'))",
    "size(resource.labels) > 1",
    "resource.owner == resource.tenant",
];

fn condition(rng: &mut Rng, depth: usize) -> String {
    let atom = |rng: &mut Rng| -> String {
        match rng.below(20) {
            0..=11 => ROW[rng.below(ROW.len())].to_string(),
            12..=18 => FIXED[rng.below(FIXED.len())].to_string(),
            _ => OPAQUE[rng.below(OPAQUE.len())].to_string(),
        }
    };
    if depth == 0 {
        return atom(rng);
    }
    match rng.below(6) {
        0 => atom(rng),
        1 | 2 => format!(
            "({} && {})",
            condition(rng, depth - 1),
            condition(rng, depth - 1)
        ),
        3 => format!(
            "({} || {})",
            condition(rng, depth - 1),
            condition(rng, depth - 1)
        ),
        4 => format!("!({})", condition(rng, depth - 1)),
        _ => format!(
            "({} ? {} : {})",
            FIXED[rng.below(FIXED.len())],
            condition(rng, depth - 1),
            condition(rng, depth - 1)
        ),
    }
}

fn principals() -> Vec<(Val, Val, Val)> {
    let claims = [
        json!({"sub": "alice", "tenant": "t1", "level": 3, "groups": ["eng", "alice"], "team": "eng", "home": "/pub/a"}),
        json!({"sub": "bob", "tenant": "t2", "level": 5.5, "groups": [], "team": "ops", "suspended": true}),
        json!({"sub": "42", "level": "high", "groups": "eng", "home": 7}),
        json!({}),
        json!({"sub": null, "tenant": null, "groups": [null, "eng"], "team": null}),
    ];
    let roles: [&[&str]; 3] = [&["editor"], &[], &["viewer", "editor"]];
    let scopes: [&[&str]; 2] = [&["read", "write"], &[]];
    let strings =
        |s: &[&str]| Val::list_of_strings(&s.iter().map(|x| x.to_string()).collect::<Vec<_>>());
    let mut out = Vec::new();
    for (i, c) in claims.iter().enumerate() {
        out.push((
            Val::from_json(c),
            strings(scopes[i % 2]),
            strings(roles[i % 3]),
        ));
    }
    out
}

fn rows() -> Vec<Val> {
    [
        json!({"owner": "alice", "tenant": "t1", "level": 4, "labels": ["eng"], "archived": false, "path": "/pub/a/x"}),
        json!({"owner": "bob", "tenant": "t2", "level": 2.5, "labels": ["ops", "alice"], "path": "/private"}),
        json!({"owner": null, "tenant": null, "level": null, "labels": null, "archived": null, "path": null}),
        json!({"owner": "carol", "level": "3", "labels": [null, "eng"], "archived": true, "path": ""}),
        json!({}),
        json!({"owner": 42, "tenant": ["t1"], "level": 7, "labels": "eng", "archived": "yes", "path": 1}),
        json!({"owner": "42", "tenant": "t1", "level": 3, "labels": [], "path": "/pub"}),
    ]
    .iter()
    .map(Val::from_json)
    .collect()
}

#[test]
fn residuals_decide_as_the_evaluator() {
    let principals = principals();
    let rows = rows();
    let contexts = [context(0, Some("GET"), Some("/")), context(0, None, None)];
    // `RESIDUAL_CASES=200000 cargo test -p oidc_authz_core --test residual` (or `make
    // equivalence`) runs a larger corpus; `RESIDUAL_SEED` another one.
    let cases: usize = std::env::var("RESIDUAL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let seed: u64 = std::env::var("RESIDUAL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED);
    let mut rng = Rng(seed);
    let (mut translated, mut total, mut checked) = (0, 0, 0);
    for case in 0..cases {
        let source = condition(&mut rng, 1 + case % 4);
        let Ok(program) = compile(&source) else {
            continue; // constant parts that always fail are refused when written
        };
        total += 1;
        let Some(t) = translate(&program) else {
            continue;
        };
        translated += 1;
        for (claims, scopes, roles) in &principals {
            for ctx in &contexts {
                let null = Val::Null;
                let fixed_req = Request {
                    claims,
                    scopes,
                    roles,
                    context: ctx,
                    resource: &null,
                };
                let Ok(fixed) = t.fixed_values(&fixed_req) else {
                    continue;
                };
                for row in &rows {
                    let req = Request {
                        claims,
                        scopes,
                        roles,
                        context: ctx,
                        resource: row,
                    };
                    let want = Tri::of(&program.evaluate(&req));
                    let got = t.residual.value(&fixed, &|name| row.field(name));
                    assert_eq!(
                        got, want,
                        "case {case}: {source}\nclaims {claims:?}\nrow {row:?}\n{:?}",
                        t.residual
                    );
                    checked += 1;
                }
            }
        }
    }
    // Most generated conditions translate (those holding an opaque atom do not).
    assert!(translated * 2 > total, "{translated} of {total} translated");
    eprintln!("{translated} of {total} translated, {checked} decisions compared");
    assert!(checked > cases * 30, "{checked}");
}

#[test]
fn what_translates_and_what_does_not() {
    for (source, translates) in [
        ("resource.owner == claims.sub || ('editor' in roles && resource.tenant == claims.tenant)", true),
        ("resource.labels.exists(l, l in claims.groups) && !claims.suspended", true),
        ("claims.level > 2 ? resource.level > 1 : resource.owner == claims.sub", true),
        ("resource.path.startsWith('/pub') && has(resource.archived)", true),
        ("resource.owner == resource.tenant", false),
        ("resource.labels.exists(l, l.startsWith('e'))", false),
        ("resource.level + 1 > 3", false),
        ("resource.level > 3 ? true : false", false),
        ("has(resource.archived) && resource.archived", true),
    ] {
        let program = compile(source).unwrap();
        assert_eq!(translate(&program).is_some(), translates, "{source}");
    }
}

#[test]
fn fixed_parts_read_no_row_and_run_out_of_steps_as_a_whole() {
    // The principal-only part is evaluated without a resource; running out of steps there
    // makes the whole rule an error (reported, not absorbed by `||`).
    let program = compile(
        "[1,2,3,4,5,6,7,8,9,10].all(a, [1,2,3,4,5,6,7,8,9,10].all(b, [1,2,3,4,5,6,7,8,9,10].all(c, \
         [1,2,3,4,5,6,7,8,9,10].all(d, [1,2,3,4,5,6,7,8,9,10].all(e, claims.x == 1))))) || resource.owner == 'a'",
    )
    .unwrap();
    let t = translate(&program).unwrap();
    let (claims, scopes, roles) = (Val::from_json(&json!({"x": 1})), Val::Null, Val::Null);
    let ctx = context(0, None, None);
    let null = Val::Null;
    let req = Request {
        claims: &claims,
        scopes: &scopes,
        roles: &roles,
        context: &ctx,
        resource: &null,
    };
    assert!(t.fixed_values(&req).is_err_and(|e| e.is_step_limit()));
}
