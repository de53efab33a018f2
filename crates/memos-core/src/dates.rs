//! Dates written in words, English and Chinese: "yesterday", "last week", "in May",
//! "3 days ago", "上周", "去年五月", "5月7日". [`find`] resolves the first such expression in
//! a text against a reference time (when the text was said, or the search's `query_time`)
//! into a time window.
//!
//! Searches use the window to favour memories from that time; ingestion uses it to date a
//! memory by what it talks about rather than when it was said. Days are UTC days: clients
//! send instants, not time zones.

use std::sync::LazyLock;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc, Weekday};
use regex::Regex;

use crate::model::Millis;

/// A resolved date expression: `[start, end)` in epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// First instant inside.
    pub start: Millis,
    /// First instant after.
    pub end: Millis,
    /// The words that named it, as written.
    pub phrase: String,
}

impl Window {
    /// Whether `t` falls inside.
    pub fn contains(&self, t: Millis) -> bool {
        self.start <= t && t < self.end
    }

    /// The first day of the window, for dating a memory.
    pub fn day(&self) -> Millis {
        self.start
    }
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// One alternation over every pattern, so the leftmost expression in the text wins.
static EN: LazyLock<Regex> = LazyLock::new(|| {
    let month = "january|february|march|april|may|june|july|august|september|october|november|december|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec";
    let weekday = "monday|tuesday|wednesday|thursday|friday|saturday|sunday";
    let num = r"\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|a couple of|a few";
    Regex::new(&format!(
        r"(?ix)\b(?:
          (?P<iso>\d{{4}}-\d{{2}}-\d{{2}})
        | (?:(?:on|since|in|by|until)\s+)?(?P<mdy_m>{month})\.?\s+(?P<mdy_d>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<mdy_y>\d{{4}})
        | (?:(?:on|since|in|by|until)\s+)?(?P<dmy_d>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<dmy_m>{month})\.?,?\s+(?P<dmy_y>\d{{4}})
        | (?P<dby>the\s+day\s+before\s+yesterday)
        | (?P<yesterday>yesterday|last\s+night)
        | (?P<today>today|tonight|this\s+morning|this\s+afternoon|this\s+evening)
        | (?P<tomorrow>tomorrow)
        | (?P<ago_n>{num})\s+(?P<ago_u>day|week|month|year)s?\s+ago
        | (?P<rel>last|this|next|past)\s+(?P<rel_u>week|weekend|month|year)
        | (?P<every>every|each)\s+(?:{weekday})
        | (?:(?P<wd_rel>last|this|next|on)\s+)?(?P<wd>{weekday})
        | (?:in|during|since|of|last|this)?\s*(?P<mon>{month})(?:\s+(?P<mon_y>\d{{4}}))?
        | (?:in|during|since)\s+(?P<year>(?:19|20)\d{{2}})
        )\b"
    ))
    .expect("valid regex")
});

const ZH_NUM: &str = "[0-9一二两三四五六七八九十]+";

static ZH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?x)
          (?P<ymd_y>\d{{4}})年(?P<ymd_m>\d{{1,2}})月(?P<ymd_d>\d{{1,2}})[日号]
        | (?P<ym_y>\d{{4}})年(?P<ym_m>{ZH_NUM})月
        | (?P<md_m>{ZH_NUM})月(?P<md_d>{ZH_NUM})[日号]
        | (?P<year>\d{{4}})年
        | (?P<dby>前天)
        | (?P<yesterday>昨天|昨晚|昨日)
        | (?P<today>今天|今晚|今早|今日|今儿)
        | (?P<tomorrow>明天)
        | (?P<after_tomorrow>后天)
        | (?P<ago_n>{ZH_NUM})(?P<ago_u>天|周|个星期|星期|个礼拜|个月|年)(?:以)?前
        | (?P<every>每个?(?:周|星期|礼拜)[一二三四五六日天末]?)
        | (?P<wkend_rel>上|这|本|下)(?:个)?周末
        | (?P<wk_rel>上|这|本|下)(?:个)?(?:周|星期|礼拜)(?P<wk_d>[一二三四五六日天])?
        | (?P<mon_rel>上|这|本|下)个?月
        | (?P<yr_rel>去年|今年|明年|前年)(?:(?P<yr_m>{ZH_NUM})月)?
        | (?:周|星期|礼拜)(?P<wd>[一二三四五六日天])
        | (?P<mon>{ZH_NUM})月(?:份|初|底|中旬|里|[，。、！,.!]|$)
        "
    ))
    .expect("valid regex")
});

fn day_start(d: NaiveDate) -> Millis {
    Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight exists"))
        .timestamp_millis()
}

fn days(d: NaiveDate, n: i64, phrase: &str) -> Window {
    Window {
        start: day_start(d),
        // Checked: a date at the calendar's edge must not panic the caller.
        end: day_start(d.checked_add_signed(Duration::days(n)).unwrap_or(d)),
        phrase: phrase.to_string(),
    }
}

fn month_window(y: i32, m: u32, phrase: &str) -> Option<Window> {
    let first = NaiveDate::from_ymd_opt(y, m, 1)?;
    let next = if m == 12 {
        NaiveDate::from_ymd_opt(y + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(y, m + 1, 1)?
    };
    Some(Window {
        start: day_start(first),
        end: day_start(next),
        phrase: phrase.to_string(),
    })
}

fn year_window(y: i32, phrase: &str) -> Option<Window> {
    Some(Window {
        start: day_start(NaiveDate::from_ymd_opt(y, 1, 1)?),
        end: day_start(NaiveDate::from_ymd_opt(y + 1, 1, 1)?),
        phrase: phrase.to_string(),
    })
}

/// Shifts a date by whole months, clamping the day (Mar 31 - 1 month = Feb 28/29).
fn add_months(d: NaiveDate, n: i32) -> NaiveDate {
    let total = d.year() * 12 + d.month0() as i32 + n;
    let (y, m) = (total.div_euclid(12), total.rem_euclid(12) as u32 + 1);
    (1..=d.day())
        .rev()
        .find_map(|day| NaiveDate::from_ymd_opt(y, m, day))
        .unwrap_or(d)
}

fn monday_of(d: NaiveDate) -> NaiveDate {
    d.checked_sub_signed(Duration::days(d.weekday().num_days_from_monday() as i64))
        .unwrap_or(d)
}

/// Largest count a "N days/weeks/months/years ago" phrase is read with. Beyond it the
/// phrase names no usable date (and unchecked date arithmetic would overflow: issue 13).
const MAX_AGO: i64 = 10_000;

/// A count of an "ago" phrase, when it is small enough to mean a date.
fn ago_count(n: Option<i64>) -> Option<i64> {
    n.filter(|n| (0..=MAX_AGO).contains(n))
}

/// The most recent `m` (1-12) month at or before the reference month.
fn recent_month(today: NaiveDate, m: u32) -> i32 {
    if m <= today.month() {
        today.year()
    } else {
        today.year() - 1
    }
}

fn en_number(s: &str) -> Option<i64> {
    let s = s.to_ascii_lowercase();
    Some(match s.as_str() {
        "a" | "an" | "one" => 1,
        "two" | "a couple of" => 2,
        "three" | "a few" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        "ten" => 10,
        "eleven" => 11,
        "twelve" => 12,
        _ => s.parse().ok()?,
    })
}

fn zh_number(s: &str) -> Option<i64> {
    if let Ok(n) = s.parse() {
        return Some(n);
    }
    let digit = |c: char| "零一二三四五六七八九".find(c).map(|i| (i / 3) as i64);
    let chars: Vec<char> = s.chars().collect();
    match chars.as_slice() {
        ['两'] => Some(2),
        ['十'] => Some(10),
        ['十', d] => Some(10 + digit(*d)?),
        [t, '十'] => Some(digit(*t)? * 10),
        [t, '十', d] => Some(digit(*t)? * 10 + digit(*d)?),
        [d] => digit(*d),
        _ => None,
    }
}

fn month_index(name: &str) -> Option<u32> {
    let name = name.to_ascii_lowercase();
    MONTHS
        .iter()
        .position(|m| m.starts_with(&name[..name.len().min(3)]) && name.len() >= 3)
        .map(|i| i as u32 + 1)
}

fn weekday_of(name: &str) -> Option<Weekday> {
    let name = name.to_ascii_lowercase();
    let i = WEEKDAYS.iter().position(|w| *w == name)?;
    Weekday::try_from(i as u8).ok()
}

fn zh_weekday(c: &str) -> Option<u32> {
    "一二三四五六日天"
        .chars()
        .position(|x| c.starts_with(x))
        .map(|i| (i as u32).min(6))
}

/// The first date expression in `text`, resolved against `reference`.
pub fn find(text: &str, reference: Millis) -> Option<Window> {
    let today = DateTime::from_timestamp_millis(reference)?.date_naive();
    // Relative phrases shift the reference by small amounts unchecked; far from the
    // calendar's edges those can never overflow.
    if !(1..=9999).contains(&today.year()) {
        return None;
    }
    let en = EN.captures_iter(text).find_map(|c| english(&c, today));
    let zh = ZH.captures_iter(text).find_map(|c| chinese(&c, today));
    match (en, zh) {
        (Some(a), Some(b)) => {
            // The one written first wins.
            let (ia, ib) = (text.find(&a.phrase), text.find(&b.phrase));
            Some(if ia <= ib { a } else { b })
        }
        (a, b) => a.or(b),
    }
}

fn english(c: &regex::Captures<'_>, today: NaiveDate) -> Option<Window> {
    let phrase = c.get(0)?.as_str().trim();
    let g = |n: &str| c.name(n).map(|m| m.as_str());
    if let Some(s) = g("iso") {
        return Some(days(
            NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?,
            1,
            phrase,
        ));
    }
    if let (Some(m), Some(d), Some(y)) = (g("mdy_m"), g("mdy_d"), g("mdy_y")) {
        let date = NaiveDate::from_ymd_opt(y.parse().ok()?, month_index(m)?, d.parse().ok()?)?;
        return Some(days(date, 1, phrase));
    }
    if let (Some(d), Some(m), Some(y)) = (g("dmy_d"), g("dmy_m"), g("dmy_y")) {
        let date = NaiveDate::from_ymd_opt(y.parse().ok()?, month_index(m)?, d.parse().ok()?)?;
        return Some(days(date, 1, phrase));
    }
    if g("dby").is_some() {
        return Some(days(today - Duration::days(2), 1, phrase));
    }
    if g("yesterday").is_some() {
        return Some(days(today - Duration::days(1), 1, phrase));
    }
    if g("today").is_some() {
        return Some(days(today, 1, phrase));
    }
    if g("tomorrow").is_some() {
        return Some(days(today + Duration::days(1), 1, phrase));
    }
    if let (Some(n), Some(u)) = (g("ago_n"), g("ago_u")) {
        let n = ago_count(en_number(n))?;
        return Some(match u.to_ascii_lowercase().as_str() {
            "day" => days(today - Duration::days(n), 1, phrase),
            "week" => days(monday_of(today - Duration::weeks(n)), 7, phrase),
            "month" => {
                let d = add_months(today, -(n as i32));
                month_window(d.year(), d.month(), phrase)?
            }
            _ => year_window(today.year() - n as i32, phrase)?,
        });
    }
    if let (Some(r), Some(u)) = (g("rel"), g("rel_u")) {
        let shift: i32 = match r.to_ascii_lowercase().as_str() {
            "last" | "past" => -1,
            "next" => 1,
            _ => 0,
        };
        return Some(match u.to_ascii_lowercase().as_str() {
            "week" => days(monday_of(today) + Duration::weeks(shift as i64), 7, phrase),
            "weekend" => {
                // "last weekend" said on a Monday is the one just gone.
                let sat = monday_of(today) + Duration::days(5);
                let sat = match shift {
                    -1 => sat - Duration::weeks(1),
                    1 => {
                        sat + Duration::weeks(if today.weekday() == Weekday::Sun {
                            1
                        } else {
                            0
                        })
                    }
                    _ => sat,
                };
                days(sat, 2, phrase)
            }
            "month" => {
                let d = add_months(today, shift);
                month_window(d.year(), d.month(), phrase)?
            }
            _ => year_window(today.year() + shift, phrase)?,
        });
    }
    if g("every").is_some() {
        // "every Tuesday" recurs: no one date.
        return None;
    }
    if let Some(w) = g("wd") {
        let w = weekday_of(w)?;
        let back = |d: NaiveDate| -> NaiveDate {
            let mut x = d - Duration::days(1);
            while x.weekday() != w {
                x -= Duration::days(1);
            }
            x
        };
        let date = match g("wd_rel").map(str::to_ascii_lowercase).as_deref() {
            Some("next") => {
                let mut x = today + Duration::days(1);
                while x.weekday() != w {
                    x += Duration::days(1);
                }
                x
            }
            Some("this") => monday_of(today) + Duration::days(w.num_days_from_monday() as i64),
            Some("last") => {
                // The one in the previous week.
                monday_of(today) - Duration::weeks(1)
                    + Duration::days(w.num_days_from_monday() as i64)
            }
            _ => back(today),
        };
        return Some(days(date, 1, phrase));
    }
    if let Some(m) = g("mon") {
        // "may" alone is usually the verb: only count it as a month with a preposition or a year.
        let lower = phrase.to_ascii_lowercase();
        if m.eq_ignore_ascii_case("may") && lower == "may" {
            return None;
        }
        if lower == m.to_ascii_lowercase()
            && m.len() <= 4
            && !m.eq_ignore_ascii_case("june")
            && !m.eq_ignore_ascii_case("july")
        {
            // Bare abbreviations ("mar", "jan") are too often other words.
            return None;
        }
        let m = month_index(m)?;
        let y = match g("mon_y") {
            Some(y) => y.parse().ok()?,
            None if lower.starts_with("last") && m >= today.month() => today.year() - 1,
            None => recent_month(today, m),
        };
        return month_window(y, m, phrase);
    }
    if let Some(y) = g("year") {
        return year_window(y.parse().ok()?, phrase);
    }
    None
}

/// 上 (last) is one back, 下 (next) one on, 这 / 本 (this) none.
fn zh_shift(r: &str) -> i32 {
    match r {
        "上" => -1,
        "下" => 1,
        _ => 0,
    }
}

fn chinese(c: &regex::Captures<'_>, today: NaiveDate) -> Option<Window> {
    let phrase = c.get(0)?.as_str();
    let g = |n: &str| c.name(n).map(|m| m.as_str());
    if let (Some(y), Some(m), Some(d)) = (g("ymd_y"), g("ymd_m"), g("ymd_d")) {
        let date = NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)?;
        return Some(days(date, 1, phrase));
    }
    if let (Some(y), Some(m)) = (g("ym_y"), g("ym_m")) {
        return month_window(y.parse().ok()?, zh_number(m)? as u32, phrase);
    }
    if let (Some(m), Some(d)) = (g("md_m"), g("md_d")) {
        let m = zh_number(m)? as u32;
        let date = NaiveDate::from_ymd_opt(recent_month(today, m), m, zh_number(d)? as u32)?;
        return Some(days(date, 1, phrase));
    }
    if let Some(y) = g("year") {
        return year_window(y.parse().ok()?, phrase);
    }
    for (name, shift) in [
        ("dby", -2),
        ("yesterday", -1),
        ("today", 0),
        ("tomorrow", 1),
        ("after_tomorrow", 2),
    ] {
        if g(name).is_some() {
            return Some(days(today + Duration::days(shift), 1, phrase));
        }
    }
    if let (Some(n), Some(u)) = (g("ago_n"), g("ago_u")) {
        let n = ago_count(zh_number(n))?;
        return Some(match u {
            "天" => days(today - Duration::days(n), 1, phrase),
            "个月" => {
                let d = add_months(today, -(n as i32));
                month_window(d.year(), d.month(), phrase)?
            }
            "年" => year_window(today.year() - n as i32, phrase)?,
            _ => days(monday_of(today - Duration::weeks(n)), 7, phrase),
        });
    }
    if g("every").is_some() {
        return None;
    }
    if let Some(r) = g("wkend_rel") {
        let shift = zh_shift(r);
        return Some(days(
            monday_of(today) + Duration::weeks(shift as i64) + Duration::days(5),
            2,
            phrase,
        ));
    }
    if let Some(r) = g("wk_rel") {
        let shift = zh_shift(r);
        let monday = monday_of(today) + Duration::weeks(shift as i64);
        return Some(match g("wk_d").and_then(zh_weekday) {
            Some(d) => days(monday + Duration::days(d as i64), 1, phrase),
            None => days(monday, 7, phrase),
        });
    }
    if let Some(r) = g("mon_rel") {
        let shift = zh_shift(r);
        let d = add_months(today, shift);
        return month_window(d.year(), d.month(), phrase);
    }
    if let Some(r) = g("yr_rel") {
        let y = today.year()
            + match r {
                "前年" => -2,
                "去年" => -1,
                "明年" => 1,
                _ => 0,
            };
        return match g("yr_m").and_then(zh_number) {
            Some(m) => month_window(y, m as u32, phrase),
            None => year_window(y, phrase),
        };
    }
    if let Some(d) = g("wd").and_then(zh_weekday) {
        let mut x = today - Duration::days(1);
        while x.weekday().num_days_from_monday() != d {
            x -= Duration::days(1);
        }
        return Some(days(x, 1, phrase));
    }
    if let Some(m) = g("mon").and_then(zh_number) {
        let m = u32::try_from(m).ok().filter(|m| (1..=12).contains(m))?;
        return month_window(recent_month(today, m), m, phrase);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Monday 2023-05-08, noon UTC.
    fn reference() -> Millis {
        crate::time::parse_str("2023-05-08T12:00:00Z").unwrap()
    }

    fn window(text: &str) -> Option<(String, String)> {
        let w = find(text, reference())?;
        let fmt = |t: Millis| {
            DateTime::from_timestamp_millis(t)
                .unwrap()
                .format("%Y-%m-%d")
                .to_string()
        };
        Some((fmt(w.start), fmt(w.end)))
    }

    fn is(text: &str, start: &str, end: &str) {
        assert_eq!(
            window(text),
            Some((start.to_string(), end.to_string())),
            "{text}"
        );
    }

    #[test]
    fn issue_13_huge_counts_and_edge_references_never_panic() {
        for text in [
            "I adopted a puppy 100000000 days ago.",
            "moved 99999999999999 weeks ago",
            "99999999999999999999 months ago",
            "9223372036854775807 years ago",
            "我100000000天前搬家了。",
            "99999999999999周前",
            "99999999999999个月前",
            "99999999999999年前",
        ] {
            assert_eq!(window(text), None, "{text}");
            for reference in [
                i64::MIN,
                -8_334_632_851_200_000,
                0,
                253_402_300_799_999,
                i64::MAX,
            ] {
                let _ = find(text, reference);
            }
        }
        is(
            "I adopted a puppy 10000 days ago.",
            "1995-12-21",
            "1995-12-22",
        );
        // Every phrase at the edges of the calendar the reference may sit at.
        let phrases = [
            "yesterday",
            "tomorrow",
            "last week",
            "next weekend",
            "last Monday",
            "next Friday",
            "3 months ago",
            "two years ago",
            "昨天",
            "后天",
            "上周末",
            "下周三",
            "去年",
            "三个月前",
        ];
        for p in phrases {
            for reference in [
                -62_135_596_800_000,
                253_402_300_799_999,
                -8_334_632_851_200_000,
            ] {
                let _ = find(p, reference);
            }
        }
    }

    #[test]
    fn english_expressions() {
        is(
            "I went to a support group yesterday",
            "2023-05-07",
            "2023-05-08",
        );
        is("What did I do today?", "2023-05-08", "2023-05-09");
        is(
            "the day before yesterday we met",
            "2023-05-06",
            "2023-05-07",
        );
        is(
            "What did we talk about last week?",
            "2023-05-01",
            "2023-05-08",
        );
        is("plans for next month", "2023-06-01", "2023-07-01");
        is("Where did I travel last year?", "2022-01-01", "2023-01-01");
        is("I adopted a dog 3 days ago", "2023-05-05", "2023-05-06");
        is(
            "two weeks ago I started running",
            "2023-04-24",
            "2023-05-01",
        );
        is("a month ago", "2023-04-01", "2023-05-01");
        is("What did I cook in March?", "2023-03-01", "2023-04-01");
        is("in May", "2023-05-01", "2023-06-01");
        is("in September", "2022-09-01", "2022-10-01");
        is("in June 2021", "2021-06-01", "2021-07-01");
        is("the trip in 2019", "2019-01-01", "2020-01-01");
        is("on Friday we hiked", "2023-05-05", "2023-05-06");
        is("last Friday", "2023-05-05", "2023-05-06");
        is("last weekend", "2023-05-06", "2023-05-08");
        is("on 2023-04-01 I moved", "2023-04-01", "2023-04-02");
        is("since May 7, 2022", "2022-05-07", "2022-05-08");
        is("on 7 May 2022", "2022-05-07", "2022-05-08");
    }

    #[test]
    fn chinese_expressions() {
        is("我昨天去跑步了", "2023-05-07", "2023-05-08");
        is("前天", "2023-05-06", "2023-05-07");
        is("上周我们聊了什么", "2023-05-01", "2023-05-08");
        is("上周五", "2023-05-05", "2023-05-06");
        is("上个月去了哪里", "2023-04-01", "2023-05-01");
        is("去年", "2022-01-01", "2023-01-01");
        is("去年五月", "2022-05-01", "2022-06-01");
        is("三天前", "2023-05-05", "2023-05-06");
        is("两个月前", "2023-03-01", "2023-04-01");
        is("2021年6月", "2021-06-01", "2021-07-01");
        is("2021年6月3日", "2021-06-03", "2021-06-04");
        is("5月1日", "2023-05-01", "2023-05-02");
        is("十二月", "2022-12-01", "2023-01-01");
        is("星期三", "2023-05-03", "2023-05-04");
        is("我们三月份买了房子", "2023-03-01", "2023-04-01");
        is("上周末买了自行车", "2023-05-06", "2023-05-08");
    }

    #[test]
    fn plain_words_are_not_dates() {
        assert_eq!(window("I may go hiking"), None);
        assert_eq!(window("What does Melanie like to paint?"), None);
        assert_eq!(window("我喜欢吃辣的"), None);
        assert_eq!(window("我最喜欢的乐队是五月天"), None);
        assert_eq!(window("I play tennis every Tuesday"), None);
        assert_eq!(window("我每周二打网球"), None);
        assert_eq!(window("Mark said hi"), None);
    }

    #[test]
    fn the_first_expression_wins() {
        is("yesterday, not last week", "2023-05-07", "2023-05-08");
        is("昨天和上周", "2023-05-07", "2023-05-08");
    }
}
