//! CEL timestamps and durations: parsing (`timestamp("…")`, `duration("…")`) and the
//! calendar accessors (`getHours()`, `getDayOfWeek("Europe/Berlin")`, …).

use chrono::{DateTime, Datelike, FixedOffset, TimeZone, Timelike, Utc};

pub const NANOS: i128 = 1_000_000_000;
/// CEL's range: 0001-01-01T00:00:00Z ..= 9999-12-31T23:59:59.999999999Z.
const MIN_SECONDS: i128 = -62_135_596_800;
const MAX_SECONDS: i128 = 253_402_300_799;

pub fn in_range(ns: i128) -> bool {
    (MIN_SECONDS * NANOS..(MAX_SECONDS + 1) * NANOS).contains(&ns)
}

/// RFC 3339, e.g. `2026-11-27T09:00:00Z` or with an offset and fractional seconds.
pub fn parse_timestamp(s: &str) -> Result<i128, String> {
    let t = DateTime::parse_from_rfc3339(s).map_err(|_| format!("invalid timestamp `{s}`"))?;
    let ns = i128::from(t.timestamp()) * NANOS + i128::from(t.timestamp_subsec_nanos());
    if in_range(ns) {
        Ok(ns)
    } else {
        Err(format!("timestamp `{s}` out of range"))
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

pub fn format_seconds(ns: i128) -> String {
    if ns % NANOS == 0 {
        format!("{}", ns / NANOS)
    } else {
        format!("{:.9}", ns as f64 / NANOS as f64)
    }
}

/// Go-style durations as CEL uses them: `90s`, `1h30m`, `-1.5h`, `250ms`, `1us`, `10ns`.
pub fn parse_duration(s: &str) -> Result<i128, String> {
    let bad = || format!("invalid duration `{s}`");
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
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(bad());
        }
        let number: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600e9,
            "m" => 60e9,
            "s" => 1e9,
            "ms" => 1e6,
            "us" | "µs" => 1e3,
            "ns" => 1.0,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    // CEL limits durations to about ±10000 years.
    if total > 315_576_000_000.0 * 1e9 {
        return Err(format!("duration `{s}` out of range"));
    }
    let ns = total.round() as i128;
    Ok(if neg { -ns } else { ns })
}

/// A calendar field of timestamp `ns`, in UTC or in time zone `tz` (an IANA name such as
/// `Europe/Berlin`, or a fixed offset such as `+01:00`).
pub fn calendar(ns: i128, field: &str, tz: Option<&str>) -> Result<i64, String> {
    let secs = ns.div_euclid(NANOS) as i64;
    let sub = ns.rem_euclid(NANOS) as u32;
    let utc = Utc
        .timestamp_opt(secs, sub)
        .single()
        .ok_or_else(|| "timestamp out of range".to_string())?;
    match tz {
        None => Ok(field_of(&utc, field)),
        Some(name) => {
            if let Ok(zone) = name.parse::<chrono_tz::Tz>() {
                Ok(field_of(&utc.with_timezone(&zone), field))
            } else if let Some(offset) = parse_offset(name) {
                Ok(field_of(&utc.with_timezone(&offset), field))
            } else {
                Err(format!("unknown time zone `{name}`"))
            }
        }
    }
}

fn parse_offset(s: &str) -> Option<FixedOffset> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    let secs = h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60;
    FixedOffset::east_opt(sign * secs)
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
            assert!(parse_duration(bad).is_err(), "{bad}");
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
        assert!(calendar(t, "getHours", Some("Mars/Olympus")).is_err());
        assert_eq!(format_timestamp(t), "2026-11-27T08:30:00Z");
        assert!(parse_timestamp("2026-11-27").is_err());
    }
}
