//! How a new profile fact relates to one the user stated before: the same thing said
//! again (merge into the old item, keeping its id), a change that contradicts it ("I moved
//! from Beijing to Shanghai": archive the old item, never delete it), or unrelated.
//!
//! Rules, no LLM, and deliberately cautious: a wrong merge or archive hides a true fact,
//! while a missed one only leaves two items side by side.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;

use super::fast::PREFERENCE_TAG;
use crate::model::{Memory, MemoryType};
use crate::text;

/// Word overlap (Jaccard) at and above which two facts say the same thing.
const REPEAT: f32 = 0.75;

/// How a new fact relates to an older one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// The same fact again.
    Repeat,
    /// The new fact replaces the old one.
    Contradicts,
    /// Nothing to do.
    Unrelated,
}

/// Words that signal a change of state: "now", "moved", "no longer", "现在", "搬到".
static CHANGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(?:now|moved|move|no\s+longer|any\s*more|switched|changed|became|become|quit|left|instead|these\s+days|nowadays)\b|现在|搬到|搬去|搬家|不再|改成|换成|已经不|辞职|如今|目前",
    )
    .expect("valid regex")
});

/// A move between two values: "from Oslo to Lisbon", "从北京搬到上海". The old fact that
/// names only the destination agrees with the move; only one naming the origin is replaced.
static FROM_TO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\bfrom\s+(.+?)\s+(?:to|into)\s+(.+)|从(.+?)(?:搬到|搬去|搬回|换到|到)(.+)")
        .expect("valid regex")
});

/// The origin's and the destination's words of a move, if the text states one.
fn move_parts(text: &str) -> Option<(HashSet<String>, HashSet<String>)> {
    let c = FROM_TO.captures(text)?;
    let part = |i: usize, j: usize| {
        let m = c.get(i).or_else(|| c.get(j))?;
        Some(text::terms(m.as_str()).into_iter().collect::<HashSet<_>>())
    };
    Some((part(1, 3)?, part(2, 4)?))
}

/// Headlines of topics where one value replaces another (one home, one job at a time).
fn single_valued(key: &str) -> bool {
    ["home", "work", "居住", "工作"]
        .iter()
        .any(|t| key.ends_with(t) || key.contains(&format!("{t} ")))
}

/// The content words of a profile item, without its viewpoint prefix and subject.
fn words(m: &Memory) -> HashSet<String> {
    let body = m
        .value
        .split_once("] ")
        .filter(|_| m.value.starts_with('['))
        .map_or(m.value.as_str(), |(_, rest)| rest);
    text::terms(body)
        .into_iter()
        .filter(|t| t != "user" && t != "用户")
        .collect()
}

fn polarity(m: &Memory) -> Option<&str> {
    if !m.tags.iter().any(|t| t == PREFERENCE_TAG) {
        return None;
    }
    m.tags
        .iter()
        .find(|t| *t == "like" || *t == "dislike")
        .map(String::as_str)
}

/// Word overlap (Jaccard) of two items' content words, viewpoint prefix and subject left out.
pub fn overlap(a: &Memory, b: &Memory) -> f32 {
    let (a, b) = (words(a), words(b));
    let union = a.union(&b).count();
    if union == 0 {
        0.0
    } else {
        a.intersection(&b).count() as f32 / union as f32
    }
}

/// How `new` relates to `old` (both profile items of one user).
pub fn relate(new: &Memory, old: &Memory) -> Relation {
    if new.memory_type != MemoryType::UserMemory || old.memory_type != MemoryType::UserMemory {
        return Relation::Unrelated;
    }
    let (a, b) = (words(new), words(old));
    let shared = a.intersection(&b).count();
    let union = a.union(&b).count().max(1);
    let (pa, pb) = (polarity(new), polarity(old));
    if shared as f32 / union as f32 >= REPEAT && pa == pb {
        return Relation::Repeat;
    }
    // Same topic: the same headline, or (after an edit renamed one) the same topic tag,
    // which the fast path puts first.
    let same_topic =
        new.key == old.key || (!new.tags.is_empty() && new.tags.first() == old.tags.first());
    if !same_topic {
        return Relation::Unrelated;
    }
    let flipped = pa.is_some() && pb.is_some() && pa != pb && shared > 0;
    let mut changed = CHANGE.is_match(&new.value) && (shared > 0 || single_valued(&new.key));
    if let Some((from, to)) = move_parts(&new.value) {
        // A move replaces what names where the user came from, not where they went: which
        // one the search finds first must not decide it.
        let (names_from, names_to) = (!b.is_disjoint(&from), !b.is_disjoint(&to));
        if names_to && !names_from {
            changed = false;
        }
    }
    if flipped || changed {
        Relation::Contradicts
    } else {
        Relation::Unrelated
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{AddContext, fast};
    use crate::model::{Role, Scope};
    use crate::store::tests_support::message;

    /// The profile item the fast path makes of one user sentence.
    fn fact(text: &str) -> Memory {
        let mut m = message(&Scope::new("p", "u"), "c", text, 1_683_554_160_000);
        m.role = Role::User;
        let ctx = AddContext {
            scope: m.scope.clone(),
            conversation_id: "c".into(),
            ..Default::default()
        };
        fast::extract(&ctx, &[m], None, 1)
            .into_iter()
            .find(|m| m.memory_type == MemoryType::UserMemory)
            .unwrap_or_else(|| panic!("no fact in {text:?}"))
    }

    #[test]
    fn the_same_fact_again_is_a_repeat() {
        assert_eq!(
            relate(
                &fact("I love spicy food."),
                &fact("I really love spicy food!")
            ),
            Relation::Repeat
        );
        assert_eq!(
            relate(&fact("我喜欢吃辣的。"), &fact("我喜欢吃辣的")),
            Relation::Repeat
        );
    }

    #[test]
    fn a_change_contradicts_the_old_fact() {
        assert_eq!(
            relate(
                &fact("I moved from Beijing to Shanghai."),
                &fact("I live in Beijing.")
            ),
            Relation::Contradicts
        );
        assert_eq!(
            relate(&fact("我现在住在上海。"), &fact("我住在北京。")),
            Relation::Contradicts
        );
        assert_eq!(
            relate(&fact("我从北京搬到了上海。"), &fact("我住在北京。")),
            Relation::Contradicts
        );
        assert_eq!(
            relate(&fact("I don't like coffee."), &fact("I like coffee.")),
            Relation::Contradicts,
            "a flipped preference"
        );
    }

    #[test]
    fn different_facts_are_unrelated() {
        for (new, old) in [
            ("I love jazz music.", "I love spicy food."),
            ("I have two dogs.", "My cat is called Luna."),
            ("My apartment is near the river.", "I live in Beijing."),
            ("I like green tea.", "I like coffee."),
            // The destination of a move agrees with it.
            ("I moved from Oslo to Lisbon.", "I live in Lisbon."),
            ("我从北京搬到了上海。", "我住在上海。"),
        ] {
            assert_eq!(
                relate(&fact(new), &fact(old)),
                Relation::Unrelated,
                "{new} / {old}"
            );
        }
    }
}
