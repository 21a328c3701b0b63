//! The syntax tree of a compiled condition: what the compiler produces (names resolved,
//! constants folded, macros specialised) and the evaluator, residuals and the lint walk.

use super::time;
use super::value::Val;
use std::rc::Rc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    In,
    Index,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    Size,
    StartsWith,
    EndsWith,
    Contains,
    Int,
    Uint,
    Double,
    String,
    Bool,
    Timestamp,
    Duration,
    Dyn,
    /// A timestamp's calendar field (optionally in a time zone), or a duration's total in a unit.
    Accessor(&'static str),
}

impl Builtin {
    /// Resolves a call by name, receiver style and argument count (receiver included).
    pub fn lookup(name: &str, receiver: bool, arity: usize) -> Option<Builtin> {
        use Builtin::*;
        Some(match (name, receiver, arity) {
            ("size", _, 1) => Size,
            ("startsWith", true, 2) => StartsWith,
            ("endsWith", true, 2) => EndsWith,
            ("contains", true, 2) => Contains,
            ("int", false, 1) => Int,
            ("uint", false, 1) => Uint,
            ("double", false, 1) => Double,
            ("string", false, 1) => String,
            ("bool", false, 1) => Bool,
            ("timestamp", false, 1) => Timestamp,
            ("duration", false, 1) => Duration,
            ("dyn", false, 1) => Dyn,
            (accessor, true, 1 | 2) => {
                Accessor(time::TIMESTAMP_ACCESSORS.iter().find(|a| **a == accessor)?)
            }
            _ => return None,
        })
    }

    pub fn known(name: &str) -> bool {
        [
            "size",
            "startsWith",
            "endsWith",
            "contains",
            "int",
            "uint",
            "double",
            "string",
            "bool",
            "timestamp",
            "duration",
            "dyn",
        ]
        .contains(&name)
            || time::TIMESTAMP_ACCESSORS.contains(&name)
    }
}

#[derive(Debug)]
pub enum Node {
    Const(Val),
    Claims,
    Scopes,
    Roles,
    Context,
    Resource,
    ResourceField(Rc<str>),
    HasResourceField(Rc<str>),
    Local(usize),
    /// A macro's accumulator (`@result`): read once per iteration, by the step that replaces
    /// it, so `@result + [x]` may append in place (see `Node::Op`).
    Accu(usize),
    Select(Box<Node>, Rc<str>),
    Has(Box<Node>, Rc<str>),
    List(Vec<Node>),
    Map(Vec<(Node, Node)>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Neg(Box<Node>),
    NotStrictlyFalse(Box<Node>),
    Cond(Box<Node>, Box<Node>, Box<Node>),
    Op(Op, Box<Node>, Box<Node>),
    Call(Builtin, Vec<Node>),
    /// `range.exists(x, x in set)` (`all: false`) or `range.all(x, x in set)` (`all: true`),
    /// `set` evaluated once; results and errors as the macro expansion gives them.
    Membership {
        all: bool,
        range: Box<Node>,
        set: Box<Node>,
    },
    Fold {
        range: Box<Node>,
        iter: usize,
        accu: usize,
        init: Box<Node>,
        cond: Box<Node>,
        step: Box<Node>,
        result: Box<Node>,
    },
}

impl Node {
    /// Whether evaluating this node can read the resource.
    pub(crate) fn reads_resource(&self) -> bool {
        match self {
            Node::Resource | Node::ResourceField(_) | Node::HasResourceField(_) => true,
            other => other.children().into_iter().any(Node::reads_resource),
        }
    }

    /// The node's operands, in no particular order (empty for a leaf).
    pub(crate) fn children(&self) -> Vec<&Node> {
        match self {
            Node::Const(_)
            | Node::Claims
            | Node::Scopes
            | Node::Roles
            | Node::Context
            | Node::Resource
            | Node::ResourceField(_)
            | Node::HasResourceField(_)
            | Node::Local(_)
            | Node::Accu(_) => Vec::new(),
            Node::Select(a, _)
            | Node::Has(a, _)
            | Node::Not(a)
            | Node::Neg(a)
            | Node::NotStrictlyFalse(a) => vec![a],
            Node::List(items) | Node::Call(_, items) => items.iter().collect(),
            Node::Map(entries) => entries.iter().flat_map(|(k, v)| [k, v]).collect(),
            Node::And(a, b) | Node::Or(a, b) | Node::Op(_, a, b) => vec![a, b],
            Node::Cond(a, b, c) => vec![a, b, c],
            Node::Membership { range, set, .. } => vec![range, set],
            Node::Fold {
                range,
                init,
                cond,
                step,
                result,
                ..
            } => vec![range, init, cond, step, result],
        }
    }

    /// True when every operand is a constant and the node itself reads no variable.
    pub(crate) fn is_foldable(&self) -> bool {
        let c = |n: &Node| matches!(n, Node::Const(_));
        match self {
            Node::Select(a, _) | Node::Has(a, _) | Node::Not(a) | Node::Neg(a) => c(a),
            Node::NotStrictlyFalse(a) => c(a),
            Node::List(items) => items.iter().all(c),
            Node::Map(entries) => entries.iter().all(|(k, v)| c(k) && c(v)),
            Node::And(a, b) | Node::Or(a, b) | Node::Op(_, a, b) => c(a) && c(b),
            Node::Cond(a, b, d) => c(a) && c(b) && c(d),
            Node::Call(_, args) => args.iter().all(c),
            _ => false,
        }
    }
}
