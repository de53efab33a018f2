//! Language handling shared by indexing, querying and extraction: one tokenizer for English
//! and Chinese, stop words, keywords and headlines.
//!
//! Every index (tantivy here, PostgreSQL's GIN later) gets its terms from [`terms`], so a
//! query matches the same way whatever the backend.

use std::collections::HashSet;
use std::sync::LazyLock;

use jieba_rs::Jieba;
use rust_stemmers::{Algorithm, Stemmer};

/// Terms longer than this (in chars) are noise: URLs, base64, hashes.
const MAX_TERM_CHARS: usize = 40;

static JIEBA: LazyLock<Jieba> = LazyLock::new(Jieba::new);
static STEMMER: LazyLock<Stemmer> = LazyLock::new(|| Stemmer::create(Algorithm::English));

/// English function words: they carry no topic and dilute BM25 on conversational text.
const EN_STOP: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "all",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "doing",
    "down",
    "during",
    "each",
    "few",
    "for",
    "from",
    "further",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "me",
    "more",
    "most",
    "my",
    "myself",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "same",
    "she",
    "should",
    "so",
    "some",
    "such",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "very",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "would",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
    "im",
    "ive",
    "id",
    "ill",
    "youre",
    "youve",
    "dont",
    "doesnt",
    "didnt",
    "isnt",
    "wasnt",
    "arent",
    "werent",
    "cant",
    "couldnt",
    "wont",
    "wouldnt",
    "shouldnt",
    "thats",
    "theres",
    "its",
    "lets",
    "also",
    "yeah",
    "yes",
    "oh",
    "ok",
    "okay",
    "really",
    "got",
    "get",
    "hey",
    "hi",
    "hello",
    "thanks",
    "thank",
    "us",
    "may",
    "might",
    "must",
    "shall",
    "let",
    "like",
    "well",
    "much",
    "many",
    "go",
];

/// Chinese particles and pronouns that jieba emits as words.
const ZH_STOP: &[&str] = &[
    "的", "了", "是", "我", "你", "他", "她", "它", "我们", "你们", "他们", "在", "和", "与", "也",
    "都", "就", "吗", "呢", "吧", "啊", "呀", "哦", "嗯", "着", "过", "这", "那", "这个", "那个",
    "有", "没", "不", "很", "还", "又", "把", "被", "给", "让", "对", "从", "到", "为", "以", "而",
    "及", "或", "但", "但是", "因为", "所以", "如果", "可以", "会", "要", "能", "一个", "什么",
    "怎么", "一下", "一些", "自己", "就是", "还是", "然后",
];

static STOP: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| EN_STOP.iter().chain(ZH_STOP).copied().collect());

/// A dialogue pasted in whole as a query ("A: ...\nB: ...\nwhere did I park?") split
/// into its last line, which asks, and the lines before it, which are context; a query of
/// one line is all question.
pub fn split_dialogue(query: &str) -> (&str, Option<&str>) {
    let q = query.trim();
    match q.rfind('\n') {
        Some(i) if !q[i + 1..].trim().is_empty() && !q[..i].trim().is_empty() => {
            (q[i + 1..].trim(), Some(q[..i].trim()))
        }
        _ => (query, None),
    }
}

/// The end of `text` worth about `tokens` subword tokens, cut at a word boundary: what a
/// long query (a whole dialogue pasted in as the query) is searched by, since its most
/// recent part asks the question. A CJK character counts as a token, other text as a token
/// per four bytes, which is how the multilingual tokenizers these models use split them.
/// `0`, or a text that fits, gives the whole text.
pub fn tail_by_tokens(text: &str, tokens: usize) -> &str {
    if tokens == 0 {
        return text;
    }
    let budget = tokens as f32;
    let mut cost = 0.0f32;
    let mut start = text.len();
    for (i, c) in text.char_indices().rev() {
        cost += if is_cjk(c) {
            1.0
        } else {
            c.len_utf8() as f32 / 4.0
        };
        if cost > budget {
            break;
        }
        start = i;
    }
    if start == 0 {
        return text;
    }
    // Start at a word: skip the rest of a word cut in half (CJK has no spaces: any
    // character is a start).
    let rest = &text[start..];
    let cut_in_word = text[..start]
        .chars()
        .next_back()
        .is_some_and(|c| !c.is_whitespace() && !is_cjk(c));
    let first = rest.chars().next();
    match (cut_in_word, first) {
        (true, Some(c)) if !c.is_whitespace() && !is_cjk(c) => {
            match rest.find(char::is_whitespace) {
                Some(w) => rest[w..].trim_start(),
                None => rest,
            }
        }
        _ => rest.trim_start(),
    }
}

/// Whether `c` belongs to a script written without spaces between words.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // kana
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0xF900..=0xFAFF    // compatibility ideographs
        | 0x20000..=0x2FA1F) // extensions B and later
}

/// Whether the text is mostly Chinese (or another CJK language).
pub fn is_mostly_cjk(text: &str) -> bool {
    let (mut cjk, mut alpha) = (0usize, 0usize);
    for c in text.chars() {
        if is_cjk(c) {
            cjk += 1;
        } else if c.is_alphabetic() {
            alpha += 1;
        }
    }
    // A CJK character carries about as much as a short word: weigh it so.
    cjk * 3 > alpha
}

/// A word of the text with its surface form, before stemming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// The word as written, lower-cased (apostrophes removed).
    pub surface: String,
    /// The index term: stemmed for Latin-script words, the word itself for CJK.
    pub term: String,
    /// Whether it is a stop word (kept by [`words`], dropped by [`terms`]).
    pub stop: bool,
}

/// Splits text into words: jieba for CJK runs, Unicode alphanumeric runs for the rest.
/// Apostrophes inside words are dropped (`don't` → `dont`, `user's` → `users`) so that
/// contractions and possessives meet their stems.
pub fn words(text: &str) -> Vec<Word> {
    let mut out = Vec::new();
    let mut latin = String::new();
    let mut cjk = String::new();
    let flush_latin = |buf: &mut String, out: &mut Vec<Word>| {
        if !buf.is_empty() {
            push_latin(buf, out);
            buf.clear();
        }
    };
    let flush_cjk = |buf: &mut String, out: &mut Vec<Word>| {
        if !buf.is_empty() {
            for tok in JIEBA.cut_for_search(buf, true) {
                let w = tok.word.trim();
                if w.is_empty() || !w.chars().any(char::is_alphanumeric) {
                    continue;
                }
                out.push(Word {
                    surface: w.to_string(),
                    term: w.to_string(),
                    stop: STOP.contains(w),
                });
            }
            buf.clear();
        }
    };
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if is_cjk(c) {
            flush_latin(&mut latin, &mut out);
            cjk.push(c);
        } else if c.is_alphanumeric() {
            flush_cjk(&mut cjk, &mut out);
            latin.extend(c.to_lowercase());
        } else if (c == '\'' || c == '’')
            && !latin.is_empty()
            && chars
                .peek()
                .is_some_and(|n| n.is_alphanumeric() && !is_cjk(*n))
        {
            // inside a word: drop the apostrophe, keep the word whole
        } else {
            flush_latin(&mut latin, &mut out);
            flush_cjk(&mut cjk, &mut out);
        }
    }
    flush_latin(&mut latin, &mut out);
    flush_cjk(&mut cjk, &mut out);
    out
}

fn push_latin(word: &str, out: &mut Vec<Word>) {
    if word.chars().count() > MAX_TERM_CHARS {
        return;
    }
    let stop = STOP.contains(word);
    let term = if word.chars().all(|c| c.is_ascii_alphabetic()) {
        STEMMER.stem(word).into_owned()
    } else {
        word.to_string()
    };
    out.push(Word {
        surface: word.to_string(),
        term,
        stop,
    });
}

/// The index terms of a text, in order, stop words removed.
pub fn terms(text: &str) -> Vec<String> {
    words(text)
        .into_iter()
        .filter(|w| !w.stop)
        .map(|w| w.term)
        .collect()
}

/// A memory's value without its `[user viewpoint]` or `[date]` prefix: the text its vector
/// embeds.
pub fn unprefixed(value: &str) -> &str {
    value
        .strip_prefix('[')
        .and_then(|r| r.split_once("] "))
        .map_or(value, |(_, rest)| rest)
}

/// Whether the speaker talks about themself: first-person words in English or Chinese.
pub fn is_first_person(text: &str) -> bool {
    const FIRST: &[&str] = &["i", "im", "ive", "id", "ill", "me", "my", "mine", "myself"];
    if text.contains('我') {
        return true;
    }
    words(text)
        .iter()
        .any(|w| FIRST.contains(&w.surface.as_str()))
}

/// Up to `n` keywords of a text, in text order: content words, each stem once, chosen by
/// length times frequency. Without corpus statistics, length is the cheapest proxy for
/// informativeness and repetition for topicality.
pub fn keywords(text: &str, n: usize) -> Vec<String> {
    // (weight, first position, surface) per stem; weight = length × occurrences.
    let mut cands: Vec<(usize, usize, String)> = Vec::new();
    let mut slot: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (pos, w) in words(text).into_iter().enumerate() {
        if w.stop || w.surface.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let len = w.surface.chars().count();
        let cjk = w.surface.chars().any(is_cjk);
        if (cjk && len < 2) || (!cjk && len < 3) {
            continue;
        }
        let weight = if cjk { len * 3 } else { len };
        match slot.get(&w.term) {
            Some(&i) => cands[i].0 += weight,
            None => {
                slot.insert(w.term, cands.len());
                cands.push((weight, pos, w.surface));
            }
        }
    }
    // jieba's search mode yields both 云南旅游 and its parts 云南, 旅游: keep the parts,
    // which make better tags, and drop the compound.
    let surfaces: Vec<String> = cands.iter().map(|c| c.2.clone()).collect();
    cands.retain(|c| {
        !(c.2.chars().any(is_cjk)
            && surfaces
                .iter()
                .any(|o| o != &c.2 && o.chars().count() >= 2 && c.2.contains(o.as_str())))
    });
    cands.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    cands.truncate(n);
    // Present them in text order: it reads better than by weight.
    cands.sort_by_key(|c| c.1);
    cands.into_iter().map(|c| c.2).collect()
}

/// A headline for a text: its first sentence, cut at a word boundary to about `max_chars`.
pub fn headline(text: &str, max_chars: usize) -> String {
    let text = text.trim();
    let end = text
        .char_indices()
        .find(|&(i, c)| {
            matches!(c, '。' | '！' | '？' | '\n')
                || (matches!(c, '.' | '!' | '?')
                    && text[i + c.len_utf8()..]
                        .chars()
                        .next()
                        .is_none_or(char::is_whitespace))
        })
        .map_or(text.len(), |(i, c)| {
            if matches!(c, '.' | '\n') {
                i
            } else {
                i + c.len_utf8()
            }
        });
    let first = text[..end].trim();
    if first.chars().count() <= max_chars {
        return first.to_string();
    }
    let mut cut: String = first.chars().take(max_chars).collect();
    if !first.chars().take(max_chars).any(is_cjk)
        && let Some(space) = cut.rfind(' ')
    {
        cut.truncate(space);
    }
    format!("{}…", cut.trim_end_matches([',', ';', ':', ' ', '，']))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_long_query_keeps_its_last_words() {
        let q = "we talked about the garden and the roses yesterday. Where did I park the car?";
        assert_eq!(super::tail_by_tokens(q, 0), q);
        assert_eq!(super::tail_by_tokens(q, 100), q);
        let tail = super::tail_by_tokens(q, 6);
        assert_eq!(tail, "did I park the car?");
        // Chinese: a character a token, no word to finish.
        assert_eq!(
            super::tail_by_tokens("我们聊了花园。车停在哪里？", 6),
            "车停在哪里？"
        );
        assert_eq!(
            super::split_dialogue("A: hi\nB: hello\n where is it? \n"),
            ("where is it?", Some("A: hi\nB: hello"))
        );
        assert_eq!(
            super::split_dialogue("just one line"),
            ("just one line", None)
        );
    }

    use super::*;

    #[test]
    fn english_terms_are_stemmed_and_stopped() {
        assert_eq!(
            terms("I love spicy foods, but I don't like oily hotpot!"),
            ["love", "spici", "food", "oili", "hotpot"]
        );
        assert_eq!(terms("The user's preferences"), ["user", "prefer"]);
    }

    #[test]
    fn chinese_is_segmented_without_whitespace_or_punctuation_tokens() {
        let t = terms("我喜欢吃辣的，但不喜欢油腻的火锅。");
        assert!(t.contains(&"喜欢".to_string()), "{t:?}");
        assert!(t.contains(&"火锅".to_string()), "{t:?}");
        assert!(
            t.iter()
                .all(|w| !w.trim().is_empty() && w != "，" && w != "。"),
            "{t:?}"
        );
        assert!(!t.contains(&"的".to_string()));
    }

    #[test]
    fn mixed_text_keeps_both_scripts() {
        let t = terms("明天去Yunnan旅游 with friends");
        assert!(t.contains(&"yunnan".to_string()), "{t:?}");
        assert!(t.contains(&"旅游".to_string()), "{t:?}");
        assert!(t.contains(&"friend".to_string()), "{t:?}");
    }

    #[test]
    fn first_person() {
        assert!(is_first_person("I'm vegetarian"));
        assert!(is_first_person("我每天早上跑步"));
        assert!(!is_first_person("The weather is nice in Kunming."));
    }

    #[test]
    fn keywords_skip_stop_words_and_repeats() {
        let k = keywords(
            "I love spicy food, spicy food is the best food in Sichuan",
            3,
        );
        assert_eq!(k, ["spicy", "food", "sichuan"]);
        let k = keywords("我喜欢吃辣的火锅", 3);
        assert!(k.contains(&"火锅".to_string()), "{k:?}");
        assert_eq!(
            keywords("我下个月要去云南旅游", 5),
            ["下个月", "云南", "旅游"]
        );
    }

    #[test]
    fn headline_takes_first_sentence() {
        assert_eq!(
            headline("I moved to Berlin. It is cold.", 60),
            "I moved to Berlin"
        );
        assert_eq!(headline("我搬到了上海。那里很热。", 60), "我搬到了上海。");
        let h = headline(
            "one two three four five six seven eight nine ten eleven",
            20,
        );
        assert_eq!(h, "one two three four…");
        assert_eq!(headline("Version 2.5 is out", 60), "Version 2.5 is out");
    }

    #[test]
    fn language_detection() {
        assert!(is_mostly_cjk("我喜欢吃辣"));
        assert!(!is_mostly_cjk("I like spicy food, 辣"));
    }
}
