//! `range.exists(x, x in set)` and `range.all(x, x in set)`, the label checks of most
//! policies: the general path over a converted range ([`Eval::membership`]) and the in-place
//! path over strings a [`Resource`](super::Resource) reads without converting them
//! ([`strings_membership`]). Both give the same result and count the same steps (see
//! [`MAX_STEPS`]); a large list set is hashed ([`ListSet`]) so that `800 groups × 300 000
//! labels` costs 300 800 steps at most, not their product.

use super::{
    binary, list_contains, out_of_steps, Eval, EvalError, EvalErrorKind, Frame, Items, Node, Op,
};
use super::{Val, MAX_STEPS};
use std::collections::HashSet;

/// Above this `range length × set length`, a list set is hashed; below it, comparing is as
/// cheap as hashing.
const HASH_ABOVE: usize = 64;

/// The string elements of a list set, hashed as they are first scanned: each element costs
/// one step once per evaluation, and a lookup of what was already seen costs nothing beyond
/// the caller's iteration. A string equals only a string ([`Val::equals`]), so the other
/// elements are scanned (counted) but never match a string.
struct ListSet<'l> {
    list: &'l [Val],
    scanned: usize,
    seen: HashSet<&'l str>,
}

impl<'l> ListSet<'l> {
    /// A lazily hashed view of `set` when it is a list and comparing `range_len` elements
    /// against it would cost more than [`HASH_ABOVE`] steps.
    fn new(set: &'l Val, range_len: usize) -> Option<ListSet<'l>> {
        match set {
            Val::List(l) if range_len.saturating_mul(l.len()) > HASH_ABOVE => Some(ListSet {
                list: l,
                scanned: 0,
                seen: HashSet::new(),
            }),
            _ => None,
        }
    }

    /// Whether `s` is an element, scanning on (one step per element) only when not yet seen.
    /// Stops early once `steps` exceeds the budget: the caller then reports running out, so
    /// the `false` it returns then is never used.
    fn contains(&mut self, s: &str, steps: &mut usize) -> bool {
        if self.seen.contains(s) {
            return true;
        }
        while let Some(x) = self.list.get(self.scanned) {
            self.scanned += 1;
            *steps += 1;
            if let Val::Str(x) = x {
                self.seen.insert(x);
                if &**x == s {
                    return true;
                }
            }
            if *steps > MAX_STEPS {
                return false;
            }
        }
        false
    }
}

/// `exists`/`all` of `x in set` over `count` strings read in place (see
/// [`Resource::membership`](super::Resource::membership)), decided as the general path
/// decides it, with the steps it would count: per element one for its iteration plus what
/// its `in` costs (the elements compared, or those newly hashed when the set is a large
/// list), up to the element that decides, or all of them when none does (or when each
/// fails alike, as `str_in` fails for a `set` alone). `None` as soon as an element is not a
/// string, for the caller to convert the list and take the general path, which gives the
/// same result for the elements already seen. Stops, with the budget's error, once its own
/// steps exceed [`MAX_STEPS`] (the caller's total then does too).
pub fn strings_membership<'s>(
    elements: impl IntoIterator<Item = Option<&'s str>>,
    count: usize,
    set: &Result<Val, EvalError>,
    all: bool,
) -> Option<(Result<bool, EvalError>, usize)> {
    let mut elements = elements.into_iter();
    let set = match set {
        Ok(s) => s,
        // Every element fails alike: one step each, as the general path counts; an empty
        // range holds vacuously.
        Err(e) => {
            return match elements.next() {
                None => Some((Ok(all), 0)),
                Some(None) => None,
                Some(Some(_)) => Some((Err(e.clone()), count)),
            }
        }
    };
    let mut hashed = ListSet::new(set, count);
    let mut steps = 0;
    for elem in elements {
        let elem = elem?;
        steps += 1;
        let held = match &mut hashed {
            Some(h) => Ok(h.contains(elem, &mut steps)),
            None => str_in_counted(elem, set, &mut steps),
        };
        if steps > MAX_STEPS {
            return Some((out_of_steps(), steps));
        }
        match held {
            Ok(held) if held != all => return Some((Ok(held), steps)),
            Ok(_) => {}
            // Only a set that is neither list nor map fails, for every element alike.
            Err(e) => return Some((Err(e), count)),
        }
    }
    Some((Ok(all), steps))
}

/// `elem in set` for a string `elem`: exactly what `binary(Op::In, Val::Str(elem), set)`
/// gives, without building the string value.
pub fn str_in(elem: &str, set: &Val) -> Result<bool, EvalError> {
    str_in_counted(elem, set, &mut 0)
}

/// [`str_in`], adding the elements compared to `steps`, as `binary` counts them.
fn str_in_counted(elem: &str, set: &Val, steps: &mut usize) -> Result<bool, EvalError> {
    match set {
        Val::List(l) => Ok(l.iter().any(|x| {
            *steps += 1;
            matches!(x, Val::Str(s) if &**s == elem)
        })),
        Val::Map(m) => Ok(m.contains_key(elem)),
        other => Err(EvalErrorKind::NoOperatorOverload {
            op: Op::In,
            left: "string",
            right: other.type_name(),
        }
        .into()),
    }
}

impl Eval<'_, '_> {
    /// The macro's semantics, unrolled: `exists` is true at the first element in `set`,
    /// else an error if some `in` failed, else false; `all` is false at the first element
    /// not in `set`, else an error if some `in` failed, else true. An empty range never
    /// evaluates `set`.
    pub(super) fn membership(
        &mut self,
        all: bool,
        range: &Node,
        set: &Node,
        frame: &mut Frame,
    ) -> Result<Val, EvalError> {
        if let Node::ResourceField(name) = range {
            let set = self.eval(set, frame);
            if let Some((held, spent)) = self.req.resource.membership(name, &set, all) {
                self.steps += spent;
                if self.spent() {
                    return out_of_steps();
                }
                return held.map(Val::Bool);
            }
        }
        let range = self.eval(range, frame)?;
        let items = Items::of(&range)?;
        let len = items.len();
        if len == 0 {
            return Ok(Val::Bool(all));
        }
        let set = self.eval(set, frame);
        let mut hashed = set.as_ref().ok().and_then(|s| ListSet::new(s, len));
        let mut error = None;
        for item in items {
            self.steps += 1;
            if self.spent() {
                return out_of_steps();
            }
            let held = match (&set, &mut hashed, &item) {
                (Ok(_), Some(h), Val::Str(s)) => Ok(Val::Bool(h.contains(s, &mut self.steps))),
                // Another type never equals a string: compared one by one, as `in` does.
                (Ok(Val::List(l)), Some(_), _) => {
                    Ok(Val::Bool(list_contains(l, &item, &mut self.steps)))
                }
                (Ok(s), _, _) => binary(Op::In, &item, s, &mut self.steps),
                (Err(e), _, _) => Err(e.clone()),
            };
            if self.spent() {
                return out_of_steps();
            }
            match held {
                Ok(Val::Bool(b)) if b != all => return Ok(Val::Bool(b)),
                Ok(Val::Bool(_)) => {}
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
        match error {
            Some(e) => Err(e),
            None => Ok(Val::Bool(all)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{eval_counted, Request, Resource};
    use super::*;
    use std::rc::Rc;

    /// A resource that answers `membership` in place, as the extension's do, for list
    /// attributes whose elements are all strings.
    struct InPlace(Val);

    impl Resource for InPlace {
        fn field(&self, name: &str) -> Option<Val> {
            self.0.field(name)
        }
        fn whole(&self) -> Val {
            self.0.clone()
        }
        fn membership(
            &self,
            name: &str,
            set: &Result<Val, EvalError>,
            all: bool,
        ) -> Option<(Result<bool, EvalError>, usize)> {
            let Some(Val::List(l)) = self.0.field(name) else {
                return None;
            };
            let strings = l.iter().map(|v| match v {
                Val::Str(s) => Some(&**s),
                _ => None,
            });
            strings_membership(strings, l.len(), set, all)
        }
    }

    fn strings(prefix: &str, n: usize) -> Val {
        Val::List(Rc::new(
            (0..n).map(|i| Val::str(&format!("{prefix}{i}"))).collect(),
        ))
    }

    fn list(items: Vec<Val>) -> Val {
        Val::List(Rc::new(items))
    }

    /// Runs `range.exists(x, x in set)` (or `.all`) with `range` as `resource.r`, in place
    /// and on the general path; the set is the constant `set`, or an error when `None`.
    fn both(range: &Val, set: &Option<Val>, all: bool) -> [(Result<Val, EvalError>, usize); 2] {
        let null = Val::Null;
        let mut map = super::super::Map::new();
        map.insert("r".into(), range.clone());
        let resource = Val::Map(Rc::new(map));
        let in_place = InPlace(resource.clone());
        let set_node = || match set {
            Some(s) => Node::Const(s.clone()),
            // `null.x`: an error, evaluated each time the set is.
            None => Node::Select(Box::new(Node::Const(Val::Null)), "x".into()),
        };
        let node = |range: Node| Node::Membership {
            all,
            range: Box::new(range),
            set: Box::new(set_node()),
        };
        let run = |resource: &dyn Resource, range: Node| {
            let req = Request {
                claims: &null,
                scopes: &null,
                roles: &null,
                context: &null,
                resource,
            };
            eval_counted(&node(range), &req, &mut Vec::new(), 0)
        };
        [
            run(&in_place, Node::ResourceField("r".into())),
            // A constant range: never answered in place.
            run(&resource, Node::Const(range.clone())),
        ]
    }

    #[test]
    fn in_place_and_general_paths_agree_on_result_and_steps() {
        let a = || Val::str("a");
        let ranges = [
            list(vec![]),
            list(vec![a()]),
            list(vec![Val::str("x"), a()]),
            list(vec![Val::str("x"), Val::str("y")]),
            strings("g", 100),
            list(vec![Val::str("l999"); 3]),
            strings("l", 2000),
            // not all strings: the in-place path gives way to the general one
            list(vec![a(), Val::Int(1)]),
            list(vec![Val::Int(1), a()]),
        ];
        let sets = [
            None,
            Some(list(vec![])),
            Some(list(vec![a(), Val::str("b")])),
            Some(list(vec![Val::Int(1), list(vec![a()]), a()])),
            Some(strings("l", 1000)),
            Some(list(vec![Val::str("l999"), Val::Null])),
            Some(strings("l", 60_000)),
            Some(Val::from_json(&serde_json::json!({"a": 1, "l5": 2}))),
            Some(Val::Int(3)),
            Some(Val::str("a")),
        ];
        let mut compared = 0;
        for range in &ranges {
            for set in &sets {
                for all in [false, true] {
                    let [(fast, fast_steps), (general, general_steps)] = both(range, set, all);
                    let shown = |v: &Val| v.to_string().chars().take(40).collect::<String>();
                    let what = format!(
                        "{} in {:?}, all: {all}",
                        shown(range),
                        set.as_ref().map(shown)
                    );
                    match (&fast, &general) {
                        (Ok(x), Ok(y)) => assert!(x.equals(y), "{what}: {x} vs {y}"),
                        (Err(x), Err(y)) => assert_eq!(x, y, "{what}"),
                        _ => panic!("{what}: {fast:?} vs {general:?}"),
                    }
                    let limit = fast.as_ref().is_err_and(EvalError::is_step_limit);
                    if !limit {
                        assert_eq!(fast_steps, general_steps, "steps of {what}");
                    }
                    compared += 1;
                }
            }
        }
        assert_eq!(compared, ranges.len() * sets.len() * 2);
    }

    /// The costs the budget's documentation gives, on both paths.
    #[test]
    fn the_steps_follow_the_cost_model() {
        let l1000 = Some(strings("l", 1000));
        let cases: [(Val, &Option<Val>, usize); 5] = [
            // 2 × 2 ≤ 64: compared in place, one step per iteration and per element compared
            (
                list(vec![Val::str("x"), Val::str("b")]),
                &Some(list(vec![Val::str("a"), Val::str("b")])),
                1 + 2 + 1 + 2,
            ),
            // 100 × 1000 without a match: the set hashed once, then one step per group
            (strings("g", 100), &l1000, 1000 + 100),
            // an early match decides after scanning up to it
            (list(vec![Val::str("l3")]), &Some(strings("l", 300)), 1 + 4),
            // what the first scan hashed costs only its iteration afterwards
            (
                list(vec![Val::str("nope"), Val::str("l2")]),
                &l1000,
                1 + 1000 + 1,
            ),
            // a map set: one step per iteration
            (
                strings("g", 5),
                &Some(Val::from_json(&serde_json::json!({"x": 1}))),
                5,
            ),
        ];
        for (range, set, want) in cases {
            for (got, path) in both(&range, set, false).iter().zip(["in place", "general"]) {
                assert!(got.0.is_ok(), "{range}: {:?}", got.0);
                let size = set.as_ref().map(Val::to_json).map(|j| j.to_string().len());
                assert_eq!(got.1, want, "{path}: {range} in a set of {size:?} bytes");
            }
        }
    }
}
