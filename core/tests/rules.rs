//! The rule engine's semantics, one table row per rule of the model (see rules/mod.rs):
//! default deny, permit/forbid, fail closed on errors, action and type matching.

use oidc_authz_core::rules::eval::Request;
use oidc_authz_core::rules::value::Val;
use oidc_authz_core::rules::{context, RuleSet};
use serde_json::json;

fn set(rules: serde_json::Value) -> RuleSet {
    let rows = rules.as_array().cloned().unwrap_or_default();
    let (set, errors) = RuleSet::from_rows(&rows);
    assert!(errors.is_empty(), "{errors:?}");
    set
}

struct World {
    claims: Val,
    scopes: Val,
    roles: Val,
    context: Val,
}

impl World {
    fn request<'a>(&'a self, resource: &'a Val) -> Request<'a> {
        Request {
            claims: &self.claims,
            scopes: &self.scopes,
            roles: &self.roles,
            context: &self.context,
            resource,
        }
    }
}

fn world(claims: serde_json::Value) -> World {
    World {
        claims: Val::from_json(&claims),
        scopes: Val::list_of_strings(&["docs:read".to_string()]),
        roles: Val::list_of_strings(&[]),
        // 2026-11-27T10:00:00Z, a Friday
        context: context(
            1_795_773_600 * 1_000_000_000,
            Some("GET"),
            Some("/documents"),
        ),
    }
}

fn allowed(
    set: &RuleSet,
    w: &World,
    action: &str,
    rtype: &str,
    resource: serde_json::Value,
) -> bool {
    let resource = Val::from_json(&resource);
    let req = w.request(&resource);
    let fast = set.decide(&set.matching(action, rtype), &req).allowed;
    let explained = set.explain(action, rtype, &req);
    assert_eq!(
        fast, explained.allowed,
        "decide and explain disagree: {explained:?}"
    );
    fast
}

#[test]
fn default_deny_permit_and_forbid() {
    let w = world(json!({"sub": "alice", "groups": ["eng"]}));
    let none = set(json!([]));
    assert!(!allowed(&none, &w, "read", "document", json!({})));

    let owner = set(json!([
        {"name": "owner", "effect": "permit", "actions": ["read", "update"], "resource_type": "document",
         "condition": "resource.owner == claims.sub"}
    ]));
    assert!(allowed(
        &owner,
        &w,
        "read",
        "document",
        json!({"owner": "alice"})
    ));
    assert!(!allowed(
        &owner,
        &w,
        "read",
        "document",
        json!({"owner": "bob"})
    ));
    assert!(
        !allowed(&owner, &w, "delete", "document", json!({"owner": "alice"})),
        "action not listed"
    );
    assert!(
        !allowed(&owner, &w, "read", "folder", json!({"owner": "alice"})),
        "other type"
    );

    let with_forbid = set(json!([
        {"name": "owner", "effect": "permit", "actions": ["*"], "resource_type": "document",
         "condition": "resource.owner == claims.sub"},
        {"name": "suspended", "effect": "forbid", "actions": ["*"], "resource_type": "*",
         "condition": "has(claims.suspended) && claims.suspended"}
    ]));
    assert!(allowed(
        &with_forbid,
        &w,
        "read",
        "document",
        json!({"owner": "alice"})
    ));
    let suspended = world(json!({"sub": "alice", "suspended": true}));
    assert!(!allowed(
        &with_forbid,
        &suspended,
        "read",
        "document",
        json!({"owner": "alice"})
    ));
}

#[test]
fn errors_fail_closed() {
    let w = world(json!({"sub": "alice"}));
    // A permit whose condition errors (missing attribute) does not hold.
    let permit = set(json!([
        {"name": "p", "effect": "permit", "actions": ["read"], "resource_type": "document",
         "condition": "resource.owner == claims.sub"}
    ]));
    assert!(!allowed(&permit, &w, "read", "document", json!({})));
    // A forbid whose condition errors holds: it denies, even next to a permit that holds.
    let forbid = set(json!([
        {"name": "always", "effect": "permit", "actions": ["read"], "resource_type": "document"},
        {"name": "f", "effect": "forbid", "actions": ["read"], "resource_type": "document",
         "condition": "claims.suspended"}
    ]));
    assert!(!allowed(&forbid, &w, "read", "document", json!({})));
    let resource = Val::from_json(&json!({}));
    let req = w.request(&resource);
    let ex = forbid.explain("read", "document", &req).to_json();
    assert_eq!(ex["decision"], "deny");
    assert_eq!(ex["forbids"], json!(["f"]));
    assert_eq!(ex["errors"][0]["rule"], "f");
    assert_eq!(ex["permits"], json!(["always"]));
    // A disabled rule does not match.
    let disabled = set(json!([
        {"name": "always", "effect": "permit", "actions": ["read"], "resource_type": "document", "enabled": false}
    ]));
    assert!(!allowed(&disabled, &w, "read", "document", json!({})));
}

#[test]
fn cel_features_used_by_policies() {
    let w = world(
        json!({"sub": "alice", "groups": ["eng", "ops"], "exp": 1_900_000_000, "tenant": "t1"}),
    );
    let cases = [
        ("resource.labels.exists(l, l in claims.groups)", json!({"labels": ["ops", "x"]}), true),
        ("resource.labels.exists(l, l in claims.groups)", json!({"labels": ["x"]}), false),
        ("resource.labels.all(l, l.startsWith('o'))", json!({"labels": ["ops", "own"]}), true),
        ("size(resource.labels) == 2 && 'x' in resource.labels", json!({"labels": ["ops", "x"]}), true),
        ("'docs:read' in scopes && resource.tenant == claims.tenant", json!({"tenant": "t1"}), true),
        ("claims.exp + 60 > 1900000000", json!({}), true),
        ("context.time.getHours('Europe/Berlin') >= 9 && context.time.getHours('Europe/Berlin') < 17", json!({}), true),
        ("context.time.getDayOfWeek() in [1, 2, 3, 4, 5]", json!({}), true),
        ("context.time < timestamp('2027-01-01T00:00:00Z')", json!({}), true),
        ("context.time - timestamp('2026-11-27T09:00:00Z') > duration('30m')", json!({}), true),
        ("context.method == 'GET' && context.path.startsWith('/doc')", json!({}), true),
        ("has(claims.missing) ? claims.missing : true", json!({}), true),
        ("!has(resource.secret) || resource.secret == false", json!({"secret": false}), true),
        ("{'a': 1}['a'] == 1 && [1, 2][1] == 2", json!({}), true),
        ("resource.size >= 1.5 && resource.size < 2", json!({"size": 1.5}), true),
    ];
    for (condition, resource, want) in cases {
        let rules = set(
            json!([{"name": "r", "effect": "permit", "actions": ["read"],
            "resource_type": "document", "condition": condition}]),
        );
        assert_eq!(
            allowed(&rules, &w, "read", "document", resource),
            want,
            "{condition}"
        );
    }
}

#[test]
fn bad_conditions_are_refused_with_their_position() {
    for (condition, message, line, column) in [
        ("resource.owner == ", "Syntax error", 1, 19),
        (
            "resource.owner == user.sub",
            "unknown variable `user`",
            1,
            19,
        ),
        (
            "claims.sub.lower() == 'a'",
            "unknown function `lower`",
            1,
            17,
        ),
        ("x.exists(y, y)", "unknown variable `x`", 1, 1),
        (
            "timestamp('yesterday') < context.time",
            "`timestamp('yesterday')`: invalid timestamp",
            1,
            10,
        ),
        ("claims.a &&\n  nope", "unknown variable `nope`", 2, 3),
    ] {
        let row = json!({"name": "r", "effect": "permit", "actions": ["read"], "resource_type": "d", "condition": condition});
        let (_, errors) = RuleSet::from_rows(&[row]);
        let text = errors.first().map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains(message), "{condition:?}: {text}");
        assert!(
            text.contains(&format!("at line {line}, column {column}")),
            "{condition:?}: {text}"
        );
    }
}

/// `r.exists(x, x in s)` and `r.all(x, x in s)` are evaluated by a specialised node; the same
/// macros in a shape the compiler does not specialise (`… || false`) go through the general
/// loop. Both must give the same value or both an error, for lists, maps, empty ranges,
/// erroring sets and erroring ranges.
#[test]
fn membership_shortcut_agrees_with_the_general_loop() {
    use oidc_authz_core::rules::compile::compile;
    let w = world(json!({"groups": ["eng", "ops"], "n": 1, "m": {"eng": 1}}));
    let ranges = [
        "[]",
        "['eng']",
        "['x', 'ops']",
        "['x', 'y']",
        "claims.groups",
        "{'eng': 1, 'z': 2}",
        "claims.n",
        "claims.missing",
        "[1, 'eng']",
    ];
    let sets = [
        "claims.groups",
        "[]",
        "claims.m",
        "claims.missing",
        "'eng'",
        "claims.n",
        "['eng', 1]",
    ];
    let mut compared = 0;
    for range in ranges {
        for set in sets {
            for (special, general) in [
                (
                    format!("{range}.exists(x, x in {set})"),
                    format!("{range}.exists(x, x in {set} || false)"),
                ),
                (
                    format!("{range}.all(x, x in {set})"),
                    format!("{range}.all(x, x in {set} && true)"),
                ),
            ] {
                let resource = Val::from_json(&json!({}));
                let req = w.request(&resource);
                let a = compile(&special).map(|p| p.evaluate(&req).map(|v| v.to_json()));
                let b = compile(&general).map(|p| p.evaluate(&req).map(|v| v.to_json()));
                match (&a, &b) {
                    (Ok(Ok(x)), Ok(Ok(y))) => assert_eq!(x, y, "{special} vs {general}"),
                    (Ok(Err(_)), Ok(Err(_))) | (Err(_), Err(_)) => {}
                    _ => panic!("{special}: {a:?} but {general}: {b:?}"),
                }
                compared += 1;
            }
        }
    }
    assert_eq!(compared, ranges.len() * sets.len() * 2);
    // The shortcut is really taken for the first shape, and not for the second.
    let special = format!(
        "{:?}",
        compile("claims.groups.exists(x, x in ['eng'])").ok()
    );
    let general = format!(
        "{:?}",
        compile("claims.groups.exists(x, x in ['eng'] || false)").ok()
    );
    assert!(special.contains("Membership") && !general.contains("Membership"));
}

/// Conditions mixing parts that read the resource with parts that do not are split, the
/// latter remembered per statement (`decide`); `explain` evaluates them whole. For every mix
/// of true, false and erroring sides, under `&&` and `||`, as permit and as forbid, and
/// over several rows sharing one `Matching` (the memo), both must decide alike.
#[test]
fn split_conditions_decide_as_the_whole_condition() {
    let fixed = [
        "true",
        "false",
        "claims.missing",
        "'x' in scopes",
        "claims.n",
    ];
    let varying = [
        "resource.flag",
        "!resource.flag",
        "resource.missing",
        "resource.n > 0",
        "resource.n",
    ];
    let rows = [
        json!({"flag": true, "n": 1}),
        json!({"flag": false, "n": 0}),
        json!({}),
    ];
    let w = world(json!({"n": 1}));
    let mut checked = 0;
    for f in fixed {
        for v in varying {
            for junction in ["&&", "||"] {
                for effect in ["permit", "forbid"] {
                    for condition in [format!("{f} {junction} {v}"), format!("{v} {junction} {f}")]
                    {
                        let mut rules =
                            vec![json!({"name": "r", "effect": effect, "actions": ["a"],
                            "resource_type": "t", "condition": condition})];
                        if effect == "forbid" {
                            rules.push(json!({"name": "base", "effect": "permit", "actions": ["a"], "resource_type": "t"}));
                        }
                        let set = set(json!(rules));
                        let m = set.matching("a", "t");
                        for row in &rows {
                            let resource = Val::from_json(row);
                            let req = w.request(&resource);
                            let fast = set.decide(&m, &req).allowed;
                            let whole = set.explain("a", "t", &req).allowed;
                            assert_eq!(fast, whole, "{effect} `{condition}` on {row}");
                            checked += 1;
                        }
                    }
                }
            }
        }
    }
    assert_eq!(
        checked,
        fixed.len() * varying.len() * 2 * 2 * 2 * rows.len()
    );
}

/// The step budget is one per condition: a condition split into a memoised part and a
/// per-row part shares it, and running out is never absorbed by `||`/`&&` — `decide` must
/// agree with `explain` (the whole condition) for permits and forbids.
#[test]
fn split_conditions_share_one_step_budget() {
    let list = |n: usize| {
        format!(
            "[{}]",
            (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
        )
    };
    let l100 = list(100);
    let l245 = list(245); // 245 * 245 = 60 025 steps: two of them exceed 100 000
    let huge = format!("{l100}.exists(a, {l100}.exists(b, {l100}.exists(c, false)))");
    let sixty = format!("{l245}.exists(a, {l245}.exists(b, false))");
    let cases = [
        (format!("{huge} || resource.public == true"), "permit"),
        (format!("{huge} && resource.x == true"), "forbid"),
        (
            format!("{sixty} || resource.items.exists(a, {l245}.exists(b, false))"),
            "permit",
        ),
        (
            format!("{sixty} || resource.items.exists(a, {l245}.exists(b, false))"),
            "forbid",
        ),
        (format!("resource.public == true || {sixty}"), "permit"),
    ];
    let items: Vec<i64> = (0..245).collect();
    let w = world(json!({}));
    for (condition, effect) in cases {
        let mut rules = vec![
            json!({"name": "r", "effect": effect, "actions": ["a"], "resource_type": "t", "condition": condition}),
        ];
        if effect == "forbid" {
            rules.push(
                json!({"name": "base", "effect": "permit", "actions": ["a"], "resource_type": "t"}),
            );
        }
        let set = set(json!(rules));
        let m = set.matching("a", "t");
        for row in [
            json!({"public": true, "x": false, "items": items}),
            json!({"public": false, "x": true, "items": []}),
        ] {
            let resource = Val::from_json(&row);
            let req = w.request(&resource);
            let fast = set.decide(&m, &req).allowed;
            let whole = set.explain("a", "t", &req);
            assert_eq!(
                fast, whole.allowed,
                "{effect} `{condition}`: {:?}",
                whole.errors
            );
        }
    }
}

/// A resource attribute read in a macro's body is converted once per evaluation, not once
/// per iteration (that work is not counted as steps, so it must not multiply).
#[test]
fn resource_attributes_are_converted_once_per_evaluation() {
    use oidc_authz_core::rules::compile::compile;
    use oidc_authz_core::rules::eval::Resource;
    use std::cell::Cell;

    struct Counting {
        row: Val,
        fields: Cell<usize>,
        wholes: Cell<usize>,
    }
    impl Resource for Counting {
        fn field(&self, name: &str) -> Option<Val> {
            self.fields.set(self.fields.get() + 1);
            self.row.field(name)
        }
        fn whole(&self) -> Val {
            self.wholes.set(self.wholes.get() + 1);
            self.row.clone()
        }
    }
    let groups: Vec<String> = (0..50).map(|i| format!("g{i}")).collect();
    let w = world(json!({"groups": groups}));
    for (condition, fields, wholes) in [
        (
            "claims.groups.exists(g, resource.labels.exists(l, l == g))",
            1,
            0,
        ),
        (
            "claims.groups.exists(g, has(resource.labels) && g == resource.owner)",
            2,
            0,
        ),
        (
            "claims.groups.all(g, resource.owner != g && resource.labels != [g])",
            2,
            0,
        ),
        (
            "claims.groups.exists(g, g in resource.labels || false)",
            1,
            0,
        ),
        ("claims.groups.exists(g, resource == {'owner': g})", 0, 1),
    ] {
        let resource = Counting {
            row: Val::from_json(&json!({"owner": "bob", "labels": ["x", "y"]})),
            fields: Cell::new(0),
            wholes: Cell::new(0),
        };
        let req = Request {
            claims: &w.claims,
            scopes: &w.scopes,
            roles: &w.roles,
            context: &w.context,
            resource: &resource,
        };
        let program = compile(condition).expect("compiles");
        let first = program.evaluate(&req).map(|v| v.to_json());
        assert!(first.is_ok(), "{condition}: {first:?}");
        assert_eq!(
            (resource.fields.get(), resource.wholes.get()),
            (fields, wholes),
            "{condition}"
        );
    }
}

/// A row that fails to load (written around the validating trigger) fails closed: an
/// invalid permit grants nothing, an invalid forbid denies wherever it may match, and one
/// whose actions or type cannot be read denies everything.
#[test]
fn a_rule_that_cannot_load_fails_closed() {
    let w = world(json!({"sub": "alice"}));
    let permit_all =
        json!({"name": "all", "effect": "permit", "actions": ["*"], "resource_type": "*"});
    let rows = |broken: serde_json::Value| vec![permit_all.clone(), broken];
    let cases = [
        // (broken row, (action, type) → allowed)
        (
            json!({"name": "f", "effect": "forbid", "actions": ["read"], "resource_type": "doc", "condition": "resource.x =="}),
            vec![
                (("read", "doc"), false),
                (("write", "doc"), true),
                (("read", "note"), true),
            ],
        ),
        (
            json!({"name": "f", "effect": "forbid", "actions": [""], "resource_type": "", "condition": null}),
            vec![(("read", "doc"), false), (("delete", "note"), false)],
        ),
        (
            json!({"name": "f", "effect": "deny", "actions": ["read"], "resource_type": "doc"}),
            vec![(("read", "doc"), false), (("write", "doc"), true)],
        ),
        (
            json!({"name": "p", "effect": "permit", "actions": ["read"], "resource_type": "doc", "condition": "claims.x =="}),
            vec![(("read", "doc"), true)],
        ),
        (
            json!({"name": "f", "effect": "forbid", "actions": ["read"], "resource_type": "doc", "condition": "resource.x ==", "enabled": false}),
            vec![(("read", "doc"), true)],
        ),
    ];
    for (broken, decisions) in cases {
        let (set, errors) = RuleSet::from_rows(&rows(broken.clone()));
        assert_eq!(errors.len(), 1, "{broken}");
        for ((action, rtype), want) in decisions {
            assert_eq!(
                allowed(&set, &w, action, rtype, json!({})),
                want,
                "{broken} {action} {rtype}"
            );
        }
    }
    // Alone, an invalid permit grants nothing.
    let (set, _) = RuleSet::from_rows(&[
        json!({"name": "p", "effect": "permit", "actions": ["read"], "resource_type": "doc", "condition": "=="}),
    ]);
    assert!(!allowed(&set, &w, "read", "doc", json!({})));
}
