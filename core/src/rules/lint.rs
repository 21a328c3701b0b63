//! What a condition reads, for `oidc.lint()`: the resource attributes it reads as values,
//! and those it only tests with `has()` (a call site that never passes an attribute a rule
//! reads as a value makes that rule an error on every row: it fails closed, silently); and
//! whether it reads the clock (a rule test without `at` then decides by when it runs).

use super::compile::Program;
use super::eval::Node;
use std::collections::BTreeSet;

/// The resource attributes a condition reads.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    /// Read as values (`resource.owner`).
    pub read: BTreeSet<String>,
    /// Tested for presence (`has(resource.owner)`).
    pub tested: BTreeSet<String>,
    /// Whether the whole resource is read (`resource` itself).
    pub whole: bool,
}

/// The resource attributes `program` reads.
pub fn resource_attributes(program: &Program) -> Attributes {
    let mut a = Attributes::default();
    visit(&program.root, &mut a);
    a
}

/// Whether `program` can read the clock: `context.time`, or the whole `context` (which
/// holds it). A rule test without `at` is decided at the time it runs, so its outcome can
/// change by itself when a matching rule reads the clock.
pub fn reads_clock(program: &Program) -> bool {
    use super::ast::{Builtin, Op};
    use super::value::Val;
    fn visit(node: &Node) -> bool {
        let is_context = |n: &Node| matches!(n, Node::Context);
        match node {
            // (`has(context.time)` is always true: it reads no time)
            Node::Has(inner, _) if is_context(inner) => false,
            Node::Select(inner, field) if is_context(inner) => &**field == "time",
            // (a computed key may be "time")
            Node::Op(Op::Index, inner, key) if is_context(inner) => {
                !matches!(&**key, Node::Const(Val::Str(k)) if &**k != "time")
            }
            // Its keys and its size are fixed: no time is read.
            Node::Op(Op::In, key, inner) if is_context(inner) => visit(key),
            Node::Call(Builtin::Size, args) if args.len() == 1 && is_context(&args[0]) => false,
            Node::Context => true,
            other => other.children().into_iter().any(visit),
        }
    }
    visit(&program.root)
}

fn visit(node: &Node, a: &mut Attributes) {
    match node {
        Node::ResourceField(f) => {
            a.read.insert(f.to_string());
        }
        Node::HasResourceField(f) => {
            a.tested.insert(f.to_string());
        }
        Node::Resource => a.whole = true,
        other => other.children().into_iter().for_each(|n| visit(n, a)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::compile::compile;

    #[test]
    fn reads_and_tests_are_told_apart() {
        let p = compile("has(resource.archived) && resource.archived || resource.owner == claims.sub || resource.labels.exists(l, l == 'x')").unwrap();
        let a = resource_attributes(&p);
        assert_eq!(
            a.read.iter().map(String::as_str).collect::<Vec<_>>(),
            ["archived", "labels", "owner"]
        );
        assert_eq!(
            a.tested.iter().map(String::as_str).collect::<Vec<_>>(),
            ["archived"]
        );
        assert!(!a.whole);
        assert!(resource_attributes(&compile("size(resource) > 0").unwrap()).whole);
    }

    #[test]
    fn the_clock_is_read_through_context_time_or_the_whole_context() {
        for (condition, reads) in [
            ("context.time.getHours() >= 22", true),
            (
                "context.method == 'POST' && context.time > timestamp('2024-01-01T00:00:00Z')",
                true,
            ),
            ("resource.until < context.time", true),
            ("context['time'] > timestamp('2024-01-01T00:00:00Z')", true),
            ("context[claims.key] == 'x'", true),
            (
                "dyn(context).time > timestamp('2024-01-01T00:00:00Z')",
                true,
            ),
            ("[context].exists(c, c.time.getHours() > 1)", true),
            (
                "context['method'] == 'POST' && 'path' in context && size(context) > 1",
                false,
            ),
            (
                "context.method == 'GET' || context.path.startsWith('/x')",
                false,
            ),
            ("has(context.time) && has(context.method)", false),
            ("resource.until < timestamp('2024-01-01T00:00:00Z')", false),
            ("claims.sub == resource.owner", false),
        ] {
            assert_eq!(
                reads_clock(&compile(condition).unwrap()),
                reads,
                "{condition}"
            );
        }
    }
}
