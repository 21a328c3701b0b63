//! From CEL source to the evaluator's tree: parse with the `cel` crate, then resolve every
//! name once — variables to their slot, loop variables to frame slots, functions to a closed
//! set of builtins — refusing unknown ones with their position, and fold constants.

use super::eval::{self, Builtin, Node, Op};
use super::value::Val;
use cel::common::ast::SourceInfo;
use cel::common::ast::{
    ComprehensionExpr, EntryExpr, Expr, IdedExpr, ListExpr, LiteralValue, MapExpr, SelectExpr,
};
use std::collections::BTreeSet;
use std::fmt;
use std::rc::Rc;

/// A condition that cannot be compiled, with its 1-based position in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    pub message: String,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at line {}, column {}",
            self.message, self.line, self.column
        )
    }
}

impl std::error::Error for CompileError {}

/// The variables a condition may use.
pub const VARIABLES: [&str; 5] = ["claims", "scopes", "roles", "resource", "context"];

/// Longest condition accepted, in bytes.
pub const MAX_SOURCE: usize = 4096;

/// Deepest nesting of parentheses, calls, list and map literals and chained `?:` the parser
/// accepts. CEL asks for at least 12 nested calls or literals and 24 chained conditionals;
/// the bound keeps the parser's recursion, several KiB of stack per level, well inside a
/// backend's stack (the `cel` crate's default of 96 levels is not, in debug builds).
pub const MAX_NESTING: u16 = 32;

/// Deepest expression tree compiled: `a + b + …` and `a.b.c…` nest as deep as they are
/// long, and compiling and evaluating recurse along them.
pub const MAX_DEPTH: usize = 100;

/// A compiled condition.
#[derive(Debug)]
pub struct Program {
    pub(crate) root: Node,
    /// Frame slots the loops need.
    pub(crate) slots: usize,
    /// What the condition reads: `claims.sub`, `scopes`, `resource.labels`, `context.time`, …
    pub reads: BTreeSet<String>,
    /// Whether the condition reads the resource; if not, its result is the same for every
    /// row of a statement (same principal, same context).
    pub per_resource: bool,
    /// Set when `root` is `fixed && varying` (or `||`) with `fixed` not reading the
    /// resource: a decision can then evaluate `fixed` once per statement.
    pub(crate) split: Option<Junction>,
}

/// The top-level connective of a split condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Junction {
    And,
    Or,
}

impl Program {
    /// The condition's value; a rule's condition must give a bool (see `Rule::evaluate`),
    /// other values are for tests comparing against CEL's reference interpreter.
    pub fn evaluate(&self, req: &eval::Request) -> Result<Val, eval::EvalError> {
        self.with_frame(|frame| eval::eval(&self.root, req, frame))
    }

    /// The two sides of a split condition (see [`Program::split`]).
    pub(crate) fn parts(&self) -> Option<(Junction, &Node, &Node)> {
        match (self.split, &self.root) {
            (Some(j), Node::And(a, b) | Node::Or(a, b)) => Some((j, a, b)),
            _ => None,
        }
    }

    /// Evaluates `node`, a part of this program, with `steps` already spent by another part;
    /// returns the steps spent in all.
    pub(crate) fn evaluate_node(
        &self,
        node: &Node,
        req: &eval::Request,
        steps: usize,
    ) -> (Result<Val, eval::EvalError>, usize) {
        self.with_frame(|frame| eval::eval_counted(node, req, frame, steps))
    }

    fn with_frame<R>(&self, f: impl FnOnce(&mut eval::Frame) -> R) -> R {
        // One frame per thread, reused: per-row decisions then allocate no frame. Evaluation
        // never re-enters itself; if it did, `take` would hand it a fresh empty frame.
        thread_local! {
            static FRAME: std::cell::RefCell<eval::Frame> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let mut frame = FRAME.with_borrow_mut(std::mem::take);
        frame.clear();
        frame.reserve(self.slots);
        let out = f(&mut frame);
        frame.clear();
        FRAME.with_borrow_mut(|f| *f = frame);
        out
    }
}

/// Regroups a top-level `&&` (or `||`) chain as `fixed && varying`, where `fixed` holds
/// the operands that do not read the resource. CEL's `&&`/`||` are commutative, errors
/// included (`false` absorbs an error on either side), so the value is unchanged; only which
/// of two errors is reported may differ.
fn split(root: Node) -> (Node, Option<Junction>) {
    let junction = match &root {
        Node::And(..) => Junction::And,
        Node::Or(..) => Junction::Or,
        _ => return (root, None),
    };
    let mut operands = Vec::new();
    flatten(root, junction, &mut operands);
    let (fixed, varying): (Vec<Node>, Vec<Node>) =
        operands.into_iter().partition(|n| !n.reads_resource());
    // Joined pairwise, so that the tree stays as shallow as the parser made it (it balances
    // long chains): evaluation recurses along it.
    let join = |mut nodes: Vec<Node>| {
        while nodes.len() > 1 {
            let mut pairs = Vec::with_capacity(nodes.len().div_ceil(2));
            let mut it = nodes.into_iter();
            while let Some(a) = it.next() {
                pairs.push(match it.next() {
                    Some(b) => match junction {
                        Junction::And => Node::And(Box::new(a), Box::new(b)),
                        Junction::Or => Node::Or(Box::new(a), Box::new(b)),
                    },
                    None => a,
                });
            }
            nodes = pairs;
        }
        nodes.pop()
    };
    match (join(fixed), join(varying)) {
        (Some(a), Some(b)) => {
            let root = match junction {
                Junction::And => Node::And(Box::new(a), Box::new(b)),
                Junction::Or => Node::Or(Box::new(a), Box::new(b)),
            };
            (root, Some(junction))
        }
        (Some(only), None) | (None, Some(only)) => (only, None),
        (None, None) => (Node::Const(Val::Bool(junction == Junction::And)), None),
    }
}

fn flatten(node: Node, junction: Junction, out: &mut Vec<Node>) {
    match (junction, node) {
        (Junction::And, Node::And(a, b)) | (Junction::Or, Node::Or(a, b)) => {
            flatten(*a, junction, out);
            flatten(*b, junction, out);
        }
        (_, other) => out.push(other),
    }
}

pub fn compile(source: &str) -> Result<Program, CompileError> {
    if source.len() > MAX_SOURCE {
        return Err(CompileError {
            message: format!("condition longer than {MAX_SOURCE} bytes"),
            line: 1,
            column: 1,
        });
    }
    let (ast, info) = cel::parser::Parser::new()
        .max_recursion_depth(MAX_NESTING)
        .parse_with_source_info(source)
        .map_err(|errs| {
            let first = errs.errors.first();
            let message = match first {
                // The parser reports its own limit wrapped in a debug dump; say it plainly.
                Some(e) if e.msg.contains("Recursion limit") => {
                    format!("expression nested more than {MAX_NESTING} levels deep")
                }
                Some(e) => e.msg.clone(),
                None => "syntax error".to_string(),
            };
            CompileError {
                message,
                line: first.map_or(1, |e| e.pos.0.max(1) as usize),
                column: first.map_or(1, |e| e.pos.1.max(1) as usize),
            }
        })?;
    let mut c = Compiler {
        info: &info,
        source,
        scopes: Vec::new(),
        depth: 0,
        slots: 0,
        reads: BTreeSet::new(),
    };
    let (root, split) = split(c.expr(&ast)?);
    let per_resource = c
        .reads
        .iter()
        .any(|r| r == "resource" || r.starts_with("resource."));
    Ok(Program {
        root,
        slots: c.slots,
        reads: c.reads,
        per_resource,
        split,
    })
}

struct Compiler<'a> {
    info: &'a SourceInfo,
    source: &'a str,
    /// Loop variables in scope, innermost last, with their frame slot and whether it is a
    /// macro's accumulator.
    scopes: Vec<(String, usize, bool)>,
    /// How deep `expr` is in the tree.
    depth: usize,
    slots: usize,
    reads: BTreeSet<String>,
}

impl Compiler<'_> {
    fn error(&self, at: &IdedExpr, message: String) -> CompileError {
        let offset = self
            .info
            .offset_for(at.id)
            .map_or(0, |(start, _)| start as usize);
        // The parser's offsets count bytes; columns count characters.
        let (mut line, mut column) = (1, 1);
        for (i, ch) in self.source.char_indices() {
            if i >= offset {
                break;
            }
            if ch == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        CompileError {
            message,
            line,
            column,
        }
    }

    fn expr(&mut self, e: &IdedExpr) -> Result<Node, CompileError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error(
                e,
                format!("expression nested more than {MAX_DEPTH} levels deep"),
            ));
        }
        self.depth += 1;
        let node = self.expr_inner(e);
        self.depth -= 1;
        node
    }

    fn expr_inner(&mut self, e: &IdedExpr) -> Result<Node, CompileError> {
        let node = match &e.expr {
            Expr::Literal(lit) => Node::Const(literal(lit).map_err(|m| self.error(e, m))?),
            Expr::Ident(name) => self.ident(e, name)?,
            Expr::Select(sel) => self.select(sel)?,
            Expr::List(list) => self.list(e, list)?,
            Expr::Map(map) => self.map(e, map)?,
            Expr::Struct(_) => {
                return Err(self.error(e, "message literals are not supported".into()))
            }
            Expr::Comprehension(c) => self.comprehension(e, c)?,
            Expr::Call(call) => {
                self.call(e, &call.func_name, call.target.as_deref(), &call.args)?
            }
            Expr::Unspecified => return Err(self.error(e, "empty expression".into())),
        };
        fold(node).map_err(|m| self.error(e, m))
    }

    // The cases of `expr_inner` with locals of their own, apart so that only the one in use
    // is on the stack for each level of nesting (in debug builds, a function's frame holds
    // every branch's temporaries).

    fn select(&mut self, sel: &SelectExpr) -> Result<Node, CompileError> {
        let field: Rc<str> = Rc::from(sel.field.as_str());
        if let Some(path) = self.read_path(&sel.operand) {
            self.reads.insert(format!("{path}.{}", sel.field));
        }
        if matches!(&sel.operand.expr, Expr::Ident(n) if n == "resource" && !self.is_local(n)) {
            return Ok(if sel.test {
                Node::HasResourceField(field)
            } else {
                Node::ResourceField(field)
            });
        }
        let operand = Box::new(self.expr_quiet(&sel.operand)?);
        Ok(if sel.test {
            Node::Has(operand, field)
        } else {
            Node::Select(operand, field)
        })
    }

    fn list(&mut self, e: &IdedExpr, list: &ListExpr) -> Result<Node, CompileError> {
        if !list.optional_indices.is_empty() {
            return Err(self.error(e, "optional list elements are not supported".into()));
        }
        let items = list.elements.iter().map(|x| self.expr(x));
        Ok(Node::List(items.collect::<Result<_, _>>()?))
    }

    fn map(&mut self, e: &IdedExpr, map: &MapExpr) -> Result<Node, CompileError> {
        let mut entries = Vec::with_capacity(map.entries.len());
        for entry in &map.entries {
            let EntryExpr::MapEntry(m) = &entry.expr else {
                return Err(self.error(e, "message literals are not supported".into()));
            };
            if m.optional {
                return Err(self.error(e, "optional map entries are not supported".into()));
            }
            entries.push((self.expr(&m.key)?, self.expr(&m.value)?));
        }
        Ok(Node::Map(entries))
    }

    fn comprehension(&mut self, e: &IdedExpr, c: &ComprehensionExpr) -> Result<Node, CompileError> {
        if c.iter_var2.is_some() {
            return Err(self.error(e, "two-variable comprehensions are not supported".into()));
        }
        if let Some((all, set)) = membership(c) {
            // `list.exists(x, x in set)` / `list.all(x, x in set)`: the label checks of most
            // policies, decided without the loop machinery (same results, errors included).
            let range = Box::new(self.expr(&c.iter_range)?);
            let set = Box::new(self.expr(set)?);
            return Ok(Node::Membership { all, range, set });
        }
        let range = self.expr(&c.iter_range)?;
        let init = self.expr(&c.accu_init)?;
        let accu = self.bind(&c.accu_var, true);
        let iter = self.bind(&c.iter_var, false);
        let cond = self.expr(&c.loop_cond)?;
        let step = self.expr(&c.loop_step)?;
        self.scopes.pop();
        let result = self.expr(&c.result)?;
        self.scopes.pop();
        Ok(Node::Fold {
            range: Box::new(range),
            iter,
            accu,
            init: Box::new(init),
            cond: Box::new(cond),
            step: Box::new(step),
            result: Box::new(result),
        })
    }

    /// Like `expr`, for the operand of a select whose path was already recorded.
    fn expr_quiet(&mut self, e: &IdedExpr) -> Result<Node, CompileError> {
        let before = self.reads.clone();
        let node = self.expr(e)?;
        if self.read_path(e).is_some() {
            self.reads = before;
        }
        Ok(node)
    }

    /// `claims.a.b` as a dotted path when `e` is a chain of selects on a variable. A loop,
    /// not recursion: it runs before the depth check, on chains as long as the source.
    fn read_path(&self, mut e: &IdedExpr) -> Option<String> {
        let mut fields = Vec::new();
        loop {
            match &e.expr {
                Expr::Ident(n) if VARIABLES.contains(&n.as_str()) && !self.is_local(n) => {
                    fields.push(n.as_str());
                    fields.reverse();
                    return Some(fields.join("."));
                }
                Expr::Select(s) if !s.test => {
                    fields.push(s.field.as_str());
                    e = &s.operand;
                }
                _ => return None,
            }
        }
    }

    fn is_local(&self, name: &str) -> bool {
        self.scopes.iter().any(|(n, _, _)| n == name)
    }

    fn bind(&mut self, name: &str, accumulator: bool) -> usize {
        let slot = self.scopes.len();
        self.scopes.push((name.to_string(), slot, accumulator));
        self.slots = self.slots.max(slot + 1);
        slot
    }

    fn ident(&mut self, e: &IdedExpr, name: &str) -> Result<Node, CompileError> {
        if let Some((_, slot, accumulator)) = self.scopes.iter().rev().find(|(n, _, _)| n == name) {
            return Ok(if *accumulator {
                Node::Accu(*slot)
            } else {
                Node::Local(*slot)
            });
        }
        if VARIABLES.contains(&name) {
            self.reads.insert(name.to_string());
        }
        match name {
            "claims" => Ok(Node::Claims),
            "scopes" => Ok(Node::Scopes),
            "roles" => Ok(Node::Roles),
            "context" => Ok(Node::Context),
            "resource" => Ok(Node::Resource),
            _ => Err(self.error(
                e,
                format!(
                    "unknown variable `{name}` (variables: {})",
                    VARIABLES.join(", ")
                ),
            )),
        }
    }

    fn call(
        &mut self,
        e: &IdedExpr,
        name: &str,
        target: Option<&IdedExpr>,
        args: &[IdedExpr],
    ) -> Result<Node, CompileError> {
        let mut nodes = Vec::with_capacity(args.len() + 1);
        if let Some(t) = target {
            nodes.push(self.expr(t)?);
        }
        for a in args {
            nodes.push(self.expr(a)?);
        }
        self.resolve_call(e, name, target.is_some(), nodes)
    }

    /// The node for a call whose operands are compiled. Apart from `call` so that its large
    /// frame is not on the stack once per level of nesting.
    fn resolve_call(
        &self,
        e: &IdedExpr,
        name: &str,
        receiver: bool,
        mut nodes: Vec<Node>,
    ) -> Result<Node, CompileError> {
        let arity = nodes.len();
        let two = |nodes: Vec<Node>| -> (Box<Node>, Box<Node>) {
            let mut it = nodes.into_iter();
            let a = it.next().unwrap_or(Node::Const(Val::Null));
            let b = it.next().unwrap_or(Node::Const(Val::Null));
            (Box::new(a), Box::new(b))
        };
        let op = |o: Op, nodes: Vec<Node>| {
            let (a, b) = two(nodes);
            Node::Op(o, a, b)
        };
        let fixed = |want: usize| -> Result<(), CompileError> {
            if arity == want {
                Ok(())
            } else {
                Err(self.error(
                    e,
                    format!(
                        "`{}` takes {} argument(s), got {arity}",
                        display_name(name),
                        want - usize::from(receiver)
                    ),
                ))
            }
        };
        Ok(match (name, receiver) {
            ("_&&_", false) => {
                fixed(2)?;
                let (a, b) = two(nodes);
                Node::And(a, b)
            }
            ("_||_", false) => {
                fixed(2)?;
                let (a, b) = two(nodes);
                Node::Or(a, b)
            }
            ("!_", false) => {
                fixed(1)?;
                Node::Not(Box::new(nodes.remove(0)))
            }
            ("-_", false) => {
                fixed(1)?;
                Node::Neg(Box::new(nodes.remove(0)))
            }
            ("@not_strictly_false", false) => {
                fixed(1)?;
                Node::NotStrictlyFalse(Box::new(nodes.remove(0)))
            }
            ("_?_:_", false) => {
                fixed(3)?;
                let mut it = nodes.into_iter();
                match (it.next(), it.next(), it.next()) {
                    (Some(c), Some(a), Some(b)) => {
                        Node::Cond(Box::new(c), Box::new(a), Box::new(b))
                    }
                    _ => return Err(self.error(e, "malformed conditional".into())),
                }
            }
            ("_==_", false) => {
                fixed(2)?;
                op(Op::Eq, nodes)
            }
            ("_!=_", false) => {
                fixed(2)?;
                op(Op::Ne, nodes)
            }
            ("_<_", false) => {
                fixed(2)?;
                op(Op::Lt, nodes)
            }
            ("_<=_", false) => {
                fixed(2)?;
                op(Op::Le, nodes)
            }
            ("_>_", false) => {
                fixed(2)?;
                op(Op::Gt, nodes)
            }
            ("_>=_", false) => {
                fixed(2)?;
                op(Op::Ge, nodes)
            }
            ("_+_", false) => {
                fixed(2)?;
                op(Op::Add, nodes)
            }
            ("_-_", false) => {
                fixed(2)?;
                op(Op::Sub, nodes)
            }
            ("_*_", false) => {
                fixed(2)?;
                op(Op::Mul, nodes)
            }
            ("_/_", false) => {
                fixed(2)?;
                op(Op::Div, nodes)
            }
            ("_%_", false) => {
                fixed(2)?;
                op(Op::Mod, nodes)
            }
            ("@in", false) => {
                fixed(2)?;
                op(Op::In, nodes)
            }
            ("_[_]", false) => {
                fixed(2)?;
                op(Op::Index, nodes)
            }
            _ => {
                let builtin = Builtin::lookup(name, receiver, arity).ok_or_else(|| {
                    if Builtin::known(name) {
                        self.error(
                            e,
                            format!(
                                "no overload of `{}` with {} argument(s){}",
                                display_name(name),
                                arity - usize::from(receiver),
                                if receiver { " on a receiver" } else { "" }
                            ),
                        )
                    } else {
                        self.error(e, format!("unknown function `{}`", display_name(name)))
                    }
                })?;
                Node::Call(builtin, nodes)
            }
        })
    }
}

/// Recognises the macro expansions of `r.exists(x, x in s)` (`false`, `!@result` guard,
/// `@result || x in s`) and `r.all(x, x in s)` (`true`, `@result` guard, `@result && x in s`)
/// where `s` uses neither loop variable; returns whether it is `all`, and `s`.
fn membership(c: &ComprehensionExpr) -> Option<(bool, &IdedExpr)> {
    let is_accu = |e: &IdedExpr| matches!(&e.expr, Expr::Ident(n) if *n == c.accu_var);
    fn call(e: &IdedExpr) -> Option<(&str, &[IdedExpr])> {
        match &e.expr {
            Expr::Call(call) if call.target.is_none() => {
                Some((call.func_name.as_str(), &call.args[..]))
            }
            _ => None,
        }
    }
    let all = match &c.accu_init.expr {
        Expr::Literal(LiteralValue::Boolean(b)) => *b.inner(),
        _ => return None,
    };
    let (guard, guard_args) = call(&c.loop_cond)?;
    let guard_ok = guard == "@not_strictly_false"
        && match (all, guard_args) {
            (true, [g]) => is_accu(g),
            (false, [g]) => matches!(call(g), Some(("!_", [a])) if is_accu(a)),
            _ => false,
        };
    let (step, step_args) = call(&c.loop_step)?;
    let [accu, pred] = step_args else { return None };
    let (op, pred_args) = call(pred)?;
    let [elem, set] = pred_args else { return None };
    let shape = guard_ok
        && step == if all { "_&&_" } else { "_||_" }
        && is_accu(accu)
        && is_accu(&c.result)
        && op == "@in"
        && matches!(&elem.expr, Expr::Ident(n) if *n == c.iter_var);
    (shape && !mentions(set, &c.iter_var) && !mentions(set, &c.accu_var)).then_some((all, set))
}

/// Whether `e` refers to `name` anywhere (conservatively: also where shadowed).
fn mentions(e: &IdedExpr, name: &str) -> bool {
    match &e.expr {
        Expr::Ident(n) => n == name,
        Expr::Select(s) => mentions(&s.operand, name),
        Expr::Call(c) => {
            c.target.as_deref().is_some_and(|t| mentions(t, name))
                || c.args.iter().any(|a| mentions(a, name))
        }
        Expr::List(l) => l.elements.iter().any(|x| mentions(x, name)),
        Expr::Map(m) => m.entries.iter().any(|entry| match &entry.expr {
            EntryExpr::MapEntry(me) => mentions(&me.key, name) || mentions(&me.value, name),
            EntryExpr::StructField(f) => mentions(&f.value, name),
        }),
        Expr::Comprehension(c) => {
            mentions(&c.iter_range, name)
                || mentions(&c.accu_init, name)
                || mentions(&c.loop_cond, name)
                || mentions(&c.loop_step, name)
                || mentions(&c.result, name)
        }
        Expr::Struct(s) => s.entries.iter().any(|entry| match &entry.expr {
            EntryExpr::MapEntry(me) => mentions(&me.key, name) || mentions(&me.value, name),
            EntryExpr::StructField(f) => mentions(&f.value, name),
        }),
        Expr::Literal(_) | Expr::Unspecified => false,
    }
}

fn display_name(name: &str) -> String {
    name.trim_matches('_').replace("_", " ")
}

fn literal(lit: &LiteralValue) -> Result<Val, String> {
    Ok(match lit {
        LiteralValue::Boolean(b) => Val::Bool(*b.inner()),
        LiteralValue::Int(i) => Val::Int(*i.inner()),
        LiteralValue::UInt(u) => Val::Uint(*u.inner()),
        LiteralValue::Double(d) => Val::Double(*d.inner()),
        LiteralValue::String(s) => Val::str(s.inner()),
        LiteralValue::Null => Val::Null,
        LiteralValue::Bytes(_) => return Err("bytes literals are not supported".into()),
    })
}

/// Evaluates a node whose operands are all constants, once, at compile time. An error there
/// (`timestamp("yesterday")`, `1 / 0`) is a compile error: it would fail on every row.
fn fold(node: Node) -> Result<Node, String> {
    if !node.is_foldable() {
        return Ok(node);
    }
    eval::eval_constant(&node).map(Node::Const)
}
