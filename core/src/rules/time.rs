//! CEL timestamps and durations: parsing (`timestamp("…")`, `duration("…")`) and the
//! calendar accessors (`getHours()`, `getDayOfWeek("Europe/Berlin")`, …).

use super::eval::{EvalError, EvalErrorKind};
use chrono::{DateTime, Datelike, FixedOffset, TimeZone, Timelike, Utc};

pub const NANOS: i128 = 1_000_000_000;
/// CEL's range: 0001-01-01T00:00:00Z ..= 9999-12-31T23:59:59.999999999Z.
const MIN_SECONDS: i128 = -62_135_596_800;
const MAX_SECONDS: i128 = 253_402_300_799;

/// `ns` moved into CEL's range: an instant before or after it (a database's `-infinity` or
/// `infinity`) becomes its first or last instant, so comparisons with real times stay right.
pub fn clamp_to_range(ns: i128) -> i128 {
    ns.clamp(MIN_SECONDS * NANOS, (MAX_SECONDS + 1) * NANOS - 1)
}

pub fn in_range(ns: i128) -> bool {
    (MIN_SECONDS * NANOS..(MAX_SECONDS + 1) * NANOS).contains(&ns)
}

/// RFC 3339, e.g. `2026-11-27T09:00:00Z` or with an offset and fractional seconds.
///
/// The errors here never quote the input: at evaluation it is data (a row's value) that
/// the reader of the error may not be allowed to see. The caller names the expression.
pub fn parse_timestamp(s: &str) -> Result<i128, EvalError> {
    let t = DateTime::parse_from_rfc3339(s).map_err(|_| EvalErrorKind::InvalidTimestamp)?;
    let ns = i128::from(t.timestamp()) * NANOS + i128::from(t.timestamp_subsec_nanos());
    if in_range(ns) {
        Ok(ns)
    } else {
        Err(EvalErrorKind::TimestampOutOfRange.into())
    }
}

pub fn format_timestamp(ns: i128) -> String {
    let secs = ns.div_euclid(NANOS) as i64;
    let sub = ns.rem_euclid(NANOS) as u32;
    match Utc.timestamp_opt(secs, sub).single() {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        None => format!("{secs}s since the epoch"),
    }
}

/// Seconds with only the fractional digits needed, as CEL's `string(duration('1m1ms'))`
/// gives `60.001s` (the caller adds the `s`).
pub fn format_seconds(ns: i128) -> String {
    let sign = if ns < 0 { "-" } else { "" };
    let (secs, frac) = (
        ns.unsigned_abs() / 1_000_000_000,
        ns.unsigned_abs() % 1_000_000_000,
    );
    if frac == 0 {
        format!("{sign}{secs}")
    } else {
        let digits = format!("{frac:09}");
        format!("{sign}{secs}.{}", digits.trim_end_matches('0'))
    }
}

/// CEL's duration range: one int64 of nanoseconds (about ±292 years).
pub const MAX_DURATION: i128 = i64::MAX as i128;
pub const MIN_DURATION: i128 = i64::MIN as i128;

pub fn duration_in_range(ns: i128) -> bool {
    (MIN_DURATION..=MAX_DURATION).contains(&ns)
}

/// Go-style durations as CEL uses them: `90s`, `1h30m`, `-1.5h`, `250ms`, `1us`, `10ns`.
/// Computed in integers, so `100000h1ns` keeps its nanosecond; fractions are truncated,
/// as Go's `time.ParseDuration` does.
pub fn parse_duration(s: &str) -> Result<i128, EvalError> {
    // Never quoting `s`, as `parse_timestamp`.
    let bad = || EvalError::from(EvalErrorKind::InvalidDuration);
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(f) => f.split_at(f.find(|c: char| !c.is_ascii_digit()).unwrap_or(f.len())),
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(bad());
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let scale: i128 = match &after[..unit_len] {
            "h" => 3600 * NANOS,
            "m" => 60 * NANOS,
            "s" => NANOS,
            "ms" => 1_000_000,
            // Go also accepts the micro sign and the Greek mu.
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ns" => 1,
            _ => return Err(bad()),
        };
        rest = &after[unit_len..];
        // More digits than an i128 holds are out of range anyway.
        let whole: i128 = if int_part.is_empty() {
            0
        } else if int_part.len() > 30 {
            return Err(EvalErrorKind::DurationOutOfRange.into());
        } else {
            int_part.parse().map_err(|_| bad())?
        };
        // Digits past the nanosecond change nothing: an hour's nanosecond is 1/3.6e12 of it.
        let frac_digits = &frac_part[..frac_part.len().min(18)];
        let fraction: i128 = if frac_digits.is_empty() {
            0
        } else {
            let value: i128 = frac_digits.parse().map_err(|_| bad())?;
            value * scale / 10i128.pow(frac_digits.len() as u32)
        };
        total = whole
            .checked_mul(scale)
            .and_then(|w| w.checked_add(fraction))
            .and_then(|c| total.checked_add(c))
            .ok_or(EvalErrorKind::DurationOutOfRange)?;
    }
    let ns = if neg { -total } else { total };
    if duration_in_range(ns) {
        Ok(ns)
    } else {
        Err(EvalErrorKind::DurationOutOfRange.into())
    }
}

/// A calendar field of timestamp `ns`, in UTC or in time zone `tz` (an IANA name such as
/// `Europe/Berlin`, or a fixed offset such as `+01:00`).
pub fn calendar(ns: i128, field: &str, tz: Option<&str>) -> Result<i64, EvalError> {
    let secs = ns.div_euclid(NANOS) as i64;
    let sub = ns.rem_euclid(NANOS) as u32;
    let utc = Utc
        .timestamp_opt(secs, sub)
        .single()
        .ok_or(EvalErrorKind::TimestampOutOfRange)?;
    match tz {
        None => Ok(field_of(&utc, field)),
        Some(name) => {
            if let Ok(zone) = name.parse::<chrono_tz::Tz>() {
                Ok(field_of(&utc.with_timezone(&zone), field))
            } else if let Some(offset) = parse_offset(name) {
                Ok(field_of(&utc.with_timezone(&offset), field))
            } else {
                // `name` may be data: never quoted (the caller names the expression).
                Err(EvalErrorKind::UnknownTimeZone.into())
            }
        }
    }
}

/// `[+|-]HH:MM`. The spec's grammar asks for the sign, but its conformance suite reads
/// `02:00` as `+02:00` (`timestamps.textproto`, `getHours`), so an unsigned offset is east.
fn parse_offset(s: &str) -> Option<FixedOffset> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => (1, s),
    };
    let (h, m) = rest.split_once(':')?;
    let two_digits = |x: &str| x.len() == 2 && x.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(h) || !two_digits(m) {
        return None;
    }
    let (h, m) = (h.parse::<i32>().ok()?, m.parse::<i32>().ok()?);
    if m >= 60 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

fn field_of<T: Datelike + Timelike>(t: &T, field: &str) -> i64 {
    i64::from(match field {
        "getFullYear" => return i64::from(t.year()),
        "getMonth" => t.month0(),
        "getDate" => t.day(),
        "getDayOfMonth" => t.day0(),
        "getDayOfYear" => t.ordinal0(),
        "getDayOfWeek" => t.weekday().num_days_from_sunday(),
        "getHours" => t.hour(),
        "getMinutes" => t.minute(),
        "getSeconds" => t.second(),
        _ => t.nanosecond() / 1_000_000,
    })
}

/// The accessor names a timestamp accepts (each with an optional time zone argument).
pub const TIMESTAMP_ACCESSORS: [&str; 10] = [
    "getFullYear",
    "getMonth",
    "getDate",
    "getDayOfMonth",
    "getDayOfYear",
    "getDayOfWeek",
    "getHours",
    "getMinutes",
    "getSeconds",
    "getMilliseconds",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h30m"), Ok(5400 * NANOS));
        assert_eq!(parse_duration("-1.5h"), Ok(-5400 * NANOS));
        assert_eq!(parse_duration("250ms"), Ok(250_000_000));
        assert_eq!(parse_duration("0"), Ok(0));
        for bad in ["", "h", "1x", "1h-", "--1h", "1..2s"] {
            assert_eq!(
                parse_duration(bad),
                Err(EvalErrorKind::InvalidDuration.into()),
                "{bad}"
            );
        }
        for big in ["2562048h", "99999999999999999999999999999999h", "-2562048h"] {
            assert_eq!(
                parse_duration(big),
                Err(EvalErrorKind::DurationOutOfRange.into()),
                "{big}"
            );
        }
    }

    #[test]
    fn timestamps_and_accessors() {
        let t = parse_timestamp("2026-11-27T08:30:00Z").unwrap();
        assert_eq!(calendar(t, "getHours", None), Ok(8));
        assert_eq!(calendar(t, "getHours", Some("Europe/Berlin")), Ok(9));
        assert_eq!(calendar(t, "getHours", Some("-05:00")), Ok(3));
        assert_eq!(calendar(t, "getDayOfWeek", None), Ok(5)); // a Friday
        assert_eq!(calendar(t, "getMonth", None), Ok(10));
        assert_eq!(calendar(t, "getDate", None), Ok(27));
        assert_eq!(
            calendar(t, "getHours", Some("Mars/Olympus")),
            Err(EvalErrorKind::UnknownTimeZone.into())
        );
        assert_eq!(format_timestamp(t), "2026-11-27T08:30:00Z");
        assert_eq!(
            parse_timestamp("2026-11-27"),
            Err(EvalErrorKind::InvalidTimestamp.into())
        );
        assert_eq!(
            parse_timestamp("0000-12-31T23:59:59Z"),
            Err(EvalErrorKind::TimestampOutOfRange.into())
        );
    }
}
