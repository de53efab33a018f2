//! What users say about themselves, found without an LLM: rules and a small lexicon turn
//! "I love spicy food but not oily hotpot" into a third-person profile item ("[user
//! viewpoint] The user loves spicy food but not oily hotpot.") with a topic headline ("User's
//! food preferences"), whether it is an explicit preference, and the date it talks about
//! ("yesterday" said on 2023-05-08 is 2023-05-07).
//!
//! Precision matters more than recall here: a wrong profile item misleads every later
//! answer, a missed one still lives in the verbatim turn. `memos bench extract` measures both
//! on a labelled set kept in `tests/data/extract-labelled.jsonl`.

use std::sync::LazyLock;

use regex::Regex;

use crate::dates;
use crate::model::Millis;
use crate::text;

/// A profile fact the user stated about themself.
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    /// The sentence as written.
    pub sentence: String,
    /// The third-person statement, prefixed like MemOS's: `[user viewpoint] The user ...`.
    pub value: String,
    /// The topic it is about.
    pub topic: Topic,
    /// Whether it states a liking or a dislike.
    pub preference: Option<Polarity>,
    /// The (past or present) time it talks about, when it names one.
    pub when: Option<dates::Window>,
    /// Written in Chinese.
    pub zh: bool,
}

impl Fact {
    /// The headline: "User's food preferences", "用户的饮食".
    pub fn key(&self) -> String {
        match (self.zh, self.preference.is_some()) {
            (false, _) => format!("User's {}", self.topic_tag()),
            (true, false) => format!("用户的{}", self.topic_tag()),
            (true, true) => format!("用户的{}偏好", self.topic_tag()),
        }
    }

    /// The topic as a tag, in the fact's language: "food and drink", "food preferences", "饮食".
    pub fn topic_tag(&self) -> String {
        let (en, zh) = self.topic.labels();
        match (self.zh, self.preference.is_some()) {
            (true, _) => zh.to_string(),
            (false, false) => en.to_string(),
            (false, true) => format!("{} preferences", self.topic.preference_label()),
        }
    }
}

/// Liking or disliking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polarity {
    /// "I love", "我喜欢".
    Like,
    /// "I don't like", "我讨厌".
    Dislike,
}

impl Polarity {
    /// "like" / "dislike".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Like => "like",
            Self::Dislike => "dislike",
        }
    }
}

macro_rules! topics {
    ($($variant:ident: $name:literal, $en:literal, $pref:literal, $zh:literal,
       [$($word:literal),* $(,)?], [$($zhw:literal),* $(,)?];)*) => {
        /// What a fact is about; the headline names it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Topic {
            $(
                #[doc = $en]
                $variant,
            )*
            /// Anything else about the user.
            Other,
        }

        impl Topic {
            /// Every topic with a lexicon, in tie-break order.
            const ALL: &[Topic] = &[$(Topic::$variant),*];

            /// Short name, as in the labelled set.
            pub fn name(self) -> &'static str {
                match self {
                    $(Topic::$variant => $name,)*
                    Topic::Other => "other",
                }
            }

            /// (English, Chinese) headline words.
            pub fn labels(self) -> (&'static str, &'static str) {
                match self {
                    $(Topic::$variant => ($en, $zh),)*
                    Topic::Other => ("personal facts", "个人信息"),
                }
            }

            fn preference_label(self) -> &'static str {
                match self {
                    $(Topic::$variant => $pref,)*
                    Topic::Other => "personal",
                }
            }

            fn words(self) -> (&'static [&'static str], &'static [&'static str]) {
                match self {
                    $(Topic::$variant => (&[$($word),*], &[$($zhw),*]),)*
                    Topic::Other => (&[], &[]),
                }
            }
        }
    };
}

// English words match whole words (a trailing * matches any ending); Chinese words match
// anywhere. Earlier topics win ties, so family beats work in "my wife is a teacher".
topics! {
    Family: "family", "family", "family", "家庭",
        ["wife", "husband", "daughter*", "son", "sons", "kid*", "child*", "parent*", "mother",
         "mom", "father", "dad", "sister*", "brother*", "married", "family", "birthday", "born",
         "grandma", "grandpa", "grandmother", "grandfather", "cousin*", "wedding", "baby"],
        ["妻子", "丈夫", "老婆", "老公", "女儿", "儿子", "孩子", "父母", "妈妈", "爸爸", "妹妹",
         "姐姐", "哥哥", "弟弟", "结婚", "家人", "生日", "出生", "奶奶", "爷爷", "宝宝"];
    Pet: "pet", "pets", "pet", "宠物",
        ["dog*", "cat", "cats", "pupp*", "kitten*", "pet", "pets", "animal*", "shelter"],
        ["狗", "猫", "宠物", "动物"];
    Food: "food", "food and drink", "food", "饮食",
        ["food*", "eat*", "ate", "cook*", "dish*", "dinner*", "lunch*", "breakfast*",
         "restaurant*", "spicy", "hotpot", "cilantro", "seafood", "vegetarian", "vegan", "tea",
         "coffee*", "curry", "tofu", "gluten", "alcohol", "drink*", "wine", "beer", "meal*",
         "pizza", "sushi", "noodle*", "chocolate", "cafe*", "bbq", "dessert*", "fruit*"],
        ["吃", "菜", "辣", "火锅", "香菜", "海鲜", "素", "咖啡", "茶", "酒", "饭", "餐", "咖喱",
         "豆腐", "麸质", "甜点", "水果"];
    Work: "work", "work", "work", "工作",
        ["work*", "job*", "boss", "manager", "office*", "promot*", "colleague*", "engineer",
         "nurse", "career", "company", "meeting*", "salary", "quit", "client*", "startup",
         "intern*", "hired", "fired"],
        ["工作", "老板", "上班", "办公", "升职", "辞职", "同事", "工程师", "护士", "公司",
         "会议", "工资", "实习"];
    Home: "home", "home and places lived", "home", "居住",
        ["live", "lived", "living", "moved", "apartment", "house", "town", "city", "grew",
         "neighbo*", "rent*"],
        ["住", "搬", "家在", "房子", "小镇", "长大", "租"];
    Travel: "travel", "travel", "travel", "旅行",
        ["travel*", "trip*", "visit*", "flew", "fly*", "flight*", "japan", "paris", "italy",
         "kyoto", "holiday*", "vacation*", "beach", "train*", "abroad", "tour*", "passport"],
        ["旅行", "旅游", "去过", "飞", "日本", "巴黎", "意大利", "京都", "度假", "火车", "出国"];
    Sport: "sport", "sports and exercise", "sports", "运动",
        ["hik*", "run", "ran", "running", "marathon", "tennis", "gym", "swim*", "basketball",
         "football", "soccer", "bike", "bikes", "cycling", "yoga", "sport*", "exercise*",
         "workout*", "climb*", "ski*"],
        ["跑", "爬山", "马拉松", "网球", "健身", "游泳", "篮球", "足球", "自行车", "运动",
         "瑜伽", "滑雪"];
    Health: "health", "health", "health", "健康",
        ["allerg*", "sleep*", "weight", "hurt*", "pain", "broke", "sick", "doctor", "afraid",
         "heights", "wake", "health*", "diet", "anxiety", "medicine", "person"],
        ["过敏", "睡", "减肥", "疼", "摔断", "生病", "医生", "恐高", "起床", "早起", "健康"];
    Study: "study", "education", "study", "学习",
        ["study*", "degree", "college", "university", "graduat*", "exam*", "test", "school",
         "french", "spanish", "english", "chinese", "master's", "phd", "course*", "homework"],
        ["学习", "上学", "学校", "小学", "中学", "学位", "读书", "硕士", "博士", "大学", "毕业", "考试", "驾照", "法语", "西班牙语", "英语", "课程"];
    Entertainment: "entertainment", "entertainment", "entertainment", "娱乐",
        ["movie*", "film*", "music", "jazz", "band", "novel*", "book*", "read*",
         "documentar*", "show*", "series", "game*", "concert*", "song*", "podcast*"],
        ["电影", "片", "音乐", "爵士", "乐队", "小说", "书", "纪录片", "演唱会", "游戏", "歌"];
    Hobby: "hobby", "hobbies", "hobby", "爱好",
        ["paint*", "guitar", "photograph*", "garden*", "plant*", "bak*", "knit*", "hobb*",
         "piano", "draw*", "craft*", "sew*"],
        ["画", "吉他", "摄影", "花园", "种", "烘焙", "爱好", "钢琴"];
}

/// The facts a user message states about the user, one per sentence that has one. A named
/// speaker is called by name ("Caroline went ..."), others "the user".
pub fn user_facts(content: &str, said_at: Millis, name: Option<&str>) -> Vec<Fact> {
    sentences(content)
        .into_iter()
        .filter_map(|s| fact(s, said_at))
        .map(|mut f| {
            if let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) {
                f.value = if f.zh {
                    let third = third_person_zh(&f.sentence).replace("用户", name);
                    format!("[用户观点] {third}")
                } else {
                    let third = third_person_en(&f.sentence)
                        .replace("The user", name)
                        .replace("the user", name);
                    format!("[user viewpoint] {third}")
                };
            }
            f
        })
        .collect()
}

/// The fact one sentence states, if it states one about the speaker.
pub fn fact(sentence: &str, said_at: Millis) -> Option<Fact> {
    let sentence = sentence.trim();
    let zh = text::is_mostly_cjk(sentence);
    if !is_self_statement(sentence, zh) {
        return None;
    }
    let when = dates::find(sentence, said_at).filter(|w| w.start <= said_at);
    Some(Fact {
        sentence: sentence.to_string(),
        value: if zh {
            format!("[用户观点] {}", third_person_zh(sentence))
        } else {
            format!("[user viewpoint] {}", third_person_en(sentence))
        },
        topic: topic(sentence, zh),
        preference: preference(sentence, zh),
        when,
        zh,
    })
}

/// Splits at sentence ends (keeping the mark), English and Chinese.
pub fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (i, &(at, c)) in chars.iter().enumerate() {
        let end = match c {
            '。' | '！' | '？' | '；' | '\n' => true,
            // "3.5" does not end a sentence: the next char must be a space or the end.
            '.' | '!' | '?' | ';' => chars.get(i + 1).is_none_or(|&(_, n)| n.is_whitespace()),
            _ => false,
        };
        if end {
            let s = text[start..at + c.len_utf8()].trim();
            if !s.is_empty() {
                out.push(s);
            }
            start = at + c.len_utf8();
        }
    }
    let rest = text[start..].trim();
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

static EN_SELF: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(i|i'm|i’m|im|i've|i’ve|i'd|i’d|i'll|my|we|we're|we've|our)\b")
        .expect("valid regex")
});
static EN_QUESTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(what|who|whom|whose|which|when|where|why|how|do|does|did|can|could|would|will|should|is|are|am|was|were|any|shall|may)\b")
        .expect("valid regex")
});
static EN_REQUEST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(please|tell|write|explain|summari[sz]e|help|remind|let me|let's|lets|translate|give|show|find|make|thanks|thank|ok|okay|sure|hello|hi|hey)\b")
        .expect("valid regex")
});

/// Whether the sentence tells something about the speaker (not a question, not a request).
pub fn is_self_statement(sentence: &str, zh: bool) -> bool {
    let s = sentence.trim();
    if s.ends_with('?') || s.ends_with('？') {
        return false;
    }
    if zh {
        if !s.contains('我') {
            return false;
        }
        let body = s.trim_end_matches(['。', '！', '!', '.', '；']);
        let question = body.ends_with('吗') || body.ends_with('呢') || body.ends_with('么');
        let request = ["请", "帮我", "给我", "让我", "告诉我", "麻烦"]
            .iter()
            .any(|p| s.starts_with(p));
        return !question && !request;
    }
    EN_SELF.is_match(s) && !EN_QUESTION.is_match(s) && !EN_REQUEST.is_match(s)
}

static EN_LIKE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)
        \bi\s+(?:really\s+|also\s+|just\s+|absolutely\s+|truly\s+|so\s+|do\s+)?(?:love|like|enjoy|adore|prefer)\b
        | \bmy\s+(?:absolute\s+)?favou?rite\b
        | \bi(?:'m|’m|\s+am)\s+(?:a\s+)?(?:big\s+|huge\s+|great\s+)?fan\s+of\b
        | \bi(?:'m|’m|\s+am)\s+(?:really\s+)?(?:into|passionate\s+about|crazy\s+about)\b
        | \bi(?:'d|’d|\s+would)\s+rather\b
        | \bi(?:'m|’m|\s+am)\s+a\s+big\s+\w+\s+fan\b",
    )
    .expect("valid regex")
});
static EN_DISLIKE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)
        \bi\s+(?:really\s+|also\s+|absolutely\s+)?(?:hate|dislike|detest|loathe)\b
        | \bi\s+(?:can't|can’t|cannot|can\s+not)\s+stand\b
        | \bi\s+(?:don't|don’t|do\s+not|didn't|didn’t|never)\s+(?:really\s+|much\s+)?(?:like|enjoy|love|care\s+for)\b
        | \bi(?:'m|’m|\s+am)\s+not\s+(?:a\s+(?:big\s+)?fan\s+of|into|keen\s+on)\b",
    )
    .expect("valid regex")
});
static ZH_LIKE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"我(?:很|非常|特别|最|也|还|真的|超|挺|更|一直)?(?:喜欢|爱|偏爱|热爱|钟爱)|我.{0,3}?(?:迷上|爱上)|我最喜欢|我是.{1,4}迷")
        .expect("valid regex")
});
static ZH_DISLIKE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"我(?:很|非常|特别|最|也|还|真的|一直)?(?:不(?:太|怎么|是很)?(?:喜欢|爱)|讨厌|受不了|反感|厌恶)")
        .expect("valid regex")
});

/// An explicit liking or dislike by the speaker, if the sentence states one.
pub fn preference(sentence: &str, zh: bool) -> Option<Polarity> {
    let (like, dislike) = if zh {
        (&*ZH_LIKE, &*ZH_DISLIKE)
    } else {
        (&*EN_LIKE, &*EN_DISLIKE)
    };
    // "I don't like" holds "like": the dislike patterns are checked first.
    if dislike.is_match(sentence) {
        Some(Polarity::Dislike)
    } else if like.is_match(sentence) {
        Some(Polarity::Like)
    } else {
        None
    }
}

/// The topic whose lexicon the sentence hits most (earlier topics win ties).
pub fn topic(sentence: &str, zh: bool) -> Topic {
    let lower = sentence.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .collect();
    let hits = |t: Topic| -> usize {
        let (en, zh_words) = t.words();
        let en_hits = en
            .iter()
            .map(|p| match p.strip_suffix('*') {
                Some(stem) => words.iter().filter(|w| w.starts_with(stem)).count(),
                None => words.iter().filter(|w| *w == p).count(),
            })
            .sum::<usize>();
        let zh_hits = if zh {
            zh_words.iter().filter(|w| lower.contains(*w)).count()
        } else {
            0
        };
        en_hits + zh_hits
    };
    let mut best = (0, Topic::Other);
    for &t in Topic::ALL {
        let n = hits(t);
        if n > best.0 {
            best = (n, t);
        }
    }
    best.1
}

/// Past forms that do not end in -ed: the verb after "I" stays as it is.
const IRREGULAR_PAST: &[&str] = &[
    "went",
    "got",
    "ran",
    "broke",
    "bought",
    "flew",
    "grew",
    "made",
    "met",
    "saw",
    "took",
    "had",
    "did",
    "said",
    "told",
    "found",
    "gave",
    "came",
    "left",
    "felt",
    "kept",
    "lost",
    "paid",
    "sold",
    "sent",
    "spent",
    "thought",
    "won",
    "wrote",
    "ate",
    "drank",
    "swam",
    "began",
    "became",
    "chose",
    "drove",
    "fell",
    "forgot",
    "knew",
    "rode",
    "sang",
    "slept",
    "spoke",
    "stood",
    "taught",
    "understood",
    "woke",
    "wore",
    "built",
    "caught",
    "brought",
    "heard",
    "held",
    "led",
    "meant",
    "put",
    "quit",
    "read",
    "set",
    "cut",
    "hit",
    "let",
    "shut",
    "sat",
    "hurt",
    "fought",
    "learnt",
    "dreamt",
    "burnt",
    "spent",
    "lent",
    "used",
    "could",
    "would",
    "should",
    "might",
    "must",
    "can",
    "will",
    "shall",
    "may",
    "also",
    "really",
    "usually",
    "often",
    "always",
    "never",
    "sometimes",
    "still",
    "just",
    "actually",
    "only",
    "finally",
    "recently",
    "even",
    "already",
];

/// The third-person singular of a present-tense verb: love → loves, go → goes, study →
/// studies, have → has. Past forms and modals stay.
fn third_singular(verb: &str) -> String {
    let lower = verb.to_lowercase();
    if lower.ends_with("ed") || IRREGULAR_PAST.contains(&lower.as_str()) {
        return verb.to_string();
    }
    match lower.as_str() {
        "have" => return "has".into(),
        "do" => return "does".into(),
        "go" => return "goes".into(),
        "am" => return "is".into(),
        _ => {}
    }
    let consonant_y = lower.ends_with('y')
        && !matches!(
            lower.chars().rev().nth(1),
            Some('a' | 'e' | 'i' | 'o' | 'u')
        );
    if consonant_y {
        format!("{}ies", &verb[..verb.len() - 1])
    } else if ["s", "sh", "ch", "x", "z", "o"]
        .iter()
        .any(|e| lower.ends_with(e))
    {
        format!("{verb}es")
    } else {
        format!("{verb}s")
    }
}

static EN_FIXED: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        (r"\bI(?:'m|’m| am)\b", "the user is"),
        (r"\bI(?:'ve|’ve)\b", "the user has"),
        (r"\bI(?:'d|’d)\b", "the user would"),
        (r"\bI(?:'ll|’ll)\b", "the user will"),
        (r"\bI (?:don't|don’t|do not)\b", "the user does not"),
        (r"\bI (?:didn't|didn’t|did not)\b", "the user did not"),
        (r"\bI (?:can't|can’t|cannot)\b", "the user cannot"),
        (r"\bI (?:won't|won’t)\b", "the user will not"),
        (r"\bI (?:wasn't|wasn’t)\b", "the user was not"),
        (r"\bI (?:haven't|haven’t)\b", "the user has not"),
        (r"\b[Ww]e(?:'re|’re| are)\b", "the user and others are"),
        (r"\b[Ww]e(?:'ve|’ve)\b", "the user and others have"),
        (r"\b[Mm]yself\b", "themself"),
        (r"\b[Mm]ine\b", "the user's"),
        (r"\b[Mm]y\b", "the user's"),
        (r"\b[Oo]ur\b", "their"),
        (r"\bme\b", "the user"),
        (r"\bus\b", "them"),
    ]
    .into_iter()
    .map(|(p, r)| (Regex::new(p).expect("valid regex"), r))
    .collect()
});
static EN_I_VERB: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\bI (\w+)").expect("valid regex"));
static EN_WE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b[Ww]e\b").expect("valid regex"));

/// "I love spicy food" → "The user loves spicy food."
pub fn third_person_en(sentence: &str) -> String {
    let mut s = sentence.trim().to_string();
    for (re, with) in EN_FIXED.iter() {
        s = re.replace_all(&s, *with).into_owned();
    }
    s = EN_I_VERB
        .replace_all(&s, |c: &regex::Captures<'_>| {
            let verb = &c[1];
            match verb {
                "was" => "the user was".to_string(),
                _ => format!("the user {}", third_singular(verb)),
            }
        })
        .into_owned();
    s = s.replace(" I ", " the user ");
    s = EN_WE.replace_all(&s, "the user and others").into_owned();
    let mut out = capitalize(&s);
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out.replace('!', ".")
}

/// "我喜欢吃辣" → "用户喜欢吃辣。"
pub fn third_person_zh(sentence: &str) -> String {
    let mut s = sentence
        .trim()
        .replace("我们", "用户等人")
        .replace('我', "用户");
    if !s.ends_with(['。', '！', '？', '.', '!']) {
        s.push('。');
    }
    s
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said() -> Millis {
        crate::time::parse_str("2023-05-08T12:00:00Z").unwrap()
    }

    #[test]
    fn english_statements_become_third_person() {
        for (said, want) in [
            (
                "I love spicy food but not oily hotpot.",
                "The user loves spicy food but not oily hotpot.",
            ),
            (
                "I'm a software engineer.",
                "The user is a software engineer.",
            ),
            (
                "I don't like cilantro at all.",
                "The user does not like cilantro at all.",
            ),
            ("My cat is called Luna.", "The user's cat is called Luna."),
            (
                "I went hiking with my brother yesterday",
                "The user went hiking with the user's brother yesterday.",
            ),
            (
                "I study biology and I teach piano.",
                "The user studies biology and the user teaches piano.",
            ),
            (
                "We bought a house in March.",
                "The user and others bought a house in March.",
            ),
            (
                "I've been to Kyoto twice!",
                "The user has been to Kyoto twice.",
            ),
            ("I go to the gym.", "The user goes to the gym."),
        ] {
            assert_eq!(third_person_en(said), want);
        }
    }

    #[test]
    fn chinese_statements_become_third_person() {
        assert_eq!(third_person_zh("我每天早上跑步"), "用户每天早上跑步。");
        assert_eq!(third_person_zh("我们的狗很乖。"), "用户等人的狗很乖。");
    }

    #[test]
    fn questions_requests_and_small_talk_are_not_facts() {
        for s in [
            "What should I cook tonight?",
            "Can you help me with my homework?",
            "Please remind me to call the dentist.",
            "Let me think about it.",
            "The weather is nice today.",
            "Thanks, that was helpful!",
            "今晚我该做什么菜？",
            "你能帮我做作业吗",
            "让我想想。",
            "今天天气不错。",
        ] {
            assert_eq!(fact(s, said()), None, "{s}");
        }
    }

    #[test]
    fn preferences_topics_keys_and_dates() {
        let f = fact("I love spicy food but not oily hotpot.", said()).unwrap();
        assert_eq!(f.preference, Some(Polarity::Like));
        assert_eq!(f.topic, Topic::Food);
        assert_eq!(f.key(), "User's food preferences");
        assert_eq!(
            f.value,
            "[user viewpoint] The user loves spicy food but not oily hotpot."
        );
        let f = fact("I don't like horror movies.", said()).unwrap();
        assert_eq!(f.preference, Some(Polarity::Dislike));
        assert_eq!(f.key(), "User's entertainment preferences");
        let f = fact("I adopted a puppy yesterday.", said()).unwrap();
        assert_eq!(f.preference, None);
        assert_eq!(f.key(), "User's pets");
        assert_eq!(
            f.when.map(|w| crate::time::to_date(w.start)),
            Some("2023-05-07".to_string())
        );
        let f = fact("我不喜欢香菜。", said()).unwrap();
        assert_eq!(f.preference, Some(Polarity::Dislike));
        assert_eq!(f.key(), "用户的饮食偏好");
        assert_eq!(f.value, "[用户观点] 用户不喜欢香菜。");
        let f = fact("我上周升职了", said()).unwrap();
        assert_eq!(f.topic, Topic::Work);
        assert_eq!(
            f.when.map(|w| crate::time::to_date(w.start)),
            Some("2023-05-01".to_string())
        );
        // Plans are not dated: only what already happened gets a memory_time.
        assert_eq!(fact("I fly to Rome tomorrow.", said()).unwrap().when, None);
    }

    #[test]
    fn sentences_split_in_both_languages() {
        assert_eq!(
            sentences("I like tea. Version 3.5 is fine! 我喜欢茶。你呢？"),
            vec![
                "I like tea.",
                "Version 3.5 is fine!",
                "我喜欢茶。",
                "你呢？"
            ]
        );
    }
}
