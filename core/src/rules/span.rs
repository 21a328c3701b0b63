//! Ordered columns: for which of a column's values a comparison with one value holds.
//!
//! A database column of integers or timestamps is an `i64` (a timestamp: microseconds since
//! 2000-01-01, Postgres' epoch), and the pair form gives the evaluator a CEL value of it
//! ([`Scale::val`]). For a comparison `resource.x <op> v` with `v` known once per execution,
//! the set of raw values for which the evaluator says true is an interval: the conversion is
//! monotone (non-decreasing: a timestamp outside CEL's range is clamped to its first or last
//! instant) and so is CEL's ordering of numbers (across int, uint and double, ints
//! converted as `as f64` does) and of timestamps. [`span`] finds that interval by binary
//! search over the evaluator's own comparison, so the database's `x >= lo AND x <= hi` is
//! exactly the evaluator's answer, including where an `i64` converted to `f64` is rounded
//! (`9007199254740993 == 9007199254740992.0` is true in CEL, as `as f64` makes it).
//!
//! A value that cannot be ordered with the column's values (a string, a NaN, a timestamp
//! against an integer column) makes every ordering comparison an error and every equality
//! false: [`Span::Error`] for `< <= > >=`, [`Span::Empty`] for `==`.

use super::eval::EvalError;
use super::residual::Cmp;
use super::time;
use super::value::Val;
use std::cmp::Ordering;

/// Postgres' epoch (2000-01-01) in microseconds since the Unix epoch.
pub const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

/// Postgres' first valid timestamp (4714-11-24 00:00:00 BC) and the end of its range
/// (294277-01-01, exclusive), in microseconds since 2000-01-01 (`MIN_TIMESTAMP`,
/// `END_TIMESTAMP` of `datatype/timestamp.h`).
pub const PG_MIN_TIMESTAMP: i64 = -211_813_488_000_000_000;
pub const PG_END_TIMESTAMP: i64 = 9_223_371_331_200_000_000;

/// How a column's raw `i64` becomes the evaluator's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// `int2`, `int4`, `int8`: a CEL int.
    Int,
    /// `timestamptz` and `timestamp` (read as UTC): microseconds since 2000-01-01.
    Timestamp,
}

impl Scale {
    pub fn val(self, raw: i64) -> Val {
        match self {
            Scale::Int => Val::Int(raw),
            Scale::Timestamp => Val::Timestamp(timestamp_ns(raw)),
        }
    }

    /// `lo` moved up to the least raw value a column of this scale can hold that is at least
    /// `lo` (a timestamp column holds `-infinity`, Postgres' range and `infinity`), so that
    /// `x >= lo` decides every value alike and the bound is a valid datum.
    pub fn snap_lo(self, lo: i64) -> i64 {
        match self {
            Scale::Int => lo,
            Scale::Timestamp if lo == i64::MIN => lo,
            Scale::Timestamp if lo <= PG_MIN_TIMESTAMP => PG_MIN_TIMESTAMP,
            Scale::Timestamp if lo >= PG_END_TIMESTAMP => i64::MAX,
            Scale::Timestamp => lo,
        }
    }

    /// `hi` moved down to the greatest raw value a column can hold that is at most `hi`.
    pub fn snap_hi(self, hi: i64) -> i64 {
        match self {
            Scale::Int => hi,
            Scale::Timestamp if hi == i64::MAX => hi,
            Scale::Timestamp if hi >= PG_END_TIMESTAMP => PG_END_TIMESTAMP - 1,
            Scale::Timestamp if hi < PG_MIN_TIMESTAMP => i64::MIN,
            Scale::Timestamp => hi,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Scale::Int => "int",
            Scale::Timestamp => "timestamp",
        }
    }
}

/// A Postgres timestamp (µs since 2000-01-01; `±infinity` are `i64::MIN`/`i64::MAX`) as
/// nanoseconds since the Unix epoch, clamped into CEL's range.
pub fn timestamp_ns(raw: i64) -> i128 {
    time::clamp_to_range((i128::from(raw) + i128::from(PG_EPOCH_OFFSET_US)) * 1000)
}

/// The raw values for which a comparison holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// An error for every (non-NULL) value of the column.
    Error,
    /// False for every value.
    Empty,
    /// True exactly for `lo..=hi` (`lo <= hi`), false for the others.
    Range { lo: i64, hi: i64 },
}

/// Where `Scale::val(raw) <op> value` is true, for `op` one of `== < <= > >=` (`!=` is
/// `!(==)`, equality never being an error).
pub fn span(op: Cmp, value: &Result<Val, EvalError>, scale: Scale) -> Span {
    let Ok(v) = value else {
        return Span::Error;
    };
    let ord = |raw: i64| scale.val(raw).compare(v);
    // Whether the values can be ordered does not depend on the raw value.
    if ord(0).is_none() {
        return if op == Cmp::Eq {
            Span::Empty
        } else {
            Span::Error
        };
    }
    // The first raw value (as i128, i64::MAX + 1 for none) whose comparison is `past`.
    let first = |past: fn(Ordering) -> bool| -> i128 {
        let (mut lo, mut hi) = (i128::from(i64::MIN), i128::from(i64::MAX) + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            // `mid` is at most i64::MAX here (mid < hi).
            let holds = ord(mid as i64).is_some_and(past);
            if holds {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo
    };
    let ge = first(|o| o != Ordering::Less);
    let gt = first(|o| o == Ordering::Greater);
    let (min, max) = (i128::from(i64::MIN), i128::from(i64::MAX));
    let (lo, hi) = match op {
        Cmp::Eq => (ge, gt - 1),
        Cmp::Lt => (min, ge - 1),
        Cmp::Le => (min, gt - 1),
        Cmp::Gt => (gt, max),
        Cmp::Ge => (ge, max),
        Cmp::Ne => unreachable!("`!=` is the negation of `==`"),
    };
    if lo > hi {
        return Span::Empty;
    }
    Span::Range {
        lo: lo as i64,
        hi: hi as i64,
    }
}

/// What a database asks of a span, named in its plan: `"<scale> <op> <part>"`, e.g.
/// `"int le hi"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    pub scale: Scale,
    pub op: Cmp,
    pub part: Part,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The lower bound (`None` unless a range).
    Lo,
    /// The upper bound.
    Hi,
    /// Whether the span is a range.
    Nonempty,
    /// Whether the comparison is an error for every value.
    Error,
}

const OPS: [(&str, Cmp); 5] = [
    ("eq", Cmp::Eq),
    ("lt", Cmp::Lt),
    ("le", Cmp::Le),
    ("gt", Cmp::Gt),
    ("ge", Cmp::Ge),
];
const PARTS: [(&str, Part); 4] = [
    ("lo", Part::Lo),
    ("hi", Part::Hi),
    ("nonempty", Part::Nonempty),
    ("error", Part::Error),
];

impl Query {
    pub fn new(scale: Scale, op: Cmp, part: Part) -> Query {
        Query { scale, op, part }
    }

    pub fn parse(s: &str) -> Option<Query> {
        let mut words = s.split(' ');
        let scale = match words.next()? {
            "int" => Scale::Int,
            "timestamp" => Scale::Timestamp,
            _ => return None,
        };
        let op = words.next()?;
        let op = OPS.iter().find(|(n, _)| *n == op)?.1;
        let part = words.next()?;
        let part = PARTS.iter().find(|(n, _)| *n == part)?.1;
        if words.next().is_some() {
            return None;
        }
        Some(Query { scale, op, part })
    }

    pub fn text(&self) -> String {
        let op = OPS.iter().find(|(_, c)| *c == self.op).map_or("?", |o| o.0);
        let part = PARTS
            .iter()
            .find(|(_, p)| *p == self.part)
            .map_or("?", |p| p.0);
        format!("{} {op} {part}", self.scale.name())
    }

    /// The bound this query asks for (snapped to the column's values), if a bound and the
    /// span is a range.
    pub fn bound(&self, value: &Result<Val, EvalError>) -> Option<i64> {
        match (span(self.op, value, self.scale), self.part) {
            (Span::Range { lo, .. }, Part::Lo) => Some(self.scale.snap_lo(lo)),
            (Span::Range { hi, .. }, Part::Hi) => Some(self.scale.snap_hi(hi)),
            _ => None,
        }
    }

    /// The answer of a `Nonempty` or `Error` query (false for a bound).
    pub fn holds(&self, value: &Result<Val, EvalError>) -> bool {
        matches!(
            (span(self.op, value, self.scale), self.part),
            (Span::Range { .. }, Part::Nonempty) | (Span::Error, Part::Error)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::eval::{binary_values, EvalErrorKind};

    fn truth(op: Cmp, raw: i64, v: &Val, scale: Scale) -> Option<bool> {
        match binary_values(op.op(), &scale.val(raw), v) {
            Ok(Val::Bool(b)) => Some(b),
            _ => None,
        }
    }

    /// The span agrees with the evaluator at its edges and at every probe value.
    fn check(op: Cmp, v: Val, scale: Scale, probes: &[i64]) {
        let s = span(op, &Ok(v.clone()), scale);
        let expect = |raw: i64| match s {
            Span::Error => None,
            Span::Empty => Some(false),
            Span::Range { lo, hi } => Some((lo..=hi).contains(&raw)),
        };
        let mut points = probes.to_vec();
        if let Span::Range { lo, hi } = s {
            for p in [lo, hi] {
                points.extend([p.saturating_sub(1), p, p.saturating_add(1)]);
            }
        }
        for raw in points {
            assert_eq!(
                truth(op, raw, &v, scale),
                expect(raw),
                "{op:?} {v:?} at {raw}"
            );
        }
    }

    const OPS_ALL: [Cmp; 5] = [Cmp::Eq, Cmp::Lt, Cmp::Le, Cmp::Gt, Cmp::Ge];

    #[test]
    fn integers_against_every_number() {
        let probes = [i64::MIN, -1, 0, 1, 2, 3, 1 << 53, (1 << 53) + 1, i64::MAX];
        let values = [
            Val::Int(2),
            Val::Int(i64::MIN),
            Val::Int(i64::MAX),
            Val::Uint(3),
            Val::Uint(u64::MAX),
            Val::Double(2.0),
            Val::Double(2.5),
            Val::Double(-0.0),
            Val::Double(9007199254740992.0),
            Val::Double(9.3e18),
            Val::Double(-9.3e18),
            Val::Double(9223372036854775807.0),
            Val::Double(f64::INFINITY),
            Val::Double(f64::NEG_INFINITY),
            Val::Double(f64::NAN),
            Val::str("2"),
            Val::Null,
            Val::Bool(true),
        ];
        for v in values {
            for op in OPS_ALL {
                check(op, v.clone(), Scale::Int, &probes);
            }
        }
    }

    #[test]
    fn rounding_makes_a_wide_equality() {
        // (2^53 + 1) as f64 rounds to 2^53: both equal 2^53 as a double.
        let s = span(Cmp::Eq, &Ok(Val::Double(9007199254740992.0)), Scale::Int);
        assert_eq!(
            s,
            Span::Range {
                lo: 1 << 53,
                hi: (1 << 53) + 1
            }
        );
        assert_eq!(
            span(Cmp::Eq, &Ok(Val::Double(2.5)), Scale::Int),
            Span::Empty
        );
    }

    #[test]
    fn timestamps_against_timestamps_and_others() {
        let probes = [i64::MIN, -1, 0, 1, i64::MAX, 820_000_000_000_000];
        let values = [
            Val::Timestamp(0),
            Val::Timestamp(1_764_000_000_123_456_789),
            Val::Timestamp(timestamp_ns(i64::MAX)),
            Val::Timestamp(timestamp_ns(i64::MIN)),
            Val::Int(0),
            Val::str("2026-01-01T00:00:00Z"),
        ];
        for v in values {
            for op in OPS_ALL {
                check(op, v.clone(), Scale::Timestamp, &probes);
            }
        }
        // Nanoseconds below a microsecond: `x > t` starts at the next microsecond.
        let t = Val::Timestamp(946_684_800_000_000_500);
        assert_eq!(
            span(Cmp::Gt, &Ok(t.clone()), Scale::Timestamp),
            Span::Range {
                lo: 1,
                hi: i64::MAX
            }
        );
        assert_eq!(span(Cmp::Eq, &Ok(t), Scale::Timestamp), Span::Empty);
    }

    #[test]
    fn snapped_bounds_decide_every_column_value_alike() {
        let column_values = [
            i64::MIN,
            PG_MIN_TIMESTAMP,
            PG_MIN_TIMESTAMP + 1,
            0,
            PG_END_TIMESTAMP - 1,
            i64::MAX,
        ];
        let bounds = [
            i64::MIN,
            i64::MIN + 1,
            PG_MIN_TIMESTAMP - 1,
            PG_MIN_TIMESTAMP,
            0,
            PG_END_TIMESTAMP - 1,
            PG_END_TIMESTAMP,
            i64::MAX - 1,
            i64::MAX,
        ];
        for b in bounds {
            let (lo, hi) = (Scale::Timestamp.snap_lo(b), Scale::Timestamp.snap_hi(b));
            for x in column_values {
                assert_eq!(x >= b, x >= lo, "{x} >= {b} ({lo})");
                assert_eq!(x <= b, x <= hi, "{x} <= {b} ({hi})");
            }
            for s in [lo, hi] {
                assert!(
                    s == i64::MIN
                        || s == i64::MAX
                        || (PG_MIN_TIMESTAMP..PG_END_TIMESTAMP).contains(&s)
                );
            }
        }
    }

    #[test]
    fn an_error_value_is_an_error_everywhere() {
        let e = Err(EvalErrorKind::DivisionByZero.into());
        for op in OPS_ALL {
            assert_eq!(span(op, &e, Scale::Int), Span::Error);
        }
    }

    #[test]
    fn queries_round_trip() {
        for text in [
            "int eq lo",
            "timestamp ge hi",
            "int lt nonempty",
            "int gt error",
        ] {
            assert_eq!(Query::parse(text).unwrap().text(), text);
        }
        for bad in ["int ne lo", "float lt lo", "int lt", "int lt lo x", ""] {
            assert!(Query::parse(bad).is_none(), "{bad}");
        }
    }
}
