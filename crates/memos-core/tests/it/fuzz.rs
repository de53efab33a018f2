//! Fuzzing the parsers that read what clients send (issue 13): the date finder, the time
//! parser, the filter parser, the tokenizer and the fact finder take any input without
//! panicking, and what they return keeps its own rules. proptest drives them with
//! arbitrary Unicode and with inputs shaped like the real thing (huge counts, edge years,
//! nested filters), the shapes that once stopped the task worker.

use memos_core::filter::Filter;
use memos_core::model::Millis;
use memos_core::{dates, ingest, text, time};
use proptest::prelude::*;
use serde_json::{Value, json};

/// Any instant chrono can print: 0001-01-01 to 9999-12-31.
fn instant() -> impl Strategy<Value = Millis> {
    -62_135_596_800_000i64..253_402_300_799_999
}

/// A number as people and attackers write it.
fn count() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..100).prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        "[0-9]{20,40}",
        Just("一百万".to_string()),
        Just("十".to_string()),
        Just("two".to_string()),
    ]
}

/// Sentences shaped like dates in English and Chinese.
fn date_like() -> impl Strategy<Value = String> {
    let unit = prop_oneof![
        Just("days"),
        Just("weeks"),
        Just("months"),
        Just("years"),
        Just("day"),
        Just("hours"),
    ];
    let zh_unit = prop_oneof![
        Just("天"),
        Just("周"),
        Just("个月"),
        Just("年"),
        Just("星期")
    ];
    let month = prop_oneof![Just("May"), Just("December"), Just("Feb"), Just("五月")];
    prop_oneof![
        (count(), unit.clone()).prop_map(|(n, u)| format!("I adopted a puppy {n} {u} ago.")),
        (count(), unit).prop_map(|(n, u)| format!("in {n} {u} I will move")),
        (count(), zh_unit.clone()).prop_map(|(n, u)| format!("我{n}{u}前搬家了。")),
        (count(), zh_unit).prop_map(|(n, u)| format!("{n}{u}后见")),
        (count(), month.clone()).prop_map(|(y, m)| format!("in {m} {y}")),
        (count(), month).prop_map(|(d, m)| format!("on {d} {m}, last year")),
        count().prop_map(|y| format!("{y}年5月3日 下午3点")),
        count().prop_map(|y| format!("back in {y}")),
        "\\PC{0,80}",
    ]
}

/// Any JSON value, nested a few levels, with the keys filters use among random ones.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("and".to_string()),
        Just("or".to_string()),
        Just("tags".to_string()),
        Just("contains".to_string()),
        Just("create_time".to_string()),
        Just("memory_time".to_string()),
        Just("gte".to_string()),
        Just("lt".to_string()),
        Just("eq".to_string()),
        Just("agent_id".to_string()),
        Just("memory_type".to_string()),
        Just("info".to_string()),
        Just("info.scene".to_string()),
        "\\PC{0,12}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "\\PC{0,20}".prop_map(Value::String),
        Just(json!("2025-05-03")),
        Just(json!("UserMemory")),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_date_finder_takes_any_sentence(s in date_like(), at in instant()) {
        if let Some(w) = dates::find(&s, at) {
            prop_assert!(w.start < w.end, "{s:?} at {at}: {w:?}");
            prop_assert!(!w.phrase.is_empty());
        }
    }

    #[test]
    fn the_time_parser_takes_any_string_and_round_trips(s in prop_oneof![
        "\\PC{0,40}",
        "[0-9]{1,5}-[0-9]{1,2}-[0-9]{1,2}[T ][0-9]{1,2}:[0-9]{2}(:[0-9]{2})?(Z|[+-][0-9]{2}:[0-9]{2})?",
        count(),
        count().prop_map(|y| format!("3 May {y} 3pm")),
        count().prop_map(|y| format!("{y}年5月3日")),
    ]) {
        if let Some(ms) = time::parse_str(&s) {
            prop_assert_eq!(time::parse_str(&time::to_iso(ms)), Some(ms), "{:?}", s);
        }
    }

    #[test]
    fn epochs_of_any_size_are_a_time_or_nothing(n in any::<f64>()) {
        if let Some(ms) = time::from_epoch(n) {
            prop_assert!(ms >= 0);
            prop_assert_eq!(time::parse_str(&time::to_iso(ms)), Some(ms));
        }
    }

    #[test]
    fn the_filter_parser_takes_any_json(v in json_value()) {
        // A parsed filter always has conditions: an empty one would widen a delete.
        if let Ok(Some(f)) = Filter::parse(&v) {
            prop_assert!(!f.conditions.is_empty(), "{v}");
        }
    }

    #[test]
    fn the_tokenizer_and_the_fact_finder_take_any_text(s in "\\PC{0,200}", at in instant()) {
        let _ = text::terms(&s);
        let _ = text::words(&s);
        let _ = text::keywords(&s, 5);
        let h = text::headline(&s, 48);
        prop_assert!(h.chars().count() <= 49, "{h:?}");
        for f in ingest::facts::user_facts(&s, at, Some("Ann")) {
            prop_assert!(!f.sentence.is_empty());
        }
    }
}
