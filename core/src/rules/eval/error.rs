//! Why a condition could not be evaluated: an [`EvalError`] of one [`EvalErrorKind`] per
//! failure, so that callers decide on the kind (the step budget, above all, which nothing
//! may absorb) and never on a message.

use super::{Op, MAX_STEPS};
use std::fmt;

/// Why a condition could not be evaluated (a missing attribute, a type mismatch, …): its
/// [`kind`](EvalError::kind), whose message is the error's.
///
/// Boxed, as jsonwebtoken's `Error` is: every step of the evaluator returns a
/// `Result<Val, EvalError>`, which stays the size of a [`Val`](super::Val) this way, and
/// errors are the rare path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError(Box<EvalErrorKind>);

/// What went wrong evaluating a condition.
///
/// An error never holds a value the condition computed, which may be data the reader of
/// the error cannot see: only type names, and the rule's own text (a field name, or an
/// expression as `describe` gives it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvalErrorKind {
    /// The step budget ([`MAX_STEPS`]) ran out: nothing absorbs it (see
    /// [`EvalError::is_step_limit`]).
    StepLimit,
    /// Deeper than the evaluator's own nesting bound.
    TooDeep,
    /// An operand of `&&`, `||`, `!`, `?:` or a macro's step that is not a bool.
    NotBool {
        got: &'static str,
    },
    /// The whole condition gave something else than a bool.
    ConditionNotBool {
        got: &'static str,
    },
    /// `resource.<field>` on a resource without that attribute.
    NoResourceField(String),
    /// A map without the key: the field selected, or the index's expression when it can
    /// be named.
    NoSuchKey(Option<String>),
    /// A list index past its end, named by its expression when it can be.
    IndexOutOfRange(Option<String>),
    /// `x.<field>` on a value that is not a map.
    CannotSelect {
        field: String,
        from: &'static str,
    },
    /// `has(x.f)` on a value that is not a map.
    HasNeedsMap {
        got: &'static str,
    },
    /// A map literal with a key that is not a string.
    MapKeyNotString,
    /// A map literal with the same key twice, named by its expression when it can be.
    DuplicateMapKey(Option<String>),
    /// `-x` of the smallest int.
    NegationOverflow,
    /// An int or uint result out of its range (also a conversion's).
    Overflow,
    DivisionByZero,
    ModulusByZero,
    DurationOutOfRange,
    TimestampOutOfRange,
    /// `x < y` (or `<=`, `>`, `>=`) of values that have no order between them.
    NotComparable {
        left: &'static str,
        right: &'static str,
    },
    /// `-x` of a value that cannot be negated.
    NoNegationOverload {
        operand: &'static str,
    },
    /// A binary operator without an overload for its operands' types.
    NoOperatorOverload {
        op: Op,
        left: &'static str,
        right: &'static str,
    },
    /// A function without an overload for its arguments' types.
    NoFunctionOverload {
        function: &'static str,
        args: Vec<&'static str>,
    },
    /// A macro over a value that is neither a list nor a map.
    NotIterable {
        got: &'static str,
    },
    /// `int(s)`, `uint(s)`, `double(s)` or `bool(s)` of a string that does not spell one.
    NotConvertible(Conversion),
    /// `timestamp(s)` of a string that is not RFC 3339.
    InvalidTimestamp,
    /// `duration(s)` of a string that is not a duration.
    InvalidDuration,
    /// A calendar accessor's time zone that is neither an IANA name nor an offset.
    UnknownTimeZone,
    /// An error of a conversion or parse, with the call as the rule wrote it (see
    /// `named_call`); the error's [`source`](std::error::Error::source) is `error`.
    InCall {
        call: String,
        error: EvalError,
    },
    /// The rule's row failed to load; as a forbid, it holds (see `Rule::unloadable`).
    Unloadable,
    /// A tree the compiler never builds (a bug).
    Internal(&'static str),
}

/// The type a string conversion was asked for (see [`EvalErrorKind::NotConvertible`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    Int,
    Uint,
    Double,
    Bool,
}

impl EvalError {
    pub fn kind(&self) -> &EvalErrorKind {
        &self.0
    }

    /// Whether this is the step budget running out, which nothing may absorb.
    pub fn is_step_limit(&self) -> bool {
        matches!(*self.0, EvalErrorKind::StepLimit)
    }
}

impl From<EvalErrorKind> for EvalError {
    fn from(kind: EvalErrorKind) -> EvalError {
        EvalError(Box::new(kind))
    }
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Display for EvalErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use EvalErrorKind as E;
        match self {
            E::StepLimit => write!(
                f,
                "more than {MAX_STEPS} evaluation steps (macro iterations and list elements)"
            ),
            E::TooDeep => f.write_str("expression nested too deeply"),
            E::NotBool { got } => write!(f, "expected bool, got {got}"),
            E::ConditionNotBool { got } => write!(f, "condition gave {got}, not bool"),
            E::NoResourceField(field) => write!(f, "no such key `{field}` in resource"),
            E::NoSuchKey(Some(key)) => write!(f, "no such key `{key}`"),
            E::NoSuchKey(None) => f.write_str("no such key"),
            E::IndexOutOfRange(Some(index)) => write!(f, "index `{index}` out of range"),
            E::IndexOutOfRange(None) => f.write_str("index out of range"),
            E::CannotSelect { field, from } => write!(f, "cannot select `{field}` from a {from}"),
            E::HasNeedsMap { got } => write!(f, "has() needs a map, got {got}"),
            E::MapKeyNotString => f.write_str("map keys must be strings"),
            E::DuplicateMapKey(Some(key)) => write!(f, "duplicate map key `{key}`"),
            E::DuplicateMapKey(None) => f.write_str("duplicate map key"),
            E::NegationOverflow => f.write_str("int overflow"),
            E::Overflow => f.write_str("integer overflow"),
            E::DivisionByZero => f.write_str("division by zero"),
            E::ModulusByZero => f.write_str("modulus by zero"),
            E::DurationOutOfRange => f.write_str("duration out of range"),
            E::TimestampOutOfRange => f.write_str("timestamp out of range"),
            E::NotComparable { left, right } => write!(f, "cannot compare {left} with {right}"),
            E::NoNegationOverload { operand } => write!(f, "no overload of `-` for {operand}"),
            E::NoOperatorOverload { op, left, right } => {
                write!(f, "no overload of `{op:?}` for {left} and {right}")
            }
            E::NoFunctionOverload { function, args } => {
                write!(f, "no overload of `{function}` for ({})", args.join(", "))
            }
            E::NotIterable { got } => write!(f, "cannot iterate over a {got}"),
            E::NotConvertible(to) => f.write_str(match to {
                Conversion::Int => {
                    "cannot convert a string to int (not an integer, or out of range)"
                }
                Conversion::Uint => {
                    "cannot convert a string to uint (not an unsigned integer, or out of range)"
                }
                Conversion::Double => "cannot convert a string to double (not a number)",
                Conversion::Bool => {
                    "cannot convert a string to bool (not `true`, `false` or a spelling of them)"
                }
            }),
            E::InvalidTimestamp => f.write_str("invalid timestamp string (not RFC 3339)"),
            E::InvalidDuration => f.write_str("invalid duration string"),
            E::UnknownTimeZone => f.write_str("unknown time zone"),
            E::InCall { call, error } => write!(f, "`{call}`: {error}"),
            E::Unloadable => {
                f.write_str("the rule's row could not be loaded (invalid); as a forbid it holds")
            }
            E::Internal(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for EvalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.0 {
            EvalErrorKind::InCall { error, .. } => Some(error),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::compile::compile;
    use crate::rules::eval::Request;
    use crate::rules::value::Val;
    use serde_json::json;
    use std::error::Error as _;

    fn evaluate(source: &str) -> Result<Val, EvalError> {
        let big: Vec<i64> = (0..1000).collect();
        let claims = Val::from_json(&json!({
            "s": "text", "n": 5, "zero": 0, "min": i64::MIN, "list": [1, 2], "m": {"a": 1},
            "big": big,
        }));
        let resource = Val::from_json(&json!({"pin": "12x"}));
        let none = Val::list_of_strings(&[]);
        let req = Request {
            claims: &claims,
            scopes: &none,
            roles: &none,
            context: &Val::Null,
            resource: &resource,
        };
        compile(source).unwrap().evaluate(&req)
    }

    #[test]
    fn each_failure_has_its_variant_and_message() {
        use EvalErrorKind as E;
        let in_call = |call: &str, error: E| E::InCall {
            call: call.into(),
            error: error.into(),
        };
        for (source, want, text) in [
            ("claims.x == 1", E::NoSuchKey(Some("x".into())), "no such key `x`"),
            (
                "claims.m[claims.s + 'x'] == 1",
                E::NoSuchKey(None),
                "no such key",
            ),
            (
                "resource.nope == 1",
                E::NoResourceField("nope".into()),
                "no such key `nope` in resource",
            ),
            (
                "claims.list[claims.n] == 1",
                E::IndexOutOfRange(Some("claims.n".into())),
                "index `claims.n` out of range",
            ),
            (
                "claims.s.y == 1",
                E::CannotSelect {
                    field: "y".into(),
                    from: "string",
                },
                "cannot select `y` from a string",
            ),
            (
                "claims.s < claims.n",
                E::NotComparable {
                    left: "string",
                    right: "int",
                },
                "cannot compare string with int",
            ),
            (
                "claims.n / claims.zero == 1",
                E::DivisionByZero,
                "division by zero",
            ),
            ("-claims.min == 1", E::NegationOverflow, "int overflow"),
            (
                "claims.s in claims.n",
                E::NoOperatorOverload {
                    op: Op::In,
                    left: "string",
                    right: "int",
                },
                "no overload of `In` for string and int",
            ),
            (
                "size(claims.n) == 1",
                E::NoFunctionOverload {
                    function: "size",
                    args: vec!["int"],
                },
                "no overload of `size` for (int)",
            ),
            (
                "claims.s.all(x, x)",
                E::NotIterable { got: "string" },
                "cannot iterate over a string",
            ),
            (
                "claims.list.exists(x, x)",
                E::NotBool { got: "int" },
                "expected bool, got int",
            ),
            (
                "int(resource.pin) == 1",
                in_call("int(resource.pin)", E::NotConvertible(Conversion::Int)),
                "`int(resource.pin)`: cannot convert a string to int (not an integer, or out of range)",
            ),
            (
                "timestamp(claims.s) == timestamp(claims.s)",
                in_call("timestamp(claims.s)", E::InvalidTimestamp),
                "`timestamp(claims.s)`: invalid timestamp string (not RFC 3339)",
            ),
        ] {
            let got = evaluate(source).err();
            assert_eq!(got.as_ref().map(EvalError::kind), Some(&want), "{source}");
            assert_eq!(got.map(|e| e.to_string()).as_deref(), Some(text), "{source}");
        }
    }

    #[test]
    fn a_call_error_has_the_conversion_error_as_source() {
        let e = evaluate("uint(claims.s) == 1u").err().unwrap();
        let source = e.source().and_then(|s| s.downcast_ref::<EvalError>());
        assert_eq!(
            source.map(EvalError::kind),
            Some(&EvalErrorKind::NotConvertible(Conversion::Uint))
        );
        assert!(EvalError::from(EvalErrorKind::DivisionByZero)
            .source()
            .is_none());
    }

    #[test]
    fn an_error_costs_a_result_nothing() {
        eprintln!("SIZE {}", std::mem::size_of::<EvalError>());
        assert_eq!(
            std::mem::size_of::<Result<Val, EvalError>>(),
            std::mem::size_of::<Val>()
        );
    }

    #[test]
    fn the_step_limit_is_told_by_its_variant() {
        let e = evaluate("claims.big.exists(a, claims.big.exists(b, b == -1))")
            .err()
            .unwrap();
        assert_eq!(e.kind(), &EvalErrorKind::StepLimit);
        assert!(e.is_step_limit());
        assert_eq!(
            e.to_string(),
            format!("more than {MAX_STEPS} evaluation steps (macro iterations and list elements)")
        );
        assert!(!EvalError::from(EvalErrorKind::TooDeep).is_step_limit());
        assert!(!evaluate("claims.x == 1").unwrap_err().is_step_limit());
    }
}
