//! Preferences shown by a choice (issue 18): the user picks among options the assistant
//! offered ("the second one", "let's go with the quieter hotel", "选第二个"), and the pick
//! says what they prefer over what they passed on.
//!
//! The offer's options are its numbered or bulleted lines, or the two sides of an "A or B?"
//! ("A还是B？") question. The reply picks one by position (an ordinal, "option 2", "第二个",
//! "the last one") or by naming it: a choice word ("let's go with", "I'll take", "选", "就")
//! and words that only one option shares. A question, or "neither", picks nothing.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;

use crate::text;

/// What a reply chose among an offer's options.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// The option picked, as the assistant wrote it.
    pub chosen: String,
    /// The options passed on.
    pub rejected: Vec<String>,
}

static LISTED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*(?:\d{1,2}\s*[.)、:：]|[(（]\d{1,2}[)）]|[-*•·])\s*(.+?)\s*$")
        .expect("valid regex")
});
static EN_OR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)([^,:;?.!]{2,80}?)\s*,?\s+or\s+(?:the\s+|a\s+|an\s+)?([^,:;?.!]{2,60}?)\s*\?")
        .expect("valid regex")
});
/// The lead-in of a Chinese question's first option ("你想住...").
static ZH_LEAD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^.*?(?:想要|想住|想去|想吃|想坐|要|选|喜欢|想|订|去|吃|坐|住)")
        .expect("valid regex")
});
/// The lead-in of a question's first option ("Would you prefer the ...").
static EN_LEAD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^.*\b(?:prefer|like|want|choose|take|book|pick|try|have|go\s+with|go\s+for)\s+(?:the\s+|a\s+|an\s+)?")
        .expect("valid regex")
});
static ZH_OR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?:要|选|喜欢|想|订|去|吃|坐|住)?([^，,。？?！]{1,20}?)还是([^，,。？?！]{1,20}?)[？?]",
    )
    .expect("valid regex")
});
static EN_ORDINAL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:the\s+)?(first|second|third|fourth|fifth|last|1st|2nd|3rd|4th|5th)\b(?:\s+(?:one|option|choice))?|\b(?:option|number|no\.?|#)\s*(\d)\b")
        .expect("valid regex")
});
static ZH_ORDINAL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"第([一二三四五12345])(?:个|种|家|项|条)?|选([一二三四五12345])(?:号)?|([一二三四五12345])号|(最后一个|最后那个)")
        .expect("valid regex")
});
static EN_PICK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:let's|lets|let\s+us|i'll|i\s+will|we'll|we\s+will|i'd\s+like|i\s+want|i\s+choose|i\s+pick|i\s+prefer|go\s+with|go\s+for|take|book|sounds\s+(?:good|great|better))\b")
        .expect("valid regex")
});
static NONE_OF: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(?:neither|none|not\s+(?:the|any|either))\b|都不|哪个都不|不要.{0,4}(?:第|这|那)",
    )
    .expect("valid regex")
});

/// The options an assistant turn offers, in order; empty when it offers none.
pub fn options(offer: &str) -> Vec<String> {
    let listed: Vec<String> = offer
        .lines()
        .filter_map(|l| LISTED.captures(l))
        .map(|c| clean(&c[1]))
        .filter(|o| !o.is_empty())
        .collect();
    if listed.len() >= 2 {
        return listed;
    }
    let zh = text::is_mostly_cjk(offer);
    let pair = if zh {
        ZH_OR.captures_iter(offer).last()
    } else {
        EN_OR.captures_iter(offer).last()
    };
    pair.map(|c| {
        let first = if zh {
            ZH_LEAD.replace(c[1].trim(), "").into_owned()
        } else {
            EN_LEAD.replace(c[1].trim(), "").into_owned()
        };
        vec![clean(&first), clean(&c[2])]
    })
    .filter(|v| v.iter().all(|o| !o.is_empty()) && v[0] != v[1])
    .unwrap_or_default()
}

fn clean(option: &str) -> String {
    let o = option
        .trim()
        .trim_end_matches(['.', '。', ',', '，', ';', '；', '!', '！']);
    // "Hotel Lumen: quiet, near the park" -> keep it all, but not a paragraph.
    o.chars().take(120).collect::<String>().trim().to_string()
}

/// What `reply` chose among the options of `offer`, if it chose one.
pub fn choice(reply: &str, offer: &str) -> Option<Choice> {
    let reply = reply.trim();
    if reply.is_empty() || reply.ends_with('?') || reply.ends_with('？') || NONE_OF.is_match(reply)
    {
        return None;
    }
    let opts = options(offer);
    if opts.len() < 2 {
        return None;
    }
    let index = by_position(reply, opts.len()).or_else(|| by_name(reply, &opts))?;
    let chosen = opts.get(index)?.clone();
    let rejected = opts
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != index)
        .map(|(_, o)| o.clone())
        .collect();
    Some(Choice { chosen, rejected })
}

fn by_position(reply: &str, n: usize) -> Option<usize> {
    let at = |k: usize| (k >= 1 && k <= n).then(|| k - 1);
    if let Some(c) = ZH_ORDINAL.captures(reply) {
        if c.get(4).is_some() {
            return Some(n - 1);
        }
        let d = c.get(1).or(c.get(2)).or(c.get(3))?.as_str();
        return at(zh_digit(d)?);
    }
    let c = EN_ORDINAL.captures(reply)?;
    if let Some(d) = c.get(2) {
        return at(d.as_str().parse().ok()?);
    }
    let word = c.get(1)?.as_str().to_lowercase();
    match word.as_str() {
        "last" => Some(n - 1),
        "first" | "1st" => at(1),
        "second" | "2nd" => at(2),
        "third" | "3rd" => at(3),
        "fourth" | "4th" => at(4),
        "fifth" | "5th" => at(5),
        _ => None,
    }
}

fn zh_digit(d: &str) -> Option<usize> {
    Some(match d {
        "一" | "1" => 1,
        "二" | "2" => 2,
        "三" | "3" => 3,
        "四" | "4" => 4,
        "五" | "5" => 5,
        _ => return None,
    })
}

/// The one option whose words the reply shares most, when it says it is picking (or is
/// short enough to be only a pick) and no other option shares as many.
fn by_name(reply: &str, opts: &[String]) -> Option<usize> {
    let zh = text::is_mostly_cjk(reply);
    let picks = if zh {
        ["选", "就", "要", "订", "那个", "这个", "吧"]
            .iter()
            .any(|w| reply.contains(w))
    } else {
        EN_PICK.is_match(reply) || reply.split_whitespace().count() <= 6
    };
    if !picks {
        return None;
    }
    let said: HashSet<String> = text::terms(reply).into_iter().collect();
    // Words every option shares ("hotel" in "the quiet hotel or the central hotel") tell
    // nothing apart.
    let per: Vec<HashSet<String>> = opts
        .iter()
        .map(|o| text::terms(o).into_iter().collect())
        .collect();
    let common: HashSet<String> = per.iter().skip(1).fold(per[0].clone(), |acc, s| {
        acc.intersection(s).cloned().collect()
    });
    let scores: Vec<usize> = per
        .iter()
        .map(|o| {
            o.iter()
                .filter(|w| said.contains(*w) && !common.contains(*w))
                .count()
        })
        .collect();
    let best = *scores.iter().max()?;
    if best == 0 || scores.iter().filter(|s| **s == best).count() > 1 {
        return None;
    }
    scores.iter().position(|s| *s == best)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOTELS: &str = "I found two options:\n1. Hotel Lumen, quiet, next to the park\n2. Grand Central Inn, right in the busy center\nWhich one do you like?";

    #[test]
    fn a_pick_by_position_or_by_name_among_listed_options() {
        let c = choice("The second one, please.", HOTELS).unwrap();
        assert_eq!(c.chosen, "Grand Central Inn, right in the busy center");
        assert_eq!(c.rejected, ["Hotel Lumen, quiet, next to the park"]);
        let c = choice("Let's go with the quiet one near the park.", HOTELS).unwrap();
        assert_eq!(c.chosen, "Hotel Lumen, quiet, next to the park");
        assert_eq!(choice("Option 1", HOTELS).unwrap().chosen, c.chosen);
        assert_eq!(
            choice("the last one", HOTELS).unwrap().chosen,
            "Grand Central Inn, right in the busy center"
        );
    }

    #[test]
    fn a_pick_between_the_two_sides_of_a_question() {
        let offer = "Would you prefer the window seat or the aisle seat?";
        assert_eq!(options(offer), ["window seat", "aisle seat"]);
        assert_eq!(
            choice("Aisle, please.", offer).unwrap().chosen,
            "aisle seat"
        );
        let zh = "你想住安静的酒店还是市中心的酒店？";
        let c = choice("选第一个吧。", zh).unwrap();
        assert_eq!(c.chosen, "安静的酒店");
        assert_eq!(c.rejected, ["市中心的酒店"]);
        let listed = "1. 川菜馆\n2. 粤菜馆\n3. 日料店";
        assert_eq!(choice("第三个", listed).unwrap().chosen, "日料店");
        assert_eq!(choice("就粤菜馆吧", listed).unwrap().chosen, "粤菜馆");
    }

    #[test]
    fn no_pick_without_options_or_with_a_question_or_a_refusal() {
        assert_eq!(
            choice("The second one.", "Sure, I can help with that."),
            None
        );
        assert_eq!(choice("Which one is quieter?", HOTELS), None);
        assert_eq!(choice("Neither, to be honest.", HOTELS), None);
        assert_eq!(choice("哪个都不要。", "1. 川菜馆\n2. 粤菜馆"), None);
        // Words both options share pick nothing.
        assert_eq!(
            choice(
                "I'll take the hotel.",
                "The quiet hotel or the central hotel?"
            ),
            None
        );
    }
}
