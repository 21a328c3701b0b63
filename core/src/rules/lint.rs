//! What a condition reads of the resource, for `oidc.lint()`: the attributes it reads as
//! values, and those it only tests with `has()`. A call site that never passes an attribute
//! a rule reads as a value makes that rule an error on every row (it fails closed, silently).

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
}
