//! Scoring an extractor against labelled sentences (`tests/data/extract-labelled.jsonl`):
//! precision and recall of fact detection, preferences and dates, and topic accuracy, per
//! language. `memos bench extract` prints it; a test keeps the fast path from regressing.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::facts::{self, Fact};
use crate::error::{Error, Result};
use crate::time;

/// The labelled set shipped with the repository.
pub const LABELLED: &str = include_str!("../../tests/data/extract-labelled.jsonl");

/// One labelled sentence.
#[derive(Debug, Clone, Deserialize)]
pub struct Labelled {
    /// The sentence, as a user would send it.
    pub text: String,
    /// `en` or `zh`.
    pub lang: String,
    /// `dev`: the sentences the rules were written against; `heldout`: written afterwards
    /// and never tuned on, so their scores are the honest estimate.
    #[serde(default = "dev")]
    pub split: String,
    /// When it was said.
    pub said_at: String,
    /// Whether it states something about the speaker (a profile fact).
    pub fact: bool,
    /// `like`, `dislike` or none.
    pub preference: Option<String>,
    /// The topic's short name, for facts.
    pub topic: Option<String>,
    /// The day it talks about (`YYYY-MM-DD`, the first day of a named week/month/year).
    pub date: Option<String>,
}

fn dev() -> String {
    "dev".into()
}

/// Parses a labelled set (JSON Lines).
pub fn parse(text: &str) -> Result<Vec<Labelled>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| Error::Config(format!("labelled set, line {}: {e}", i + 1)))
        })
        .collect()
}

/// Counts for one yes/no decision.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    /// Predicted and right.
    pub tp: usize,
    /// Predicted, but wrong.
    pub fp: usize,
    /// Missed.
    pub fn_: usize,
}

impl Counts {
    /// tp / (tp + fp); 1 when nothing was predicted.
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    /// tp / (tp + fn); 1 when there was nothing to find.
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }

    fn add(&mut self, predicted: bool, right: bool, expected: bool) {
        match (predicted, right) {
            (true, true) => self.tp += 1,
            (true, false) => {
                self.fp += 1;
                if expected {
                    self.fn_ += 1;
                }
            }
            (false, _) if expected => self.fn_ += 1,
            _ => {}
        }
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

/// Scores of one language.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scores {
    /// Sentences scored.
    pub sentences: usize,
    /// Is it a fact about the speaker?
    pub facts: Counts,
    /// The right polarity, where a preference was found or expected.
    pub preferences: Counts,
    /// The right day, where a date was found or expected.
    pub dates: Counts,
    /// Facts found whose topic matches the label, of facts found rightly.
    pub topics_right: usize,
}

impl Scores {
    /// Topic accuracy over the rightly found facts.
    pub fn topic_accuracy(&self) -> f64 {
        ratio(self.topics_right, self.facts.tp)
    }
}

/// Scores the fast extractor on `set`, per split and language: `dev/en`, `heldout/all`, ...
pub fn score_fast(set: &[Labelled]) -> BTreeMap<String, Scores> {
    score(set, |l| {
        let at = time::parse_str(&l.said_at).unwrap_or(0);
        facts::fact(&l.text, at)
    })
}

/// Scores any extractor that returns at most one fact per sentence.
pub fn score(
    set: &[Labelled],
    extract: impl Fn(&Labelled) -> Option<Fact>,
) -> BTreeMap<String, Scores> {
    let mut out: BTreeMap<String, Scores> = BTreeMap::new();
    for l in set {
        let got = extract(l);
        for key in [
            format!("{}/{}", l.split, l.lang),
            format!("{}/all", l.split),
        ] {
            let s = out.entry(key).or_default();
            s.sentences += 1;
            s.facts.add(got.is_some(), l.fact, l.fact);
            let Some(f) = &got else {
                s.preferences.add(false, false, l.preference.is_some());
                s.dates.add(false, false, l.date.is_some());
                continue;
            };
            if l.fact && l.topic.as_deref() == Some(f.topic.name()) {
                s.topics_right += 1;
            }
            let pref = f.preference.map(|p| p.as_str());
            s.preferences.add(
                pref.is_some(),
                pref.is_some() && pref == l.preference.as_deref(),
                l.preference.is_some(),
            );
            let day = f.when.as_ref().map(|w| time::to_date(w.start));
            s.dates.add(
                day.is_some(),
                day.is_some() && day.as_deref() == l.date.as_deref(),
                l.date.is_some(),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_labelled_set_is_large_enough_and_bilingual() {
        let set = parse(LABELLED).unwrap();
        assert!(set.len() >= 200, "{}", set.len());
        assert!(set.iter().filter(|l| l.split == "heldout").count() >= 50);
        for lang in ["en", "zh"] {
            let n = set.iter().filter(|l| l.lang == lang).count();
            assert!(n >= 100, "{lang}: {n}");
            assert!(
                set.iter().any(|l| l.lang == lang && !l.fact),
                "{lang} negatives"
            );
            assert!(
                set.iter().any(|l| l.lang == lang && l.date.is_some()),
                "{lang} dates"
            );
        }
    }

    #[test]
    fn the_fast_path_keeps_its_precision() {
        // Floors a little under what `memos bench extract` measures today, so a rule change
        // that starts inventing facts, preferences or dates fails here.
        let scores = score_fast(&parse(LABELLED).unwrap());
        for split in ["dev/all", "heldout/all"] {
            let s = &scores[split];
            assert!(s.facts.precision() >= 0.95, "{split}: {s:?}");
            assert!(s.facts.recall() >= 0.95, "{split}: {s:?}");
            assert!(s.preferences.precision() >= 0.95, "{split}: {s:?}");
            assert!(s.dates.precision() >= 0.85, "{split}: {s:?}");
        }
    }

    #[test]
    fn counts_score_misses_and_wrong_answers() {
        let mut c = Counts::default();
        c.add(true, true, true);
        c.add(true, false, true); // a wrong answer is a false positive and a miss
        c.add(false, false, true);
        c.add(true, false, false);
        assert_eq!((c.tp, c.fp, c.fn_), (1, 2, 2));
        assert!((c.precision() - 1.0 / 3.0).abs() < 1e-9);
        assert!((c.recall() - 1.0 / 3.0).abs() < 1e-9);
    }
}
