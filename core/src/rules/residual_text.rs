//! A residual for one principal, as text a person reads (`oidc.residual()`): the fixed
//! values substituted and folded, so that what is left is what the database checks per row,
//! e.g. `owner = 'alice' OR labels && ARRAY['eng', 'ops']`.
//!
//! It states the CEL meaning of each leaf in SQL terms; the plan's expression also spells
//! out NULL columns, NULL elements and values of other types (see `residual`), which this
//! text leaves out unless they decide (a leaf that is an error for this principal shows as
//! `NULL`).

use super::eval::{EvalError, EvalErrorKind};
use super::residual::{Cmp, Leaf, Operand, Residual, Tri};
use super::value::Val;

/// A rendered part: decided for this principal, or a condition on the row.
enum Part {
    Known(Tri),
    Row(String),
}

/// `residual` with `fixed` (the principal's values) substituted, as SQL-like text.
pub fn render(residual: &Residual, fixed: &[Result<Val, EvalError>]) -> String {
    match part(residual, fixed) {
        Part::Known(Tri::True) => "true".into(),
        Part::Known(Tri::False) => "false".into(),
        Part::Known(Tri::Unknown) => "NULL".into(),
        Part::Row(s) => s,
    }
}

fn fixed_value(fixed: &[Result<Val, EvalError>], i: usize) -> Result<Val, EvalError> {
    fixed
        .get(i)
        .cloned()
        .unwrap_or_else(|| Err(EvalErrorKind::Internal("no fixed value at this index").into()))
}

fn part(r: &Residual, fixed: &[Result<Val, EvalError>]) -> Part {
    match r {
        Residual::Fixed(f) => Part::Known(Tri::of(&fixed_value(fixed, f.0))),
        Residual::FixedIsUnknown(f) => {
            Part::Known(if Tri::of(&fixed_value(fixed, f.0)) == Tri::Unknown {
                Tri::True
            } else {
                Tri::False
            })
        }
        Residual::Unknown => Part::Known(Tri::Unknown),
        Residual::Leaf(leaf) => leaf_text(leaf, fixed),
        Residual::Not(a) => match part(a, fixed) {
            Part::Known(t) => Part::Known(t.negate()),
            Part::Row(s) => Part::Row(format!("NOT ({s})")),
        },
        Residual::And(a, b) => junction(part(a, fixed), part(b, fixed), true),
        Residual::Or(a, b) => junction(part(a, fixed), part(b, fixed), false),
    }
}

/// `a AND b` (or `OR`), folding what is known: false decides an AND, true an OR.
fn junction(a: Part, b: Part, and: bool) -> Part {
    let decides = if and { Tri::False } else { Tri::True };
    let neutral = if and { Tri::True } else { Tri::False };
    match (a, b) {
        (Part::Known(x), Part::Known(y)) => Part::Known(if and { x.and(y) } else { x.or(y) }),
        (Part::Known(k), row) | (row, Part::Known(k)) if k == decides => {
            drop(row);
            Part::Known(decides)
        }
        (Part::Known(k), Part::Row(s)) | (Part::Row(s), Part::Known(k)) if k == neutral => {
            Part::Row(s)
        }
        (Part::Known(_), Part::Row(s)) | (Part::Row(s), Part::Known(_)) => {
            Part::Row(format!("({s}) {} NULL", if and { "AND" } else { "OR" }))
        }
        (Part::Row(x), Part::Row(y)) => {
            Part::Row(format!("({x}) {} ({y})", if and { "AND" } else { "OR" }))
        }
    }
}

fn literal(v: &Val) -> String {
    match v {
        Val::Str(s) => format!("'{}'", s.replace('\'', "''")),
        Val::Null => "NULL".into(),
        Val::List(l) => format!(
            "ARRAY[{}]",
            l.iter().map(literal).collect::<Vec<_>>().join(", ")
        ),
        Val::Map(m) => format!(
            "ARRAY[{}]",
            m.keys()
                .map(|k| literal(&Val::Str(k.clone())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

fn leaf_text(leaf: &Leaf, fixed: &[Result<Val, EvalError>]) -> Part {
    let value = |o: &Operand| match o {
        Operand::Const(v) => Ok(v.clone()),
        Operand::Fixed(f) => fixed_value(fixed, f.0),
    };
    let attr = leaf.attr();
    let text = match leaf {
        Leaf::Has { .. } => return Part::Row(format!("{attr} is passed")),
        Leaf::Truthy { .. } => attr.to_string(),
        Leaf::Compare { op, value: o, .. } => {
            let Ok(v) = value(o) else {
                return Part::Known(Tri::Unknown);
            };
            let op = match op {
                Cmp::Eq if matches!(v, Val::Null) => return Part::Row(format!("{attr} IS NULL")),
                Cmp::Ne if matches!(v, Val::Null) => {
                    return Part::Row(format!("{attr} IS NOT NULL"))
                }
                Cmp::Eq => "=",
                Cmp::Ne => "<>",
                Cmp::Lt => "<",
                Cmp::Le => "<=",
                Cmp::Gt => ">",
                Cmp::Ge => ">=",
            };
            format!("{attr} {op} {}", literal(&v))
        }
        Leaf::In { set, .. } => match value(set) {
            Ok(v) => format!("{attr} = ANY({})", literal(&v)),
            Err(_) => return Part::Known(Tri::Unknown),
        },
        Leaf::Contains { value: o, .. } => match value(o) {
            Ok(v) => format!("{attr} @> ARRAY[{}]", literal(&v)),
            Err(_) => return Part::Known(Tri::Unknown),
        },
        Leaf::Overlaps { set, .. } => match value(set) {
            Ok(v) => format!("{attr} && {}", literal(&v)),
            Err(_) => return Part::Known(Tri::Unknown),
        },
        Leaf::StartsWith { prefix, .. } => match value(prefix) {
            Ok(v) => format!("starts_with({attr}, {})", literal(&v)),
            Err(_) => return Part::Known(Tri::Unknown),
        },
    };
    Part::Row(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::compile::compile;
    use crate::rules::eval::Request;
    use crate::rules::residual::translate;
    use serde_json::json;

    fn rendered(condition: &str, claims: serde_json::Value, roles: &[&str]) -> String {
        let program = compile(condition).unwrap();
        let t = translate(&program).unwrap();
        let claims = Val::from_json(&claims);
        let roles = Val::list_of_strings(&roles.iter().map(|r| r.to_string()).collect::<Vec<_>>());
        let (null, ctx) = (Val::Null, crate::rules::context(0, Some("GET"), None));
        let req = Request {
            claims: &claims,
            scopes: &null,
            roles: &roles,
            context: &ctx,
            resource: &null,
        };
        render(&t.residual, &t.fixed_values(&req).unwrap())
    }

    #[test]
    fn the_principal_is_folded_in() {
        let c = "resource.owner == claims.sub || ('editor' in roles && resource.tenant == claims.tenant) || resource.labels.exists(l, l in claims.groups)";
        assert_eq!(
            rendered(
                c,
                json!({"sub": "alice", "tenant": "t1", "groups": ["eng", "o'k"]}),
                &[]
            ),
            "(owner = 'alice') OR (labels && ARRAY['eng', 'o''k'])"
        );
        assert_eq!(
            rendered(
                c,
                json!({"sub": "bob", "tenant": "t2", "groups": []}),
                &["editor"]
            ),
            "((owner = 'bob') OR (tenant = 't2')) OR (labels && ARRAY[])"
        );
        assert_eq!(
            rendered(
                "'admin' in roles || resource.owner == claims.sub",
                json!({}),
                &["admin"]
            ),
            "true"
        );
        assert_eq!(
            rendered(
                "'admin' in roles && resource.owner == claims.sub",
                json!({}),
                &[]
            ),
            "false"
        );
        // A missing claim is an error for this principal.
        assert_eq!(
            rendered("resource.owner == claims.sub", json!({}), &[]),
            "NULL"
        );
        assert_eq!(
            rendered("resource.owner == claims.sub", json!({"sub": null}), &[]),
            "owner IS NULL"
        );
    }
}
