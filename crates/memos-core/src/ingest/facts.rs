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

            /// The topic of a short name, `other` included.
            pub fn from_name(name: &str) -> Option<Topic> {
                Topic::ALL
                    .iter()
                    .chain([&Topic::Other])
                    .find(|t| t.name() == name)
                    .copied()
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
         "pizza", "sushi", "noodle*", "chocolate", "cafe*", "bbq", "dessert*", "fruit*",
         "olive*", "bread", "barbecue", "ramen", "dumpling*", "steak", "meat", "pork", "beef",
         "dairy", "milk", "cheese", "peanut*", "nut", "nuts", "shellfish", "mushroom*", "sugar",
         "sweets", "kosher", "halal", "lactose", "fried", "spice*", "chili", "taco*", "burger*",
         "mayonnaise", "anchov*", "oatmeal", "fish", "food"],
        ["吃", "菜", "辣", "火锅", "香菜", "海鲜", "素", "咖啡", "茶", "酒", "饭", "餐", "咖喱",
         "豆腐", "麸质", "甜点", "水果", "拉面", "牛奶", "油腻", "面包", "寿司", "披萨", "油炸",
         "豆浆", "橄榄", "猪肉", "牛排", "饺子", "甜", "清真", "乳糖", "花生", "蘑菇", "喝"];
    Work: "work", "work", "work", "工作",
        ["work*", "job*", "boss", "manager", "office*", "promot*", "colleague*", "engineer",
         "nurse", "career", "company", "meeting*", "salary", "quit", "client*", "startup",
         "intern*", "hired", "fired", "remote*", "commute*", "micromanag*", "project*",
         "corporation*", "colleagues", "mentor*", "slack", "email*", "calls"],
        ["工作", "老板", "上班", "办公", "升职", "辞职", "同事", "工程师", "护士", "公司",
         "会议", "工资", "实习", "开会", "通勤", "团建", "编程", "带新人", "远程", "项目"];
    Home: "home", "home and places lived", "home", "居住",
        ["live", "lived", "living", "moved", "apartment", "house", "houses", "home",
         "town", "city", "cities", "grew", "neighbo*", "rent*", "countryside", "carpet*",
         "lighting", "clutter", "room", "plants"],
        ["住", "搬", "家在", "房子", "小镇", "长大", "租", "乡下", "地毯", "空调", "屋里",
         "厨房", "公寓", "灯光", "绿植", "的家", "家里"];
    Travel: "travel", "travel", "travel", "旅行",
        ["travel*", "trip*", "visit*", "flew", "fly*", "flight*", "japan", "paris", "italy",
         "kyoto", "holiday*", "vacation*", "beach", "train*", "abroad", "tour*", "passport",
         "hotel*", "hostel*", "resort*", "cruise*", "layover*", "seat*", "plane*", "seasick",
         "camping", "backpack*", "destination*", "climates", "boat"],
        ["旅行", "旅游", "去过", "飞", "日本", "巴黎", "意大利", "京都", "度假", "火车", "出国",
         "景点", "青旅", "邮轮", "坐船", "自驾", "酒店", "座位", "跟团", "出游", "转机",
         "航班", "露营", "背包", "老城"];
    Sport: "sport", "sports and exercise", "sports", "运动",
        ["hik*", "run", "ran", "running", "marathon", "tennis", "gym", "swim*", "basketball",
         "football", "soccer", "bike", "bikes", "cycling", "yoga", "sport*", "exercis*",
         "workout*", "climb*", "ski*", "stairs", "treadmill", "boulder*", "cycle", "fitness",
         "pilates", "golf", "walk", "swims", "weightlifting", "sports"],
        ["跑", "爬山", "马拉松", "网球", "健身", "游泳", "篮球", "足球", "自行车", "运动",
         "瑜伽", "滑雪", "攀岩", "高尔夫", "骑车", "走路", "走楼梯", "普拉提", "举铁", "锻炼"];
    Health: "health", "health", "health", "健康",
        ["allerg*", "sleep*", "weight", "hurt*", "pain", "broke", "sick", "doctor", "afraid",
         "heights", "wake", "health*", "diet", "anxiety", "medicine", "person", "remed*",
         "ibuprofen", "meditation", "needles", "injections", "penicillin", "pills",
         "smoking", "smokers", "caffeine", "sodium"],
        ["过敏", "睡", "减肥", "疼", "摔断", "生病", "医生", "恐高", "起床", "早起", "健康",
         "中药", "西药", "布洛芬", "冥想", "打针", "青霉素", "吃药", "抽烟", "步数"];
    Study: "study", "education", "study", "学习",
        ["study*", "degree", "college", "university", "graduat*", "exam*", "test", "school",
         "french", "spanish", "english", "chinese", "master's", "phd", "course*", "homework",
         "math", "maths", "flashcards", "library", "lectures", "languages"],
        ["学习", "上学", "学校", "小学", "中学", "学位", "读书", "硕士", "博士", "大学", "毕业", "考试", "驾照", "法语", "西班牙语", "英语", "课程",
         "数学", "网课", "图书馆", "记忆卡片", "外语", "作业"];
    Entertainment: "entertainment", "entertainment", "entertainment", "娱乐",
        ["movie*", "film*", "music", "jazz", "band", "novel*", "book*", "read*",
         "documentar*", "show*", "series", "game*", "concert*", "song*", "podcast*",
         "tv", "musicals", "sitcoms", "metal", "audiobooks", "comedy", "comedies", "dramas",
         "genre", "vinyl", "folk", "ghibli", "jump"],
        ["电影", "片", "音乐", "爵士", "乐队", "小说", "书", "纪录片", "演唱会", "游戏", "歌",
         "真人秀", "音乐剧", "播客", "韩剧", "情景喜剧", "重金属", "科幻", "桌游", "民谣",
         "脱口秀", "黑胶", "追剧"];
    Hobby: "hobby", "hobbies", "hobby", "爱好",
        ["paint*", "guitar", "photograph*", "garden*", "plant*", "bak*", "knit*", "hobb*",
         "piano", "draw*", "craft*", "sew*", "puzzle*", "sourdough", "woodwork*", "fishing",
         "birdwatching", "chess", "sketchbook", "collecting"],
        ["画", "吉他", "摄影", "花园", "种", "烘焙", "爱好", "钢琴", "木工", "手工", "速写",
         "拼图", "钓鱼", "观鸟", "下棋", "织毛衣", "烤面包", "看书"];
    Assistant: "assistant", "how the assistant answers", "answers", "回答方式",
        ["answer*", "reply", "replies", "respond*", "response*", "emoji*", "markdown", "tables",
         "disclaimer*", "apologi*", "explanation*", "tone", "formal", "bullet*", "units",
         "euros", "paragraphs"],
        ["回答", "回复", "表情", "免责", "道歉", "解释", "表格", "公制", "正式", "要点", "显示", "叫我"];
}

impl Topic {
    /// The topic a preference item was filed under, from its headline ("User's food
    /// preferences", "用户的饮食偏好").
    pub fn of_preference_key(key: &str) -> Option<Topic> {
        Topic::ALL.iter().copied().find(|t| {
            key == format!("User's {} preferences", t.preference_label())
                || key == format!("用户的{}偏好", t.labels().1)
        })
    }
}

/// What a request needs to know about the user, by topic: the words of a question that
/// call for preferences it never names ("where should we eat tonight?" needs the dietary
/// ones; "plan my trip" the travel ones). English words match whole (`*`: any ending),
/// Chinese anywhere.
const NEEDS: &[(Topic, &[&str], &[&str])] = &[
    (
        Topic::Food,
        &[
            "eat*",
            "dinner",
            "lunch",
            "breakfast*",
            "restaurant*",
            "cook*",
            "recipe*",
            "snack*",
            "menu",
            "meal*",
            "dish*",
            "dessert*",
            "drink*",
            "café",
            "cafe",
            "order",
            "takeout",
            "grocer*",
            "bbq",
            "barbecue",
            "hungry",
            "food",
            "steakhouse",
            "reception",
            "smoothie*",
            "pasta",
            "salad",
            "pancake*",
            "bread",
            "picnic",
        ],
        &[
            "吃",
            "饭",
            "餐",
            "菜",
            "零食",
            "点什么",
            "喝",
            "外卖",
            "早餐",
            "晚宴",
            "婚宴",
            "咖啡馆",
            "做法",
            "意面",
            "沙拉",
        ],
    ),
    (
        Topic::Travel,
        &[
            "trip*",
            "travel*",
            "flight*",
            "fly",
            "hotel*",
            "vacation*",
            "holiday*",
            "visit",
            "itinerary",
            "stay",
            "accommodation",
            "seat",
            "pack",
            "tour*",
            "getaway",
            "explore",
            "museum",
            "city",
            "get",
        ],
        &[
            "旅行",
            "旅游",
            "航班",
            "机票",
            "酒店",
            "度假",
            "行程",
            "住哪",
            "座位",
            "去哪",
            "玩什么",
            "怎么玩",
            "带什么",
            "假期",
            "什么时候去",
            "怎么走",
            "博物馆",
        ],
    ),
    (
        Topic::Entertainment,
        &[
            "watch*", "movie*", "film*", "show*", "series", "music", "playlist", "listen", "book*",
            "read*", "podcast*", "concert*", "stream", "cinema", "broadway", "night",
        ],
        &[
            "看什么",
            "电影",
            "剧",
            "歌单",
            "听什么",
            "书",
            "播客",
            "节目",
            "演出",
        ],
    ),
    (
        Topic::Sport,
        &[
            "workout*",
            "exercise*",
            "gym",
            "fit*",
            "sport*",
            "train",
            "active",
            "class",
            "weekend",
            "saturday",
            "sunday",
            "morning",
            "offsite",
            "activity",
        ],
        &[
            "锻炼", "健身", "运动", "身材", "周末", "周六", "周日", "活动", "团建",
        ],
    ),
    (
        Topic::Hobby,
        &[
            "weekend",
            "saturday",
            "sunday",
            "evening",
            "afternoon",
            "hobby",
            "craft*",
            "project",
            "unwind",
            "relax",
            "gift",
            "birthday",
            "creative",
        ],
        &[
            "周末", "周六", "周日", "晚上", "下午", "爱好", "手艺", "兴趣", "放松", "礼物", "生日",
        ],
    ),
    (
        Topic::Home,
        &[
            "apartment*",
            "house*",
            "home",
            "decorate",
            "living",
            "bedroom",
            "flooring",
            "lamps",
            "thermostat",
            "move",
            "flat",
            "sleep",
        ],
        &[
            "房子", "公寓", "客厅", "卧室", "地板", "灯", "空调", "搬", "布置", "睡",
        ],
    ),
    (
        Topic::Work,
        &[
            "job",
            "work",
            "meeting*",
            "schedule",
            "calendar",
            "career",
            "manager",
            "team",
            "office",
            "client",
            "interview",
            "compan*",
            "report",
            "colleagues",
        ],
        &[
            "工作", "会", "日程", "职业", "领导", "团队", "办公", "客户", "面试", "公司", "报告",
        ],
    ),
    (
        Topic::Health,
        &[
            "doctor",
            "medicine",
            "sick",
            "cold",
            "headache",
            "throat",
            "pain",
            "blood",
            "infection",
            "sleep",
            "stress*",
            "concert",
            "drink",
        ],
        &[
            "医生", "药", "感冒", "头疼", "嗓子", "抽血", "压力", "看病", "睡",
        ],
    ),
    (
        Topic::Pet,
        &["pet*", "dog*", "cat*", "zoo", "adopt"],
        &["宠物", "狗", "猫", "动物园"],
    ),
    (
        Topic::Study,
        &[
            "study*", "learn*", "exam*", "course*", "degree", "semester", "elective", "finals",
        ],
        &["学", "考试", "课", "专业", "复习"],
    ),
    (
        Topic::Family,
        &[
            "wedding",
            "family",
            "mother*",
            "father*",
            "parents",
            "relatives",
            "thanksgiving",
            "birthday",
        ],
        &[
            "婚礼", "家人", "妈妈", "爸爸", "父母", "亲戚", "团圆", "生日",
        ],
    ),
];

/// Words that ask how to spend free time: hobbies, sports and entertainment all matter.
const LEISURE: (&[&str], &[&str]) = (
    &[
        "do",
        "evening",
        "night",
        "free",
        "spend",
        "celebrate",
        "fun",
        "after",
        "off",
        "bonus",
        "buy",
    ],
    &[
        "干点什么",
        "干什么",
        "怎么过",
        "消遣",
        "休息",
        "下班后",
        "玩什么",
        "买点什么",
        "怎么安排",
    ],
);

/// Needs that bring others along: a meal question needs the diet and allergy facts filed
/// under health, a way across town the walking ones filed under sport.
const ALSO: &[(Topic, Topic, f32)] = &[
    (Topic::Food, Topic::Health, 0.5),
    (Topic::Travel, Topic::Sport, 0.4),
    (Topic::Health, Topic::Sport, 0.4),
];

/// The topics whose preferences should shape an answer to `query`, each with a weight in
/// (0, 1]: the query's own topic, and those its words call for.
pub fn query_needs(query: &str) -> Vec<(Topic, f32)> {
    let zh = text::is_mostly_cjk(query);
    let lower = query.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .collect();
    let hit = |en: &[&str], zh_words: &[&str]| -> bool {
        en.iter().any(|p| match p.strip_suffix('*') {
            Some(stem) => words.iter().any(|w| w.starts_with(stem)),
            None => words.contains(p),
        }) || zh_words.iter().any(|w| lower.contains(w))
    };
    let mut out: Vec<(Topic, f32)> = Vec::new();
    let own = topic(query, zh);
    if own != Topic::Other {
        out.push((own, 1.0));
    }
    fn add(out: &mut Vec<(Topic, f32)>, t: Topic, w: f32) {
        match out.iter_mut().find(|(o, _)| *o == t) {
            Some((_, have)) => *have = have.max(w),
            None => out.push((t, w)),
        }
    }
    for (t, en, zh_words) in NEEDS {
        if hit(en, zh_words) {
            add(&mut out, *t, 0.8);
        }
    }
    if hit(LEISURE.0, LEISURE.1) {
        for t in [Topic::Hobby, Topic::Sport, Topic::Entertainment] {
            add(&mut out, t, 0.6);
        }
    }
    for (from, to, w) in ALSO {
        if out.iter().any(|(o, _)| o == from) {
            add(&mut out, *to, *w);
        }
    }
    out
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
    if let Some(polarity) = assistant_directive(sentence) {
        return Some(Fact {
            sentence: sentence.to_string(),
            value: if zh {
                format!("[用户观点] 用户希望助手：{sentence}")
            } else {
                format!("[user viewpoint] The user asks the assistant: \"{sentence}\"")
            },
            topic: Topic::Assistant,
            preference: Some(polarity),
            when: None,
            zh,
        });
    }
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
    Regex::new(r"(?i)\b(i|i'm|i’m|im|i've|i’ve|i'd|i’d|i'll|my|me|we|we're|we've|our)\b")
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
    // "When I travel, I ..." opens with a question word but asks nothing.
    let asks = EN_QUESTION.is_match(s) && !EN_CLAUSE.is_match(s);
    EN_SELF.is_match(s) && !asks && !EN_REQUEST.is_match(s)
}

static EN_CLAUSE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(?:when|where|how|what|who|which|why)\s+(?:i|we|my)\b").expect("valid regex")
});

static EN_DIRECTIVE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)^(?:please\s+)?(?:from\s+now\s+on,?\s+)?(?:(?:always|never|don't|don’t|do\s+not|stop|keep|use|avoid|no\s+need)\b.*\b(?:answer|answers|reply|replies|respond|responses?|emojis?|markdown|tables?|disclaimers?|apologi[sz]e|explanations?|tone|formal|bullet|units|metric|prices|euros|dollars|paragraphs|chinese|english)\b|call\s+me\b)",
    )
    .expect("valid regex")
});
static ZH_DIRECTIVE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:请)?(?:以后|今后|从现在起)?(?:都|一律)?(?:不要|别|用|回答|回复|叫我|说话|单位|先给我|尽量).*(?:回答|回复|表情|免责|道歉|解释|表格|公制|正式|显示|叫我|说话|代码|英文|中文|就行)")
        .expect("valid regex")
});
static NEGATIVE_DIRECTIVE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(?:please\s+)?(?:never|don't|don’t|do\s+not|stop|avoid|no\s+)|^(?:请)?(?:以后)?(?:都)?(?:不要|别)")
        .expect("valid regex")
});

/// A standing wish about how the assistant answers ("Please keep your answers short",
/// "以后都用英文回答我"): phrased as a request, yet a preference to remember, unlike a
/// one-off request ("write me a poem"). Its polarity: what it asks to stop is a dislike.
pub fn assistant_directive(sentence: &str) -> Option<Polarity> {
    let s = sentence.trim();
    if s.ends_with('?') || s.ends_with('？') {
        return None;
    }
    if !(EN_DIRECTIVE.is_match(s) || ZH_DIRECTIVE.is_match(s)) {
        return None;
    }
    Some(if NEGATIVE_DIRECTIVE.is_match(s) {
        Polarity::Dislike
    } else {
        Polarity::Like
    })
}

static EN_LIKE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)
        \bi\s+(?:really\s+|also\s+|just\s+|absolutely\s+|truly\s+|so\s+|do\s+)?(?:love|like|enjoy|adore|prefer)\b
        | \bmy\s+(?:absolute\s+)?favou?rite\b
        | \bi(?:'m|’m|\s+am)\s+(?:a\s+)?(?:big\s+|huge\s+|great\s+)?fan\s+of\b
        | \bi(?:'m|’m|\s+am)\s+(?:really\s+)?(?:into|passionate\s+about|crazy\s+about)\b
        | \bi(?:'d|’d|\s+would)\s+rather\b
        | \bi(?:'m|’m|\s+am)\s+a\s+big\s+\w+\s+fan\b
        | \bi(?:'ve|’ve|\s+have)\s+become\s+a\s+(?:big\s+|huge\s+)?fan\s+of\b
        | \bi(?:'m|’m|\s+am)\s+(?:a\s+)?(?:huge|big|real)\s+\w+\s+fan\b
        | \bi(?:'m|’m|\s+am)\s+(?:really\s+)?(?:obsessed\s+with|hooked\s+on|all\s+about|a\s+sucker\s+for|vegan|vegetarian|pescatarian)\b
        | \bi(?:'m|’m|\s+am)\s+(?:on\s+a\s+[\w-]+\s+diet)\b
        | \bi(?:'m|’m|\s+am)\s+a\s+\w+\s+person\b
        | \bi\s+(?:always|usually|often|mostly|normally|generally)\s+(?:order|book|pick|choose|go\s+for|take|listen|travel|bring|adopt|drink|eat|cycle|ride|walk|ask)\b
        | \bi\s+(?:drink|take|have|like)\s+my\s+\w+\s+(?:black|strong|sweet|plain|rare|medium)\b
        | \bi\s+could\s+eat\b | \bcan't\s+get\s+enough\s+of\b | \bcan’t\s+get\s+enough\s+of\b | \bnothing\s+beats\b
        | \bis\s+my\s+(?:weakness|passion|thing|ritual|weekend\s+ritual|go-to)\b | \bmy\s+go-to\b
        | \bi(?:'m|’m|\s+am)\s+happiest\b | \bi\s+feel\s+happiest\b | \bbest\s+\w+\s+for\s+me\b
        | \bkeeps?\s+me\s+sane\b | \bhelps?\s+me\s+relax\b | \brelaxing\s+for\s+me\b
        | \bworks?\s+better\s+for\s+me\b | \bi\s+do\s+my\s+best\s+work\b | \bi\s+learn\s+best\b
        | \bi\s+(?:cycle|walk|run|swim)\s+to\s+\w+\s+every\s+day\b | \bmeans\s+a\s+lot\s+to\s+me\b
        | \bare\s+sacred\s+to\s+me\b | \bis\s+sacred\s+to\s+me\b | \bthat's\s+how\s+i\s+like\s+it\b
        | \bi\s+(?:look|go|opt)\s+for\b | \bis\s+what\s+i\s+(?:listen\s+to|eat|drink|watch|read|play|wear)\b
        | \bi\s+keep\s+my\s+\w+\s+(?:cool|warm|clean|tidy|minimal|quiet)\b | \bthe\s+more\s+the\s+better\b",
    )
    .expect("valid regex")
});
static EN_DISLIKE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)
        \bi\s+(?:really\s+|also\s+|absolutely\s+)?(?:hate|dislike|detest|loathe)\b
        | \bi\s+(?:can't|can’t|cannot|can\s+not)\s+stand\b
        | \bi\s+(?:don't|don’t|do\s+not|didn't|didn’t|never)\s+(?:really\s+|much\s+)?(?:like|enjoy|love|care\s+for)\b
        | \bi(?:'m|’m|\s+am)\s+not\s+(?:a\s+(?:big\s+)?fan\s+of|into|keen\s+on)\b
        | \bi(?:'m|’m|\s+am)\s+not\s+(?:really\s+)?(?:into|much\s+of\s+a\s+\w+\s+person|a\s+\w+\s+person)\b
        | \bi\s+(?:really\s+|always\s+|usually\s+|try\s+to\s+|now\s+)?(?:avoid|skip|dread)\b
        | \bi\s+(?:stay|keep)\s+away\s+from\b | \bsteer\s+clear\s+of\b
        | \bi(?:'m|’m|\s+am)\s+(?:\w+\s+)?(?:allergic|intolerant)\b | \bi\s+keep\s+kosher\b | \bi\s+get\s+seasick\b
        | \bi\s+(?:can't|can’t|cannot|can\s+not)\s+(?:eat|drink|take|have|do|handle|tolerate|bear|sleep)\b
        | \bi\s+(?:don't|don’t|do\s+not|never|no\s+longer)\s+(?:eat|drink|do|watch|order|play|take)\b
        | \bi\s+never\s+stay\b | \bi\s+gave\s+up\s+on\b
        | \bi\s+(?:gave\s+up|quit|stopped)\s+(?:\w+ing\b|red\s+meat|meat|sugar|alcohol|coffee|caffeine|dairy|gluten)
        | \bi(?:'ve|’ve|\s+have)\s+never\s+(?:liked|enjoyed|loved)\b
        | \b(?:is|are|was|were)\s+(?:really\s+)?not\s+(?:really\s+)?(?:my\s+thing|for\s+me)\b
        | \b(?:isn't|isn’t|aren't|aren’t)\s+(?:really\s+)?(?:my\s+thing|for\s+me)\b
        | \bnever\s+(?:my\s+thing|worked\s+for\s+me|clicked\s+with\s+me|appealed\s+to\s+me)\b
        | \b(?:don't|don’t|doesn't|doesn’t)\s+appeal\s+to\s+me\b | \bnot\s+for\s+me\b
        | \b(?:bores?|drives?\s+me\s+crazy|stress(?:es)?\s+me\s+out|drains?\s+me|creeps?\s+me\s+out|scares?\s+me|wears?\s+me\s+out|puts?\s+me\s+to\s+sleep)\b
        | \bbore\s+me\b | \bboring\s+to\s+me\b
        | \bmakes?\s+me\s+(?:sick|miserable|feel\s+awful|faint|claustrophobic)\b
        | \bgives?\s+me\s+a\s+headache\b | \btoo\s+\w+\s+for\s+me\b | \bhard\s+no\b | \bno\s+thanks\b
        | \btastes?\s+like\s+soap\b | \bunbearable\b | \bunhygienic\s+to\s+me\b | \bsoulless\s+to\s+me\b",
    )
    .expect("valid regex")
});
static ZH_LIKE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"我(?:很|非常|特别|最|也|还|真的|超|挺|更|一直)?(?:喜欢|爱|偏爱|热爱|钟爱)|我(?:周末|最近|平时|一直|现在|其实|向来|从小|早上|晚上|每天)(?:很|非常|特别|最|也|还|真的|超|挺|更|一直)?(?:喜欢|热爱|钟爱|偏爱)|我[^，。]{0,6}总(?:是|会)?|我.{0,4}习惯|我.{0,3}?(?:迷上|爱上|沉迷)|我最喜欢|我是.{1,4}迷|我最爱|是我的最爱|最大的爱好|我是素食|我是铁杆|我是.{1,2}派|比起.{1,12}(?:更|还是)|我(?:更|宁愿|更愿意)|我选|没有抵抗力|可以天天吃|天天都|最开心|最期待|雷打不动|效率最高|学得最好|是我的兴趣|让我.{0,4}放松|保持平静|我(?:总是|总会|一般会|一般选|一般都|经常|习惯|每天|每周)|对我很重要|就喜欢这样|我最想")
        .expect("valid regex")
});
static ZH_DISLIKE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"我(?:很|非常|特别|最|也|还|真的|一直)?(?:不(?:太|怎么|是很)?(?:喜欢|爱)|讨厌|受不了|反感|厌恶)|(?:不|从来不|从不|尽量不|尽量少|再也不|就不|不再)(?:吃|喝|碰|看|听|住|坐|点|接|去|开车|打车|参加|玩)|滴酒不沾|我(?:对|吃)[^，。]{0,8}过敏|我.{0,2}过敏|不耐受|晕船|晕车|不能碰|没喜欢过|也不喜欢|不是我的强项|我(?:实在|真的|一点都|一点也|是一点都|是)?不(?:太|怎么)?(?:喜欢|爱|能碰|碰)|我从来不喜欢|(?:吃|喝|用|看|学)不(?:了|下去|惯|进去)|受不了|不适合我|不(?:太)?感兴趣|没(?:什么)?兴趣|不感冒|没什么吸引力|不是我的菜|算了吧|太无聊|很无聊|没意思|让我很烦|让我很累|让我抓狂|起鸡皮疙瘩|太吓人|睡不着|头晕|不卫生|透不过气|不是.{0,2}派|不太能|谈不上喜欢|不太适合|不想去|不要|不敢|太甜|太热|太吵|离.{1,6}远远的")
        .expect("valid regex")
});

/// A choice between two things, which names the rejected one with a negation ("能走路我就
/// 不打车": walking over a taxi): a liking, whatever the negation says.
static ZH_CHOICE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"比起.{1,12}(?:更|还是)|能.{1,8}?我?就不|宁愿|宁可").expect("valid regex")
});

/// An explicit liking or dislike by the speaker, if the sentence states one.
pub fn preference(sentence: &str, zh: bool) -> Option<Polarity> {
    let (like, dislike) = if zh {
        (&*ZH_LIKE, &*ZH_DISLIKE)
    } else {
        (&*EN_LIKE, &*EN_DISLIKE)
    };
    if zh && ZH_CHOICE.is_match(sentence) {
        return Some(Polarity::Like);
    }
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
