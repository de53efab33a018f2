//! Parsing and printing of the timestamps clients send: ISO 8601 or epoch numbers.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};

use crate::model::Millis;

/// Epoch values below this are taken as seconds, above as milliseconds. 1e11 ms is March
/// 1973 and 1e11 s is the year 5138, so no real timestamp is ambiguous.
const SECONDS_CUTOFF: f64 = 1e11;

/// Parses an ISO 8601 / RFC 3339 string, with or without a zone (no zone means UTC), a plain
/// date, or a decimal epoch in seconds or milliseconds.
pub fn parse_str(s: &str) -> Option<Millis> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(n) = s.parse::<f64>() {
        return from_epoch(n);
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.timestamp_millis());
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
    ] {
        if let Ok(dt) = DateTime::parse_from_str(s, fmt) {
            return Some(dt.timestamp_millis());
        }
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(Utc.from_utc_datetime(&dt).timestamp_millis());
        }
    }
    for fmt in ["%Y-%m-%d", "%Y/%m/%d"] {
        if let Ok(d) = NaiveDate::parse_from_str(s, fmt) {
            return Some(
                Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0)?)
                    .timestamp_millis(),
            );
        }
    }
    None
}

/// Interprets a JSON number as an epoch in seconds or milliseconds.
pub fn from_epoch(n: f64) -> Option<Millis> {
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let ms = if n < SECONDS_CUTOFF { n * 1000.0 } else { n };
    // Past the year 9999 chrono cannot print it; nothing real lies there.
    (ms < 253_402_300_800_000.0).then_some(ms as Millis)
}

/// Parses a JSON value that holds a time: a string or a number.
pub fn parse_value(v: &serde_json::Value) -> Option<Millis> {
    match v {
        serde_json::Value::String(s) => parse_str(s),
        serde_json::Value::Number(n) => n.as_f64().and_then(from_epoch),
        serde_json::Value::Null
        | serde_json::Value::Bool(_)
        | serde_json::Value::Array(_)
        | serde_json::Value::Object(_) => None,
    }
}

/// RFC 3339 in UTC with milliseconds: `2023-05-08T13:56:00.000Z`.
pub fn to_iso(ms: Millis) -> String {
    match Utc.timestamp_millis_opt(ms).single() {
        Some(dt) => dt.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        None => ms.to_string(),
    }
}

/// The calendar date, `2023-05-08`.
pub fn to_date(ms: Millis) -> String {
    match Utc.timestamp_millis_opt(ms).single() {
        Some(dt) => dt.format("%Y-%m-%d").to_string(),
        None => ms.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_accepted_form() {
        let expect = 1_683_554_160_000; // 2023-05-08T13:56:00Z
        assert_eq!(parse_str("2023-05-08T13:56:00Z"), Some(expect));
        assert_eq!(parse_str("2023-05-08T13:56:00"), Some(expect));
        assert_eq!(parse_str("2023-05-08 13:56:00"), Some(expect));
        assert_eq!(parse_str("2023-05-08T21:56:00+08:00"), Some(expect));
        assert_eq!(parse_str("1683554160000"), Some(expect));
        assert_eq!(parse_str("1683554160"), Some(expect));
        assert_eq!(
            parse_value(&serde_json::json!(1_683_554_160_000i64)),
            Some(expect)
        );
        assert_eq!(parse_str("2023-05-08"), Some(1_683_504_000_000));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse_str("yesterday"), None);
        assert_eq!(parse_str(""), None);
        assert_eq!(parse_str("2023-13-45"), None);
        assert_eq!(parse_value(&serde_json::json!(-5)), None);
        assert_eq!(parse_value(&serde_json::json!(true)), None);
    }

    #[test]
    fn prints_iso() {
        assert_eq!(to_iso(1_683_554_160_000), "2023-05-08T13:56:00.000Z");
        assert_eq!(to_date(1_683_554_160_000), "2023-05-08");
    }
}
