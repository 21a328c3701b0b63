//! The evaluator: a tree walk over resolved nodes. Variables are fields of [`Request`],
//! loop variables frame slots; no name is looked up while evaluating. Errors follow CEL:
//! `&&`/`||` absorb an error when the other side decides (`false && error` is false), any
//! other error propagates to the rule, which then fails closed.

mod error;
mod membership;

pub use error::{Conversion, EvalError, EvalErrorKind};
pub use membership::{str_in, strings_membership};

use super::time::{self, NANOS};
use super::value::{Map, Val};
use std::cmp::Ordering;
use std::rc::Rc;

/// The attributes of the resource a decision is about, read lazily: a policy passes
/// `jsonb_build_object(…)` per row, and only the fields a rule touches are converted.
pub trait Resource {
    fn field(&self, name: &str) -> Option<Val>;
    /// The whole resource, for conditions that use `resource` itself.
    fn whole(&self) -> Val;

    /// `resource.<name> == value` decided in place, as [`Val::equals`] would; `None` to have
    /// the caller convert the attribute (also when it is missing or null).
    fn field_equals(&self, _name: &str, _value: &Val) -> Option<bool> {
        None
    }

    /// `resource.<name>.exists(x, x in set)` (`all: false`) or `.all(…)` (`all: true`) when
    /// the attribute is a list of strings that can be checked in place, without building it
    /// (see [`strings_membership`]); `None` to have the caller convert the attribute and
    /// iterate. The second value is the steps spent, as the general path counts them.
    fn membership(
        &self,
        _name: &str,
        _set: &Result<Val, EvalError>,
        _all: bool,
    ) -> Option<(Result<bool, EvalError>, usize)> {
        None
    }
}

impl Resource for Val {
    fn field(&self, name: &str) -> Option<Val> {
        match self {
            Val::Map(m) => m.get(name).cloned(),
            _ => None,
        }
    }
    fn whole(&self) -> Val {
        self.clone()
    }
}

/// What a condition is evaluated against.
pub struct Request<'a> {
    pub claims: &'a Val,
    pub scopes: &'a Val,
    pub roles: &'a Val,
    pub context: &'a Val,
    pub resource: &'a dyn Resource,
}

pub use super::ast::{Builtin, Node, Op};

struct NoResource;
impl Resource for NoResource {
    fn field(&self, _: &str) -> Option<Val> {
        None
    }
    fn whole(&self) -> Val {
        Val::Null
    }
}

/// Evaluates a variable-free node (constant folding).
pub(crate) fn eval_constant(node: &Node) -> Result<Val, String> {
    let null = Val::Null;
    let req = Request {
        claims: &null,
        scopes: &null,
        roles: &null,
        context: &null,
        resource: &NoResource,
    };
    eval(node, &req, &mut Vec::new()).map_err(|e| e.to_string())
}

/// Deepest nesting of comprehensions and calls evaluated; the compiler already refuses
/// trees deeper than `compile::MAX_DEPTH`, so this is a second fence before the stack.
const MAX_DEPTH: usize = 200;

/// Most steps one evaluation may spend. Nested macros multiply (`[…100 items…]
/// .map(a, […100…].map(b, …))`), and so do list operations inside a macro
/// (`claims.groups.exists(g, g in resource.labels)` over 800 groups and 300 000 labels), so
/// without a bound a 4 KiB condition could run for hours on every row; 100 000 steps take
/// milliseconds.
///
/// The cost model, one step per unit of work that grows with the data:
/// - one per macro iteration (`all`, `exists`, `exists_one`, `map`, `filter`, and the
///   membership shortcut `range.exists(x, x in set)` / `.all(…)` per range element); the
///   in-place append of `map`/`filter`'s one element is part of its iteration;
/// - one per element compared by `in` over a list (up to the first equal one), and per list
///   element or map entry compared by `==`/`!=` (nested ones included);
/// - one per element copied into a list built by `+`;
/// - one per element of a list hashed by the membership shortcut: when `range length × set
///   length` exceeds a small threshold, the set's elements are hashed as they are first
///   scanned, each once per evaluation, and each string of the range then costs only its
///   iteration (see `membership::ListSet`).
///
/// Not counted: work on one string (`size`, `contains`, `+` of strings, conversions, map
/// lookups), bounded by that string's length per counted step, and reading a resource
/// attribute, converted at most once per evaluation.
///
/// Running out is an error nothing absorbs ([`EvalError::is_step_limit`]): a permit then
/// does not hold and a forbid does. The check runs after each counted operation, so one
/// evaluation does at most `MAX_STEPS` steps plus the one operation that crosses the budget
/// (at most the length of the lists it touches); a decision evaluates each matching rule
/// once, a condition split in a memoised part and a per-row part sharing one budget.
pub const MAX_STEPS: usize = 100_000;

/// Loop variables and accumulators by slot. A slot holds a result, not a value: CEL's
/// macros combine per-element errors like `&&`/`||` do, so an accumulator may be an error
/// that a later element absorbs (`[0, 1].exists(x, 1 / x > 0)` is true).
pub type Frame = Vec<Result<Val, EvalError>>;

pub fn eval(node: &Node, req: &Request, frame: &mut Frame) -> Result<Val, EvalError> {
    let mut e = Eval::new(req, 0);
    let out = e.eval(node, frame);
    // Running out of steps stops the condition: `||` or a macro must not absorb it.
    if e.steps > MAX_STEPS {
        return out_of_steps();
    }
    out
}

/// [`eval`] with `steps` already spent (by another part of the same condition), returning
/// the steps spent in all: a condition split in parts shares one budget.
pub(crate) fn eval_counted(
    node: &Node,
    req: &Request,
    frame: &mut Frame,
    steps: usize,
) -> (Result<Val, EvalError>, usize) {
    let mut e = Eval::new(req, steps);
    let out = e.eval(node, frame);
    // Running out of steps stops the condition: `||` or a macro must not absorb it.
    if e.steps > MAX_STEPS {
        return (out_of_steps(), e.steps);
    }
    (out, e.steps)
}

fn out_of_steps<T>() -> Result<T, EvalError> {
    Err(EvalErrorKind::StepLimit.into())
}

struct Eval<'r, 'a> {
    req: &'r Request<'a>,
    depth: usize,
    steps: usize,
    /// Resource attributes converted so far (a condition names few): a macro reading
    /// `resource.labels` in its body must not convert the list once per iteration, uncounted.
    fields: Vec<(Rc<str>, Option<Val>)>,
    /// The whole resource, once converted.
    whole: Option<Val>,
}

impl<'r, 'a> Eval<'r, 'a> {
    fn new(req: &'r Request<'a>, steps: usize) -> Self {
        Eval {
            req,
            depth: 0,
            steps,
            fields: Vec::new(),
            whole: None,
        }
    }

    /// `resource.<name>`, converted once per evaluation.
    fn field(&mut self, name: &Rc<str>) -> Option<Val> {
        if let Some((_, v)) = self.fields.iter().find(|(n, _)| n == name) {
            return v.clone();
        }
        let v = self.req.resource.field(name);
        self.fields.push((name.clone(), v.clone()));
        v
    }

    fn whole(&mut self) -> Val {
        self.whole
            .get_or_insert_with(|| self.req.resource.whole())
            .clone()
    }

    /// Whether the budget is spent; after any operation that counts steps.
    fn spent(&self) -> bool {
        self.steps > MAX_STEPS
    }
}

impl Eval<'_, '_> {
    fn eval(&mut self, node: &Node, frame: &mut Frame) -> Result<Val, EvalError> {
        if self.steps > MAX_STEPS {
            return out_of_steps();
        }
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(EvalErrorKind::TooDeep.into());
        }
        let out = self.eval_inner(node, frame);
        self.depth -= 1;
        out
    }

    fn bool(&mut self, node: &Node, frame: &mut Frame) -> Result<bool, EvalError> {
        match self.eval(node, frame)? {
            Val::Bool(b) => Ok(b),
            other => Err(EvalErrorKind::NotBool {
                got: other.type_name(),
            }
            .into()),
        }
    }

    fn eval_inner(&mut self, node: &Node, frame: &mut Frame) -> Result<Val, EvalError> {
        Ok(match node {
            Node::Const(v) => v.clone(),
            Node::Claims => self.req.claims.clone(),
            Node::Scopes => self.req.scopes.clone(),
            Node::Roles => self.req.roles.clone(),
            Node::Context => self.req.context.clone(),
            Node::Resource => self.whole(),
            Node::ResourceField(f) => match self.field(f) {
                Some(v) => v,
                None => return Err(EvalErrorKind::NoResourceField(f.to_string()).into()),
            },
            Node::HasResourceField(f) => Val::Bool(self.field(f).is_some()),
            Node::Local(slot) | Node::Accu(slot) => {
                frame.get(*slot).cloned().unwrap_or(Ok(Val::Null))?
            }
            Node::Select(operand, f) => match self.eval(operand, frame)? {
                Val::Map(m) => match m.get(&**f) {
                    Some(v) => v.clone(),
                    None => return Err(EvalErrorKind::NoSuchKey(Some(f.to_string())).into()),
                },
                other => {
                    return Err(EvalErrorKind::CannotSelect {
                        field: f.to_string(),
                        from: other.type_name(),
                    }
                    .into())
                }
            },
            Node::Has(operand, f) => match self.eval(operand, frame)? {
                Val::Map(m) => Val::Bool(m.contains_key(&**f)),
                other => {
                    return Err(EvalErrorKind::HasNeedsMap {
                        got: other.type_name(),
                    }
                    .into())
                }
            },
            Node::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for i in items {
                    out.push(self.eval(i, frame)?);
                }
                Val::List(Rc::new(out))
            }
            Node::Map(entries) => {
                let mut out = Map::new();
                for (k, v) in entries {
                    let Val::Str(key) = self.eval(k, frame)? else {
                        return Err(EvalErrorKind::MapKeyNotString.into());
                    };
                    let value = self.eval(v, frame)?;
                    if out.insert(key, value).is_some() {
                        // The key may be data: name its expression, not its value.
                        return Err(EvalErrorKind::DuplicateMapKey(describe(k)).into());
                    }
                }
                Val::Map(Rc::new(out))
            }
            Node::And(a, b) => {
                let left = self.bool(a, frame);
                if left == Ok(false) {
                    return Ok(Val::Bool(false));
                }
                let right = self.bool(b, frame);
                match (left, right) {
                    (_, Ok(false)) => Val::Bool(false),
                    (Ok(true), Ok(true)) => Val::Bool(true),
                    (Err(e), _) | (_, Err(e)) => return Err(e),
                    _ => Val::Bool(false),
                }
            }
            Node::Or(a, b) => {
                let left = self.bool(a, frame);
                if left == Ok(true) {
                    return Ok(Val::Bool(true));
                }
                let right = self.bool(b, frame);
                match (left, right) {
                    (_, Ok(true)) => Val::Bool(true),
                    (Ok(false), Ok(false)) => Val::Bool(false),
                    (Err(e), _) | (_, Err(e)) => return Err(e),
                    _ => Val::Bool(true),
                }
            }
            Node::Not(a) => Val::Bool(!self.bool(a, frame)?),
            Node::NotStrictlyFalse(a) => {
                Val::Bool(!matches!(self.eval(a, frame), Ok(Val::Bool(false))))
            }
            Node::Neg(a) => match self.eval(a, frame)? {
                Val::Int(i) => Val::Int(i.checked_neg().ok_or(EvalErrorKind::NegationOverflow)?),
                Val::Double(d) => Val::Double(-d),
                // Not in the spec's overloads, but in cel-go's (`Duration.Negate`).
                Val::Duration(d) => duration(-d)?,
                other => {
                    return Err(EvalErrorKind::NoNegationOverload {
                        operand: other.type_name(),
                    }
                    .into())
                }
            },
            Node::Cond(c, a, b) => {
                if self.bool(c, frame)? {
                    self.eval(a, frame)?
                } else {
                    self.eval(b, frame)?
                }
            }
            Node::Op(Op::Add, a, b) if matches!(**a, Node::Accu(_)) => {
                // `map`/`filter` build their list as `@result + [x]`: taking the accumulator
                // out of its slot leaves the list unshared, so appending does not copy it
                // (copying made a macro over n elements cost n²/2).
                let b = self.eval(b, frame)?;
                let Node::Accu(slot) = **a else {
                    return Err(EvalErrorKind::Internal("malformed accumulator").into());
                };
                let a = match frame.get_mut(slot) {
                    Some(v) => std::mem::replace(v, Ok(Val::Null))?,
                    None => Val::Null,
                };
                match (a, b) {
                    // The compiler's `@result + [x]`: one element, paid by the iteration.
                    (Val::List(mut x), Val::List(y)) => {
                        Rc::make_mut(&mut x).extend(y.iter().cloned());
                        Val::List(x)
                    }
                    (a, b) => binary(Op::Add, &a, &b, &mut self.steps)?,
                }
            }
            Node::Op(op @ (Op::Eq | Op::Ne), a, b)
                if matches!(**a, Node::ResourceField(_))
                    || matches!(**b, Node::ResourceField(_)) =>
            {
                self.compare_field(*op, a, b, frame)?
            }
            Node::Op(Op::Index, a, b) => {
                let container = self.eval(a, frame)?;
                let key = self.eval(b, frame)?;
                index(&container, &key, describe(b).as_deref())?
            }
            Node::Op(op, a, b) => self.eval_op(*op, a, b, frame)?,
            Node::Call(f, args) => {
                let mut vals = Vec::with_capacity(args.len());
                for a in args {
                    vals.push(self.eval(a, frame)?);
                }
                call(*f, &vals).map_err(|e| named_call(*f, args, e))?
            }
            Node::Membership { all, range, set } => self.membership(*all, range, set, frame)?,
            Node::Fold {
                range,
                iter,
                accu,
                init,
                cond,
                step,
                result,
            } => {
                let range = self.eval(range, frame)?;
                let items = Items::of(&range)?;
                let need = (*iter).max(*accu) + 1;
                if frame.len() < need {
                    frame.resize(need, Ok(Val::Null));
                }
                // No `?` on the steps: an erroring element leaves an error in the
                // accumulator, which `cond` (`@not_strictly_false`) lets the loop go past
                // and a later `true || error` (exists) or `false && error` (all) absorbs.
                frame[*accu] = self.eval(init, frame);
                for item in items {
                    self.steps += 1;
                    if self.spent() {
                        return out_of_steps();
                    }
                    if !self.bool(cond, frame)? {
                        break;
                    }
                    frame[*iter] = Ok(item);
                    let next = self.eval(step, frame);
                    frame[*accu] = next;
                }
                self.eval(result, frame)?
            }
        })
    }
}

impl Eval<'_, '_> {
    /// `resource.f == x` / `!=`: asks the resource to compare in place (no value built for
    /// the attribute); falls back to the general path, with its order of evaluation and
    /// errors, whenever the resource cannot or the other side fails.
    fn compare_field(
        &mut self,
        op: Op,
        a: &Node,
        b: &Node,
        frame: &mut Frame,
    ) -> Result<Val, EvalError> {
        let (field, other) = match (a, b) {
            (Node::ResourceField(f), other) | (other, Node::ResourceField(f)) => (f, other),
            _ => return self.eval_op(op, a, b, frame),
        };
        if let Ok(value) = self.eval(other, frame) {
            if let Some(equal) = self.req.resource.field_equals(field, &value) {
                return Ok(Val::Bool(equal == (op == Op::Eq)));
            }
        }
        self.eval_op(op, a, b, frame)
    }

    fn eval_op(&mut self, op: Op, a: &Node, b: &Node, frame: &mut Frame) -> Result<Val, EvalError> {
        let a = self.eval(a, frame)?;
        let b = self.eval(b, frame)?;
        binary(op, &a, &b, &mut self.steps)
    }
}

/// What a macro iterates: a list's elements, or a map's keys (CEL iterates maps by key),
/// both in place: a macro that stops at its first element must not pay for the rest.
enum Items<'v> {
    List(std::slice::Iter<'v, Val>),
    Keys(std::collections::btree_map::Keys<'v, Rc<str>, Val>),
}

impl<'v> Items<'v> {
    fn of(range: &'v Val) -> Result<Items<'v>, EvalError> {
        match range {
            Val::List(l) => Ok(Items::List(l.iter())),
            Val::Map(m) => Ok(Items::Keys(m.keys())),
            other => Err(EvalErrorKind::NotIterable {
                got: other.type_name(),
            }
            .into()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Items::List(l) => l.len(),
            Items::Keys(k) => k.len(),
        }
    }
}

impl Iterator for Items<'_> {
    type Item = Val;
    fn next(&mut self) -> Option<Val> {
        match self {
            Items::List(l) => l.next().cloned(),
            Items::Keys(k) => k.next().map(|k| Val::Str(k.clone())),
        }
    }
}

/// [`Val::equals`], counting one step per list element and map entry compared.
fn equals_counted(a: &Val, b: &Val, steps: &mut usize) -> bool {
    match (a, b) {
        (Val::List(x), Val::List(y)) => {
            x.len() == y.len()
                && x.iter().zip(y.iter()).all(|(p, q)| {
                    *steps += 1;
                    equals_counted(p, q, steps)
                })
        }
        (Val::Map(x), Val::Map(y)) => {
            x.len() == y.len()
                && x.iter().all(|(k, v)| {
                    *steps += 1;
                    y.get(k).is_some_and(|w| equals_counted(v, w, steps))
                })
        }
        _ => a.equals(b),
    }
}

/// `elem in list`, counting one step per element compared (see [`MAX_STEPS`]).
fn list_contains(list: &[Val], elem: &Val, steps: &mut usize) -> bool {
    list.iter().any(|x| {
        *steps += 1;
        equals_counted(x, elem, steps)
    })
}

/// A binary operator, adding the work it does on lists to `steps` (see [`MAX_STEPS`]).
/// A binary operator on two values, as a condition evaluates it (steps not counted): for
/// callers that model a part of a condition (`residual`).
pub(crate) fn binary_values(op: Op, a: &Val, b: &Val) -> Result<Val, EvalError> {
    binary(op, a, b, &mut 0)
}

fn binary(op: Op, a: &Val, b: &Val, steps: &mut usize) -> Result<Val, EvalError> {
    let no = || binary_no_overload(op, a, b);
    let ord = |want: fn(Ordering) -> bool| match a.compare(b) {
        Some(o) => Ok(Val::Bool(want(o))),
        None => Err(EvalErrorKind::NotComparable {
            left: a.type_name(),
            right: b.type_name(),
        }
        .into()),
    };
    match op {
        Op::Eq => Ok(Val::Bool(equals_counted(a, b, steps))),
        Op::Ne => Ok(Val::Bool(!equals_counted(a, b, steps))),
        Op::Lt => ord(|o| o == Ordering::Less),
        Op::Le => ord(|o| o != Ordering::Greater),
        Op::Gt => ord(|o| o == Ordering::Greater),
        Op::Ge => ord(|o| o != Ordering::Less),
        Op::In => match b {
            Val::List(l) => Ok(Val::Bool(list_contains(l, a, steps))),
            Val::Map(m) => match a {
                Val::Str(k) => Ok(Val::Bool(m.contains_key(&**k))),
                // Our maps have string keys only, so another key type is never there
                // (CEL: `3 in {1: "one"} // false`) …
                Val::Int(_) | Val::Uint(_) | Val::Double(_) | Val::Bool(_) => Ok(Val::Bool(false)),
                // … but a value that cannot be a map key matches no overload of `A in map(A, B)`.
                _ => no(),
            },
            _ => no(),
        },
        Op::Index => index(a, b, None),
        Op::Add => match (a, b) {
            (Val::Int(x), Val::Int(y)) => x.checked_add(*y).map(Val::Int).ok_or_else(overflow),
            (Val::Uint(x), Val::Uint(y)) => x.checked_add(*y).map(Val::Uint).ok_or_else(overflow),
            (Val::Double(x), Val::Double(y)) => Ok(Val::Double(x + y)),
            (Val::Str(x), Val::Str(y)) => Ok(Val::Str(Rc::from(format!("{x}{y}")))),
            (Val::List(x), Val::List(y)) => {
                *steps += x.len() + y.len();
                Ok(Val::List(Rc::new(
                    x.iter().chain(y.iter()).cloned().collect(),
                )))
            }
            (Val::Timestamp(t), Val::Duration(d)) | (Val::Duration(d), Val::Timestamp(t)) => {
                timestamp(t + d)
            }
            (Val::Duration(x), Val::Duration(y)) => duration(x + y),
            _ => no(),
        },
        Op::Sub => match (a, b) {
            (Val::Int(x), Val::Int(y)) => x.checked_sub(*y).map(Val::Int).ok_or_else(overflow),
            (Val::Uint(x), Val::Uint(y)) => x.checked_sub(*y).map(Val::Uint).ok_or_else(overflow),
            (Val::Double(x), Val::Double(y)) => Ok(Val::Double(x - y)),
            (Val::Timestamp(t), Val::Duration(d)) => timestamp(t - d),
            (Val::Timestamp(x), Val::Timestamp(y)) => duration(x - y),
            (Val::Duration(x), Val::Duration(y)) => duration(x - y),
            _ => no(),
        },
        Op::Mul => match (a, b) {
            (Val::Int(x), Val::Int(y)) => x.checked_mul(*y).map(Val::Int).ok_or_else(overflow),
            (Val::Uint(x), Val::Uint(y)) => x.checked_mul(*y).map(Val::Uint).ok_or_else(overflow),
            (Val::Double(x), Val::Double(y)) => Ok(Val::Double(x * y)),
            _ => no(),
        },
        Op::Div => match (a, b) {
            (Val::Int(_), Val::Int(0)) | (Val::Uint(_), Val::Uint(0)) => {
                Err(EvalErrorKind::DivisionByZero.into())
            }
            (Val::Int(x), Val::Int(y)) => x.checked_div(*y).map(Val::Int).ok_or_else(overflow),
            (Val::Uint(x), Val::Uint(y)) => Ok(Val::Uint(x / y)),
            (Val::Double(x), Val::Double(y)) => Ok(Val::Double(x / y)),
            _ => no(),
        },
        Op::Mod => match (a, b) {
            (Val::Int(_), Val::Int(0)) | (Val::Uint(_), Val::Uint(0)) => {
                Err(EvalErrorKind::ModulusByZero.into())
            }
            (Val::Int(x), Val::Int(y)) => x.checked_rem(*y).map(Val::Int).ok_or_else(overflow),
            (Val::Uint(x), Val::Uint(y)) => Ok(Val::Uint(x % y)),
            _ => no(),
        },
    }
}

/// `a[b]`; an error names the index by `key`, its expression when known (see [`describe`]),
/// never by its value, which may be data.
fn index(a: &Val, b: &Val, key: Option<&str>) -> Result<Val, EvalError> {
    match (a, b) {
        (Val::List(l), idx) => {
            let i = match idx {
                Val::Int(i) => *i,
                Val::Uint(u) => i64::try_from(*u).unwrap_or(i64::MAX),
                Val::Double(d) if d.fract() == 0.0 => *d as i64,
                _ => return binary_no_overload(Op::Index, a, b),
            };
            usize::try_from(i)
                .ok()
                .and_then(|i| l.get(i))
                .cloned()
                .ok_or_else(|| EvalErrorKind::IndexOutOfRange(key.map(str::to_owned)).into())
        }
        (Val::Map(m), Val::Str(k)) => m
            .get(&**k)
            .cloned()
            .ok_or_else(|| EvalErrorKind::NoSuchKey(key.map(str::to_owned)).into()),
        _ => binary_no_overload(Op::Index, a, b),
    }
}

fn binary_no_overload<T>(op: Op, a: &Val, b: &Val) -> Result<T, EvalError> {
    Err(EvalErrorKind::NoOperatorOverload {
        op,
        left: a.type_name(),
        right: b.type_name(),
    }
    .into())
}

/// The rule text an expression was written as, when it is a path (`resource.pin`,
/// `claims.a.b`) or a constant (which only the rule's text can make): what an error may
/// name instead of a value, which may be data the reader of the error cannot see.
fn describe(node: &Node) -> Option<String> {
    Some(match node {
        Node::Claims => "claims".into(),
        Node::Scopes => "scopes".into(),
        Node::Roles => "roles".into(),
        Node::Context => "context".into(),
        Node::Resource => "resource".into(),
        Node::ResourceField(f) => format!("resource.{f}"),
        Node::Select(inner, f) => format!("{}.{f}", describe(inner)?),
        Node::Op(Op::Index, a, b) => format!("{}[{}]", describe(a)?, describe(b)?),
        Node::Const(Val::Str(s)) => format!("'{}'", crate::token::quote(s)),
        Node::Const(
            v @ (Val::Null | Val::Bool(_) | Val::Int(_) | Val::Uint(_) | Val::Double(_)),
        ) => v.to_string(),
        _ => return None,
    })
}

/// A conversion's or parse's error, prefixed with the call as the rule wrote it when an
/// argument can be named (see [`describe`]; `…` for one that cannot), so the error says
/// which attribute failed without quoting its value.
fn named_call(f: Builtin, args: &[Node], e: EvalError) -> EvalError {
    let converts = matches!(
        f,
        Builtin::Int
            | Builtin::Uint
            | Builtin::Double
            | Builtin::Bool
            | Builtin::Timestamp
            | Builtin::Duration
            | Builtin::Accessor(_)
    );
    let names: Vec<Option<String>> = args.iter().map(describe).collect();
    if !converts || names.iter().all(Option::is_none) {
        return e;
    }
    let shown: Vec<String> = names
        .into_iter()
        .map(|n| n.unwrap_or_else(|| "…".into()))
        .collect();
    let call = match (f, shown.split_first()) {
        (Builtin::Accessor(_), Some((receiver, rest))) => {
            format!("{receiver}.{}({})", name(f), rest.join(", "))
        }
        _ => format!("{}({})", name(f), shown.join(", ")),
    };
    EvalErrorKind::InCall { call, error: e }.into()
}

fn overflow() -> EvalError {
    EvalErrorKind::Overflow.into()
}

/// A duration, or the range error CEL's overflow rule asks for (an int64 of nanoseconds).
fn duration(ns: i128) -> Result<Val, EvalError> {
    if time::duration_in_range(ns) {
        Ok(Val::Duration(ns))
    } else {
        Err(EvalErrorKind::DurationOutOfRange.into())
    }
}

fn timestamp(ns: i128) -> Result<Val, EvalError> {
    if time::in_range(ns) {
        Ok(Val::Timestamp(ns))
    } else {
        Err(EvalErrorKind::TimestampOutOfRange.into())
    }
}

fn call(f: Builtin, args: &[Val]) -> Result<Val, EvalError> {
    let no = || {
        Err(EvalErrorKind::NoFunctionOverload {
            function: name(f),
            args: args.iter().map(Val::type_name).collect(),
        }
        .into())
    };
    let text = |i: usize| match args.get(i) {
        Some(Val::Str(s)) => Some(s.clone()),
        _ => None,
    };
    match f {
        Builtin::Size => match args.first() {
            Some(Val::Str(s)) => Ok(Val::Int(s.chars().count() as i64)),
            Some(Val::List(l)) => Ok(Val::Int(l.len() as i64)),
            Some(Val::Map(m)) => Ok(Val::Int(m.len() as i64)),
            _ => no(),
        },
        Builtin::StartsWith | Builtin::EndsWith | Builtin::Contains => match (text(0), text(1)) {
            (Some(s), Some(p)) => Ok(Val::Bool(match f {
                Builtin::StartsWith => s.starts_with(&*p),
                Builtin::EndsWith => s.ends_with(&*p),
                _ => s.contains(&*p),
            })),
            _ => no(),
        },
        Builtin::Int => match args.first() {
            Some(Val::Int(i)) => Ok(Val::Int(*i)),
            Some(Val::Uint(u)) => i64::try_from(*u).map(Val::Int).map_err(|_| overflow()),
            // The spec's range for double to int is (minInt, maxInt), bounds excluded;
            // as doubles those bounds are -2^63 and 2^63.
            Some(Val::Double(d))
                if *d > -9_223_372_036_854_775_808.0 && *d < 9_223_372_036_854_775_808.0 =>
            {
                Ok(Val::Int(d.trunc() as i64))
            }
            Some(Val::Str(s)) => s
                .parse()
                .map(Val::Int)
                .map_err(|_| EvalErrorKind::NotConvertible(Conversion::Int).into()),
            Some(Val::Timestamp(t)) => Ok(Val::Int(t.div_euclid(NANOS) as i64)),
            Some(Val::Double(_)) => Err(overflow()),
            _ => no(),
        },
        Builtin::Uint => match args.first() {
            Some(Val::Uint(u)) => Ok(Val::Uint(*u)),
            Some(Val::Int(i)) => u64::try_from(*i).map(Val::Uint).map_err(|_| overflow()),
            Some(Val::Double(d)) if *d >= 0.0 && *d < 18_446_744_073_709_551_616.0 => {
                Ok(Val::Uint(d.trunc() as u64))
            }
            Some(Val::Str(s)) => s
                .parse()
                .map(Val::Uint)
                .map_err(|_| EvalErrorKind::NotConvertible(Conversion::Uint).into()),
            Some(Val::Double(_)) => Err(overflow()),
            _ => no(),
        },
        Builtin::Double => match args.first() {
            Some(Val::Double(d)) => Ok(Val::Double(*d)),
            Some(Val::Int(i)) => Ok(Val::Double(*i as f64)),
            Some(Val::Uint(u)) => Ok(Val::Double(*u as f64)),
            Some(Val::Str(s)) => s
                .parse()
                .map(Val::Double)
                .map_err(|_| EvalErrorKind::NotConvertible(Conversion::Double).into()),
            _ => no(),
        },
        Builtin::String => match args.first() {
            Some(Val::Str(s)) => Ok(Val::Str(s.clone())),
            Some(Val::Bool(b)) => Ok(Val::str(if *b { "true" } else { "false" })),
            Some(Val::Int(i)) => Ok(Val::Str(Rc::from(i.to_string()))),
            Some(Val::Uint(u)) => Ok(Val::Str(Rc::from(u.to_string()))),
            Some(Val::Double(d)) => Ok(Val::Str(Rc::from(d.to_string()))),
            Some(v @ (Val::Timestamp(_) | Val::Duration(_))) => {
                Ok(Val::Str(Rc::from(v.to_string())))
            }
            _ => no(),
        },
        Builtin::Bool => match args.first() {
            Some(Val::Bool(b)) => Ok(Val::Bool(*b)),
            Some(Val::Str(s)) => match &**s {
                "true" | "True" | "TRUE" | "t" | "1" => Ok(Val::Bool(true)),
                "false" | "False" | "FALSE" | "f" | "0" => Ok(Val::Bool(false)),
                _ => Err(EvalErrorKind::NotConvertible(Conversion::Bool).into()),
            },
            _ => no(),
        },
        Builtin::Timestamp => match args.first() {
            Some(Val::Str(s)) => time::parse_timestamp(s).map(Val::Timestamp),
            Some(Val::Int(secs)) => timestamp(i128::from(*secs) * NANOS),
            Some(Val::Timestamp(t)) => Ok(Val::Timestamp(*t)),
            _ => no(),
        },
        Builtin::Duration => match args.first() {
            Some(Val::Str(s)) => time::parse_duration(s).map(Val::Duration),
            Some(Val::Duration(d)) => Ok(Val::Duration(*d)),
            _ => no(),
        },
        Builtin::Dyn => args.first().cloned().map_or_else(no, Ok),
        Builtin::Accessor(field) => {
            let tz = match args.get(1) {
                None => None,
                Some(Val::Str(z)) => Some(z.clone()),
                Some(_) => return no(),
            };
            match args.first() {
                Some(Val::Timestamp(t)) => time::calendar(*t, field, tz.as_deref()).map(Val::Int),
                Some(Val::Duration(d)) if tz.is_none() => Ok(Val::Int(match field {
                    "getHours" => d / (3600 * NANOS),
                    "getMinutes" => d / (60 * NANOS),
                    "getSeconds" => d / NANOS,
                    // The milliseconds *portion*, unlike the others: the spec's
                    // `duration("1.234s").getMilliseconds() // 234`.
                    "getMilliseconds" => d % NANOS / 1_000_000,
                    _ => return no(),
                } as i64)),
                _ => no(),
            }
        }
    }
}

fn name(f: Builtin) -> &'static str {
    match f {
        Builtin::Size => "size",
        Builtin::StartsWith => "startsWith",
        Builtin::EndsWith => "endsWith",
        Builtin::Contains => "contains",
        Builtin::Int => "int",
        Builtin::Uint => "uint",
        Builtin::Double => "double",
        Builtin::String => "string",
        Builtin::Bool => "bool",
        Builtin::Timestamp => "timestamp",
        Builtin::Duration => "duration",
        Builtin::Dyn => "dyn",
        Builtin::Accessor(a) => a,
    }
}
