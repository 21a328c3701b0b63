//! Residuals: a rule's condition as what a database can decide per row with its own
//! operators (and indexes), around what is known once per execution.
//!
//! For one rule set the parts of a condition that read only the principal and the context
//! (`claims.sub`, `"editor" in roles`, `context.time`) have the same value on every row of
//! an execution; what is left reads the row through a few shapes a database evaluates
//! natively: an attribute compared with a value, list membership both ways, overlap of two
//! lists, presence, a prefix. [`translate`] turns a compiled condition into that residual,
//! or gives up (`None`) for a condition with any other shape, which is then decided per row
//! by the evaluator: correctness never depends on translation, only speed.
//!
//! The residual is built from the rules alone, never from a principal: a plan that holds
//! it outlives the token it was made under. Principal- and context-derived values are
//! [`Fixed`] nodes, evaluated at execution ([`Translation::fixed`]).
//!
//! Semantics. CEL's `&&`, `||` and `!` over true, false and error are exactly SQL's
//! `AND`, `OR` and `NOT` over true, false and NULL; a residual's value is that three-valued
//! logic ([`Tri`]) with an error as NULL. Each leaf's value is the CEL value of the
//! expression it came from (an error, or a value that is not a bool, is `Unknown`). A permit
//! holds when its residual is true; a forbid holds unless its residual is false. A caller
//! turning a residual into SQL must give each leaf exactly its CEL value for the column's
//! type (text, char(n) padding, numbers across int/uint/double, NULL columns, collations),
//! or not translate that rule.
//!
//! Budget. The evaluator stops a condition after `eval::MAX_STEPS` steps; a fixed part that
//! runs out makes the whole rule an error ([`Translation::fixed_values`] says so, and the
//! caller must then treat the rule as erroring, unabsorbed). Per-row leaves are the
//! database's own operators, without a step budget: a row whose list attribute holds more
//! elements than the budget is decided by the residual, where the evaluator would run out
//! of steps and fail closed.

use super::compile::Program;
use super::eval::{self, Builtin, EvalError, EvalErrorKind, Node, Op, Request};
use super::value::Val;
use std::rc::Rc;

/// One value known once per execution: index into [`Translation::fixed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fixed(pub usize);

/// The other side of a leaf: a literal of the rule, or a value computed at execution.
#[derive(Debug, Clone)]
pub enum Operand {
    Const(Val),
    Fixed(Fixed),
}

/// Comparison operators of [`Leaf::Compare`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn of(op: Op) -> Option<Cmp> {
        Some(match op {
            Op::Eq => Cmp::Eq,
            Op::Ne => Cmp::Ne,
            Op::Lt => Cmp::Lt,
            Op::Le => Cmp::Le,
            Op::Gt => Cmp::Gt,
            Op::Ge => Cmp::Ge,
            _ => return None,
        })
    }

    /// The operator with its operands swapped (`x < a` is `a > x`).
    fn swapped(self) -> Cmp {
        match self {
            Cmp::Lt => Cmp::Gt,
            Cmp::Le => Cmp::Ge,
            Cmp::Gt => Cmp::Lt,
            Cmp::Ge => Cmp::Le,
            other => other,
        }
    }

    pub(crate) fn op(self) -> Op {
        match self {
            Cmp::Eq => Op::Eq,
            Cmp::Ne => Op::Ne,
            Cmp::Lt => Op::Lt,
            Cmp::Le => Op::Le,
            Cmp::Gt => Op::Gt,
            Cmp::Ge => Op::Ge,
        }
    }
}

/// A per-row test of one resource attribute.
#[derive(Debug, Clone)]
pub enum Leaf {
    /// `resource.attr <op> value` (or `value <op> resource.attr`, normalised).
    Compare {
        attr: Rc<str>,
        op: Cmp,
        value: Operand,
    },
    /// `resource.attr in set` (`attr = any(set)`).
    In { attr: Rc<str>, set: Operand },
    /// `value in resource.attr` (`attr @> array[value]`).
    Contains { attr: Rc<str>, value: Operand },
    /// `resource.attr.exists(x, x in set)` (`attr && set`).
    Overlaps { attr: Rc<str>, set: Operand },
    /// `has(resource.attr)`.
    Has { attr: Rc<str> },
    /// `resource.attr` used as a condition: its value if a bool, else an error.
    Truthy { attr: Rc<str> },
    /// `resource.attr.startsWith(prefix)`.
    StartsWith { attr: Rc<str>, prefix: Operand },
}

impl Leaf {
    /// The attribute the leaf reads.
    pub fn attr(&self) -> &str {
        match self {
            Leaf::Compare { attr, .. }
            | Leaf::In { attr, .. }
            | Leaf::Contains { attr, .. }
            | Leaf::Overlaps { attr, .. }
            | Leaf::Has { attr }
            | Leaf::Truthy { attr }
            | Leaf::StartsWith { attr, .. } => attr,
        }
    }
}

/// A condition as the database decides it; see the module documentation for its values.
#[derive(Debug, Clone)]
pub enum Residual {
    /// A boolean known once per execution (a one-time filter).
    Fixed(Fixed),
    /// True when the fixed value is an error (or not a bool), else false: never unknown.
    FixedIsUnknown(Fixed),
    /// SQL's NULL: what an error is.
    Unknown,
    Leaf(Leaf),
    And(Box<Residual>, Box<Residual>),
    Or(Box<Residual>, Box<Residual>),
    Not(Box<Residual>),
}

/// A rule's condition translated: the residual, and the principal/context-only expressions
/// it refers to.
pub struct Translation<'p> {
    pub residual: Residual,
    fixed: Vec<&'p Node>,
}

/// Three-valued logic: SQL's true, false and NULL; CEL's true, false and error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tri {
    True,
    False,
    Unknown,
}

impl Tri {
    pub fn of(value: &Result<Val, EvalError>) -> Tri {
        match value {
            Ok(Val::Bool(true)) => Tri::True,
            Ok(Val::Bool(false)) => Tri::False,
            _ => Tri::Unknown,
        }
    }

    pub fn and(self, other: Tri) -> Tri {
        match (self, other) {
            (Tri::False, _) | (_, Tri::False) => Tri::False,
            (Tri::True, Tri::True) => Tri::True,
            _ => Tri::Unknown,
        }
    }

    pub fn or(self, other: Tri) -> Tri {
        match (self, other) {
            (Tri::True, _) | (_, Tri::True) => Tri::True,
            (Tri::False, Tri::False) => Tri::False,
            _ => Tri::Unknown,
        }
    }

    pub fn negate(self) -> Tri {
        match self {
            Tri::True => Tri::False,
            Tri::False => Tri::True,
            Tri::Unknown => Tri::Unknown,
        }
    }
}

/// The residual of `program`, or `None` when some part reading the resource has a shape
/// that does not translate.
pub fn translate(program: &Program) -> Option<Translation<'_>> {
    let mut t = Translation {
        residual: Residual::Unknown,
        fixed: Vec::new(),
    };
    t.residual = t.boolean(&program.root)?;
    Some(t)
}

impl<'p> Translation<'p> {
    /// The principal/context-only expressions, in [`Fixed`] order.
    pub fn fixed(&self) -> &[&'p Node] {
        &self.fixed
    }

    /// Evaluates every fixed expression for one principal and context (the resource is not
    /// read); `Err` with the step-limit error when one ran out of steps, which makes the
    /// whole rule an error, as the evaluator would make it.
    ///
    /// They share one step budget, as the parts of one condition do in the evaluator; unlike
    /// the evaluator, which may skip a part that `&&`/`||` decides without, every part is
    /// evaluated, so a costly part it would skip can exhaust the budget here.
    pub fn fixed_values(&self, req: &Request) -> Result<Vec<Result<Val, EvalError>>, EvalError> {
        let mut out = Vec::with_capacity(self.fixed.len());
        let mut steps = 0;
        for node in &self.fixed {
            let (value, spent) = eval::eval_counted(node, req, &mut Vec::new(), steps);
            steps = spent;
            if let Err(e) = &value {
                if e.is_step_limit() {
                    return Err(e.clone());
                }
            }
            out.push(value);
        }
        Ok(out)
    }

    fn fix(&mut self, node: &'p Node) -> Fixed {
        self.fixed.push(node);
        Fixed(self.fixed.len() - 1)
    }

    fn operand(&mut self, node: &'p Node) -> Option<Operand> {
        if node.reads_resource() {
            return None;
        }
        Some(match node {
            Node::Const(v) => Operand::Const(v.clone()),
            other => Operand::Fixed(self.fix(other)),
        })
    }

    /// A node whose CEL value is a bool or an error, as a residual.
    fn boolean(&mut self, node: &'p Node) -> Option<Residual> {
        if !node.reads_resource() {
            return Some(Residual::Fixed(self.fix(node)));
        }
        let leaf = |l: Leaf| Some(Residual::Leaf(l));
        match node {
            Node::And(a, b) => Some(Residual::And(
                Box::new(self.boolean(a)?),
                Box::new(self.boolean(b)?),
            )),
            Node::Or(a, b) => Some(Residual::Or(
                Box::new(self.boolean(a)?),
                Box::new(self.boolean(b)?),
            )),
            Node::Not(a) => Some(Residual::Not(Box::new(self.boolean(a)?))),
            // `c ? a : b` with `c` fixed: (c AND a) OR (NOT c AND b), and unknown when c is:
            // SQL's `(NULL AND a) OR (NULL AND b)` would be false for false branches.
            Node::Cond(c, a, b) if !c.reads_resource() => {
                let c = self.fix(c);
                let a = self.boolean(a)?;
                let b = self.boolean(b)?;
                let fc = || Box::new(Residual::Fixed(c));
                Some(Residual::Or(
                    Box::new(Residual::Or(
                        Box::new(Residual::And(fc(), Box::new(a))),
                        Box::new(Residual::And(Box::new(Residual::Not(fc())), Box::new(b))),
                    )),
                    Box::new(Residual::And(
                        Box::new(Residual::FixedIsUnknown(c)),
                        Box::new(Residual::Unknown),
                    )),
                ))
            }
            Node::HasResourceField(f) => leaf(Leaf::Has { attr: f.clone() }),
            Node::ResourceField(f) => leaf(Leaf::Truthy { attr: f.clone() }),
            Node::Op(op, a, b) => {
                let cmp = Cmp::of(*op);
                match (a.as_ref(), b.as_ref()) {
                    (Node::ResourceField(f), other) if cmp.is_some() => leaf(Leaf::Compare {
                        attr: f.clone(),
                        op: cmp?,
                        value: self.operand(other)?,
                    }),
                    (other, Node::ResourceField(f)) if cmp.is_some() => leaf(Leaf::Compare {
                        attr: f.clone(),
                        op: cmp?.swapped(),
                        value: self.operand(other)?,
                    }),
                    (Node::ResourceField(f), set) if *op == Op::In => leaf(Leaf::In {
                        attr: f.clone(),
                        set: self.operand(set)?,
                    }),
                    (value, Node::ResourceField(f)) if *op == Op::In => leaf(Leaf::Contains {
                        attr: f.clone(),
                        value: self.operand(value)?,
                    }),
                    _ => None,
                }
            }
            Node::Membership {
                all: false,
                range,
                set,
            } => match range.as_ref() {
                Node::ResourceField(f) => leaf(Leaf::Overlaps {
                    attr: f.clone(),
                    set: self.operand(set)?,
                }),
                _ => None,
            },
            Node::Call(Builtin::StartsWith, args) => match args.as_slice() {
                [Node::ResourceField(f), prefix] => leaf(Leaf::StartsWith {
                    attr: f.clone(),
                    prefix: self.operand(prefix)?,
                }),
                _ => None,
            },
            _ => None,
        }
    }
}

/// A leaf's CEL value for one row: what the database must compute for it.
pub fn leaf_value(
    leaf: &Leaf,
    operand: impl Fn(&Operand) -> Result<Val, EvalError>,
    field: Option<Val>,
) -> Tri {
    let missing = || Err(EvalErrorKind::NoResourceField(leaf.attr().to_string()).into());
    let field = || field.clone().map_or_else(missing, Ok);
    let value = match leaf {
        Leaf::Has { .. } => Ok(Val::Bool(field().is_ok())),
        Leaf::Truthy { .. } => match field() {
            Ok(Val::Bool(b)) => Ok(Val::Bool(b)),
            Ok(other) => Err(EvalErrorKind::NotBool {
                got: other.type_name(),
            }
            .into()),
            Err(e) => Err(e),
        },
        Leaf::Compare { op, value, .. } => binary_of(op.op(), field(), operand(value)),
        Leaf::In { set, .. } => binary_of(Op::In, field(), operand(set)),
        Leaf::Contains { value, .. } => binary_of(Op::In, operand(value), field()),
        Leaf::Overlaps { set, .. } => overlaps(field(), operand(set)),
        Leaf::StartsWith { prefix, .. } => match (field(), operand(prefix)) {
            (Ok(Val::Str(s)), Ok(Val::Str(p))) => Ok(Val::Bool(s.starts_with(&*p))),
            (Err(e), _) | (_, Err(e)) => Err(e),
            (Ok(s), Ok(p)) => Err(EvalErrorKind::NoFunctionOverload {
                function: "startsWith",
                args: vec![s.type_name(), p.type_name()],
            }
            .into()),
        },
    };
    Tri::of(&value)
}

fn binary_of(
    op: Op,
    a: Result<Val, EvalError>,
    b: Result<Val, EvalError>,
) -> Result<Val, EvalError> {
    eval::binary_values(op, &a?, &b?)
}

/// `range.exists(x, x in set)` as the evaluator's macro gives it.
fn overlaps(range: Result<Val, EvalError>, set: Result<Val, EvalError>) -> Result<Val, EvalError> {
    let range = range?;
    let items: Vec<Val> = match &range {
        Val::List(l) => l.iter().cloned().collect(),
        Val::Map(m) => m.keys().map(|k| Val::Str(k.clone())).collect(),
        other => {
            return Err(EvalErrorKind::NotIterable {
                got: other.type_name(),
            }
            .into())
        }
    };
    if items.is_empty() {
        return Ok(Val::Bool(false));
    }
    let set = set?;
    let mut error = None;
    for item in &items {
        match eval::binary_values(Op::In, item, &set) {
            Ok(Val::Bool(true)) => return Ok(Val::Bool(true)),
            Ok(Val::Bool(false)) => {}
            Ok(other) => {
                error.get_or_insert(
                    EvalErrorKind::NotBool {
                        got: other.type_name(),
                    }
                    .into(),
                );
            }
            Err(e) => {
                error.get_or_insert(e);
            }
        }
    }
    error.map_or(Ok(Val::Bool(false)), Err)
}

impl Residual {
    /// The residual's value for one row, given the fixed values and a way to read the row's
    /// attributes, as the database computes it (three-valued logic, leaves by
    /// [`leaf_value`]).
    pub fn value(
        &self,
        fixed: &[Result<Val, EvalError>],
        field: &dyn Fn(&str) -> Option<Val>,
    ) -> Tri {
        let fixed_of = |f: Fixed| {
            fixed.get(f.0).cloned().unwrap_or_else(|| {
                Err(EvalErrorKind::Internal("no fixed value at this index").into())
            })
        };
        match self {
            Residual::Fixed(f) => Tri::of(&fixed_of(*f)),
            Residual::FixedIsUnknown(f) => {
                if Tri::of(&fixed_of(*f)) == Tri::Unknown {
                    Tri::True
                } else {
                    Tri::False
                }
            }
            Residual::Unknown => Tri::Unknown,
            Residual::Leaf(leaf) => leaf_value(
                leaf,
                |o| match o {
                    Operand::Const(v) => Ok(v.clone()),
                    Operand::Fixed(f) => fixed_of(*f),
                },
                field(leaf.attr()),
            ),
            Residual::And(a, b) => a.value(fixed, field).and(b.value(fixed, field)),
            Residual::Or(a, b) => a.value(fixed, field).or(b.value(fixed, field)),
            Residual::Not(a) => a.value(fixed, field).negate(),
        }
    }
}
