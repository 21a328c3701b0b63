//! Fine-grained rules as data: permit/forbid rules with CEL conditions, and the decision.
//!
//! Semantics (Cedar's, but stricter on errors): default deny; a request is allowed iff at
//! least one enabled matching permit holds and no enabled matching forbid holds. A condition
//! that fails to evaluate fails closed: an erroring permit does not hold, an erroring forbid
//! does. A rule matches when its `resource_type` is the request's (or `*`) and its `actions`
//! contain the request's action (or `*`).

pub mod ast;
pub mod cases;
pub mod compile;
pub mod eval;
pub mod lint;
pub mod residual;
pub mod residual_text;
pub mod span;
pub mod time;
pub mod value;

use crate::token::quote;
use compile::{compile, CompileError, Junction, Program};
use eval::{EvalError, EvalErrorKind, Request};
use serde_json::{json, Value};
use std::cell::Cell;
use std::collections::BTreeSet;
use std::fmt;
use value::Val;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Permit,
    Forbid,
}

impl Effect {
    pub fn name(self) -> &'static str {
        match self {
            Effect::Permit => "permit",
            Effect::Forbid => "forbid",
        }
    }
}

/// Why a rule row was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleError {
    /// The row is not a JSON object.
    NotAnObject,
    /// The row has no usable `name`.
    BadName,
    /// The row named `rule` is refused for `problem`.
    Rule { rule: String, problem: RuleProblem },
}

/// What is wrong with a named rule row (see [`RuleError::Rule`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleProblem {
    BadEffect,
    NoActions,
    /// An action that is not a non-empty string.
    BadAction,
    BadResourceType,
    /// A `condition` that is neither text nor null.
    ConditionNotText,
    /// The condition does not compile.
    Condition(CompileError),
    /// A `mode` that is neither `enforce` nor `shadow`.
    BadMode,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleError::NotAnObject => f.write_str("rule row must be a JSON object"),
            RuleError::BadName => f.write_str("`name` must be a non-empty string"),
            RuleError::Rule { rule, problem } => write!(f, "rule `{}`: {problem}", quote(rule)),
        }
    }
}

impl fmt::Display for RuleProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RuleProblem::BadEffect => "`effect` must be `permit` or `forbid`",
            RuleProblem::NoActions => "`actions` must list at least one action (or `*`)",
            RuleProblem::BadAction => "`actions` must hold non-empty strings",
            RuleProblem::BadResourceType => "`resource_type` must be a non-empty string (or `*`)",
            RuleProblem::ConditionNotText => "`condition` must be text",
            RuleProblem::BadMode => "`mode` must be `enforce` or `shadow`",
            RuleProblem::Condition(e) => return write!(f, "condition: {e}"),
        })
    }
}

impl std::error::Error for RuleError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RuleError::Rule {
                problem: RuleProblem::Condition(e),
                ..
            } => Some(e),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub struct Rule {
    pub name: String,
    pub effect: Effect,
    pub actions: Vec<String>,
    pub resource_type: String,
    /// `None`: no condition, the rule always holds when it matches.
    pub program: Option<Program>,
    pub enabled: bool,
    /// A shadow rule (`mode = 'shadow'`) never changes a decision: it is evaluated beside
    /// the enforced rules only to tell where the decision would differ if it were enforced.
    pub shadow: bool,
    /// Set for a forbid whose row failed to load: it holds (denies) wherever it may match.
    pub unloadable: bool,
    /// A hash of what decides (effect, actions, type, condition, enabled): a plan built
    /// from this rule checks at execution that the rule it finds is still this one.
    pub fingerprint: u64,
}

/// The hash behind [`Rule::fingerprint`]: deterministic for one build of the extension
/// (plans live in one server), not a security boundary (rules are admin-only).
fn fingerprint(row: &Value) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for key in [
        "name",
        "effect",
        "actions",
        "resource_type",
        "condition",
        "enabled",
        "mode",
    ] {
        row.get(key).map(Value::to_string).hash(&mut h);
    }
    h.finish()
}

impl Rule {
    /// Validates one `oidc.rules` row given as `to_jsonb(row)`; compiles its condition.
    pub fn from_row(row: &Value) -> Result<Rule, RuleError> {
        let row = row.as_object().ok_or(RuleError::NotAnObject)?;
        let name = match row.get("name") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            _ => return Err(RuleError::BadName),
        };
        let err = |problem| RuleError::Rule {
            rule: name.clone(),
            problem,
        };
        let effect = match row.get("effect").and_then(Value::as_str) {
            Some("permit") => Effect::Permit,
            Some("forbid") => Effect::Forbid,
            _ => return Err(err(RuleProblem::BadEffect)),
        };
        let actions: Vec<String> = match row.get("actions") {
            Some(Value::Array(a)) if !a.is_empty() => a
                .iter()
                .map(|v| match v.as_str() {
                    Some(s) if !s.is_empty() => Ok(s.to_string()),
                    _ => Err(err(RuleProblem::BadAction)),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(err(RuleProblem::NoActions)),
        };
        let resource_type = match row.get("resource_type") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(err(RuleProblem::BadResourceType)),
        };
        let program = match row.get("condition") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(compile(s).map_err(|e| err(RuleProblem::Condition(e)))?),
            Some(_) => return Err(err(RuleProblem::ConditionNotText)),
        };
        let enabled = row.get("enabled").and_then(Value::as_bool).unwrap_or(true);
        let shadow = match row.get("mode") {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) if s == "enforce" => false,
            Some(Value::String(s)) if s == "shadow" => true,
            Some(_) => return Err(err(RuleProblem::BadMode)),
        };
        Ok(Rule {
            name,
            effect,
            actions,
            resource_type,
            program,
            enabled,
            shadow,
            unloadable: false,
            fingerprint: fingerprint(&Value::Object(row.clone())),
        })
    }

    /// What stands in for a row that failed validation (possible only if written around
    /// the validating trigger): nothing for a permit or a disabled row — it grants nothing —
    /// but, for a forbid (or a row whose effect cannot be read), a rule that holds wherever
    /// the row may match: its actions and resource type where they can be read, all of them
    /// where they cannot. A forbid that cannot load must not stop denying. A shadow row
    /// decides nothing either way, so it is left out too.
    fn unloadable(row: &Value) -> Option<Rule> {
        let row = row.as_object();
        let get = |k: &str| row.and_then(|r| r.get(k));
        if get("enabled").and_then(Value::as_bool) == Some(false)
            || get("effect").and_then(Value::as_str) == Some("permit")
            || get("mode").and_then(Value::as_str) == Some("shadow")
        {
            return None;
        }
        let strings = |v: Option<&Value>| -> Option<Vec<String>> {
            let a = v?.as_array()?;
            let out: Vec<String> = a
                .iter()
                .map(|x| x.as_str().filter(|s| !s.is_empty()).map(str::to_string))
                .collect::<Option<_>>()?;
            (!out.is_empty()).then_some(out)
        };
        let text = |v: Option<&Value>| {
            v.and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        Some(Rule {
            name: text(get("name")).unwrap_or_else(|| "(unnamed)".into()),
            effect: Effect::Forbid,
            actions: strings(get("actions")).unwrap_or_else(|| vec!["*".into()]),
            resource_type: text(get("resource_type")).unwrap_or_else(|| "*".into()),
            program: None,
            enabled: true,
            shadow: false,
            unloadable: true,
            fingerprint: row.map_or(0, |r| fingerprint(&Value::Object(r.clone()))),
        })
    }

    fn matches(&self, action: &str, resource_type: &str) -> bool {
        self.enabled
            && (self.resource_type == resource_type || self.resource_type == "*")
            && self.actions.iter().any(|a| a == action || a == "*")
    }

    /// Whether the condition holds: `Ok(true)`/`Ok(false)`, or why it could not be decided.
    pub fn evaluate(&self, req: &Request) -> Result<bool, EvalError> {
        if self.unloadable {
            return Err(EvalErrorKind::Unloadable.into());
        }
        let Some(program) = &self.program else {
            return Ok(true);
        };
        match program.evaluate(req)? {
            Val::Bool(b) => Ok(b),
            other => Err(EvalErrorKind::ConditionNotBool {
                got: other.type_name(),
            }
            .into()),
        }
    }
}

/// Every rule, enabled or not, in name order.
#[derive(Default, Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

/// The rules matching one (action, resource type), forbids and permits apart (the enforced
/// ones, and the shadow ones beside them), with a memo of the conditions that do not read
/// the resource.
///
/// The memo makes a `Matching` valid for one principal and one context: callers build a new
/// one when either changes (in the extension: per statement and token).
#[derive(Debug, Default, Clone)]
pub struct Matching {
    forbids: Vec<usize>,
    permits: Vec<usize>,
    shadow_forbids: Vec<usize>,
    shadow_permits: Vec<usize>,
    /// Per rule index: 0 = not yet evaluated, 1 = holds, 2 = does not hold.
    memo: Vec<Cell<u8>>,
    /// Per rule index: the macro steps the memoised part spent (the rest of the condition
    /// shares the budget).
    memo_steps: Vec<Cell<usize>>,
}

/// A decision and the rule that decided it: the first permit that held, the first forbid
/// that held, or none (default deny); and the first rule whose condition could not be
/// evaluated on the way (a forbid that errors decides, a permit that errors does not hold).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub deciding: Option<usize>,
    pub errored: Option<usize>,
}

/// Where counting the shadow rules would change a decision: the decision they would make,
/// and the shadow rules that would make it (the forbids that would deny, or the permit
/// that would allow).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowDiff {
    pub allowed: bool,
    pub rules: Vec<usize>,
}

/// A condition's outcome: true, false, or not decidable (an error, out of steps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    True,
    False,
    Error,
}

impl Outcome {
    fn of(r: Result<bool, ()>) -> Outcome {
        match r {
            Ok(true) => Outcome::True,
            Ok(false) => Outcome::False,
            Err(()) => Outcome::Error,
        }
    }

    /// Fail closed: an erroring permit does not hold, an erroring forbid does.
    fn holds(self, effect: Effect) -> bool {
        match self {
            Outcome::True => true,
            Outcome::False => false,
            Outcome::Error => effect == Effect::Forbid,
        }
    }
}

impl Matching {
    /// The matching forbids, as indexes into the rule set.
    pub fn forbids(&self) -> &[usize] {
        &self.forbids
    }

    /// The matching permits, as indexes into the rule set.
    pub fn permits(&self) -> &[usize] {
        &self.permits
    }

    /// The matching shadow rules, forbids then permits, as indexes into the rule set.
    pub fn shadows(&self) -> impl Iterator<Item = usize> + '_ {
        self.shadow_forbids
            .iter()
            .chain(&self.shadow_permits)
            .copied()
    }

    /// Whether shadow rules match: only then does a decision pay for evaluating them.
    pub fn has_shadow(&self) -> bool {
        !(self.shadow_forbids.is_empty() && self.shadow_permits.is_empty())
    }
}

impl Rule {
    /// The key a plan names this rule by (`fingerprint/name`), see
    /// [`RuleSet::by_residual_key`].
    pub fn residual_key(&self) -> String {
        format!("{:016x}/{}", self.fingerprint, self.name)
    }
}

impl RuleSet {
    /// The rule a plan's key ([`Rule::residual_key`]) names, if it is still the rule the
    /// plan was built from (same fingerprint).
    pub fn by_residual_key(&self, key: &str) -> Option<&Rule> {
        let (fingerprint, name) = key.split_once('/')?;
        let fingerprint = u64::from_str_radix(fingerprint, 16).ok()?;
        self.by_name(name)
            .map(|(_, r)| r)
            .filter(|r| r.fingerprint == fingerprint)
    }

    /// The enabled or disabled rule named `name`, with its index.
    pub fn by_name(&self, name: &str) -> Option<(usize, &Rule)> {
        let i = self
            .rules
            .binary_search_by(|r| r.name.as_str().cmp(name))
            .ok()?;
        Some((i, &self.rules[i]))
    }

    /// Builds the set from rows; a row that fails validation (possible only if written
    /// around the validating trigger) fails closed: a permit is left out, so it grants
    /// nothing, and a forbid denies wherever it may match (see `Rule::unloadable`). Its
    /// error is returned for the caller to report.
    pub fn from_rows(rows: &[Value]) -> (RuleSet, Vec<RuleError>) {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        for row in rows {
            match Rule::from_row(row) {
                Ok(rule) => rules.push(rule),
                Err(e) => {
                    rules.extend(Rule::unloadable(row));
                    errors.push(e);
                }
            }
        }
        rules.sort_by(|a, b| a.name.cmp(&b.name));
        (RuleSet { rules }, errors)
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn rule(&self, i: usize) -> &Rule {
        &self.rules[i]
    }

    pub fn matching(&self, action: &str, resource_type: &str) -> Matching {
        let mut m = Matching {
            memo: (0..self.rules.len()).map(|_| Cell::new(0)).collect(),
            memo_steps: (0..self.rules.len()).map(|_| Cell::new(0)).collect(),
            ..Matching::default()
        };
        for (i, r) in self.rules.iter().enumerate() {
            if r.matches(action, resource_type) {
                match (r.effect, r.shadow) {
                    (Effect::Forbid, false) => m.forbids.push(i),
                    (Effect::Permit, false) => m.permits.push(i),
                    (Effect::Forbid, true) => m.shadow_forbids.push(i),
                    (Effect::Permit, true) => m.shadow_permits.push(i),
                }
            }
        }
        m
    }

    /// The decision by the enforced rules, evaluating as little as possible: forbids first
    /// (one that holds or errors denies at once), then permits until one holds.
    pub fn decide(&self, m: &Matching, req: &Request) -> Verdict {
        let mut errored = None;
        for &i in &m.forbids {
            let outcome = self.outcome_memo(m, i, req);
            if outcome == Outcome::Error {
                errored = Some(i);
            }
            if outcome.holds(Effect::Forbid) {
                return Verdict {
                    allowed: false,
                    deciding: Some(i),
                    errored,
                };
            }
        }
        for &i in &m.permits {
            match self.outcome_memo(m, i, req) {
                Outcome::True => {
                    return Verdict {
                        allowed: true,
                        deciding: Some(i),
                        errored,
                    }
                }
                Outcome::Error => {
                    errored = errored.or(Some(i));
                }
                Outcome::False => {}
            }
        }
        Verdict {
            allowed: false,
            deciding: None,
            errored,
        }
    }

    /// What the shadow rules would change about `enforced` (the verdict of [`decide`] for
    /// the same request), if they were enforced: `None` where the decision would be the
    /// same. An enforced forbid denies whatever the shadow rules say; an enforced allow
    /// becomes a deny where shadow forbids hold (all of them are named); a default deny
    /// becomes an allow where a shadow permit holds and no shadow forbid does. Shadow
    /// conditions fail closed as enforced ones do.
    ///
    /// [`decide`]: RuleSet::decide
    pub fn shadow(&self, m: &Matching, req: &Request, enforced: Verdict) -> Option<ShadowDiff> {
        if !m.has_shadow() || (!enforced.allowed && enforced.deciding.is_some()) {
            return None;
        }
        let forbids: Vec<usize> = m
            .shadow_forbids
            .iter()
            .copied()
            .filter(|&i| self.outcome_memo(m, i, req).holds(Effect::Forbid))
            .collect();
        if enforced.allowed {
            return (!forbids.is_empty()).then_some(ShadowDiff {
                allowed: false,
                rules: forbids,
            });
        }
        if !forbids.is_empty() {
            return None;
        }
        let permit = m
            .shadow_permits
            .iter()
            .copied()
            .find(|&i| self.outcome_memo(m, i, req) == Outcome::True)?;
        Some(ShadowDiff {
            allowed: true,
            rules: vec![permit],
        })
    }

    /// The rule's outcome, remembered in `m` for a rule whose condition does not read the
    /// resource.
    ///
    /// A condition split as `fixed && varying` (or `||`, see `compile::split`) remembers
    /// `fixed` and evaluates only `varying` per row, combining them as CEL does: for `&&`,
    /// a false side decides, else an error wins; for `||`, a true side does.
    fn outcome_memo(&self, m: &Matching, i: usize, req: &Request) -> Outcome {
        let rule = &self.rules[i];
        let memo = &m.memo[i];
        if let Some(program) = rule.program.as_ref().filter(|p| p.per_resource) {
            let Some((junction, fixed, varying)) = program.parts() else {
                return Outcome::of(rule.evaluate(req).map_err(drop));
            };
            // 1 = true, 2 = false, 3 = error (or not a bool), 4 = out of steps (nothing
            // absorbs that: the condition fails, as unsplit)
            let fixed = match memo.get() {
                0 => {
                    let (value, steps) = program.evaluate_node(fixed, req, 0);
                    let v = match value {
                        Ok(Val::Bool(true)) => 1,
                        Ok(Val::Bool(false)) => 2,
                        Err(e) if e.is_step_limit() => 4,
                        _ => 3,
                    };
                    memo.set(v);
                    m.memo_steps[i].set(steps);
                    v
                }
                v => v,
            };
            if fixed == 4 {
                return Outcome::Error;
            }
            let decided = match junction {
                Junction::And => 2,
                Junction::Or => 1,
            };
            if fixed == decided {
                return Outcome::of(Ok(fixed == 1));
            }
            let varying = match program.evaluate_node(varying, req, m.memo_steps[i].get()).0 {
                Err(e) if e.is_step_limit() => return Outcome::Error,
                Ok(Val::Bool(b)) => Ok(b),
                Ok(other) => Err(EvalErrorKind::NotBool {
                    got: other.type_name(),
                }
                .into()),
                Err(e) => Err(e),
            };
            let condition = match (fixed, varying) {
                (_, Ok(b)) if b == (decided == 1) => Ok(b),
                (3, _) => Err(()),
                (_, v) => v.map_err(drop),
            };
            return Outcome::of(condition);
        }
        match memo.get() {
            1 => Outcome::True,
            2 => Outcome::False,
            3 => Outcome::Error,
            _ => {
                let outcome = Outcome::of(rule.evaluate(req).map_err(drop));
                memo.set(match outcome {
                    Outcome::True => 1,
                    Outcome::False => 2,
                    Outcome::Error => 3,
                });
                outcome
            }
        }
    }

    /// The decision with every matching rule evaluated, for `explain` and `replay`; the
    /// matching shadow rules are evaluated apart, with the decision they would make.
    pub fn explain(&self, action: &str, resource_type: &str, req: &Request) -> Explanation {
        let m = self.matching(action, resource_type);
        let mut ex = Explanation::default();
        self.evaluate_all(m.forbids.iter().chain(&m.permits), req, &mut ex);
        ex.allowed = ex.forbids.is_empty() && !ex.permits.is_empty();
        if m.has_shadow() {
            let mut shadow = Explanation::default();
            self.evaluate_all(
                m.shadow_forbids.iter().chain(&m.shadow_permits),
                req,
                &mut shadow,
            );
            shadow.allowed = ex.forbids.is_empty()
                && shadow.forbids.is_empty()
                && !(ex.permits.is_empty() && shadow.permits.is_empty());
            ex.reads.extend(std::mem::take(&mut shadow.reads));
            ex.shadow = Some(Box::new(shadow));
        }
        ex
    }

    fn evaluate_all<'a>(
        &self,
        rules: impl Iterator<Item = &'a usize>,
        req: &Request,
        ex: &mut Explanation,
    ) {
        for &i in rules {
            let rule = &self.rules[i];
            if let Some(p) = &rule.program {
                ex.reads.extend(p.reads.iter().cloned());
            }
            match (rule.effect, rule.evaluate(req)) {
                (Effect::Forbid, Ok(true)) => ex.forbids.push(rule.name.clone()),
                (Effect::Permit, Ok(true)) => ex.permits.push(rule.name.clone()),
                (_, Ok(false)) => ex.not_held.push(rule.name.clone()),
                (effect, Err(e)) => {
                    if effect == Effect::Forbid {
                        ex.forbids.push(rule.name.clone());
                    }
                    ex.errors.push((rule.name.clone(), effect, e.to_string()));
                }
            }
        }
    }
}

/// Why a request was allowed or denied.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Explanation {
    pub allowed: bool,
    /// Permits that held.
    pub permits: Vec<String>,
    /// Forbids that held, including those that errored (fail closed).
    pub forbids: Vec<String>,
    /// Matching rules whose condition was false.
    pub not_held: Vec<String>,
    /// Matching rules whose condition could not be evaluated, with the error.
    pub errors: Vec<(String, Effect, String)>,
    /// What the evaluated conditions read (`claims.sub`, `resource.labels`, …).
    pub reads: BTreeSet<String>,
    /// Where shadow rules match: what they did (their own lists), with `allowed` the
    /// decision that counting them would give.
    pub shadow: Option<Box<Explanation>>,
}

impl Explanation {
    /// The JSON `explain` and `replay` return; `shadow` (present only where shadow rules
    /// match) has the shadow rules' own lists, the decision counting them would give, and
    /// whether it differs from the enforced one.
    pub fn to_json(&self) -> Value {
        let errors = |ex: &Explanation| -> Vec<Value> {
            ex.errors
                .iter()
                .map(|(rule, effect, error)| {
                    json!({"rule": rule, "effect": effect.name(), "error": error})
                })
                .collect()
        };
        let reason = if !self.forbids.is_empty() {
            "a forbid rule holds"
        } else if self.permits.is_empty() {
            "no permit rule holds (default deny)"
        } else {
            "a permit rule holds and no forbid rule does"
        };
        let mut out = json!({
            "decision": if self.allowed { "allow" } else { "deny" },
            "reason": reason,
            "permits": self.permits,
            "forbids": self.forbids,
            "not_held": self.not_held,
            "errors": errors(self),
            "reads": self.reads,
        });
        if let Some(shadow) = &self.shadow {
            out["shadow"] = json!({
                "decision": if shadow.allowed { "allow" } else { "deny" },
                "differs": shadow.allowed != self.allowed,
                "permits": shadow.permits,
                "forbids": shadow.forbids,
                "not_held": shadow.not_held,
                "errors": errors(shadow),
            });
        }
        out
    }
}

/// The `context` variable: `time` (a timestamp), and `method`/`path` when known.
pub fn context(time_ns: i128, method: Option<&str>, path: Option<&str>) -> Val {
    let mut m = value::Map::new();
    m.insert("time".into(), Val::Timestamp(time_ns));
    if let Some(method) = method {
        m.insert("method".into(), Val::str(method));
    }
    if let Some(path) = path {
        m.insert("path".into(), Val::str(path));
    }
    Val::Map(std::rc::Rc::new(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    fn refused(row: Value) -> RuleError {
        match Rule::from_row(&row) {
            Ok(_) => panic!("{row} was accepted"),
            Err(e) => e,
        }
    }

    fn named(problem: RuleProblem) -> RuleError {
        RuleError::Rule {
            rule: "r".into(),
            problem,
        }
    }

    #[test]
    fn each_refusal_has_its_variant_and_message() {
        let row = |effect: Value, actions: Value, condition: Value| {
            json!({"name": "r", "effect": effect, "actions": actions, "resource_type": "d",
                   "condition": condition})
        };
        for (row, want, text) in [
            (
                json!(1),
                RuleError::NotAnObject,
                "rule row must be a JSON object",
            ),
            (
                json!({"name": " "}),
                RuleError::BadName,
                "`name` must be a non-empty string",
            ),
            (
                row(json!("allow"), json!(["read"]), Value::Null),
                named(RuleProblem::BadEffect),
                "rule `r`: `effect` must be `permit` or `forbid`",
            ),
            (
                row(json!("permit"), json!([]), Value::Null),
                named(RuleProblem::NoActions),
                "rule `r`: `actions` must list at least one action (or `*`)",
            ),
            (
                row(json!("permit"), json!([""]), Value::Null),
                named(RuleProblem::BadAction),
                "rule `r`: `actions` must hold non-empty strings",
            ),
            (
                row(json!("permit"), json!(["read"]), json!(true)),
                named(RuleProblem::ConditionNotText),
                "rule `r`: `condition` must be text",
            ),
        ] {
            let e = refused(row.clone());
            assert_eq!(e, want, "{row}");
            assert_eq!(e.to_string(), text, "{row}");
            assert!(e.source().is_none(), "{row}");
        }
    }

    #[test]
    fn a_condition_that_does_not_compile_is_the_source() {
        let e = refused(json!({"name": "r", "effect": "permit", "actions": ["read"],
                               "resource_type": "d", "condition": "1 / 0 == 1"}));
        let compiled = CompileError {
            message: "division by zero".into(),
            line: 1,
            column: 3,
        };
        assert_eq!(e, named(RuleProblem::Condition(compiled.clone())));
        assert_eq!(
            e.to_string(),
            "rule `r`: condition: division by zero at line 1, column 3"
        );
        let source = e.source().and_then(|s| s.downcast_ref::<CompileError>());
        assert_eq!(source, Some(&compiled));
    }

    #[test]
    fn evaluation_errors_of_a_rule() {
        let rows = [
            json!({"name": "broken", "effect": "forbid", "actions": 1}),
            json!({"name": "int", "effect": "permit", "actions": ["read"], "resource_type": "d",
                   "condition": "size(claims)"}),
        ];
        let (set, errors) = RuleSet::from_rows(&rows);
        assert_eq!(errors.len(), 1);
        let (null, claims) = (Val::Null, Val::from_json(&json!({"a": 1})));
        let req = Request {
            claims: &claims,
            scopes: &null,
            roles: &null,
            context: &null,
            resource: &null,
        };
        let rule = |name| set.by_name(name).map(|(_, r)| r).unwrap();
        assert_eq!(
            rule("broken").evaluate(&req),
            Err(EvalErrorKind::Unloadable.into())
        );
        assert_eq!(
            rule("int").evaluate(&req),
            Err(EvalErrorKind::ConditionNotBool { got: "int" }.into())
        );
        let explained = set.explain("read", "d", &req);
        assert_eq!(
            explained.errors,
            [
                (
                    "broken".to_string(),
                    Effect::Forbid,
                    "the rule's row could not be loaded (invalid); as a forbid it holds"
                        .to_string()
                ),
                (
                    "int".to_string(),
                    Effect::Permit,
                    "condition gave int, not bool".to_string()
                )
            ]
        );
    }

    fn rule(name: &str, effect: &str, mode: &str, condition: &str) -> Value {
        json!({"name": name, "effect": effect, "actions": ["read"], "resource_type": "doc",
               "condition": condition, "mode": mode})
    }

    fn with_request<R>(sub: &str, f: impl FnOnce(&Request) -> R) -> R {
        let (null, claims) = (Val::Null, Val::from_json(&json!({"sub": sub})));
        f(&Request {
            claims: &claims,
            scopes: &null,
            roles: &null,
            context: &null,
            resource: &null,
        })
    }

    #[test]
    fn a_mode_is_enforce_or_shadow() {
        let e = refused(rule("r", "permit", "dry-run", ""));
        assert_eq!(e, named(RuleProblem::BadMode));
        assert_eq!(
            e.to_string(),
            "rule `r`: `mode` must be `enforce` or `shadow`"
        );
        let shadow = Rule::from_row(&rule("r", "permit", "shadow", "")).unwrap();
        assert!(shadow.shadow);
        let enforced = Rule::from_row(&rule("r", "permit", "enforce", "")).unwrap();
        assert!(!enforced.shadow);
        assert_ne!(
            shadow.fingerprint, enforced.fingerprint,
            "a plan must see a mode change"
        );
    }

    #[test]
    fn shadow_rules_change_no_decision_and_say_where_they_would() {
        let (set, errors) = RuleSet::from_rows(&[
            rule(
                "owners",
                "permit",
                "enforce",
                "claims.sub in ['alice', 'bob']",
            ),
            rule("no-bob", "forbid", "shadow", "claims.sub == 'bob'"),
            rule("no-carol", "forbid", "enforce", "claims.sub == 'carol'"),
            rule(
                "also-carol",
                "permit",
                "shadow",
                "claims.sub in ['carol', 'dave', 'erin']",
            ),
            rule("not-erin", "forbid", "shadow", "claims.sub == 'erin'"),
        ]);
        assert!(errors.is_empty());
        let m = set.matching("read", "doc");
        assert!(m.has_shadow());
        assert_eq!(m.forbids().len() + m.permits().len(), 2);
        let index = |name| set.by_name(name).unwrap().0;
        let shadows: Vec<usize> = m.shadows().collect();
        assert_eq!(
            shadows,
            [index("no-bob"), index("not-erin"), index("also-carol")]
        );
        for (sub, allowed, diff) in [
            ("alice", true, None),
            ("bob", true, Some((false, vec!["no-bob"]))),
            ("carol", false, None), // an enforced forbid denies whatever the shadow rules say
            ("dave", false, Some((true, vec!["also-carol"]))),
            ("erin", false, None), // a shadow forbid holds beside the shadow permit
            ("frank", false, None),
        ] {
            with_request(sub, |req| {
                // a Matching's memo holds for one principal: one per request
                let m = set.matching("read", "doc");
                let verdict = set.decide(&m, req);
                assert_eq!(verdict.allowed, allowed, "{sub}");
                let want = diff.map(|(allowed, rules): (bool, Vec<&str>)| ShadowDiff {
                    allowed,
                    rules: rules.into_iter().map(index).collect(),
                });
                assert_eq!(set.shadow(&m, req, verdict), want, "{sub}");
                let ex = set.explain("read", "doc", req);
                assert_eq!(ex.allowed, allowed, "{sub}");
                let shadow = ex.shadow.as_ref().unwrap();
                assert_eq!(shadow.allowed, want.map_or(allowed, |d| d.allowed), "{sub}");
                let json = ex.to_json();
                assert_eq!(json["shadow"]["differs"], json!(shadow.allowed != allowed));
                assert!(!ex
                    .permits
                    .iter()
                    .chain(&ex.forbids)
                    .any(|r| r.contains("no-bob")
                        || r.contains("also-carol")
                        || r.contains("not-erin")));
            });
        }
        let no_shadow = set.explain(
            "update",
            "doc",
            &Request {
                claims: &Val::Null,
                scopes: &Val::Null,
                roles: &Val::Null,
                context: &Val::Null,
                resource: &Val::Null,
            },
        );
        assert!(no_shadow.shadow.is_none() && no_shadow.to_json().get("shadow").is_none());
    }

    #[test]
    fn an_unloadable_shadow_forbid_denies_nothing() {
        let rows = [
            json!({"name": "all", "effect": "permit", "actions": ["read"], "resource_type": "doc"}),
            json!({"name": "broken", "effect": "forbid", "actions": 1, "mode": "shadow"}),
            json!({"name": "broken-enforced", "effect": "forbid", "actions": ["write"], "mode": 7}),
        ];
        let (set, errors) = RuleSet::from_rows(&rows);
        assert_eq!(errors.len(), 2);
        with_request("alice", |req| {
            assert!(set.decide(&set.matching("read", "doc"), req).allowed);
            // a mode that cannot be read is no proof the forbid was meant as a shadow
            assert!(!set.decide(&set.matching("write", "doc"), req).allowed);
        });
    }

    #[test]
    fn a_verdict_names_the_first_rule_that_errored() {
        let (set, _) = RuleSet::from_rows(&[
            rule("a-bad-permit", "permit", "enforce", "claims.n > 1"),
            rule(
                "b-good-permit",
                "permit",
                "enforce",
                "claims.sub == 'alice'",
            ),
        ]);
        with_request("alice", |req| {
            let v = set.decide(&set.matching("read", "doc"), req);
            assert!(v.allowed);
            assert_eq!(v.deciding, Some(1));
            assert_eq!(v.errored, Some(0));
        });
        let (set, _) = RuleSet::from_rows(&[rule("f", "forbid", "enforce", "claims.n > 1")]);
        with_request("alice", |req| {
            let v = set.decide(&set.matching("read", "doc"), req);
            assert_eq!(
                (v.allowed, v.deciding, v.errored),
                (false, Some(0), Some(0))
            );
        });
    }
}
