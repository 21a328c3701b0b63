//! Rules the planner can use: a planner support function on `oidc.allow(action, type,
//! 'name', value, …)` replaces the call, when planning, by the rules' residual
//! (`oidc_authz_core::rules::residual`) as a Postgres expression over the values the call
//! passes: `owner = …`, `labels && …`, `'x' = any(…)`, which b-tree and GIN indexes serve.
//!
//! What the plan holds is built from the rules alone. Every principal- or context-derived
//! value is a call of `oidc._fixed_bool/_text/_texts(key, slot, …)`, STABLE, evaluated at
//! execution (once per scan as an index key or a one-time filter), so a plan made under
//! one token decides correctly for another. A plan depends on `oidc.rules` (its oid is in
//! the plan's relation dependencies), so a rule change replans; a plan that meets rules it
//! was not built from (a change processed mid-statement) raises 40001 at execution.
//!
//! The expression is two-valued, as `oidc.allow()` is: each permit contributes "its
//! condition is true", each forbid "its condition is not false" (an error holds), and each
//! leaf is written for both (see `Want`). Nothing is simplified (the call stays, and the
//! evaluator decides per row) when any matching rule has a shape or an attribute type that
//! does not translate, when shadow rules match (they are evaluated per row), when the audit
//! is on (it counts per-row decisions), or outside the planner.

use crate::cache;
use crate::settings;
use oidc_authz_core::rules::residual::{translate, Cmp, Fixed, Leaf, Operand, Residual};
use oidc_authz_core::rules::span::{Part, Query, Scale};
use oidc_authz_core::rules::value::Val;
use oidc_authz_core::rules::{Effect, RuleSet};
use pgrx::pg_sys;
use pgrx::prelude::*;

pub(crate) mod fixed;
pub(crate) mod helpers;
pub(crate) mod nodes;

use fixed::{strings_of, value_test};
use helpers::{helpers, Helpers};
use nodes::*;

#[no_mangle]
pub extern "C" fn pg_finfo_oidc_allow_support() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

/// The planner support function of `oidc.allow`'s pair form.
///
/// # Safety
/// Called by the planner with a support request node as the only argument.
#[no_mangle]
#[pg_guard]
pub unsafe extern "C-unwind" fn oidc_allow_support(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fcinfo is valid; the argument is a Node (a support request).
    unsafe {
        let req = (*fcinfo).args.as_slice(1)[0]
            .value
            .cast_mut_ptr::<pg_sys::Node>();
        if req.is_null() || !pgrx::is_a(req, pg_sys::NodeTag::T_SupportRequestSimplify) {
            return pg_sys::Datum::from(0);
        }
        let req = &*(req as *mut pg_sys::SupportRequestSimplify);
        match simplify(req) {
            Some(expr) => pg_sys::Datum::from(expr),
            None => pg_sys::Datum::from(0),
        }
    }
}

/// The call's attribute: its expression and type.
struct Attr {
    name: String,
    expr: *mut pg_sys::Node,
    typ: pg_sys::Oid,
    collation: pg_sys::Oid,
}

/// What a leaf's expression must say about the CEL value of its condition.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    /// True exactly when the value is true (a permit, or under an even number of `!`).
    IsTrue,
    /// True exactly when the value is not false: true or an error (a forbid).
    NotFalse,
}

impl Want {
    fn flipped(self) -> Want {
        match self {
            Want::IsTrue => Want::NotFalse,
            Want::NotFalse => Want::IsTrue,
        }
    }
}

unsafe fn simplify(req: &pg_sys::SupportRequestSimplify) -> Option<*mut pg_sys::Node> {
    if req.root.is_null() || req.fcall.is_null() || settings::audit() || !settings::residuals() {
        return None;
    }
    // SAFETY: per the caller: a FuncExpr of the planner.
    unsafe {
        let parse = (*req.root).parse;
        // A query without tables (its range table holds at most the planner's own empty
        // "result" entry) gains nothing: no rows to filter. And PL/pgSQL runs such a query as
        // a "simple expression" without its initplans: the call must stay.
        if parse.is_null()
            || !list_nodes((*parse).rtable).iter().any(|rte| {
                (*(*rte as *mut pg_sys::RangeTblEntry)).rtekind != pg_sys::RTEKind::RTE_RESULT
            })
        {
            return None;
        }
        let fcall = &*req.fcall;
        if fcall.funcvariadic {
            return None;
        }
        let args = list_nodes(fcall.args);
        if args.len() < 4 || !args.len().is_multiple_of(2) {
            return None;
        }
        let action = const_text(args[0])?;
        let resource_type = const_text(args[1])?;
        let mut attrs: Vec<Attr> = Vec::new();
        for pair in args[2..].chunks(2) {
            let name = const_text(pair[0])?;
            if attrs.iter().any(|a| a.name == name) {
                continue; // the first of a name is what the evaluator reads
            }
            attrs.push(Attr {
                name,
                expr: pair[1],
                typ: pg_sys::exprType(pair[1]),
                collation: pg_sys::exprCollation(pair[1]),
            });
        }
        let helpers = helpers()?;
        let rules = cache::rules();
        // (found by the load just done, or the one this backend's cache came from)
        let rules_oid = crate::trust::rules_relation()?;
        let matching = rules.matching(&action, &resource_type);
        if matching.has_shadow() {
            // Shadow rules are evaluated per row beside the enforced ones (what they would
            // change is recorded), which only the call itself does.
            return None;
        }
        let pairs = &args[2..];
        let mut permits = Vec::new();
        for &i in matching.permits() {
            permits.push(rule_expr(&rules, i, &attrs, pairs, helpers));
        }
        let mut forbids = Vec::new();
        for &i in matching.forbids() {
            forbids.push(rule_expr(&rules, i, &attrs, pairs, helpers));
        }
        // The principal's values are scalar subqueries: initplans, evaluated once per
        // execution, which the planner makes from sublinks after this simplification.
        (*parse).hasSubLinks = true;
        // A change of the rules invalidates the plan (plancache watches these relations).
        let glob = (*req.root).glob;
        if !glob.is_null() {
            (*glob).relationOids = pg_sys::lappend_oid((*glob).relationOids, rules_oid);
        }
        let permitted = or(permits);
        Some(if forbids.is_empty() {
            permitted
        } else {
            and(vec![permitted, not(or(forbids))])
        })
    }
}

/// One rule's contribution: for a permit, "its condition is true"; for a forbid, "its
/// condition is not false". A rule that does not translate is evaluated per row, alone, by
/// `oidc._rule(key, want, <the call's pairs>)`.
unsafe fn rule_expr(
    rules: &RuleSet,
    i: usize,
    attrs: &[Attr],
    pairs: &[*mut pg_sys::Node],
    helpers: Helpers,
) -> *mut pg_sys::Node {
    let rule = rules.rule(i);
    // SAFETY: node construction in the planner's memory context.
    unsafe {
        if rule.unloadable {
            return bool_const(true);
        }
        let Some(program) = &rule.program else {
            return bool_const(true);
        };
        let want = match rule.effect {
            Effect::Permit => Want::IsTrue,
            Effect::Forbid => Want::NotFalse,
        };
        let b = Builder {
            key: rule.residual_key(),
            attrs,
            helpers,
        };
        let translated = translate(program).and_then(|t| {
            let expr = b.form(&t.residual, want)?;
            if t.fixed().is_empty() {
                return Some(expr);
            }
            // A principal-only part that runs out of steps makes the whole rule an error.
            let out_of_steps = b.fixed_bool(-1, "out of steps");
            Some(match want {
                Want::IsTrue => and(vec![expr, not(out_of_steps)]),
                Want::NotFalse => or(vec![expr, out_of_steps]),
            })
        });
        translated.unwrap_or_else(|| b.per_row(want, pairs))
    }
}

struct Builder<'a> {
    key: String,
    attrs: &'a [Attr],
    helpers: Helpers,
}

/// The column types a leaf can be written for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Column {
    Text,
    TextArray,
    Bool,
    /// Integers and timestamps: compared with bounds of type `bound` (see `core::span`).
    Ordered {
        scale: Scale,
        bound: pg_sys::Oid,
    },
}

impl Builder<'_> {
    unsafe fn form(&self, r: &Residual, want: Want) -> Option<*mut pg_sys::Node> {
        // SAFETY: node construction; children built first.
        unsafe {
            Some(match r {
                Residual::Fixed(f) => match want {
                    Want::IsTrue => self.fixed_bool(f.0 as i32, "true"),
                    Want::NotFalse => not(self.fixed_bool(f.0 as i32, "false")),
                },
                Residual::FixedIsUnknown(f) => self.fixed_bool(f.0 as i32, "unknown"),
                Residual::Unknown => bool_const(want == Want::NotFalse),
                Residual::And(a, b) => and(vec![self.form(a, want)?, self.form(b, want)?]),
                Residual::Or(a, b) => or(vec![self.form(a, want)?, self.form(b, want)?]),
                Residual::Not(a) => not(self.form(a, want.flipped())?),
                Residual::Leaf(leaf) => self.leaf(leaf, want)?,
            })
        }
    }

    fn attr(&self, name: &str) -> Option<&Attr> {
        self.attrs.iter().find(|a| a.name == name)
    }

    unsafe fn leaf(&self, leaf: &Leaf, want: Want) -> Option<*mut pg_sys::Node> {
        let Some(attr) = self.attr(leaf.attr()) else {
            // Not passed: `has()` is false, anything else an error.
            let value = match leaf {
                Leaf::Has { .. } => false,
                _ => want == Want::NotFalse,
            };
            // SAFETY: a plain node constructor.
            return Some(unsafe { bool_const(value) });
        };
        let ordered = |scale, bound| Column::Ordered { scale, bound };
        let column = match attr.typ {
            pg_sys::TEXTOID | pg_sys::VARCHAROID => Column::Text,
            pg_sys::TEXTARRAYOID => Column::TextArray,
            pg_sys::BOOLOID => Column::Bool,
            pg_sys::INT2OID | pg_sys::INT4OID | pg_sys::INT8OID => {
                ordered(Scale::Int, pg_sys::INT8OID)
            }
            pg_sys::TIMESTAMPTZOID | pg_sys::TIMESTAMPOID => ordered(Scale::Timestamp, attr.typ),
            _ => {
                return match leaf {
                    // SAFETY: a plain node constructor.
                    Leaf::Has { .. } => Some(unsafe { bool_const(true) }),
                    _ => None,
                };
            }
        };
        let collation = if attr.collation == pg_sys::InvalidOid {
            pg_sys::DEFAULT_COLLATION_OID
        } else {
            attr.collation
        };
        // In a SQL_ASCII database the evaluator reads bytes that are not UTF-8 as U+FFFD: its
        // comparisons are not the bytes' (per row, then).
        // SAFETY: a plain read of the database's encoding.
        let utf8 = unsafe { pg_sys::GetDatabaseEncoding() } == pg_sys::pg_enc::PG_UTF8 as i32;
        if matches!(column, Column::Text | Column::TextArray)
            // SAFETY: a catalog lookup of a valid collation.
            && (!utf8 || !unsafe { pg_sys::get_collation_isdeterministic(collation) })
        {
            return None; // equality would not be byte (code point) equality
        }
        // SAFETY: node construction over the call's own argument expressions.
        unsafe {
            let c = || as_text(attr.expr, collation);
            let is_null = || null_test(attr.expr, true);
            let not_null = || null_test(attr.expr, false);
            Some(match (leaf, column) {
                (Leaf::Has { .. }, _) => bool_const(true),
                // A bool attribute as a condition: NULL is not a bool (an error).
                (Leaf::Truthy { .. }, Column::Bool) => match want {
                    Want::IsTrue => and(vec![not_null(), attr.expr]),
                    Want::NotFalse => or(vec![is_null(), attr.expr]),
                },
                // A string or a list is never a bool: always an error.
                (Leaf::Truthy { .. }, _) => bool_const(want == Want::NotFalse),
                (Leaf::Compare { op, value, .. }, Column::Text) => {
                    let is_true = |b: &Self| {
                        Some(or(vec![
                            and(vec![
                                not_null(),
                                text_eq(c(), b.text(value, collation), collation),
                                b.test(value, "string"),
                            ]),
                            and(vec![is_null(), b.test(value, "null")]),
                        ]))
                    };
                    let not_false = |b: &Self| Some(or(vec![is_true(b)?, b.test(value, "error")]));
                    match (op, want) {
                        (Cmp::Eq, Want::IsTrue) => is_true(self)?,
                        (Cmp::Eq, Want::NotFalse) => not_false(self)?,
                        (Cmp::Ne, Want::IsTrue) => not(not_false(self)?),
                        (Cmp::Ne, Want::NotFalse) => not(is_true(self)?),
                        // CEL orders strings by code point: UTF-8 bytes under "C".
                        (op, want) => {
                            let strategy = match op {
                                Cmp::Lt => pg_sys::BTLessStrategyNumber,
                                Cmp::Le => pg_sys::BTLessEqualStrategyNumber,
                                Cmp::Gt => pg_sys::BTGreaterStrategyNumber,
                                _ => pg_sys::BTGreaterEqualStrategyNumber,
                            };
                            let opno = btree_operator(pg_sys::TEXTOID, pg_sys::TEXTOID, strategy)?;
                            let c = pg_sys::C_COLLATION_OID;
                            let is_true = and(vec![
                                not_null(),
                                self.test(value, "string"),
                                bool_op(
                                    opno.to_u32(),
                                    as_text(attr.expr, c),
                                    self.text(value, c),
                                    c,
                                ),
                            ]);
                            match want {
                                Want::IsTrue => is_true,
                                Want::NotFalse => {
                                    or(vec![is_true, is_null(), not(self.test(value, "string"))])
                                }
                            }
                        }
                    }
                }
                (Leaf::Compare { op, value, .. }, Column::Ordered { scale, bound }) => {
                    let span = |op| self.in_span(attr, scale, bound, op, value);
                    let is_null_and = |test| and(vec![is_null(), self.test(value, test)]);
                    match op {
                        Cmp::Eq | Cmp::Ne => {
                            // Equality is never an error, unless the value is one.
                            let is_true = || Some(or(vec![span(Cmp::Eq)?, is_null_and("null")]));
                            let not_false =
                                || Some(or(vec![is_true()?, self.test(value, "error")]));
                            match (op, want) {
                                (Cmp::Eq, Want::IsTrue) => is_true()?,
                                (Cmp::Eq, Want::NotFalse) => not_false()?,
                                (_, Want::IsTrue) => not(not_false()?),
                                (_, Want::NotFalse) => not(is_true()?),
                            }
                        }
                        // Ordering a NULL (CEL's null) is an error, as is ordering a value
                        // that is no number (no timestamp).
                        op => match want {
                            Want::IsTrue => span(*op)?,
                            Want::NotFalse => or(vec![
                                span(*op)?,
                                is_null(),
                                self.span_test(value, Query::new(scale, *op, Part::Error)),
                            ]),
                        },
                    }
                }
                (Leaf::In { set, .. }, Column::Text) => {
                    let list_or_map = self.test(set, "list or map");
                    let is_true = or(vec![
                        and(vec![
                            not_null(),
                            text_any(c(), self.texts(set, collation), collation),
                            list_or_map,
                        ]),
                        and(vec![is_null(), self.test(set, "holds null")]),
                    ]);
                    match want {
                        Want::IsTrue => is_true,
                        Want::NotFalse => or(vec![
                            is_true,
                            not(self.test(set, "list or map")),
                            and(vec![is_null(), self.test(set, "map")]),
                        ]),
                    }
                }
                (Leaf::Contains { value, .. }, Column::TextArray) => {
                    let element = array_of(self.text(value, collation), collation);
                    let is_true = or(vec![
                        and(vec![
                            not_null(),
                            bool_op(pg_sys::OID_ARRAY_CONTAINS_OP, attr.expr, element, collation),
                            self.test(value, "string"),
                        ]),
                        self.null_elements(value, "null", attr.expr, collation),
                    ]);
                    match want {
                        Want::IsTrue => is_true,
                        Want::NotFalse => or(vec![is_true, self.test(value, "error"), is_null()]),
                    }
                }
                (Leaf::Overlaps { set, .. }, Column::TextArray) => {
                    let is_true = and(vec![
                        not_null(),
                        or(vec![
                            and(vec![
                                bool_op(
                                    pg_sys::OID_ARRAY_OVERLAP_OP,
                                    attr.expr,
                                    self.texts(set, collation),
                                    collation,
                                ),
                                self.test(set, "list or map"),
                            ]),
                            self.null_elements(set, "holds null", attr.expr, collation),
                        ]),
                    ]);
                    match want {
                        Want::IsTrue => is_true,
                        Want::NotFalse => or(vec![
                            is_true,
                            is_null(),
                            and(vec![
                                self.call(self.helpers.nonempty, attr.expr),
                                not(self.test(set, "list or map")),
                            ]),
                            and(vec![
                                self.test(set, "map"),
                                self.call(self.helpers.has_null, attr.expr),
                            ]),
                        ]),
                    }
                }
                (Leaf::StartsWith { prefix, .. }, Column::Text) => {
                    // An error unless both are strings (a NULL column is no string).
                    let is_true = and(vec![
                        not_null(),
                        self.test(prefix, "string"),
                        starts_with(c(), self.text(prefix, collation), collation),
                    ]);
                    match want {
                        Want::IsTrue => is_true,
                        Want::NotFalse => {
                            or(vec![is_true, is_null(), not(self.test(prefix, "string"))])
                        }
                    }
                }
                _ => return None,
            })
        }
    }

    /// "The operand passes `test` and the array attribute holds a NULL element", written so
    /// that an index can serve the OR it is an arm of: `attr @> probe`, where the probe is
    /// `{}` (every array) when the test holds and NULL (no row, no index scan) when not.
    unsafe fn null_elements(
        &self,
        o: &Operand,
        test: &'static str,
        attr: *mut pg_sys::Node,
        collation: pg_sys::Oid,
    ) -> *mut pg_sys::Node {
        // SAFETY: node construction.
        unsafe {
            let probe = match o {
                Operand::Const(v) if value_test(&Ok(v.clone()), test) => {
                    array_expr(vec![], collation)
                }
                Operand::Const(_) => return bool_const(false),
                Operand::Fixed(Fixed(slot)) => self.fixed_call(
                    self.helpers.fixed_probe,
                    pg_sys::TEXTARRAYOID,
                    *slot as i32,
                    Some(test),
                    collation,
                ),
            };
            and(vec![
                self.test(o, test),
                self.call(self.helpers.has_null, attr),
                bool_op(pg_sys::OID_ARRAY_CONTAINS_OP, attr, probe, collation),
            ])
        }
    }

    /// For a non-NULL ordered column, true exactly where `column <op> value` is (`op` one of
    /// `== < <= > >=`), else false: `x >= lo AND x <= hi`, the bounds the operator needs,
    /// computed at execution for a fixed value.
    unsafe fn in_span(
        &self,
        attr: &Attr,
        scale: Scale,
        bound: pg_sys::Oid,
        op: Cmp,
        value: &Operand,
    ) -> Option<*mut pg_sys::Node> {
        let lower = matches!(op, Cmp::Eq | Cmp::Gt | Cmp::Ge);
        let upper = matches!(op, Cmp::Eq | Cmp::Lt | Cmp::Le);
        // SAFETY: catalog lookups and node construction over the call's own expression.
        unsafe {
            let ge = btree_operator(attr.typ, bound, pg_sys::BTGreaterEqualStrategyNumber)?;
            let le = btree_operator(attr.typ, bound, pg_sys::BTLessEqualStrategyNumber)?;
            let compare =
                |opno: pg_sys::Oid, b| bool_op(opno.to_u32(), attr.expr, b, pg_sys::InvalidOid);
            let mut arms = vec![null_test(attr.expr, false)];
            let query = |part| Query::new(scale, op, part);
            match value {
                Operand::Const(v) => {
                    let v = Ok(v.clone());
                    let (Some(lo), Some(hi)) =
                        (query(Part::Lo).bound(&v), query(Part::Hi).bound(&v))
                    else {
                        return Some(bool_const(false));
                    };
                    if lower {
                        arms.push(compare(ge, i64_const(bound, lo)));
                    }
                    if upper {
                        arms.push(compare(le, i64_const(bound, hi)));
                    }
                }
                Operand::Fixed(Fixed(slot)) => {
                    let slot = *slot as i32;
                    arms.push(self.fixed_bool(slot, &query(Part::Nonempty).text()));
                    let helper = match bound {
                        pg_sys::INT8OID => self.helpers.fixed_int8,
                        pg_sys::TIMESTAMPTZOID => self.helpers.fixed_timestamptz,
                        _ => self.helpers.fixed_timestamp,
                    };
                    let b = |part| {
                        let q = query(part).text();
                        self.fixed_call(helper, bound, slot, Some(&q), pg_sys::InvalidOid)
                    };
                    if lower {
                        arms.push(compare(ge, b(Part::Lo)));
                    }
                    if upper {
                        arms.push(compare(le, b(Part::Hi)));
                    }
                }
            }
            Some(and(arms))
        }
    }

    /// A span query's answer about an operand (see `core::span::Query::holds`).
    unsafe fn span_test(&self, o: &Operand, q: Query) -> *mut pg_sys::Node {
        match o {
            // SAFETY: a plain node constructor.
            Operand::Const(v) => unsafe { bool_const(q.holds(&Ok(v.clone()))) },
            // SAFETY: node construction.
            Operand::Fixed(Fixed(slot)) => unsafe { self.fixed_bool(*slot as i32, &q.text()) },
        }
    }

    /// A test of an operand's value: a constant for a literal, a call for a fixed value.
    unsafe fn test(&self, o: &Operand, test: &'static str) -> *mut pg_sys::Node {
        match o {
            // SAFETY: a plain node constructor.
            Operand::Const(v) => unsafe { bool_const(value_test(&Ok(v.clone()), test)) },
            // SAFETY: node construction.
            Operand::Fixed(Fixed(slot)) => unsafe { self.fixed_bool(*slot as i32, test) },
        }
    }

    /// The operand as text: the string, or NULL when it is not one.
    unsafe fn text(&self, o: &Operand, collation: pg_sys::Oid) -> *mut pg_sys::Node {
        // SAFETY: node construction.
        unsafe {
            match o {
                Operand::Const(Val::Str(s)) => text_const(s, collation),
                Operand::Const(_) => null_const(pg_sys::TEXTOID, collation),
                Operand::Fixed(Fixed(slot)) => self.fixed_call(
                    self.helpers.fixed_text,
                    pg_sys::TEXTOID,
                    *slot as i32,
                    None,
                    collation,
                ),
            }
        }
    }

    /// The operand's strings (a list's string elements, a map's keys) as text[], or NULL.
    unsafe fn texts(&self, o: &Operand, collation: pg_sys::Oid) -> *mut pg_sys::Node {
        // SAFETY: node construction.
        unsafe {
            match o {
                Operand::Const(v) => match strings_of(v) {
                    Some(strings) => array_expr(
                        strings.iter().map(|s| text_const(s, collation)).collect(),
                        collation,
                    ),
                    None => null_const(pg_sys::TEXTARRAYOID, collation),
                },
                Operand::Fixed(Fixed(slot)) => self.fixed_call(
                    self.helpers.fixed_texts,
                    pg_sys::TEXTARRAYOID,
                    *slot as i32,
                    None,
                    collation,
                ),
            }
        }
    }

    unsafe fn fixed_bool(&self, slot: i32, test: &str) -> *mut pg_sys::Node {
        // SAFETY: node construction.
        unsafe {
            self.fixed_call(
                self.helpers.fixed_bool,
                pg_sys::BOOLOID,
                slot,
                Some(test),
                pg_sys::InvalidOid,
            )
        }
    }

    /// `(select helper(key, slot[, test]))`: one of the rule's fixed values, as an initplan.
    unsafe fn fixed_call(
        &self,
        helper: pg_sys::Oid,
        returns: pg_sys::Oid,
        slot: i32,
        test: Option<&str>,
        collation: pg_sys::Oid,
    ) -> *mut pg_sys::Node {
        // SAFETY: node construction in the planner's memory context.
        unsafe {
            let mut args = vec![
                text_const(&self.key, pg_sys::DEFAULT_COLLATION_OID),
                int_const(slot),
            ];
            args.extend(test.map(|t| text_const(t, pg_sys::DEFAULT_COLLATION_OID)));
            init_plan(
                pg_sys::makeFuncExpr(
                    helper,
                    returns,
                    list(args),
                    collation,
                    pg_sys::DEFAULT_COLLATION_OID,
                    pg_sys::CoercionForm::COERCE_EXPLICIT_CALL,
                )
                .cast(),
            )
        }
    }

    /// The rule decided per row by the evaluator, over the call's own pairs.
    unsafe fn per_row(&self, want: Want, pairs: &[*mut pg_sys::Node]) -> *mut pg_sys::Node {
        let f = if pairs.len() == 2 {
            self.helpers.rule
        } else {
            self.helpers.rule_variadic
        };
        let want = match want {
            Want::IsTrue => "true",
            Want::NotFalse => "not false",
        };
        // SAFETY: node construction; the pairs are the call's own argument expressions.
        unsafe {
            let mut args = vec![
                text_const(&self.key, pg_sys::DEFAULT_COLLATION_OID),
                text_const(want, pg_sys::DEFAULT_COLLATION_OID),
            ];
            args.extend_from_slice(pairs);
            pg_sys::makeFuncExpr(
                f,
                pg_sys::BOOLOID,
                list(args),
                pg_sys::InvalidOid,
                pg_sys::DEFAULT_COLLATION_OID,
                pg_sys::CoercionForm::COERCE_EXPLICIT_CALL,
            )
            .cast()
        }
    }

    unsafe fn call(&self, f: pg_sys::Oid, arg: *mut pg_sys::Node) -> *mut pg_sys::Node {
        // SAFETY: node construction.
        unsafe {
            pg_sys::makeFuncExpr(
                f,
                pg_sys::BOOLOID,
                list(vec![arg]),
                pg_sys::InvalidOid,
                pg_sys::InvalidOid,
                pg_sys::CoercionForm::COERCE_EXPLICIT_CALL,
            )
            .cast()
        }
    }
}
