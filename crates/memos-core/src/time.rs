//! Parsing and printing of the timestamps clients send: ISO 8601, epoch numbers, or a date
//! in words as people and chat exports write them (`3 May 2025`, `May 3, 2025 3pm`,
//! `1:56 pm on 8 May, 2023`, `2025年5月3日 下午3点`).

use std::sync::LazyLock;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use regex::Regex;

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
    english_words(s).or_else(|| chinese_words(s))
}

/// A clock time in English: `15:30`, `3:30:05 pm`, `3pm`, `3 p.m.`.
const EN_TIME: &str = r"\d{1,2}:\d{2}(?::\d{2})?(?:\s*[ap]\.?m\.?)?|\d{1,2}\s*[ap]\.?m\.?";
const EN_MONTH: &str = r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?";

/// A whole English date: an optional time before it (`1:56 pm on`), an optional weekday,
/// day and month in either order, the year, an optional time after it (`at 3pm`).
static EN_DATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?ix)^
        (?:(?P<t1>{EN_TIME})\s+on\s+)?
        (?:(?:mon|tues?|wed(?:nes)?|thu(?:rs)?|fri|sat(?:ur)?|sun)(?:day)?\.?,?\s+)?
        (?:
            (?P<d1>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<m1>{EN_MONTH})\.?
          | (?P<m2>{EN_MONTH})\.?\s+(?P<d2>\d{{1,2}})(?:st|nd|rd|th)?
        )
        ,?\s+(?P<y>\d{{4}})
        (?:,?\s+(?:at\s+)?(?P<t2>{EN_TIME}))?
        $"
    ))
    .expect("valid regex")
});

/// A Chinese date: `2025年5月3日`, then optionally `下午3点`, `15:30`, `3点半`, `晚上8点20分`.
static ZH_DATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?P<y>\d{4})年(?P<m>\d{1,2})月(?P<d>\d{1,2})[日号]\s*(?:(?:星期|周)[一二三四五六日天]\s*)?(?P<ap>凌晨|早上|上午|中午|下午|傍晚|晚上)?\s*(?:(?P<h>\d{1,2})(?:(?:[点时:：])(?:(?P<half>半)|(?P<mi>\d{1,2})分?)?)?)?$",
    )
    .expect("valid regex")
});

fn month_number(m: &str) -> Option<u32> {
    let m = m.to_ascii_lowercase();
    [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ]
    .iter()
    .position(|p| m.starts_with(p))
    .map(|i| i as u32 + 1)
}

/// `15:30`, `3:30 pm`, `3pm` as a time of day.
fn english_time(t: &str) -> Option<NaiveTime> {
    let t = t.to_ascii_lowercase().replace('.', "");
    let (clock, pm) = match (t.strip_suffix("pm"), t.strip_suffix("am")) {
        (Some(c), _) => (c.trim(), Some(true)),
        (_, Some(c)) => (c.trim(), Some(false)),
        _ => (t.trim(), None),
    };
    let mut parts = clock.split(':').map(|p| p.parse::<u32>().ok());
    let mut h = parts.next()??;
    let mi = parts.next().flatten().unwrap_or(0);
    let sec = parts.next().flatten().unwrap_or(0);
    match pm {
        Some(_) if !(1..=12).contains(&h) => return None,
        Some(true) if h < 12 => h += 12,
        Some(false) if h == 12 => h = 0,
        _ => {}
    }
    NaiveTime::from_hms_opt(h, mi, sec)
}

fn at(date: NaiveDate, time: Option<NaiveTime>) -> Option<Millis> {
    let dt = date.and_time(time.unwrap_or(NaiveTime::MIN));
    from_epoch(Utc.from_utc_datetime(&dt).timestamp_millis() as f64)
}

fn english_words(s: &str) -> Option<Millis> {
    let c = EN_DATE.captures(s)?;
    let (d, m) = match (c.name("d1"), c.name("m1")) {
        (Some(d), Some(m)) => (d, m),
        _ => (c.name("d2")?, c.name("m2")?),
    };
    let date = NaiveDate::from_ymd_opt(
        c["y"].parse().ok()?,
        month_number(m.as_str())?,
        d.as_str().parse().ok()?,
    )?;
    let time = match c.name("t1").or(c.name("t2")) {
        Some(t) => Some(english_time(t.as_str())?),
        None => None,
    };
    at(date, time)
}

fn chinese_words(s: &str) -> Option<Millis> {
    let c = ZH_DATE.captures(s)?;
    let date = NaiveDate::from_ymd_opt(
        c["y"].parse().ok()?,
        c["m"].parse().ok()?,
        c["d"].parse().ok()?,
    )?;
    let time = match c.name("h") {
        None => None,
        Some(h) => {
            let mut h: u32 = h.as_str().parse().ok()?;
            let mi: u32 = match (c.name("half"), c.name("mi")) {
                (Some(_), _) => 30,
                (None, Some(m)) => m.as_str().parse().ok()?,
                (None, None) => 0,
            };
            match c.name("ap").map(|m| m.as_str()) {
                Some("下午" | "傍晚" | "晚上") if h < 12 => h += 12,
                Some("中午") if h < 11 => h += 12,
                _ => {}
            }
            Some(NaiveTime::from_hms_opt(h, mi, 0)?)
        }
    };
    at(date, time)
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
    fn parses_dates_in_words_in_english_and_chinese() {
        let day = |s| parse_str(s).map(to_iso);
        let may3 = Some("2025-05-03T00:00:00.000Z".to_string());
        let may3_3pm = Some("2025-05-03T15:00:00.000Z".to_string());
        assert_eq!(day("3 May 2025"), may3);
        assert_eq!(day("May 3, 2025"), may3);
        assert_eq!(day("Saturday, May 3rd, 2025"), may3);
        assert_eq!(day("3rd of May 2025"), may3);
        assert_eq!(day("May 3, 2025 3pm"), may3_3pm);
        assert_eq!(day("May 3, 2025 at 3:00 p.m."), may3_3pm);
        assert_eq!(day("3 May 2025 15:00"), may3_3pm);
        assert_eq!(day("sept 3, 2025"), Some("2025-09-03T00:00:00.000Z".into()));
        // LoCoMo's session times.
        assert_eq!(
            day("1:56 pm on 8 May, 2023"),
            Some("2023-05-08T13:56:00.000Z".into())
        );
        assert_eq!(
            day("12:30 am on 1 January, 2024"),
            Some("2024-01-01T00:30:00.000Z".into())
        );
        assert_eq!(day("2025年5月3日"), may3);
        assert_eq!(day("2025年5月3日 下午3点"), may3_3pm);
        assert_eq!(
            day("2025年5月3日下午3点半"),
            Some("2025-05-03T15:30:00.000Z".into())
        );
        assert_eq!(day("2025年5月3日 15:00"), may3_3pm);
        assert_eq!(
            day("2025年5月3日 晚上8点20分"),
            Some("2025-05-03T20:20:00.000Z".into())
        );
        assert_eq!(
            day("2025年5月3日 中午12点"),
            Some("2025-05-03T12:00:00.000Z".into())
        );
        for bad in [
            "May 32, 2025",
            "31 February 2025",
            "May 3",
            "May 3, 2025 13pm",
            "May 3, 2025 25:00",
            "2025年13月3日",
            "2025年5月3日 下午25点",
            "someday in May 2025",
        ] {
            assert_eq!(parse_str(bad), None, "{bad}");
        }
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
